"""Benchmark dataset readers of the official layouts: VOC, ADE20K, COCO-Stuff, Cityscapes, PASCAL-Context.

>>> ds = load_dataset("voc", "/data")          # /data/VOCdevkit/VOC2012/...
>>> image = ds.load_image(ds.samples[0])       # uint8 (H, W, 3) RGB
>>> label = ds.load_label(ds.samples[0])       # int64 (H, W), 0..K-1 or ds.info.ignore_index
"""

from zsseg.data.dataset import DatasetInfo, Sample, SegDataset
from zsseg.data.readers import DATASET_NAMES, load_dataset

__all__ = ["DATASET_NAMES", "DatasetInfo", "Sample", "SegDataset", "load_dataset"]

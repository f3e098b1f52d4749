"""Real accuracy, not just shapes: the offline pipeline on the first PASCAL VOC 2012 val images.

Measured here (2026-11-27): the first 4 val images give voc20 mIoU 47.0 with conse:efficientnet-lite0 +
selective-search (all 200: 46.1, docs/results.md). The floor leaves room for BLAS differences across machines.
"""

import pytest

import zsseg
from zsseg.data import load_dataset
from zsseg.eval import evaluate_dataset

pytestmark = [pytest.mark.weights, pytest.mark.data]


def test_voc20_val_miou_floor(data_root):
    dataset = load_dataset("voc20", data_root, "val")
    seg = zsseg.load(model="conse:efficientnet-lite0", proposals="selective-search")
    res = evaluate_dataset(lambda im, voc: seg.segment(im, voc).label_map, dataset, limit=4, progress=False)
    assert res["mIoU"] >= 42.0, res["mIoU"]

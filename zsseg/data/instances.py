"""Instance and panoptic ground truth of the benchmarks that publish it: VOC, Cityscapes, COCO.

Every reader yields, per image, an :class:`InstanceTarget` in the dataset's own class ids (the vocabulary of
:func:`zsseg.data.load_dataset`'s dataset of the same name):

- ``voc`` / ``voc20``: ``VOCdevkit/VOC2012/SegmentationObject/<id>.png`` (0 background, 1..N objects, 255 void);
  an object's class is the ``SegmentationClass`` value under it. In ``voc`` background is one stuff segment, in
  ``voc20`` it is void, as in the semantic benchmark. Only the ids that have a ``SegmentationObject`` file.
- ``cityscapes``: ``gtFine/<split>/<city>/*_gtFine_instanceIds.png`` (id >= 1000: label id * 1000 + instance,
  id < 1000: a label id). Things are the 8 classes of the 19-class benchmark that have instances (person, rider,
  car, truck, bus, train, motorcycle, bicycle), stuff the other 11; a thing label without an instance number (a
  group, "cars") is a crowd region, and every label outside the 19 classes is void (cityscapesScripts'
  panoptic conversion).
- ``coco-stuff171``: ``coco_stuff164k/annotations/instances_<split>2017[_subset].json`` (the 80 thing classes;
  polygons or RLE, ``iscrowd``) and, if present, ``stuff_<split>2017[_subset].json`` (the 91 stuff classes; its
  ``other`` category is skipped). Instance masks may overlap: the AP reads each annotation's full mask
  (:attr:`InstanceTarget.full_rles`), the panoptic id map makes pixels claimed twice void.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from zsseg.data.dataset import Sample, SegDataset
from zsseg.data.readers import load_dataset
from zsseg.data.targets import InstanceTarget, compose_target
from zsseg.errors import ZsSegError

#: datasets with instance ground truth, for ``zsseg eval --task instances|panoptic``
INSTANCE_DATASETS: tuple[str, ...] = ("voc", "voc20", "cityscapes", "coco-stuff171")
CITYSCAPES_THINGS = ("person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle")
COCO_FIRST_STUFF_ID = 92  # COCO category ids 1..90 are things, 92..182 stuff, 183 "other" (= thing pixels)


class InstanceDataset:
    """The images of a split that have instance ground truth, with their targets.

    Attributes:
        semantic: the semantic dataset of the same name (vocabulary, image reading).
        samples: the samples with instance ground truth, sorted by id.
        thing: bool (K,): the dataset's thing classes.
    """

    def __init__(self, semantic: SegDataset, samples: list[Sample], thing: np.ndarray, kind: str) -> None:
        self.semantic = semantic
        self.info = semantic.info
        self.samples = sorted(samples, key=lambda s: s.id)
        self.thing = thing.astype(bool)
        self.kind = kind
        self._coco: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    @property
    def stuff_names(self) -> list[str]:
        """The prompt names of the stuff classes (``Segmentation.instances(stuff=...)`` for this vocabulary)."""
        return [p for p, t in zip(self.info.prompt_names, self.thing, strict=True) if not t]

    @property
    def thing_ids(self) -> list[int]:
        """Class ids of the thing classes."""
        return [int(k) for k in np.flatnonzero(self.thing)]

    def load_image(self, sample: Sample) -> np.ndarray:
        """uint8 (H, W, 3) RGB."""
        return self.semantic.load_image(sample)

    def load_target(self, sample: Sample) -> InstanceTarget:
        """The ground truth of ``sample``.

        Raises:
            ZsSegError: unreadable or mismatched files (size, values outside the dataset's labels).
        """
        if self.kind == "voc":
            semantic = self.semantic.load_label(sample)
            objects = self.semantic.load_raw_label(Sample(sample.id, sample.image_path, _voc_object_path(sample)))
            semantic = np.where(objects == 255, self.info.ignore_index, semantic)
            return compose_target(semantic, np.where(objects == 255, 0, objects), self.thing, self.info.ignore_index)
        if self.kind == "cityscapes":
            raw = self.semantic.load_raw_label(Sample(sample.id, sample.image_path, _cityscapes_instance_path(sample)))
            label = np.where(raw >= 1000, raw // 1000, raw)
            semantic = self.semantic.map_raw(label, _cityscapes_instance_path(sample))
            number = np.where(raw >= 1000, raw % 1000 + 1, 0)
            return compose_target(semantic, number, self.thing, self.info.ignore_index)
        return self._coco_target(sample)

    def _coco_target(self, sample: Sample) -> InstanceTarget:
        from zsseg.data.coco_json import coco_target

        h, w = self.semantic.load_image(sample).shape[:2]
        return coco_target(self._coco[sample.id], h, w, self.semantic, self.thing, str(sample.image_path))


def _voc_object_path(sample: Sample) -> Path:
    return sample.label_path.parent.parent / "SegmentationObject" / sample.label_path.name


def _cityscapes_instance_path(sample: Sample) -> Path:
    return sample.label_path.with_name(sample.label_path.name.replace("_gtFine_labelIds", "_gtFine_instanceIds"))


def _need(samples: list[Sample], name: str, split: str, where: str) -> list[Sample]:
    if not samples:
        raise ZsSegError(f"{name} {split} has no image with instance ground truth: expected {where}")
    return samples


def load_instance_dataset(name: str, root: str | Path, split: str = "val") -> InstanceDataset:
    """The images of ``split`` of ``name`` (one of :data:`INSTANCE_DATASETS`) that have instance ground truth.

    Raises:
        ZsSegError: a dataset without instance ground truth (naming those with it), a missing layout, or a split
            without any instance file.
    """
    if name not in INSTANCE_DATASETS:
        raise ZsSegError(
            f"{name} has no instance ground truth in zsseg: --task instances/panoptic runs on "
            f"{', '.join(INSTANCE_DATASETS)} (or use --task semantic)"
        )
    semantic = load_dataset(name, root, split)
    classes = semantic.info.classes
    if name in ("voc", "voc20"):
        samples = [s for s in semantic.samples if _voc_object_path(s).is_file()]
        thing = np.asarray([c != "background" for c in classes])
        where = "VOC2012/SegmentationObject/<id>.png"
        return InstanceDataset(semantic, _need(samples, name, split, where), thing, "voc")
    if name == "cityscapes":
        samples = [s for s in semantic.samples if _cityscapes_instance_path(s).is_file()]
        thing = np.asarray([c in CITYSCAPES_THINGS for c in classes])
        where = "gtFine/<split>/<city>/*_gtFine_instanceIds.png"
        return InstanceDataset(semantic, _need(samples, name, split, where), thing, "cityscapes")
    from zsseg.data.coco_json import coco_annotations

    ann_dir = semantic.samples[0].label_path.parent.parent if semantic.samples else Path(root)
    per_image = coco_annotations(ann_dir, split)
    samples = [s for s in semantic.samples if s.id in per_image]
    thing = np.asarray([0 <= raw < COCO_FIRST_STUFF_ID - 1 for raw in _rows_raw(semantic)])  # raw = category id - 1
    ds = InstanceDataset(semantic, _need(samples, name, split, f"{ann_dir}/instances_{split}2017.json"), thing, "coco")
    ds._coco = per_image
    return ds


def _rows_raw(semantic: SegDataset) -> list[int]:
    """The raw label value of each class of ``semantic`` (its class table's order)."""
    lut = semantic._lut
    raw = np.full(semantic.info.num_classes, -1, dtype=np.int64)
    for value in np.flatnonzero((lut >= 0) & (lut < semantic.info.num_classes)):
        raw[lut[value]] = value
    return raw.tolist()

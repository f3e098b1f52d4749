"""The ground truth of one image as segments (:class:`InstanceTarget`), and how the readers build it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zsseg.errors import ZsSegError
from zsseg.instances import rle


@dataclass(frozen=True)
class InstanceTarget:
    """The ground-truth segments of one image.

    Attributes:
        id_map: int32 (H, W): ``i + 1`` where segment ``i`` holds the pixel, 0 where none does (void: the
            panoptic evaluation's VOID).
        class_ids: int32 (M,): class index into the dataset's vocabulary.
        is_thing: bool (M,): thing (countable) or stuff class.
        iscrowd: bool (M,): a crowd region (a thing group without separate instances); never matched.
        void: bool (H, W): pixels that belong to no segment and are not scored (border, unlabelled, classes
            outside the benchmark).
        full_rles: where segments overlap (COCO), each segment's whole mask as COCO RLE; empty otherwise
            (:meth:`rles` then encodes ``id_map``).
    """

    id_map: np.ndarray
    class_ids: np.ndarray
    is_thing: np.ndarray
    iscrowd: np.ndarray
    void: np.ndarray
    full_rles: tuple[dict[str, Any], ...] = ()

    def __post_init__(self) -> None:
        m = len(self.class_ids)
        if self.id_map.ndim != 2 or self.id_map.dtype != np.int32 or self.void.shape != self.id_map.shape:
            raise ValueError("id_map must be int32 (H, W) and void bool of the same shape")
        for name, arr in (("class_ids", self.class_ids), ("is_thing", self.is_thing), ("iscrowd", self.iscrowd)):
            if arr.shape != (m,):
                raise ValueError(f"{name} must have shape ({m},), got {arr.shape}")
        if self.full_rles and len(self.full_rles) != m:
            raise ValueError(f"{len(self.full_rles)} full masks for {m} segments")

    def __len__(self) -> int:
        return len(self.class_ids)

    @property
    def image_size(self) -> tuple[int, int]:
        h, w = self.id_map.shape
        return int(h), int(w)

    def rles(self) -> list[dict[str, Any]]:
        """COCO RLE (str counts) of every segment's mask: :attr:`full_rles` where given, else from ``id_map``."""
        if self.full_rles:
            return list(self.full_rles)
        return [dict(r) for r in rle.encode_ids(self.id_map, len(self))]


def compose_target(semantic: np.ndarray, instance: np.ndarray, thing: np.ndarray, ignore_index: int) -> InstanceTarget:
    """Segments from a semantic map and an instance-number map of the same image.

    Args:
        semantic: int (H, W) class ids ``0..K-1`` or ``ignore_index`` (void).
        instance: int (H, W) instance numbers, >= 0; 0 = none. A thing pixel with a number belongs to the
            instance (number, class); a thing pixel without one to its class's crowd region; a stuff pixel to its
            class's one region (numbers ignored).
        thing: bool (K,): which classes are things.
        ignore_index: the void value of ``semantic``.

    Returns:
        The target, segments in (class, number) order, crowd regions as iscrowd things.
    """
    valid = semantic != ignore_index
    sem = np.where(valid, semantic, 0).astype(np.int64)
    inst = np.where(thing[sem], instance.astype(np.int64), 0)
    base = int(inst.max()) + 1 if inst.size else 1
    key = np.where(valid, sem * base + inst, -1)
    keys, inverse = np.unique(key, return_inverse=True)
    keep = keys >= 0
    lut = np.zeros(len(keys), dtype=np.int32)
    lut[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    kept = keys[keep]
    classes = (kept // base).astype(np.int32)
    is_thing = thing[classes].astype(bool)
    return InstanceTarget(
        lut[inverse.reshape(semantic.shape)],
        classes,
        is_thing,
        is_thing & (kept % base == 0),
        ~valid,
    )


def read_json(path: Path) -> Any:
    """A JSON file, or ZsSegError naming it."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ZsSegError(f"cannot read {path} ({err}); re-download the annotation file") from err

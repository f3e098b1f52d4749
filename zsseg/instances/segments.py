"""``Instances``: the segments of one image (things one per object, stuff one per class), disjoint, validated."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from scipy import ndimage

from zsseg.instances import rle

#: version of the ``<stem>.instances.json`` layout (:meth:`Instances.to_json`)
JSON_FORMAT = "zsseg.instances/1"


@dataclass(frozen=True)
class Instances:
    """M disjoint segments of an (H, W) image, in the style of ``supervision.Detections``.

    The segments are stored as one id map, like a panoptic PNG: ``id_map[y, x] = i + 1`` where segment ``i`` holds
    the pixel, 0 where none does (unlabelled, or a fragment dropped for its size). ``masks`` expands it.

    Attributes:
        id_map: int32 (H, W), values in 0..M.
        class_ids: int32 (M,): index into ``classes``.
        scores: float32 (M,) in [0, 1]: a thing's class probability (its proposal's), a stuff region's mean
            confidence.
        is_thing: bool (M,): countable object (True) or stuff region (False, one per class).
        classes: the vocabulary.
        stuff_classes: the vocabulary's classes treated as stuff, and ``stuff_source`` who said so (``user`` or
            ``builtin``, :data:`zsseg.instances.stuff.STUFF_NAMES`).
        settings: the extraction's knobs (NMS threshold, minimum area), recorded in the JSON.

    Index with a bool (M,) array, integer indices or a slice to select segments (ids are renumbered 1..M').
    """

    id_map: np.ndarray
    class_ids: np.ndarray
    scores: np.ndarray
    is_thing: np.ndarray
    classes: tuple[str, ...]
    stuff_classes: tuple[str, ...] = ()
    stuff_source: str = "builtin"
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.id_map.ndim != 2 or self.id_map.dtype != np.int32:
            raise ValueError(f"id_map must be int32 (H, W), got {self.id_map.dtype} {self.id_map.shape}")
        m = len(self.class_ids)
        for name, arr, dtype in (("class_ids", self.class_ids, np.int32), ("scores", self.scores, np.float32),
                                 ("is_thing", self.is_thing, np.bool_)):  # fmt: skip
            if arr.shape != (m,) or arr.dtype != dtype:
                raise ValueError(f"{name} must be {np.dtype(dtype).name} ({m},), got {arr.dtype} {arr.shape}")
        if m and not (self.class_ids.min() >= 0 and self.class_ids.max() < len(self.classes)):
            raise ValueError(f"class_ids must index the {len(self.classes)} classes, got {self.class_ids.tolist()}")

    # ---- shape and selection
    def __len__(self) -> int:
        return len(self.class_ids)

    @property
    def image_size(self) -> tuple[int, int]:
        h, w = self.id_map.shape
        return int(h), int(w)

    def __getitem__(self, index: np.ndarray | slice | list[int] | int) -> Instances:
        if isinstance(index, int | np.integer):
            index = [int(index)]
        if isinstance(index, np.ndarray) and index.dtype == np.bool_ and index.shape != (len(self),):
            raise IndexError(f"a bool selection must have shape ({len(self)},), got {index.shape}")
        keep = np.arange(len(self))[index]
        lut = np.zeros(len(self) + 1, dtype=np.int32)
        lut[keep + 1] = np.arange(1, len(keep) + 1, dtype=np.int32)
        return Instances(
            lut[self.id_map], self.class_ids[keep], self.scores[keep], self.is_thing[keep], self.classes,
            self.stuff_classes, self.stuff_source, self.settings,
        )  # fmt: skip

    # ---- derived per-segment values
    @property
    def labels(self) -> list[str]:
        """Class name of each segment."""
        return [self.classes[i] for i in self.class_ids]

    @cached_property
    def areas(self) -> np.ndarray:
        """int64 (M,): pixels of each segment."""
        return np.bincount(self.id_map.ravel(), minlength=len(self) + 1)[1:].astype(np.int64)

    @cached_property
    def boxes(self) -> np.ndarray:
        """int32 (M, 4) boxes ``(x0, y0, x1, y1)`` in pixel-edge coordinates: x1 = last column + 1, so COCO's
        ``[x, y, w, h]`` is ``[x0, y0, x1 - x0, y1 - y0]``. Zeros for an empty segment."""
        out = np.zeros((len(self), 4), dtype=np.int32)
        for i, sl in enumerate(ndimage.find_objects(self.id_map, max_label=len(self))):
            if sl is not None:
                out[i] = (sl[1].start, sl[0].start, sl[1].stop, sl[0].stop)
        return out

    @property
    def masks(self) -> np.ndarray:
        """bool (M, H, W): each segment's pixels (a new array, M times the image: prefer ``id_map`` for big M)."""
        return self.id_map[None] == np.arange(1, len(self) + 1, dtype=np.int32)[:, None, None]

    def mask(self, i: int) -> np.ndarray:
        """bool (H, W): segment ``i``'s pixels."""
        return self.id_map == i + 1

    def rles(self) -> list[rle.CocoRle]:
        """COCO RLE of every segment (column-major, pycocotools' encoding), from one pass over the id map."""
        return rle.encode_ids(self.id_map, len(self))

    def counts(self) -> dict[str, int]:
        """Objects per thing class, most first (``{"person": 3, "dog": 1}``); stuff is not counted."""
        ids, n = np.unique(self.class_ids[self.is_thing], return_counts=True)
        order = np.argsort(-n, kind="stable")
        return {self.classes[int(ids[i])]: int(n[i]) for i in order}

    def count_line(self) -> str:
        """``3 x person, 1 x dog`` (or ``no objects``)."""
        return ", ".join(f"{n} x {c}" for c, n in self.counts().items()) or "no objects"

    # ---- JSON
    def to_json(self, image: str | None = None) -> dict[str, Any]:
        """The ``<stem>.instances.json`` document: image size, vocabulary, stuff split, counts and one entry per
        segment (``id`` = its value in ``id_map`` and the panoptic PNG, ``class_id``, ``label``, ``score``,
        ``isthing``, ``box`` xyxy, ``area``, ``rle`` COCO RLE)."""
        h, w = self.image_size
        entries = [
            {
                "id": i + 1,
                "class_id": int(self.class_ids[i]),
                "label": self.classes[int(self.class_ids[i])],
                "score": round(float(self.scores[i]), 5),
                "isthing": bool(self.is_thing[i]),
                "box": [int(v) for v in self.boxes[i]],
                "area": int(self.areas[i]),
                "rle": r,
            }
            for i, r in enumerate(self.rles())
        ]
        return {
            "format": JSON_FORMAT,
            **({"image": image} if image is not None else {}),
            "height": h,
            "width": w,
            "classes": list(self.classes),
            "stuff": list(self.stuff_classes),
            "stuff_source": self.stuff_source,
            **self.settings,
            "counts": self.counts(),
            "instances": entries,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Instances:
        """The inverse of :meth:`to_json` (masks decoded from the RLEs)."""
        if doc.get("format") != JSON_FORMAT:
            raise ValueError(f"not a {JSON_FORMAT} document (format: {doc.get('format')!r})")
        h, w = int(doc["height"]), int(doc["width"])
        id_map = np.zeros((h, w), dtype=np.int32)
        entries = doc["instances"]
        for i, e in enumerate(entries):
            id_map[rle.decode(e["rle"])] = i + 1
        known = {"format", "image", "height", "width", "classes", "stuff", "stuff_source", "counts", "instances"}
        return cls(
            id_map,
            np.asarray([e["class_id"] for e in entries], dtype=np.int32),
            np.asarray([e["score"] for e in entries], dtype=np.float32),
            np.asarray([e["isthing"] for e in entries], dtype=bool),
            tuple(doc["classes"]),
            tuple(doc.get("stuff", ())),
            doc.get("stuff_source", "builtin"),
            {k: v for k, v in doc.items() if k not in known},
        )

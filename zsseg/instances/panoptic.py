"""COCO's panoptic encoding: one RGB PNG whose pixel id = R + 256 G + 256^2 B, and its ``segments_info``."""

from __future__ import annotations

from typing import Any

import numpy as np

from zsseg.instances.segments import Instances


def ids_to_rgb(id_map: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) RGB of an int (H, W) id map (ids below 256^3): R = id % 256, G = id // 256 % 256, B = ..."""
    ids = id_map.astype(np.uint32)
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536 % 256], axis=-1).astype(np.uint8)


def rgb_to_ids(rgb: np.ndarray) -> np.ndarray:
    """int32 (H, W) ids of a uint8 (H, W, 3) panoptic PNG (the inverse of :func:`ids_to_rgb`)."""
    c = rgb.astype(np.int32)
    return c[..., 0] + 256 * c[..., 1] + 65536 * c[..., 2]


def segments_info(instances: Instances) -> list[dict[str, Any]]:
    """COCO panoptic ``segments_info`` of the PNG :func:`panoptic_png` draws: per segment ``id`` (its value in the
    PNG), ``category_id`` (class index + 1: COCO category ids start at 1), ``area``, ``bbox`` [x, y, w, h],
    ``iscrowd`` 0, ``isthing`` and ``score``."""
    out = []
    for i in range(len(instances)):
        x0, y0, x1, y1 = (int(v) for v in instances.boxes[i])
        out.append(
            {
                "id": i + 1,
                "category_id": int(instances.class_ids[i]) + 1,
                "area": int(instances.areas[i]),
                "bbox": [x0, y0, x1 - x0, y1 - y0],
                "iscrowd": 0,
                "isthing": int(instances.is_thing[i]),
                "score": round(float(instances.scores[i]), 5),
            }
        )
    return out


def panoptic_png(instances: Instances) -> np.ndarray:
    """uint8 (H, W, 3): the segments in COCO's panoptic encoding; 0 (black) is void."""
    return ids_to_rgb(instances.id_map)


def categories(instances: Instances) -> list[dict[str, Any]]:
    """COCO panoptic categories of the vocabulary: ``id`` = class index + 1, ``name``, ``isthing``."""
    stuff = set(instances.stuff_classes)
    return [{"id": k + 1, "name": c, "isthing": int(c not in stuff)} for k, c in enumerate(instances.classes)]

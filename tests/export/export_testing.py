"""Export test helpers (imported as ``export_testing``): synthetic instances with holes and several parts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from zsseg.instances import Instances

CLASSES = ("cat", "dog", "sky", "grass")
STUFF = ("sky", "grass")


def blob(rng: np.random.Generator, h: int, w: int, sigma: float = 4.0, level: float = 0.5) -> np.ndarray:
    """bool (h, w): smooth random blobs (several components, some with holes)."""
    return ndimage.gaussian_filter(rng.random((h, w)), sigma) > level


def synthetic_instances(seed: int = 0, h: int = 72, w: int = 96) -> Instances:
    """Disjoint segments: two things with holes (a ring, random blobs), a tiny one, and two stuff regions."""
    rng = np.random.default_rng(seed)
    id_map = np.zeros((h, w), dtype=np.int32)
    yy, xx = np.mgrid[:h, :w]
    ring = ((yy - 20) ** 2 + (xx - 24) ** 2 < 15**2) & ((yy - 20) ** 2 + (xx - 24) ** 2 >= 6**2)
    id_map[ring] = 1
    blobs = blob(rng, h, w) & (id_map == 0) & (xx > 40)
    id_map[blobs] = 2
    id_map[h - 3 : h - 1, 2:4] = 3  # 4 pixels: a tiny instance
    id_map[(id_map == 0) & (yy < 8)] = 4  # stuff: the top band (two parts where blobs cut it)
    id_map[(id_map == 0) & (yy > h - 20) & (xx > 10)] = 5
    return Instances(
        id_map,
        np.asarray([0, 1, 0, 2, 3], dtype=np.int32),
        np.asarray([0.9, 0.8, 0.3, 0.7, 0.6], dtype=np.float32),
        np.asarray([True, True, True, False, False]),
        CLASSES,
        STUFF,
        "user",
        {"nms_threshold": 0.5, "part_threshold": 0.8, "min_area": 0},
    )


def write_image(path: Path, h: int = 72, w: int = 96) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), 128, dtype=np.uint8)).save(path)
    return path


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0

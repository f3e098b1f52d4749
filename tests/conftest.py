"""Shared fixtures: a deterministic fake vision-language backend and a toy scene."""

from __future__ import annotations

import numpy as np
import pytest
from zsseg_testing import ColourBackend


@pytest.fixture
def colour_backend() -> ColourBackend:
    return ColourBackend()


@pytest.fixture
def toy_scene() -> tuple[np.ndarray, np.ndarray]:
    """A 64x96 image: red left third, green middle, blue right; returns (image uint8 HxWx3, labels int HxW)."""
    img = np.zeros((64, 96, 3), dtype=np.uint8)
    labels = np.zeros((64, 96), dtype=np.int64)
    for i, sl in enumerate([slice(0, 32), slice(32, 64), slice(64, 96)]):
        img[:, sl, i] = 220
        labels[:, sl] = i
    return img, labels

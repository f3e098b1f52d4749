"""Shared fixtures: a deterministic fake vision-language backend and a toy scene."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from zsseg_testing import ColourBackend, shared_data


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


@pytest.fixture(scope="module")
def data_root() -> Path:
    """The benchmark data folder (``$ZSSEG_DATA`` or ``<repo>/../shared/data``); skips where it is absent."""
    root = shared_data()
    if root is None:
        pytest.skip("benchmark data folder ../shared/data is absent (set ZSSEG_DATA or provide ../shared/data)")
    return root

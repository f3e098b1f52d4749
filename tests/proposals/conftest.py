"""Fixtures shared by the classic generators' tests; each test module defines its own ``proposer``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from skimage.data import astronaut

from zsseg.proposals.base import Proposals


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return np.ascontiguousarray(astronaut()[40:340, 20:440])  # (300, 420): not square, downscaled


@pytest.fixture(scope="module")
def photo_proposals(proposer: Any, photo: np.ndarray) -> Proposals:
    """The module's ``proposer`` run once on :func:`photo`."""
    return proposer(photo)

"""Batch fixtures: a module's folder of tiny images."""

from __future__ import annotations

from pathlib import Path

import pytest
from batch_testing import write_images


@pytest.fixture(scope="module")
def images_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_images(tmp_path_factory.mktemp("images"))

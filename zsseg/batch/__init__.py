"""Batch segmentation of folders and manifests: resumable, on local worker processes or a Ray cluster.

>>> from zsseg.batch import run_batch, read_index
>>> summary = run_batch("photos/", "out/", "cat, sofa", load_options={"model": "conse:efficientnet-lite0"}, workers=2)
>>> read_index("out/").to_pandas()  # one row per image: path, status, error, class shares, timings, files

The index needs pyarrow (``pip install 'zsseg[ray]'``); names are imported on first use, so ``zsseg --help``
works without it.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "SCHEMA": "zsseg.batch.index",
    "compact": "zsseg.batch.index",
    "read_index": "zsseg.batch.index",
    "ImageItem": "zsseg.batch.inputs",
    "list_inputs": "zsseg.batch.inputs",
    "BatchInterrupted": "zsseg.batch.runner",
    "BatchSummary": "zsseg.batch.runner",
    "run_batch": "zsseg.batch.runner",
    "BatchSegmenter": "zsseg.batch.worker",
    "WorkerSpec": "zsseg.batch.worker",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'zsseg.batch' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)

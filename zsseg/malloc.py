"""glibc malloc settings for PyTorch inference on CPU.

PyTorch eager frees and re-allocates every activation tensor on each forward. glibc serves allocations above its
mmap threshold (128 KiB, rising at most to 32 MiB) with fresh ``mmap`` calls and gives freed memory at the top of the
heap back to the kernel past 128 KiB, so each forward pass page-faults its activations in again: a ViT-B/16 tower
on 16 crops took 1.3 M minor page faults per pass, and ran 16-22% slower than with glibc told to keep them (fp32
and bf16). The values below, smaller than that probe's 1 GiB so that peak memory grows less, gave 1.03-1.27x end
to end in two side-by-side runs (``benchmarks/fast_path.py``, ``docs/results.md`` §9). This is the effect of the
``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` / ``MALLOC_TOP_PAD_`` environment variables, applied from
inside the process with ``mallopt(3)`` so that ``zsseg`` commands get it without a wrapper script.

The CLI, ``zsseg batch``'s workers and ``zsseg serve`` call :func:`tune_malloc` once at start-up. Library users
may call it themselves; it changes the whole process's allocator. ``ZSSEG_MALLOC=default`` in the environment
turns it off (as do the ``MALLOC_*_`` environment variables, which then win).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os

# mallopt(3) parameter numbers from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 32 << 20  # blocks below 32 MiB come from the heap and are reused, not mmapped afresh
TRIM_THRESHOLD = 128 << 20  # keep up to 128 MiB of freed heap top for the next forward pass
TOP_PAD = 16 << 20  # grow the heap 16 MiB at a time


@functools.cache
def tune_malloc() -> bool:
    """Keep freed activation memory in the heap for reuse; return whether the settings were applied.

    A no-op (``False``) off glibc, with ``ZSSEG_MALLOC=default``, or when any ``MALLOC_*_`` variable is set.
    """
    if os.environ.get("ZSSEG_MALLOC", "") == "default" or any(
        k.startswith("MALLOC_") and k.endswith("_") for k in os.environ
    ):
        return False
    name = ctypes.util.find_library("c")
    if not name or "libc.so" not in name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    settings = ((_M_MMAP_THRESHOLD, MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD), (_M_TOP_PAD, TOP_PAD))
    return all(mallopt(param, value) == 1 for param, value in settings)

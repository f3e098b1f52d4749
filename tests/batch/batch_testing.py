"""Batch test helpers (imported as ``batch_testing``): tiny images in nested folders, the fast offline segmenter."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
from PIL import Image
from zsseg_testing import shapes_scene

#: The offline backend with a pared-down selective search (5 regions an image): real weights, about 0.4 s an image.
SS_OPTIONS = {"max_proposals": 4, "colour_spaces": "hsv", "scales": (300.0,), "similarities": "ctsf"}
LOAD = {"model": "conse:efficientnet-lite0", "proposals": "selective-search", "proposal_options": SS_OPTIONS}
#: The same settings as command-line flags.
LOAD_FLAGS = ["--model", "conse:efficientnet-lite0", "--proposals", "selective-search", "--max-proposals", "4"]
LOAD_FLAGS += ["--colour-spaces", "hsv", "--scales", "300", "--similarities", "ctsf"]
CLASSES = ["red shape", "green shape", "blue shape", "wall"]
#: Relative paths of the images; ``a/x`` twice (jpg, png) and ``x.jpg`` in two folders, to check names.
NAMES = ["a/x.jpg", "a/x.png", "b/x.jpg", "b/y.png", "c/d/z.jpg", "c/w.png", "e.jpg", "f.png"]


def write_images(folder: Path, names: list[str] = NAMES) -> Path:
    """Write small synthetic scenes (a few sizes) under ``folder`` at ``names``; returns ``folder``."""
    rng = np.random.default_rng(0)
    for i, name in enumerate(names):
        image, _ = shapes_scene(40 + 4 * (i % 3), 56 + 4 * (i % 2))
        noisy = np.clip(image.astype(int) + rng.integers(-8, 9, image.shape), 0, 255).astype(np.uint8)
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(noisy).save(path)
    return folder


def kill_worker(row: dict, killed: list[int]) -> None:
    """``on_row`` helper: SIGKILL the process that produced the first row (``worker`` is ``host:pid``), once."""
    if not killed:
        pid = int(row["worker"].rsplit(":", 1)[1])
        killed.append(pid)
        os.kill(pid, signal.SIGKILL)


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative posix path -> bytes), hidden temporaries included."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

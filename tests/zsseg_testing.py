"""Test helpers shared across test folders (imported as ``zsseg_testing``, so no conftest name clashes)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.draw import disk, ellipse, polygon

from zsseg.precision import cpu_has_fast_bfloat16
from zsseg.proposals.base import Proposals

REPO = Path(__file__).resolve().parents[1]

needs_native_bf16 = pytest.mark.skipif(
    not cpu_has_fast_bfloat16(), reason="this CPU has no native bf16 (AVX512-BF16 or AMX)"
)
"""For tests that run bfloat16 kernels on a CPU that only exist where it multiplies bf16 natively (oneDNN's fused
``mkldnn._linear_pointwise`` fails on AVX2-only CPUs). Decided when this module is imported, from
:func:`zsseg.precision.cpu_has_fast_bfloat16` itself, so a test that monkeypatches that check to reach the bf16
code path does not change it."""


def shared_data() -> Path | None:
    """``../shared/data`` beside the repo (or ``$ZSSEG_DATA``), or None if absent."""
    root = Path(os.environ.get("ZSSEG_DATA", REPO.parent / "shared" / "data"))
    return root if root.is_dir() else None


class ColourBackend:
    """A fake VLM: an image embeds as its mean colour, a text as the colour its name spells.

    Texts name a colour among red/green/blue; embeddings are 3-d and normalised, so a red crop classifies
    as "red" under any template. Lets pipeline tests check real behaviour without weights.
    """

    name = "fake:colour"
    input_size = 16
    mean = (0.5, 0.5, 0.5)
    std = (0.5, 0.5, 0.5)
    logit_scale = 20.0
    device = torch.device("cpu")
    COLOURS = {"red": (1.0, 0.0, 0.0), "green": (0.0, 1.0, 0.0), "blue": (0.0, 0.0, 1.0)}

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        rgb = pixels * 0.5 + 0.5
        return F.normalize(rgb.mean(dim=(2, 3)) + 1e-6, dim=-1)

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        rows = []
        for t in texts:
            hit = [v for k, v in self.COLOURS.items() if k in t]
            rows.append(hit[0] if hit else (1.0, 1.0, 1.0))
        return F.normalize(torch.tensor(rows) + 1e-6, dim=-1)


class FixedProposer:
    """Returns fixed masks (resized to nothing: the test gives masks of the image's size)."""

    name = "fixed"

    def __init__(self, masks: np.ndarray) -> None:
        self.masks = masks

    def __call__(self, image: np.ndarray) -> Proposals:
        return Proposals(self.masks, np.ones(len(self.masks), np.float32))


def shapes_scene(height: int, width: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """A grey background with four flat coloured shapes; returns the uint8 image and the shapes' masks."""
    image = np.full((height, width, 3), (128, 128, 120), dtype=np.uint8)
    masks = []
    for colour, (rr, cc) in [
        ((220, 30, 30), polygon(np.array([0.1, 0.1, 0.4, 0.4]) * height, np.array([0.08, 0.4, 0.4, 0.08]) * width)),
        ((30, 190, 40), disk((0.7 * height, 0.25 * width), 0.18 * min(height, width))),
        ((40, 50, 210), polygon(np.array([0.15, 0.45, 0.45]) * height, np.array([0.75, 0.6, 0.92]) * width)),
        ((235, 220, 40), ellipse(0.75 * height, 0.72 * width, 0.15 * height, 0.2 * width)),
    ]:
        mask = np.zeros((height, width), dtype=bool)
        rr, cc = np.clip(rr, 0, height - 1).astype(int), np.clip(cc, 0, width - 1).astype(int)
        mask[rr, cc] = True
        image[mask] = colour
        masks.append(mask)
    return image, masks


def best_iou(proposals: Proposals, target: np.ndarray) -> float:
    """The best IoU of any proposal with the bool (H, W) ``target``."""
    flat = proposals.masks.reshape(len(proposals), -1)
    inter = (flat & target.reshape(-1)).sum(axis=1)
    union = (flat | target.reshape(-1)).sum(axis=1)
    return float((inter / np.maximum(union, 1)).max())


class GridProposer:
    """Four quadrant masks of whatever image it is given (a fast, weight-free proposer for CLI tests)."""

    name = "grid"

    def __call__(self, image: np.ndarray) -> Proposals:
        h, w = image.shape[:2]
        masks = np.zeros((4, h, w), dtype=bool)
        masks[0, : h // 2, : w // 2] = True
        masks[1, : h // 2, w // 2 :] = True
        masks[2, h // 2 :, : w // 2] = True
        masks[3, h // 2 :, w // 2 :] = True
        return Proposals(masks[masks.any(axis=(1, 2))], np.ones(int(masks.any(axis=(1, 2)).sum()), np.float32))


def stub_segmenter(**kwargs: object) -> object:
    """A :class:`~zsseg.pipeline.Segmenter` over :class:`GridProposer` and :class:`ColourBackend` (no weights)."""
    from zsseg.classify import RegionClassifier
    from zsseg.pipeline import Segmenter

    keep = ("unlabelled_threshold", "background_threshold", "max_working_pixels")
    return Segmenter(
        GridProposer(),  # type: ignore[arg-type]
        RegionClassifier(ColourBackend(), templates="single"),  # type: ignore[arg-type]
        **{k: v for k, v in kwargs.items() if k in keep},  # type: ignore[arg-type]
    )


def use_stub_segmenter(monkeypatch: object) -> None:
    """Make ``zsseg segment``/``eval`` build :func:`stub_segmenter` instead of loading a model."""
    import zsseg.cli_options

    monkeypatch.setattr(  # type: ignore[attr-defined]
        zsseg.cli_options, "segmenter_from_args", lambda args, **extra: stub_segmenter(**extra)
    )

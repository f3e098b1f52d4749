"""Test helpers shared across test folders (imported as ``zsseg_testing``, so no conftest name clashes)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]


def shared_data() -> Path | None:
    """``../shared/data`` beside the repo (or ``$ZSSEG_DATA``), or None if absent."""
    root = Path(os.environ.get("ZSSEG_DATA", REPO.parent / "shared" / "data"))
    return root if root.is_dir() else None


requires_data = pytest.mark.skipif(
    shared_data() is None, reason="benchmark images not found: ../shared/data (or $ZSSEG_DATA) is absent"
)


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

    def __call__(self, image: np.ndarray):  # type: ignore[no-untyped-def]
        from zsseg.proposals.base import Proposals

        return Proposals(self.masks, np.ones(len(self.masks), np.float32))

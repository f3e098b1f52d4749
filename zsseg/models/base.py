"""What every model family's backend is: a vision-language backend (images and texts into one embedding space),
and one row of :func:`zsseg.available_models`. The family itself is :class:`zsseg.models.family.ModelFamily`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class VisionLanguageBackend(Protocol):
    """Encodes images and texts into a shared space where cosine similarity ranks classes.

    Attributes:
        name: the model string a user passes (``clip:ViT-B-16/openai``, ``conse:efficientnet-lite0``).
        input_size: side S of the square image input.
        mean, std: per-channel RGB normalisation of inputs scaled to [0, 1].
        logit_scale: multiplier of cosine similarities before the softmax (CLIP's learned temperature).
        device: where the backend's tensors live.
        family: the name of the :class:`~zsseg.models.family.ModelFamily` that made it (``"clip"``, ``"conse"``);
            backends from elsewhere may lack it and get what every backend has (crop features, a generic
            strategy-2 tower).
    """

    name: str
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    logit_scale: float
    device: torch.device

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """Embed normalised images: float32 (B, 3, S, S) on ``device`` -> float32 (B, D), L2-normalised."""
        ...

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Embed sentences: T strings -> float32 (T, D), L2-normalised."""
        ...


@dataclass(frozen=True)
class ModelInfo:
    """One row of :func:`zsseg.available_models`.

    Attributes:
        name: the model string to pass (``clip:ViT-B-16/openai``).
        family: its family's name.
        available: whether it loads here without a download.
        how: how to get it where it is not available (empty where it is).
    """

    name: str
    family: str
    available: bool
    how: str = ""

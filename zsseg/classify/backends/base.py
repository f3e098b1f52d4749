"""The contract of a vision-language backend: images and texts into one embedding space."""

from __future__ import annotations

from collections.abc import Sequence
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

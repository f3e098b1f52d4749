"""The contracts of the model families: a vision-language backend (images and texts into one embedding space),
and a :class:`ModelFamily`, which loads backends by name and builds what the pipeline asks of them (dense region
features, strategy 2's image tower, CoOp's prompt learner). One family is one folder of ``zsseg/models/``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import torch

if TYPE_CHECKING:
    from zsseg.models.pooling import DenseRegionEncoder
    from zsseg.models.prompt_learner import PromptLearner
    from zsseg.models.towers import ImageTower


@runtime_checkable
class VisionLanguageBackend(Protocol):
    """Encodes images and texts into a shared space where cosine similarity ranks classes.

    Attributes:
        name: the model string a user passes (``clip:ViT-B-16/openai``, ``conse:efficientnet-lite0``).
        input_size: side S of the square image input.
        mean, std: per-channel RGB normalisation of inputs scaled to [0, 1].
        logit_scale: multiplier of cosine similarities before the softmax (CLIP's learned temperature).
        device: where the backend's tensors live.
        family: the :class:`ModelFamily` that made it (``"clip"``, ``"conse"``); backends from elsewhere may lack
            it and get what every backend has (crop features, a generic strategy-2 tower).
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


class ModelFamily(Protocol):
    """A family of vision-language models, named by the prefix of its model strings (``clip:``, ``conse:``).

    Attributes:
        name: the prefix.
        help: the model strings it takes, for error lines and ``--help``.
    """

    name: str
    help: str

    def dtype(self, precision: str, device: torch.device) -> torch.dtype:
        """What ``precision`` (``auto``, ``fp32``, ``bf16``, ``fp16``) means for this family on ``device``."""
        ...

    def load(self, spec: str, device: torch.device, dtype: torch.dtype) -> VisionLanguageBackend:
        """The backend named ``spec`` (the model string after ``NAME:``), on ``device``, cast to ``dtype``."""
        ...

    def default_regions(self, backend: VisionLanguageBackend) -> str:
        """What ``regions="auto"`` stands for with ``backend``: ``crops``, ``dense`` or ``hybrid``."""
        ...

    def dense_encoder(self, backend: VisionLanguageBackend, size: int) -> DenseRegionEncoder | None:
        """The one-pass region encoder of ``backend`` at long side ``size``; None where it has none."""
        ...

    def tower(self, backend: VisionLanguageBackend, mode: str, last_blocks: int) -> ImageTower | None:
        """Strategy 2's image tower over ``backend``; None: the generic tower serves."""
        ...

    def prompt_learner(self, backend: VisionLanguageBackend, n_ctx: int, suffix: str) -> PromptLearner:
        """CoOp's learner over ``backend``'s text encoder (random context), or a ZsSegError naming the fix."""
        ...

    def models(self) -> list[ModelInfo]:
        """The models of this family a user can name, and whether each loads here."""
        ...

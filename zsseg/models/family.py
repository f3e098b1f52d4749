"""The contract of a model family: it loads backends by name and builds what the pipeline asks of them (dense
region features, strategy 2's image tower, CoOp's prompt learner). One family is one folder of ``zsseg/models/``,
listed once in :data:`zsseg.models.FAMILIES`."""

from __future__ import annotations

from typing import Protocol

import torch

from zsseg.models.base import ModelInfo, VisionLanguageBackend
from zsseg.models.pooling import DenseRegionEncoder
from zsseg.models.prompt_learner import PromptLearner
from zsseg.models.towers import ImageTower


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

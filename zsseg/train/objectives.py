"""What one training run optimises: strategy 2 (an image encoder whose classifier is the frozen text embeddings of
the seen classes) or CoOp's learned prompts. The loop of :mod:`zsseg.train.trainer` is the same for both; an
:class:`Objective` says which module learns, from which parameters, and how region features become logits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from zsseg.models.base import VisionLanguageBackend
from zsseg.models.towers import ImageTower
from zsseg.train.config import TrainConfig


@dataclass
class Regions:
    """The training regions after an objective prepared them.

    Attributes:
        features: float (M, ...) region features (pooled features, trunk tokens or pixels, per the tower).
        targets: float32 (M, C) soft targets, rows summing to 1.
        held: bool (M,) held out for early stopping and calibration.
        weights: float32 (C,) loss weight per column, or None (all 1).
    """

    features: torch.Tensor
    targets: torch.Tensor
    held: torch.Tensor
    weights: torch.Tensor | None


class Objective(Protocol):
    """One of the things ``zsseg train`` trains.

    Attributes:
        prefix: the checkpoint's tensor prefix (``model.``, ``prompt.``).
        module: the module whose state the checkpoint keeps.
        tower: the frozen image side that encodes the training regions.
        calibrates: whether a temperature is fitted on the held-out regions afterwards.
    """

    prefix: str
    module: torch.nn.Module
    tower: ImageTower
    calibrates: bool

    def param_groups(self, cfg: TrainConfig) -> list[dict[str, Any]]:
        """AdamW's parameter groups."""
        ...

    def prepare(self, regions: Regions) -> Regions:
        """The regions this objective trains on (e.g. only those mostly of one trained class)."""
        ...

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Features (B, ...) of :attr:`Regions.features` -> float32 (B, C) logits."""
        ...


class Strategy2Objective:
    """Strategy 2: a copy of the image encoder (``cfg.train`` says which part learns) classifying regions against
    the frozen text embeddings of ``vocabulary`` (``cfg.templates``), plus a "no object" column."""

    prefix = "model."

    def __init__(self, backend: VisionLanguageBackend, cfg: TrainConfig, vocabulary: Sequence[str]) -> None:
        from zsseg.classify.strategy2 import build_strategy2

        assert cfg.logit_scale is not None
        self.model = build_strategy2(backend, cfg.train, cfg.last_blocks, cfg.logit_scale).eval()
        self.module: torch.nn.Module = self.model
        self.tower = self.model.tower
        self.calibrates = cfg.calibrate
        self._backend, self._cfg, self._vocabulary = backend, cfg, list(vocabulary)
        self._text: torch.Tensor | None = None

    def param_groups(self, cfg: TrainConfig) -> list[dict[str, Any]]:
        assert cfg.lr is not None
        return self.model.param_groups(cfg.lr, cfg.backbone_lr_mult)

    def prepare(self, regions: Regions) -> Regions:
        from zsseg.classify.region import RegionClassifier

        classifier = RegionClassifier(self._backend, templates=self._cfg.templates)
        self._text = classifier.text_embeddings(self._vocabulary).clone().to(self._backend.device)
        return regions

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        assert self._text is not None, "prepare() first"
        return self.model.logits(x.to(self._backend.device), self._text)


class PromptsObjective:
    """CoOp: learned context vectors before each class name, through the frozen text encoder; regions that are
    mostly (>= 0.5) one trained class, embedded by the frozen image encoder, with "no object" dropped."""

    prefix = "prompt."
    calibrates = False

    def __init__(self, backend: VisionLanguageBackend, cfg: TrainConfig, vocabulary: Sequence[str]) -> None:
        from zsseg.models import build_prompt_learner, build_tower

        assert cfg.logit_scale is not None
        self.learner = build_prompt_learner(backend, cfg.n_ctx, cfg.suffix)
        self.module: torch.nn.Module = self.learner
        self.tower = build_tower(backend, "projection")
        self._device, self._scale, self._vocabulary = backend.device, cfg.logit_scale, list(vocabulary)

    def param_groups(self, cfg: TrainConfig) -> list[dict[str, Any]]:
        return [{"params": [self.learner.ctx], "lr": cfg.lr}]

    def prepare(self, regions: Regions) -> Regions:
        targets = regions.targets
        keep = targets[:, :-1].sum(dim=1) >= 0.5
        with torch.no_grad():
            chunks = regions.features[keep].split(256)
            feats = torch.cat([self.tower.frozen_embed(c.to(self._device).float()).cpu() for c in chunks])
        targets = targets[keep][:, :-1]
        return Regions(feats, targets / targets.sum(dim=1, keepdim=True), regions.held[keep], None)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self._scale * x.to(self._device) @ self.learner(self._vocabulary).T


def make_objective(cfg: TrainConfig, backend: VisionLanguageBackend, vocabulary: Sequence[str]) -> Objective:
    """The objective of ``cfg.what`` (a resolved config) over ``backend``, for classes ``vocabulary``."""
    if cfg.what == "strategy2":
        return Strategy2Objective(backend, cfg, vocabulary)
    return PromptsObjective(backend, cfg, vocabulary)

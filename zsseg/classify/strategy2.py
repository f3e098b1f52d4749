"""Strategy 2 of Xu et al. (ECCV 2022): an image encoder retrained on seen classes, classifying against the
frozen text embeddings.

The classifier's weights are the frozen, template-ensembled text embeddings of the vocabulary plus one
learned "no object" embedding; a region's logits are ``logit_scale * cos(head(trunk(crop)), weight)``
(a fixed temperature), trained with cross-entropy on masked crops of ground-truth segments
(:mod:`zsseg.train` trains it). Since the text side stays frozen, the trained encoder can be queried with
any vocabulary at test time, unseen classes included, though it is biased towards the classes it saw.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from zsseg.classify.region import RegionClassifier
from zsseg.models import build_tower
from zsseg.models.base import VisionLanguageBackend
from zsseg.models.towers import ImageTower
from zsseg.prompts import Templates


class Strategy2Model(nn.Module):
    """A trained image tower plus the learned "no object" embedding.

    Args:
        tower: the image tower (:func:`zsseg.models.towers.build_tower`).
        logit_scale: multiplier of the cosine similarities (inverse temperature).
    """

    def __init__(self, tower: ImageTower, logit_scale: float) -> None:
        super().__init__()
        self.tower = tower
        self.no_object = nn.Parameter(F.normalize(torch.randn(tower.embed_dim), dim=0).to(tower.device))
        self.logit_scale = float(logit_scale)

    def logits(self, feats: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Cosine logits with the no-object column last.

        Args:
            feats: the tower trunk's output for B regions.
            text: float32 (K, D) class embeddings.

        Returns:
            float32 (B, K + 1).
        """
        emb = F.normalize(self.tower.head(feats), dim=-1)
        weight = F.normalize(torch.cat([text.to(emb.device), self.no_object[None]]), dim=-1)
        return self.logit_scale * emb @ weight.T

    def param_groups(self, lr: float, backbone_lr_mult: float) -> list[dict[str, object]]:
        """AdamW groups: the tower's groups plus the no-object embedding at ``lr``."""
        return [*self.tower.param_groups(lr, backbone_lr_mult), {"params": [self.no_object], "lr": lr}]


def class_probabilities(logits: torch.Tensor, renormalise: bool = True) -> np.ndarray:
    """(N, K + 1) logits with no-object last -> float32 (N, K): softmax with the no-object column dropped, rows
    renormalised to sum to 1 (``renormalise=False``: as zsseg.baseline's ``softmax(...)[..., :-1]``, rows
    keep ``1 - p(no object)``)."""
    probs = logits.float().softmax(dim=-1)[:, :-1]
    if renormalise:
        probs = probs / probs.sum(dim=-1, keepdim=True).clamp_min(1e-12)
    return probs.cpu().numpy().astype(np.float32)


class Strategy2Classifier(RegionClassifier):
    """Region classifier of strategy 2; a drop-in :class:`RegionClassifier` for :class:`zsseg.Segmenter`.

    Text embeddings are the backend's frozen template-ensembled ones (as in strategy 1); region
    embeddings come from the trained tower, on each region's crop or (``features="dense"``) on the region's
    pooled features from one dense pass, as it was trained. :meth:`classify` returns float32 (N, K) rows summing
    to 1: softmax over the K classes and "no object" of the logits divided by ``temperature``, with the
    no-object column dropped and rows renormalised.

    Args:
        backend: the frozen vision-language backend the model was trained with.
        model: the trained :class:`Strategy2Model`.
        templates: prompt template set or templates used for the class embeddings (as in training).
        batch_size: crops per forward pass.
        features: ``"crops"`` or ``"dense"``, as trained (``zsseg train --features``).
        dense_size: long side of the dense pass, as trained.
        temperature: divides the logits (calibrated on held-out regions by ``zsseg train``).
    """

    def __init__(
        self,
        backend: VisionLanguageBackend,
        model: Strategy2Model,
        templates: Templates = "vild",
        batch_size: int = 32,
        features: str = "crops",
        dense_size: int | None = None,
        temperature: float = 1.0,
    ) -> None:
        if features not in ("crops", "dense"):
            raise ValueError(f"features must be 'crops' or 'dense', got {features!r}")
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        super().__init__(
            backend, templates=templates, batch_size=batch_size, logit_scale=model.logit_scale,
            regions=features, dense_size=dense_size,
        )  # fmt: skip
        self.model = model.eval()
        self.features = features
        self.temperature = float(temperature)

    @property
    def tower(self) -> ImageTower:
        return self.model.tower

    @torch.no_grad()
    def region_features(self, image: np.ndarray, masks: np.ndarray) -> torch.Tensor:
        """The head's input for each mask: its crop through the tower trunk (shape depends on the training
        mode), or float32 (N, F) pooled from one dense pass."""
        if self.dense is not None:
            return self.dense.features(image, masks)
        out = self.encode_crops(image, masks, self.tower.trunk)
        return torch.cat(out) if out else torch.zeros((0, self.tower.embed_dim))

    @torch.no_grad()
    def probs_from_features(
        self, feats: torch.Tensor, classes: Sequence[str], renormalise: bool = True, templates: Templates | None = None
    ) -> np.ndarray:
        """Class probabilities float32 (N, K) from :meth:`region_features` (see :func:`class_probabilities`)."""
        if len(feats) == 0:
            return np.zeros((0, len(classes)), np.float32)
        logits = self.model.logits(feats, self.text_embeddings(classes, templates)) / self.temperature
        return class_probabilities(logits, renormalise)

    def classify(
        self, image: np.ndarray, masks: np.ndarray, classes: Sequence[str], templates: Templates | None = None
    ) -> np.ndarray:
        """Class probabilities of each proposal.

        Args:
            image: uint8 (H, W, 3) RGB.
            masks: bool (N, H, W), each non-empty.
            classes: K class names.
            templates: this call's templates for the classifier weights; None: those it was trained with.

        Returns:
            float32 (N, K), rows summing to 1 (see the class docstring).
        """
        return self.probs_from_features(self.region_features(image, masks), classes, templates=templates)


def build_strategy2(
    backend: VisionLanguageBackend,
    train: str = "projection",
    last_blocks: int = 1,
    logit_scale: float | None = None,
) -> Strategy2Model:
    """A fresh (untrained) strategy-2 model for ``backend``; initialise the torch seed first for determinism."""
    tower = build_tower(backend, train, last_blocks)
    return Strategy2Model(tower, backend.logit_scale if logit_scale is None else logit_scale)

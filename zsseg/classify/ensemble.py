"""The ensemble of strategy 1 (frozen CLIP-style classification) and strategy 2 (retrained image encoder).

As in zsseg.baseline (``clip_ensemble_weight``, ``trainable_flag`` in its ``semantic_inference``), per class
a weighted geometric mean with exponent lambda::

    seen class k:   p_k = p2_k ** lambda       * p1_k ** (1 - lambda)
    other class k:  p_k = p2_k ** (1 - lambda) * p1_k ** lambda

where p1 are strategy 1's probabilities and p2 strategy 2's, softmaxed over the classes and "no object" with
the no-object column dropped and *not* renormalised (zsseg.baseline's ``softmax(mask_cls)[..., :-1]``): a region
strategy 2 calls "no object" (it was trained to say so of anything that is not a seen class) has a small p2 on
every class, which the exponent lambda on seen classes punishes more than 1 - lambda on the others, so strategy
1 decides it. zsseg.baseline then multiplies the (unnormalised) result with the masks; here rows are
renormalised to sum to 1, which keeps each region's ranking of the classes (the
:class:`~zsseg.classify.RegionClassifier` contract). Strategy 2 is trusted on the classes it was
trained on, strategy 1 on the others. A model trained without a seen/unseen split (``seen=None``) uses the
second form for every class, as zsseg.baseline does for datasets without ``trainable_flag``.

lambda (``--lambda``) defaults to 0.8, the ``CLIP_ENSEMBLE_WEIGHT`` default of zsseg.baseline's config;
lambda = 1 uses strategy 2 alone on seen classes and strategy 1 alone on the others, lambda = 0.5 weighs
them equally everywhere.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from zsseg.classify.region import RegionClassifier
from zsseg.classify.strategy2 import Strategy2Classifier
from zsseg.errors import ZsSegError
from zsseg.prompts import Templates

DEFAULT_LAMBDA = 0.8


def check_lambda(lambda_: float) -> float:
    """``lambda_`` if it is an ensemble exponent, in [0, 1] (the one check of it, for every caller).

    Raises:
        ZsSegError: outside [0, 1] or NaN.
    """
    if not 0.0 <= lambda_ <= 1.0:
        raise ZsSegError(f"the ensemble lambda must be in [0, 1], got {lambda_}: pass e.g. --lambda 0.8")
    return lambda_


def normalise_name(name: str) -> str:
    """Key for matching class names: lower case, inner whitespace collapsed."""
    return " ".join(name.lower().split())


def ensemble_probs(p1: np.ndarray, p2: np.ndarray, seen_mask: np.ndarray | None, lambda_: float) -> np.ndarray:
    """Weighted geometric mean of two classifiers' probabilities.

    Args:
        p1: float (N, K), strategy 1 (frozen VLM) probabilities.
        p2: float (N, K), strategy 2 (trained encoder) probabilities.
        seen_mask: bool (K,), True for classes strategy 2 was trained on; None: no split (all False).
        lambda_: ensemble exponent in [0, 1].

    Returns:
        float32 (N, K), rows renormalised to sum to 1 (uniform where every product is 0).
    """
    check_lambda(lambda_)
    p1 = np.asarray(p1, np.float64)
    p2 = np.asarray(p2, np.float64)
    if p1.shape != p2.shape:
        raise ValueError(f"probabilities of different shapes: {p1.shape} and {p2.shape}")
    seen = np.zeros(p1.shape[1], bool) if seen_mask is None else np.asarray(seen_mask, bool)
    w2 = np.where(seen, lambda_, 1.0 - lambda_)  # exponent of p2 per class
    p = np.power(p2, w2) * np.power(p1, 1.0 - w2)
    total = p.sum(axis=1, keepdims=True)
    k = max(p.shape[1], 1)
    out = np.where(total > 0, p / np.where(total > 0, total, 1.0), 1.0 / k)
    return out.astype(np.float32)


def seen_mask_for(classes: Sequence[str], seen: Collection[str] | None) -> np.ndarray | None:
    """bool (K,): which of ``classes`` are in ``seen`` (by :func:`normalise_name`); None if ``seen`` is None."""
    if seen is None:
        return None
    keys = {normalise_name(s) for s in seen}
    return np.array([normalise_name(c) in keys for c in classes], bool)


def probs_from_embeddings(emb: torch.Tensor, text: torch.Tensor, logit_scale: float) -> np.ndarray:
    """Strategy-1 probabilities: softmax(logit_scale * cos) of (N, D) regions and (K, D) classes -> float32 (N, K)."""
    logits = logit_scale * F.normalize(emb.float(), dim=-1) @ F.normalize(text.float().to(emb.device), dim=-1).T
    return logits.softmax(dim=-1).cpu().numpy().astype(np.float32)


class EnsembleClassifier(RegionClassifier):
    """Strategy 1 and strategy 2 combined by :func:`ensemble_probs`; a drop-in :class:`RegionClassifier`.

    Its ``backend``, ``text_embeddings`` and ``region_embeddings`` are strategy 1's. Where strategy 2 was
    trained with ``train="projection"`` on the same backend, both share one forward pass per crop.

    Args:
        strategy1: frozen classifier (a :class:`RegionClassifier`, or a prompt-learned one).
        strategy2: the trained classifier.
        seen: names of the classes strategy 2 was trained on as "seen" (None: trained without a split).
        lambda_: ensemble exponent (default 0.8, see the module docstring).
        renormalise: renormalise strategy 2's class probabilities after dropping "no object" (False: keep
            zsseg.baseline's ``softmax(logits)[..., :-1]``, so a region strategy 2 calls "no object" weighs
            little on the seen classes, and strategy 1 decides it; see ``docs/results.md`` §5).
    """

    def __init__(
        self,
        strategy1: RegionClassifier,
        strategy2: Strategy2Classifier,
        seen: Collection[str] | None,
        lambda_: float = DEFAULT_LAMBDA,
        renormalise: bool = False,
    ) -> None:
        super().__init__(
            strategy1.backend,
            templates=strategy1.templates,
            batch_size=strategy1.batch_size,
            logit_scale=strategy1.logit_scale,
        )
        check_lambda(lambda_)
        self.template_name = strategy1.template_name
        self.regions = strategy1.regions  # what the JSON output reports; strategy 1 computes the features
        self.strategy1 = strategy1
        self.strategy2 = strategy2
        self.seen = None if seen is None else frozenset(seen)
        self.lambda_ = float(lambda_)
        self.renormalise = renormalise

    def resolve_templates(self, templates: Templates | None) -> tuple[str, ...]:
        """Strategy 1's templates for a call (strategy 2 keeps those it was trained with)."""
        return self.strategy1.resolve_templates(templates)

    def text_embeddings(self, classes: Sequence[str], templates: Templates | None = None) -> torch.Tensor:
        """Strategy 1's float32 (K, D) class embeddings."""
        return self.strategy1.text_embeddings(classes, templates)

    def region_embeddings(self, image: np.ndarray, masks: np.ndarray) -> torch.Tensor:
        """Strategy 1's float32 (N, D) region embeddings."""
        return self.strategy1.region_embeddings(image, masks)

    @property
    def shares_trunk(self) -> bool:
        """Whether one forward pass serves both strategies: the same backend, strategy 2 in projection mode, and
        both on crops or both on the same dense pass."""
        s1, s2 = self.strategy1, self.strategy2
        if s2.tower.mode != "projection" or s1.backend is not s2.tower.backend:
            return False
        if s1.regions == "crops":
            return s2.features == "crops"
        same_size = s1.dense is not None and s2.dense is not None and s1.dense.size == s2.dense.size
        return s1.regions == "dense" and s2.features == "dense" and same_size

    @torch.no_grad()
    def components(
        self, image: np.ndarray, masks: np.ndarray, classes: Sequence[str], templates: Templates | None = None
    ) -> dict[str, np.ndarray]:
        """float32 (N, K) probabilities ``p1`` (strategy 1, with this call's ``templates``), ``p2`` (strategy 2,
        its "no object" share left out of each row unless ``renormalise``) and ``p`` (ensemble, rows summing to
        1)."""
        s1, s2 = self.strategy1, self.strategy2
        if self.shares_trunk and len(masks):
            return self.from_features(s2.region_features(image, masks), classes, templates)
        p1 = s1.classify(image, masks, classes, templates)
        p2 = s2.probs_from_features(s2.region_features(image, masks), classes, self.renormalise)
        p = ensemble_probs(p1, p2, seen_mask_for(classes, self.seen), self.lambda_)
        return {"p1": p1, "p2": p2, "p": p}

    @torch.no_grad()
    def from_features(
        self, pooled: torch.Tensor, classes: Sequence[str], templates: Templates | None = None
    ) -> dict[str, np.ndarray]:
        """:meth:`components` from strategy 2's region features (its :meth:`region_features`), when
        :attr:`shares_trunk`: strategy 1 embeds the same features with the frozen head."""
        s1, s2 = self.strategy1, self.strategy2
        embed = s2.dense.embed if s2.dense is not None else s2.tower.frozen_embed
        p1 = probs_from_embeddings(embed(pooled), s1.text_embeddings(classes, templates), s1.logit_scale)
        p2 = s2.probs_from_features(pooled, classes, self.renormalise)
        p = ensemble_probs(p1, p2, seen_mask_for(classes, self.seen), self.lambda_)
        return {"p1": p1, "p2": p2, "p": p}

    def classify(
        self, image: np.ndarray, masks: np.ndarray, classes: Sequence[str], templates: Templates | None = None
    ) -> np.ndarray:
        """Ensembled class probabilities: uint8 (H, W, 3) image, bool (N, H, W) masks -> float32 (N, K)."""
        return self.components(image, masks, classes, templates)["p"]

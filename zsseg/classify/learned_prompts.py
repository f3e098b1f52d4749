"""Strategy 1 with learned prompts (CoOp, Zhou et al., IJCV 2022): class embeddings from a family's
:class:`~zsseg.models.prompt_learner.PromptLearner` instead of hand-written templates."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from zsseg.classify.region import RegionClassifier
from zsseg.errors import ZsSegError
from zsseg.models.base import VisionLanguageBackend
from zsseg.models.prompt_learner import PromptLearner
from zsseg.prompts import Templates


class PromptLearnedClassifier(RegionClassifier):
    """Strategy 1 with learned prompts: a :class:`RegionClassifier` whose class embeddings come from a
    :class:`PromptLearner` instead of hand-written templates (drop-in for :class:`zsseg.Segmenter`).

    Args:
        backend: the frozen vision-language backend the prompts were learned for.
        learner: the trained prompt learner.
        batch_size: crops per forward pass.
        cache_size: vocabularies whose embeddings are kept in memory.
        **region_options: ``regions``, ``dense_size``, ``hybrid_fraction`` of :class:`RegionClassifier`.
    """

    def __init__(
        self,
        backend: VisionLanguageBackend,
        learner: PromptLearner,
        batch_size: int = 32,
        cache_size: int = 8,
        **region_options: Any,
    ) -> None:
        super().__init__(backend, templates=("{}",), batch_size=batch_size, cache_size=cache_size, **region_options)
        self.template_name = "learned"
        self.learner = learner.eval()

    def resolve_templates(self, templates: Templates | None) -> tuple[str, ...]:
        """The learned prompts only: a call naming templates is refused."""
        if templates is not None:
            raise ZsSegError("this classifier's prompts are learned (--prompts): leave the templates unset")
        return self.templates

    def compute_text_embeddings(self, classes: tuple[str, ...], templates: Sequence[str]) -> torch.Tensor:
        """float32 (K, D) learned-prompt embeddings of ``classes`` (cached by ``text_embeddings``)."""
        with torch.no_grad():
            return self.learner(classes).cpu()


__all__ = ["PromptLearnedClassifier"]

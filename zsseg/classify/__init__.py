"""Region classification: every classifier the pipeline runs, behind one small protocol.

- :class:`RegionClassifier` (``region.py``): strategy 1 of the paper, a frozen vision-language model with
  template-ensembled prompts, on crops, dense features or both;
- :class:`PromptLearnedClassifier` (``learned_prompts.py``): strategy 1 with CoOp's learned prompts;
- :class:`Strategy2Classifier` (``strategy2.py``): strategy 2, an image tower retrained on seen classes;
- :class:`EnsembleClassifier` (``ensemble.py``): strategies 1 and 2 ensembled;
- ``checkpoint.py``: a ``zsseg train`` checkpoint read back into one of these (:func:`build_classifier`).

The models themselves live in :mod:`zsseg.models`, one folder per family; nothing here depends on which.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from zsseg.classify.checkpoint import build_classifier, checkpoint_model, model_for
from zsseg.classify.ensemble import EnsembleClassifier
from zsseg.classify.learned_prompts import PromptLearnedClassifier
from zsseg.classify.region import REGIONS, RegionClassifier
from zsseg.classify.strategy2 import Strategy2Classifier
from zsseg.models.base import VisionLanguageBackend
from zsseg.prompts import Templates


@runtime_checkable
class Classifier(Protocol):
    """What :class:`zsseg.Segmenter` asks of a region classifier.

    Attributes:
        backend: the vision-language model whose text side embeds the vocabulary.
        regions: the region-feature mode it runs (``crops``, ``dense``, ``hybrid``).
        template_name: its default prompts (a set's name, ``custom`` or ``learned``).
    """

    backend: VisionLanguageBackend
    regions: str
    template_name: str

    @property
    def settings(self) -> dict[str, str]:
        """How it classifies, for the JSON output (``regions``, ``precision``)."""
        ...

    def resolve_templates(self, templates: Templates | None) -> tuple[str, ...]:
        """The templates a call with ``templates`` would use; a ZsSegError where they cannot change."""
        ...

    def classify(
        self, image: np.ndarray, masks: np.ndarray, classes: Sequence[str], templates: Templates | None = None
    ) -> np.ndarray:
        """uint8 (H, W, 3) image, bool (N, H, W) masks, K names -> float32 (N, K), rows summing to 1."""
        ...


__all__ = [
    "REGIONS",
    "Classifier",
    "EnsembleClassifier",
    "PromptLearnedClassifier",
    "RegionClassifier",
    "Strategy2Classifier",
    "build_classifier",
    "checkpoint_model",
    "model_for",
]

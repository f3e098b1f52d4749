"""Training: strategy 2 (image encoder retrained on seen classes), the strategy 1 + 2 ensemble, learned prompts
(CoOp), their checkpoints, and the ``zsseg train`` command.

>>> from zsseg.train import TrainConfig, train, build_classifier
>>> train(backend, load_dataset("voc20", root, "train"), "voc15.safetensors", TrainConfig(), seen_only=True)
>>> classifier = build_classifier(backend, classifier="voc15.safetensors")  # ensemble; drop-in for Segmenter
"""

from zsseg.train.checkpoint import (
    build_classifier,
    checkpoint_model,
    load_classifier_checkpoint,
    load_prompts_checkpoint,
    resolve_model,
)
from zsseg.train.ensemble import DEFAULT_LAMBDA, EnsembleClassifier, ensemble_probs
from zsseg.train.prompts import PromptLearnedClassifier, PromptLearner, build_prompt_learner
from zsseg.train.strategy2 import Strategy2Classifier, Strategy2Model, build_strategy2
from zsseg.train.trainer import TrainConfig, TrainingInterrupted, TrainSummary, train

__all__ = [
    "DEFAULT_LAMBDA",
    "EnsembleClassifier",
    "PromptLearnedClassifier",
    "PromptLearner",
    "Strategy2Classifier",
    "Strategy2Model",
    "TrainConfig",
    "TrainSummary",
    "TrainingInterrupted",
    "build_classifier",
    "build_prompt_learner",
    "build_strategy2",
    "checkpoint_model",
    "ensemble_probs",
    "load_classifier_checkpoint",
    "load_prompts_checkpoint",
    "resolve_model",
    "train",
]

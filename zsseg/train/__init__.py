"""Training: strategy 2 (an image tower retrained on seen classes), learned prompts (CoOp) and self-training,
their checkpoints, and the ``zsseg train`` command. What they train runs at inference from :mod:`zsseg.classify`
(``build_classifier`` reads a checkpoint back); nothing outside this package imports it.

>>> from zsseg.train import TrainConfig, train
>>> train(backend, load_dataset("voc20", root, "train"), "voc15.safetensors", TrainConfig(), seen_only=True)
>>> classifier = zsseg.classify.build_classifier(backend, classifier="voc15.safetensors")  # the ensemble
"""

from zsseg.train.config import TrainConfig, TrainingInterrupted, TrainSummary
from zsseg.train.trainer import train

__all__ = ["TrainConfig", "TrainSummary", "TrainingInterrupted", "train"]

"""What ``zsseg train`` is told: :class:`TrainConfig` (the one place its defaults live; the CLI's flags read them),
what it reports (:class:`TrainSummary`, :class:`TrainingInterrupted`), and the :class:`Relabeller` protocol by
which self-training turns a region bank's targets into pseudo-labelled ones."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol

import torch

from zsseg.classify.checkpoint import WHATS, PseudoRecord
from zsseg.classify.ensemble import DEFAULT_LAMBDA, check_lambda
from zsseg.errors import ZsSegError
from zsseg.models.base import VisionLanguageBackend
from zsseg.models.towers import TRAIN_MODES, TrainMode
from zsseg.train.bank import TARGET_MODES, RegionBank
from zsseg.train.regions import RegionOptions

What = Literal["strategy2", "prompts"]
#: (epochs, lr, batch size, weight decay) when not given
DEFAULTS: dict[str, tuple[int, float, int, float]] = {
    "strategy2": (30, 1e-3, 64, 1e-4),
    "prompts": (10, 2e-3, 64, 0.0),
}
FEATURE_MODES: tuple[str, ...] = ("auto", "dense", "crops")


@dataclass(frozen=True)
class TrainConfig:
    """Options of ``zsseg train``; None fields take the defaults of :data:`DEFAULTS` for ``what``.

    Attributes:
        what: ``"strategy2"`` (retrain the image encoder) or ``"prompts"`` (learn CoOp context vectors).
        train: strategy 2's trained part: ``"projection"``, ``"last"`` (last blocks + projection), ``"all"``.
        last_blocks: blocks trained by ``train="last"``.
        epochs, lr, batch_size, weight_decay: optimisation (AdamW, cosine decay to 0 over all steps).
        backbone_lr_mult: learning-rate factor of parameters copied from the pretrained network.
        seed: seed of the initialisation and of the shuffling.
        lambda_: ensemble exponent stored in the checkpoint (used by the ensemble at inference).
        templates: template set of the frozen class embeddings of strategy 2.
        n_ctx, suffix: learned prompts' context length and the text after the class name.
        logit_scale: inverse temperature of the cosine logits; None: the backend's (CLIP 100, ConSE 50).
        flip: also train on mirrored crops (or mirrored images, for dense features).
        regions: how training regions are cut (:class:`~zsseg.train.regions.RegionOptions`).
        features: where region features come from: ``"dense"`` (pooled from one pass over the whole image,
            as the pipeline's ``--regions dense`` computes them; needs ``train="projection"`` or prompts),
            ``"crops"`` (each region's masked crop, the paper's strategy 1), ``"auto"`` (dense where the
            backend has a dense encoder and the mode allows it).
        dense_size: long side of the dense pass (None: the backend's default, 448).
        targets: soft targets of proposals, ``"composition"`` or ``"iou"`` (:mod:`zsseg.train.bank`).
        holdout: fraction of the training images held out (seeded) for early stopping and calibration.
        patience: stop after this many epochs without a better held-out loss (None: never stop early).
        calibrate: fit strategy 2's temperature on the held-out regions (Guo et al. 2017).
        no_object_weight: loss weight of the "no object" column (MaskFormer's ``eos_coef``).
    """

    what: What = "strategy2"
    train: TrainMode = "projection"
    last_blocks: int = 1
    epochs: int | None = None
    lr: float | None = None
    batch_size: int | None = None
    weight_decay: float | None = None
    backbone_lr_mult: float = 0.1
    seed: int = 0
    lambda_: float = DEFAULT_LAMBDA
    templates: str = "vild"
    n_ctx: int = 16
    suffix: str = "."
    logit_scale: float | None = None
    flip: bool = True
    regions: RegionOptions = field(default_factory=RegionOptions)
    features: str = "auto"
    dense_size: int | None = None
    targets: str = "composition"
    holdout: float = 0.15
    patience: int | None = 5
    calibrate: bool = True
    no_object_weight: float = 1.0

    def resolved(self, backend: VisionLanguageBackend) -> TrainConfig:
        """This config with every None filled in, after checking the values.

        Raises:
            ZsSegError: a value out of range or a combination the backend cannot train.
        """
        self._check()
        from zsseg.models.pooling import DEFAULT_DENSE_SIZE

        features = self._features(backend)
        epochs, lr, batch_size, wd = DEFAULTS[self.what]
        out = replace(
            self,
            features=features,
            epochs=epochs if self.epochs is None else self.epochs,
            lr=lr if self.lr is None else self.lr,
            batch_size=batch_size if self.batch_size is None else self.batch_size,
            weight_decay=wd if self.weight_decay is None else self.weight_decay,
            logit_scale=backend.logit_scale if self.logit_scale is None else self.logit_scale,
            dense_size=(self.dense_size or DEFAULT_DENSE_SIZE) if features == "dense" else self.dense_size,
        )
        if out.epochs is None or out.epochs < 1 or out.batch_size is None or out.batch_size < 1:
            raise ZsSegError("--epochs and --batch-size must be at least 1")
        if out.lr is None or out.lr <= 0:
            raise ZsSegError("--lr must be positive, e.g. --lr 0.001")
        return out

    def _check(self) -> None:
        """Raise ZsSegError for a value no backend could train with."""
        for flag, value, allowed in (
            ("--what", self.what, WHATS),
            ("--train", self.train, TRAIN_MODES),
            ("--features", self.features, FEATURE_MODES),
            ("--targets", self.targets, TARGET_MODES),
        ):
            if value not in allowed:
                raise ZsSegError(f"unknown {flag} {value!r}: use one of {', '.join(allowed)}")
        check_lambda(self.lambda_)
        if not 0.0 <= self.holdout < 1.0:
            raise ZsSegError(f"--holdout must be in [0, 1), got {self.holdout}: e.g. --holdout 0.15")
        if self.patience is not None and self.patience < 1:
            raise ZsSegError(f"--patience must be at least 1, got {self.patience}")
        if self.no_object_weight < 0:
            raise ZsSegError(f"--no-object-weight must be >= 0, got {self.no_object_weight}")

    def _features(self, backend: VisionLanguageBackend) -> str:
        """``dense`` or ``crops``: what ``features`` (``auto`` allowed) stands for with ``backend``."""
        from zsseg.models import supports_dense

        dense_ok = self.what == "prompts" or self.train == "projection"
        if self.features == "dense" and not dense_ok:
            raise ZsSegError(
                f"--features dense trains a head on pooled features: use --train projection, not {self.train}"
            )
        if self.features == "dense" and not supports_dense(backend):
            raise ZsSegError(f"model {backend.name} has no dense region features: use --features crops")
        if self.features == "auto":
            return "dense" if dense_ok and supports_dense(backend) else "crops"
        return self.features

    def options(self) -> dict[str, Any]:
        """JSON-able options for the checkpoint."""
        d = asdict(self)
        d.pop("lambda_")
        d["regions"] = asdict(self.regions)
        return d


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training; ``epoch`` is the last epoch saved in ``path`` (0: none)."""

    def __init__(self, path: Path, epoch: int) -> None:
        super().__init__(f"interrupted; {path} keeps epoch {epoch}")
        self.path = path
        self.epoch = epoch


@dataclass
class TrainSummary:
    """What :func:`train` did: the checkpoint, epochs run, per-epoch history, region count and timings (s)."""

    path: Path
    epochs_run: int
    history: list[dict[str, float]]
    num_regions: int
    encode_seconds: float
    train_seconds: float
    best_epoch: int = 0
    temperature: float = 1.0


class Relabeller(Protocol):
    """Self-training's pseudo-labeller as :func:`~zsseg.train.trainer.train` uses it
    (:class:`~zsseg.train.self_training.PseudoLabeller`)."""

    @property
    def names(self) -> list[str]:
        """The classes it adds to the trained vocabulary."""
        ...

    @property
    def record(self) -> PseudoRecord:
        """What the checkpoint's metadata says of it (its source checkpoint, knobs and counts)."""
        ...

    def __call__(self, bank: RegionBank, seen: Sequence[str]) -> torch.Tensor:
        """Targets float32 (M, S + U + 1) over ``seen`` + :attr:`names` + "no object" for ``bank``."""
        ...

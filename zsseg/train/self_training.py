"""Self-training (the extension of Xu et al. that zsseg.baseline ships): pseudo-label the unseen classes on
unlabelled pixels with the ensemble's confident predictions, then retrain strategy 2 on the seen ground truth
plus those pseudo labels.

The unlabelled pixels are those of the training images that carry no trained label: with ``--seen-only``
the unseen classes' pixels are never read as themselves (:func:`zsseg.train.regions.trained_label` turns
them into "unlabelled"), so a proposal's "no object" share is exactly its unlabelled part. Round r:

1. the ensemble of round r - 1 (strategy 1 + the previous strategy 2, on the same pooled region features)
   classifies every training proposal over the seen *and* the named unseen classes;
2. among the proposals whose ensemble argmax is an unseen class u with probability >= ``threshold``, the most
   confident ``fraction`` of each class's (as ZS3Net and STRICT keep a top share per class: the ensemble is
   confident on far more unlabelled background than unseen objects) have their unlabelled share moved from
   "no object" to u (their seen pixels keep their classes);
3. strategy 2 is trained from scratch with the seen + unseen vocabulary on those targets (the next round's
   pseudo-labeller still treats only the ground-truth classes as "seen").

Each round is an ordinary ``zsseg train`` checkpoint (``NAME.round<r>.safetensors``, resumable), and the last
round is copied to ``NAME.safetensors``. At inference, the ensemble of a self-trained checkpoint weighs the
pseudo-labelled classes as seen (:func:`zsseg.classify.checkpoint.ensemble_seen`); the pseudo-labeller keeps
weighing them as unseen, as the measured variants did.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zsseg.classify.checkpoint import PseudoRecord, json_path, read_checkpoint
from zsseg.data.dataset import SegDataset
from zsseg.errors import ZsSegError
from zsseg.models.base import VisionLanguageBackend
from zsseg.proposals.base import MaskProposer
from zsseg.train.bank import PROPOSAL, RegionBank
from zsseg.train.checkpoint import optim_path
from zsseg.train.config import TrainConfig, TrainSummary
from zsseg.train.trainer import check_out, train

DEFAULT_THRESHOLD = 0.5
DEFAULT_FRACTION = 0.1


def check_knobs(threshold: float, fraction: float) -> None:
    """Raise ZsSegError unless ``threshold`` and ``fraction`` are both in (0, 1]."""
    if not 0.0 < threshold <= 1.0:
        raise ZsSegError(f"--threshold must be in (0, 1], got {threshold}: e.g. --threshold 0.5")
    if not 0.0 < fraction <= 1.0:
        raise ZsSegError(f"--pseudo-fraction must be in (0, 1], got {fraction}: e.g. --pseudo-fraction 0.1")


@dataclass
class PseudoLabeller:
    """Moves confident unseen predictions into the targets of a :class:`RegionBank` (see the module docstring).

    Args:
        checkpoint: the previous round's strategy-2 checkpoint (trained on dense features).
        backend: its backend.
        unseen: names of the unseen classes, appended to the trained vocabulary.
        threshold: smallest ensemble probability of a pseudo label, in (0, 1].
        fraction: share of each unseen class's candidates kept (the most confident), in (0, 1].
    """

    checkpoint: Path
    backend: VisionLanguageBackend
    unseen: Sequence[str]
    threshold: float = DEFAULT_THRESHOLD
    fraction: float = DEFAULT_FRACTION
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_knobs(self.threshold, self.fraction)

    @property
    def names(self) -> list[str]:
        """The classes added to the vocabulary."""
        return list(self.unseen)

    @property
    def record(self) -> PseudoRecord:
        """The checkpoint metadata's ``pseudo`` entry: the source checkpoint, the knobs, the counts per class."""
        return {"from": str(self.checkpoint), "threshold": self.threshold, "fraction": self.fraction,
                "regions": self.counts}  # fmt: skip

    @torch.no_grad()
    def probabilities(self, features: torch.Tensor, classes: Sequence[str]) -> np.ndarray:
        """The previous round's ensemble on pooled region features float32 (M, F) -> float32 (M, K)."""
        from zsseg.classify.checkpoint import load_strategy2
        from zsseg.classify.ensemble import EnsembleClassifier
        from zsseg.classify.region import RegionClassifier

        s2, meta = load_strategy2(self.checkpoint, self.backend)
        if s2.dense is None:
            raise ZsSegError(f"{self.checkpoint} was trained on crops: self-training needs --features dense")
        s1 = RegionClassifier(self.backend, templates=meta["options"]["templates"])
        ensemble = EnsembleClassifier(s1, s2, meta["seen"], float(meta["lambda"]))  # the ground-truth seen classes
        out = [ensemble.from_features(chunk, classes)["p"] for chunk in features.split(4096)]
        return np.concatenate(out) if out else np.zeros((0, len(classes)), np.float32)

    def __call__(self, bank: RegionBank, seen: Sequence[str]) -> torch.Tensor:
        """Targets float32 (M, S + U + 1) over ``seen`` + :attr:`names` + "no object" for ``bank`` (whose
        targets are (M, S + 1)); counts the pseudo-labelled regions per class in :attr:`counts`."""
        s, u = len(seen), len(self.unseen)
        if bank.targets.shape[1] != s + 1:
            raise ValueError(f"bank targets must be (M, {s + 1}), got {tuple(bank.targets.shape)}")
        probs = torch.from_numpy(self.probabilities(bank.features, [*seen, *self.unseen]))
        conf, best = probs.max(dim=1)
        candidate = (best >= s) & (conf >= self.threshold) & (bank.source == PROPOSAL)
        pick = torch.zeros_like(candidate)
        for k in range(s, s + u):
            rows = torch.nonzero(candidate & (best == k))[:, 0]
            keep = rows[conf[rows].argsort(descending=True)[: int(np.ceil(self.fraction * len(rows)))]]
            pick[keep] = True
        out = torch.zeros((len(bank), s + u + 1), dtype=torch.float32)
        out[:, :s], out[:, -1] = bank.targets[:, :s], bank.targets[:, -1]
        rows = torch.nonzero(pick)[:, 0]
        out[rows, best[rows]] += out[rows, -1]
        out[rows, -1] = 0.0
        self.counts = {name: int((best[pick] == s + j).sum()) for j, name in enumerate(self.unseen)}
        return out


def round_path(out: Path, r: int) -> Path:
    """``NAME.safetensors`` -> ``NAME.round<r>.safetensors``."""
    return out.with_name(f"{out.stem}.round{r}{out.suffix}")


def _finished(path: Path, epochs: int, patience: int | None) -> bool:
    """Whether the checkpoint at ``path`` completed its training (all epochs, or stopped early)."""
    if not path.is_file():
        return False
    meta = read_checkpoint(path, tensors=False)[1]
    done, best = int(meta["epoch"]), int(meta.get("best_epoch", 0))
    return done >= epochs or (patience is not None and best > 0 and done - best >= patience)


def _check_out(out: Path, rounds: int, resume: bool) -> None:
    """Raise ZsSegError unless ``out`` and its round checkpoints can be started (none exists) or resumed."""
    started = [p for p in (out, *(round_path(out, r) for r in range(rounds + 1))) if p.exists()]
    if resume and not started:
        raise ZsSegError(f"--resume: neither {out} nor its round checkpoints exist; drop --resume to start")
    if not resume:
        check_out(out, resume=False)
        if started:
            raise ZsSegError(f"{started[0]} exists: pass --resume to continue self-training, or choose another --out")


def self_train(
    backend: VisionLanguageBackend,
    dataset: SegDataset,
    out: str | Path,
    config: TrainConfig | None = None,
    *,
    rounds: int = 1,
    threshold: float = DEFAULT_THRESHOLD,
    fraction: float = DEFAULT_FRACTION,
    split: str = "",
    resume: bool = False,
    proposer: MaskProposer | None = None,
    limit: int | None = None,
    cache: bool = True,
    progress: bool = True,
) -> list[TrainSummary]:
    """Round 0 (strategy 2 on the seen classes), then ``rounds`` rounds of pseudo-labelling and retraining;
    the last round's checkpoint is copied to ``out``. Returns one :class:`TrainSummary` per round run.

    Raises:
        ZsSegError: a dataset without unseen classes, no proposer (nothing to pseudo-label), features that are
            not dense, bad ``rounds`` / ``threshold``, or an ``out`` that exists without ``resume``.
    """
    out = Path(out).expanduser()
    _check_out(out, rounds, resume)
    info = dataset.info
    if not info.unseen:
        raise ZsSegError(
            f"{info.name} defines no unseen classes to pseudo-label: self-training needs a zero-shot split, e.g. voc20"
        )
    if proposer is None:
        raise ZsSegError("self-training pseudo-labels proposals: pass --proposals (e.g. auto), not none")
    if rounds < 1:
        raise ZsSegError(f"--rounds must be at least 1, got {rounds}")
    check_knobs(threshold, fraction)
    cfg = replace(config or TrainConfig(), what="strategy2")
    done = cfg.resolved(backend)
    if done.features != "dense":
        raise ZsSegError("self-training reuses the pooled region features of every round: use --features dense")
    assert done.epochs is not None
    unseen = [info.prompt_names[i] for i in info.unseen_ids]
    summaries: list[TrainSummary] = []
    common: dict[str, Any] = {"split": split, "seen_only": True, "proposer": proposer, "limit": limit,
                              "cache": cache, "progress": progress}  # fmt: skip
    for r in range(rounds + 1):
        path = round_path(out, r)
        if _finished(path, done.epochs, done.patience):
            continue
        pseudo = None
        if r > 0:
            pseudo = PseudoLabeller(round_path(out, r - 1), backend, unseen, threshold, fraction)
        summaries.append(train(backend, dataset, path, cfg, resume=path.is_file(), pseudo=pseudo, **common))
        if pseudo is not None and progress:
            counts = ", ".join(f"{k} {v}" for k, v in pseudo.counts.items())
            print(f"zsseg: round {r}: pseudo-labelled regions: {counts}", file=sys.stderr)
    last = round_path(out, rounds)
    for src, dst in ((last, out), (json_path(last), json_path(out))):
        tmp = dst.with_name(dst.name + ".tmp")
        shutil.copyfile(src, tmp)
        tmp.replace(dst)
    optim_path(out).unlink(missing_ok=True)
    return summaries

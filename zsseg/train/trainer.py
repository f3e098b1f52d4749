"""Training of strategy 2 and of learned prompts on a dataset split, with checkpoints every epoch and resume.

Both trainings first encode every training region once with the frozen part of the network (see
:mod:`zsseg.train.regions`; cached on disk), then run epochs over the cached features: AdamW, cosine
learning-rate decay per step, cross-entropy on cosine logits. Shuffling uses a generator seeded by
(seed, epoch) and nothing in the trained parts is random at run time (batch-norm statistics are frozen,
no dropout), so a run resumed from epoch e ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from zsseg.classify.checkpoint import FORMAT, CheckpointMeta, read_checkpoint
from zsseg.data.dataset import SegDataset
from zsseg.errors import ZsSegError
from zsseg.models.base import VisionLanguageBackend
from zsseg.proposals.base import MaskProposer
from zsseg.train.bank import holdout_images
from zsseg.train.checkpoint import load_optimizer_state, save_checkpoint
from zsseg.train.collect import collect_bank
from zsseg.train.config import Relabeller, TrainConfig, TrainingInterrupted, TrainSummary
from zsseg.train.fit import batched_logits, fit_temperature, held_out_loss
from zsseg.train.fit import run_epoch as _run_epoch
from zsseg.train.objectives import Objective, Regions, make_objective

__all__ = ["TrainConfig", "TrainSummary", "TrainingInterrupted", "check_out", "train"]


def _log(msg: str) -> None:
    tqdm.write(msg, file=sys.stderr)


def check_out(out: Path, resume: bool) -> None:
    """Raise ZsSegError unless ``out`` can be written (new) or resumed (existing)."""
    if out.suffix != ".safetensors":
        raise ZsSegError(f"--out {out} must end in .safetensors (a JSON file is written beside it)")
    from zsseg.io import check_out_dir

    if out.is_dir():
        raise ZsSegError(f"--out {out} is a folder: name a checkpoint file, e.g. {out / 'model.safetensors'}")
    check_out_dir(out.parent, "--out")  # created when training starts, like segment's --out
    if out.exists() and not resume:
        raise ZsSegError(f"{out} exists: pass --resume to continue training it, or choose another --out")
    if resume and not out.exists():
        raise ZsSegError(f"--resume: {out} does not exist; drop --resume to start a new training")


def _vocabulary(dataset: SegDataset, seen_only: bool) -> tuple[list[int], list[str], list[str] | None]:
    info = dataset.info
    if seen_only and not info.unseen:
        raise ZsSegError(f"{info.name} defines no unseen classes: drop --seen-only (e.g. use voc20)")
    ids = [i for i in range(info.num_classes) if not (seen_only and i in info.unseen_ids)]
    if not ids:
        raise ZsSegError(f"every class of {info.name} is unseen: no seen class to train on; drop --seen-only")
    names = [info.prompt_names[i] for i in ids]
    return ids, names, (names if seen_only else None)


def _resume(out: Path, meta: CheckpointMeta) -> dict[str, torch.Tensor]:
    """Check that checkpoint ``out`` was made with the options in ``meta``; take its epoch and history."""
    tensors, old = read_checkpoint(out)
    if (old["seen"] is None) != (meta["seen"] is None):
        flag = "with" if old["seen"] is not None else "without"
        raise ZsSegError(f"--resume: {out} was trained {flag} --seen-only: use the same options")
    for name in ("what", "backend", "dataset", "split", "vocabulary"):
        if old[name] != meta[name]:
            was = f"{len(old[name])} classes" if name == "vocabulary" else repr(old[name])
            raise ZsSegError(f"--resume: {out} was trained with {name} {was}: use the same options")
    changed = [k for k, v in meta["options"].items() if k != "epochs" and old["options"].get(k) != v]
    if changed:
        raise ZsSegError(f"--resume: {out} was trained with other {', '.join(changed)}: use the same options")
    meta["epoch"], meta["history"] = int(old["epoch"]), list(old["history"])
    return tensors


def _freeze(backend: VisionLanguageBackend) -> None:
    """Stop gradients into the backend's own weights (copies trained by strategy 2 are re-enabled)."""
    for module in (backend, getattr(backend, "model", None)):
        if isinstance(module, torch.nn.Module):
            module.requires_grad_(False)


def train(
    backend: VisionLanguageBackend,
    dataset: SegDataset,
    out: str | Path,
    config: TrainConfig | None = None,
    *,
    split: str = "",
    seen_only: bool = False,
    resume: bool = False,
    proposer: MaskProposer | None = None,
    limit: int | None = None,
    cache: bool = True,
    progress: bool = True,
    pseudo: Relabeller | None = None,
) -> TrainSummary:
    """Train strategy 2 or learned prompts on ``dataset`` and write checkpoint ``out`` after every epoch.

    Args:
        backend: the frozen vision-language backend (its weights get ``requires_grad=False``).
        dataset: the training split.
        split: its name, recorded in the checkpoint (``train``).
        out: checkpoint path ``NAME.safetensors`` (``NAME.json`` and ``NAME.optim.safetensors`` beside it).
        config: what and how to train (None: :class:`TrainConfig`'s defaults).
        seen_only: train on the seen classes only (the dataset's unseen classes are never shown) and record
            them as "seen" for the ensemble.
        resume: continue the checkpoint ``out`` (same options) up to ``config.epochs``.
        proposer: also train on every proposal, with soft targets from the labels (``config.targets``).
        limit: use only the first ``limit`` images.
        cache: cache the encoded regions on disk (``$ZSSEG_CACHE/train``).
        progress: progress bars and per-epoch lines on stderr.
        pseudo: self-training (:mod:`zsseg.train.self_training`): adds its classes to the vocabulary and
            turns the regions' targets into pseudo-labelled ones.

    Raises:
        ZsSegError: bad options, a checkpoint that exists (without ``resume``) or does not match.
        TrainingInterrupted: Ctrl-C; the checkpoint keeps the last completed epoch.
    """
    cfg = (config or TrainConfig()).resolved(backend)
    out = Path(out).expanduser()
    check_out(out, resume)
    ids, vocabulary, seen = _vocabulary(dataset, seen_only)
    trained_names = list(vocabulary)
    if pseudo is not None:  # self-training: the unseen classes join strategy 2's vocabulary
        vocabulary = [*vocabulary, *pseudo.names]
    meta: CheckpointMeta = {
        "format": FORMAT, "what": cfg.what, "backend": backend.name, "vocabulary": vocabulary, "seen": seen,
        "dataset": dataset.info.name, "split": split, "lambda": cfg.lambda_,
        "options": cfg.options(), "epoch": 0, "history": [], "best_epoch": 0, "temperature": 1.0,
    }  # fmt: skip
    tensors = _resume(out, meta) if resume else {}
    _freeze(backend)
    torch.manual_seed(cfg.seed)
    run = _Run(out, cfg, meta, make_objective(cfg, backend, vocabulary), progress)
    run.restore(tensors, resume)

    n_images = len(dataset.samples) if limit is None else min(limit, len(dataset.samples))
    t0 = time.perf_counter()
    try:
        bank = collect_bank(cfg, run.objective.tower, dataset, ids, proposer, n_images, split, cache, progress)
    except KeyboardInterrupt:
        raise TrainingInterrupted(out, int(meta["epoch"])) from None
    encode_seconds = time.perf_counter() - t0
    targets = bank.targets
    if pseudo is not None:
        targets = pseudo(bank, trained_names)
        meta["pseudo"] = pseudo.record
    weights = torch.ones(targets.shape[1])
    weights[-1] = cfg.no_object_weight
    held = holdout_images(n_images, cfg.holdout, cfg.seed)[bank.image]
    regions = run.objective.prepare(Regions(bank.features, targets, held, weights))
    run.start(regions, resume)
    if progress:
        n_held = int(regions.held.sum())
        _log(
            f"zsseg: {len(regions.held) - n_held} training regions + {n_held} held out ({n_images} images, "
            f"{len(vocabulary)} classes, {cfg.features} features), encoded in {encode_seconds:.1f} s"
        )
    t0, start = time.perf_counter(), int(meta["epoch"])
    run.epochs()
    run.finish()
    return TrainSummary(
        out, max(0, int(meta["epoch"]) - start), meta["history"], len(regions.targets), encode_seconds,
        time.perf_counter() - t0, int(meta["best_epoch"]), float(meta["temperature"]),
    )  # fmt: skip


@dataclass
class _Run:
    """One training's state between its epochs: the objective, the optimiser, the last and best module states
    and the checkpoint's metadata (``meta``, updated in place and saved after every epoch)."""

    out: Path
    cfg: TrainConfig
    meta: CheckpointMeta
    objective: Objective
    progress: bool

    def restore(self, tensors: dict[str, torch.Tensor], resume: bool) -> None:
        """Take the last and best states from a checkpoint's ``tensors`` (empty for a new run)."""
        prefix = self.objective.prefix
        self.best = {k.removeprefix("best." + prefix): v for k, v in tensors.items() if k.startswith("best." + prefix)}
        self.last = {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}
        if resume:
            self.objective.module.load_state_dict(self.last)

    def start(self, regions: Regions, resume: bool) -> None:
        """Split the regions into trained and held-out ones and make the optimiser (its state where resumed)."""
        held = regions.held
        self.train_x, self.train_t = regions.features[~held], regions.targets[~held]
        self.hold_x, self.hold_t = regions.features[held], regions.targets[held]
        self.weights = regions.weights
        if len(self.train_t) == 0:
            raise ZsSegError("no training region left after the held-out split: lower --holdout or add images")
        cfg = self.cfg
        assert cfg.lr is not None
        self.optimizer = torch.optim.AdamW(
            self.objective.param_groups(cfg), lr=cfg.lr, weight_decay=cfg.weight_decay or 0.0
        )
        for group in self.optimizer.param_groups:
            group["base_lr"] = group["lr"]
        epoch = self.meta["epoch"]
        if resume and epoch and not load_optimizer_state(self.out, self.optimizer, epoch):
            _log(f"zsseg: no optimizer state for epoch {epoch} beside {self.out}; continuing with a fresh one")

    def epochs(self) -> None:
        """Run the epochs left, saving the checkpoint after each; stop early after ``cfg.patience`` epochs
        without a better held-out loss."""
        cfg, meta = self.cfg, self.meta
        assert cfg.epochs is not None
        best_loss = min((h.get("held_out_loss", float("inf")) for h in meta["history"]), default=float("inf"))
        for epoch in range(int(meta["epoch"]), cfg.epochs):
            if cfg.patience is not None and meta["best_epoch"] and epoch - meta["best_epoch"] >= cfg.patience:
                break  # stopped early (also when resuming a run that had)
            t_epoch = time.perf_counter()
            try:
                loss, acc = _run_epoch(
                    self.objective.logits, self.optimizer, self.train_x, self.train_t, cfg, epoch, self.progress,
                    self.weights,
                )  # fmt: skip
            except KeyboardInterrupt:
                raise TrainingInterrupted(self.out, epoch) from None
            hold_loss = self._held_out_loss()
            self.last = {k: v.detach().clone() for k, v in self.objective.module.state_dict().items()}
            if not len(self.hold_t) or hold_loss < best_loss:
                best_loss, self.best, meta["best_epoch"] = hold_loss, self.last, epoch + 1
            seconds = time.perf_counter() - t_epoch
            meta["epoch"] = epoch + 1
            meta["history"].append(
                {"epoch": epoch + 1, "loss": loss, "accuracy": acc, "held_out_loss": hold_loss, "seconds": seconds}
            )
            self._save(interrupted_epoch=epoch + 1)
            if self.progress:
                _log(
                    f"epoch {epoch + 1}/{cfg.epochs}: loss {loss:.4f}, accuracy {acc:.1%}, held-out loss "
                    f"{hold_loss:.4f}, {seconds:.1f} s -> {self.out}"
                )

    def finish(self) -> None:
        """Load the best epoch's state and, where the objective calibrates, fit its temperature on the
        held-out regions and save it."""
        if self.best:
            self.objective.module.load_state_dict(self.best)
        if self.objective.calibrates and len(self.hold_t):
            self.meta["temperature"] = fit_temperature(batched_logits(self.objective.logits, self.hold_x), self.hold_t)
            if self.progress:
                _log(
                    f"zsseg: best epoch {self.meta['best_epoch']}, temperature {self.meta['temperature']:.3f} "
                    "(held-out regions)"
                )
            save_checkpoint(self.out, self._tensors(), self.meta, None)

    def _held_out_loss(self) -> float:
        if not len(self.hold_t):
            return float("nan")
        return held_out_loss(self.objective.logits, self.hold_x, self.hold_t, self.weights)

    def _save(self, interrupted_epoch: int) -> None:
        try:
            save_checkpoint(self.out, self._tensors(), self.meta, self.optimizer)
        except KeyboardInterrupt:
            raise TrainingInterrupted(self.out, interrupted_epoch) from None

    def _tensors(self) -> dict[str, torch.Tensor]:
        """Checkpoint tensors: the last epoch's state (for ``--resume``) and ``best.``, the best held-out epoch's
        (what inference loads)."""
        prefix = self.objective.prefix
        return {
            **{prefix + k: v for k, v in self.last.items()},
            **{f"best.{prefix}{k}": v for k, v in self.best.items()},
        }

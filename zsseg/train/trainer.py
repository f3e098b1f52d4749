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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import torch
from tqdm import tqdm

from zsseg.classify.checkpoint import FORMAT, WHATS, read_checkpoint
from zsseg.classify.ensemble import DEFAULT_LAMBDA
from zsseg.classify.region import RegionClassifier
from zsseg.data.dataset import SegDataset
from zsseg.errors import ZsSegError
from zsseg.models.base import VisionLanguageBackend
from zsseg.models.towers import TRAIN_MODES, TrainMode
from zsseg.proposals.base import MaskProposer
from zsseg.train.bank import TARGET_MODES, holdout_images
from zsseg.train.checkpoint import load_optimizer_state, save_checkpoint
from zsseg.train.collect import collect_bank
from zsseg.train.fit import batched_logits, fit_temperature, held_out_loss
from zsseg.train.fit import run_epoch as _run_epoch
from zsseg.train.regions import RegionOptions

if TYPE_CHECKING:
    from zsseg.train.self_training import PseudoLabeller

What = Literal["strategy2", "prompts"]
# (epochs, lr, batch size, weight decay) when not given
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
        """This config with every None filled in, after checking the values."""
        if self.what not in WHATS:
            raise ZsSegError(f"unknown --what {self.what!r}: use one of {', '.join(WHATS)}")
        if self.train not in TRAIN_MODES:
            raise ZsSegError(f"unknown --train {self.train!r}: use one of {', '.join(TRAIN_MODES)}")
        if not 0.0 <= self.lambda_ <= 1.0:
            raise ZsSegError(f"--lambda must be in [0, 1], got {self.lambda_}: e.g. --lambda 0.8")
        if self.features not in FEATURE_MODES:
            raise ZsSegError(f"unknown --features {self.features!r}: use one of {', '.join(FEATURE_MODES)}")
        if self.targets not in TARGET_MODES:
            raise ZsSegError(f"unknown --targets {self.targets!r}: use one of {', '.join(TARGET_MODES)}")
        from zsseg.models import supports_dense
        from zsseg.models.pooling import DEFAULT_DENSE_SIZE

        dense_ok = self.what == "prompts" or self.train == "projection"
        if self.features == "dense" and not dense_ok:
            raise ZsSegError(
                f"--features dense trains a head on pooled features: use --train projection, not {self.train}"
            )
        if self.features == "dense" and not supports_dense(backend):
            raise ZsSegError(f"model {backend.name} has no dense region features: use --features crops")
        features = self.features
        if features == "auto":
            features = "dense" if dense_ok and supports_dense(backend) else "crops"
        if not 0.0 <= self.holdout < 1.0:
            raise ZsSegError(f"--holdout must be in [0, 1), got {self.holdout}: e.g. --holdout 0.15")
        if self.patience is not None and self.patience < 1:
            raise ZsSegError(f"--patience must be at least 1, got {self.patience}")
        if self.no_object_weight < 0:
            raise ZsSegError(f"--no-object-weight must be >= 0, got {self.no_object_weight}")
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


def _resume(out: Path, meta: dict[str, Any]) -> dict[str, torch.Tensor]:
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
    config: TrainConfig = TrainConfig(),
    *,
    split: str = "",
    seen_only: bool = False,
    resume: bool = False,
    proposer: MaskProposer | None = None,
    limit: int | None = None,
    cache: bool = True,
    progress: bool = True,
    pseudo: PseudoLabeller | None = None,
) -> TrainSummary:
    """Train strategy 2 or learned prompts on ``dataset`` and write checkpoint ``out`` after every epoch.

    Args:
        backend: the frozen vision-language backend (its weights get ``requires_grad=False``).
        dataset: the training split.
        split: its name, recorded in the checkpoint (``train``).
        out: checkpoint path ``NAME.safetensors`` (``NAME.json`` and ``NAME.optim.safetensors`` beside it).
        config: what and how to train.
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
    from zsseg.classify.strategy2 import build_strategy2
    from zsseg.models import build_prompt_learner, build_tower

    cfg = config.resolved(backend)
    assert cfg.epochs is not None and cfg.lr is not None and cfg.logit_scale is not None
    out = Path(out).expanduser()
    check_out(out, resume)
    ids, vocabulary, seen = _vocabulary(dataset, seen_only)
    trained_names = list(vocabulary)
    if pseudo is not None:  # self-training: the unseen classes join strategy 2's vocabulary
        vocabulary = [*vocabulary, *pseudo.names]
    meta: dict[str, Any] = {
        "format": FORMAT, "what": cfg.what, "backend": backend.name, "vocabulary": vocabulary, "seen": seen,
        "dataset": dataset.info.name, "split": split, "lambda": cfg.lambda_,
        "options": cfg.options(), "epoch": 0, "history": [], "best_epoch": 0, "temperature": 1.0,
    }  # fmt: skip
    tensors = _resume(out, meta) if resume else {}
    _freeze(backend)
    torch.manual_seed(cfg.seed)
    device = backend.device

    if cfg.what == "strategy2":
        model = build_strategy2(backend, cfg.train, cfg.last_blocks, cfg.logit_scale).eval()
        tower = model.tower
        prefix, module = "model.", cast(torch.nn.Module, model)
        groups = model.param_groups(cfg.lr, cfg.backbone_lr_mult)
    else:
        learner = build_prompt_learner(backend, cfg.n_ctx, cfg.suffix)
        tower = build_tower(backend, "projection")
        prefix, module = "prompt.", learner
        groups = [{"params": [learner.ctx], "lr": cfg.lr}]
    best_state = {k.removeprefix("best." + prefix): v for k, v in tensors.items() if k.startswith("best." + prefix)}
    last_state = {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}
    if resume:
        module.load_state_dict(last_state)

    n_images = len(dataset.samples) if limit is None else min(limit, len(dataset.samples))
    t0 = time.perf_counter()
    try:
        bank = collect_bank(cfg, tower, dataset, ids, proposer, n_images, split, cache, progress)
    except KeyboardInterrupt:
        raise TrainingInterrupted(out, int(meta["epoch"])) from None
    encode_seconds = time.perf_counter() - t0
    held = holdout_images(n_images, cfg.holdout, cfg.seed)[bank.image]
    feats, targets = bank.features, bank.targets
    if pseudo is not None:
        targets = pseudo(bank, trained_names)
        meta["pseudo"] = {
            "from": str(pseudo.checkpoint), "threshold": pseudo.threshold, "fraction": pseudo.fraction,
            "regions": pseudo.counts,
        }  # fmt: skip
    weights: torch.Tensor | None = torch.ones(targets.shape[1])
    assert weights is not None
    weights[-1] = cfg.no_object_weight

    if cfg.what == "strategy2":
        text = RegionClassifier(backend, templates=cfg.templates).text_embeddings(vocabulary).clone().to(device)

        def logits_of(x: torch.Tensor) -> torch.Tensor:
            return model.logits(x.to(device), text)
    else:  # prompts: regions that are mostly one trained class, embedded by the frozen network
        keep = targets[:, :-1].sum(dim=1) >= 0.5
        with torch.no_grad():
            feats = torch.cat([tower.frozen_embed(c.to(device).float()).cpu() for c in feats[keep].split(256)])
        targets = targets[keep][:, :-1]
        targets = targets / targets.sum(dim=1, keepdim=True)
        held, weights = held[keep], None
        scale = cfg.logit_scale

        def logits_of(x: torch.Tensor) -> torch.Tensor:
            return scale * x.to(device) @ learner(vocabulary).T

    train_x, train_t, hold_x, hold_t = feats[~held], targets[~held], feats[held], targets[held]
    if len(train_t) == 0:
        raise ZsSegError("no training region left after the held-out split: lower --holdout or add images")
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay or 0.0)
    for group in optimizer.param_groups:
        group["base_lr"] = group["lr"]
    if resume and meta["epoch"] and not load_optimizer_state(out, optimizer, meta["epoch"]):
        _log(f"zsseg: no optimizer state for epoch {meta['epoch']} beside {out}; continuing with a fresh one")
    if progress:
        _log(
            f"zsseg: {len(train_t)} training regions + {len(hold_t)} held out ({n_images} images, "
            f"{len(vocabulary)} classes, {cfg.features} features), encoded in {encode_seconds:.1f} s"
        )
    t0 = time.perf_counter()
    start = int(meta["epoch"])
    best_loss = min((h.get("held_out_loss", float("inf")) for h in meta["history"]), default=float("inf"))
    for epoch in range(start, cfg.epochs):
        if cfg.patience is not None and meta["best_epoch"] and epoch - meta["best_epoch"] >= cfg.patience:
            break  # stopped early (also when resuming a run that had)
        t_epoch = time.perf_counter()
        try:
            loss, acc = _run_epoch(logits_of, optimizer, train_x, train_t, cfg, epoch, progress, weights)
        except KeyboardInterrupt:
            raise TrainingInterrupted(out, epoch) from None
        hold_loss = held_out_loss(logits_of, hold_x, hold_t, weights) if len(hold_t) else float("nan")
        last_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
        if not len(hold_t) or hold_loss < best_loss:
            best_loss, best_state, meta["best_epoch"] = hold_loss, last_state, epoch + 1
        seconds = time.perf_counter() - t_epoch
        meta["epoch"] = epoch + 1
        meta["history"].append(
            {"epoch": epoch + 1, "loss": loss, "accuracy": acc, "held_out_loss": hold_loss, "seconds": seconds}
        )
        try:
            save_checkpoint(out, _tensors(prefix, last_state, best_state), meta, optimizer)
        except KeyboardInterrupt:
            raise TrainingInterrupted(out, epoch + 1) from None
        if progress:
            _log(
                f"epoch {epoch + 1}/{cfg.epochs}: loss {loss:.4f}, accuracy {acc:.1%}, held-out loss "
                f"{hold_loss:.4f}, {seconds:.1f} s -> {out}"
            )
    if best_state:
        module.load_state_dict(best_state)
    if cfg.what == "strategy2" and cfg.calibrate and len(hold_t):
        meta["temperature"] = fit_temperature(batched_logits(logits_of, hold_x), hold_t)
        if progress:
            _log(f"zsseg: best epoch {meta['best_epoch']}, temperature {meta['temperature']:.3f} (held-out regions)")
        save_checkpoint(out, _tensors(prefix, last_state, best_state), meta, None)
    return TrainSummary(
        out, max(0, int(meta["epoch"]) - start), meta["history"], len(train_t) + len(hold_t), encode_seconds,
        time.perf_counter() - t0, int(meta["best_epoch"]), float(meta["temperature"]),
    )  # fmt: skip


def _tensors(prefix: str, state: dict[str, torch.Tensor], best: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Checkpoint tensors: the last epoch's state (for ``--resume``) and ``best.``, the best held-out epoch's
    (what inference loads)."""
    return {**{prefix + k: v for k, v in state.items()}, **{f"best.{prefix}{k}": v for k, v in best.items()}}

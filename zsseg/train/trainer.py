"""Training of strategy 2 and of learned prompts on a dataset split, with checkpoints every epoch and resume.

Both trainings first encode every training region once with the frozen part of the network (see
:mod:`zsseg.train.regions`; cached on disk), then run epochs over the cached features: AdamW, cosine
learning-rate decay per step, cross-entropy on cosine logits. Shuffling uses a generator seeded by
(seed, epoch) and nothing in the trained parts is random at run time (batch-norm statistics are frozen,
no dropout), so a run resumed from epoch e ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, cast

import torch
import torch.nn.functional as F
from tqdm import tqdm

from zsseg.classify.backends.base import VisionLanguageBackend
from zsseg.classify.region import RegionClassifier
from zsseg.data.dataset import SegDataset
from zsseg.errors import ZsSegError
from zsseg.proposals.base import MaskProposer
from zsseg.train.checkpoint import FORMAT, WHATS, load_optimizer_state, read_checkpoint, save_checkpoint
from zsseg.train.ensemble import DEFAULT_LAMBDA
from zsseg.train.regions import (
    NO_OBJECT,
    RegionOptions,
    encode_regions,
    features_cache_path,
    iter_regions,
    load_or_encode,
)
from zsseg.train.towers import TRAIN_MODES, TrainMode

What = Literal["strategy2", "prompts"]
# (epochs, lr, batch size, weight decay) when not given
DEFAULTS: dict[str, tuple[int, float, int, float]] = {
    "strategy2": (30, 1e-3, 64, 1e-4),
    "prompts": (10, 2e-3, 64, 0.0),
}
CACHE_VERSION = 1


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
        flip: also train on mirrored crops.
        regions: how training regions are cut (:class:`~zsseg.train.regions.RegionOptions`).
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

    def resolved(self, backend: VisionLanguageBackend) -> TrainConfig:
        """This config with every None filled in, after checking the values."""
        if self.what not in WHATS:
            raise ZsSegError(f"unknown --what {self.what!r}: use one of {', '.join(WHATS)}")
        if self.train not in TRAIN_MODES:
            raise ZsSegError(f"unknown --train {self.train!r}: use one of {', '.join(TRAIN_MODES)}")
        if not 0.0 <= self.lambda_ <= 1.0:
            raise ZsSegError(f"--lambda must be in [0, 1], got {self.lambda_}: e.g. --lambda 0.8")
        epochs, lr, batch_size, wd = DEFAULTS[self.what]
        out = replace(
            self,
            epochs=epochs if self.epochs is None else self.epochs,
            lr=lr if self.lr is None else self.lr,
            batch_size=batch_size if self.batch_size is None else self.batch_size,
            weight_decay=wd if self.weight_decay is None else self.weight_decay,
            logit_scale=backend.logit_scale if self.logit_scale is None else self.logit_scale,
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


def _run_epoch(
    step: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    feats: torch.Tensor,
    labels: torch.Tensor,
    cfg: TrainConfig,
    epoch: int,
    progress: bool,
) -> tuple[float, float]:
    """One epoch; ``step(x, y)`` returns logits (B, C). Returns (mean loss, accuracy)."""
    assert cfg.batch_size is not None and cfg.epochs is not None
    n = len(labels)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch))
    per_epoch = math.ceil(n / cfg.batch_size)
    total_steps = per_epoch * cfg.epochs
    loss_sum, correct, seen = 0.0, 0, 0
    bar = tqdm(
        range(per_epoch),
        desc=f"epoch {epoch + 1}/{cfg.epochs}",
        unit="step",
        disable=not progress,
        dynamic_ncols=True,
        file=sys.stderr,
        leave=False,
    )
    for i in bar:
        factor = 0.5 * (1.0 + math.cos(math.pi * (epoch * per_epoch + i) / total_steps))
        for group in optimizer.param_groups:
            group["lr"] = group["base_lr"] * factor
        idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
        y = labels[idx]
        logits = step(feats[idx], y)
        loss = F.cross_entropy(logits, y.to(logits.device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += float(loss.detach()) * len(idx)
        correct += int((logits.argmax(dim=-1).cpu() == y).sum())
        seen += len(idx)
        bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.1%}")
    bar.close()
    return loss_sum / max(seen, 1), correct / max(seen, 1)


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
        proposer: also train on proposals matched to the ground truth (and "no object" ones).
        limit: use only the first ``limit`` images.
        cache: cache the encoded regions on disk (``$ZSSEG_CACHE/train``).
        progress: progress bars and per-epoch lines on stderr.

    Raises:
        ZsSegError: bad options, a checkpoint that exists (without ``resume``) or does not match.
        TrainingInterrupted: Ctrl-C; the checkpoint keeps the last completed epoch.
    """
    from zsseg.train.prompts import build_prompt_learner
    from zsseg.train.strategy2 import build_strategy2
    from zsseg.train.towers import build_tower

    cfg = config.resolved(backend)
    assert cfg.epochs is not None and cfg.lr is not None and cfg.logit_scale is not None
    out = Path(out).expanduser()
    check_out(out, resume)
    ids, vocabulary, seen = _vocabulary(dataset, seen_only)
    meta: dict[str, Any] = {
        "format": FORMAT, "what": cfg.what, "backend": backend.name, "vocabulary": vocabulary, "seen": seen,
        "dataset": dataset.info.name, "split": split, "lambda": cfg.lambda_,
        "options": cfg.options(), "epoch": 0, "history": [],
    }  # fmt: skip
    tensors = _resume(out, meta) if resume else {}
    _freeze(backend)
    torch.manual_seed(cfg.seed)
    device = backend.device

    if cfg.what == "strategy2":
        model = build_strategy2(backend, cfg.train, cfg.last_blocks, cfg.logit_scale).eval()
        tower = model.tower
        encode, kind = tower.trunk, tower.trunk_kind
        prefix, module = "model.", cast(torch.nn.Module, model)
        groups = model.param_groups(cfg.lr, cfg.backbone_lr_mult)
    else:
        learner = build_prompt_learner(backend, cfg.n_ctx, cfg.suffix)
        tower = build_tower(backend, "projection")
        encode, kind = tower.pool, "pool"
        prefix, module = "prompt.", learner
        groups = [{"params": [learner.ctx], "lr": cfg.lr}]
    if resume:
        module.load_state_dict({k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)})

    n_images = len(dataset.samples) if limit is None else min(limit, len(dataset.samples))
    key: list[object] = [
        CACHE_VERSION, backend.name, _weights_digest(tower), kind, dataset.info.name, split,
        [s.id for s in dataset.samples[:n_images]], ids, asdict(cfg.regions), cfg.flip,
        getattr(proposer, "name", None) if proposer is not None else None, backend.input_size,
    ]  # fmt: skip
    cache_file = features_cache_path(key) if cache and kind != "pixels" and proposer is None else None
    t0 = time.perf_counter()
    store = torch.float32 if kind == "pool" else torch.float16
    crop = (backend.input_size, backend.mean, backend.std)
    try:
        feats, labels = load_or_encode(
            cache_file,
            lambda: encode_regions(
                iter_regions(dataset, ids, cfg.regions, proposer, n_images), encode, crop, total=n_images,
                flip=cfg.flip, dtype=store, progress=progress,
            ),
        )  # fmt: skip
    except KeyboardInterrupt:
        raise TrainingInterrupted(out, int(meta["epoch"])) from None
    encode_seconds = time.perf_counter() - t0
    lut = torch.full((max(ids) + 2,), -100, dtype=torch.int64)
    lut[torch.tensor(ids)] = torch.arange(len(ids))
    lut[NO_OBJECT] = len(ids)  # index -1: the no-object class, last
    labels = lut[labels]

    if cfg.what == "strategy2":
        text = RegionClassifier(backend, templates=cfg.templates).text_embeddings(vocabulary).clone().to(device)

        def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return model.logits(x.to(device), text)
    else:
        keep = labels < len(ids)
        with torch.no_grad():
            feats = torch.cat([tower.frozen_embed(c.to(device).float()).cpu() for c in feats[keep].split(256)])
        labels = labels[keep]
        scale = cfg.logit_scale

        def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return scale * x.to(device) @ learner(vocabulary).T

    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay or 0.0)
    for group in optimizer.param_groups:
        group["base_lr"] = group["lr"]
    if resume and meta["epoch"] and not load_optimizer_state(out, optimizer, meta["epoch"]):
        _log(f"zsseg: no optimizer state for epoch {meta['epoch']} beside {out}; continuing with a fresh one")
    if progress:
        _log(
            f"zsseg: {len(labels)} training regions ({n_images} images, {len(vocabulary)} classes), "
            f"encoded in {encode_seconds:.1f} s"
        )
    t0 = time.perf_counter()
    start = int(meta["epoch"])
    for epoch in range(start, cfg.epochs):
        t_epoch = time.perf_counter()
        try:
            loss, acc = _run_epoch(step, optimizer, feats, labels, cfg, epoch, progress)
        except KeyboardInterrupt:
            raise TrainingInterrupted(out, epoch) from None
        seconds = time.perf_counter() - t_epoch
        meta["epoch"] = epoch + 1
        meta["history"].append({"epoch": epoch + 1, "loss": loss, "accuracy": acc, "seconds": seconds})
        state = {prefix + k: v for k, v in module.state_dict().items()}
        try:
            save_checkpoint(out, state, meta, optimizer)
        except KeyboardInterrupt:
            raise TrainingInterrupted(out, epoch + 1) from None
        if progress:
            _log(f"epoch {epoch + 1}/{cfg.epochs}: loss {loss:.4f}, accuracy {acc:.1%}, {seconds:.1f} s -> {out}")
    return TrainSummary(out, cfg.epochs - start, meta["history"], len(labels), encode_seconds, time.perf_counter() - t0)


def _weights_digest(tower: torch.nn.Module) -> str:
    """Cheap fingerprint of the frozen network (so a cache never serves another model's features)."""
    import hashlib

    h = hashlib.sha256()
    frozen = tower.backend  # type: ignore[attr-defined]
    modules = [m for m in (frozen, getattr(frozen, "model", None)) if isinstance(m, torch.nn.Module)]
    for m in modules:
        for p in list(m.parameters())[:6] + list(m.parameters())[-6:]:
            h.update(p.detach().float().flatten()[:512].cpu().numpy().tobytes())
    return h.hexdigest()[:16]

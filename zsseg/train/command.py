"""``zsseg train``: train strategy 2 or learned prompts on a dataset split (discovered by :mod:`zsseg.cli`).

Example (offline backend, VOC's 15 seen classes)::

    zsseg train --dataset voc20 --root ../shared/data --split train --seen-only --what strategy2 \\
        --model conse:efficientnet-lite0 --out voc15_s2.safetensors
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zsseg.train.config import TrainConfig


def register(subparsers: Any) -> None:
    """Add the ``train`` sub-command to ``zsseg``'s sub-parsers; every default is :class:`TrainConfig`'s."""
    from zsseg.train.config import TrainConfig

    p = subparsers.add_parser(
        "train",
        help="train strategy 2 (image encoder on seen classes) or learned prompts; checkpoint every epoch",
        description="Train the strategy-2 region classifier or CoOp learned prompts on a dataset split. "
        "Writes OUT (.safetensors) and OUT's .json after every epoch; Ctrl-C keeps the last completed epoch.",
    )
    d = TrainConfig()  # the one place the defaults live
    _run_flags(p)
    _optimisation_flags(p, d)
    _region_flags(p, d)
    _self_training_flags(p)
    p.set_defaults(run=run)


def _run_flags(p: argparse.ArgumentParser) -> None:
    """What to train on, what with, and where to."""
    from zsseg.data import DATASET_NAMES
    from zsseg.models import MODEL_HELP
    from zsseg.validate import path_arg

    p.add_argument("--dataset", required=True, choices=DATASET_NAMES, help="dataset name, e.g. voc20")
    p.add_argument("--root", required=True, type=Path, help="folder holding the dataset's top folder")
    p.add_argument("--split", default="train", help="split to train on (default: train)")
    p.add_argument("--seen-only", action="store_true", help="train on the seen classes only (zero-shot split)")
    p.add_argument(
        "--what",
        default="strategy2",
        choices=("strategy2", "prompts", "self-training"),
        help="what to train; self-training = strategy 2, then --rounds of pseudo-labelling the unseen classes",
    )
    p.add_argument("--model", default="auto", help=f"vision-language backend: {MODEL_HELP} (default: auto)")
    p.add_argument("--out", required=True, type=path_arg, help="checkpoint file to write, NAME.safetensors")
    p.add_argument("--resume", action="store_true", help="continue training OUT up to --epochs")
    p.add_argument("--device", default="auto", help="auto (CUDA if present, else CPU), cpu, cuda, cuda:N or mps")


def _optimisation_flags(p: argparse.ArgumentParser, d: TrainConfig) -> None:
    """AdamW, the trained part, the ensemble's lambda, the prompts."""
    from zsseg.models.towers import TRAIN_MODES
    from zsseg.prompts import TEMPLATE_SETS
    from zsseg.train.config import DEFAULTS

    s2, pr = DEFAULTS["strategy2"], DEFAULTS["prompts"]
    p.add_argument("--epochs", type=int, default=None, help=f"epochs (default: {s2[0]} strategy2, {pr[0]} prompts)")
    p.add_argument("--lr", type=float, default=None, help=f"AdamW learning rate (default: {s2[1]:g} / {pr[1]:g})")
    p.add_argument("--batch-size", type=int, default=None, help=f"regions per step (default: {s2[2]} / {pr[2]})")
    p.add_argument(
        "--weight-decay", type=float, default=None, help=f"AdamW weight decay (default: {s2[3]:g} / {pr[3]:g})"
    )
    p.add_argument("--seed", type=int, default=d.seed, help=f"seed of initialisation and shuffling ({d.seed})")
    p.add_argument(
        "--train",
        default=d.train,
        choices=TRAIN_MODES,
        help=f"strategy 2: train the projection, the last blocks + projection, or all (default: {d.train})",
    )
    p.add_argument("--last-blocks", type=int, default=d.last_blocks, help=f"--train last's blocks ({d.last_blocks})")
    p.add_argument(
        "--backbone-lr-mult",
        type=float,
        default=d.backbone_lr_mult,
        help=f"lr factor of pretrained weights (default: {d.backbone_lr_mult})",
    )
    p.add_argument(
        "--lambda",
        dest="lambda_",
        metavar="LAMBDA",
        type=float,
        default=d.lambda_,
        help=f"ensemble exponent stored in the checkpoint (default: {d.lambda_})",
    )
    p.add_argument(
        "--templates", default=d.templates, choices=TEMPLATE_SETS, help=f"strategy 2's class prompts ({d.templates})"
    )
    p.add_argument("--n-ctx", type=int, default=d.n_ctx, help=f"prompts: learned context vectors ({d.n_ctx})")
    p.add_argument("--logit-scale", type=float, default=None, help="inverse temperature (default: the backend's)")


def _region_flags(p: argparse.ArgumentParser, d: TrainConfig) -> None:
    """Which regions are trained on, their features and targets, early stopping and calibration."""
    from zsseg.proposals import PROPOSER_NAMES
    from zsseg.train.bank import TARGET_MODES
    from zsseg.train.config import FEATURE_MODES
    from zsseg.train.regions import REGION_MODES

    p.add_argument("--no-flip", action="store_true", help="do not also train on mirrored crops")
    r = d.regions
    p.add_argument("--regions", default=r.regions, choices=REGION_MODES, help=f"ground-truth regions ({r.regions})")
    p.add_argument("--min-area", type=float, default=r.min_area, help=f"smallest region, share of image ({r.min_area})")
    p.add_argument(
        "--proposals",
        default="auto",
        help=f"also train on these proposals with soft targets: {', '.join(PROPOSER_NAMES)}, or none "
        "(ground-truth segments only); default auto, the pipeline's own",
    )
    p.add_argument(
        "--features",
        default=d.features,
        choices=FEATURE_MODES,
        help="region features: dense (pooled from one pass, as --regions dense), crops, or auto (default)",
    )
    p.add_argument("--dense-size", type=int, default=None, help="long side of the dense pass (default: 448)")
    p.add_argument("--targets", default=d.targets, choices=TARGET_MODES, help=f"proposals' soft targets ({d.targets})")
    p.add_argument("--holdout", type=float, default=d.holdout, help=f"images held out for early stopping ({d.holdout})")
    p.add_argument("--patience", type=int, default=d.patience, help=f"epochs without held-out progress ({d.patience})")
    p.add_argument("--no-calibrate", action="store_true", help="do not fit strategy 2's temperature")
    p.add_argument(
        "--no-object-weight",
        type=float,
        default=d.no_object_weight,
        help=f"loss weight of 'no object' (default: {d.no_object_weight:g})",
    )


def _self_training_flags(p: argparse.ArgumentParser) -> None:
    """Self-training's rounds and pseudo-labels, and the run's size and cache."""
    from zsseg.train.self_training import DEFAULT_FRACTION, DEFAULT_THRESHOLD

    p.add_argument("--rounds", type=int, default=1, help="self-training: pseudo-labelling rounds (default: 1)")
    p.add_argument(
        "--pseudo-fraction",
        type=float,
        default=DEFAULT_FRACTION,
        help=f"self-training: most confident share of each unseen class's candidates kept ({DEFAULT_FRACTION})",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help=f"self-training: smallest ensemble probability of a pseudo label (default: {DEFAULT_THRESHOLD})",
    )
    p.add_argument("--limit", type=int, default=None, help="use only the first N images")
    p.add_argument("--no-cache", action="store_true", help="do not cache encoded regions on disk")


def default_device() -> str:
    """``cuda`` when available, else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The :class:`~zsseg.train.config.TrainConfig` of parsed ``zsseg train`` flags: each field from the flag of
    its name (``--no-flip``, ``--no-calibrate`` and ``--regions``/``--min-area`` where the names differ)."""
    from dataclasses import fields

    from zsseg.train.config import TrainConfig
    from zsseg.train.regions import RegionOptions

    special = {"what", "flip", "calibrate", "regions"}
    same = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if f.name not in special and f.name in args}
    return TrainConfig(
        what="strategy2" if args.what == "self-training" else args.what,
        flip=not args.no_flip,
        calibrate=not args.no_calibrate,
        regions=RegionOptions(regions=args.regions, min_area=args.min_area),
        **same,
    )


def run(args: argparse.Namespace) -> int:
    """Run ``zsseg train``; returns the exit status (130 after Ctrl-C, with the checkpoint intact)."""
    from zsseg.data import load_dataset
    from zsseg.errors import ZsSegError
    from zsseg.models import load_backend
    from zsseg.proposals import build_proposer
    from zsseg.train.config import TrainingInterrupted
    from zsseg.train.self_training import self_train
    from zsseg.train.trainer import check_out, train

    config = config_from_args(args)
    if args.what == "self-training" and not args.seen_only:
        raise ZsSegError("self-training pseudo-labels the unseen classes: add --seen-only")
    if not (args.what == "self-training" and args.resume):  # (self-training resumes from its round files)
        check_out(args.out.expanduser(), args.resume)  # fail before the minutes of loading
    dataset = load_dataset(args.dataset, args.root, args.split)
    device = args.device or default_device()  # already resolved by zsseg.validate
    t0 = time.perf_counter()
    backend = load_backend(args.model, device=device)
    proposer = build_proposer(args.proposals, device=device) if args.proposals != "none" else None
    args.out.expanduser().parent.mkdir(parents=True, exist_ok=True)
    print(
        f"zsseg: training {args.what} on {dataset.info.name}/{args.split} with {backend.name} on {device} "
        f"(loaded in {time.perf_counter() - t0:.1f} s)",
        file=sys.stderr,
    )
    common = {"split": args.split, "resume": args.resume, "proposer": proposer, "limit": args.limit,
              "cache": not args.no_cache}  # fmt: skip
    try:
        if args.what == "self-training":
            rounds = self_train(
                backend,
                dataset,
                args.out,
                config,
                rounds=args.rounds,
                threshold=args.threshold,
                fraction=args.pseudo_fraction,
                **common,
            )
            summary = rounds[-1] if rounds else None
        else:
            summary = train(backend, dataset, args.out, config, seen_only=args.seen_only, **common)
    except TrainingInterrupted as exc:
        if exc.epoch:
            msg = f"{exc.path} keeps epoch {exc.epoch}; continue with the same command and --resume"
        else:
            msg = f"no epoch was saved to {exc.path}; run the command again"
        print(f"zsseg: interrupted: {msg}", file=sys.stderr)
        return 130
    if summary is None:
        print(f"zsseg: {args.out} is already trained (every round finished)", file=sys.stderr)
        return 0
    print(
        f"zsseg: trained {summary.epochs_run} epoch(s) on {summary.num_regions} regions in "
        f"{summary.encode_seconds + summary.train_seconds:.1f} s (encoding {summary.encode_seconds:.1f} s); "
        f"checkpoint {args.out}",
        file=sys.stderr,
    )
    return 0

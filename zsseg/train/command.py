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
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``train`` sub-command to ``zsseg``'s sub-parsers."""
    from zsseg.classify.ensemble import DEFAULT_LAMBDA
    from zsseg.data import DATASET_NAMES
    from zsseg.models import MODEL_HELP
    from zsseg.models.towers import TRAIN_MODES
    from zsseg.prompts import TEMPLATE_SETS
    from zsseg.proposals import PROPOSER_NAMES
    from zsseg.train.bank import TARGET_MODES
    from zsseg.train.regions import REGION_MODES
    from zsseg.train.self_training import DEFAULT_FRACTION, DEFAULT_THRESHOLD
    from zsseg.train.trainer import DEFAULTS, FEATURE_MODES

    p = subparsers.add_parser(
        "train",
        help="train strategy 2 (image encoder on seen classes) or learned prompts; checkpoint every epoch",
        description="Train the strategy-2 region classifier or CoOp learned prompts on a dataset split. "
        "Writes OUT (.safetensors) and OUT's .json after every epoch; Ctrl-C keeps the last completed epoch.",
    )
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
    from zsseg.validate import path_arg

    p.add_argument("--out", required=True, type=path_arg, help="checkpoint file to write, NAME.safetensors")
    p.add_argument("--resume", action="store_true", help="continue training OUT up to --epochs")
    p.add_argument("--device", default="auto", help="auto (CUDA if present, else CPU), cpu, cuda, cuda:N or mps")
    s2, pr = DEFAULTS["strategy2"], DEFAULTS["prompts"]
    p.add_argument("--epochs", type=int, default=None, help=f"epochs (default: {s2[0]} strategy2, {pr[0]} prompts)")
    p.add_argument("--lr", type=float, default=None, help=f"AdamW learning rate (default: {s2[1]:g} / {pr[1]:g})")
    p.add_argument("--batch-size", type=int, default=None, help=f"regions per step (default: {s2[2]} / {pr[2]})")
    p.add_argument(
        "--weight-decay", type=float, default=None, help=f"AdamW weight decay (default: {s2[3]:g} / {pr[3]:g})"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of initialisation and shuffling (default: 0)")
    p.add_argument(
        "--train",
        default="projection",
        choices=TRAIN_MODES,
        help="strategy 2: train the projection, the last blocks + projection, or all (default: projection)",
    )
    p.add_argument("--last-blocks", type=int, default=1, help="blocks trained by --train last (default: 1)")
    p.add_argument("--backbone-lr-mult", type=float, default=0.1, help="lr factor of pretrained weights (default 0.1)")
    p.add_argument(
        "--lambda",
        dest="lambda_",
        metavar="LAMBDA",
        type=float,
        default=DEFAULT_LAMBDA,
        help=f"ensemble exponent stored in the checkpoint (default: {DEFAULT_LAMBDA})",
    )
    p.add_argument("--templates", default="vild", choices=TEMPLATE_SETS, help="strategy 2's class prompts (vild)")
    p.add_argument("--n-ctx", type=int, default=16, help="prompts: number of learned context vectors (default: 16)")
    p.add_argument("--logit-scale", type=float, default=None, help="inverse temperature (default: the backend's)")
    p.add_argument("--no-flip", action="store_true", help="do not also train on mirrored crops")
    p.add_argument("--regions", default="both", choices=REGION_MODES, help="ground-truth regions (default: both)")
    p.add_argument("--min-area", type=float, default=0.002, help="smallest region, fraction of the image (0.002)")
    p.add_argument(
        "--proposals",
        default="auto",
        help=f"also train on these proposals with soft targets: {', '.join(PROPOSER_NAMES)}, or none "
        "(ground-truth segments only); default auto, the pipeline's own",
    )
    p.add_argument(
        "--features",
        default="auto",
        choices=FEATURE_MODES,
        help="region features: dense (pooled from one pass, as --regions dense), crops, or auto (default)",
    )
    p.add_argument("--dense-size", type=int, default=None, help="long side of the dense pass (default: 448)")
    p.add_argument("--targets", default="composition", choices=TARGET_MODES, help="proposals' soft targets")
    p.add_argument("--holdout", type=float, default=0.15, help="images held out for early stopping (0.15)")
    p.add_argument("--patience", type=int, default=5, help="epochs without held-out progress before stopping (5)")
    p.add_argument("--no-calibrate", action="store_true", help="do not fit strategy 2's temperature")
    p.add_argument("--no-object-weight", type=float, default=1.0, help="loss weight of 'no object' (default: 1)")
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
    p.set_defaults(run=run)


def default_device() -> str:
    """``cuda`` when available, else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def run(args: argparse.Namespace) -> int:
    """Run ``zsseg train``; returns the exit status (130 after Ctrl-C, with the checkpoint intact)."""
    from zsseg.data import load_dataset
    from zsseg.errors import ZsSegError
    from zsseg.models import load_backend
    from zsseg.proposals import build_proposer
    from zsseg.train.regions import RegionOptions
    from zsseg.train.self_training import self_train
    from zsseg.train.trainer import TrainConfig, TrainingInterrupted, check_out, train

    what: Any = "strategy2" if args.what == "self-training" else args.what
    config = TrainConfig(
        what=what, train=args.train, last_blocks=args.last_blocks, epochs=args.epochs, lr=args.lr,
        batch_size=args.batch_size, weight_decay=args.weight_decay, backbone_lr_mult=args.backbone_lr_mult,
        seed=args.seed, lambda_=args.lambda_, templates=args.templates, n_ctx=args.n_ctx,
        logit_scale=args.logit_scale, flip=not args.no_flip,
        regions=RegionOptions(regions=args.regions, min_area=args.min_area), features=args.features,
        dense_size=args.dense_size, targets=args.targets, holdout=args.holdout, patience=args.patience,
        calibrate=not args.no_calibrate, no_object_weight=args.no_object_weight,
    )  # fmt: skip
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

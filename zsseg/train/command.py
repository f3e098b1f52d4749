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
    from zsseg.classify import MODEL_HELP
    from zsseg.classify.prompts import TEMPLATE_SETS
    from zsseg.data import DATASET_NAMES
    from zsseg.proposals import PROPOSER_NAMES
    from zsseg.train.ensemble import DEFAULT_LAMBDA
    from zsseg.train.regions import REGION_MODES
    from zsseg.train.towers import TRAIN_MODES
    from zsseg.train.trainer import DEFAULTS

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
    p.add_argument("--what", default="strategy2", choices=("strategy2", "prompts"), help="what to train")
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
        default=None,
        help=f"also train on proposals matched to the ground truth: {', '.join(PROPOSER_NAMES)}",
    )
    p.add_argument("--limit", type=int, default=None, help="use only the first N images")
    p.add_argument("--no-cache", action="store_true", help="do not cache encoded regions on disk")
    p.set_defaults(run=run)


def add_classifier_flags(p: argparse.ArgumentParser) -> None:
    """``--classifier``, ``--prompts`` and ``--lambda`` for ``zsseg segment`` / ``zsseg eval``."""
    p.add_argument(
        "--classifier",
        type=Path,
        default=None,
        help="strategy-2 checkpoint (zsseg train --what strategy2), ensembled with the frozen classifier",
    )
    p.add_argument(
        "--prompts", type=Path, default=None, help="learned prompts (zsseg train --what prompts) instead of --templates"
    )
    p.add_argument(
        "--lambda",
        dest="ensemble_lambda",
        metavar="LAMBDA",
        type=float,
        default=None,
        help="ensemble exponent for --classifier, in [0, 1] (default: the checkpoint's, 0.8)",
    )


def classifier_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of :func:`zsseg.pipeline.load` from :func:`add_classifier_flags`' flags."""
    return {
        "classifier_checkpoint": getattr(args, "classifier", None),
        "prompts_checkpoint": getattr(args, "prompts", None),
        "ensemble_lambda": getattr(args, "ensemble_lambda", None),
    }


def default_device() -> str:
    """``cuda`` when available, else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def run(args: argparse.Namespace) -> int:
    """Run ``zsseg train``; returns the exit status (130 after Ctrl-C, with the checkpoint intact)."""
    from zsseg.classify import load_backend
    from zsseg.data import load_dataset
    from zsseg.proposals import build_proposer
    from zsseg.train.regions import RegionOptions
    from zsseg.train.trainer import TrainConfig, TrainingInterrupted, check_out, train

    config = TrainConfig(
        what=args.what, train=args.train, last_blocks=args.last_blocks, epochs=args.epochs, lr=args.lr,
        batch_size=args.batch_size, weight_decay=args.weight_decay, backbone_lr_mult=args.backbone_lr_mult,
        seed=args.seed, lambda_=args.lambda_, templates=args.templates, n_ctx=args.n_ctx,
        logit_scale=args.logit_scale, flip=not args.no_flip,
        regions=RegionOptions(regions=args.regions, min_area=args.min_area),
    )  # fmt: skip
    check_out(args.out.expanduser(), args.resume)  # fail before the minutes of loading
    dataset = load_dataset(args.dataset, args.root, args.split)
    device = args.device or default_device()  # already resolved by zsseg.validate
    t0 = time.perf_counter()
    backend = load_backend(args.model, device=device)
    proposer = build_proposer(args.proposals, device=device) if args.proposals else None
    args.out.expanduser().parent.mkdir(parents=True, exist_ok=True)
    print(
        f"zsseg: training {args.what} on {dataset.info.name}/{args.split} with {backend.name} on {device} "
        f"(loaded in {time.perf_counter() - t0:.1f} s)",
        file=sys.stderr,
    )
    try:
        summary = train(
            backend, dataset, args.out, config, split=args.split, seen_only=args.seen_only, resume=args.resume,
            proposer=proposer, limit=args.limit, cache=not args.no_cache,
        )  # fmt: skip
    except TrainingInterrupted as exc:
        if exc.epoch:
            msg = f"{exc.path} keeps epoch {exc.epoch}; continue with the same command and --resume"
        else:
            msg = f"no epoch was saved to {exc.path}; run the command again"
        print(f"zsseg: interrupted: {msg}", file=sys.stderr)
        return 130
    print(
        f"zsseg: trained {summary.epochs_run} epoch(s) on {summary.num_regions} regions in "
        f"{summary.encode_seconds + summary.train_seconds:.1f} s (encoding {summary.encode_seconds:.1f} s); "
        f"checkpoint {summary.path}",
        file=sys.stderr,
    )
    return 0

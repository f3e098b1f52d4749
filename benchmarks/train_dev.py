"""Choosing the training recipe without looking at val: VOC train images only, with validation classes.

This is the generalised zero-shot protocol with validation classes (Xian et al.'s GZSL splits): the 15 seen classes
of VOC 15/5 are split again into 12 dev-seen and 3 dev-unseen classes, two ways (``{bottle, cow, person}`` and
``{bird, car, dog}``), and the 330 train images into 264 fit and 66 dev images (seeded). Training reads the labels
of the dev-seen classes on the fit images only; the dev-unseen and the 5 real unseen classes are unlabelled there,
as ``--seen-only`` makes them. Every method is scored end to end (``zsseg.Segmenter``, MobileSAM proposals, dense
features) on the dev images with all 20 names as the vocabulary; the IoU averages run over the 15 seen classes
(the real unseen classes' pixels are ignored), seen = dev-seen, unseen = dev-unseen, means of the two splits.

Each variant is a set of ``self_train`` / ``TrainConfig`` options; round 0 (strategy 2 on the dev-seen classes,
the defaults) is trained once per split and shared.

    ZSSEG_CACHE=out/zcache python benchmarks/train_dev.py --variants defaults "rounds 2"
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from proposal_cache import DiskCachedProposer
from train_voc import start_from

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SPLITS = (("bottle", "cow", "person"), ("bird", "car", "dog"))
# variant -> (self_train keyword arguments, TrainConfig fields of the self-training rounds)
VARIANTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "defaults": ({}, {}),
    "rounds 2": ({"rounds": 2}, {}),
    "rounds 3": ({"rounds": 3}, {}),
    "rounds 5": ({"rounds": 5}, {}),
    "fraction 0.2": ({"fraction": 0.2}, {}),
    "fraction 0.05": ({"fraction": 0.05}, {}),
    "threshold 0.3": ({"threshold": 0.3}, {}),
    "lr / 3": ({}, {"lr_factor": 1 / 3}),
    "no-object weight 0.5": ({}, {"no_object_weight": 0.5}),
}


def dev_split(train: Any, dev_unseen: tuple[str, ...], dev_images: int, seed: int = 0) -> tuple[Any, Any]:
    """(fit, dev) datasets: the real unseen classes plus ``dev_unseen`` are unseen; images split by a seeded shuffle."""
    info = train.info
    real_unseen = tuple(info.unseen)
    missing = [c for c in dev_unseen if c not in info.classes or c in real_unseen]
    if missing:
        raise SystemExit(f"dev-unseen classes {missing} are not seen classes of {info.name}")
    order = np.random.default_rng(seed).permutation(len(train.samples))
    fit, dev = copy.copy(train), copy.copy(train)
    fit.info = dev.info = replace(info, unseen=real_unseen + dev_unseen)
    fit.samples = sorted((train.samples[i] for i in order[dev_images:]), key=lambda s: s.id)
    dev.samples = sorted((train.samples[i] for i in order[:dev_images]), key=lambda s: s.id)
    return fit, dev


def score(methods: dict[str, Any], dev: Any, real_unseen: list[int], proposer: Any) -> dict[str, dict[str, Any]]:
    """End-to-end seen / unseen / hIoU of each region classifier on ``dev`` (real unseen pixels ignored)."""
    from zsseg.eval import SemSegEvaluator
    from zsseg.pipeline import Segmenter

    info = dev.info
    dev_unseen = [i for i in info.unseen_ids if i not in real_unseen]
    evals = {m: SemSegEvaluator(info.num_classes, info.classes, info.ignore_index, dev_unseen) for m in methods}
    segmenters = {m: Segmenter(proposer, c) for m, c in methods.items()}
    vocab = list(info.prompt_names)
    for sample in dev.samples:
        image, label = dev.load_image(sample), dev.load_label(sample)
        label = np.where(np.isin(label, real_unseen), info.ignore_index, label)
        for m, seg in segmenters.items():
            evals[m].process(seg.segment(image, vocab).label_map, label)
    return {m: e.evaluate() for m, e in evals.items()}


def run_split(
    backend: Any,
    fit: Any,
    dev: Any,
    real_unseen: list[int],
    proposer: Any,
    variants: list[str],
    out: Path,
    pseudo_as_unseen: bool = False,
) -> dict[str, dict[str, Any]]:
    """Train round 0 and each variant's self-training on ``fit``; score strategy 1, the ensemble and each variant."""
    from zsseg.classify import build_classifier
    from zsseg.classify.checkpoint import read_checkpoint
    from zsseg.train import TrainConfig, train
    from zsseg.train.self_training import self_train

    out.mkdir(parents=True, exist_ok=True)
    s2 = out / "strategy2.safetensors"
    common: dict[str, Any] = {"split": "train", "proposer": proposer, "progress": False}
    if not s2.exists():
        train(backend, fit, s2, TrainConfig(), seen_only=True, **common)
    dense: dict[str, Any] = {"regions": "dense"}
    methods = {
        "strategy 1": build_classifier(backend, **dense),
        "ensemble": build_classifier(backend, classifier=s2, **dense),
    }
    for name in variants:
        kwargs, fields = VARIANTS[name]
        fields = dict(fields)
        cfg = TrainConfig(**fields) if "lr_factor" not in fields else None
        if cfg is None:
            base = TrainConfig().resolved(backend)
            assert base.lr is not None
            cfg = replace(TrainConfig(), lr=base.lr * fields.pop("lr_factor"), **fields)
        st = out / f"self {name.replace(' ', '_').replace('/', '')}.safetensors"
        start_from(s2, st)  # round 0 is the strategy 2 above (the defaults)
        if not st.exists():
            self_train(backend, fit, st, cfg, resume=True, **kwargs, **common)
        methods[f"self-training, {name}"] = build_classifier(backend, classifier=st, **dense)
        if pseudo_as_unseen:  # ablation: the ensemble weighs the pseudo-labelled classes as unseen (as before)
            clf = build_classifier(backend, classifier=st, **dense)
            clf.seen = frozenset(read_checkpoint(st, tensors=False)[1]["seen"])
            methods[f"self-training, {name}, pseudo classes weighed as unseen"] = clf
    return score(methods, dev, real_unseen, proposer)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=DATA, help="folder holding VOCdevkit (default: ../shared/data)")
    parser.add_argument("--variants", nargs="+", default=["defaults"], choices=list(VARIANTS))
    parser.add_argument(
        "--pseudo-as-unseen",
        action="store_true",
        help="also score each self-training with its pseudo-labelled classes weighed as unseen by the ensemble",
    )
    parser.add_argument("--dev-images", type=int, default=66, help="train images held out for scoring (default 66)")
    parser.add_argument("--proposal-cache", type=Path, default=Path("out/region_modes_cache"))
    parser.add_argument("--out-dir", type=Path, default=Path("out/train_dev"), help="checkpoints and results")
    args = parser.parse_args()
    if not (args.root / "VOCdevkit").is_dir():
        print(f"no VOCdevkit under {args.root}: pass --root", file=sys.stderr)
        return 2
    from zsseg.data import load_dataset
    from zsseg.models import load_backend

    backend = load_backend("conse:efficientnet-lite0")
    train_ds = load_dataset("voc20", args.root, "train")
    real_unseen = list(train_ds.info.unseen_ids)
    proposer = DiskCachedProposer("mobilesam", args.proposal_cache, [train_ds])
    per_split = []
    for dev_unseen in SPLITS:
        fit, dev = dev_split(train_ds, dev_unseen, args.dev_images)
        folder = args.out_dir / "+".join(dev_unseen)
        scores = run_split(backend, fit, dev, real_unseen, proposer, args.variants, folder, args.pseudo_as_unseen)
        per_split.append(scores)
        print(f"split {dev_unseen}:", {m: round(r["hIoU"] or 0.0, 1) for m, r in per_split[-1].items()}, flush=True)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "results.json").write_text(json.dumps(per_split, indent=1))
    print(f"\n{args.dev_images} dev images (VOC train), mean of {len(SPLITS)} dev-unseen splits\n")
    print("| method | seen | unseen | hIoU |\n|---|---|---|---|")
    for m in per_split[0]:
        means = [np.mean([r[m][k] or 0.0 for r in per_split]) for k in ("mIoU_seen", "mIoU_unseen", "hIoU")]
        print(f"| {m} | " + " | ".join(f"{v:.1f}" for v in means) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

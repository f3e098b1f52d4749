"""Zero-shot training on VOC (15 seen / 5 unseen), end to end with the default pipeline: strategy 1, strategy 2,
their ensemble, learned prompts, and self-training.

Trains with ``zsseg train``'s defaults (the same :func:`zsseg.train.train` / :func:`zsseg.train.self_training.
self_train`) on the 330 VOC 2012 train images of ``../shared/data``, seen classes only (pottedplant, sheep, sofa,
train and tvmonitor are never read: their pixels count as unlabelled), on the regions the default pipeline
produces (MobileSAM proposals, dense region features), then scores ``voc20`` val (200 images):

- end to end: each method as the pipeline's region classifier (``zsseg.Segmenter`` with the same proposals);
- with ground-truth masks as regions (one per class present), which isolates the region classifier.

Proposals are computed once per image and cached under ``--proposal-cache`` (``benchmarks/proposal_cache.py``,
shared with ``benchmarks/region_modes.py``), so reruns and every method see identical regions. Nothing is chosen
on the val images: the training recipe was chosen on held-out *train* images (``docs/results.md`` §5).

    python benchmarks/train_voc.py --out-dir out/train_voc
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from proposal_cache import DiskCachedProposer

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
METHODS = (
    "strategy 1",
    "strategy 2",
    "ensemble (1+2)",
    "strategy 1, learned prompts",
    "ensemble (prompts+2)",
    "ensemble after self-training",
)


def start_from(strategy2: Path, self_training: Path) -> None:
    """Make the strategy-2 checkpoint ``strategy2`` (trained with the same options) round 0 of ``self_training``,
    unless that round exists: ``self_train(..., resume=True)`` then starts at round 1."""
    from zsseg.train.self_training import round_path

    if not round_path(self_training, 0).exists():
        for suffix in (".safetensors", ".json"):
            shutil.copyfile(strategy2.with_suffix(suffix), round_path(self_training, 0).with_suffix(suffix))


def train_all(backend: Any, train_ds: Any, proposer: Any, out_dir: Path) -> dict[str, float]:
    """Strategy 2, prompts and self-training with the defaults; returns wall seconds of each (0 if reused)."""
    from zsseg.train import TrainConfig, train
    from zsseg.train.self_training import self_train

    out_dir.mkdir(parents=True, exist_ok=True)
    common: dict[str, Any] = {"split": "train", "proposer": proposer}
    seconds: dict[str, float] = {}
    for what in ("strategy2", "prompts"):
        out = out_dir / f"{what}.safetensors"
        t0 = time.perf_counter()
        if not out.exists():
            train(backend, train_ds, out, TrainConfig(what=what), seen_only=True, **common)  # type: ignore[arg-type]
        seconds[what] = time.perf_counter() - t0
    st = out_dir / "self_training.safetensors"
    start_from(out_dir / "strategy2.safetensors", st)
    t0 = time.perf_counter()
    if not st.exists():
        self_train(backend, train_ds, st, TrainConfig(), resume=True, **common)
    seconds["self-training"] = time.perf_counter() - t0
    return seconds


def classifiers(backend: Any, out_dir: Path) -> dict[str, Any]:
    """Every method's region classifier, built as ``zsseg segment --classifier/--prompts`` builds them."""
    from zsseg.classify import build_classifier
    from zsseg.classify.checkpoint import load_classifier_checkpoint

    s2 = out_dir / "strategy2.safetensors"
    prompts = out_dir / "prompts.safetensors"
    dense: dict[str, Any] = {"regions": "dense"}
    return {
        METHODS[0]: build_classifier(backend, **dense),
        METHODS[1]: load_classifier_checkpoint(s2, backend, ensemble=False),
        METHODS[2]: build_classifier(backend, classifier=s2, **dense),
        METHODS[3]: build_classifier(backend, prompts=prompts, **dense),
        METHODS[4]: build_classifier(backend, classifier=s2, prompts=prompts, **dense),
        METHODS[5]: build_classifier(backend, classifier=out_dir / "self_training.safetensors", **dense),
    }


def evaluate(methods: dict[str, Any], val: Any, proposer: Any, limit: int | None) -> dict[str, dict[str, Any]]:
    """End to end and with ground-truth masks: ``{"e2e"|"gt": {method: metrics}}``."""
    from tqdm import tqdm

    from zsseg.eval import SemSegEvaluator
    from zsseg.pipeline import Segmenter

    info = val.info
    vocab = list(info.prompt_names)

    def new() -> Any:
        return SemSegEvaluator(info.num_classes, info.classes, info.ignore_index, info.unseen_ids)

    e2e = {m: new() for m in methods}
    gt = {m: new() for m in methods}
    segmenters = {m: Segmenter(proposer, c) for m, c in methods.items()}
    samples = val.samples if limit is None else val.samples[:limit]
    for sample in tqdm(samples, desc="voc20 val", unit="img"):
        image, label = val.load_image(sample), val.load_label(sample)
        ids = [k for k in np.unique(label) if k != info.ignore_index]
        masks = label[None] == np.array(ids)[:, None, None]
        for m, seg in segmenters.items():
            e2e[m].process(seg.segment(image, vocab).label_map, label)
            if len(ids):
                pred = np.full(label.shape, info.ignore_index, np.int64)
                for mask, k in zip(masks, methods[m].classify(image, masks, vocab).argmax(axis=1), strict=True):
                    pred[mask] = k
                gt[m].process(pred, label)
    return {"e2e": {m: e.evaluate() for m, e in e2e.items()}, "gt": {m: e.evaluate() for m, e in gt.items()}}


def fmt(v: object) -> str:
    return "-" if v is None else f"{v:.1f}" if isinstance(v, float) else str(v)


def table(results: dict[str, dict[str, Any]], title: str) -> str:
    lines = [f"### {title}", "", "| method | mIoU seen | mIoU unseen | hIoU | mIoU |", "|---|---|---|---|---|"]
    for m, r in results.items():
        lines.append(f"| {m} | {fmt(r['mIoU_seen'])} | {fmt(r['mIoU_unseen'])} | {fmt(r['hIoU'])} | {fmt(r['mIoU'])} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=DATA, help="folder holding VOCdevkit (default: ../shared/data)")
    parser.add_argument("--model", default="conse:efficientnet-lite0", help="backend (default: offline ConSE)")
    parser.add_argument("--proposals", default="mobilesam", help="proposal generator (default: mobilesam)")
    parser.add_argument("--proposal-cache", type=Path, default=Path("out/region_modes_cache"))
    parser.add_argument("--out-dir", type=Path, default=Path("out/train_voc"), help="checkpoints and results")
    parser.add_argument("--images", type=int, default=None, help="score only the first N val images")
    args = parser.parse_args()
    if not (args.root / "VOCdevkit").is_dir():
        print(f"no VOCdevkit under {args.root}: pass --root", file=sys.stderr)
        return 2
    from zsseg.data import load_dataset
    from zsseg.models import load_backend

    backend = load_backend(args.model)
    train_ds, val = load_dataset("voc20", args.root, "train"), load_dataset("voc20", args.root, "val")
    proposer = DiskCachedProposer(args.proposals, args.proposal_cache, [train_ds, val])
    seconds = train_all(backend, train_ds, proposer, args.out_dir)
    results = evaluate(classifiers(backend, args.out_dir), val, proposer, args.images)
    (args.out_dir / "results.json").write_text(json.dumps({"seconds": seconds, **results}, indent=1))
    n = len(val.samples) if args.images is None else args.images
    print(table(results["e2e"], f"End to end, {args.proposals} proposals, dense features ({n} val images)"))
    print()
    print(table(results["gt"], f"Ground-truth masks as regions ({n} val images)"))
    print()
    print("training seconds (0: reused):", {k: round(v) for k, v in seconds.items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

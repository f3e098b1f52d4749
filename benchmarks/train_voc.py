"""Strategy 1, strategy 2, their ensemble and learned prompts on VOC's zero-shot split (15 seen / 5 unseen).

Trains, with the default settings of ``zsseg train``, strategy 2 and CoOp prompts on the VOC train images
(seen classes only: the unseen pottedplant, sheep, sofa, train and tvmonitor are never shown), then scores
``voc20`` val. By default the regions classified are the **ground-truth masks** (one per class present in an
image), so the numbers isolate the region classifier from proposal quality: they are region-classification
accuracy in mIoU form, not end-to-end segmentation. ``--proposals NAME`` also runs the full pipeline with
real proposals on the first ``--proposal-images`` val images. Nothing is tuned on the val images.

    python benchmarks/train_voc.py --model conse:efficientnet-lite0 --out-dir out/train_voc
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
METHODS = ("strategy 1", "strategy 2", "ensemble (1+2)", "strategy 1, learned prompts", "ensemble (prompts+2)")


def train_both(backend: Any, root: Path, out_dir: Path, retrain: bool) -> dict[str, dict[str, float]]:
    """Train strategy 2 and prompts with the defaults (seen classes only); return their timings."""
    from zsseg.data import load_dataset
    from zsseg.train import TrainConfig, train

    dataset = load_dataset("voc20", root, "train")
    times: dict[str, dict[str, float]] = {}
    for what in ("strategy2", "prompts"):
        out = out_dir / f"{what}.safetensors"
        timing = out_dir / f"{what}.timing.json"
        if out.exists() and timing.exists() and not retrain:
            times[what] = json.loads(timing.read_text())
            continue
        for f in (out, out.with_suffix(".json"), out.with_suffix(".optim.safetensors")):
            f.unlink(missing_ok=True)
        t0 = time.perf_counter()
        summary = train(backend, dataset, out, TrainConfig(what=what), split="train", seen_only=True)
        times[what] = {
            "encode_s": summary.encode_seconds,
            "train_s": summary.train_seconds,
            "wall_s": time.perf_counter() - t0,
            "regions": summary.num_regions,
            "epochs": summary.epochs_run,
        }
        timing.write_text(json.dumps(times[what]))
    return times


def gt_class_masks(label: np.ndarray, ignore: int) -> tuple[np.ndarray, np.ndarray]:
    """One bool mask per class present in ``label`` (H, W) -> masks (N, H, W), class ids (N,)."""
    ids = np.array([k for k in np.unique(label) if k != ignore], np.int64)
    return label[None] == ids[:, None, None], ids


def method_probs(ens: Any, prompts: Any, feats: torch.Tensor, classes: Sequence[str]) -> dict[str, np.ndarray]:
    """Every method's float32 (N, K) probabilities from the pooled features (N, F) of N regions, which strategy 1,
    the learned prompts and strategy 2 (trained in projection mode) all start from."""
    from zsseg.train.ensemble import ensemble_probs, probs_from_embeddings, seen_mask_for

    s1, s2 = ens.strategy1, ens.strategy2
    with torch.no_grad():
        emb = s2.tower.frozen_embed(feats)
        p1 = probs_from_embeddings(emb, s1.text_embeddings(classes), s1.logit_scale)
        pp = probs_from_embeddings(emb, prompts.text_embeddings(classes), prompts.logit_scale)
        p2 = s2.probs_from_features(feats, classes)
    seen = seen_mask_for(classes, ens.seen)
    return {
        METHODS[0]: p1,
        METHODS[1]: p2,
        METHODS[2]: ensemble_probs(p1, p2, seen, ens.lambda_),
        METHODS[3]: pp,
        METHODS[4]: ensemble_probs(pp, p2, seen, ens.lambda_),
    }


def evaluate_gt_regions(backend: Any, out_dir: Path, root: Path, limit: int | None) -> dict[str, dict[str, Any]]:
    """Score every method on voc20 val, classifying the ground-truth class masks of each image."""
    from tqdm import tqdm

    from zsseg.classify import RegionClassifier
    from zsseg.data import load_dataset
    from zsseg.eval import SemSegEvaluator
    from zsseg.train import EnsembleClassifier, load_classifier_checkpoint, load_prompts_checkpoint
    from zsseg.train.ensemble import ensemble_probs, seen_mask_for

    ds = load_dataset("voc20", root, "val")
    info = ds.info
    vocab = list(info.prompt_names)
    s1 = RegionClassifier(backend, templates="vild")
    ens = load_classifier_checkpoint(out_dir / "strategy2.safetensors", backend, strategy1=s1)
    prompts = load_prompts_checkpoint(out_dir / "prompts.safetensors", backend)
    assert isinstance(ens, EnsembleClassifier)
    seen = seen_mask_for(vocab, ens.seen)
    evaluators = {
        m: SemSegEvaluator(info.num_classes, info.classes, info.ignore_index, info.unseen_ids) for m in METHODS
    }
    samples = ds.samples if limit is None else ds.samples[:limit]
    t0 = time.perf_counter()
    for sample in tqdm(samples, desc="eval voc20 val (GT regions)", unit="img"):
        image, label = ds.load_image(sample), ds.load_label(sample)
        masks, _ = gt_class_masks(label, info.ignore_index)
        if len(masks) == 0:
            continue
        if ens.shares_trunk:  # one forward pass serves every method: prompts only change the text side
            probs = method_probs(ens, prompts, ens.strategy2.region_features(image, masks), vocab)
        else:
            parts = ens.components(image, masks, vocab)
            pp = prompts.classify(image, masks, vocab)
            probs = {
                METHODS[0]: parts["p1"],
                METHODS[1]: parts["p2"],
                METHODS[2]: parts["p"],
                METHODS[3]: pp,
                METHODS[4]: ensemble_probs(pp, parts["p2"], seen, ens.lambda_),
            }
        for method, p in probs.items():
            pred = np.full(label.shape, info.ignore_index, np.int64)
            for mask, k in zip(masks, p.argmax(axis=1), strict=True):
                pred[mask] = k
            evaluators[method].process(pred, label)
    print(f"evaluated {len(samples)} images in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return {m: e.evaluate() for m, e in evaluators.items()}


def evaluate_proposals(backend: Any, out_dir: Path, root: Path, proposer_name: str, n: int) -> dict[str, Any]:
    """End-to-end scores with real proposals on the first ``n`` val images, for every method.

    Proposals and the crops' pooled features are computed once per image and shared by the methods (each
    method's probabilities are a function of them), so the methods see identical regions.
    """
    from zsseg.classify import RegionClassifier
    from zsseg.data import load_dataset
    from zsseg.eval import evaluate_dataset
    from zsseg.pipeline import Segmenter
    from zsseg.proposals import build_proposer
    from zsseg.proposals.base import Proposals
    from zsseg.train import EnsembleClassifier, load_classifier_checkpoint, load_prompts_checkpoint

    ds = load_dataset("voc20", root, "val")
    base = build_proposer(proposer_name)
    proposals: dict[int, Proposals] = {}

    def proposer(image: np.ndarray) -> Proposals:
        key = hash(image.tobytes())
        if key not in proposals:
            proposals[key] = base(image)
        return proposals[key]

    ens = load_classifier_checkpoint(out_dir / "strategy2.safetensors", backend)
    prompts = load_prompts_checkpoint(out_dir / "prompts.safetensors", backend)
    assert isinstance(ens, EnsembleClassifier) and ens.shares_trunk
    pooled: dict[int, torch.Tensor] = {}

    class Method(RegionClassifier):
        def __init__(self, method: str) -> None:
            super().__init__(backend)
            self.method = method

        def classify(self, image: np.ndarray, masks: np.ndarray, classes: Sequence[str]) -> np.ndarray:
            key = hash((image.tobytes(), masks.tobytes()))
            if key not in pooled:
                pooled[key] = ens.strategy2.region_features(image, masks)
            return method_probs(ens, prompts, pooled[key], classes)[self.method]

    out = {}
    for method in METHODS:
        seg = Segmenter(proposer, Method(method))  # type: ignore[arg-type]

        def segment(image: np.ndarray, vocab: Sequence[str], seg: Segmenter = seg) -> np.ndarray:
            return seg.segment(image, vocab).label_map

        out[method] = evaluate_dataset(segment, ds, limit=n)
    return out


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
    parser.add_argument("--out-dir", type=Path, default=Path("out/train_voc"), help="checkpoints and results")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--retrain", action="store_true", help="train again even if checkpoints exist")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N val images")
    parser.add_argument("--proposals", default=None, help="also evaluate end to end with this proposal generator")
    parser.add_argument("--proposal-images", type=int, default=20, help="val images for --proposals (default 20)")
    parser.add_argument("--skip-gt", action="store_true", help="skip the ground-truth-region evaluation")
    args = parser.parse_args()

    from zsseg.classify import load_backend

    args.out_dir.mkdir(parents=True, exist_ok=True)
    backend = load_backend(args.model, device=args.device)
    times = train_both(backend, args.root, args.out_dir, args.retrain)
    report = [f"model {backend.name}, device {args.device}, torch threads {torch.get_num_threads()}", ""]
    results: dict[str, Any] = {}
    prop: dict[str, Any] = {}
    if not args.skip_gt:
        results = evaluate_gt_regions(backend, args.out_dir, args.root, args.limit)
        report.append(table(results, "voc20 val, ground-truth masks as regions (classifier only)"))
    if args.proposals:
        prop = evaluate_proposals(backend, args.out_dir, args.root, args.proposals, args.proposal_images)
        title = f"voc20 val, first {args.proposal_images} images, {args.proposals} proposals (end to end)"
        report += ["", table(prop, title)]
    head = "| training (defaults, 330 train images, 15 seen classes) | regions | encode s | train s | total s |"
    report += ["", head, "|---|---|---|---|---|"]
    for what, t in times.items():
        report.append(f"| {what} | {t['regions']} | {t['encode_s']:.0f} | {t['train_s']:.0f} | {t['wall_s']:.0f} |")
    text = "\n".join(report)
    print(text)
    name = "results_proposals" if args.skip_gt else "results"
    (args.out_dir / f"{name}.md").write_text(text + "\n")
    data = {"gt_regions": results, "proposals": prop or None, "times": times}
    (args.out_dir / f"{name}.json").write_text(json.dumps(data, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

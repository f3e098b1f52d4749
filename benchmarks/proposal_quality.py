"""Proposal quality per generator: oracle mIoU, segment recall at IoU 0.5, mean best IoU, speed, memory.

Oracle mIoU is the paper's upper bound for proposals: each proposal takes the majority ground-truth class of
its pixels and the pipeline's assembly builds the label map (:func:`zsseg.eval.proposal_quality.oracle_label_map`).
Recall and mean best IoU are over semantic ground-truth segments (one per class present in an image). Each
generator runs in its own process so its peak RSS is its own.

    python benchmarks/proposal_quality.py --datasets voc ade150 --limit 50 \
        --generators selective-search ucm mobilesam
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def worker(generator: str, dataset: str, limit: int | None) -> dict[str, float]:
    from zsseg.data import load_dataset
    from zsseg.eval import SemSegEvaluator
    from zsseg.eval.proposal_quality import oracle_label_map, segment_recall
    from zsseg.proposals import build_proposer

    ds = load_dataset(dataset, DATA, "val")
    info = ds.info
    proposer = build_proposer(generator)
    evaluator = SemSegEvaluator(info.num_classes, info.classes, info.ignore_index)
    samples = ds.samples[:limit] if limit else ds.samples
    seconds = n_props = n_gt = n_hit = best_sum = 0.0
    proposer(ds.load_image(samples[0]))  # warm-up
    for s in samples:
        image, gt = ds.load_image(s), ds.load_label(s)
        t = time.perf_counter()
        props = proposer(image)
        seconds += time.perf_counter() - t
        n_props += len(props)
        evaluator.process(oracle_label_map(props, gt, info.num_classes, info.ignore_index), gt)
        rec = segment_recall(props, gt, info.ignore_index, iou=0.5)
        n_gt += rec.num_gt_segments
        n_hit += rec.num_recalled
        best_sum += rec.mean_best_iou * rec.num_gt_segments
    n = len(samples)
    return {
        "images": n,
        "oracle_miou": evaluator.evaluate()["mIoU"],
        "recall_50": 100 * n_hit / max(n_gt, 1),
        "mean_best_iou": 100 * best_sum / max(n_gt, 1),
        "proposals_per_image": n_props / n,
        "seconds_per_image": seconds / n,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["voc", "ade150"])
    parser.add_argument("--generators", nargs="+", default=["selective-search", "ucm", "mobilesam"])
    parser.add_argument("--limit", type=int, default=None, help="first N images of each dataset")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], args.worker[1], args.limit)))
        return
    cols = "dataset | generator | images | oracle mIoU | recall@0.5 | mean best IoU | proposals/img | s/img"
    print(f"| {cols} | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for dataset in args.datasets:
        for gen in args.generators:
            cmd = [sys.executable, __file__, "--worker", gen, dataset]
            if args.limit:
                cmd += ["--limit", str(args.limit)]
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                print(f"{gen} on {dataset} failed: {res.stderr[-1500:]}", file=sys.stderr)
                continue
            r = json.loads(res.stdout.strip().splitlines()[-1])
            print(
                f"| {dataset} | {gen} | {r['images']} | {r['oracle_miou']:.1f} | {r['recall_50']:.1f} | "
                f"{r['mean_best_iou']:.1f} | {r['proposals_per_image']:.0f} | {r['seconds_per_image']:.2f} | "
                f"{r['peak_rss_mb']:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()

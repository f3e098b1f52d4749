"""``--precision auto`` on an AMX CPU against fp32, with real weights on real photos: MobileSAM's masks (its
encoder and decoder in bf16) and the ConSE pipeline's label maps (ConSE itself stays fp32 under auto).

The CPU is declared bf16-capable even where it is not (where ``auto`` would pick fp32), so the numerics can be
checked anywhere; only the speed needs AMX. For every image: MobileSAM's bf16 masks matched to the
fp32 masks (mean over fp32 masks of the best IoU), and the share of pixels where the whole pipeline's label maps
(ConSE dense, the same proposals) agree, and both runs' VOC-20 mIoU (15/5 split).

    python benchmarks/precision_agreement.py --images 200
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def best_iou(reference: np.ndarray, other: np.ndarray) -> float:
    """Mean over the masks of ``reference`` (N, H, W) of their best IoU with a mask of ``other`` (M, H, W)."""
    if len(reference) == 0:
        return 1.0 if len(other) == 0 else 0.0
    if len(other) == 0:
        return 0.0
    a = reference.reshape(len(reference), -1).astype(np.float32)
    b = other.reshape(len(other), -1).astype(np.float32)
    inter = a @ b.T
    union = a.sum(1)[:, None] + b.sum(1)[None] - inter
    return float((inter / np.maximum(union, 1)).max(1).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--per-image", action="store_true", help="one row per image, then the summary")
    args = parser.parse_args()

    import zsseg
    from zsseg import precision
    from zsseg.data import load_dataset
    from zsseg.eval import SemSegEvaluator

    precision.cpu_has_fast_bfloat16 = lambda: True  # type: ignore[assignment]  # force bf16 on any CPU
    dataset = load_dataset("voc20", DATA, "val")
    vocab = list(dataset.info.prompt_names)
    # "auto" on an AMX CPU: MobileSAM's encoder and decoder in bf16, ConSE kept in fp32
    runs = {
        p: zsseg.load("conse:efficientnet-lite0", "mobilesam", regions="dense", precision=p) for p in ("fp32", "auto")
    }
    info = dataset.info
    evals = {p: SemSegEvaluator(info.num_classes, info.classes, info.ignore_index, info.unseen_ids) for p in runs}
    if args.per_image:
        print("| image | proposals fp32 / bf16 | mask best IoU | label agreement |\n|---|---|---|---|")
    ious, agree = [], []
    for sample in dataset.samples[: args.images]:
        image, label = dataset.load_image(sample), dataset.load_label(sample)
        out = {p: seg.segment(image, vocab) for p, seg in runs.items()}
        for p, result in out.items():
            evals[p].process(result.label_map, label)
        iou = best_iou(out["fp32"].proposals.masks, out["auto"].proposals.masks)
        same = float((out["fp32"].label_map == out["auto"].label_map).mean())
        ious.append(iou)
        agree.append(same)
        if args.per_image:
            n32, n16 = len(out["fp32"].proposals), len(out["auto"].proposals)
            print(f"| {sample.id} | {n32} / {n16} | {iou:.3f} | {100 * same:.1f}% |", flush=True)
    res = {p: e.evaluate() for p, e in evals.items()}
    a = np.array(agree)
    print(f"\n{len(agree)} VOC val images; auto = MobileSAM in bf16, ConSE in fp32\n")
    print("| | fp32 | auto (bf16 SAM) |\n|---|---|---|")
    for key in ("mIoU", "mIoU_seen", "mIoU_unseen", "hIoU"):
        print(f"| {key} | {res['fp32'][key]:.1f} | {res['auto'][key]:.1f} |")
    print(f"| mask best IoU, mean over images | | {np.mean(ious):.3f} |")
    print(f"| label agreement: pixels, mean over images | | {100 * a.mean():.1f}% |")
    share = f"{100 * np.median(a):.1f}% / {100 * (a >= 0.99).mean():.0f}%"
    print(f"| label agreement: median image / images >= 99% | | {share} |")


if __name__ == "__main__":
    main()

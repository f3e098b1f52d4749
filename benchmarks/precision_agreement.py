"""A MobileSAM precision against fp32, with real weights on real photos, through the ConSE pipeline (ConSE itself
stays fp32 under auto): ``--sam auto`` is what ``--precision auto`` runs on a bf16 CPU (``mixed``: TinyViT's first
three stages fp32, the rest and the decoder bf16), ``--sam bf16`` everything in bf16, and ``--sam fp32-unfused``
fp32 with TinyViT's GELUs left unfused: outputs within ~1e-6 of the fused fp32 model's, so its agreement is the
floor that any change of kernels or rounding meets, whatever the precision.

The CPU is declared bf16-capable even where it is not (where ``auto`` would pick fp32), so the numerics can be
checked anywhere; only the speed needs AMX or AVX512-BF16. For every image: each grid point's three masks against
fp32's (mean IoU, ``--grid`` points per side: numerics alone), the proposals matched to the fp32 proposals (mean
over fp32 masks of the best IoU: numerics and the thresholds they cross), the share of pixels where the whole
pipeline's label maps agree, and both runs' VOC-20 mIoU (15/5 split).

    python benchmarks/precision_agreement.py --images 200 [--sam auto|bf16|fp32-unfused] [--bf16-from-stage K]
        [--image-size N]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import cast

import numpy as np
from torch import nn

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


def unfuse_gelu(encoder: nn.Module) -> None:
    """Replace the fused conv/linear + GELU modules of ``encoder`` by the plain pair, in place."""
    from zsseg.proposals.mobilesam_model import ConvGelu, LinearGelu

    for module in list(encoder.modules()):
        for name, child in module.named_children():
            if isinstance(child, ConvGelu):
                setattr(module, name, nn.Sequential(child.conv, nn.GELU()))
            elif isinstance(child, LinearGelu):
                setattr(module, name, nn.Sequential(child.linear, nn.GELU()))


def sam_options(run: str, bf16_from_stage: int | None, image_size: int | None) -> dict[str, object]:
    """MobileSAM's options for a run named ``fp32``, ``auto``, ``bf16`` or ``fp32-unfused``."""
    options: dict[str, object] = {"precision": run.split("-")[0]}
    if image_size is not None:
        options["image_size"] = image_size
    if run == "auto" and bf16_from_stage is not None:
        options["bf16_from_stage"] = bf16_from_stage
    return options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--per-image", action="store_true", help="one row per image, then the summary")
    parser.add_argument("--sam", choices=("auto", "bf16", "fp32-unfused"), default="auto", help="against fp32")
    parser.add_argument("--grid", type=int, default=8, help="points per side of the per-prompt mask check")
    parser.add_argument("--bf16-from-stage", type=int, default=None, help="with --sam auto: mixed from this stage")
    parser.add_argument("--image-size", type=int, default=None, help="MobileSAM's input side (default: load's)")
    args = parser.parse_args()

    import zsseg
    from zsseg import precision
    from zsseg.data import load_dataset
    from zsseg.eval import SemSegEvaluator
    from zsseg.proposals.sam import SamProposer

    precision.cpu_has_fast_bfloat16 = lambda: True  # type: ignore[assignment]  # force bf16 on any CPU
    dataset = load_dataset("voc20", DATA, "val")
    vocab = list(dataset.info.prompt_names)
    runs = {  # ConSE stays fp32 under auto and under proposal-only bf16
        p: zsseg.load(
            "conse:efficientnet-lite0",
            "mobilesam",
            regions="dense",
            proposal_options=sam_options(p, args.bf16_from_stage, args.image_size),
        )
        for p in ("fp32", args.sam)
    }
    sams = {p: cast(SamProposer, seg.proposer) for p, seg in runs.items()}  # MobileSAM's own checks need its class
    if args.sam == "fp32-unfused":
        unfuse_gelu(sams[args.sam].model.image_encoder)
    other = args.sam
    info = dataset.info
    evals = {p: SemSegEvaluator(info.num_classes, info.classes, info.ignore_index, info.unseen_ids) for p in runs}
    if args.per_image:
        print("| image | proposals fp32 / other | prompt mask IoU | proposal best IoU | label agreement |")
        print("|---|---|---|---|---|")
    ious, agree, prompt = [], [], []
    for sample in dataset.samples[: args.images]:
        image, label = dataset.load_image(sample), dataset.load_label(sample)
        out = {p: seg.segment(image, vocab) for p, seg in runs.items()}
        for p, result in out.items():
            evals[p].process(result.label_map, label)
        iou = best_iou(out["fp32"].proposals.masks, out[other].proposals.masks)
        same = float((out["fp32"].label_map == out[other].label_map).mean())
        grid = {p: sam.grid_masks(image, args.grid).flatten(2) for p, sam in sams.items()}
        union = (grid["fp32"] | grid[other]).sum(-1)
        per_prompt = float(((grid["fp32"] & grid[other]).sum(-1)[union > 0] / union[union > 0]).float().mean())
        ious.append(iou)
        agree.append(same)
        prompt.append(per_prompt)
        if args.per_image:
            n32, n16 = len(out["fp32"].proposals), len(out[other].proposals)
            print(f"| {sample.id} | {n32} / {n16} | {per_prompt:.3f} | {iou:.3f} | {100 * same:.1f}% |", flush=True)
    res = {p: e.evaluate() for p, e in evals.items()}
    a = np.array(agree)
    ran = sams[other].precision
    size = sams[other].img_size
    print(f"\n{len(agree)} VOC val images; MobileSAM at {size} px, fp32 against {other} (ran {ran}), ConSE fp32\n")
    print(f"| | fp32 | {other} ({ran}) |\n|---|---|---|")

    def show(value: float | None) -> str:  # None: no pixel of that class group in the images scored
        return "n/a" if value is None else f"{value:.1f}"

    for key in ("mIoU", "mIoU_seen", "mIoU_unseen", "hIoU"):
        print(f"| {key} | {show(res['fp32'][key])} | {show(res[other][key])} |")
    print(f"| each prompt's masks: IoU to fp32's, mean ({args.grid}x{args.grid} points) | | {np.mean(prompt):.3f} |")
    print(f"| proposals: best IoU to the fp32 set, mean over images | | {np.mean(ious):.3f} |")
    print(f"| label agreement: pixels, mean over images | | {100 * a.mean():.1f}% |")
    share = f"{100 * np.median(a):.1f}% / {100 * (a >= 0.99).mean():.0f}%"
    print(f"| label agreement: median image / images >= 99% | | {share} |")


if __name__ == "__main__":
    main()

"""Seconds per image of CLIP region embeddings: masked crops (strategy 1) against one dense pass.

For each image, 28 proposals (random ellipses; the cost of either path does not depend on their shapes) are
embedded by the real ViT-B-16 and RN50 image towers of open_clip with **random weights** (the timings are the
real models'; no weights are needed): ``crops`` = :func:`zsseg.classify.region.masked_crops` at 224 px and
``encode_image`` in batches of 32; ``dense S`` = :class:`zsseg.models.clip.dense.ClipDenseEncoder` at long
side S. fp32. Every (model, variant) is warmed up once per input shape, then timed on every image, interleaved
(repeat -> image -> model -> variant), and the median is reported.

    nice python benchmarks/clip_dense_speed.py [--images 2] [--repeats 2] [--proposals 28] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VOC = REPO.parent / "shared" / "data" / "VOCdevkit" / "VOC2012"
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


def load_images(voc: Path, count: int) -> list[np.ndarray]:
    """The first ``count`` VOC 2012 val images, uint8 (H, W, 3)."""
    from PIL import Image

    ids = (voc / "ImageSets" / "Segmentation" / "val.txt").read_text().split()[:count]
    return [np.array(Image.open(voc / "JPEGImages" / f"{i}.jpg").convert("RGB")) for i in ids]


def ellipses(height: int, width: int, count: int, seed: int) -> np.ndarray:
    """bool (count, H, W): random ellipses, 5-60% of each side."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    out = np.zeros((count, height, width), dtype=bool)
    for i in range(count):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        ry, rx = rng.uniform(0.05, 0.3) * height, rng.uniform(0.05, 0.3) * width
        out[i] = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        out[i, int(min(cy, height - 1)), int(min(cx, width - 1))] = True
    return out


def tower(arch: str) -> torch.nn.Module:
    """open_clip's image tower of ``arch`` with random weights, in eval mode."""
    import open_clip
    from open_clip.model import _build_vision_tower

    cfg = open_clip.get_model_config(arch)
    torch.manual_seed(0)
    return _build_vision_tower(cfg["embed_dim"], cfg["vision_cfg"]).eval()


def crops_fn(model: torch.nn.Module, batch: int = 32) -> Callable[[np.ndarray, np.ndarray], torch.Tensor]:
    from zsseg.classify.region import masked_crops

    @torch.inference_mode()
    def run(image: np.ndarray, masks: np.ndarray) -> torch.Tensor:
        crops = masked_crops(image, masks, 224, MEAN, STD)
        return torch.cat([F.normalize(model(crops[i : i + batch]), dim=-1) for i in range(0, len(crops), batch)])

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--voc", type=Path, default=DEFAULT_VOC, help="VOC2012 folder")
    parser.add_argument("--images", type=int, default=2, help="first N VOC val images")
    parser.add_argument("--repeats", type=int, default=2, help="timed passes over the images")
    parser.add_argument("--proposals", type=int, default=28, help="proposals per image")
    parser.add_argument("--sizes", type=int, nargs="+", default=[320, 448, 640], help="dense long sides")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args()
    from zsseg.models.clip.dense import ClipDenseEncoder

    torch.set_num_threads(args.threads)
    images = load_images(args.voc, args.images)
    masks = [ellipses(im.shape[0], im.shape[1], args.proposals, seed=i) for i, im in enumerate(images)]
    variants: dict[tuple[str, str], Callable[[np.ndarray, np.ndarray], torch.Tensor]] = {}
    for arch in ("ViT-B-16", "RN50"):
        model = tower(arch)
        variants[(arch, "crops 224")] = crops_fn(model)
        for size in args.sizes:
            variants[(arch, f"dense {size}")] = ClipDenseEncoder(model, MEAN, STD, size=size)
    for fn in variants.values():  # warm-up: one call per input shape
        for shape in {im.shape for im in images}:
            i = next(j for j, im in enumerate(images) if im.shape == shape)
            fn(images[i], masks[i])
    times: dict[tuple[str, str], list[float]] = {key: [] for key in variants}
    for _ in range(args.repeats):
        for image, mask in zip(images, masks, strict=True):
            for key, fn in variants.items():
                start = time.perf_counter()
                fn(image, mask)
                times[key].append(time.perf_counter() - start)
    print(
        f"{args.proposals} proposals/image, {len(images)} VOC val images x {args.repeats} repeats, "
        f"{args.threads} threads, fp32, median s/image"
    )
    print("| model | variant | s/image | speed-up vs crops |")
    print("|---|---|---|---|")
    for (arch, name), values in times.items():
        med = statistics.median(values)
        ref = statistics.median(times[(arch, "crops 224")])
        print(f"| {arch} | {name} | {med:.2f} | {ref / med:.1f}x |")


if __name__ == "__main__":
    main()

"""Soak: segment a few hundred images in one process and show that memory and time per image stay flat.

The images are the dev set (the bundled photo and the first VOC 2012 val images of ``../shared/data``) repeated
until ``--count``. Each image is read from disk, segmented and saved (label map, overlay, JSON) into a temporary
folder, as ``zsseg segment`` does. The table gives, per block of images, the mean and 95th percentile seconds
per image and the resident memory (RSS) at the block's end; the summary line gives the RSS growth after the
warm-up block and the change of the mean time between the first and the last block after warm-up.

    nice python benchmarks/soak.py --count 150 --model conse:efficientnet-lite0 --proposals selective-search
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
CLASSES = "aeroplane, bicycle, bird, boat, bottle, bus, car, cat, chair, cow, dining table, dog, horse, motorbike, \
person, potted plant, sheep, sofa, train, tv monitor, wall, sky, grass"


def dev_images(distinct: int) -> list[Path]:
    """The bundled photo plus the first ``distinct - 1`` VOC val images (where the shared data is present)."""
    out = [ROOT / "zsseg" / "assets" / "astronaut.jpg"]
    voc = DATA / "VOCdevkit" / "VOC2012"
    if voc.is_dir():
        ids = (voc / "ImageSets" / "Segmentation" / "val.txt").read_text().split()
        out += [voc / "JPEGImages" / f"{i}.jpg" for i in ids[: distinct - 1]]
    return out


def rss_mb() -> float:
    """Resident memory of this process now (MiB), from /proc (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300, help="images to segment in all (default: 300)")
    parser.add_argument("--distinct", type=int, default=25, help="distinct dev images, repeated (default: 25)")
    parser.add_argument("--block", type=int, default=25, help="images per table row (default: 25)")
    parser.add_argument("--model", default="conse:efficientnet-lite0")
    parser.add_argument("--proposals", default="selective-search")
    args = parser.parse_args()

    import torch

    import zsseg
    from zsseg.io import read_image

    torch.set_num_threads(2)
    paths = dev_images(args.distinct)
    seg = zsseg.load(model=args.model, proposals=args.proposals, device="cpu")
    seconds: list[float] = []
    rss: list[float] = []
    with tempfile.TemporaryDirectory() as out:
        for i in range(args.count):
            path = paths[i % len(paths)]
            t0 = time.perf_counter()
            image = read_image(path)
            result = seg.segment(image, CLASSES)
            result.save(out, f"img{i % len(paths)}", image)  # overwritten each round, like a rerun
            seconds.append(time.perf_counter() - t0)
            rss.append(rss_mb())

    print(f"soak: {args.count} images ({len(paths)} distinct), {args.model} + {args.proposals}, 1 process\n")
    print("| images | mean s/img | p95 s/img | RSS at end (MiB) |")
    print("|---|---|---|---|")
    blocks = range(0, args.count, args.block)
    means = []
    for b in blocks:
        s = np.array(seconds[b : b + args.block])
        means.append(float(s.mean()))
        end = min(b + args.block, args.count)
        print(f"| {b + 1}-{end} | {s.mean():.2f} | {np.percentile(s, 95):.2f} | {rss[end - 1]:.0f} |")
    warm = min(args.block, args.count) - 1
    growth = rss[-1] - rss[warm]
    drift = (means[-1] / means[1] - 1) * 100 if len(means) > 2 else float("nan")
    print(
        f"\nRSS after warm-up (image {warm + 1}): {rss[warm]:.0f} MiB; at the end: {rss[-1]:.0f} MiB "
        f"(growth {growth:+.0f} MiB, {growth / max(args.count - warm - 1, 1) * 100:+.1f} MiB per 100 images); "
        f"peak {max(rss):.0f} MiB. Mean time, last block vs second block: {drift:+.1f} %."
    )


if __name__ == "__main__":
    main()

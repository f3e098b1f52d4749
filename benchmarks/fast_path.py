"""The fast path against today's pipeline: seconds per stage, peak memory and speed-up per model x proposals x
region-feature mode x precision, every row measured side by side in one run.

Each configuration lives in its own worker process (so its peak RSS is its own) holding its loaded model; the
driver sends every image to every worker in turn, so the rows are interleaved in time and see the same machine
load. The reference row of each model x proposals pair is today's pipeline: masked crops, fp32. CLIP rows load
ViT-B/16 from a local checkpoint file of random weights (pretrained weights cannot be downloaded here): their
timings are the real model's, their labels are not. The mIoU column is read from ``benchmarks/region_modes.py``'s
JSON where it has the row (ConSE on VOC-20 val).

    python benchmarks/fast_path.py --images 4
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from pipeline_speed import CLASSES, images  # the same images and vocabulary as the per-stage benchmark

CLIP_FILE = Path("out/cache/clip-ViT-B-16-random.pt")
# (model, proposals, regions, precision, knobs); the first row of each model x proposals is the reference: the
# pipeline before the fast path (crops, fp32, glibc's default malloc). Knobs are proposal options, except "malloc":
# every other row runs with zsseg.malloc.tune_malloc(), as the CLI does.
DEFAULT_MALLOC = {"malloc": "default"}
CONFIGS: list[tuple[str, str, str, str, dict[str, Any]]] = []
for _model in ("conse:efficientnet-lite0", "clip-random:ViT-B-16"):
    for _props in ("mobilesam", "selective-search"):
        CONFIGS.append((_model, _props, "crops", "fp32", DEFAULT_MALLOC))
        CONFIGS += [(_model, _props, r, p, {}) for r, p in (("dense", "fp32"), ("dense", "bf16"), ("hybrid", "fp32"))]
        if _props == "mobilesam":  # stop 18's default: auto, but MobileSAM kept in fp32
            CONFIGS.append((_model, _props, "auto", "auto", {"precision": "fp32"}))
        CONFIGS.append((_model, _props, "auto", "auto", {}))  # what `zsseg segment` runs by default
        if _props == "mobilesam":  # the speed knobs: all-bf16 proposals, MobileSAM at 768 px
            CONFIGS.append((_model, _props, "auto", "bf16", {}))
            CONFIGS.append((_model, _props, "auto", "auto", {"image_size": 768}))
            CONFIGS.append((_model, _props, "auto", "bf16", {"image_size": 768}))


def clip_checkpoint() -> str:
    """A local ViT-B/16 checkpoint of random weights (made once)."""
    if not CLIP_FILE.is_file():
        import open_clip
        import torch

        CLIP_FILE.parent.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)
        torch.save(open_clip.create_model("ViT-B-16").state_dict(), CLIP_FILE)
    return str(CLIP_FILE)


def worker(config: tuple[str, str, str, str, dict[str, Any]], conn: Connection) -> None:
    """Load one configuration, then segment every path received until ``None``; reply stage seconds."""
    model, proposals, regions, precision, knobs = config
    knobs = dict(knobs)
    if knobs.pop("malloc", "tuned") == "tuned":
        from zsseg.malloc import tune_malloc

        tune_malloc()
    import zsseg

    if model.startswith("clip-random:"):
        model = f"clip:{model.split(':', 1)[1]}/{clip_checkpoint()}"
    seg = zsseg.load(model, proposals, regions=regions, precision=precision, proposal_options=knobs)
    seg.segment(zsseg.read_image(images(1)[0]), CLASSES)  # warm-up: text embeddings, first-call set-up
    conn.send("ready")
    while (path := conn.recv()) is not None:
        t = time.perf_counter()
        image = zsseg.read_image(path)
        decode = time.perf_counter() - t
        result = seg.segment(image, CLASSES)
        total = time.perf_counter() - t
        conn.send({**result.timings, "decode": decode, "total": total, "n": len(result.proposals)})
    conn.send({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, **result.settings})


def miou_lookup(paths: list[Path]) -> dict[tuple[str, str], float]:
    """(proposals, variant) -> mIoU from region_modes.py JSON files."""
    out: dict[tuple[str, str], float] = {}
    for p in paths:
        if p.is_file():
            for row in json.loads(p.read_text()):
                out[(row["generator"], row["variant"])] = row["miou"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=4, help="images per row (default 4)")
    parser.add_argument("--models", nargs="+", default=["conse:efficientnet-lite0", "clip-random:ViT-B-16"])
    parser.add_argument("--proposals", nargs="+", default=["mobilesam", "selective-search"])
    parser.add_argument("--miou-json", nargs="*", type=Path, default=sorted(Path("out").glob("region_modes*.json")))
    args = parser.parse_args()
    configs = [c for c in CONFIGS if c[0] in args.models and c[1] in args.proposals]
    if any(c[0].startswith("clip-random") for c in configs):
        clip_checkpoint()
    paths = images(args.images)
    workers = []
    spawn = multiprocessing.get_context("spawn")  # a fork after torch has started its threads can hang
    for config in configs:  # started one at a time: loading is not what is measured
        ours, theirs = spawn.Pipe()
        proc = spawn.Process(target=worker, args=(config, theirs), daemon=True)
        proc.start()
        assert ours.recv() == "ready"
        workers.append((config, ours, proc))
    sums: dict[int, dict[str, float]] = {i: {} for i in range(len(workers))}
    for path in paths:
        for i, (_, conn, _) in enumerate(workers):
            conn.send(path)
            for k, v in conn.recv().items():
                sums[i][k] = sums[i].get(k, 0.0) + v
    finals = []
    for _, conn, proc in workers:
        conn.send(None)
        finals.append(conn.recv())
        proc.join()
    miou = miou_lookup(args.miou_json)
    n = len(paths)
    print(f"\n{n} image(s) per row (astronaut 512x512 + VOC val), seconds per image, interleaved; 2-core CPU\n")
    print(
        "| model | proposals | regions | precision | malloc | proposals/img | proposals s | classify s | assemble s "
        "| total s | speed-up | peak RSS MB | VOC-20 mIoU |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    reference: dict[tuple[str, str], float] = {}
    for i, (config, _, _) in enumerate(workers):
        model, props, regions, precision, _ = config
        s = {k: v / n for k, v in sums[i].items()}
        reference.setdefault((model, props), s["total"])
        ran = finals[i].get("precision", precision)
        if finals[i].get("proposals_precision", ran) != ran:
            ran = f"{ran}, SAM {finals[i]['proposals_precision']}"
        ran_regions = finals[i].get("regions", regions)
        variant = {"crops": "crops", "dense": "dense 448", "hybrid": "hybrid 448, 25% cropped"}[ran_regions]
        knobs = dict(config[4])
        malloc = knobs.pop("malloc", "tuned")
        size = f" ({knobs['image_size']} px)" if "image_size" in knobs else ""
        same_proposals = not knobs and precision == "fp32"  # region_modes.py scored fp32 MobileSAM at 1024
        score = miou.get((props, variant)) if model.startswith("conse") and same_proposals else None
        print(
            f"| {model} | {props}{size} | {regions}"
            f"{f' (ran {ran_regions})' if ran_regions != regions else ''} | {precision}"
            f"{f' (ran {ran})' if ran != precision else ''} | {malloc} | {s['n']:.0f} | {s['proposals']:.2f} | "
            f"{s['classify']:.2f} | {s['assemble']:.2f} | {s['total']:.2f} | "
            f"{reference[(model, props)] / s['total']:.1f}x | {finals[i]['peak_rss_mb']:.0f} | "
            f"{'' if score is None else f'{score:.1f}'} |"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()

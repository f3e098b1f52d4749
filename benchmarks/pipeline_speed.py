"""Seconds per image for each pipeline stage, and peak memory, per proposal generator and backend.

Each configuration runs in its own subprocess so that its peak resident memory is its own. Classification is
batched; its time per proposal is reported too. CLIP rows use randomly initialised weights of the real
architecture (pretrained weights cannot be downloaded here): their timings are representative, their labels
are not.

    python benchmarks/pipeline_speed.py --images 5
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
CLASSES = "aeroplane, bicycle, bird, boat, bottle, bus, car, cat, chair, cow, dining table, dog, horse, motorbike, \
person, potted plant, sheep, sofa, train, tv monitor"


def images(n: int) -> list[str]:
    """The bundled photo plus the first n-1 VOC val images (if the shared data is present)."""
    out = [str(Path(__file__).resolve().parents[1] / "zsseg" / "assets" / "astronaut.jpg")]
    voc = DATA / "VOCdevkit" / "VOC2012"
    if voc.is_dir():
        ids = (voc / "ImageSets" / "Segmentation" / "val.txt").read_text().split()
        out += [str(voc / "JPEGImages" / f"{i}.jpg") for i in ids[: n - 1]]
    return out[:n]


def worker(model: str, proposals: str, paths: list[str]) -> dict[str, float]:
    """Run one configuration in this process; return mean seconds per stage and peak RSS."""
    import torch

    import zsseg
    from zsseg.classify import RegionClassifier
    from zsseg.pipeline import Segmenter
    from zsseg.proposals import build_proposer

    t0 = time.perf_counter()
    if model.startswith("clip-random:"):
        import open_clip

        from zsseg.models.clip.backend import ClipBackend

        arch = model.split(":", 1)[1]
        backend = ClipBackend(open_clip.create_model(arch), open_clip.get_tokenizer(arch), name=model)
        seg = Segmenter(build_proposer(proposals), RegionClassifier(backend))
    else:
        seg = zsseg.load(model=model, proposals=proposals)
    load_s = time.perf_counter() - t0
    seg.segment(zsseg.read_image(paths[0]), CLASSES)  # warm-up: text embeddings, lazy init
    totals: dict[str, float] = {"proposals": 0.0, "classify": 0.0, "assemble": 0.0, "total": 0.0, "n_props": 0.0}
    for p in paths:
        image = zsseg.read_image(p)
        t = time.perf_counter()
        result = seg.segment(image, CLASSES)
        totals["total"] += time.perf_counter() - t
        for k in ("proposals", "classify", "assemble"):
            totals[k] += result.timings[k]
        totals["n_props"] += len(result.proposals)
    n = len(paths)
    out = {k: v / n for k, v in totals.items()}
    out["classify_per_proposal_ms"] = 1000 * totals["classify"] / max(totals["n_props"], 1)
    out["load_s"] = load_s
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["threads"] = torch.get_num_threads()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=5, help="images per configuration (default 5)")
    parser.add_argument("--proposals", nargs="+", default=["selective-search", "ucm", "mobilesam"])
    parser.add_argument(
        "--models",
        nargs="+",
        default=["conse:efficientnet-lite0", "conse:efficientnet-lite2", "clip-random:ViT-B-16-quickgelu"],
    )
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    paths = images(args.images)
    if args.worker:
        print(json.dumps(worker(args.worker[0], args.worker[1], paths)))
        return
    rows = []
    for proposals in args.proposals:
        for model in args.models:
            cmd = [sys.executable, __file__, "--images", str(args.images), "--worker", model, proposals]
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                print(f"{model} + {proposals} failed:\n{res.stderr[-2000:]}", file=sys.stderr)
                continue
            rows.append((model, proposals, json.loads(res.stdout.strip().splitlines()[-1])))
    print(f"\n{len(paths)} image(s) per row (astronaut 512x512 + VOC val); seconds per image; 2-core CPU\n")
    header = "model | proposals | proposals/img | proposals s | classify s | ms/proposal | assemble s | total s"
    print(f"| {header} | peak RSS MB | load s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for model, proposals, r in rows:
        print(
            f"| {model} | {proposals} | {r['n_props']:.0f} | {r['proposals']:.2f} | {r['classify']:.2f} | "
            f"{r['classify_per_proposal_ms']:.1f} | {r['assemble']:.3f} | {r['total']:.2f} | {r['peak_rss_mb']:.0f} | "
            f"{r['load_s']:.1f} |"
        )


if __name__ == "__main__":
    main()

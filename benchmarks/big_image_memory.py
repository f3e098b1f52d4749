"""Peak memory and time of segmenting one huge photo (default 8000 x 6000 = 48 MP), read to saved outputs.

Each configuration runs in its own subprocess, so its peak resident memory (``ru_maxrss``) is its own. The photo
is the bundled astronaut upscaled and saved as a JPEG. ``--working-pixels none`` is the unbounded behaviour
(proposals and region features at full resolution: issue 15 measured 10.5 GB peak for 48 MP).

    nice python benchmarks/big_image_memory.py --proposals mobilesam --working-pixels 4194304 1048576
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def worker(image: str, model: str, proposals: str, working: int | None) -> dict[str, object]:
    """Read, segment and save ``image`` in this process; return seconds, peak RSS and output sizes."""
    import numpy as np
    from PIL import Image

    import zsseg
    from zsseg.io import read_image

    seg = zsseg.load(model=model, proposals=proposals, device="cpu", max_working_pixels=working)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    arr = read_image(image)
    result = seg.segment(arr, "person, rocket, american flag, wall, sky")
    with tempfile.TemporaryDirectory() as out:
        result.save(out, "big", arr)
        label = np.asarray(Image.open(Path(out) / "big.png"))
    return {
        "seconds": round(time.perf_counter() - t0, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "rss_after_load_mb": round(base),
        "label_map": list(label.shape),
        "working": list(result.proposals.image_size),
        "proposals": len(result.proposals),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs=2, default=(8000, 6000), metavar=("W", "H"))
    parser.add_argument("--model", default="conse:efficientnet-lite0")
    parser.add_argument("--proposals", default="mobilesam")
    parser.add_argument("--working-pixels", nargs="+", default=["4194304"], help="values, or 'none' (unbounded)")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        image, model, proposals, working = args.worker
        print(json.dumps(worker(image, model, proposals, None if working == "none" else int(working))))
        return

    from PIL import Image

    w, h = args.size
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.jpg"
        Image.open(ROOT / "zsseg" / "assets" / "astronaut.jpg").resize((w, h), Image.Resampling.BICUBIC).save(
            path, quality=90
        )
        print(f"{w} x {h} = {w * h / 1e6:.0f} MP JPEG, {args.model} + {args.proposals}; read, segment, save\n")
        print("| max_working_pixels | working size | proposals | label map | seconds | peak RSS MB |")
        print("|---|---|---|---|---|---|")
        for working in args.working_pixels:
            cmd = [sys.executable, __file__, "--worker", str(path), args.model, args.proposals, working]
            run = subprocess.run(cmd, capture_output=True, text=True)
            if run.returncode != 0:
                print(f"| {working} | failed: {run.stderr.strip().splitlines()[-1:]} | | | | |")
                continue
            r = json.loads(run.stdout.strip().splitlines()[-1])
            wh = "x".join(map(str, r["working"]))
            lm = "x".join(map(str, r["label_map"]))
            print(f"| {working} | {wh} | {r['proposals']} | {lm} | {r['seconds']} | {r['peak_rss_mb']} |")


if __name__ == "__main__":
    main()

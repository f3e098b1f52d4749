"""What one `zsseg segment` run costs before and around its image: wall time, model load, peak memory, imports.

Runs the README's demo command (`zsseg segment` on the bundled astronaut, the defaults) as fresh processes, each
the only job, and reads the peak resident memory of each from the kernel (``wait4``'s ``ru_maxrss``). With
``--checkout DIR`` (repeatable) the same command runs from other checkouts of zsseg too, with this repository's
interpreter, interleaved run by run, so that the rows compare side by side (e.g. a ``git worktree`` of an older
commit). A last process loads the default model through the Python API and lists which heavy packages it
imported, with its resident memory split into file-backed pages (shared libraries) and anonymous memory.

    python benchmarks/startup.py --runs 4 [--checkout ../zsseg-old]

Peak RSS counts the pages of torch's shared libraries that the process touched. How many that is depends on the
page cache: right after ``pip install`` wrote them, the kernel maps them in large folios and the same run reads
~0.35 GB higher than once they have been read back from disk (``echo 1 > /proc/sys/vm/drop_caches``, as root);
the anonymous part does not move.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLASSES = "person, american flag, rocket, sky, wall"
HEAVY = ("torchvision", "timm", "transformers", "open_clip", "segment_anything", "triton", "torch._dynamo")

PROBE = """
import sys, numpy as np, zsseg
def status():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return {k: int(fields[k].split()[0]) // 1024 for k in ("VmRSS", "RssFile", "RssAnon")}
before = status()
m = zsseg.load()
m.segment(zsseg.read_image(sys.argv[1]), sys.argv[2])
after = status()
heavy = [h for h in sys.argv[3].split(",") if h in sys.modules]
print(before["VmRSS"], after["VmRSS"], after["RssFile"], after["RssAnon"], ",".join(heavy) or "-")
"""


def run_segment(checkout: Path, out: Path) -> tuple[float, float, float]:
    """One `zsseg segment` process from ``checkout``: (wall s, load s as the CLI reports it, peak RSS MB)."""
    cmd = [sys.executable, "-c", "import sys; from zsseg.cli import main; sys.exit(main())", "segment"]
    cmd += [str(REPO / "zsseg" / "assets" / "astronaut.jpg"), "--classes", CLASSES, "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=checkout, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"zsseg segment failed in {checkout}:\n{err}")
    found = re.search(r"loaded in ([0-9.]+) s", err)
    return wall, float(found.group(1)) if found else float("nan"), usage.ru_maxrss / 1024


def probe(checkout: Path) -> list[str]:
    """Resident memory before/after load + segment through the API, and the heavy packages imported."""
    image = str(REPO / "zsseg" / "assets" / "astronaut.jpg")
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    cmd = [sys.executable, "-c", PROBE, image, CLASSES, ",".join(HEAVY)]
    out = subprocess.run(cmd, cwd=checkout, env=env, capture_output=True, text=True, check=True)
    return out.stdout.split()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4, help="processes per checkout")
    parser.add_argument("--checkout", type=Path, action="append", default=[], help="another zsseg checkout")
    parser.add_argument("--out", type=Path, default=REPO / "out" / "bench_startup")
    args = parser.parse_args()
    checkouts = [REPO, *(c.resolve() for c in args.checkout)]
    results: dict[Path, list[tuple[float, float, float]]] = {c: [] for c in checkouts}
    for i in range(args.runs):
        for j, c in enumerate(checkouts):
            results[c].append(run_segment(c, args.out / f"{j}-{i}"))
    print(f"`zsseg segment` on the astronaut with the defaults; {args.runs} processes per row, interleaved; median\n")
    print("| checkout | wall s | load s | peak RSS MB | peak RSS MB (min-max) | API: RSS after import zsseg MB "
          "| API: RSS after segment (file / anon) MB | heavy packages imported |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for c in checkouts:
        wall, load, peak = (statistics.median(x) for x in zip(*results[c], strict=True))
        lo, hi = min(r[2] for r in results[c]), max(r[2] for r in results[c])
        start, end, file_mb, anon_mb, heavy = probe(c)
        name = "this repository" if c == REPO else str(c)
        print(f"| {name} | {wall:.2f} | {load:.2f} | {peak:.0f} | {lo:.0f}-{hi:.0f} | {start} "
              f"| {end} ({file_mb} / {anon_mb}) | {heavy} |")  # fmt: skip


if __name__ == "__main__":
    main()

"""Throughput of ``zsseg batch``: local 1 vs 2 workers and Ray 1 vs 2 actors on the same images, side by side.

Each configuration segments the same VOC val images into a fresh output folder (the images are read from
``../shared/data`` through a manifest, never copied). Reported per configuration:

- ``wall s``: the whole run, worker start and model loading included;
- ``first row s``: until the first image was done (start-up: processes/actors, imports, model loading);
- ``img/s``: steady throughput by the workers' clocks (``finished_at``): images finished after every worker had
  finished its first one, divided by the time from then to the last (start-up and each worker's first image,
  which also embeds the vocabulary, left out);
- ``efficiency``: img/s with 2 workers / (2 x img/s with 1), per engine;
- ``seg s/img``: mean time inside a worker per image of that window (read, segment, write: the index's
  ``total_s``);
- ``gap s/img``: mean idle time of a worker between two consecutive images (its clock: finished - previous
  finished - seconds inside): what dispatching an image costs (queueing, scheduling, transfer of the path and
  the row); Ray's minus local's is the overhead Ray adds per image.

With one worker a local process and a Ray actor get all CPUs as torch threads; with two, each gets half. Each
configuration runs ``--repeats`` times, interleaved with the others, and its fastest run is reported.

    nice python benchmarks/batch_scaling.py --images 10 --max-proposals 20 --repeats 2
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CLASSES = "aeroplane, bicycle, bird, boat, bottle, bus, car, cat, chair, cow, dining table, dog, horse, motorbike, \
person, potted plant, sheep, sofa, train, tv monitor"


def manifest(n: int, folder: Path) -> Path:
    """A ``.txt`` manifest of the first ``n`` VOC 2012 val images (absolute paths into the shared data)."""
    voc = DATA / "VOCdevkit" / "VOC2012"
    if not voc.is_dir():
        sys.exit(f"batch_scaling: {voc} is absent: this benchmark needs the shared VOC images")
    ids = (voc / "ImageSets" / "Segmentation" / "val.txt").read_text().split()[:n]
    path = folder / "images.txt"
    path.write_text("".join(f"{voc / 'JPEGImages' / i}.jpg\n" for i in ids))
    return path


def start_ray(home: Path, cpus: int) -> None:
    """A local Ray instance whose traffic stays on 127.0.0.1 (see docs/results.md, "zsseg batch")."""
    import ray

    home.mkdir(parents=True, exist_ok=True)
    (home / "ray_bootstrap_config.yaml").write_text("provider:\n  type: local\n")
    os.environ.update(
        {
            "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_USAGE_STATS_REPORT_URL": "http://127.0.0.1:9/",
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
            "ZSSEG_CACHE": os.environ.get("ZSSEG_CACHE", str(Path("~/.cache/zsseg").expanduser())),
            "HOME": str(home),
        }
    )
    ray.init(
        address="local",  # a new instance, never another Ray running on this machine
        num_cpus=cpus,
        include_dashboard=False,
        object_store_memory=256 * 1024**2,
        logging_level=logging.ERROR,
    )


def measure(source: Path, out: Path, engine: str, workers: int, load: dict[str, Any], cpus: int) -> dict[str, float]:
    """One run into a fresh ``out``; the steady window starts when every worker has finished its first image."""
    from zsseg.batch import run_batch

    rows: list[tuple[float, str, float]] = []  # (finished, by the worker's clock; worker; seconds inside it)
    received: list[float] = []

    def on_row(row: dict[str, Any]) -> None:
        received.append(time.perf_counter())
        rows.append((row["finished_at"], row["worker"], row["total_s"]))

    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    summary = run_batch(
        source,
        out,
        CLASSES,
        load_options=load,
        engine=engine,
        workers=workers,
        cpus_per_worker=cpus / workers * (0.9 if engine == "ray" else 1.0),  # ray: leave a little for the driver
        progress=False,
        on_row=on_row,
    )
    wall = time.perf_counter() - t0
    rows.sort()
    seen: set[str] = set()
    ready = 0
    for i, (_, worker, _) in enumerate(rows):
        if worker not in seen:
            seen.add(worker)
            ready = i
    steady = rows[ready + 1 :]
    span = rows[-1][0] - rows[ready][0]
    last: dict[str, float] = {}
    gaps = []
    for finished, worker, seconds in rows:
        if worker in last:
            gaps.append(finished - last[worker] - seconds)
        last[worker] = finished
    return {
        "images": len(rows),
        "failed": summary.failed,
        "wall": wall,
        "first": received[0] - t0,
        "ips": len(steady) / span if steady and span > 0 else float("nan"),
        "seg": statistics.mean(r[2] for r in steady) if steady else float("nan"),
        "gap": statistics.mean(gaps) if gaps else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=8, help="VOC val images (default: 8)")
    parser.add_argument("--model", default="conse:efficientnet-lite0")
    parser.add_argument("--proposals", default="selective-search")
    parser.add_argument("--max-proposals", type=int, default=30, help="proposals per image (default: 30)")
    parser.add_argument("--engines", default="local,ray", help="comma-separated engines to measure")
    parser.add_argument("--repeats", type=int, default=2, help="runs per configuration; the fastest is kept")
    args = parser.parse_args()
    cpus = os.cpu_count() or 1
    load = {"model": args.model, "proposals": args.proposals, "proposal_options": {"max_proposals": args.max_proposals}}
    tmp = Path(tempfile.mkdtemp(prefix="zsseg-batch-bench-"))
    results: dict[tuple[str, int], dict[str, float]] = {}
    try:
        source = manifest(args.images, tmp)
        for _ in range(args.repeats):  # configurations interleaved, so that a noisy minute hits all of them
            for engine in args.engines.split(","):
                if engine == "ray":
                    start_ray(tmp / "home", cpus)
                for workers in (1, 2):
                    r = measure(source, tmp / f"{engine}{workers}", engine, workers, load, cpus)
                    print(f"{engine} x{workers}: {r}", file=sys.stderr, flush=True)
                    if (engine, workers) not in results or r["ips"] > results[engine, workers]["ips"]:
                        results[engine, workers] = r
                if engine == "ray":
                    import ray

                    ray.shutdown()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    setup = f"{args.model} + {args.proposals} (at most {args.max_proposals} proposals)"
    print(f"\n{args.images} VOC val images, {setup}, {cpus} CPUs\n")
    print("| engine | workers | wall s | first row s | img/s | efficiency | seg s/img | gap s/img |")
    print("|---|---|---|---|---|---|---|---|")
    for (engine, workers), r in results.items():
        base = results.get((engine, 1))
        eff = f"{r['ips'] / (workers * base['ips']):.2f}" if base and workers > 1 else "-"
        print(
            f"| {engine} | {workers} | {r['wall']:.1f} | {r['first']:.1f} | {r['ips']:.3f} | {eff} | "
            f"{r['seg']:.2f} | {r['gap']:.3f} |"
        )
    if ("ray", 1) in results and ("local", 1) in results:
        for w in (1, 2):
            added = results["ray", w]["gap"] - results["local", w]["gap"]
            print(f"\nRay adds {added:+.3f} s per image over local workers with {w} worker(s).", end="")
        print()


if __name__ == "__main__":
    main()

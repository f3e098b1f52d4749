"""The fast path against today's pipeline: seconds per stage, peak memory and speed-up per model x proposals x
region-feature mode x precision, every row measured side by side in one run.

Each configuration lives in its own worker process (so its peak RSS is its own) holding its loaded model; the
driver sends every image to every worker in turn, so the rows are interleaved in time and see the same machine
load. The reference row of each model x proposals pair is today's pipeline: masked crops, fp32. CLIP rows load
ViT-B/16 from a local checkpoint file of random weights (pretrained weights cannot be downloaded here) as
``ViT-B-16-quickgelu``, the activation ``clip:ViT-B-16/openai`` runs: their timings are the real model's, their
labels are not. The mIoU column is read from ``benchmarks/region_modes.py``'s
JSON where it has the row (ConSE on VOC-20 val).

    python benchmarks/fast_path.py --images 4 [--baseline-commit 532a6d5]

``--baseline-commit`` adds, first for each model x proposals, that commit's pipeline with its own defaults (run
from a git worktree under out/cache) and a speed-up column against it: 532a6d5 is the code the fast path was
filed against ("today's pipeline" of its issue).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from pipeline_speed import CLASSES, images  # the same images and vocabulary as the per-stage benchmark

CLIP_FILE = Path("out/cache/clip-ViT-B-16-random.pt")
# (model, proposals, regions, precision, knobs); the first row of each model x proposals is the reference: the
# pipeline before the fast path (crops, fp32, glibc's default malloc). Knobs are proposal options, except "malloc":
# every other row runs with zsseg.malloc.tune_malloc(), as the CLI does, and "commit": the row runs that commit's
# zsseg (a git worktree) with its defaults, for --baseline-commit.
DEFAULT_MALLOC = {"malloc": "default"}
CONFIGS: list[tuple[str, str, str, str, dict[str, Any]]] = []
for _model in ("conse:efficientnet-lite0", "clip-random:ViT-B-16-quickgelu"):
    for _props in ("mobilesam", "selective-search"):
        CONFIGS.append((_model, _props, "crops", "fp32", DEFAULT_MALLOC))
        CONFIGS += [(_model, _props, r, p, {}) for r, p in (("dense", "fp32"), ("dense", "bf16"), ("hybrid", "fp32"))]
        if _props == "mobilesam":  # stop 21's default: MobileSAM at its native 1024 px
            CONFIGS.append((_model, _props, "auto", "auto", {"image_size": 1024}))
        CONFIGS.append((_model, _props, "auto", "auto", {}))  # what `zsseg segment` runs by default
        if _props == "mobilesam":  # the speed knob: all-bf16 proposals
            CONFIGS.append((_model, _props, "auto", "bf16", {}))


def baseline_tree(commit: str) -> Path:
    """A git worktree of ``commit`` under out/cache (made once), whose zsseg a baseline row imports."""
    tree = Path("out/cache") / f"zsseg-{commit}"
    if not (tree / "zsseg").is_dir():
        tree.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), commit], check=True)
    return tree.resolve()


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
    commit = knobs.pop("commit", None)
    if commit is not None:  # that commit's zsseg, imported before ours can be
        sys.path.insert(0, str(baseline_tree(commit)))
    if knobs.pop("malloc", "tuned") == "tuned":
        from zsseg.malloc import tune_malloc

        tune_malloc()
    import zsseg

    if model.startswith("clip-random:"):
        model = f"clip:{model.split(':', 1)[1]}/{Path(clip_checkpoint()).resolve()}"
    if commit is not None:
        seg = zsseg.load(model, proposals, device="cpu")  # the arguments every version of load takes
    else:
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
    settings = getattr(result, "settings", {})  # a baseline commit's result may have none
    conn.send({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, **settings})


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
    parser.add_argument("--models", nargs="+", default=["conse:efficientnet-lite0", "clip-random:ViT-B-16-quickgelu"])
    parser.add_argument("--proposals", nargs="+", default=["mobilesam", "selective-search"])
    parser.add_argument("--miou-json", nargs="*", type=Path, default=sorted(Path("out").glob("region_modes*.json")))
    parser.add_argument(
        "--baseline-commit",
        default=None,
        help="also run this commit's pipeline with its defaults (e.g. 532a6d5, where the fast path was filed)",
    )
    args = parser.parse_args()
    configs = [c for c in CONFIGS if c[0] in args.models and c[1] in args.proposals]
    if args.baseline_commit:
        baseline_tree(args.baseline_commit)
        pairs = dict.fromkeys((c[0], c[1]) for c in configs)
        knobs = {"commit": args.baseline_commit, "malloc": "default"}
        configs = [(m, p, "crops", "fp32", knobs) for m, p in pairs] + configs
        configs.sort(key=lambda c: list(pairs).index((c[0], c[1])))  # stable: each pair's baseline first
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
    base = f" | vs {args.baseline_commit}" if args.baseline_commit else ""
    print(
        "| model | proposals | regions | precision | malloc | proposals/img | proposals s | classify s | assemble s "
        f"| total s | speed-up{base} | peak RSS MB | VOC-20 mIoU |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if base else ""))
    totals = {i: sums[i]["total"] / n for i in sums}
    # (model, proposals) -> seconds per image of this code's crops fp32 row, of the baseline commit's row
    reference: dict[tuple[str, str], float] = {}
    baseline: dict[tuple[str, str], float] = {}
    for i, (config, _, _) in enumerate(workers):
        target = baseline if "commit" in config[4] else reference
        target.setdefault((config[0], config[1]), totals[i])
    for i, (config, _, _) in enumerate(workers):
        model, props, regions, precision, _ = config
        s = {k: v / n for k, v in sums[i].items()}
        knobs = dict(config[4])
        malloc = knobs.pop("malloc", "tuned")
        commit = knobs.pop("commit", None)
        ran = finals[i].get("precision", precision)
        if finals[i].get("proposals_precision", ran) != ran:
            ran = f"{ran}, SAM {finals[i]['proposals_precision']}"
        ran_regions = finals[i].get("regions", regions)
        variant = {"crops": "crops", "dense": "dense 448", "hybrid": "hybrid 448, 25% cropped"}[ran_regions]
        size = finals[i].get("proposals_input_size", 1024 if commit and props == "mobilesam" else None)
        # region_modes.py scored an fp32 classifier on fp32 MobileSAM at 1024 px, and on generators without a network
        # (no precision field)
        same_run = (
            commit is None
            and size in (None, 1024)
            and finals[i].get("proposals_precision", "fp32") == "fp32"
            and finals[i].get("precision") == "fp32"
        )
        score = miou.get((props, variant)) if model.startswith("conse") and same_run else None
        label = f"{props}{f' ({size} px)' if size else ''}"
        if commit:
            regions_text, precision_text = f"{commit}'s pipeline", "its own"
        else:
            regions_text = f"{regions}{f' (ran {ran_regions})' if ran_regions != regions else ''}"
            precision_text = f"{precision}{f' (ran {ran})' if ran != precision else ''}"
        speedups = f"{reference[(model, props)] / s['total']:.1f}x"
        if base:
            speedups += f" | {baseline[(model, props)] / s['total']:.1f}x"
        print(
            f"| {model} | {label} | {regions_text} | {precision_text} | {malloc} | {s['n']:.0f} | "
            f"{s['proposals']:.2f} | {s['classify']:.2f} | {s['assemble']:.2f} | {s['total']:.2f} | {speedups} | "
            f"{finals[i]['peak_rss_mb']:.0f} | {'' if score is None else f'{score:.1f}'} |"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()

"""Mask AP and PQ on the real instance ground truth, per proposal generator and per instance setting.

Each image is segmented once per generator; every setting of ``Segmentation.instances()`` (NMS threshold, part
threshold, minimum area) is then extracted from that one result and scored by the evaluators ``zsseg eval --task
instances|panoptic`` uses, so a sweep costs one segmentation per image. The first setting is the defaults. Results
are written after every split (a killed run keeps what it finished).

    python benchmarks/instance_quality.py --generators mobilesam selective-search \
        --splits voc20:train voc20:val cityscapes:train cityscapes:val coco-stuff171:val --out results/instances.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
#: (nms_threshold, part_threshold, min_area): the defaults first, then one knob changed at a time
SETTINGS: list[tuple[float, float | None, int]] = [
    (0.5, 0.8, 64),
    (0.3, 0.8, 64),
    (0.7, 0.8, 64),
    (0.9, 0.8, 64),
    (0.5, None, 64),
    (0.5, 0.6, 64),
    (0.5, 0.95, 64),
    (0.5, 0.8, 0),
    (0.5, 0.8, 16),
    (0.5, 0.8, 256),
    (0.5, 0.8, 1024),
]


def key(setting: tuple[float, float | None, int]) -> str:
    nms, part, area = setting
    return f"nms={nms} part={'off' if part is None else part} min_area={area}"


def summary(ap: dict[str, Any], pq: dict[str, Any]) -> dict[str, Any]:
    keep_ap = ("AP", "AP50", "AP75", "num_gt_instances", "num_predictions")
    keep_pq = ("PQ", "SQ", "RQ", "PQ_th", "SQ_th", "RQ_th", "PQ_st", "SQ_st", "RQ_st")
    return {**{k: ap[k] for k in keep_ap}, **{k: pq[k] for k in keep_pq}}


def run_split(seg: Any, name: str, split: str, limit: int | None) -> dict[str, Any]:
    from zsseg.data.instances import load_instance_dataset
    from zsseg.eval.instances import InstanceAPEvaluator
    from zsseg.eval.panoptic import PanopticEvaluator

    ds = load_instance_dataset(name, DATA, split)
    samples = ds.samples[:limit] if limit else ds.samples
    evals = {key(s): (InstanceAPEvaluator(ds.info.classes, ds.thing_ids), PanopticEvaluator(ds.info.classes, ds.thing))
             for s in SETTINGS}  # fmt: skip
    seg_s = extract_s = 0.0
    for sample in samples:
        image, target = ds.load_image(sample), ds.load_target(sample)
        t = time.perf_counter()
        result = seg.segment(image, list(ds.info.prompt_names))
        seg_s += time.perf_counter() - t
        for s in SETTINGS:
            t = time.perf_counter()
            inst = result.instances(ds.stuff_names, nms_threshold=s[0], part_threshold=s[1], min_area=s[2])
            extract_s += (time.perf_counter() - t) / len(SETTINGS)
            ap, pq = evals[key(s)]
            ap.process(inst, target)
            pq.process(inst, target)
        print(f"  {name} {split} {sample.id}: {time.perf_counter() - t:.1f}s", flush=True)
    n = max(len(samples), 1)
    return {
        "dataset": name,
        "split": split,
        "images": len(samples),
        "segment_s_per_image": round(seg_s / n, 2),
        "instances_s_per_image": round(extract_s / n, 3),
        "settings": {k: summary(ap.evaluate(), pq.evaluate()) for k, (ap, pq) in evals.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generators", nargs="+", default=["mobilesam", "selective-search"])
    parser.add_argument("--splits", nargs="+", default=["voc20:train", "voc20:val", "cityscapes:train",
                                                         "cityscapes:val", "coco-stuff171:val"])  # fmt: skip
    parser.add_argument("--limit", type=int, default=None, help="first N images of each split")
    parser.add_argument("--out", type=Path, required=True, help="results JSON (updated after every split)")
    args = parser.parse_args()
    from zsseg.pipeline import load

    out: dict[str, Any] = json.loads(args.out.read_text()) if args.out.is_file() else {}
    for gen in args.generators:
        seg = load("auto", gen)
        for item in args.splits:
            name, split = item.split(":")
            tag = f"{gen} {name} {split}"
            if tag in out:
                print(f"{tag}: done before, kept", flush=True)
                continue
            t = time.perf_counter()
            out[tag] = {"generator": gen, "model": seg.model_name, **run_split(seg, name, split, args.limit)}
            out[tag]["wall_s"] = round(time.perf_counter() - t, 1)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(out, indent=1) + "\n")
            d = out[tag]["settings"][key(SETTINGS[0])]
            print(
                f"{tag}: AP {d['AP']} AP50 {d['AP50']} PQ {d['PQ']} PQ_th {d['PQ_th']} PQ_st {d['PQ_st']}", flush=True
            )


if __name__ == "__main__":
    main()

"""Score label maps written by ``zsseg segment`` against a benchmark's ground truth.

The predictions must index the dataset's vocabulary in its class order (``zsseg segment --classes-file``
with the dataset's prompt names, see ``--write-classes``). This is the same evaluator ``zsseg eval`` uses,
applied to files, so a ``segment`` run can be scored after the fact.

    python benchmarks/score_predictions.py --dataset voc20 --root ../shared/data --write-classes voc20.txt
    zsseg segment $(python benchmarks/score_predictions.py --dataset voc20 --root ../shared/data --list-images) \
        --classes-file voc20.txt --model conse:efficientnet-lite0 --out pred/
    python benchmarks/score_predictions.py --dataset voc20 --root ../shared/data --pred pred/
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from zsseg.data import load_dataset
from zsseg.eval import SemSegEvaluator, format_markdown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--root", required=True, type=Path)
    parser.add_argument("--split", default="val")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--pred", type=Path, help="folder of <id>.png predictions")
    parser.add_argument("--write-classes", type=Path, help="write the dataset's prompt names, one per line")
    parser.add_argument("--list-images", action="store_true", help="print the image paths, one per line")
    parser.add_argument("--out", type=Path, help="results JSON")
    args = parser.parse_args()
    ds = load_dataset(args.dataset, args.root, args.split)
    samples = ds.samples[: args.limit] if args.limit else ds.samples
    if args.write_classes:
        args.write_classes.write_text("\n".join(ds.info.prompt_names) + "\n")
    if args.list_images:
        print("\n".join(str(s.image_path) for s in samples))
    if args.pred is None:
        return
    info = ds.info
    evaluator = SemSegEvaluator(info.num_classes, info.classes, info.ignore_index, info.unseen_ids)
    missing = [s.id for s in samples if not (args.pred / f"{s.id}.png").is_file()]
    if missing:
        raise SystemExit(f"{len(missing)} prediction(s) missing in {args.pred}, e.g. {missing[0]}.png")
    for s in samples:
        pred = np.asarray(Image.open(args.pred / f"{s.id}.png")).astype(np.int64)
        evaluator.process(pred, ds.load_label(s))
    res = evaluator.evaluate() | {"dataset": info.name, "num_images": len(samples)}
    timings = [json.loads(p.read_text())["timings_s"]["total"] for p in sorted(args.pred.glob("*.json"))]
    res["seconds_per_image"] = float(np.mean(timings)) if timings else None
    print(format_markdown(res))
    if args.out:
        args.out.write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""``zsseg eval``: segment a benchmark split and score it (mIoU, and seen/unseen/hIoU where defined)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from zsseg.errors import ZsSegError


def register(sub: Any) -> None:
    """Add the ``eval`` sub-command to the ``zsseg`` parser."""
    from zsseg.cli_options import add_model_flags
    from zsseg.data import DATASET_NAMES

    p = sub.add_parser("eval", help="score zsseg on a benchmark (mIoU, seen/unseen/hIoU)")
    p.add_argument("--dataset", required=True, choices=DATASET_NAMES, help="benchmark")
    p.add_argument(
        "--root",
        required=True,
        type=Path,
        help="folder holding the datasets' top folders (VOCdevkit/, ADEChallengeData2016/, ...) or one of them",
    )
    p.add_argument("--split", default="val", help="split (default: val)")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N images (sorted order)")
    from zsseg.validate import path_arg

    p.add_argument("--out", type=path_arg, default=None, help="results JSON (a Markdown table is written beside it)")
    p.add_argument("--save-predictions", type=path_arg, default=None, help="folder for predicted label maps (PNG)")
    add_model_flags(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from zsseg.cli_options import segmenter_from_args
    from zsseg.data import load_dataset
    from zsseg.eval import evaluate_dataset, format_markdown
    from zsseg.io import AtomicWriter, check_out_dir, ensure_writable_dir

    if args.out is not None:  # checked before the minutes of work, whose results it must not lose
        check_out_file(args.out)
    if args.save_predictions is not None:
        check_out_dir(args.save_predictions, "--save-predictions")
    dataset = load_dataset(args.dataset, args.root, args.split)
    if len(dataset) == 0:
        raise ZsSegError(f"{args.dataset} {args.split} under {args.root} has no images: check --root and --split")
    seg = segmenter_from_args(args)
    if args.save_predictions is not None:
        ensure_writable_dir(args.save_predictions)
    print(f"zsseg: model {seg.model_name}, proposals {seg.proposer.name}", file=sys.stderr)
    t0 = time.perf_counter()
    results = evaluate_dataset(
        lambda image, vocab: seg.segment(image, vocab).label_map,
        dataset,
        limit=args.limit,
        save_predictions=args.save_predictions,
    )
    results.update(
        {
            "split": args.split,
            "model": seg.model_name,
            "proposals": seg.proposer.name,
            "templates": args.templates,
            "wall_seconds": round(time.perf_counter() - t0, 2),
            "command": " ".join(["zsseg", *sys.argv[1:]]),
        }
    )
    table = format_markdown(results)
    print(table)
    if args.out is not None:
        ensure_writable_dir(args.out.parent)
        with AtomicWriter() as writer:
            writer.write_text(args.out, json.dumps(results, indent=2) + "\n")
            writer.write_text(args.out.with_suffix(".md"), table + "\n")
    return 0


def check_out_file(out: Path) -> None:
    """Refuse an ``--out`` that is a folder (or whose Markdown twin is), or whose folder cannot be made."""
    from zsseg.io import check_out_dir

    for path in (out, out.with_suffix(".md")):
        if path.is_dir():
            raise ZsSegError(f"--out {out}: {path} is a folder: name a results file, e.g. {out / 'results.json'}")
    if out.suffix.lower() == ".md":
        raise ZsSegError(f"--out {out}: the Markdown table is written beside the JSON: name a .json file")
    check_out_dir(out.parent, "--out")

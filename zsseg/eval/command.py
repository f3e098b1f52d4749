"""``zsseg eval``: segment a benchmark split and score it: mIoU (and seen/unseen/hIoU where defined), or, with
``--task instances|panoptic``, mask AP / PQ on the datasets with instance ground truth."""

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
    from zsseg.cli_options import add_instance_flags, add_model_flags
    from zsseg.data import DATASET_NAMES
    from zsseg.data.instances import INSTANCE_DATASETS
    from zsseg.eval.instance_runner import TASKS

    p = sub.add_parser("eval", help="score zsseg on a benchmark (mIoU, seen/unseen/hIoU; mask AP; PQ)")
    p.add_argument("--dataset", required=True, choices=DATASET_NAMES, help="benchmark")
    p.add_argument(
        "--task",
        default="semantic",
        choices=TASKS,
        help="semantic: mIoU (default); instances: mask AP of the thing instances (COCOeval); panoptic: PQ/SQ/RQ. "
        f"instances and panoptic need instance ground truth: {', '.join(INSTANCE_DATASETS)}",
    )
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
    add_instance_flags(p)  # used by --task instances|panoptic; --stuff defaults to the dataset's own stuff classes
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from zsseg.io import check_out_dir

    if args.out is not None:  # checked before the minutes of work, whose results it must not lose
        check_out_file(args.out)
    if args.save_predictions is not None:
        check_out_dir(args.save_predictions, "--save-predictions")
    if args.task != "semantic":
        results, table = _run_instances(args)
    else:
        results, table = _run_semantic(args)
    print(table)
    if args.out is not None:
        from zsseg.io import AtomicWriter, ensure_writable_dir

        ensure_writable_dir(args.out.parent)
        with AtomicWriter() as writer:
            writer.write_text(args.out, json.dumps(results, indent=2) + "\n")
            writer.write_text(args.out.with_suffix(".md"), table + "\n")
    return 0


def _describe(results: dict[str, Any], args: argparse.Namespace, seg: Any, t0: float) -> None:
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


def _run_semantic(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    from zsseg.cli_options import segmenter_from_args
    from zsseg.data import load_dataset
    from zsseg.eval import evaluate_dataset, format_markdown
    from zsseg.io import ensure_writable_dir

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
    _describe(results, args, seg, t0)
    return results, format_markdown(results)


def _run_instances(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    from zsseg.cli_options import instance_options, segmenter_from_args
    from zsseg.data.instances import load_instance_dataset
    from zsseg.eval.instance_runner import evaluate_instances, format_instance_markdown, make_evaluator
    from zsseg.io import ensure_writable_dir

    dataset = load_instance_dataset(args.dataset, args.root, args.split)
    options = instance_options(args, list(dataset.info.prompt_names))
    if options["stuff"] is None:  # the ground truth's own split, so that things are scored as things
        options["stuff"] = dataset.stuff_names
    make_evaluator(args.task, dataset)  # pycocotools missing: one line before the model loads
    seg = segmenter_from_args(args)
    if args.save_predictions is not None:
        ensure_writable_dir(args.save_predictions)
    print(f"zsseg: model {seg.model_name}, proposals {seg.proposer.name}, task {args.task}", file=sys.stderr)
    t0 = time.perf_counter()
    results = evaluate_instances(
        lambda image, vocab: seg.segment(image, vocab).instances(**options),
        dataset,
        args.task,
        limit=args.limit,
        save_predictions=args.save_predictions,
    )
    _describe(results, args, seg, t0)
    results["instance_options"] = options
    return results, format_instance_markdown(results)


def check_out_file(out: Path) -> None:
    """Refuse an ``--out`` that is a folder (or whose Markdown twin is), or whose folder cannot be made."""
    from zsseg.io import check_out_dir

    for path in (out, out.with_suffix(".md")):
        if path.is_dir():
            raise ZsSegError(f"--out {out}: {path} is a folder: name a results file, e.g. {out / 'results.json'}")
    if out.suffix.lower() == ".md":
        raise ZsSegError(f"--out {out}: the Markdown table is written beside the JSON: name a .json file")
    check_out_dir(out.parent, "--out")

"""``zsseg batch``: segment a folder or manifest of images resumably, with local workers or Ray Data."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    """Add the ``batch`` sub-command to the ``zsseg`` parser."""
    from zsseg.cli_options import add_instance_flags, add_model_flags
    from zsseg.export import FORMATS

    p = sub.add_parser(
        "batch",
        help="segment a folder or manifest of images resumably, on this machine or a Ray cluster",
        description="Segment every image of INPUT into OUT: labels/<key>.png (overlays/<key>.png with --overlays) "
        "and index.parquet, one row per image. Rerun the same command to resume.",
    )
    p.add_argument(
        "input",
        metavar="INPUT",
        help="folder of images (recursive) or manifest (.txt, .csv or .parquet with a 'path' column); "
        "fsspec URLs work where fsspec and the filesystem's driver are installed",
    )
    vocab = p.add_mutually_exclusive_group(required=True)
    vocab.add_argument("--classes", help='comma-separated class names, e.g. "cat, sofa, potted plant"')
    vocab.add_argument("--classes-file", type=Path, help="class names, one per line (.txt) or a JSON list (.json)")
    p.add_argument("--out", required=True, type=Path, help="output folder (shared storage on a cluster)")
    p.add_argument("--engine", default="local", choices=("local", "ray"), help="local worker processes or Ray Data")
    p.add_argument(
        "--address",
        default=None,
        help="ray: cluster to join (auto, host:6379, ray://head:10001); default: $RAY_ADDRESS if set, "
        "else start a new local Ray instance",
    )
    p.add_argument("--workers", type=int, default=1, help="worker processes (local) or actors (ray) (default: 1)")
    p.add_argument(
        "--cpus-per-worker",
        type=float,
        default=None,
        help="local: torch threads per worker (default: CPUs / workers); ray: num_cpus per actor (default: 1)",
    )
    p.add_argument("--gpus-per-worker", type=float, default=0.0, help="ray: num_gpus per actor; > 0 runs on cuda")
    p.add_argument("--overlays", action="store_true", help="also write overlays/<key>.png (photo, colours, legend)")
    p.add_argument("--retry-failed", action="store_true", help="redo images an earlier run recorded as failed")
    p.add_argument(
        "--ship-code",
        action="store_true",
        help="ray: send this zsseg package to the cluster (runtime_env py_modules) instead of using its install",
    )
    p.add_argument("--unlabelled-threshold", type=float, default=None, help="as for zsseg segment")
    p.add_argument("--background-threshold", type=float, default=0.5, help="as for zsseg segment")
    p.add_argument(
        "--export",
        default=None,
        metavar="FORMATS",
        help=f"also write datasets of the instances into OUT/exports/<format>/, rebuilt at the end of each run: "
        f"comma-separated, of {', '.join(FORMATS)} (workers then write instances/<key>.json)",
    )
    p.add_argument(
        "--export-polygons",
        action="store_true",
        help="coco: polygons instead of RLE masks (cvat and yolo-seg always use polygons)",
    )
    add_instance_flags(p)
    add_model_flags(p)
    p.set_defaults(run=run)


def load_options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The :func:`zsseg.load` keyword arguments the flags describe (one dict, so new ``load`` flags slot in)."""
    from zsseg.cli_options import load_options

    options: dict[str, Any] = {
        **load_options(args),
        "unlabelled_threshold": args.unlabelled_threshold,
        "background_threshold": args.background_threshold,
    }
    for key in ("classifier_checkpoint", "prompts_checkpoint"):
        if options.get(key):  # workers run elsewhere: give them absolute paths
            options[key] = str(Path(options[key]).resolve())
    if options["proposal_options"].get("checkpoint"):
        options["proposal_options"]["checkpoint"] = str(Path(options["proposal_options"]["checkpoint"]).resolve())
    return options


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    from zsseg.errors import ZsSegError
    from zsseg.io import parse_classes, read_classes_file

    try:
        import pyarrow  # noqa: F401
    except ImportError as exc:
        raise ZsSegError("zsseg batch writes a Parquet index and needs pyarrow: pip install 'zsseg[ray]'") from exc
    from zsseg.batch.runner import BatchInterrupted, run_batch
    from zsseg.cli_options import instance_options
    from zsseg.export import parse_formats

    classes = read_classes_file(args.classes_file) if args.classes_file else parse_classes(args.classes)
    export = parse_formats(args.export) if args.export is not None else None
    instances = instance_options(args, classes)  # checked even without --export: a bad flag is never ignored
    runtime_env = None
    if args.ship_code:
        import zsseg

        runtime_env = {"py_modules": [str(Path(zsseg.__file__).parent)]}
    previous = signal.signal(signal.SIGTERM, _interrupt)  # a scheduler's stop (e.g. pod eviction) = Ctrl-C
    try:
        summary = run_batch(
            args.input,
            args.out,
            classes,
            load_options=load_options_from_args(args),
            engine=args.engine,
            workers=args.workers,
            cpus_per_worker=args.cpus_per_worker,
            gpus_per_worker=args.gpus_per_worker,
            overlays=args.overlays,
            retry_failed=args.retry_failed,
            address=args.address,
            runtime_env=runtime_env,
            export=export,
            instance_options=instances,
            export_options={"polygons": args.export_polygons},
        )
    except BatchInterrupted as exc:
        print(exc.summary.line(), file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(summary.line(), file=sys.stderr)
    return 1 if summary.failed else 0

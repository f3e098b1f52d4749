"""The ``zsseg`` command: ``segment``, ``proposals`` (and ``eval``, ``train``, ``serve``)."""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
import typing
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from zsseg.errors import ZsSegError
from zsseg.proposals import PROPOSER_NAMES


def _add_common(p: argparse.ArgumentParser) -> None:
    from zsseg.io import DEFAULT_MAX_PIXELS
    from zsseg.validate import path_arg

    p.add_argument("paths", nargs="+", metavar="PATH", help="images or folders of images")
    p.add_argument("--out", required=True, type=path_arg, help="output folder (created if needed; never read as input)")
    p.add_argument(
        "--max-pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        help=f"refuse images with more pixels, a decompression-bomb guard (0 = no limit; default {DEFAULT_MAX_PIXELS})",
    )


class _Parser(argparse.ArgumentParser):
    """argparse with one error line (the usage block of a sub-command runs to 30 lines): ``zsseg: error: ...``
    naming ``--help``, exit status 2."""

    def error(self, message: str) -> typing.NoReturn:
        where = "" if self.prog == "zsseg" else f"{self.prog.removeprefix('zsseg ')}: "
        self.exit(2, f"zsseg: error: {where}{message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from zsseg.cli_options import (
        add_device_flags,
        add_instance_flags,
        add_model_flags,
        add_proposer_flags,
        add_speed_flags,
        load_default,
    )
    from zsseg.result import DEFAULT_SAVE, OUTPUTS

    parser = _Parser(prog="zsseg", description="Open-vocabulary semantic segmentation.")
    sub = parser.add_subparsers(dest="command", required=True)

    seg = sub.add_parser("segment", help="label every pixel of images with classes named in plain words")
    _add_common(seg)
    vocab = seg.add_mutually_exclusive_group(required=True)
    vocab.add_argument("--classes", help='comma-separated class names, e.g. "cat, sofa, potted plant"')
    vocab.add_argument("--classes-file", type=Path, help="class names, one per line (.txt) or a JSON list (.json)")
    seg.add_argument(
        "--unlabelled-threshold",
        type=float,
        default=None,
        help="leave pixels with confidence below this (and pixels no proposal covers) unlabelled, value 255",
    )
    seg.add_argument(
        "--background-threshold",
        type=float,
        default=load_default("background_threshold"),
        help='with a "background" class: pixels whose best other class has confidence below this are background',
    )
    seg.add_argument(
        "--max-working-pixels",
        type=int,
        default=load_default("max_working_pixels"),
        help="larger images are segmented at this many pixels, label map saved at full size (default: 2048 x 2048)",
    )
    seg.add_argument(
        "--save",
        default=",".join(DEFAULT_SAVE),
        help=f"outputs per image, comma-separated: {', '.join(OUTPUTS)} (default: %(default)s); instances: "
        "<stem>.instances.json (COCO RLE masks), panoptic: <stem>.panoptic.png + .panoptic.json (COCO panoptic)",
    )
    add_instance_flags(seg)
    add_model_flags(seg)

    prop = sub.add_parser("proposals", help="write class-agnostic mask proposals of images")
    _add_common(prop)
    prop.add_argument("--method", default="auto", help=f"generator: {', '.join(PROPOSER_NAMES)} (default: auto)")
    add_device_flags(prop)
    add_speed_flags(prop, regions=False)
    add_proposer_flags(prop)

    models = sub.add_parser("models", help="list the vision-language models and proposal generators one can name")
    models.add_argument("--all", action="store_true", help="also list models whose weights are not on this machine")

    from zsseg.batch.command import register as register_batch
    from zsseg.eval.command import register as register_eval
    from zsseg.serve.command import register as register_serve
    from zsseg.train.command import register as register_train

    register_eval(sub)  # sub-commands defined beside their subsystems
    register_train(sub)
    register_serve(sub)
    register_batch(sub)
    return parser


def _error(msg: str) -> None:
    print(f"zsseg: error: {msg}", file=sys.stderr)


def _for_each_image(paths: list[Path], work: Callable[[Path], None]) -> int:
    """Run ``work`` on every image; report failures one line each; exit status 1 if any failed."""
    from tqdm import tqdm

    failed = 0
    bar = tqdm(paths, unit="img", disable=len(paths) < 2, file=sys.stderr)
    for path in bar:
        try:
            work(path)
        except ZsSegError as exc:
            failed += 1
            tqdm.write(f"zsseg: error: {exc}", file=sys.stderr)
        except Exception as exc:
            failed += 1
            if os.environ.get("ZSSEG_DEBUG"):
                traceback.print_exc()
            tqdm.write(
                f"zsseg: error: {path}: {type(exc).__name__}: {exc} (set ZSSEG_DEBUG=1 for details)", file=sys.stderr
            )
    if failed:
        _error(f"{failed} of {len(paths)} image(s) failed; outputs were written for the others")
        return 1
    return 0


def plan_inputs(args: argparse.Namespace, suffixes: tuple[str, ...]) -> tuple[list[Path], dict[Path, str]]:
    """Inputs (never from inside ``--out``) and their output stems (never clobbering an input or each other).

    Checks ``--out`` without creating it, so an error before the first image leaves no folder behind.
    """
    from zsseg.io import check_out_dir, check_out_not_input, collect_images, plan_stems

    check_out_not_input(args.paths, args.out)
    check_out_dir(args.out)
    paths = collect_images(args.paths, exclude=args.out)
    stems = dict(zip(paths, plan_stems(paths, args.out, suffixes), strict=True))
    for path, stem in stems.items():
        if stem != (path.stem or "image"):
            print(f"zsseg: note: outputs of {path} are named {stem}* (the plain name is taken)", file=sys.stderr)
    return paths, stems


def run_segment(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from zsseg.cli_options import instance_options, segmenter_from_args
    from zsseg.io import ensure_writable_dir, parse_classes, read_classes_file, read_image_info
    from zsseg.result import OUTPUTS, check_save

    classes = read_classes_file(args.classes_file) if args.classes_file else parse_classes(args.classes)
    save = check_save(args.save)
    wants_instances = bool({"instances", "panoptic"} & set(save))
    inst_options = instance_options(args, classes) if wants_instances else {}
    paths, stems = plan_inputs(args, tuple(suffix for kind in save for suffix in OUTPUTS[kind]))
    t0 = time.perf_counter()
    seg = segmenter_from_args(
        args,
        unlabelled_threshold=args.unlabelled_threshold,
        background_threshold=args.background_threshold,
        max_working_pixels=args.max_working_pixels,
    )
    print(
        f"zsseg: model {seg.model_name}, proposals {seg.proposer.name} (loaded in {time.perf_counter() - t0:.1f} s)",
        file=sys.stderr,
    )
    out = ensure_writable_dir(args.out)

    def work(path: Path) -> None:
        info = read_image_info(path, args.max_pixels)
        t = time.perf_counter()
        result = seg.segment(info.array, classes)
        instances = None
        if wants_instances:
            t_inst = time.perf_counter()
            instances = result.instances(**inst_options)
            result.timings["instances"] = time.perf_counter() - t_inst
        result.timings["total"] = time.perf_counter() - t
        extra = {"image": str(path), "input": info.summary()}
        result.save(out, stems[path], info.array, extra=extra, save=save, instances=instances)
        if instances is not None:
            tqdm.write(f"zsseg: {path}: {instances.count_line()}", file=sys.stderr)

    return _for_each_image(paths, work)


def run_proposals(args: argparse.Namespace) -> int:
    from PIL import Image

    from zsseg.cli_options import collect_proposer_options
    from zsseg.io import AtomicWriter, ensure_writable_dir, read_image
    from zsseg.proposals import build_proposer, proposer_options, resolve_name
    from zsseg.viz import draw_proposals

    paths, stems = plan_inputs(args, (".npz", "_proposals.png"))
    options = collect_proposer_options(args)
    if "precision" in proposer_options(resolve_name(args.method)):
        options["precision"] = args.precision
    proposer = build_proposer(args.method, device=args.device, **options)
    print(f"zsseg: proposals {proposer.name}", file=sys.stderr)
    out = ensure_writable_dir(args.out)

    def work(path: Path) -> None:
        image = read_image(path, args.max_pixels)
        props = proposer(image)
        stem = stems[path]
        with AtomicWriter() as writer:
            with open(writer.reserve(out / f"{stem}.npz"), "wb") as f:
                np.savez_compressed(f, masks=props.masks, scores=props.scores)
            writer.write_image(out / f"{stem}_proposals.png", Image.fromarray(draw_proposals(image, props.masks)))

    return _for_each_image(paths, work)


def run_models(args: argparse.Namespace) -> int:
    """``zsseg models``: one line per model (name, family, whether it loads here), then the proposal generators."""
    from zsseg.models import available_models

    rows = [m for m in available_models() if args.all or m.available]
    width = max(len(m.name) for m in rows)
    for m in rows:
        print(f"{m.name:<{width}}  {m.family:<6} {'here' if m.available else 'download first'}")
    if not args.all:
        print("(zsseg models --all also lists the models to download first)")
    print(f"proposal generators (--proposals): {', '.join(PROPOSER_NAMES)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:  # Ctrl-C while the parser or the libraries load: one line, not a traceback
        _error("interrupted")
        return 130


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    runners: dict[str, Callable[[argparse.Namespace], int]] = {
        "segment": run_segment,
        "proposals": run_proposals,
        "models": run_models,
    }
    runner = runners.get(args.command) or args.run
    from zsseg.io import sigterm_as_interrupt
    from zsseg.malloc import tune_malloc

    tune_malloc()  # reuse activation memory across forward passes instead of page-faulting it in each time
    from zsseg.validate import validate_namespace

    try:
        with sigterm_as_interrupt():  # SIGTERM cleans up like Ctrl-C: no half-written outputs, no .tmp files
            validate_namespace(args)
            return runner(args)
    except ZsSegError as exc:
        _error(str(exc))
        return 2
    except KeyboardInterrupt:
        _error("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())

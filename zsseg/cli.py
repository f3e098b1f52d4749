"""The ``zsseg`` command: ``segment``, ``proposals`` (and ``eval``, ``train``)."""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from zsseg.classify import MODEL_HELP
from zsseg.classify.prompts import TEMPLATE_SETS
from zsseg.errors import ZsSegError
from zsseg.proposals import PROPOSER_NAMES


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH", help="images or folders of images")
    p.add_argument("--out", required=True, type=Path, help="output folder (created if needed)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default: cpu)")
    p.add_argument("--checkpoint", default=None, help="weights file for sam:vit_b/vit_l/vit_h proposals")


def build_parser() -> argparse.ArgumentParser:
    from zsseg.cli_options import add_proposer_flags

    parser = argparse.ArgumentParser(prog="zsseg", description="Open-vocabulary semantic segmentation.")
    sub = parser.add_subparsers(dest="command", required=True)

    seg = sub.add_parser("segment", help="label every pixel of images with classes named in plain words")
    _add_common(seg)
    vocab = seg.add_mutually_exclusive_group(required=True)
    vocab.add_argument("--classes", help='comma-separated class names, e.g. "cat, sofa, potted plant"')
    vocab.add_argument("--classes-file", type=Path, help="class names, one per line (.txt) or a JSON list (.json)")
    seg.add_argument("--model", default="auto", help=f"vision-language backend: {MODEL_HELP} (default: auto)")
    seg.add_argument("--proposals", default="auto", help=f"mask proposals: {', '.join(PROPOSER_NAMES)} (default: auto)")
    seg.add_argument("--templates", default="vild", choices=TEMPLATE_SETS, help="prompt templates (default: vild)")
    seg.add_argument("--batch-size", type=int, default=32, help="crops per image-encoder pass (default: 32)")
    seg.add_argument(
        "--unlabelled-threshold",
        type=float,
        default=None,
        help="leave pixels with confidence below this (and pixels no proposal covers) unlabelled, value 255",
    )
    seg.add_argument(
        "--background-threshold",
        type=float,
        default=0.5,
        help='with a "background" class: pixels whose best other class has confidence below this are background',
    )
    from zsseg.train.command import add_classifier_flags

    add_classifier_flags(seg)
    add_proposer_flags(seg)

    prop = sub.add_parser("proposals", help="write class-agnostic mask proposals of images")
    _add_common(prop)
    prop.add_argument("--method", default="auto", help=f"generator: {', '.join(PROPOSER_NAMES)} (default: auto)")
    add_proposer_flags(prop)

    from zsseg.eval.command import register as register_eval
    from zsseg.train.command import register as register_train

    register_eval(sub)  # sub-commands defined beside their subsystems
    register_train(sub)
    from zsseg.batch.command import register as register_batch

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


def _stem(path: Path, used: set[str]) -> str:
    stem, i = path.stem, 1
    while stem in used:
        i += 1
        stem = f"{path.stem}_{i}"
    used.add(stem)
    return stem


def run_segment(args: argparse.Namespace) -> int:
    from zsseg.cli_options import segmenter_from_args
    from zsseg.io import collect_images, ensure_writable_dir, parse_classes, read_classes_file, read_image

    classes = read_classes_file(args.classes_file) if args.classes_file else parse_classes(args.classes)
    paths = collect_images(args.paths)
    out = ensure_writable_dir(args.out)
    t0 = time.perf_counter()
    seg = segmenter_from_args(
        args, unlabelled_threshold=args.unlabelled_threshold, background_threshold=args.background_threshold
    )
    print(
        f"zsseg: model {seg.model_name}, proposals {seg.proposer.name} (loaded in {time.perf_counter() - t0:.1f} s)",
        file=sys.stderr,
    )
    used: set[str] = set()

    def work(path: Path) -> None:
        image = read_image(path)
        t = time.perf_counter()
        result = seg.segment(image, classes)
        result.timings["total"] = time.perf_counter() - t
        result.save(out, _stem(path, used), image, extra={"image": str(path)})

    return _for_each_image(paths, work)


def run_proposals(args: argparse.Namespace) -> int:
    from PIL import Image

    from zsseg.cli_options import collect_proposer_options
    from zsseg.io import AtomicWriter, collect_images, ensure_writable_dir, read_image
    from zsseg.proposals import build_proposer
    from zsseg.viz import draw_proposals

    paths = collect_images(args.paths)
    out = ensure_writable_dir(args.out)
    proposer = build_proposer(args.method, device=args.device, **collect_proposer_options(args))
    print(f"zsseg: proposals {proposer.name}", file=sys.stderr)
    used: set[str] = set()

    def work(path: Path) -> None:
        image = read_image(path)
        props = proposer(image)
        stem = _stem(path, used)
        with AtomicWriter() as writer:
            with open(writer.reserve(out / f"{stem}.npz"), "wb") as f:
                np.savez_compressed(f, masks=props.masks, scores=props.scores)
            writer.write_image(out / f"{stem}_proposals.png", Image.fromarray(draw_proposals(image, props.masks)))

    return _for_each_image(paths, work)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    runners: dict[str, Callable[[argparse.Namespace], int]] = {"segment": run_segment, "proposals": run_proposals}
    runner = runners.get(args.command) or args.run
    try:
        return runner(args)
    except ZsSegError as exc:
        _error(str(exc))
        return 2
    except KeyboardInterrupt:
        _error("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""Command-line flags generated from the proposal generators' constructors (one flag per argument)."""

from __future__ import annotations

import argparse
import inspect
import re
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zsseg.proposals import PROPOSER_NAMES, flag_proposers, proposer_class, proposer_options

if TYPE_CHECKING:
    from zsseg.pipeline import Segmenter

_SIMPLE = (int, float, str, bool)
GLOBAL_KNOBS = ("precision",)
"""Generator knobs that are not per-generator flags: ``--precision`` covers the VLM and the proposals."""


def load_default(name: str) -> Any:
    """The default of :func:`zsseg.load`'s argument ``name``: every flag that stands for one of its arguments
    takes its default from here, so the command line, the API and the batch stamp cannot disagree."""
    from zsseg.pipeline import load

    return inspect.signature(load).parameters[name].default


#: :func:`zsseg.load`'s arguments that :func:`add_model_flags` makes flags of, and each flag's ``dest``
LOAD_FLAGS: dict[str, str] = {
    "model": "model",
    "proposals": "proposals",
    "device": "device",
    "templates": "templates",
    "batch_size": "batch_size",
    "regions": "regions",
    "precision": "precision",
    "dense_size": "dense_size",
    "classifier_checkpoint": "classifier",
    "prompts_checkpoint": "prompts",
    "ensemble_lambda": "ensemble_lambda",
}


def add_speed_flags(parser: argparse.ArgumentParser, regions: bool = True) -> None:
    """``--precision`` (and, for commands that classify, ``--regions`` and ``--dense-size``)."""
    from zsseg.classify.region import REGIONS
    from zsseg.precision import PRECISIONS

    parser.add_argument(
        "--precision",
        default=load_default("precision"),
        choices=PRECISIONS,
        help="network precision: auto = fp16 on CUDA, bf16 for CLIP on CPUs with AMX/AVX512-BF16 (ConSE stays "
        "fp32, MobileSAM runs mixed: its encoder's first three stages fp32), else fp32 (default: auto)",
    )
    if not regions:
        return
    parser.add_argument(
        "--regions",
        default=load_default("regions"),
        choices=REGIONS,
        help="region features: crops (the paper's masked crops), dense (one encoder pass per image), hybrid "
        "(dense + crops for the most ambiguous quarter, fused), auto = dense for ConSE, hybrid for CLIP, "
        "crops for models without a dense pass (default: auto)",
    )
    parser.add_argument(
        "--dense-size",
        type=int,
        default=load_default("dense_size"),
        help="long side of the image in the dense pass (default: 448)",
    )


def arg_docs(obj: Any) -> dict[str, str]:
    """Parse a Google-style ``Args:`` docstring section into {argument: first sentence of its description}."""
    doc = inspect.getdoc(obj) or ""
    m = re.search(r"^Args:\n(.*?)(?:\n\S|\Z)", doc, flags=re.S | re.M)
    out: dict[str, str] = {}
    if not m:
        return out
    current = None
    for line in m.group(1).splitlines():
        head = re.match(r"^\s{4}(\w+)(?:\s*\([^)]*\))?:\s*(.*)$", line)
        if head:
            current = head.group(1)
            out[current] = head.group(2).strip()
        elif current and line.strip():
            out[current] += " " + line.strip()
    return out


def _flag_type(annotation: Any) -> tuple[Any, dict[str, Any]]:
    """argparse ``type`` and extra kwargs for a constructor annotation."""
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if annotation in _SIMPLE:
        base = annotation
    elif origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) and len(args) == 1:
        return _flag_type(args[0])
    elif origin is tuple and args:
        return args[0], {"nargs": "+"}
    else:
        base = str
    if base is bool:
        return None, {"action": argparse.BooleanOptionalAction}
    return base, {}


def add_proposer_flags(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Add one flag per knob of every generator; returns {dest: flag}. Flags default to None (= unset)."""
    group = parser.add_argument_group("proposal generator options (each applies to the generators named)")
    owners: dict[str, list[str]] = {}
    params: dict[str, inspect.Parameter] = {}
    docs: dict[str, str] = {}
    for name in flag_proposers():
        try:
            opts = proposer_options(name)
        except ImportError:
            continue
        cls = proposer_class(name)
        hints = typing.get_type_hints(cls.__init__)  # type: ignore[misc]
        for key, p in opts.items():
            if key in GLOBAL_KNOBS:
                continue
            owners.setdefault(key, []).append(name.split(":")[0])
            params.setdefault(key, p.replace(annotation=hints.get(key, str)))
            docs.setdefault(key, arg_docs(cls).get(key, ""))
    flags = {}
    for key, p in sorted(params.items()):
        flag = "--" + key.replace("_", "-")
        ftype, extra = _flag_type(p.annotation)
        kwargs: dict[str, Any] = {"dest": f"opt_{key}", "default": None, **extra}
        if ftype is not None:
            kwargs["type"] = ftype
            kwargs["metavar"] = ftype.__name__.upper()
        kinds = "/".join(dict.fromkeys(owners[key]))
        help_text = docs[key].replace("%", "%%")
        kwargs["help"] = f"[{kinds}] {help_text} (default: {p.default})"
        group.add_argument(flag, **kwargs)
        flags[f"opt_{key}"] = flag
    return flags


def add_device_flags(parser: argparse.ArgumentParser) -> None:
    """``--device`` and ``--checkpoint`` (SAM weights): every command that runs a network."""
    parser.add_argument(
        "--device", default=load_default("device"), help="auto (CUDA if present, else CPU), cpu, cuda, cuda:N or mps"
    )
    parser.add_argument("--checkpoint", default=None, help="weights file for sam:vit_b/vit_l/vit_h proposals")


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of :func:`zsseg.load` that ``segment``, ``eval``, ``serve`` and ``batch`` share (read them back
    with :func:`load_options`)."""
    from zsseg.models import MODEL_HELP
    from zsseg.prompts import TEMPLATE_SETS

    d = load_default
    parser.add_argument("--model", default=d("model"), help=f"vision-language backend: {MODEL_HELP} (default: auto)")
    proposals_help = f"mask proposals: {', '.join(PROPOSER_NAMES)} (default: {d('proposals')})"
    parser.add_argument("--proposals", default=d("proposals"), help=proposals_help)
    templates, batch = d("templates"), d("batch_size")
    parser.add_argument("--templates", default=templates, choices=TEMPLATE_SETS, help=f"prompt templates ({templates})")
    parser.add_argument("--batch-size", type=int, default=batch, help=f"crops per image-encoder pass ({batch})")
    add_device_flags(parser)
    add_speed_flags(parser)
    add_classifier_flags(parser)
    add_proposer_flags(parser)


def load_options(args: argparse.Namespace) -> dict[str, Any]:
    """The :func:`zsseg.load` keyword arguments that :func:`add_model_flags`' flags describe."""
    options = {name: getattr(args, dest, load_default(name)) for name, dest in LOAD_FLAGS.items()}
    return options | {"proposal_options": collect_proposer_options(args)}


def add_classifier_flags(p: argparse.ArgumentParser) -> None:
    """``--classifier``, ``--prompts`` and ``--lambda`` for ``zsseg segment`` / ``zsseg eval``."""
    p.add_argument(
        "--classifier",
        type=Path,
        default=None,
        help="strategy-2 checkpoint (zsseg train --what strategy2), ensembled with the frozen classifier",
    )
    p.add_argument(
        "--prompts", type=Path, default=None, help="learned prompts (zsseg train --what prompts) instead of --templates"
    )
    p.add_argument(
        "--lambda",
        dest="ensemble_lambda",
        metavar="LAMBDA",
        type=float,
        default=None,
        help="ensemble exponent for --classifier, in [0, 1] (default: the checkpoint's, 0.8)",
    )


def classifier_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of :func:`zsseg.pipeline.load` from :func:`add_classifier_flags`' flags."""
    return {
        "classifier_checkpoint": getattr(args, "classifier", None),
        "prompts_checkpoint": getattr(args, "prompts", None),
        "ensemble_lambda": getattr(args, "ensemble_lambda", None),
    }


def segmenter_from_args(args: argparse.Namespace, **extra: Any) -> Segmenter:
    """Build the :class:`~zsseg.pipeline.Segmenter` that :func:`add_model_flags`' flags describe."""
    from zsseg.pipeline import load

    return load(**load_options(args), **extra)


def collect_proposer_options(args: argparse.Namespace) -> dict[str, Any]:
    """The generator knobs the user set on the command line (and ``--checkpoint``), as keyword arguments."""
    out = {}
    for dest, value in vars(args).items():
        if dest.startswith("opt_") and value is not None:
            out[dest[4:]] = tuple(value) if isinstance(value, list) else value
    if getattr(args, "checkpoint", None):
        out["checkpoint"] = args.checkpoint
    return out


def _part_threshold(text: str) -> float | None:
    return None if text.strip().lower() in ("none", "off") else float(text)


def add_instance_flags(p: argparse.ArgumentParser) -> None:
    """``--stuff``, ``--nms-threshold``, ``--part-threshold``, ``--min-area``: :meth:`Segmentation.instances`'s
    arguments, with its defaults."""
    from zsseg.result import Segmentation

    params = inspect.signature(Segmentation.instances).parameters
    p.add_argument(
        "--stuff",
        default=None,
        help='comma-separated classes that are stuff: one region each, not counted (e.g. "sky, wall, road"); '
        "default: a built-in list of common stuff names decides (the JSON says which)",
    )
    p.add_argument(
        "--nms-threshold",
        type=float,
        default=params["nms_threshold"].default,
        help="instances of one class whose proposals overlap with IoU >= this merge (default: %(default)s)",
    )
    p.add_argument(
        "--part-threshold",
        type=_part_threshold,
        default=params["part_threshold"].default,
        help="a proposal lying this much inside a larger one of its class merges into it; 'off' disables "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--min-area",
        type=int,
        default=params["min_area"].default,
        help="drop instances and stuff regions of fewer pixels (default: %(default)s)",
    )


def instance_options(args: argparse.Namespace, classes: list[str]) -> dict[str, Any]:
    """The keyword arguments of :meth:`Segmentation.instances` the flags of :func:`add_instance_flags` give,
    checked against the vocabulary before any work (one error line naming the flag)."""
    from zsseg.instances import check_instance_options, resolve_stuff
    from zsseg.instances.stuff import parse_stuff

    options = {"nms_threshold": args.nms_threshold, "part_threshold": args.part_threshold, "min_area": args.min_area}
    check_instance_options(**options)
    stuff = parse_stuff(args.stuff)
    resolve_stuff(classes, stuff)
    return {"stuff": stuff, **options}

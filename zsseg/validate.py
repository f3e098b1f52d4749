"""One validation layer for the command line and the Python API: ranges, choices, devices, combinations.

Every rule is one row of :data:`RULES`, keyed by the API argument name (= the argparse ``dest``), so
``zsseg segment --batch-size 0`` and ``zsseg.load(batch_size=0)`` fail with the same message::

    batch_size (--batch-size) must be an integer >= 1, got 0: crops per image-encoder pass

Public API (also used by ``zsseg serve`` and ``zsseg batch``):

- :func:`resolve_device` (``auto|cpu|cuda|cuda:N|mps`` -> a device that exists here, or one error line),
- :func:`check_values` (any mapping of argument names to values, for one scope),
- :func:`validate_load_args` (the keyword arguments of :func:`zsseg.load`; returns them with the device resolved),
- :func:`validate_namespace` (a parsed ``zsseg`` command line),
- :func:`path_arg` (argparse ``type`` for paths: refuses ``""``).

A new option is one line: ``Rule("dense_size", "--dense-size", int, low=32, scopes=LOAD)`` or
``Rule("precision", "--precision", str, choices=("auto", "fp32", "bf16", "fp16"), scopes=LOAD)``.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Integral, Real
from pathlib import Path
from typing import Any

from zsseg.classify.region import REGIONS
from zsseg.errors import ZsSegError
from zsseg.precision import PRECISIONS

LOAD = ("load", "segment", "eval")
"""Scopes of :func:`zsseg.load`'s arguments: the API and the sub-commands that build a segmenter."""
PROPOSER = ("proposer",)
"""Scope of proposal-generator knobs (``proposal_options`` in the API, ``--<knob>`` flags on the CLI)."""


@dataclass(frozen=True)
class Rule:
    """What one argument accepts.

    Args:
        name: API argument name (= argparse ``dest``).
        flag: command-line flag.
        kind: ``int``, ``float`` or ``str``.
        low: smallest value allowed (None: no bound).
        high: largest value allowed (None: no bound).
        low_open: ``low`` itself is excluded.
        choices: allowed strings (``kind`` str).
        hint: what the argument means, appended to the message.
        scopes: where the rule applies: ``load``, ``segment``, ``proposals``, ``eval``, ``train``, ``proposer``.
    """

    name: str
    flag: str
    kind: type
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple[str, ...] | None = None
    hint: str = ""
    scopes: tuple[str, ...] = LOAD

    def expected(self) -> str:
        what = {int: "an integer", float: "a number", str: "one of"}[self.kind]
        if self.choices is not None:
            return f"one of {', '.join(self.choices)}"
        if self.low is not None and self.high is not None:
            return f"{what} in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}]"
        if self.low is not None:
            return f"{what} {'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"{what} <= {self.high:g}"
        return what

    def check(self, value: Any) -> None:
        """Raise :class:`ZsSegError` unless ``value`` is None or allowed."""
        if value is None:
            return
        ok = True
        if self.kind is str:
            ok = isinstance(value, str) and (self.choices is None or value in self.choices)
        elif isinstance(value, bool) or not isinstance(value, Integral if self.kind is int else Real):
            ok = False
        else:
            v = float(value)
            ok = math.isfinite(v)
            if ok and self.low is not None:
                ok = v > self.low if self.low_open else v >= self.low
            if ok and self.high is not None:
                ok = v <= self.high
        if not ok:
            hint = f": {self.hint}" if self.hint else ""
            raise ZsSegError(f"{self.name} ({self.flag}) must be {self.expected()}, got {value!r}{hint}")


_T = ("train",)
RULES: dict[str, list[Rule]] = {}
"""Rules by argument name (a name may have one rule per scope, e.g. ``limit`` of eval and train)."""


def add_rule(rule: Rule) -> None:
    """Register a rule (one line per new option)."""
    RULES.setdefault(rule.name, []).append(rule)


for _rule in (
    # zsseg.load / segment / eval
    Rule("batch_size", "--batch-size", int, low=1, hint="crops per image-encoder pass"),
    Rule("templates", "--templates", str, choices=("single", "vild", "imagenet"), scopes=("segment", "eval")),
    Rule("unlabelled_threshold", "--unlabelled-threshold", float, 0, 1, hint="a confidence"),
    Rule("background_threshold", "--background-threshold", float, 0, 1, hint="a confidence"),
    Rule("ensemble_lambda", "--lambda", float, 0, 1, hint="the ensemble's exponent"),
    Rule("max_working_pixels", "--max-working-pixels", int, low=4096, hint="pixels of the working resolution"),
    Rule("regions", "--regions", str, choices=REGIONS, scopes=LOAD),
    Rule("precision", "--precision", str, choices=PRECISIONS, scopes=LOAD),
    Rule("dense_size", "--dense-size", int, low=32, hint="pixels of the dense feature grid's input", scopes=LOAD),
    Rule("leftover_min_fraction", "--leftover-min-fraction", float, low=0, scopes=("load",)),
    Rule("max_pixels", "--max-pixels", int, low=0, hint="0 = no limit", scopes=("segment", "proposals")),
    Rule("limit", "--limit", int, low=1, hint="the number of images to use", scopes=("eval", "train")),
    # train
    Rule("epochs", "--epochs", int, low=1, scopes=_T),
    Rule("lr", "--lr", float, low=0, low_open=True, scopes=_T),
    Rule("batch_size", "--batch-size", int, low=1, hint="regions per step", scopes=_T),
    Rule("weight_decay", "--weight-decay", float, low=0, scopes=_T),
    Rule("seed", "--seed", int, low=0, scopes=_T),
    Rule("last_blocks", "--last-blocks", int, low=1, scopes=_T),
    Rule("backbone_lr_mult", "--backbone-lr-mult", float, low=0, scopes=_T),
    Rule("lambda_", "--lambda", float, 0, 1, hint="the ensemble's exponent", scopes=_T),
    Rule("n_ctx", "--n-ctx", int, low=1, scopes=_T),
    Rule("logit_scale", "--logit-scale", float, low=0, low_open=True, scopes=_T),
    Rule("min_area", "--min-area", float, 0, 1, hint="a fraction of the image", scopes=_T),
    # proposal generators' knobs the generators do not check themselves
    Rule("pred_iou_thresh", "--pred-iou-thresh", float, 0, 1, scopes=PROPOSER),
    Rule("stability_score_thresh", "--stability-score-thresh", float, 0, 1, scopes=PROPOSER),
    Rule("box_nms_thresh", "--box-nms-thresh", float, 0, 1, scopes=PROPOSER),
):
    add_rule(_rule)


def check_values(values: Mapping[str, Any], scope: str) -> None:
    """Check every value that has a rule in ``scope``; unknown names are left to their consumer."""
    for name, value in values.items():
        for rule in RULES.get(name, ()):
            if scope in rule.scopes:
                rule.check(value)


_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def resolve_device(device: Any) -> str:
    """``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``, checked against this machine.

    Returns:
        the device to use, e.g. ``cpu`` or ``cuda:0``.

    Raises:
        ZsSegError: an unknown device string, or a device this machine does not have.
    """
    import torch

    text = "auto" if device is None else str(device).strip().lower()
    if not _DEVICE.match(text):
        raise ZsSegError(f"device (--device) {device!r} is not a device: use auto, cpu, cuda, cuda:N or mps")
    if text == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if text.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ZsSegError(
                f"device (--device) {text}: no CUDA GPU is usable here (torch {torch.__version__}, CUDA "
                f"{torch.version.cuda or 'not compiled in'}): use --device cpu, or auto"
            )
        index = int(text.split(":")[1]) if ":" in text else 0
        if index >= torch.cuda.device_count():
            raise ZsSegError(
                f"device (--device) {text}: this machine has {torch.cuda.device_count()} CUDA GPU(s): "
                f"use cuda:0 to cuda:{torch.cuda.device_count() - 1}"
            )
    if text == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ZsSegError("device (--device) mps: Apple's MPS is not available here: use --device cpu, or auto")
    return text


def _check_combinations(values: Mapping[str, Any]) -> None:
    if values.get("ensemble_lambda") is not None and values.get("classifier_checkpoint") is None:
        raise ZsSegError(
            "ensemble_lambda (--lambda) only applies to a strategy-2 checkpoint: add --classifier CKPT "
            "(classifier_checkpoint=) or drop --lambda"
        )


def validate_load_args(**kwargs: Any) -> dict[str, Any]:
    """Check the keyword arguments of :func:`zsseg.load`; return them with ``device`` resolved.

    Raises:
        ZsSegError: the first argument out of its range or choices, an unavailable device, ``--lambda``
            without ``--classifier``.
    """
    for name in ("model", "proposals"):
        if name in kwargs and (not isinstance(kwargs[name], str) or not kwargs[name].strip()):
            raise ZsSegError(f"{name} (--{name}) must be a non-empty name, got {kwargs[name]!r}: e.g. auto")
    templates = kwargs.get("templates")
    if templates is not None and not isinstance(templates, str):
        if not templates or not all(isinstance(t, str) and "{}" in t for t in templates):
            raise ZsSegError(
                "templates must be single, vild, imagenet, or a list of strings each holding {}, "
                'e.g. ["a photo of a {}."]'
            )
    elif isinstance(templates, str):
        for rule in RULES["templates"]:
            rule.check(templates)
    check_values(kwargs, "load")
    options = kwargs.get("proposal_options") or {}
    if not isinstance(options, Mapping) or not all(isinstance(k, str) for k in options):
        raise ZsSegError("proposal_options must be a dict of keyword arguments of the proposal generator")
    check_values(options, "proposer")
    _check_combinations(kwargs)
    out = dict(kwargs)
    if "device" in out:
        out["device"] = resolve_device(out["device"])
    return out


def validate_namespace(args: argparse.Namespace) -> None:
    """Check a parsed ``zsseg`` command line in place (``args.device`` becomes the resolved device)."""
    command = getattr(args, "command", "")
    values = vars(args)
    check_values(values, command)
    check_values({k[4:]: v for k, v in values.items() if k.startswith("opt_")}, "proposer")
    if command in ("segment", "eval"):
        lambda_ = values.get("ensemble_lambda")
        _check_combinations({"ensemble_lambda": lambda_, "classifier_checkpoint": values.get("classifier")})
    if "device" in values:
        args.device = resolve_device(args.device)


def path_arg(text: str) -> Path:
    """argparse ``type`` of path flags: an empty string is refused (it would mean the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty path: name a file or folder, e.g. results/")
    return Path(text)

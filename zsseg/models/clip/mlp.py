"""open_clip's transformer MLPs with their activation fused into the first matmul, for bf16 inference on CPU.

An open_clip block's MLP is ``nn.Sequential(c_fc, gelu, c_proj)``. OpenAI's weights need QuickGELU,
``h * sigmoid(1.702 h)``, which PyTorch runs as three passes over the (tokens, 4 x width) hidden activations.
oneDNN can apply ``swish(z) = z * sigmoid(z)`` while the matmul's output is still in cache, and

    quick_gelu(h) = swish(1.702 h) / 1.702,   1.702 h = (1.702 x) W^T + 1.702 b,

so the MLP becomes one matmul with a swish post-op on the input scaled by 1.702 (a pass over the 4x narrower
input), and ``c_proj`` with the 1 / 1.702 as its GEMM's alpha. The parameters are not touched: strategy 2 copies
and saves these layers, and training (gradients enabled) takes the plain path. Exact-GELU MLPs get oneDNN's GELU
post-op the same way. bf16, 7 crops of 224 px through the ViT-B/16 image tower: 227 -> 205 ms with QuickGELU;
CLIP's classify stage with the defaults 0.37 -> 0.34 s per VOC image (``docs/results.md`` §9).
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from zsseg.onednn import linear_pointwise, onednn_ready

_QUICK_GELU_SCALE = 1.702


def _kind(act: nn.Module) -> str | None:
    from open_clip.transformer import QuickGELU

    if isinstance(act, QuickGELU):
        return "quick"
    if type(act) is nn.GELU and act.approximate == "none":
        return "gelu"
    return None


class FusedMlp(nn.Sequential):
    """An open_clip ``mlp`` (``c_fc``, ``gelu``, ``c_proj``) whose bf16 CPU inference runs the activation as a
    oneDNN post-op of ``c_fc``; any other call (float32, CUDA, gradients enabled) runs the plain Sequential.

    Input and output: (..., width), the dtype of the weights.

    Attributes:
        activation: ``"quick"`` (QuickGELU) or ``"gelu"`` (exact GELU), set by :func:`fuse_mlps`.
    """

    activation: str

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fc: nn.Linear = self.c_fc  # type: ignore[assignment]
        pj: nn.Linear = self.c_proj  # type: ignore[assignment]
        kind = self.activation
        if (
            torch.is_grad_enabled()
            or not onednn_ready(x)
            or x.dtype != torch.bfloat16
            or fc.weight.dtype != torch.bfloat16
            or pj.weight.dtype != torch.bfloat16
        ):
            return super().forward(x)  # type: ignore[no-any-return]
        if kind == "gelu":
            return F.linear(linear_pointwise(x, fc.weight, fc.bias, "gelu", "none"), pj.weight, pj.bias)
        bias = None if fc.bias is None else fc.bias * _QUICK_GELU_SCALE
        h = linear_pointwise(x * _QUICK_GELU_SCALE, fc.weight, bias, "swish")
        h = h.reshape(-1, h.shape[-1])
        if pj.bias is None:
            out = torch.mm(h, pj.weight.t()).mul_(1 / _QUICK_GELU_SCALE)
        else:
            out = torch.addmm(pj.bias, h, pj.weight.t(), alpha=1 / _QUICK_GELU_SCALE)
        return out.view(*x.shape[:-1], out.shape[-1])


def fuse_mlps(model: nn.Module) -> int:
    """Switch every open_clip MLP of ``model`` (a Sequential of Linear ``c_fc``, QuickGELU or exact GELU ``gelu``,
    Linear ``c_proj``) to :class:`FusedMlp`, in place: same parameters and state-dict keys. No-op where PyTorch has
    no oneDNN or the CPU no native bf16 (nothing would take the fused path). Returns how many were switched."""
    from zsseg.precision import cpu_has_fast_bfloat16

    if not torch.backends.mkldnn.is_available() or not cpu_has_fast_bfloat16():
        return 0
    switched = 0
    for module in model.modules():
        if type(module) is not nn.Sequential or len(module) != 3:
            continue
        kind = _kind(getattr(module, "gelu", nn.Identity()))
        if kind is not None and all(isinstance(getattr(module, n, None), nn.Linear) for n in ("c_fc", "c_proj")):
            module.__class__ = FusedMlp
            cast(FusedMlp, module).activation = kind
            switched += 1
    return switched

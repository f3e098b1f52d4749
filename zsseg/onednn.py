"""oneDNN's fused CPU ops, as the fast path calls them: a matmul whose activation is applied while its output is
still in cache (a post-op), instead of in a second pass over the output.

MobileSAM's TinyViT (:mod:`zsseg.proposals.mobilesam_model`) and CLIP's MLPs
(:mod:`zsseg.models.clip.mlp`) both go through :func:`linear_pointwise`.
"""

from __future__ import annotations

import torch


def onednn_ready(x: torch.Tensor) -> bool:
    """Whether ``x`` can go through oneDNN's fused ops: a CPU tensor, with oneDNN built in."""
    return x.device.type == "cpu" and torch.backends.mkldnn.is_available()


def linear_pointwise(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, post_op: str, algorithm: str = ""
) -> torch.Tensor:
    """``post_op(x @ weight.T + bias)`` as one oneDNN matmul (``torch.ops.mkldnn._linear_pointwise``, what
    inductor emits for such pairs); only where :func:`onednn_ready` holds.

    Args:
        x: (..., in) float32 or bfloat16, the dtype of ``weight``.
        weight: (out, in). bias: (out,) or None.
        post_op: oneDNN's name for the activation: ``"gelu"`` (then ``algorithm="none"`` for exact GELU) or
            ``"swish"`` (``z * sigmoid(z)``).

    Returns:
        (..., out), the dtype of ``x``.
    """
    out = torch.ops.mkldnn._linear_pointwise(x.reshape(-1, x.shape[-1]), weight, bias, post_op, [], algorithm)
    return out.view(*x.shape[:-1], -1)  # type: ignore[no-any-return]

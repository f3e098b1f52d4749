"""MobileSAM's TinyViT with its conv/linear + GELU pairs fused: the same outputs as the plain modules."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from zsseg_testing import needs_native_bf16

from zsseg.proposals.mobilesam_model import ConvGelu, LinearGelu, fuse_conv_bn, fuse_conv_gelu
from zsseg.proposals.tinyvit import TinyViT


@pytest.mark.parametrize("mkldnn", [True, False])
def test_conv_and_linear_gelu_match_the_plain_modules(mkldnn: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: mkldnn)  # False: the fallback path
    torch.manual_seed(0)
    x = torch.randn(2, 8, 12, 10)
    for conv in (nn.Conv2d(8, 16, 1), nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8)):
        with torch.inference_mode():
            want = nn.functional.gelu(conv(x))
            assert torch.allclose(ConvGelu(conv)(x), want, atol=1e-5)
            cl = x.contiguous(memory_format=torch.channels_last)
            assert torch.allclose(ConvGelu(conv.to(memory_format=torch.channels_last))(cl), want, atol=1e-5)
    linear = nn.Linear(8, 24)
    tokens = torch.randn(2, 5, 8)
    with torch.inference_mode():
        out = LinearGelu(linear)(tokens)
        assert out.shape == (2, 5, 24)
        assert torch.allclose(out, nn.functional.gelu(linear(tokens)), atol=1e-5)


@pytest.mark.parametrize("mkldnn", [pytest.param(True, marks=needs_native_bf16), False])
def test_linear_gelu_in_bf16_matches_float32(mkldnn: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """oneDNN's fused bf16 linear + GELU (True) exists only on CPUs with native bf16; the fallback runs anywhere."""
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: mkldnn)
    torch.manual_seed(0)
    linear = nn.Linear(8, 24)
    tokens = torch.randn(2, 5, 8)
    with torch.inference_mode():
        out = nn.functional.gelu(linear(tokens))
        bf16 = LinearGelu(copy.deepcopy(linear).bfloat16())(tokens.bfloat16())
        assert bf16.dtype == torch.bfloat16
        assert torch.allclose(bf16.float(), out, atol=0.05)


def test_fused_tinyvit_matches_the_plain_one() -> None:
    torch.manual_seed(0)
    encoder = TinyViT(img_size=128, embed_dims=(16, 32, 40, 320), depths=(1, 1, 2, 1), num_heads=(1, 2, 2, 10)).eval()
    fuse_conv_bn(encoder)
    fused = copy.deepcopy(encoder)
    # patch embedding 1, MBConv 2 per block, PatchMerging 2 per stage change (3), one MLP per attention block (4)
    assert fuse_conv_gelu(fused) == 1 + 2 + 2 * 3 + 4
    assert sum(isinstance(m, nn.GELU) for m in fused.modules()) == 1  # MBConv's act3 follows a residual sum
    x = torch.randn(1, 3, 128, 128)
    with torch.inference_mode():
        want = encoder(x)
        assert want.shape == (1, 256, 8, 8)
        assert torch.allclose(fused(x), want, atol=1e-4)

"""open_clip MLPs with the activation fused into the first matmul: same function, same parameters."""

import copy

import open_clip
import pytest
import torch
from torch import nn

from zsseg.models.clip.mlp import FusedMlp, fuse_mlps
from zsseg.precision import cpu_has_fast_bfloat16

pytestmark = pytest.mark.skipif(
    not (torch.backends.mkldnn.is_available() and cpu_has_fast_bfloat16()), reason="needs oneDNN and native bf16"
)


def tiny_clip(quick_gelu: bool) -> nn.Module:
    torch.manual_seed(0)
    return open_clip.CLIP(
        embed_dim=16,
        vision_cfg={"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
        text_cfg={"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
        quick_gelu=quick_gelu,
    ).eval()


def reference_mlp(mlp: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """The MLP in float64: c_proj(act(c_fc(x)))."""
    h = nn.functional.linear(x.double(), mlp.c_fc.weight.double(), mlp.c_fc.bias.double())
    h = h * torch.sigmoid(1.702 * h) if isinstance(mlp.gelu, open_clip.transformer.QuickGELU) else nn.functional.gelu(h)
    return nn.functional.linear(h, mlp.c_proj.weight.double(), mlp.c_proj.bias.double())


@pytest.mark.parametrize("quick_gelu", [True, False])
def test_fused_mlp_is_the_mlp_in_bf16_and_untouched_otherwise(quick_gelu):
    model = tiny_clip(quick_gelu)
    plain = copy.deepcopy(model)
    keys = list(model.state_dict())
    assert fuse_mlps(model) == 4  # 2 image + 2 text blocks
    assert list(model.state_dict()) == keys
    for name, tensor in plain.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor)

    mlp, ref_mlp = model.visual.transformer.resblocks[0].mlp, plain.visual.transformer.resblocks[0].mlp
    assert type(mlp) is FusedMlp and type(ref_mlp) is nn.Sequential
    x = torch.randn(3, 17, 64)
    with torch.inference_mode():
        assert torch.equal(mlp(x), ref_mlp(x))  # float32: open_clip's own modules, bit for bit
        exact = reference_mlp(ref_mlp, x).float()
        mlp.bfloat16(), ref_mlp.bfloat16()
        fused, unfused = mlp(x.bfloat16()).float(), ref_mlp(x.bfloat16()).float()
    assert fused.shape == exact.shape
    # as close to the exact MLP as open_clip's own bf16 MLP is (bf16 keeps 8 bits of mantissa)
    assert (fused - exact).abs().max() <= 1.5 * (unfused - exact).abs().max() + 1e-3
    torch.testing.assert_close(fused, exact, atol=0.03, rtol=0.02)


def test_training_takes_the_plain_path():
    model = tiny_clip(quick_gelu=True)
    fuse_mlps(model)
    mlp = model.visual.transformer.resblocks[0].mlp.bfloat16()
    x = torch.randn(2, 5, 64, dtype=torch.bfloat16, requires_grad=True)
    mlp(x).sum().backward()  # gradients enabled: Sequential.forward, which autograd knows
    assert x.grad is not None and mlp.c_fc.weight.grad is not None


def test_whole_towers_agree_and_the_backend_fuses(tmp_path):
    model = tiny_clip(quick_gelu=True)
    plain = copy.deepcopy(model).bfloat16()
    fuse_mlps(model)
    model.bfloat16()
    image = torch.randn(2, 3, 32, 32, dtype=torch.bfloat16)
    tokens = open_clip.get_tokenizer("ViT-B-16")(["a photo of a cat.", "a sofa"])
    with torch.inference_mode():
        got_img, want_img = model.encode_image(image).float(), plain.encode_image(image).float()
        got_txt, want_txt = model.encode_text(tokens).float(), plain.encode_text(tokens).float()
    cos = torch.nn.functional.cosine_similarity
    assert cos(got_img, want_img).min() > 0.999 and cos(got_txt, want_txt).min() > 0.999

    from zsseg.models.clip.backend import ClipBackend

    backend = ClipBackend(tiny_clip(quick_gelu=True), open_clip.get_tokenizer("ViT-B-16"), precision="bf16")
    assert all(type(b.mlp) is FusedMlp for b in backend.model.visual.transformer.resblocks)

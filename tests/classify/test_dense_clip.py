"""Dense CLIP region features on tiny random open_clip towers (and the real architectures with random weights),
checked against the towers' own ``encode_image`` and against plain reference implementations written here."""

from __future__ import annotations

import json

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F

from zsseg.models.clip.dense import ClipDenseEncoder, supports_dense
from zsseg.models.pooling import DenseRegionEncoder, dense_input

MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)
TEXT = {"context_length": 77, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1}
CONFIGS = {
    "zsseg-dense-vit": {"image_size": 32, "layers": 4, "width": 32, "patch_size": 8, "head_width": 16},
    "zsseg-dense-vit-avg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8, "head_width": 16,
                            "pool_type": "avg"},
    "zsseg-dense-vit-attnpool": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16,
                                 "attentional_pool": True, "attn_pooler_queries": 4, "attn_pooler_heads": 2},
    "zsseg-dense-vit-qknorm": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16,
                               "qk_norm": True},
    "zsseg-dense-rn": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 8, "patch_size": None},
    "zsseg-dense-convnext": {"timm_model_name": "convnext_atto", "timm_model_pretrained": False, "timm_pool": "",
                             "timm_proj": "linear", "image_size": 64},
    "zsseg-dense-convnext-attn": {"timm_model_name": "convnext_atto", "timm_model_pretrained": False,
                                  "timm_pool": "abs_attn", "timm_proj": "", "image_size": 64},
}  # fmt: skip


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, torch.nn.Module]:
    folder = tmp_path_factory.mktemp("dense-clip")
    out = {}
    for name, vision in CONFIGS.items():
        (folder / f"{name}.json").write_text(json.dumps({"embed_dim": 16, "vision_cfg": vision, "text_cfg": TEXT}))
        open_clip.add_model_config(folder / f"{name}.json")
        torch.manual_seed(0)
        model = open_clip.create_model(name).eval()
        with torch.no_grad():  # open_clip zero-initialises some weights (ResNet bn3): make every layer matter
            for p in model.visual.parameters():
                p.add_(0.05 * torch.randn_like(p))
        out[name] = model
    return out


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _masks(h: int, w: int, n: int, seed: int = 1) -> np.ndarray:
    """n random rectangles, each at least 2x2 pixels, plus a full mask first."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, h, w), dtype=bool)
    masks[0] = True
    for i in range(1, n):
        y0, x0 = rng.integers(0, h - 2), rng.integers(0, w - 2)
        masks[i, y0 : rng.integers(y0 + 2, h + 1), x0 : rng.integers(x0 + 2, w + 1)] = True
    return masks


def _own_embedding(model: torch.nn.Module, image: np.ndarray, multiple: int) -> torch.Tensor:
    x = dense_input(image, max(image.shape[:2]), multiple, MEAN, STD)
    assert x.shape[2:] == image.shape[:2]
    with torch.no_grad():
        return F.normalize(model.encode_image(x).float(), dim=-1)


@pytest.mark.parametrize(
    ("name", "side", "multiple"),
    [("zsseg-dense-vit", 32, 8), ("zsseg-dense-vit-avg", 32, 8), ("zsseg-dense-rn", 64, 32),
     ("zsseg-dense-convnext", 64, 32)],
)  # fmt: skip
def test_full_mask_at_native_size_is_the_towers_own_embedding(models, name, side, multiple):
    model = models[name]
    assert supports_dense(model) and supports_dense(model.visual)
    enc = ClipDenseEncoder(model, MEAN, STD, size=side)
    assert isinstance(enc, DenseRegionEncoder)
    image = _image(side, side)
    got = enc(image, np.ones((2, side, side), dtype=bool))
    assert got.dtype == torch.float32 and got.shape == (2, 16) and got.device.type == "cpu"
    want = _own_embedding(model, image, multiple)
    torch.testing.assert_close(got, want.expand(2, -1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["zsseg-dense-vit", "zsseg-dense-vit-avg", "zsseg-dense-rn", "zsseg-dense-convnext"])
def test_adding_proposals_does_not_change_an_existing_one(models, name):
    image = _image(50, 70, seed=2)
    masks = _masks(50, 70, 7)
    enc = ClipDenseEncoder(models[name], MEAN, STD, size=72, chunk=3)  # several chunks
    few, many = enc(image, masks[:2]), enc(image, masks)
    assert many.shape == (7, 16)
    torch.testing.assert_close(many[:2], few, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(many.norm(dim=-1), torch.ones(7), rtol=1e-5, atol=1e-5)
    assert enc(image, masks[:0]).shape == (0, 16)


def _coverage(masks: np.ndarray, grid: tuple[int, int]) -> torch.Tensor:
    return F.adaptive_avg_pool2d(torch.from_numpy(masks).float()[:, None], grid)[:, 0].flatten(1)


def _reference_vit(model: torch.nn.Module, x: torch.Tensor, masks: np.ndarray, mask_layers: int) -> torch.Tensor:
    """Naive: for each mask, the last blocks run open_clip's own blocks on [cls, patches, one copy] with an
    explicit additive attention mask; position embeddings interpolated here."""
    v = model.visual
    tokens = v.conv1(x)
    gh, gw = tokens.shape[2:]
    pos = v.positional_embedding
    g0, g1 = v.grid_size
    grid_pos = F.interpolate(pos[1:].reshape(1, g0, g1, -1).permute(0, 3, 1, 2), size=(gh, gw), mode="bicubic")
    pos = torch.cat([pos[:1], grid_pos[0].flatten(1).T])
    h = v.ln_pre(torch.cat([v.class_embedding.view(1, 1, -1), tokens.flatten(2).transpose(1, 2)], 1) + pos)
    blocks = list(v.transformer.resblocks)
    for blk in blocks[: len(blocks) - mask_layers]:
        h = blk(h)
    cover = _coverage(masks, (gh, gw))
    t = h.shape[1]
    outs = []
    for i in range(len(masks)):
        s = torch.cat([h, h[:, :1]], dim=1)  # (1, T + 1, C): the copy last
        attn_mask = torch.zeros(t + 1, t + 1)
        attn_mask[:t, t] = float("-inf")  # originals never see the copy
        attn_mask[t, 0] = float("-inf")  # the copy sees itself and patches, not the class token
        attn_mask[t, 1:t] = torch.log(cover[i])  # log 0 = -inf outside the mask
        for blk in blocks[len(blocks) - mask_layers :]:
            s = blk(s, attn_mask=attn_mask)
        outs.append(v.ln_post(s[0, -1]) @ v.proj)
    return F.normalize(torch.stack(outs), dim=-1)


@pytest.mark.parametrize("mask_layers", [1, 3, 4])
def test_vit_matches_naive_masked_attention_reference(models, mask_layers):
    model = models["zsseg-dense-vit"]
    image, masks = _image(40, 56, seed=3), _masks(40, 56, 5, seed=4)
    enc = ClipDenseEncoder(model, MEAN, STD, size=48, mask_layers=mask_layers, chunk=2)
    x = dense_input(image, 48, 8, MEAN, STD)
    assert x.shape[2:] == (32, 48)  # a grid (4, 6) unlike the native (4, 4): interpolated positions
    with torch.no_grad():
        want = _reference_vit(model, x, masks, mask_layers)
    torch.testing.assert_close(enc(image, masks), want, rtol=1e-4, atol=1e-5)


def test_resnet_matches_naive_masked_attention_pool_reference(models):
    model = models["zsseg-dense-rn"]
    image, masks = _image(70, 90, seed=5), _masks(70, 90, 4, seed=6)
    enc = ClipDenseEncoder(model, MEAN, STD, size=96)
    x = dense_input(image, 96, 32, MEAN, STD)
    v = model.visual
    ap = v.attnpool
    with torch.no_grad():
        fmap = v.layer4(v.layer3(v.layer2(v.layer1(v.stem(x)))))[0]
        gh, gw = fmap.shape[1:]
        pos = ap.positional_embedding
        side = int((pos.shape[0] - 1) ** 0.5)
        grid_pos = F.interpolate(pos[1:].reshape(1, side, side, -1).permute(0, 3, 1, 2), (gh, gw), mode="bicubic")
        cells = fmap.flatten(1).T + grid_pos[0].flatten(1).T
        cover = _coverage(masks, (gh, gw))
        outs = []
        for i in range(len(masks)):
            w = cover[i]
            mean = (w[:, None] * fmap.flatten(1).T).sum(0) / w.sum() + pos[0]
            seq = torch.cat([mean[None], cells])[:, None]  # (1 + P, 1, C)
            attn_mask = torch.cat([torch.zeros(1), torch.log(w)])[None]  # the query sees itself and its cells
            out, _ = F.multi_head_attention_forward(
                query=seq[:1], key=seq, value=seq, embed_dim_to_check=seq.shape[-1], num_heads=ap.num_heads,
                q_proj_weight=ap.q_proj.weight, k_proj_weight=ap.k_proj.weight, v_proj_weight=ap.v_proj.weight,
                in_proj_weight=None, in_proj_bias=torch.cat([ap.q_proj.bias, ap.k_proj.bias, ap.v_proj.bias]),
                bias_k=None, bias_v=None, add_zero_attn=False, dropout_p=0.0, out_proj_weight=ap.c_proj.weight,
                out_proj_bias=ap.c_proj.bias, use_separate_proj_weight=True, attn_mask=attn_mask, need_weights=False,
            )  # fmt: skip
            outs.append(out[0, 0])
        want = F.normalize(torch.stack(outs), dim=-1)
    torch.testing.assert_close(enc(image, masks), want, rtol=1e-4, atol=1e-5)


def test_convnext_cell_aligned_mask_is_the_head_on_that_part_of_the_map(models):
    model = models["zsseg-dense-convnext"]
    image = _image(64, 128, seed=7)
    masks = np.zeros((1, 64, 128), dtype=bool)
    masks[0, :, :32] = True  # the left quarter: whole feature cells (stride 32)
    enc = ClipDenseEncoder(model, MEAN, STD, size=128)
    v = model.visual
    with torch.no_grad():
        fmap = v.trunk.forward_features(dense_input(image, 128, 32, MEAN, STD))
        want = F.normalize(v.head(v.trunk.forward_head(fmap[:, :, :, :1])), dim=-1)
    torch.testing.assert_close(enc(image, masks), want, rtol=1e-5, atol=1e-6)


def test_position_embeddings_native_grid_are_the_originals_and_are_cached(models):
    v = models["zsseg-dense-vit"].visual
    enc = ClipDenseEncoder(models["zsseg-dense-vit"], MEAN, STD)
    table = v.positional_embedding
    assert torch.equal(enc.pos_embed((4, 4), (4, 4), table), table)
    other = enc.pos_embed((5, 7), (4, 4), table)
    assert other.shape == (1 + 35, 32) and torch.equal(other[0], table[0])
    assert enc.pos_embed((5, 7), (4, 4), table) is other


@pytest.mark.parametrize(
    ("name", "dtype"),
    [("zsseg-dense-vit", torch.bfloat16), ("zsseg-dense-vit", torch.float16), ("zsseg-dense-rn", torch.bfloat16),
     ("zsseg-dense-convnext", torch.bfloat16)],
)  # fmt: skip
def test_half_precision_runs_and_agrees_with_fp32(models, name, dtype):
    import copy

    model = models[name]
    image, masks = _image(60, 80, seed=8), _masks(60, 80, 4, seed=9)
    want = ClipDenseEncoder(model, MEAN, STD, size=64)(image, masks)
    half = copy.deepcopy(model).to(dtype)
    got = ClipDenseEncoder(half, MEAN, STD, size=64)(image, masks)
    assert got.dtype == torch.float32 and torch.isfinite(got).all()
    assert (got * want).sum(-1).min() > 0.99


@pytest.mark.parametrize("name", ["zsseg-dense-vit", "zsseg-dense-rn", "zsseg-dense-convnext"])
def test_mask_inside_a_fraction_of_one_patch(models, name):
    image = _image(64, 64, seed=10)
    masks = np.zeros((2, 64, 64), dtype=bool)
    masks[0, 10, 11] = True  # one pixel
    masks[1, 30:33, 31:34] = True  # straddles patch corners
    got = ClipDenseEncoder(models[name], MEAN, STD, size=64)(image, masks)
    assert got.shape == (2, 16) and torch.isfinite(got).all()


@pytest.mark.parametrize("name", ["zsseg-dense-vit-attnpool", "zsseg-dense-vit-qknorm", "zsseg-dense-convnext-attn"])
def test_unhandled_towers_are_refused_clearly(models, name):
    assert not supports_dense(models[name])
    with pytest.raises(ValueError, match="use region crops"):
        ClipDenseEncoder(models[name], MEAN, STD)


def test_bad_input(models):
    enc = ClipDenseEncoder(models["zsseg-dense-vit"], MEAN, STD, size=32)
    image = _image(32, 32)
    with pytest.raises(ValueError, match="at least one pixel"):
        enc(image, np.zeros((1, 32, 32), dtype=bool))
    with pytest.raises(ValueError, match="masks must be"):
        enc(image, np.ones((1, 16, 32), dtype=bool))
    with pytest.raises(ValueError, match="mask_layers"):
        ClipDenseEncoder(models["zsseg-dense-vit"], MEAN, STD, mask_layers=5)
    assert not supports_dense(torch.nn.Linear(2, 2))


@pytest.mark.parametrize(("arch", "multiple"), [("ViT-B-16", 16), ("RN50", 32)])
def test_real_architectures_full_mask_and_shapes(arch, multiple):
    """The real towers (random weights, image tower only, to keep this fast) at their native 224 input."""
    from open_clip.model import _build_vision_tower

    cfg = open_clip.get_model_config(arch)
    torch.manual_seed(0)
    tower = _build_vision_tower(cfg["embed_dim"], cfg["vision_cfg"]).eval()
    assert supports_dense(tower)
    image = _image(224, 224, seed=11)
    masks = np.ones((2, 224, 224), dtype=bool)
    masks[1, :100, 50:] = False
    got = ClipDenseEncoder(tower, MEAN, STD, size=224)(image, masks)
    assert got.shape == (2, cfg["embed_dim"])
    with torch.no_grad():
        want = F.normalize(tower(dense_input(image, 224, multiple, MEAN, STD)), dim=-1)[0]
    torch.testing.assert_close(got[0], want, rtol=1e-5, atol=2e-6)


def test_features_are_what_the_strategy2_tower_pools(models):
    """``features`` of a full mask at the native size equal the ViT tower's ``pool`` of the image (the input of
    ``proj`` that strategy 2 retrains), and ``embed(features)`` is ``__call__``."""
    from zsseg.models.clip.tower import ClipViTTower

    model = models["zsseg-dense-vit"]
    enc = ClipDenseEncoder(model, MEAN, STD, size=32)
    image = _image(32, 32, seed=4)
    feats = enc.features(image, np.ones((1, 32, 32), bool))
    assert feats.shape == (1, enc.feature_dim) == (1, 32) and feats.dtype == torch.float32

    class Backend:  # the tower only needs .model.visual and .device
        device = torch.device("cpu")

    backend = Backend()
    backend.model = model  # type: ignore[attr-defined]
    tower = ClipViTTower(backend, "projection")  # type: ignore[arg-type]
    with torch.no_grad():
        pooled = tower.pool(dense_input(image, 32, 8, MEAN, STD))
    torch.testing.assert_close(feats, pooled, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(enc.embed(feats), enc(image, np.ones((1, 32, 32), bool)))
    assert enc.features(image, np.zeros((0, 32, 32), bool)).shape == (0, 32)
    assert enc.embed(torch.zeros(0, 32)).shape == (0, 16)

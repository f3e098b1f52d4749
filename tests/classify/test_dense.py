"""Dense region features: the shared pooling pieces, and ConSE's dense encoder with its real weights."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from zsseg.classify import RegionClassifier
from zsseg.classify.region import ambiguous, masked_crops, resolve_regions
from zsseg.errors import ZsSegError
from zsseg.models.pooling import dense_input, dense_shape, mask_grid_weights, pool_features


def test_dense_shape_keeps_aspect_and_buckets() -> None:
    assert dense_shape(375, 500, 448, 32) == (320, 448)
    assert dense_shape(500, 375, 448, 32) == (448, 320)
    assert dense_shape(10, 4000, 448, 32) == (32, 448)  # never a zero side
    x = dense_input(np.zeros((375, 500, 3), np.uint8), 448, 16, (0.5,) * 3, (0.5,) * 3)
    assert x.shape == (1, 3, 336, 448) and x.dtype == torch.float32
    assert torch.allclose(x, torch.full_like(x, -1.0))


def test_mask_grid_weights_are_cell_coverage() -> None:
    masks = np.zeros((3, 64, 96), bool)
    masks[0] = True
    masks[1, :32, :48] = True  # the top-left quarter: exactly 2x3 cells of a 4x6 grid
    masks[2, 5, 7] = True  # one pixel
    w = mask_grid_weights(masks, (4, 6))
    assert w.shape == (3, 4, 6) and w.dtype == torch.float32
    assert torch.all(w[0] == 1)
    assert torch.equal(w[1, :2, :3], torch.ones(2, 3)) and w[1].sum() == 6
    assert w[2].sum() == pytest.approx(1 / 256) and (w[2] > 0).sum() == 1  # soft, never lost
    assert mask_grid_weights(np.zeros((0, 8, 8), bool), (2, 2)).shape == (0, 2, 2)


def test_pool_features_is_the_weighted_mean() -> None:
    torch.manual_seed(0)
    feats = torch.randn(5, 3, 4)
    weights = torch.rand(2, 3, 4)
    want = torch.stack([(feats * w).sum((1, 2)) / w.sum() for w in weights])
    torch.testing.assert_close(pool_features(feats, weights), want)


def test_ambiguous_picks_the_smallest_margins() -> None:
    probs = torch.tensor([[0.9, 0.1], [0.55, 0.45], [0.6, 0.4], [1.0, 0.0]])
    assert ambiguous(probs, 0.5).tolist() == [1, 2]
    assert ambiguous(probs, 0.0).tolist() == []
    assert ambiguous(probs, 1.0).tolist() == [0, 1, 2, 3]
    assert ambiguous(probs[:, :1], 1.0).tolist() == []


def test_regions_modes_need_a_dense_encoder(colour_backend) -> None:
    assert resolve_regions("auto", colour_backend) == "crops"
    with pytest.raises(ZsSegError, match="crops, dense, hybrid, auto"):
        resolve_regions("patches", colour_backend)
    with pytest.raises(ZsSegError, match="--regions crops"):
        RegionClassifier(colour_backend, regions="dense")


@pytest.fixture(scope="module")
def conse():
    from zsseg.models import load_backend

    return load_backend("conse:efficientnet-lite0")


@pytest.mark.weights
def test_conse_dense_full_mask_at_native_size_equals_the_crop(conse) -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
    full = np.ones((1, 224, 224), bool)
    dense = RegionClassifier(conse, regions="dense", dense_size=224)
    crops = RegionClassifier(conse, regions="crops")
    torch.testing.assert_close(
        dense.region_embeddings(image, full), crops.region_embeddings(image, full), atol=1e-5, rtol=1e-5
    )
    assert dense.regions == "dense" and resolve_regions("auto", conse) == "dense"
    from zsseg.models import build_tower
    from zsseg.models.pooling import dense_input

    assert dense.dense is not None
    pooled = build_tower(conse, "projection").pool(dense_input(image, 224, 32, conse.mean, conse.std))
    torch.testing.assert_close(dense.dense.features(image, full), pooled, atol=1e-4, rtol=1e-4)  # strategy 2's input


@pytest.mark.weights
def test_conse_dense_regions_are_independent_and_hybrid_interpolates(conse) -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    masks = np.zeros((3, 120, 160), bool)
    masks[0, :60] = True
    masks[1, 60:, :80] = True
    masks[2, 70:90, 100:130] = True
    dense = RegionClassifier(conse, regions="dense", dense_size=256)
    alone = dense.region_embeddings(image, masks[:1])
    together = dense.region_embeddings(image, masks)
    assert together.shape == (3, 384) and together.dtype == torch.float32
    torch.testing.assert_close(together[:1], alone, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(together.norm(dim=1), torch.ones(3))

    classes = ["cat", "car", "tree"]
    p_dense = dense.classify(image, masks, classes)
    none = RegionClassifier(conse, regions="hybrid", dense_size=256, hybrid_fraction=0.0)
    np.testing.assert_allclose(none.classify(image, masks, classes), p_dense, atol=1e-6)
    every = RegionClassifier(conse, regions="hybrid", dense_size=256, hybrid_fraction=1.0)
    crop_emb = RegionClassifier(conse).region_embeddings(image, masks)
    fused = F.normalize(together + crop_emb, dim=-1)
    want = (conse.logit_scale * fused @ every.text_embeddings(classes).T).softmax(-1).numpy()
    np.testing.assert_allclose(every.classify(image, masks, classes), want, atol=1e-5)


@pytest.mark.weights
def test_conse_dense_names_the_astronaut() -> None:
    import zsseg

    seg = zsseg.load(model="conse:efficientnet-lite0", proposals="selective-search", regions="dense")
    image = zsseg.read_image("zsseg/assets/astronaut.jpg")
    result = seg.segment(image, ["person", "rocket", "dog", "car"])
    assert result.summary()["regions"] == "dense" and result.summary()["precision"] == "fp32"
    # the astronaut's face and suit: the centre-left of the photo
    face = result.label_map[80:200, 180:300]
    assert np.mean(face == 0) > 0.5


def test_masked_crops_unchanged_reference() -> None:
    """The crop path is the paper's reference: a full mask of an image at the input size is the image itself."""
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    crop = masked_crops(image, np.ones((1, 16, 16), bool), 16, (0.5,) * 3, (0.5,) * 3)
    want = torch.tensor(image).permute(2, 0, 1).float() / 255 * 2 - 1
    torch.testing.assert_close(crop[0], want)

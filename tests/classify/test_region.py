import numpy as np
import pytest
import torch

from zsseg.classify.region import RegionClassifier, mask_boxes, masked_crops


def test_mask_boxes_are_tight_and_exclusive():
    m = np.zeros((2, 10, 12), bool)
    m[0, 2:5, 3:7] = True
    m[1, 9, 11] = True
    assert mask_boxes(m).tolist() == [[3, 2, 7, 5], [11, 9, 12, 10]]
    with pytest.raises(ValueError, match="at least one pixel"):
        mask_boxes(np.zeros((1, 3, 3), bool))


def test_crops_erase_background_to_mean_and_normalise():
    img = np.full((20, 20, 3), 200, np.uint8)
    m = np.zeros((1, 20, 20), bool)
    m[0, 5:15, 5:10] = True  # 10 x 5 box, fully inside the mask
    m[0, 5, 10] = True  # widens the box by one column, mostly erased
    crops = masked_crops(img, m, size=8, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    assert crops.shape == (1, 3, 8, 8) and crops.dtype == torch.float32
    inside = (200 / 255 - 0.5) / 0.25
    assert crops[0, :, :, 0].mean().item() == pytest.approx(inside, rel=1e-4)
    assert crops.max().item() <= inside + 1e-4
    with pytest.raises(ValueError, match=r"\(N, 20, 20\)"):
        masked_crops(img, np.ones((1, 5, 5), bool), 8, (0.5,) * 3, (0.5,) * 3)


def test_classifier_batches_and_caches(colour_backend, toy_scene):
    img, labels = toy_scene
    masks = np.stack([labels == i for i in range(3)] * 5)  # 15 masks, batch size 4 -> 4 batches
    calls = []
    encode = colour_backend.encode_images

    def counting(pixels):
        calls.append(len(pixels))
        return encode(pixels)

    colour_backend.encode_images = counting
    clf = RegionClassifier(colour_backend, templates="vild", batch_size=4)
    probs = clf.classify(img, masks, ["blue", "red", "green"])
    assert calls == [4, 4, 4, 3]
    assert probs.shape == (15, 3) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-5)
    assert probs.argmax(1).tolist() == [1, 2, 0] * 5
    first = clf.text_embeddings(["blue", "red", "green"])
    assert clf.text_embeddings(["blue", "red", "green"]) is first

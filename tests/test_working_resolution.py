"""Huge images: proposals and features at a bounded working resolution, outputs at the input's size."""

import numpy as np
import pytest
from PIL import Image
from zsseg_testing import GridProposer

from zsseg.classify import RegionClassifier
from zsseg.errors import ZsSegError
from zsseg.pipeline import Segmenter, upscale_nearest, working_image
from zsseg.viz import colorize


def test_label_map_at_input_size_proposals_at_working_size(colour_backend, tmp_path):
    img = np.zeros((300, 400, 3), np.uint8)
    img[:, :200] = (230, 20, 20)
    img[:, 200:] = (20, 20, 230)
    seg = Segmenter(GridProposer(), RegionClassifier(colour_backend, templates="single"), max_working_pixels=12_000)
    result = seg.segment(img, ["red", "blue"])
    assert result.label_map.shape == (300, 400) and result.confidence.shape == (300, 400)
    h, w = result.proposals.image_size
    assert h * w <= 12_000 and abs(w / h - 4 / 3) < 0.05
    assert (result.label_map[:, :190] == 0).all() and (result.label_map[:, 210:] == 1).all()
    result.save(tmp_path, "big", img)
    assert Image.open(tmp_path / "big.png").size == (400, 300)
    assert result.summary()["working_size"] == [h, w] and result.summary()["image_size"] == [300, 400]
    with pytest.raises(ZsSegError, match="max_working_pixels"):
        Segmenter(GridProposer(), RegionClassifier(colour_backend), max_working_pixels=10)


def test_small_images_untouched_and_nearest_upscale():
    img = np.zeros((10, 20, 3), np.uint8)
    assert working_image(img, 200) is img and working_image(img, None) is img
    assert working_image(img, 50).shape[:2] == (5, 10)
    small = np.arange(6).reshape(2, 3)
    np.testing.assert_array_equal(upscale_nearest(small, 4, 6), np.kron(small, np.ones((2, 2), int)))


def test_overlay_in_chunks_matches_the_whole_image_formula():
    from zsseg.viz import overlay

    rng = np.random.default_rng(0)
    h, w = 700, 1600  # several chunks of ~1 Mpx / w rows
    image = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    labels = (np.arange(h)[:, None] // 37 + np.arange(w)[None] // 53) % 4
    labels[:5] = 255
    out = overlay(image, labels, ["a", "b", "c", "d"], 255)
    colours = colorize(labels, 4, 255).astype(np.float32)
    want = np.where((labels != 255)[..., None], 0.5 * image + 0.5 * colours, image)
    edges = np.zeros((h, w), bool)
    edges[:-1] |= labels[:-1] != labels[1:]
    edges[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    want[edges] = 255
    np.testing.assert_array_equal(out[:h, :w], want.astype(np.uint8))

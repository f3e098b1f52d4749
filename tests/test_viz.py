"""Colours, palette PNGs, overlays and proposal drawings."""

from __future__ import annotations

import numpy as np
from PIL import Image

from zsseg.viz import colorize, draw_proposals, label_image, overlay, palette


def test_palette_colours_are_distinct_and_visible() -> None:
    pal = palette(300)
    assert pal.shape == (300, 3) and pal.dtype == np.uint8
    assert len({tuple(c) for c in pal}) == 300
    assert not (pal == 0).all(axis=1).any()  # black is kept for unlabelled pixels


def test_colorize_maps_classes_and_leaves_unlabelled_black() -> None:
    labels = np.array([[0, 1], [2, 255]])
    rgb = colorize(labels, 3)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert np.array_equal(rgb[0, 1], palette(3)[1]) and (rgb[1, 1] == 0).all()


def test_label_image_keeps_indices_8_and_16_bit(tmp_path) -> None:
    labels = np.array([[0, 4], [255, 2]])
    small = label_image(labels, 5)
    small.save(tmp_path / "a.png")
    back = Image.open(tmp_path / "a.png")
    assert back.mode == "P" and np.array_equal(np.asarray(back), labels)
    assert back.getpalette()[3 * 4 : 3 * 5] == palette(5)[4].tolist()
    big = np.array([[0, 299], [65535, 256]])
    label_image(big, 300).save(tmp_path / "b.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "b.png")), big)


def test_overlay_puts_the_photo_left_and_a_legend_right() -> None:
    image = np.full((40, 60, 3), 100, np.uint8)
    labels = np.zeros((40, 60), np.int64)
    labels[:, 30:] = 1
    labels[:5, :5] = 255
    out = overlay(image, labels, ["cat", "sofa"])
    assert out.dtype == np.uint8 and out.shape[0] >= 40 and out.shape[1] > 60
    assert np.array_equal(out[1, 1], image[1, 1])  # unlabelled: the photo as it is
    assert not np.array_equal(out[20, 10], image[20, 10])  # labelled: tinted
    assert (out[5:, 60:] == 255).mean() > 0.5  # a white legend panel


def test_draw_proposals_draws_small_masks_on_top() -> None:
    image = np.zeros((10, 10, 3), np.uint8)
    masks = np.zeros((2, 10, 10), bool)
    masks[0] = True
    masks[1, :2, :2] = True
    out = draw_proposals(image, masks)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert not np.array_equal(out[0, 0], out[9, 9])
    assert np.array_equal(draw_proposals(image, masks[:0]), image)

import numpy as np
import pytest

from zsseg.assemble import assemble, fill_nearest


def test_sum_of_probabilities_times_masks_argmax():
    masks = np.zeros((2, 2, 3), bool)
    masks[0, :, :2] = True  # left two columns
    masks[1, :, 1:] = True  # right two columns; overlap in the middle column
    probs = np.array([[0.9, 0.1], [0.3, 0.7]], np.float32)
    out = assemble(masks, probs)
    # middle column: 0.9 + 0.3 = 1.2 for class 0 vs 0.1 + 0.7 = 0.8 for class 1
    assert out.label_map.tolist() == [[0, 0, 1], [0, 0, 1]]
    assert out.label_map.dtype == np.int32
    np.testing.assert_allclose(out.confidence[0], [0.9, 0.6, 0.7], rtol=1e-6)


def test_matches_dense_reference():
    rng = np.random.default_rng(0)
    masks = rng.random((7, 20, 30)) > 0.6
    probs = rng.random((7, 5)).astype(np.float32)
    probs /= probs.sum(1, keepdims=True)
    out = assemble(masks, probs, chunk_pixels=97, unlabelled_threshold=0.0)
    score = np.einsum("nk,nhw->khw", probs, masks.astype(np.float32))
    covered = masks.any(0)
    np.testing.assert_array_equal(out.label_map[covered], score.argmax(0)[covered])
    assert (out.label_map[~covered] == 255).all()


def test_uncovered_pixels_take_nearest_label():
    masks = np.zeros((2, 1, 7), bool)
    masks[0, 0, :2] = True
    masks[1, 0, 5:] = True
    probs = np.array([[1, 0], [0, 1]], np.float32)
    out = assemble(masks, probs)
    assert out.label_map.tolist() == [[0, 0, 0, 0, 1, 1, 1]] or out.label_map.tolist() == [[0, 0, 0, 1, 1, 1, 1]]
    assert not out.covered[0, 3]


def test_unlabelled_threshold_marks_low_confidence_and_gaps():
    masks = np.zeros((1, 2, 2), bool)
    masks[0, 0] = True
    out = assemble(masks, np.array([[0.4, 0.35, 0.25]], np.float32), unlabelled_threshold=0.5)
    assert (out.label_map == 255).all()
    out = assemble(masks, np.array([[0.6, 0.3, 0.1]], np.float32), unlabelled_threshold=0.5)
    assert out.label_map.tolist() == [[0, 0], [255, 255]]


def test_background_threshold():
    masks = np.ones((1, 2, 2), bool)
    masks_half = masks.copy()
    masks_half[0, 1] = False
    # background column is ignored; best other class confidence 0.8/(0.8+0.2)
    out = assemble(masks_half, np.array([[0.5, 0.4, 0.1]], np.float32), background_index=0, background_threshold=0.9)
    assert (out.label_map == 0).all()  # 0.8 < 0.9 -> background; uncovered -> background
    out = assemble(masks_half, np.array([[0.5, 0.4, 0.1]], np.float32), background_index=0, background_threshold=0.5)
    assert out.label_map.tolist() == [[1, 1], [0, 0]]


def test_shape_errors_name_expected_and_actual():
    with pytest.raises(ValueError, match=r"\(N, K\) with N=2"):
        assemble(np.zeros((2, 3, 3), bool), np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match="bool"):
        assemble(np.zeros((2, 3, 3), np.uint8), np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="collides"):
        assemble(np.zeros((1, 3, 3), bool), np.zeros((1, 300), np.float32))


def test_fill_nearest_no_valid_pixels_is_identity():
    lab = np.arange(6).reshape(2, 3)
    np.testing.assert_array_equal(fill_nearest(lab, np.zeros((2, 3), bool)), lab)

"""Our mask encodings against the real readers: pycocotools' COCO RLE and label-studio-converter's brush RLE."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocotools import mask as coco_mask

from zsseg.instances import rle


def brush_module():
    """label-studio-converter's brush.py alone (its package __init__ pulls in a web stack we do not install)."""
    spec = importlib.util.find_spec("label_studio_converter")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("label-studio-converter is not installed (make install adds it)")
    path = Path(list(spec.submodule_search_locations)[0]) / "brush.py"
    module_spec = importlib.util.spec_from_file_location("ls_brush", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


masks = st.tuples(st.integers(1, 24), st.integers(1, 24), st.integers(0, 2**32 - 1), st.floats(0, 1)).map(
    lambda t: np.random.default_rng(t[2]).random((t[0], t[1])) < t[3]
)


@settings(max_examples=150, deadline=None)
@given(masks)
def test_coco_rle_equals_pycocotools(mask):
    ref = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    ours = rle.encode(mask)
    assert ours == {"size": [int(v) for v in ref["size"]], "counts": ref["counts"].decode()}
    np.testing.assert_array_equal(rle.decode(ours), mask)
    np.testing.assert_array_equal(coco_mask.decode({"size": ours["size"], "counts": ours["counts"]}), mask)
    assert rle.area(ours) == int(mask.sum()) == int(coco_mask.area(ref))


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 20), st.integers(1, 20), st.integers(0, 5), st.integers(0, 2**32 - 1))
def test_one_pass_rle_of_an_id_map_equals_each_masks_rle(h, w, k, seed):
    ids = np.random.default_rng(seed).integers(0, k + 1, (h, w)).astype(np.int32)
    for i, r in enumerate(rle.encode_ids(ids, k)):
        assert r == rle.encode(ids == i + 1)


def test_uncompressed_counts_decode_too():
    mask = np.zeros((3, 4), bool)
    mask[1:, 2] = True
    counts = rle.run_lengths(mask.T.ravel()).tolist()
    np.testing.assert_array_equal(rle.decode({"size": [3, 4], "counts": counts}), mask)


def test_decode_refuses_counts_of_another_size():
    with pytest.raises(ValueError, match="expected 3 x 4"):
        rle.decode({"size": [3, 4], "counts": [5, 2]})


@settings(max_examples=40, deadline=None)
@given(masks)
def test_brush_rle_decodes_with_label_studio_converter(mask):
    decoded = brush_module().decode_rle(rle.encode_brush(mask)).reshape(*mask.shape, 4)
    np.testing.assert_array_equal(decoded[..., 3] == 255, mask)
    assert set(np.unique(decoded)) <= {0, 255}


def test_brush_rle_of_runs_longer_than_its_largest_run_class():
    mask = np.zeros((300, 400), bool)  # 4 bytes per pixel: runs of 480 000 bytes, split at 2**16
    mask[100:200, 50:350] = True
    decoded = brush_module().decode_rle(rle.encode_brush(mask)).reshape(300, 400, 4)
    np.testing.assert_array_equal(decoded[..., 0] == 255, mask)

import json

import numpy as np
import pytest
from PIL import Image
from zsseg_testing import FixedProposer

from zsseg.classify import RegionClassifier
from zsseg.pipeline import Segmenter, leftover_regions
from zsseg.result import Segmentation


def make(colour_backend, masks, **kw):
    return Segmenter(FixedProposer(masks), RegionClassifier(colour_backend, templates="single"), **kw)


def test_segments_toy_scene(colour_backend, toy_scene):
    img, labels = toy_scene
    masks = np.stack([labels == i for i in range(3)])
    result = make(colour_backend, masks).segment(img, "green, blue, red")
    assert isinstance(result, Segmentation)
    assert result.label_map.shape == img.shape[:2] and result.label_map.dtype == np.int32
    want = np.array([2, 0, 1])[labels]  # red -> index 2, green -> 0, blue -> 1
    np.testing.assert_array_equal(result.label_map, want)
    assert result.probs.shape == (3, 3)
    shares = result.class_shares()
    assert shares["red"] == pytest.approx(1 / 3)
    assert set(result.timings) == {"proposals", "classify", "assemble"}
    sub = result[result.proposals.areas() > 0]
    assert len(sub.proposals) == 3 and sub.probs.shape == (3, 3)


def test_large_uncovered_region_is_classified_small_gaps_filled(colour_backend, toy_scene):
    img, labels = toy_scene
    masks = (labels == 0)[None].copy()  # only the red third is proposed
    masks[0, :, 30:32] = False  # a thin gap inside it
    result = make(colour_backend, masks, leftover_min_fraction=0.05).segment(img, ["red", "green", "blue"])
    # the uncovered green+blue block is one leftover proposal, classified on its own (mixed colour)
    assert len(result.proposals) == 2
    assert (result.label_map[:, :30] == 0).all()
    assert (result.label_map[:, 40:] != 0).all()


def test_unlabelled_threshold_and_background(colour_backend, toy_scene):
    img, labels = toy_scene
    masks = (labels == 0)[None]
    seg = make(colour_backend, masks, leftover_min_fraction=2.0, unlabelled_threshold=0.5)
    r = seg.segment(img, ["red", "green", "blue"])
    assert (r.label_map[labels == 0] == 0).all() and (r.label_map[labels != 0] == 255).all()
    seg = make(colour_backend, masks, leftover_min_fraction=2.0, background_threshold=0.5)
    r = seg.segment(img, ["background", "red", "green"])
    assert (r.label_map[labels == 0] == 1).all() and (r.label_map[labels != 0] == 0).all()
    assert r.probs[:, 0].max() == 0.0


def test_leftover_regions():
    covered = np.zeros((10, 10), bool)
    covered[:, 4:6] = True
    covered[0, 0] = True
    regions = leftover_regions(covered, min_fraction=0.3)
    assert regions.shape == (2, 10, 10) and regions.sum() == 100 - 20 - 1


def test_save_writes_three_files(colour_backend, toy_scene, tmp_path):
    img, labels = toy_scene
    result = make(colour_backend, np.stack([labels == i for i in range(3)])).segment(img, "red, green, blue")
    paths = result.save(tmp_path / "out", "toy", img)
    assert [p.name for p in paths] == ["toy.png", "toy_overlay.png", "toy.json"]
    lab = Image.open(paths[0])
    assert lab.mode == "P" and lab.size == (96, 64)
    np.testing.assert_array_equal(np.asarray(lab), labels)
    overlay = np.asarray(Image.open(paths[1]))
    assert overlay.shape[0] >= 64 and overlay.shape[1] > 96
    summary = json.loads(paths[2].read_text())
    assert summary["classes"] == ["red", "green", "blue"] and summary["model"] == "fake:colour"
    assert set(summary["timings_s"]) >= {"proposals", "classify", "assemble"}


def test_result_validates_shapes(colour_backend, toy_scene):
    img, labels = toy_scene
    r = make(colour_backend, np.stack([labels == 0]), leftover_min_fraction=2.0).segment(img, "red, green")
    with pytest.raises(ValueError, match=r"probs must have shape \(1, 2\)"):
        Segmentation(r.label_map, r.classes, r.proposals, np.zeros((1, 3), np.float32), r.confidence)
    big = Segmentation(
        r.label_map, tuple(f"c{i}" for i in range(300)), r.proposals, np.zeros((1, 300), np.float32), r.confidence
    )
    assert big.ignore_index == 65535 and big.label_image().mode.startswith("I")


@pytest.mark.weights
@pytest.mark.parametrize(
    ("regions", "options", "size"),
    [("dense", {}, 768), ("crops", {}, 1024), ("dense", {"image_size": 1024}, 1024)],
)
def test_fast_path_runs_mobilesam_at_768(regions, options, size):
    """Dense (and hybrid) regions run MobileSAM at 768 px; crops, the paper's reference, at its native
    1024; the user's own image_size wins. The JSON output records the size."""
    import zsseg

    seg = zsseg.load("conse:efficientnet-lite0", "mobilesam", device="cpu", regions=regions, proposal_options=options)
    assert seg.proposer.img_size == size
    result = seg.segment(np.full((48, 64, 3), 120, np.uint8), "cat, sofa")
    assert result.settings["proposals_input_size"] == size
    assert json.loads(json.dumps(result.summary()))["proposals_input_size"] == size


def test_fast_path_options():
    from zsseg.proposals import FAST_PATH_MOBILESAM_SIZE, fast_path_options

    assert fast_path_options("mobilesam") == {"image_size": FAST_PATH_MOBILESAM_SIZE}
    assert fast_path_options("selective-search") == {}

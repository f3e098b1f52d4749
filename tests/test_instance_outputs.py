"""``zsseg segment --save ...instances,panoptic`` and the Segmentation's instance conversions (issue 27)."""

import json

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask
from zsseg_testing import stub_segmenter, use_stub_segmenter

from zsseg.cli import main
from zsseg.errors import ZsSegError
from zsseg.instances import Instances
from zsseg.instances.panoptic import rgb_to_ids
from zsseg.result import check_save


def quadrants(path, size=(48, 40)):
    w, h = size
    img = np.zeros((h, w, 3), np.uint8)
    img[: h // 2, : w // 2] = (220, 20, 20)
    img[: h // 2, w // 2 :] = (20, 200, 20)
    img[h // 2 :, : w // 2] = (20, 20, 220)
    img[h // 2 :, w // 2 :] = (220, 20, 20)
    Image.fromarray(img).save(path)
    return img


@pytest.fixture
def stub(monkeypatch):
    use_stub_segmenter(monkeypatch)


def test_default_outputs_are_unchanged_and_semantic_bytes_identical(tmp_path, stub):
    quadrants(tmp_path / "a.png")
    assert (
        main(["segment", str(tmp_path / "a.png"), "--classes", "red, green, blue", "--out", str(tmp_path / "d")]) == 0
    )
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["a.json", "a.png", "a_overlay.png"]
    assert "instance_counts" not in json.loads((tmp_path / "d" / "a.json").read_text())
    argv = ["segment", str(tmp_path / "a.png"), "--classes", "red, green, blue", "--out", str(tmp_path / "all")]
    assert main([*argv, "--save", "semantic,overlay,json,instances,panoptic"]) == 0
    assert (tmp_path / "all" / "a.png").read_bytes() == (tmp_path / "d" / "a.png").read_bytes()
    names = sorted(p.name for p in (tmp_path / "all").iterdir())
    assert names == sorted(
        ["a.json", "a.png", "a_overlay.png", "a.instances.json", "a.panoptic.png", "a.panoptic.json"]
    )


def test_instances_file_decodes_with_pycocotools_and_matches_the_label_map(tmp_path, stub):
    quadrants(tmp_path / "a.png")
    argv = ["segment", str(tmp_path / "a.png"), "--classes", "red, green, blue", "--out", str(tmp_path / "o")]
    assert main([*argv, "--save", "semantic,instances,panoptic,json"]) == 0
    label = np.asarray(Image.open(tmp_path / "o" / "a.png"))
    doc = json.loads((tmp_path / "o" / "a.instances.json").read_text())
    assert doc["counts"] == {"red": 2, "green": 1, "blue": 1} and doc["stuff_source"] == "builtin"
    for e in doc["instances"]:
        mask = coco_mask.decode({"size": e["rle"]["size"], "counts": e["rle"]["counts"].encode()}).astype(bool)
        assert mask.sum() == e["area"] and (label[mask] == e["class_id"]).all()
    ids = rgb_to_ids(np.asarray(Image.open(tmp_path / "o" / "a.panoptic.png").convert("RGB")))
    info = json.loads((tmp_path / "o" / "a.panoptic.json").read_text())
    for s in info["segments_info"]:
        assert (label[ids == s["id"]] == s["category_id"] - 1).all() and (ids == s["id"]).sum() == s["area"]
    summary = json.loads((tmp_path / "o" / "a.json").read_text())
    assert summary["instance_counts"] == {"red": 2, "green": 1, "blue": 1}


def test_user_stuff_is_one_region_per_class(tmp_path, stub):
    quadrants(tmp_path / "a.png")
    argv = ["segment", str(tmp_path / "a.png"), "--classes", "red, green, blue", "--out", str(tmp_path / "o")]
    assert main([*argv, "--save", "instances", "--stuff", "red"]) == 0
    doc = json.loads((tmp_path / "o" / "a.instances.json").read_text())
    assert doc["stuff"] == ["red"] and doc["stuff_source"] == "user" and doc["counts"] == {"green": 1, "blue": 1}
    assert [e["label"] for e in doc["instances"] if not e["isthing"]] == ["red"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--save", "semantic,coco"], "unknown output coco"),
        (["--save", "instances", "--stuff", "sky"], "--stuff names 'sky', not in the vocabulary"),
        (["--save", "instances", "--nms-threshold", "2"], "nms_threshold (--nms-threshold) must be"),
        (["--save", "panoptic", "--min-area", "-3"], "min_area (--min-area) must be an integer >= 0"),
    ],
)
def test_bad_instance_flags_exit_2_and_write_nothing(tmp_path, stub, capsys, flags, message):
    quadrants(tmp_path / "a.png")
    out = tmp_path / "o"
    assert main(["segment", str(tmp_path / "a.png"), "--classes", "red, green, blue", "--out", str(out), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not out.exists()


def test_check_save_orders_and_refuses():
    assert check_save("panoptic, semantic") == ("semantic", "panoptic")
    with pytest.raises(ZsSegError, match="none named"):
        check_save("")


def test_conversions_to_supervision_and_the_hf_pipeline(tmp_path):
    import supervision as sv

    image = quadrants(tmp_path / "a.png")
    result = stub_segmenter().segment(image, "red, green, blue")
    inst = result.instances()
    det = result.to_supervision(inst)
    assert isinstance(det, sv.Detections) and len(det) == len(inst)
    np.testing.assert_array_equal(det.mask, inst.masks)
    np.testing.assert_array_equal(det.xyxy, sv.mask_to_xyxy(det.mask).astype(np.float32))
    assert list(det.data["class_name"]) == inst.labels
    hf = result.to_hf(inst)
    assert [d["label"] for d in hf] == inst.labels
    assert all(d["mask"].mode == "L" and d["mask"].size == (48, 40) for d in hf)
    np.testing.assert_array_equal(np.asarray(hf[0]["mask"]) == 255, inst.masks[0])


def test_segmentation_instances_leave_the_label_map_alone(tmp_path):
    image = quadrants(tmp_path / "a.png")
    result = stub_segmenter().segment(image, "red, green, blue")
    before = result.label_map.copy()
    inst = result.instances(min_area=0)
    np.testing.assert_array_equal(result.label_map, before)
    assert isinstance(inst, Instances) and inst.image_size == before.shape
    overlay = result.overlay(image, instances=inst)
    assert overlay.shape[0] >= 40 and overlay.shape[1] > 48

"""``zsseg eval --task instances|panoptic`` end to end on a synthetic VOC layout, with a weight-free segmenter."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from zsseg_testing import use_stub_segmenter

from zsseg.cli import main


def make_voc(root: Path) -> None:
    top = root / "VOCdevkit" / "VOC2012"
    for d in ("JPEGImages", "SegmentationClass", "SegmentationObject", "ImageSets/Segmentation"):
        (top / d).mkdir(parents=True, exist_ok=True)
    img = np.zeros((32, 48, 3), np.uint8)
    img[:, :24, 0] = 220  # red left, blue right
    img[:, 24:, 2] = 220
    cls = np.zeros((32, 48), np.uint8)
    obj = np.zeros((32, 48), np.uint8)
    cls[4:28, 4:20], obj[4:28, 4:20] = 8, 1
    cls[4:28, 28:44], obj[4:28, 28:44] = 12, 2
    for i in ("a", "b"):
        Image.fromarray(img).save(top / "JPEGImages" / f"{i}.jpg")
        Image.fromarray(cls).save(top / "SegmentationClass" / f"{i}.png")
        Image.fromarray(obj).save(top / "SegmentationObject" / f"{i}.png")
    (top / "ImageSets" / "Segmentation" / "val.txt").write_text("a\nb\n")


@pytest.mark.parametrize(("task", "metric"), [("instances", "AP"), ("panoptic", "PQ")])
def test_instance_tasks_write_json_and_markdown(tmp_path: Path, monkeypatch, capsys, task: str, metric: str) -> None:
    pytest.importorskip("pycocotools")
    make_voc(tmp_path / "data")
    use_stub_segmenter(monkeypatch)
    out = tmp_path / "res" / f"{task}.json"
    code = main(["eval", "--dataset", "voc20", "--root", str(tmp_path / "data"), "--task", task, "--out", str(out),
                 "--min-area", "4"])  # fmt: skip
    assert code == 0
    res = json.loads(out.read_text())
    assert res["task"] == task and res["num_images"] == 2
    assert res[metric] is None or 0 <= res[metric] <= 100
    assert res["instance_options"]["stuff"] == []  # VOC-20: every class a thing, as in its ground truth
    assert f"| {metric} |" in out.with_suffix(".md").read_text()
    assert metric in capsys.readouterr().out


def test_dataset_without_instance_ground_truth_is_one_line(tmp_path: Path, capsys) -> None:
    out = tmp_path / "res.json"
    code = main(["eval", "--dataset", "ade150", "--root", str(tmp_path), "--task", "panoptic", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "voc, voc20, cityscapes, coco-stuff171" in err[0]
    assert not out.exists()


def test_stuff_outside_the_vocabulary_is_one_line(tmp_path: Path, capsys) -> None:
    make_voc(tmp_path / "data")
    code = main(["eval", "--dataset", "voc20", "--root", str(tmp_path / "data"), "--task", "instances",
                 "--stuff", "sky"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--stuff" in err[0]

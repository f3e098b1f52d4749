"""Panoptic, YOLO-seg and Label Studio exports through their readers; the folder mark and atomic rebuilds."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from export_testing import CLASSES, iou, synthetic_instances, write_image
from PIL import Image

from zsseg.errors import ZsSegError
from zsseg.export import ExportImage, export_dataset, parse_formats
from zsseg.instances.panoptic import rgb_to_ids
from zsseg.instances.polygons import polygons_to_mask


@pytest.fixture
def images(tmp_path: Path) -> list[ExportImage]:
    return [
        ExportImage(f"im{i}.png", str(write_image(tmp_path / "src" / f"im{i}.png")), synthetic_instances(i))
        for i in range(3)
    ]


def brush_module():
    """label-studio-converter's brush.py alone (its package __init__ needs ujson, which is not installed)."""
    spec = importlib.util.find_spec("label_studio_converter")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("label-studio-converter is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "brush.py"
    module_spec = importlib.util.spec_from_file_location("ls_brush", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def test_panoptic_pngs_hold_disjoint_segments_matching_segments_info(images: list[ExportImage], tmp_path: Path):
    export_dataset(images, tmp_path / "pan", "coco-panoptic")
    doc = json.loads((tmp_path / "pan/annotations/panoptic.json").read_text())
    assert {c["name"]: c["isthing"] for c in doc["categories"]} == {"cat": 1, "dog": 1, "sky": 0, "grass": 0}
    for im, ann in zip(images, doc["annotations"], strict=True):
        inst = im.load()
        ids = rgb_to_ids(np.asarray(Image.open(tmp_path / "pan/annotations/panoptic" / ann["file_name"])))
        assert (ids == inst.id_map).all()  # one id a pixel: disjoint by construction
        for seg in ann["segments_info"]:
            mask = ids == seg["id"]
            assert seg["area"] == mask.sum()
            assert (inst.class_ids[inst.id_map[mask] - 1] == seg["category_id"] - 1).all()
        assert set(np.unique(ids)) - {0} == {s["id"] for s in ann["segments_info"] if s["area"]}


def test_yolo_lines_rasterise_back_to_the_instances(images: list[ExportImage], tmp_path: Path) -> None:
    files = export_dataset(images, tmp_path / "yolo", "yolo-seg")
    assert {"data.yaml", "images/im0.png", "labels/im0.txt"} <= set(files)
    yaml_text = (tmp_path / "yolo/data.yaml").read_text()
    assert "train: images" in yaml_text and '  3: "grass"' in yaml_text
    assert yaml_text.count(f"path: {json.dumps(str((tmp_path / 'yolo').resolve()))}") == 1
    for im in images:
        inst = im.load()
        h, w = inst.image_size
        lines = (tmp_path / "yolo/labels" / f"{im.stem}.txt").read_text().splitlines()
        nonempty = [i for i in range(len(inst)) if inst.areas[i]]
        assert len(lines) == len(nonempty)
        for line, i in zip(lines, nonempty, strict=True):
            cls, *coords = line.split()
            xy = np.asarray(coords, dtype=float).reshape(-1, 2)
            assert int(cls) == inst.class_ids[i] and (xy >= 0).all() and (xy <= 1).all()
            back = polygons_to_mask([xy * (w, h)], h, w)
            if inst.areas[i] >= 64:  # non-tiny: the 6-digit rounding may move a tiny one's edge pixels
                assert iou(back, inst.mask(i)) >= 0.9


def test_label_studio_brush_rle_decodes_to_our_masks(images: list[ExportImage], tmp_path: Path) -> None:
    brush = brush_module()
    export_dataset(images, tmp_path / "ls", "labelstudio", model_version="zsseg test")
    tasks = json.loads((tmp_path / "ls/tasks.json").read_text())
    config = (tmp_path / "ls/config.xml").read_text()
    assert '<Image name="image" value="$image"' in config and '<BrushLabels name="label" toName="image">' in config
    assert all(f'<Label value="{c}"' in config for c in CLASSES)
    for im, t in zip(images, tasks, strict=True):
        inst = im.load()
        h, w = inst.image_size
        assert t["data"]["image"] == f"/data/local-files/?d=images/{im.file_name}"
        (pred,) = t["predictions"]
        assert pred["model_version"] == "zsseg test"
        masks = [inst.mask(i) for i in range(len(inst)) if inst.areas[i]]
        for r, mask in zip(pred["result"], masks, strict=True):
            assert (r["from_name"], r["to_name"], r["type"]) == ("label", "image", "brushlabels")
            assert (r["original_width"], r["original_height"], r["image_rotation"]) == (w, h, 0)
            rgba = np.asarray(brush.decode_rle(r["value"]["rle"]), dtype=np.uint8).reshape(h, w, 4)
            assert ((rgba[..., 3] == 255) == mask).all()
            assert r["value"]["format"] == "rle" and r["value"]["brushlabels"][0] in CLASSES


def test_a_folder_holding_other_files_or_another_export_is_refused(images: list[ExportImage], tmp_path: Path):
    foreign = tmp_path / "theirs"
    (foreign / "annotations").mkdir(parents=True)
    (foreign / "annotations/instances.json").write_text("{}")
    with pytest.raises(ZsSegError, match="not a zsseg export") as err:
        export_dataset(images, foreign, "coco")
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in foreign.rglob("*")) == ["annotations", "instances.json"]  # nothing written
    export_dataset(images, tmp_path / "ours", "coco")
    with pytest.raises(ZsSegError, match="coco export, not yolo-seg"):
        export_dataset(images, tmp_path / "ours", "yolo-seg")
    other = [ExportImage(im.file_name, im.source, replace(im.load(), settings={"min_area": 7})) for im in images]
    with pytest.raises(ZsSegError, match="min_area"):
        export_dataset(other[:1], tmp_path / "ours", "coco")
    with pytest.raises(ZsSegError, match="--export got 'voc'"):
        parse_formats("coco, voc")


def test_a_rebuild_replaces_the_dataset_and_removes_what_it_no_longer_holds(
    images: list[ExportImage], tmp_path: Path
) -> None:
    export_dataset(images, tmp_path / "y", "yolo-seg")
    assert (tmp_path / "y/labels/im2.txt").is_file()
    export_dataset(images[:2], tmp_path / "y", "yolo-seg")
    assert not (tmp_path / "y/labels/im2.txt").exists() and not (tmp_path / "y/images/im2.png").exists()
    assert not list((tmp_path / "y").rglob(".*.tmp"))


def test_a_failing_export_writes_nothing(images: list[ExportImage], tmp_path: Path) -> None:
    bad = [*images, ExportImage("broken.png", None, tmp_path / "missing.json")]
    with pytest.raises(ZsSegError, match="cannot read the instances file"):
        export_dataset(bad, tmp_path / "c", "coco")
    assert not [p for p in (tmp_path / "c").rglob("*") if p.is_file()]
    with pytest.raises(ZsSegError, match="share the stem"):
        export_dataset([images[0], ExportImage("im0.jpg", None, images[1].instances)], tmp_path / "c", "coco")

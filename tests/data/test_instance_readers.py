"""Instance ground-truth readers on synthetic files in the benchmarks' real layouts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zsseg.data.instances import load_instance_dataset
from zsseg.data.targets import compose_target
from zsseg.errors import ZsSegError


def save(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def make_voc(root: Path) -> None:
    top = root / "VOCdevkit" / "VOC2012"
    cls = np.zeros((20, 30), np.uint8)
    obj = np.zeros((20, 30), np.uint8)
    cls[2:8, 2:10], obj[2:8, 2:10] = 8, 1  # a cat
    cls[10:18, 2:10], obj[10:18, 2:10] = 8, 2  # another cat
    cls[10:18, 15:28], obj[10:18, 15:28] = 12, 3  # a dog
    cls[1, :], obj[1, :] = 255, 255  # void border
    for i in ("a", "b"):
        save(top / "JPEGImages" / f"{i}.jpg", np.full((20, 30, 3), 128, np.uint8))
        save(top / "SegmentationClass" / f"{i}.png", cls)
    save(top / "SegmentationObject" / "a.png", obj)  # only "a" has instances
    (top / "ImageSets" / "Segmentation").mkdir(parents=True)
    (top / "ImageSets" / "Segmentation" / "val.txt").write_text("a\nb\n")


def test_voc20_objects_with_their_classes_background_void(tmp_path: Path) -> None:
    make_voc(tmp_path)
    ds = load_instance_dataset("voc20", tmp_path, "val")
    assert [s.id for s in ds.samples] == ["a"] and ds.stuff_names == []
    t = ds.load_target(ds.samples[0])
    assert [ds.info.classes[c] for c in t.class_ids] == ["cat", "cat", "dog"]
    assert t.is_thing.all() and not t.iscrowd.any()
    assert np.bincount(t.id_map.ravel()).tolist()[1:] == [48, 64, 104]
    assert t.void[1].all() and t.void[0, 0] and not t.void[3, 3]  # border and background are void
    assert len(t.rles()) == 3


def test_voc_background_is_one_stuff_segment(tmp_path: Path) -> None:
    make_voc(tmp_path)
    ds = load_instance_dataset("voc", tmp_path, "val")
    assert ds.stuff_names == ["background"]
    t = ds.load_target(ds.samples[0])
    assert [ds.info.classes[c] for c in t.class_ids] == ["background", "cat", "cat", "dog"]
    assert t.is_thing.tolist() == [False, True, True, True]
    assert t.void.sum() == 30  # only the border row


def test_cityscapes_instances_groups_and_void(tmp_path: Path) -> None:
    top = tmp_path / "cityscapes"
    ids = np.full((16, 24), 7, np.uint16)  # road
    ids[0:4, :] = 23  # sky
    ids[5:9, 2:6] = 24000  # person 0
    ids[5:9, 8:12] = 24001  # person 1
    ids[10:14, 2:10] = 26  # a group of cars: crowd
    ids[10:14, 12:16] = 26005  # car 5
    ids[10:14, 18:22] = 29001  # a caravan: not in the 19 classes, void
    ids[15, :] = 0  # unlabelled: void
    labels = np.where(ids >= 1000, ids // 1000, ids).astype(np.uint8)
    city = "x"
    save(top / "leftImg8bit" / "val" / city / "x_000000_000001_leftImg8bit.png", np.zeros((16, 24, 3), np.uint8))
    save(top / "gtFine" / "val" / city / "x_000000_000001_gtFine_labelIds.png", labels)
    save(top / "gtFine" / "val" / city / "x_000000_000001_gtFine_instanceIds.png", ids)
    ds = load_instance_dataset("cityscapes", tmp_path, "val")
    assert len(ds.stuff_names) == 11 and len(ds.thing_ids) == 8
    t = ds.load_target(ds.samples[0])
    names = [ds.info.classes[c] for c in t.class_ids]
    assert sorted(names) == ["car", "car", "person", "person", "road", "sky"]
    crowd = [n for n, c in zip(names, t.iscrowd, strict=True) if c]
    assert crowd == ["car"]
    assert t.void[10:14, 18:22].all() and t.void[15].all() and not t.void[0].any()


def test_coco_polygons_rle_crowd_stuff_and_overlap(tmp_path: Path) -> None:
    pytest.importorskip("pycocotools")
    from pycocotools import mask as mask_utils

    top = tmp_path / "coco_stuff164k"
    h, w = 20, 30
    save(top / "images" / "val2017" / "000000000007.jpg", np.zeros((h, w, 3), np.uint8))
    save(top / "annotations" / "val2017" / "000000000007.png", np.zeros((h, w), np.uint8))
    crowd = np.zeros((h, w), np.uint8, order="F")
    crowd[12:18, 2:12] = 1
    crowd_rle = mask_utils.encode(np.asfortranarray(crowd))
    sky = np.zeros((h, w), np.uint8)
    sky[0:3, :] = 1
    sky_rle = mask_utils.encode(np.asfortranarray(sky))
    images = [{"id": 7, "file_name": "000000000007.jpg", "height": h, "width": w}]
    anns = [
        {"id": 1, "image_id": 7, "category_id": 1, "iscrowd": 0, "segmentation": [[4, 4, 14, 4, 14, 10, 4, 10]]},
        {"id": 2, "image_id": 7, "category_id": 18, "iscrowd": 0, "segmentation": [[10, 4, 20, 4, 20, 10, 10, 10]]},
        {"id": 3, "image_id": 7, "category_id": 1, "iscrowd": 1,
         "segmentation": {"size": [h, w], "counts": crowd_rle["counts"].decode()}},
    ]  # fmt: skip
    stuff = [
        {"id": 4, "image_id": 7, "category_id": 157, "iscrowd": 0,
         "segmentation": {"size": [h, w], "counts": sky_rle["counts"].decode()}},
        {"id": 5, "image_id": 7, "category_id": 183, "iscrowd": 0, "segmentation": [[0, 0, 5, 0, 5, 5]]},
    ]  # fmt: skip
    (top / "annotations" / "instances_val2017.json").write_text(json.dumps({"images": images, "annotations": anns}))
    (top / "annotations" / "stuff_val2017.json").write_text(json.dumps({"images": images, "annotations": stuff}))
    ds = load_instance_dataset("coco-stuff171", tmp_path, "val")
    t = ds.load_target(ds.samples[0])
    names = [ds.info.classes[c] for c in t.class_ids]
    assert names == ["person", "dog", "person", "sky-other"]  # "other" (183) is skipped
    assert t.iscrowd.tolist() == [False, False, True, False]
    assert t.is_thing.tolist() == [True, True, True, False]
    full = [mask_utils.decode(r) for r in t.rles()]
    person_poly = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(anns[0]["segmentation"], h, w)))
    assert np.array_equal(full[0], person_poly)  # pycocotools' own rasterisation
    overlap = full[0].astype(bool) & full[1].astype(bool)
    assert overlap.any() and (t.id_map[overlap] == 0).all()  # claimed twice: void in the panoptic map
    assert not t.void[overlap].any()  # but labelled, so not void for the AP


def test_dataset_without_instance_ground_truth_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ZsSegError, match="voc, voc20, cityscapes, coco-stuff171"):
        load_instance_dataset("ade150", tmp_path, "val")


def test_split_without_instance_files_is_refused(tmp_path: Path) -> None:
    make_voc(tmp_path)
    (tmp_path / "VOCdevkit" / "VOC2012" / "SegmentationObject" / "a.png").unlink()
    with pytest.raises(ZsSegError, match="SegmentationObject"):
        load_instance_dataset("voc20", tmp_path, "val")


def test_compose_target_orders_by_class_then_number() -> None:
    sem = np.asarray([[0, 0, 1, 1], [2, 2, 255, 1]])
    inst = np.asarray([[3, 3, 0, 0], [9, 0, 0, 0]])
    t = compose_target(sem, inst, np.asarray([True, False, True]), 255)
    assert t.class_ids.tolist() == [0, 1, 2, 2]
    assert t.iscrowd.tolist() == [False, False, True, False]  # class 2 without a number: crowd
    assert t.id_map.tolist() == [[1, 1, 2, 2], [4, 3, 0, 2]]

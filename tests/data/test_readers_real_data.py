"""Dataset readers on the real benchmark files in ../shared/data (skipped where they are absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from zsseg.data import load_dataset
from zsseg.data.dataset import packaged_class_table

pytestmark = pytest.mark.data


TOP = {
    "voc": "VOCdevkit",
    "voc20": "VOCdevkit",
    "ade150": "ADEChallengeData2016",
    "coco-stuff171": "coco_stuff164k",
    "cityscapes": "cityscapes",
    "pc59": "pascal_context",
}


def need(root: Path, name: str) -> Path:
    if not (root / TOP[name]).is_dir():
        pytest.skip(f"{root / TOP[name]} is absent from the benchmark data folder")
    return root


@pytest.mark.parametrize(
    ("name", "split", "count", "num_classes"),
    [
        ("voc", "val", 200, 21),
        ("voc", "train", 330, 21),
        ("voc20", "val", 200, 20),
        ("ade150", "val", 20, 150),
        ("coco-stuff171", "val", 43, 171),
        ("cityscapes", "val", 6, 19),
        ("cityscapes", "train", 12, 19),
        ("pc59", "val", 4, 59),
    ],
)
def test_counts_and_every_label_valid(data_root: Path, name: str, split: str, count: int, num_classes: int) -> None:
    ds = load_dataset(name, need(data_root, name), split)
    assert len(ds) == count
    assert ds.info.num_classes == num_classes == len(ds.info.prompt_names)
    assert ds.info.ignore_index == 255
    ids = [s.id for s in ds.samples]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(s.image_path.is_file() and s.label_path.is_file() for s in ds.samples)
    ds.validate()  # every label: readable, single-channel, same size as its image, known raw values
    assert len(set(ds.info.prompt_names)) == num_classes, "prompt names must be unique"


@pytest.mark.parametrize("name", ["voc", "voc20", "ade150", "coco-stuff171", "cityscapes", "pc59"])
def test_image_and_label_arrays(data_root: Path, name: str) -> None:
    ds = load_dataset(name, need(data_root, name))
    for sample in (ds.samples[0], ds.samples[-1]):
        image, label = ds.load_image(sample), ds.load_label(sample)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        assert label.dtype == np.int64 and label.shape == image.shape[:2]
        values = np.unique(label)
        assert np.all((values < ds.info.num_classes) | (values == ds.info.ignore_index))
        assert values.min() >= 0 and (values < ds.info.num_classes).any()


def test_voc_classes_and_split(data_root: Path) -> None:
    info = load_dataset("voc", need(data_root, "voc")).info
    assert info.classes[0] == "background" and info.classes[15] == "person" and info.classes[20] == "tvmonitor"
    assert info.prompt_names[16] == "potted plant" and info.prompt_names[20] == "tv monitor"
    assert info.prompt_names[11] == "dining table"
    assert info.unseen == ("pottedplant", "sheep", "sofa", "train", "tvmonitor")
    assert info.unseen_ids == (16, 17, 18, 19, 20)


def test_voc20_is_voc_without_background(data_root: Path) -> None:
    root = need(data_root, "voc")
    voc, voc20 = load_dataset("voc", root), load_dataset("voc20", root)
    assert voc20.info.classes == voc.info.classes[1:]
    assert voc20.info.unseen_ids == (15, 16, 17, 18, 19)
    for sample in voc.samples[:5]:
        a, b = voc.load_label(sample), voc20.load_label(sample)
        obj = (a >= 1) & (a <= 20)
        np.testing.assert_array_equal(b[obj], a[obj] - 1)
        assert np.all(b[~obj] == 255)
        assert (a == 0).any() and (a == 255).any()  # background and void border both become ignore


def test_root_may_be_the_dataset_folder(data_root: Path) -> None:
    root = need(data_root, "voc")
    for r in (root, root / "VOCdevkit", root / "VOCdevkit" / "VOC2012"):
        assert len(load_dataset("voc", r)) == 200
    assert len(load_dataset("ade150", need(data_root, "ade150") / "ADEChallengeData2016")) == 20
    assert len(load_dataset("pc59", need(data_root, "pc59") / "pascal_context")) == 4


def test_ade150_names(data_root: Path) -> None:
    ds = load_dataset("ade150", need(data_root, "ade150"))
    info = ds.info
    assert info.classes[0] == "wall" and info.classes[1] == "building, edifice"
    assert info.prompt_names[1] == "building" and info.synonyms_of(1) == ("building", "edifice")
    assert info.prompt_names[7] == "bed" and info.classes[149] == "flag"
    # the packaged copy (used when objectInfo150.txt is absent) equals the data folder's file
    packaged = packaged_class_table("ade150.txt")
    assert [r.name for r in packaged] == list(info.classes)
    assert [r.raw for r in packaged] == list(range(1, 151))
    # raw 0 ("other") is ignored, raw k -> k-1
    sample = ds.samples[0]
    raw, label = ds.load_raw_label(sample), ds.load_label(sample)
    np.testing.assert_array_equal(label[raw == 0], 255)
    np.testing.assert_array_equal(label[raw > 0], raw[raw > 0] - 1)
    present = {info.prompt_names[k] for k in np.unique(label) if k < 150}
    assert {"sky", "building", "tree", "grass"} <= present  # ADE_val_00000001: a street scene


def test_coco_stuff_182_to_171(data_root: Path) -> None:
    root = need(data_root, "coco-stuff171")
    ds = load_dataset("coco-stuff171", root)
    info = ds.info
    # names: the packaged table agrees with the data folder's labels.txt (line id - 1 = raw value)
    lines = (root / "coco_stuff164k" / "labels.txt").read_text().splitlines()[1:]
    raw_names = {int(i) - 1: n for i, n in (ln.split(": ", 1) for ln in lines)}
    rows = packaged_class_table("coco_stuff171.txt")
    assert len(raw_names) == 182 and len(rows) == 171
    assert all(raw_names[r.raw] == r.name for r in rows)
    dropped = sorted(set(raw_names) - {r.raw for r in rows})
    assert [raw_names[i] for i in dropped] == [
        "street sign", "hat", "shoe", "eye glasses", "plate", "mirror", "window", "desk", "door", "blender",
        "hair brush",
    ]  # fmt: skip
    assert info.classes[0] == "person" and info.classes[11] == "stop sign" and info.classes[170] == "wood"
    assert info.prompt_names[info.classes.index("building-other")] == "building"
    assert info.prompt_names[info.classes.index("wall-concrete")] == "concrete wall"
    assert len(info.unseen) == 15 and "playingfield" in info.unseen and "wall-concrete" in info.unseen
    # pixel mapping on real labels: contiguous id = rank of the raw id among the 171 kept ids
    lut = {r.raw: k for k, r in enumerate(rows)}
    for sample in ds.samples[:5]:
        raw, label = ds.load_raw_label(sample), ds.load_label(sample)
        for v in np.unique(raw):
            expected = 255 if v == 255 else lut[int(v)]
            assert np.all(label[raw == v] == expected)
    first = ds.samples[0]  # 000000000139: a living room
    names = {info.classes[k] for k in np.unique(ds.load_label(first)) if k < 171}
    assert {"person", "tv", "chair", "potted plant", "refrigerator"} <= names


def test_cityscapes_train_ids(data_root: Path) -> None:
    ds = load_dataset("cityscapes", need(data_root, "cityscapes"), "val")
    info = ds.info
    assert info.classes[:3] == ("road", "sidewalk", "building") and info.classes[18] == "bicycle"
    sample = ds.samples[0]
    raw, label = ds.load_raw_label(sample), ds.load_label(sample)
    assert raw.max() <= 33
    np.testing.assert_array_equal(label[raw == 7], 0)  # road
    np.testing.assert_array_equal(label[raw == 26], 13)  # car
    np.testing.assert_array_equal(label[raw == 33], 18)  # bicycle
    for void in (0, 1, 2, 3, 4, 5, 6, 9, 10, 14, 15, 16, 18, 29, 30):
        assert np.all(label[raw == void] == 255)
    counts = np.bincount(label[label < 19], minlength=19)
    assert set(np.argsort(-counts)[:2].tolist()) == {0, 2}  # frankfurt_000000_000294: road and buildings


def test_pc59_names_match_data_folder(data_root: Path) -> None:
    root = need(data_root, "pc59")
    info = load_dataset("pc59", root).info
    names = [ln.split(" ", 1)[1] for ln in (root / "pascal_context" / "classes59.txt").read_text().splitlines()]
    assert list(info.classes) == names
    assert info.prompt_names[info.classes.index("pottedplant")] == "potted plant"
    assert info.unseen == ()

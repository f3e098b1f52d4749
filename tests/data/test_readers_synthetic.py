"""Dataset readers on tiny synthetic layouts: decoding, root resolution and errors on malformed data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zsseg.data import DATASET_NAMES, DatasetInfo, load_dataset
from zsseg.data.dataset import make_row, packaged_class_table, parse_class_table, parse_name_list
from zsseg.errors import ZsSegError


def write_image(path: Path, h: int, w: int, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path)


def write_label(path: Path, label: np.ndarray, palette: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if label.dtype == np.uint16:
        Image.fromarray(label).save(path)
        return
    im = Image.fromarray(label.astype(np.uint8), mode="P" if palette else "L")
    if palette:
        im.putpalette([v for k in range(256) for v in (k, 255 - k, k // 2)])
    im.save(path)


def make_folder(root: Path, n: int = 3, classes: str = "cat\ndog\ngrass\n") -> Path:
    for i in range(n):
        write_image(root / "images" / f"img{i}.jpg", 6, 8, i)
        label = np.full((6, 8), i % 3, dtype=np.uint8)
        label[0, 0] = 255
        write_label(root / "labels" / f"img{i}.png", label)
    (root / "classes.txt").write_text(classes)
    return root


def make_voc(root: Path, ids: tuple[str, ...] = ("2007_000001", "2007_000002"), split: str = "val") -> Path:
    top = root / "VOCdevkit" / "VOC2012"
    for k, i in enumerate(ids):
        write_image(top / "JPEGImages" / f"{i}.jpg", 5, 7, k)
        label = np.zeros((5, 7), dtype=np.uint8)
        label[1:4, 1:5] = 15 + k  # person / pottedplant
        label[0, :] = 255
        write_label(top / "SegmentationClass" / f"{i}.png", label, palette=True)
    lists = top / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True, exist_ok=True)
    (lists / f"{split}.txt").write_text("\n".join(reversed(ids)) + "\n")
    return root


# ------------------------------------------------------------------------------------------ folder layout


def test_folder_reads_images_labels_and_classes(tmp_path: Path) -> None:
    ds = load_dataset("folder", make_folder(tmp_path))
    assert [s.id for s in ds.samples] == ["img0", "img1", "img2"]
    assert ds.info.classes == ("cat", "dog", "grass") and ds.info.ignore_index == 255
    image, label = ds.load_image(ds.samples[1]), ds.load_label(ds.samples[1])
    assert image.shape == (6, 8, 3) and image.dtype == np.uint8
    assert label.dtype == np.int64 and label[0, 0] == 255 and label[1, 1] == 1


def test_folder_class_list_with_indices_and_synonyms(tmp_path: Path) -> None:
    ds = load_dataset("folder", make_folder(tmp_path, classes="0 cat, kitty\n1: dog\n# comment\n2 grass\n"))
    assert ds.info.classes == ("cat, kitty", "dog", "grass")
    assert ds.info.prompt_names == ("cat", "dog", "grass")
    assert ds.info.synonyms_of(0) == ("cat", "kitty")


def test_image_without_label(tmp_path: Path) -> None:
    make_folder(tmp_path)
    write_image(tmp_path / "images" / "lonely.jpg", 6, 8)
    with pytest.raises(ZsSegError, match=r"lonely\.jpg has no label"):
        load_dataset("folder", tmp_path)


def test_label_without_image(tmp_path: Path) -> None:
    make_folder(tmp_path)
    write_label(tmp_path / "labels" / "orphan.png", np.zeros((6, 8), np.uint8))
    with pytest.raises(ZsSegError, match=r"orphan\.png has no image"):
        load_dataset("folder", tmp_path)


def test_label_size_differs_from_image(tmp_path: Path) -> None:
    make_folder(tmp_path)
    write_label(tmp_path / "labels" / "img1.png", np.zeros((4, 8), np.uint8))
    ds = load_dataset("folder", tmp_path)
    ds.load_label(ds.samples[0])
    with pytest.raises(ZsSegError, match=r"img1\.png is 8x4 but its image .*img1\.jpg is 8x6"):
        ds.load_label(ds.samples[1])
    with pytest.raises(ZsSegError, match="img1"):
        ds.validate()


def test_label_values_out_of_range(tmp_path: Path) -> None:
    make_folder(tmp_path)
    bad = np.zeros((6, 8), np.uint8)
    bad[2, 2], bad[3, 3] = 7, 200
    write_label(tmp_path / "labels" / "img2.png", bad)
    ds = load_dataset("folder", tmp_path)
    with pytest.raises(ZsSegError, match=r"img2\.png has values \[7, 200\].*allowed: 0\.\.2, 255"):
        ds.load_label(ds.samples[2])


def test_colour_label_rejected(tmp_path: Path) -> None:
    make_folder(tmp_path)
    Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(tmp_path / "labels" / "img0.png")
    ds = load_dataset("folder", tmp_path)
    with pytest.raises(ZsSegError, match="3 channels.*single-channel"):
        ds.load_label(ds.samples[0])


def test_corrupt_image(tmp_path: Path) -> None:
    make_folder(tmp_path)
    (tmp_path / "images" / "img0.jpg").write_bytes(b"not a jpeg")
    ds = load_dataset("folder", tmp_path)
    with pytest.raises(ZsSegError, match=r"cannot read image .*img0\.jpg"):
        ds.load_image(ds.samples[0])


def test_folder_layout_errors(tmp_path: Path) -> None:
    with pytest.raises(ZsSegError, match="does not exist.*images/"):
        load_dataset("folder", tmp_path / "missing")
    make_folder(tmp_path)
    (tmp_path / "classes.txt").unlink()
    with pytest.raises(ZsSegError, match="classes.txt"):
        load_dataset("folder", tmp_path)
    (tmp_path / "classes.txt").write_text("cat\ncat\n")
    with pytest.raises(ZsSegError, match="more than once"):
        load_dataset("folder", tmp_path)
    (tmp_path / "classes.txt").write_text("1 cat\n0 dog\n")
    with pytest.raises(ZsSegError, match="out of order"):
        load_dataset("folder", tmp_path)


def test_unknown_name_and_split(tmp_path: Path) -> None:
    with pytest.raises(ZsSegError, match="unknown dataset 'nope'.*voc"):
        load_dataset("nope", tmp_path)
    make_voc(tmp_path)
    with pytest.raises(ZsSegError, match=r"test\.txt does not exist"):
        load_dataset("voc", tmp_path, "test")


# --------------------------------------------------------------------------------------------- fake VOC


def test_fake_voc_layout(tmp_path: Path) -> None:
    make_voc(tmp_path)
    for root in (tmp_path, tmp_path / "VOCdevkit", tmp_path / "VOCdevkit" / "VOC2012"):
        ds = load_dataset("voc", root)
        assert [s.id for s in ds.samples] == ["2007_000001", "2007_000002"]  # sorted, not list order
    label = ds.load_label(ds.samples[1])
    assert label[2, 2] == 16 and label[4, 6] == 0 and label[0, 0] == 255
    voc20 = load_dataset("voc20", tmp_path)
    label20 = voc20.load_label(voc20.samples[1])
    assert label20[2, 2] == 15 and label20[4, 6] == 255 and label20[0, 0] == 255
    assert voc20.info.prompt_names[15] == "potted plant"


def test_fake_voc_missing_root_names_layout(tmp_path: Path) -> None:
    with pytest.raises(ZsSegError, match=r"no VOC dataset found under .*VOCdevkit/VOC2012/\{JPEGImages"):
        load_dataset("voc", tmp_path)


def test_fake_voc_listed_image_without_label(tmp_path: Path) -> None:
    make_voc(tmp_path)
    (tmp_path / "VOCdevkit/VOC2012/SegmentationClass/2007_000002.png").unlink()
    with pytest.raises(ZsSegError, match=r"2007_000002\.jpg has no label .*2007_000002\.png"):
        load_dataset("voc", tmp_path)


def test_fake_voc_listed_id_without_image(tmp_path: Path) -> None:
    make_voc(tmp_path)
    (tmp_path / "VOCdevkit/VOC2012/JPEGImages/2007_000001.jpg").unlink()
    with pytest.raises(ZsSegError, match=r"2007_000001\.jpg .*is missing"):
        load_dataset("voc", tmp_path)


def test_fake_voc_out_of_range_and_size(tmp_path: Path) -> None:
    make_voc(tmp_path)
    seg = tmp_path / "VOCdevkit/VOC2012/SegmentationClass"
    bad = np.zeros((5, 7), np.uint8)
    bad[1, 1] = 21
    write_label(seg / "2007_000001.png", bad, palette=True)
    write_label(seg / "2007_000002.png", np.zeros((7, 5), np.uint8), palette=True)
    ds = load_dataset("voc", tmp_path)
    with pytest.raises(ZsSegError, match=r"has values \[21\] that are not labels of voc"):
        ds.load_label(ds.samples[0])
    with pytest.raises(ZsSegError, match="is 5x7 but its image"):
        ds.load_label(ds.samples[1])


# ------------------------------------------------------------------------------------ other fake layouts


def test_fake_ade150_uses_packaged_names_without_object_info(tmp_path: Path) -> None:
    top = tmp_path / "ADEChallengeData2016"
    write_image(top / "images" / "validation" / "ADE_val_00000001.jpg", 4, 4)
    write_label(top / "annotations" / "validation" / "ADE_val_00000001.png", np.array([[0, 1, 2, 150]] * 4))
    ds = load_dataset("ade150", tmp_path)
    assert ds.info.prompt_names[:3] == ("wall", "building", "sky")
    np.testing.assert_array_equal(ds.load_label(ds.samples[0])[0], [255, 0, 1, 149])


def test_fake_ade847_uint16(tmp_path: Path) -> None:
    top = tmp_path / "ADE20K_2021_17_01"
    write_image(top / "images_detectron2" / "validation" / "a.jpg", 2, 3)
    raw = np.array([[0, 846, 65535], [300, 1, 2]], dtype=np.uint16)
    write_label(top / "annotations_detectron2" / "validation" / "a.tif", raw)
    with pytest.raises(ZsSegError, match=r"847 class names.*classes847\.txt"):
        load_dataset("ade847", tmp_path)
    (top / "classes847.txt").write_text("".join(f"thing {k}\n" for k in range(847)))
    ds = load_dataset("ade847", tmp_path)
    assert ds.info.num_classes == 847 and ds.info.ignore_index == 65535
    np.testing.assert_array_equal(ds.load_label(ds.samples[0]), raw.astype(np.int64))
    write_label(top / "annotations_detectron2" / "validation" / "a.tif", raw.clip(0, 900) + 1)
    with pytest.raises(ZsSegError, match=r"values \[847, 901\]"):
        ds.load_label(ds.samples[0])


def test_fake_pc459_with_voc2010_images(tmp_path: Path) -> None:
    write_image(tmp_path / "VOCdevkit" / "VOC2010" / "JPEGImages" / "2008_000002.jpg", 3, 3)
    write_image(tmp_path / "VOCdevkit" / "VOC2010" / "JPEGImages" / "2008_000003.jpg", 3, 3)  # not in split
    ann = tmp_path / "pascal_context" / "annotations_detectron2" / "pc459_val"
    write_label(ann / "2008_000002.tif", np.array([[0, 458, 65535]] * 3, dtype=np.uint16))
    (tmp_path / "pascal_context" / "classes459.txt").write_text("".join(f"c{k}\n" for k in range(459)))
    ds = load_dataset("pc459", tmp_path)
    assert [s.id for s in ds.samples] == ["2008_000002"]
    np.testing.assert_array_equal(ds.load_label(ds.samples[0])[0], [0, 458, 65535])
    write_label(ann / "2008_000009.tif", np.zeros((3, 3), np.uint16))
    with pytest.raises(ZsSegError, match=r"2008_000009\.tif has no image"):
        load_dataset("pc459", tmp_path)


def test_fake_cityscapes_nested_cities(tmp_path: Path) -> None:
    top = tmp_path / "cityscapes"
    raw = np.array([[7, 8, 0, 33], [26, 9, 23, 24]], dtype=np.uint8)
    for city in ("b_city", "a_city"):
        write_image(top / "leftImg8bit" / "val" / city / f"{city}_000000_000019_leftImg8bit.png", 2, 4)
        write_label(top / "gtFine" / "val" / city / f"{city}_000000_000019_gtFine_labelIds.png", raw)
        write_label(top / "gtFine" / "val" / city / f"{city}_000000_000019_gtFine_color.png", raw)  # not a label
    ds = load_dataset("cityscapes", tmp_path, "val")
    assert [s.id for s in ds.samples] == ["a_city_000000_000019", "b_city_000000_000019"]
    np.testing.assert_array_equal(ds.load_label(ds.samples[0]), [[0, 1, 255, 18], [13, 255, 10, 11]])


# ------------------------------------------------------------------------------------------ class tables


def test_class_table_parsing() -> None:
    rows = parse_class_table("# c\n0\tbackground\n16\tpottedplant\tpotted plant\n", "t")
    assert [(r.raw, r.name, r.prompt) for r in rows] == [(0, "background", "background"),
                                                         (16, "pottedplant", "potted plant")]  # fmt: skip
    with pytest.raises(ZsSegError, match="t:2"):
        parse_class_table("0\ta\nx\tb\n", "t")
    assert make_row(3, "bed ").prompt == "bed"
    assert [r.name for r in parse_name_list("0: unlabeled\n1: person\n", "l")] == ["unlabeled", "person"]
    with pytest.raises(ZsSegError, match="lists no class"):
        parse_name_list("# nothing\n", "l")


def test_dataset_info_checks() -> None:
    with pytest.raises(ValueError, match="ignore_index 1 is a class id"):
        DatasetInfo("x", ("a", "b"), ("a", "b"), ignore_index=1)
    with pytest.raises(ValueError, match="not among the classes"):
        DatasetInfo("x", ("a", "b"), ("a", "b"), unseen=("c",))
    info = DatasetInfo("x", ("a", "b"), ("A", "B"), unseen=("b",))
    assert info.unseen_ids == (1,) and info.synonyms_of(0) == ("A",)


def test_cityscapes_table_matches_cityscapesscripts() -> None:
    labels_mod = pytest.importorskip("cityscapesscripts.helpers.labels", reason="cityscapesscripts not installed")
    expected = sorted((lab.trainId, lab.id, lab.name) for lab in labels_mod.labels if 0 <= lab.trainId < 19)
    rows = packaged_class_table("cityscapes.txt")
    assert [(k, r.raw, r.name) for k, r in enumerate(rows)] == expected


def test_dataset_names() -> None:
    assert set(DATASET_NAMES) == {
        "voc", "voc20", "ade150", "ade847", "coco-stuff171", "pc59", "pc459", "cityscapes", "folder",
    }  # fmt: skip

"""COCO and CVAT exports through the real readers: pycocotools (masks, results) and supervision."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from export_testing import CLASSES, STUFF, iou, synthetic_instances, write_image

from zsseg.export import ExportImage, export_dataset, export_datasets


@pytest.fixture
def images(tmp_path: Path) -> list[ExportImage]:
    out = []
    for i in range(3):
        src = write_image(tmp_path / "src" / f"im{i}.jpg")
        inst = synthetic_instances(i)
        out.append(ExportImage(f"d/im{i}.jpg", str(src), inst.to_json(image=str(src)) if i % 2 else inst))
    return out


def masks_by_image(images: list[ExportImage]) -> dict[int, np.ndarray]:
    return {k: im.load().masks for k, im in enumerate(images, start=1)}


@pytest.mark.parametrize("polygons", [False, True])
def test_pycocotools_loads_the_export_and_decodes_our_masks(
    images: list[ExportImage], tmp_path: Path, polygons: bool
) -> None:
    from pycocotools.coco import COCO

    files = export_dataset(images, tmp_path / "coco", "coco", polygons=polygons)
    assert "annotations/instances.json" in files and "images/d/im0.jpg" in files
    coco = COCO(str(tmp_path / "coco/annotations/instances.json"))
    cats = {c["id"]: c for c in coco.loadCats(coco.getCatIds())}
    assert [cats[k]["name"] for k in sorted(cats)] == list(CLASSES)
    assert {c["name"] for c in cats.values() if not c["isthing"]} == set(STUFF)
    expected = masks_by_image(images)
    for image_id, masks in expected.items():
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
        nonempty = [m for m in masks if m.any()]
        assert len(anns) == len(nonempty)
        for ann, mask in zip(anns, nonempty, strict=True):
            got = coco.annToMask(ann).astype(bool)
            assert (got == mask).all() if not polygons else iou(got, mask) >= 0.99
            assert ann["area"] == mask.sum() and ann["iscrowd"] == 0 and 0 <= ann["score"] <= 1
            ys, xs = np.nonzero(mask)
            assert ann["bbox"] == [xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()]
    results = coco.loadRes(coco.dataset["annotations"])  # also a results file
    assert len(results.anns) == len(coco.anns)


def test_supervision_loads_the_export_as_a_dataset(images: list[ExportImage], tmp_path: Path) -> None:
    import supervision as sv

    export_dataset(images, tmp_path / "coco", "coco")
    ds = sv.DetectionDataset.from_coco(
        images_directory_path=str(tmp_path / "coco/images"),
        annotations_path=str(tmp_path / "coco/annotations/instances.json"),
        force_masks=True,
    )
    assert ds.classes == list(CLASSES) and len(ds) == len(images)
    expected = masks_by_image(images)
    for k, im in enumerate(images, start=1):
        _, _, det = next(item for item in ds if item[0].endswith(im.file_name))
        want = np.stack([m for m in expected[k] if m.any()])
        assert det.mask.shape == want.shape and (det.mask == want).all()


def test_cvat_gets_coco_1_0_with_polygons(images: list[ExportImage], tmp_path: Path) -> None:
    from pycocotools.coco import COCO

    files = export_dataset(images, tmp_path / "cvat", "cvat")
    assert "annotations/instances_default.json" in files and "images/d/im2.jpg" in files
    coco = COCO(str(tmp_path / "cvat/annotations/instances_default.json"))
    expected = masks_by_image(images)
    for ann in coco.dataset["annotations"]:
        assert isinstance(ann["segmentation"], list) and all(len(p) >= 8 for p in ann["segmentation"])
        assert ann["attributes"]["occluded"] is False and ann["iscrowd"] == 0
    ann = coco.dataset["annotations"][0]
    assert iou(coco.annToMask(ann).astype(bool), expected[ann["image_id"]][0]) >= 0.99


def test_images_are_hard_links(images: list[ExportImage], tmp_path: Path) -> None:
    export_dataset(images, tmp_path / "coco", "coco")
    placed = tmp_path / "coco/images/d/im0.jpg"
    assert placed.read_bytes() == Path(images[0].source or "").read_bytes()
    assert placed.stat().st_ino == Path(images[0].source or "").stat().st_ino


def test_one_pass_writes_every_format(images: list[ExportImage], tmp_path: Path) -> None:
    from zsseg.export import FORMATS

    written = export_datasets(images, {f: tmp_path / f for f in FORMATS})
    assert set(written) == set(FORMATS)
    for f in FORMATS:
        marker = json.loads((tmp_path / f / "zsseg_export.json").read_text())
        assert marker["export"] == f and marker["settings"]["classes"] == list(CLASSES)
        assert marker["files"] == written[f]

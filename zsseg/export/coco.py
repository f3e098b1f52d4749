"""COCO instances JSON: ``images/`` beside ``annotations/instances.json``.

- ``categories``: the vocabulary, ``id`` = class index + 1, with ``isthing`` (1 thing, 0 stuff) and
  ``supercategory`` ``thing`` / ``stuff``.
- ``annotations``: one per segment, **stuff included** (one region per stuff class present, as COCO-Stuff's and
  the panoptic format's stuff segments are); filter on the category's ``isthing`` for objects only. Each has
  ``id``, ``image_id``, ``category_id``, ``segmentation`` (COCO RLE, pycocotools' compressed string; or polygons
  with ``polygons=True``, outlines traced on the pixel edges, holes bridged in), ``area`` (mask pixels), ``bbox``
  ``[x, y, w, h]`` in pixel-edge coordinates, ``iscrowd`` 0 and ``score``, so the file is also a COCO results file
  (``COCO.loadRes`` takes its ``annotations`` list).
"""

from __future__ import annotations

import time
from typing import Any

from zsseg.export.dataset import DatasetWriter, ExportImage
from zsseg.instances import Instances
from zsseg.instances.polygons import component_polygons, flat

ANNOTATIONS = "annotations/instances.json"
IMAGES = "images"


def categories(classes: tuple[str, ...] | list[str], stuff: tuple[str, ...] | list[str]) -> list[dict[str, Any]]:
    """COCO categories of a vocabulary: ``id`` class index + 1, ``name``, ``supercategory``, ``isthing``."""
    stuff_set = set(stuff)
    return [
        {
            "id": k + 1,
            "name": c,
            "supercategory": "stuff" if c in stuff_set else "thing",
            "isthing": int(c not in stuff_set),
        }
        for k, c in enumerate(classes)
    ]


def image_entry(image_id: int, im: ExportImage, inst: Instances) -> dict[str, Any]:
    h, w = inst.image_size
    return {"id": image_id, "file_name": im.file_name, "width": w, "height": h}


def coco_annotations(
    image_id: int, first_id: int, inst: Instances, polygons: bool = False, tolerance: float = 0.0
) -> list[dict[str, Any]]:
    """The COCO annotations of one image's segments (empty ones skipped), ids from ``first_id`` on."""
    out: list[dict[str, Any]] = []
    rles = None if polygons else inst.rles()
    for i in range(len(inst)):
        area = int(inst.areas[i])
        if area == 0:
            continue
        x0, y0, x1, y1 = (int(v) for v in inst.boxes[i])
        if rles is not None:
            segmentation: Any = rles[i]
        else:
            segmentation = [flat(p) for p in component_polygons(inst.mask(i), tolerance)]
        out.append(
            {
                "id": first_id + len(out),
                "image_id": image_id,
                "category_id": int(inst.class_ids[i]) + 1,
                "segmentation": segmentation,
                "area": area,
                "bbox": [x0, y0, x1 - x0, y1 - y0],
                "iscrowd": 0,
                "score": round(float(inst.scores[i]), 5),
            }
        )
    return out


def document(
    images: list[dict[str, Any]], anns: list[dict[str, Any]], cats: list[dict[str, Any]], what: str
) -> dict[str, Any]:
    """A COCO document with an ``info`` block saying zsseg wrote it."""
    info = {"description": f"zsseg {what}", "version": "1.0", "date_created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    return {"info": info, "licenses": [], "images": images, "annotations": anns, "categories": cats}


class CocoSink:
    """Builds a COCO instances dataset image by image (see the module)."""

    name = "coco"
    annotations_file = ANNOTATIONS
    description = "instances (pre-labels)"

    def __init__(self, writer: DatasetWriter, polygons: bool = False, tolerance: float = 0.0, **_: Any) -> None:
        self.writer = writer
        self.polygons = polygons
        self.tolerance = tolerance
        self.images: list[dict[str, Any]] = []
        self.annotations: list[dict[str, Any]] = []

    def annotate(self, image_id: int, inst: Instances) -> list[dict[str, Any]]:
        """The image's annotations, numbered on from those already added."""
        return coco_annotations(image_id, len(self.annotations) + 1, inst, self.polygons, self.tolerance)

    def add(self, image_id: int, im: ExportImage, inst: Instances) -> None:
        self.writer.place_image(f"{IMAGES}/{im.file_name}", im.source)
        self.images.append(image_entry(image_id, im, inst))
        self.annotations += self.annotate(image_id, inst)

    def finish(self, classes: tuple[str, ...], stuff: tuple[str, ...]) -> None:
        doc = document(self.images, self.annotations, categories(classes, stuff), self.description)
        self.writer.write_json(self.annotations_file, doc)

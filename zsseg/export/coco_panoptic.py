"""COCO panoptic: ``images/``, ``annotations/panoptic/<stem>.png`` and ``annotations/panoptic.json``.

Each PNG holds the image's segments in COCO's encoding (id = R + 256 G + 256^2 B; 0, black, is void: unlabelled
pixels and dropped fragments); the JSON's ``annotations`` list one entry per image, ``{image_id, file_name``
(the PNG's name under ``annotations/panoptic/``), ``segments_info}``, segments as
:func:`zsseg.instances.panoptic.segments_info` gives them (``id``, ``category_id`` = class index + 1, ``area``,
``bbox``, ``iscrowd`` 0, ``isthing``, ``score``); ``categories`` carry ``isthing`` and a ``color``. The layout
of COCO's ``panoptic_val2017.json`` / ``panoptic_val2017/``, which panopticapi and detectron2 read.
"""

from __future__ import annotations

from typing import Any

from zsseg.export.coco import IMAGES, categories, document, image_entry
from zsseg.export.dataset import DatasetWriter, ExportImage
from zsseg.instances import Instances
from zsseg.instances.panoptic import panoptic_png, segments_info

ANNOTATIONS = "annotations/panoptic.json"
PNG_DIR = "annotations/panoptic"


class CocoPanopticSink:
    """Builds a COCO panoptic dataset image by image (see the module)."""

    name = "coco-panoptic"

    def __init__(self, writer: DatasetWriter, **_: Any) -> None:
        self.writer = writer
        self.images: list[dict[str, Any]] = []
        self.annotations: list[dict[str, Any]] = []

    def add(self, image_id: int, im: ExportImage, inst: Instances) -> None:
        self.writer.place_image(f"{IMAGES}/{im.file_name}", im.source)
        self.images.append(image_entry(image_id, im, inst))
        png = f"{im.stem}.png"
        self.writer.write_png(f"{PNG_DIR}/{png}", panoptic_png(inst))
        self.annotations.append({"image_id": image_id, "file_name": png, "segments_info": segments_info(inst)})

    def finish(self, classes: tuple[str, ...], stuff: tuple[str, ...]) -> None:
        from zsseg.viz import palette

        colours = palette(len(classes))
        cats = categories(classes, stuff)
        for c in cats:
            c["color"] = [int(v) for v in colours[c["id"] - 1]]
        self.writer.write_json(ANNOTATIONS, document(self.images, self.annotations, cats, "panoptic (pre-labels)"))

"""CVAT's "COCO 1.0" import: ``annotations/instances_default.json`` beside ``images/``.

CVAT reads COCO through Datumaro: annotations of the subset ``default`` come from
``annotations/instances_default.json``, each matched to a task image by its ``file_name`` (relative path, compared
without the extension); images may sit in ``images/`` (or ``images/default/``). ``iscrowd`` 0 annotations with
polygon lists become polygon shapes, which CVAT edits best (RLE is read as a mask only with ``iscrowd`` 1), so
this export always writes polygons: each component's outline traced on the pixel edges with its holes bridged in.
CVAT keeps the category names as the task's labels; ``score`` is also in ``attributes`` (CVAT keeps attributes
the label declares) and ``occluded`` is false.

Import: create a task from ``cvat/images`` (the folder, so relative names are kept), then Actions -> Upload
annotations -> COCO 1.0 -> ``annotations/instances_default.json`` (or a zip of the ``cvat`` folder).
"""

from __future__ import annotations

from typing import Any

from zsseg.export.coco import IMAGES, categories, coco_annotations, document, image_entry
from zsseg.export.dataset import DatasetWriter, ExportImage
from zsseg.instances import Instances

ANNOTATIONS = "annotations/instances_default.json"


class CvatSink:
    """Builds CVAT's COCO 1.0 import image by image (see the module)."""

    name = "cvat"

    def __init__(self, writer: DatasetWriter, tolerance: float = 0.0, **_: Any) -> None:
        self.writer = writer
        self.tolerance = tolerance
        self.images: list[dict[str, Any]] = []
        self.annotations: list[dict[str, Any]] = []

    def add(self, image_id: int, im: ExportImage, inst: Instances) -> None:
        self.writer.place_image(f"{IMAGES}/{im.file_name}", im.source)
        self.images.append(image_entry(image_id, im, inst))
        anns = coco_annotations(image_id, len(self.annotations) + 1, inst, polygons=True, tolerance=self.tolerance)
        for a in anns:
            a["attributes"] = {"occluded": False, "score": a["score"]}
        self.annotations += anns

    def finish(self, classes: tuple[str, ...], stuff: tuple[str, ...]) -> None:
        doc = document(self.images, self.annotations, categories(classes, stuff), "pre-labels for CVAT (COCO 1.0)")
        self.writer.write_json(ANNOTATIONS, doc)

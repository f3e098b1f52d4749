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

from zsseg.export.coco import CocoSink
from zsseg.export.dataset import DatasetWriter
from zsseg.instances import Instances


class CvatSink(CocoSink):
    """Builds CVAT's COCO 1.0 import image by image (see the module): COCO's sink, always polygons, with
    CVAT's ``attributes``."""

    name = "cvat"
    annotations_file = "annotations/instances_default.json"
    description = "pre-labels for CVAT (COCO 1.0)"

    def __init__(self, writer: DatasetWriter, tolerance: float = 0.0, **_: Any) -> None:
        super().__init__(writer, polygons=True, tolerance=tolerance)

    def annotate(self, image_id: int, inst: Instances) -> list[dict[str, Any]]:
        anns = super().annotate(image_id, inst)
        for a in anns:
            a["attributes"] = {"occluded": False, "score": a["score"]}
        return anns

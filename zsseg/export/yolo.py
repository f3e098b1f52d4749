"""YOLO segmentation (the ultralytics layout): ``images/``, ``labels/<stem>.txt`` and ``data.yaml``.

Ultralytics finds an image's labels by replacing ``/images/`` with ``/labels/`` in its path and the suffix with
``.txt``, so the two folders mirror each other. A label file has one line per segment (stuff regions included,
one per stuff class present; every class of the vocabulary is a YOLO class): ``<class index> x1 y1 x2 y2 ...``,
the segment's outline as **one** polygon (its components and holes joined by zero-width bridges,
:func:`zsseg.instances.polygons.single_polygon`), pixel-edge coordinates divided by the image's width and height
(so in [0, 1]). An image without segments gets an empty file (a background image). ``data.yaml`` gives the
folder's absolute ``path``, ``train`` and ``val`` (both ``images``: pre-labels have no split) and ``names``.
"""

from __future__ import annotations

import json
from typing import Any

from zsseg.export.dataset import DatasetWriter, ExportImage
from zsseg.instances import Instances
from zsseg.instances.polygons import flat, single_polygon

IMAGES = "images"
LABELS = "labels"
DATA_YAML = "data.yaml"


def label_lines(inst: Instances, tolerance: float = 0.0, digits: int = 6) -> list[str]:
    """The YOLO-seg lines of one image's segments (empty segments skipped)."""
    h, w = inst.image_size
    lines = []
    for i in range(len(inst)):
        if inst.areas[i] == 0:
            continue
        coords = flat(single_polygon(inst.mask(i), tolerance), scale=(w, h), digits=digits)
        lines.append(
            " ".join([str(int(inst.class_ids[i])), *(f"{v:.{digits}f}".rstrip("0").rstrip(".") for v in coords)])
        )
    return lines


def data_yaml(path: str, classes: tuple[str, ...]) -> str:
    """``data.yaml`` text; names are written as JSON strings (valid YAML double-quoted scalars)."""
    names = "".join(f"  {k}: {json.dumps(c, ensure_ascii=False)}\n" for k, c in enumerate(classes))
    return (
        "# zsseg pre-labels in YOLO segmentation format (ultralytics): labels/ mirrors images/\n"
        f"path: {json.dumps(path, ensure_ascii=False)}\ntrain: images\nval: images\nnames:\n{names}"
    )


class YoloSegSink:
    """Builds a YOLO segmentation dataset image by image (see the module)."""

    name = "yolo-seg"

    def __init__(self, writer: DatasetWriter, tolerance: float = 0.0, **_: Any) -> None:
        self.writer = writer
        self.tolerance = tolerance

    def add(self, image_id: int, im: ExportImage, inst: Instances) -> None:
        self.writer.place_image(f"{IMAGES}/{im.file_name}", im.source)
        lines = label_lines(inst, self.tolerance)
        self.writer.write_text(f"{LABELS}/{im.stem}.txt", "".join(f"{ln}\n" for ln in lines))

    def finish(self, classes: tuple[str, ...], stuff: tuple[str, ...]) -> None:
        self.writer.write_text(DATA_YAML, data_yaml(str(self.writer.folder.resolve()), classes))

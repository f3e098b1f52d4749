"""Label Studio: ``images/``, ``tasks.json`` (tasks with pre-annotations) and ``config.xml`` (labelling config).

``tasks.json`` is a list of tasks ``{"data": {"image": URL}, "predictions": [...]}``; the one prediction per task
has ``model_version``, ``score`` (the mean of its segments' scores) and a ``result`` per segment (stuff regions
included): ``type`` ``brushlabels``, ``from_name`` ``label`` and ``to_name`` ``image`` (the names in
``config.xml``), ``original_width`` / ``original_height``, ``image_rotation`` 0, ``value`` ``{"format": "rle",
"rle": [...], "brushlabels": [class]}`` with the mask in Label Studio's own brush RLE
(:func:`zsseg.instances.rle.encode_brush`, row-major RGBA: not COCO's RLE) and the segment's ``score``.

``config.xml``: ``<View><Image name="image" value="$image"/><BrushLabels name="label" toName="image">`` with a
``<Label>`` per class. Image URLs default to Label Studio's local files (``/data/local-files/?d=images/<name>``):
run Label Studio with ``LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true`` and
``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`` = this folder, add a Local Files storage for ``<folder>/images``, paste
``config.xml`` as the project's labelling interface and import ``tasks.json``. ``image_url_prefix`` changes the
prefix (e.g. an S3 or HTTP location holding the same names).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

import numpy as np

from zsseg.export.dataset import DatasetWriter, ExportImage
from zsseg.instances import Instances
from zsseg.instances.rle import encode_brush

IMAGES = "images"
TASKS = "tasks.json"
CONFIG = "config.xml"
FROM_NAME = "label"
TO_NAME = "image"
DEFAULT_URL_PREFIX = "/data/local-files/?d=images/"


def results(inst: Instances) -> list[dict[str, Any]]:
    """The Label Studio ``brushlabels`` results of one image's segments (empty ones skipped)."""
    h, w = inst.image_size
    out = []
    for i in range(len(inst)):
        if inst.areas[i] == 0:
            continue
        score = round(float(inst.scores[i]), 5)
        out.append(
            {
                "id": f"s{i + 1}",
                "from_name": FROM_NAME,
                "to_name": TO_NAME,
                "type": "brushlabels",
                "original_width": w,
                "original_height": h,
                "image_rotation": 0,
                "value": {"format": "rle", "rle": encode_brush(inst.mask(i)), "brushlabels": [inst.labels[i]]},
                "score": score,
            }
        )
    return out


def task(url: str, inst: Instances, model_version: str) -> dict[str, Any]:
    """One Label Studio task with its pre-annotation."""
    res = results(inst)
    score = round(float(np.mean([r["score"] for r in res])), 5) if res else 0.0
    return {"data": {"image": url}, "predictions": [{"model_version": model_version, "score": score, "result": res}]}


def config_xml(classes: tuple[str, ...]) -> str:
    """The labelling config whose names match the results' ``from_name`` / ``to_name``, a colour per class."""
    from zsseg.viz import palette

    colours = palette(len(classes))
    hexes = ["#" + "".join(f"{int(v):02x}" for v in colours[k]) for k in range(len(classes))]
    labels = "".join(
        f"    <Label value={quoteattr(c)} background={quoteattr(h)}/>\n" for c, h in zip(classes, hexes, strict=True)
    )
    return (
        f'<View>\n  <Image name="{TO_NAME}" value="$image" zoom="true"/>\n'
        f'  <BrushLabels name="{FROM_NAME}" toName="{TO_NAME}">\n{labels}  </BrushLabels>\n</View>\n'
    )


class LabelStudioSink:
    """Builds Label Studio tasks image by image (see the module).

    Args:
        writer: the dataset's writer.
        model_version: the predictions' ``model_version`` (e.g. the zsseg model that made them).
        image_url_prefix: prefix of each task's ``data.image`` before the URL-quoted file name.
    """

    name = "labelstudio"

    def __init__(
        self,
        writer: DatasetWriter,
        model_version: str = "zsseg",
        image_url_prefix: str = DEFAULT_URL_PREFIX,
        **_: Any,
    ) -> None:
        self.writer = writer
        self.model_version = model_version
        self.prefix = image_url_prefix
        self.tasks: list[dict[str, Any]] = []

    def add(self, image_id: int, im: ExportImage, inst: Instances) -> None:
        self.writer.place_image(f"{IMAGES}/{im.file_name}", im.source)
        self.tasks.append(task(self.prefix + quote(im.file_name), inst, self.model_version))

    def finish(self, classes: tuple[str, ...], stuff: tuple[str, ...]) -> None:
        self.writer.write_json(TASKS, self.tasks)
        self.writer.write_text(CONFIG, config_xml(classes))

"""Datasets from instances: COCO, COCO panoptic, YOLO-seg, Label Studio and CVAT, written in one pass.

>>> from zsseg.export import ExportImage, export_dataset
>>> images = [ExportImage("x.jpg", "photos/x.jpg", result.instances())]
>>> export_dataset(images, "dataset/coco", "coco")          # dataset/coco/annotations/instances.json, images/

Each format's module documents its layout; :mod:`zsseg.export.dataset` the folder's mark (``zsseg_export.json``)
and why an export refuses a folder holding anything else. Every format folder gets ``images/`` (hard links to the
sources, copies where linking fails) so it imports as it is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from zsseg.errors import ZsSegError
from zsseg.export.coco import CocoSink
from zsseg.export.coco_panoptic import CocoPanopticSink
from zsseg.export.cvat import CvatSink
from zsseg.export.dataset import (
    MARKER,
    DatasetWriter,
    ExportImage,
    check_export_dir,
    check_images,
    instance_settings,
)
from zsseg.export.labelstudio import LabelStudioSink
from zsseg.export.yolo import YoloSegSink

SINKS: dict[str, Any] = {
    "coco": CocoSink,
    "coco-panoptic": CocoPanopticSink,
    "yolo-seg": YoloSegSink,
    "labelstudio": LabelStudioSink,
    "cvat": CvatSink,
}
#: the export formats, in the order ``--export`` lists them
FORMATS = tuple(SINKS)

__all__ = [
    "FORMATS",
    "MARKER",
    "ExportImage",
    "check_export_dir",
    "export_dataset",
    "export_datasets",
    "expected_settings",
    "instance_settings",
    "parse_formats",
]


def parse_formats(formats: str | Sequence[str]) -> list[str]:
    """``"coco, yolo-seg"`` (or a list) as a list of known format names, each once, in the given order.

    Raises:
        ZsSegError: an unknown name, or none given.
    """
    names = formats.split(",") if isinstance(formats, str) else list(formats)
    out = list(dict.fromkeys(n.strip().lower() for n in names if n.strip()))
    unknown = [n for n in out if n not in SINKS]
    if unknown or not out:
        got = ", ".join(repr(n) for n in unknown) if unknown else "nothing"
        raise ZsSegError(f"--export got {got}: use one or more of {', '.join(FORMATS)} (comma-separated)")
    return out


def expected_settings(
    classes: Sequence[str],
    stuff: Sequence[str],
    stuff_source: str,
    instance_options: Mapping[str, Any],
) -> dict[str, Any]:
    """:func:`instance_settings` of the instances a run will make, known before any image is done.

    Args:
        classes: the vocabulary.
        stuff: the stuff classes' names; ``stuff_source`` ``user`` or ``builtin``.
        instance_options: ``nms_threshold``, ``part_threshold``, ``min_area`` (other keys are ignored).
    """
    keys = ("nms_threshold", "part_threshold", "min_area")
    return {"classes": list(classes), "stuff": list(stuff), "stuff_source": stuff_source} | {
        k: instance_options[k] for k in keys if k in instance_options
    }


def export_datasets(
    images: Iterable[ExportImage],
    folders: Mapping[str, str | Path],
    *,
    settings: dict[str, Any] | None = None,
    **options: Any,
) -> dict[str, list[str]]:
    """Write one dataset per format from the same images, decoding each image's instances once.

    Args:
        images: the dataset's images, in order (ids 1, 2, ... follow it).
        folders: format name -> its folder (absent, empty, or an earlier export of the same kind: see
            :func:`~zsseg.export.dataset.check_export_dir`).
        settings: :func:`expected_settings` when no image may be given (an empty dataset still names its
            classes); None: taken from the first image.
        options: format options: ``polygons`` (coco: polygons instead of RLE), ``tolerance`` (polygon
            simplification in pixels, 0 exact), ``model_version`` and ``image_url_prefix`` (labelstudio).

    Returns:
        per format, the files written (relative to its folder).

    Raises:
        ZsSegError: an unknown format, a folder that is not ours to write, images of other vocabularies or
            settings, an unreadable instances file or image. Nothing of the failing format is written.
    """
    named = {str(f).strip().lower(): Path(p) for f, p in folders.items()}
    fmts = parse_formats(list(named))
    paths = {f: named[f] for f in fmts}
    items = list(images)
    check_images(items)
    first = items[0].load() if items else None
    if first is not None:
        found = instance_settings(first)
        if settings is not None and found != settings:
            raise ZsSegError(f"{items[0].file_name}: its instances were made with other settings than this export's")
        settings = found
    for f in fmts:
        check_export_dir(paths[f], f, settings)
    if settings is None:
        raise ZsSegError("an export of no images needs its settings (classes): pass settings=expected_settings(...)")
    writers = {f: DatasetWriter(paths[f], f, settings) for f in fmts}
    sinks = [SINKS[f](writers[f], **options) for f in fmts]
    try:
        for image_id, im in enumerate(items, start=1):
            inst = first if image_id == 1 and first is not None else im.load()
            if image_id > 1 and instance_settings(inst) != settings:
                raise ZsSegError(
                    f"{im.file_name}: its instances were made with another vocabulary or settings than "
                    f"{items[0].file_name}'s: export images of one run together"
                )
            for sink in sinks:
                sink.add(image_id, im, inst)
        classes, stuff = tuple(settings["classes"]), tuple(settings["stuff"])
        for sink in sinks:
            sink.finish(classes, stuff)
    except BaseException:
        for w in writers.values():
            w.discard()
        raise
    return {f: writers[f].commit() for f in fmts}


def export_dataset(images: Iterable[ExportImage], folder: str | Path, fmt: str, **options: Any) -> list[str]:
    """Write one dataset of format ``fmt`` into ``folder``; :func:`export_datasets` documents the options.

    Returns:
        the files written, relative to ``folder``.
    """
    return export_datasets(images, {fmt: folder}, **options)[parse_formats(fmt)[0]]

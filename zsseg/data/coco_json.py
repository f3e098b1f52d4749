"""COCO's annotation JSON (instances and stuff) as :class:`~zsseg.data.instances.InstanceTarget` s.

Category id ``c`` is raw label value ``c - 1`` of COCO-Stuff's label maps, so the dataset's class table maps it to
the vocabulary. Polygons and uncompressed RLE are converted with pycocotools (the ``coco`` extra), so masks are
exactly COCO's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from zsseg.data.dataset import SegDataset
from zsseg.data.targets import InstanceTarget, read_json
from zsseg.errors import ZsSegError
from zsseg.instances import rle

STUFF_OTHER_ID = 183  # the stuff JSON's "other": the thing pixels, not a class


def _find(ann_dir: Path, kind: str, split: str) -> Path | None:
    for name in (f"{kind}_{split}2017.json", f"{kind}_{split}2017_subset.json"):
        if (ann_dir / name).is_file():
            return ann_dir / name
    return None


def coco_annotations(ann_dir: Path, split: str) -> dict[str, dict[str, Any]]:
    """Per image stem: ``{"height", "width", "annotations": [...]}`` of the instances (and stuff) JSON.

    Raises:
        ZsSegError: no instances JSON for the split under ``ann_dir``, or an unreadable one.
    """
    inst = _find(ann_dir, "instances", split)
    if inst is None:
        raise ZsSegError(f"no COCO instance annotations for {split}: expected {ann_dir}/instances_{split}2017.json")
    docs = [read_json(inst)]
    stuff = _find(ann_dir, "stuff", split)
    if stuff is not None:
        docs.append(read_json(stuff))
    out: dict[str, dict[str, Any]] = {}
    by_id: dict[int, str] = {}
    for doc in docs[:1]:
        for im in doc.get("images", []):
            stem = Path(im["file_name"]).stem
            by_id[int(im["id"])] = stem
            out[stem] = {"height": int(im["height"]), "width": int(im["width"]), "annotations": []}
    for doc in docs:
        for ann in doc.get("annotations", []):
            stem = by_id.get(int(ann["image_id"]), "")
            if stem and int(ann["category_id"]) != STUFF_OTHER_ID:
                out[stem]["annotations"].append(ann)
    return out


def ann_to_rle(segmentation: Any, height: int, width: int) -> dict[str, Any]:
    """COCO RLE (str counts) of an annotation's ``segmentation`` (polygons, uncompressed or compressed RLE)."""
    try:
        from pycocotools import mask as mask_utils
    except ImportError as err:
        raise ZsSegError("COCO polygons need pycocotools: pip install 'zsseg[coco]'") from err
    if isinstance(segmentation, list):
        merged = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation.get("counts"), list):
        merged = mask_utils.frPyObjects(segmentation, height, width)
    else:
        merged = segmentation
    counts = merged["counts"]
    return {"size": [height, width], "counts": counts.decode() if isinstance(counts, bytes) else counts}


def coco_target(
    entry: dict[str, Any], height: int, width: int, semantic: SegDataset, thing: np.ndarray, image: str
) -> InstanceTarget:
    """The :class:`~zsseg.data.targets.InstanceTarget` of one image's annotations.

    Raises:
        ZsSegError: the JSON's image size differs from the image's, or a category the vocabulary lacks.
    """
    if (entry["height"], entry["width"]) != (height, width):
        raise ZsSegError(f"the COCO JSON says {image} is {entry['width']}x{entry['height']}, the file is "
                         f"{width}x{height}: use the annotations of these images")  # fmt: skip
    anns = entry["annotations"]
    raw = np.asarray([int(a["category_id"]) - 1 for a in anns], dtype=np.int64)
    classes = semantic.map_raw(raw.reshape(1, -1), Path(image)).ravel() if len(anns) else raw
    if (classes == semantic.info.ignore_index).any():
        raise ZsSegError(f"COCO annotations of {image} use categories outside {semantic.info.name}")
    rles = tuple(ann_to_rle(a["segmentation"], height, width) for a in anns)
    owners = np.zeros((height, width), dtype=np.int32)
    claimed = np.zeros((height, width), dtype=np.int32)
    for i, r in enumerate(rles):
        m = rle.decode(r)
        owners[m] = i + 1
        claimed += m
    id_map = np.where(claimed == 1, owners, 0).astype(np.int32)  # pixels two segments claim are void
    return InstanceTarget(
        id_map,
        classes.astype(np.int32),
        thing[classes].astype(bool),
        np.asarray([bool(a.get("iscrowd", 0)) for a in anns], dtype=bool),
        claimed == 0,
        rles,
    )

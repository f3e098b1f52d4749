"""Mask AP of thing instances through pycocotools' ``COCOeval`` (``iouType="segm"``), as a stream evaluator.

Each processed image adds its ground-truth thing segments (crowd regions as ``iscrowd``) and the predicted thing
instances with their scores to two COCO objects built in memory; :meth:`InstanceAPEvaluator.evaluate` runs
COCOeval's evaluate / accumulate / summarize on them. Nothing of the matching is re-implemented: AP is the mean over
IoU 0.50:0.05:0.95 and the thing classes with ground truth, at most 100 detections per image, areas "all".

Only things are scored (stuff has no instances; the panoptic evaluation scores it). Void pixels (a VOC object's
border and, in ``voc20``, its background; Cityscapes' classes outside the benchmark; COCO's unlabelled pixels) are
handled as the panoptic evaluation handles them: they are cleared from every prediction before the IoU, and a
prediction that matches nothing at a threshold is not a false positive there if more than half of its area lay in
void (COCOeval's own ``dtIgnore`` flags, set after its matching, before ``accumulate``).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from zsseg.data.targets import InstanceTarget
from zsseg.errors import ZsSegError
from zsseg.instances import Instances, rle

MAX_DETS = 100
STAT_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def coco_api() -> tuple[Any, Any]:
    """pycocotools' ``COCO`` and ``COCOeval``, or ZsSegError naming the extra to install."""
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as err:
        raise ZsSegError("mask AP needs pycocotools: pip install 'zsseg[coco]'") from err
    return COCO, COCOeval


MAX_VOID = 0.5  # an unmatched prediction with more of its area in void is not a false positive (panopticapi)


def void_cleared(pred: Instances, void: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The prediction's id map with void pixels cleared, and each segment's share of area in void.

    Args:
        pred: the predicted segments.
        void: bool (H, W) pixels not scored.

    Returns:
        (segments left with a pixel, int64 (M',); float64 (M,) void share of each segment's area; int32 (H, W) id
        map with void pixels set to 0).
    """
    if void.shape != pred.id_map.shape:
        raise ValueError(f"prediction is {pred.id_map.shape}, ground truth {void.shape}: segment at the image's size")
    in_void = np.bincount(pred.id_map[void].ravel(), minlength=len(pred) + 1)[1:]
    areas = pred.areas
    share = in_void / np.maximum(areas, 1)
    return np.flatnonzero(in_void < areas), share, np.where(void, 0, pred.id_map).astype(np.int32)


class InstanceAPEvaluator:
    """Accumulates images; :meth:`evaluate` returns COCO's mask AP, AP50, AP75 (percent) and AP per class."""

    def __init__(self, class_names: Sequence[str], thing_ids: Sequence[int], max_dets: int = MAX_DETS) -> None:
        """
        Args:
            class_names: the K classes (predictions and ground truth index them).
            thing_ids: the classes scored (the dataset's things).
            max_dets: detections per image kept by COCOeval (highest scores).
        """
        coco_api()
        self.class_names = tuple(class_names)
        self.thing_ids = tuple(sorted({int(k) for k in thing_ids}))
        bad = [k for k in self.thing_ids if not 0 <= k < len(self.class_names)]
        if bad:
            raise ValueError(f"thing ids {bad} are outside 0..{len(self.class_names) - 1}")
        self.max_dets = max_dets
        self.reset()

    def reset(self) -> None:
        """Forget every processed image."""
        self.images: list[dict[str, Any]] = []
        self.gts: list[dict[str, Any]] = []
        self.dets: list[dict[str, Any]] = []

    @property
    def num_images(self) -> int:
        return len(self.images)

    def process(self, pred: Instances, target: InstanceTarget) -> None:
        """Add one image: its ground truth and the prediction's thing instances of the scored classes.

        Raises:
            ValueError: prediction and ground truth of different sizes or vocabularies.
        """
        if len(pred.classes) != len(self.class_names):
            raise ValueError(f"prediction has {len(pred.classes)} classes, the evaluator {len(self.class_names)}")
        h, w = target.image_size
        image_id = len(self.images) + 1
        self.images.append({"id": image_id, "height": h, "width": w})
        scored = set(self.thing_ids)
        for i, r in enumerate(target.rles()):
            if target.is_thing[i] and int(target.class_ids[i]) in scored:
                self.gts.append({"id": len(self.gts) + 1, "image_id": image_id,
                                 "category_id": int(target.class_ids[i]) + 1, "segmentation": r,
                                 "area": float(rle.area(r)), "iscrowd": int(target.iscrowd[i])})  # fmt: skip
        keep, share, id_map = void_cleared(pred, target.void)
        keep = np.asarray([i for i in keep if pred.is_thing[i] and int(pred.class_ids[i]) in scored], dtype=np.int64)
        if not len(keep):
            return
        rles = rle.encode_ids(np.where(np.isin(id_map, keep + 1), id_map, 0), len(pred))
        for i in keep:
            self.dets.append({"image_id": image_id, "category_id": int(pred.class_ids[i]) + 1,
                              "segmentation": rles[i], "score": float(pred.scores[i]),
                              "void_share": float(share[i])})  # fmt: skip

    def evaluate(self) -> dict[str, Any]:
        """Metrics in percent.

        Returns:
            ``{"AP", "AP50", "AP75", "APs", "APm", "APl": float | None, "AP_per_class": {name: float | None},
            "num_images", "num_gt_instances", "num_predictions": int}``; None where undefined (no ground-truth
            instance of a scored class; APs/m/l without instances of that size).
        """
        num_gt = sum(1 for g in self.gts if not g["iscrowd"])
        res: dict[str, Any] = {k: None for k in STAT_KEYS}
        res["AP_per_class"] = {self.class_names[k]: None for k in self.thing_ids}
        res.update({"num_images": self.num_images, "num_gt_instances": num_gt, "num_predictions": len(self.dets)})
        if not num_gt:
            return res
        COCO, COCOeval = coco_api()
        with contextlib.redirect_stdout(io.StringIO()):
            gt = COCO()
            gt.dataset = {
                "images": list(self.images),
                "annotations": [dict(g) for g in self.gts],
                "categories": [{"id": k + 1, "name": self.class_names[k]} for k in self.thing_ids],
            }
            gt.createIndex()
            if not self.dets:  # COCO.loadRes refuses an empty list; no detection is AP 0 at every threshold
                present = {g["category_id"] - 1 for g in self.gts if not g["iscrowd"]}
                res.update({k: 0.0 for k in ("AP", "AP50", "AP75")})
                res["AP_per_class"] = {self.class_names[k]: (0.0 if k in present else None) for k in self.thing_ids}
                return res
            dt = gt.loadRes([dict(d) for d in self.dets])
            ev = COCOeval(gt, dt, iouType="segm")
            ev.params.catIds = [k + 1 for k in self.thing_ids]
            ev.params.maxDets = [1, 10, self.max_dets]
            ev.evaluate()
            ignore_void_misses(ev, dt)
            ev.accumulate()
            ev.summarize()
        res.update({k: _pct(v) for k, v in zip(STAT_KEYS, ev.stats[[0, 1, 2, 3, 4, 5]], strict=True)})
        precision = ev.eval["precision"][:, :, :, 0, -1]  # (T IoUs, R recalls, K classes), area all, max dets
        for col, k in enumerate(self.thing_ids):
            p = precision[:, :, col]
            res["AP_per_class"][self.class_names[k]] = _pct(float(p[p > -1].mean())) if (p > -1).any() else None
        return res


def ignore_void_misses(ev: Any, dt: Any) -> None:
    """Flag as ignored (``dtIgnore``) every detection that matched nothing at a threshold and lay for more than
    :data:`MAX_VOID` of its area in void, in COCOeval's per-image results (after ``evaluate``)."""
    for e in ev.evalImgs:
        if e is None or not len(e["dtIds"]):
            continue
        mostly_void = np.asarray([dt.anns[d]["void_share"] > MAX_VOID for d in e["dtIds"]])
        e["dtIgnore"] = np.logical_or(e["dtIgnore"], (e["dtMatches"] == 0) & mostly_void[None, :])


def _pct(value: float) -> float | None:
    v = float(value)
    return None if v < 0 or np.isnan(v) else 100.0 * v

"""Panoptic quality (PQ, SQ, RQ for things, stuff and all) as a stream evaluator, by panopticapi's definition.

Per image, as ``panopticapi.evaluation.pq_compute_single_core`` does it:

- a predicted segment and a ground-truth segment of the same class match when IoU > 0.5, where the union leaves out
  the predicted segment's pixels that are void in the ground truth (``id_map == 0``); crowd regions never match;
- an unmatched non-crowd ground-truth segment is a false negative;
- an unmatched predicted segment is a false positive unless more than half of its area is void or lies in a crowd
  region of its class.

Over the dataset, per class: PQ = sum of matched IoUs / (TP + FP/2 + FN/2), SQ = sum of IoUs / TP, RQ = TP /
(TP + FP/2 + FN/2); the means run over the classes with TP + FP + FN > 0 (a class only ever predicted counts, with
PQ 0), split by the ground truth's thing / stuff classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from zsseg.data.targets import InstanceTarget
from zsseg.instances import Instances

GROUPS = ("All", "Things", "Stuff")


class PanopticEvaluator:
    """Accumulates per-class TP / FP / FN counts and matched IoUs; :meth:`evaluate` turns them into PQ."""

    def __init__(self, class_names: Sequence[str], thing: Sequence[bool] | np.ndarray) -> None:
        """
        Args:
            class_names: the K classes (predictions and ground truth index them).
            thing: bool (K,): the ground truth's thing classes (the others are stuff).
        """
        if len(thing) != len(class_names):
            raise ValueError(f"{len(thing)} thing flags for {len(class_names)} classes")
        self.class_names = tuple(class_names)
        self.thing = np.asarray(thing, dtype=bool)
        self.reset()

    def reset(self) -> None:
        """Forget every processed image."""
        k = len(self.class_names)
        self.tp = np.zeros(k, dtype=np.int64)
        self.fp = np.zeros(k, dtype=np.int64)
        self.fn = np.zeros(k, dtype=np.int64)
        self.iou = np.zeros(k, dtype=np.float64)
        self.num_images = 0

    def process(self, pred: Instances, target: InstanceTarget) -> None:
        """Add one image (module docstring for the rules).

        Raises:
            ValueError: prediction and ground truth of different sizes or vocabularies.
        """
        if pred.id_map.shape != target.id_map.shape:
            raise ValueError(f"prediction is {pred.id_map.shape}, ground truth {target.id_map.shape}")
        if len(pred.classes) != len(self.class_names):
            raise ValueError(f"prediction has {len(pred.classes)} classes, the evaluator {len(self.class_names)}")
        g = target.id_map.ravel().astype(np.int64)
        p = pred.id_map.ravel().astype(np.int64)
        mp = len(pred) + 1
        pairs, inter = np.unique(g * mp + p, return_counts=True)
        gi, pi = pairs // mp, pairs % mp  # gi 0: void in the ground truth, pi 0: no prediction
        gt_area = np.bincount(g, minlength=len(target) + 1)
        pred_area = np.bincount(p, minlength=mp)
        void_px = np.zeros(mp, dtype=np.int64)
        void_px[pi[gi == 0]] = inter[gi == 0]
        gcls = np.concatenate(([-1], target.class_ids.astype(np.int64)))
        crowd = np.concatenate(([False], target.iscrowd.astype(bool)))
        pcls = np.concatenate(([-2], pred.class_ids.astype(np.int64)))

        cand = (gi > 0) & (pi > 0) & ~crowd[gi] & (gcls[gi] == pcls[pi])
        union = pred_area[pi] + gt_area[gi] - inter - void_px[pi]
        iou = np.where(cand, inter / np.maximum(union, 1), 0.0)
        match = cand & (iou > 0.5)  # IoU > 0.5 makes a match unique on both sides
        np.add.at(self.tp, gcls[gi[match]], 1)
        np.add.at(self.iou, gcls[gi[match]], iou[match])
        gt_matched = np.zeros(len(target) + 1, dtype=bool)
        gt_matched[gi[match]] = True
        pred_matched = np.zeros(mp, dtype=bool)
        pred_matched[pi[match]] = True

        missed = np.flatnonzero(~gt_matched[1:] & ~crowd[1:]) + 1
        np.add.at(self.fn, gcls[missed], 1)
        # a prediction's pixels in a crowd region of its own class count as ignored, like void
        in_crowd = (gi > 0) & (pi > 0) & crowd[gi] & (gcls[gi] == pcls[pi])
        ignored = void_px.copy()
        np.add.at(ignored, pi[in_crowd], inter[in_crowd])
        unmatched = np.flatnonzero(~pred_matched[1:] & (pred_area[1:] > 0)) + 1  # an empty segment is no segment
        false = unmatched[ignored[unmatched] <= 0.5 * pred_area[unmatched]]
        np.add.at(self.fp, pcls[false], 1)
        self.num_images += 1

    def per_class(self) -> dict[str, np.ndarray]:
        """float64 (K,) ``pq``, ``sq``, ``rq`` in [0, 1] (NaN where TP + FP + FN = 0) and the int64 counts."""
        denom = self.tp + 0.5 * self.fp + 0.5 * self.fn
        seen = (self.tp + self.fp + self.fn) > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            pq = np.where(seen, self.iou / denom, np.nan)
            sq = np.where(seen, np.where(self.tp > 0, self.iou / np.maximum(self.tp, 1), 0.0), np.nan)
            rq = np.where(seen, self.tp / denom, np.nan)
        return {"pq": pq, "sq": sq, "rq": rq, "tp": self.tp, "fp": self.fp, "fn": self.fn}

    def evaluate(self) -> dict[str, Any]:
        """Metrics in percent.

        Returns:
            ``{"PQ", "SQ", "RQ", "PQ_th", "SQ_th", "RQ_th", "PQ_st", "SQ_st", "RQ_st": float | None,
            "num_classes", "num_classes_th", "num_classes_st": int, "per_class": {name: {"PQ", "SQ", "RQ",
            "TP", "FP", "FN", "isthing"}}, "num_images": int}``; None where a group has no class with a segment.
        """
        c = self.per_class()
        seen = ~np.isnan(c["pq"])
        res: dict[str, Any] = {}
        for suffix, group in (("", np.ones_like(self.thing)), ("_th", self.thing), ("_st", ~self.thing)):
            sel = seen & group
            for metric in ("PQ", "SQ", "RQ"):
                res[metric + suffix] = 100.0 * float(c[metric.lower()][sel].mean()) if sel.any() else None
            res["num_classes" + suffix] = int(sel.sum())
        res["per_class"] = {
            name: {
                "PQ": 100.0 * float(c["pq"][k]),
                "SQ": 100.0 * float(c["sq"][k]),
                "RQ": 100.0 * float(c["rq"][k]),
                "TP": int(self.tp[k]),
                "FP": int(self.fp[k]),
                "FN": int(self.fn[k]),
                "isthing": bool(self.thing[k]),
            }
            for k, name in enumerate(self.class_names)
            if seen[k]
        }
        res["num_images"] = self.num_images
        return res

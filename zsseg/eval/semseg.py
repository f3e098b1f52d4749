"""Streaming semantic segmentation metrics from an accumulated confusion matrix.

Metrics follow detectron2's ``SemSegEvaluator`` (reported in percent):

* IoU_k = TP_k / (GT_k + Pred_k - TP_k), Acc_k = TP_k / GT_k;
* classes with no ground-truth pixel get no IoU/Acc (``None``) and are left out of every mean, even
  if they were predicted (their false positives still lower the IoU of the classes whose pixels they took);
* mIoU / mAcc: means over the remaining classes; fwIoU: IoU weighted by GT pixel frequency;
  pAcc: correct pixels / labelled pixels.

Ground-truth pixels equal to ``ignore_index`` are skipped. A prediction outside ``0..K-1`` (including
``ignore_index``, e.g. a pixel the model left unlabelled) at a labelled pixel counts as wrong: a miss for the
ground-truth class and a false positive for no class. With an ``unseen`` split: mIoU_seen and mIoU_unseen
are the means over the seen/unseen classes with ground truth, hIoU their harmonic mean (ZegFormer / zsseg).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np


class SemSegEvaluator:
    """Accumulates a confusion matrix over images; :meth:`evaluate` turns it into metrics.

    The matrix has K+1 rows (predicted class, plus one row for "no valid class") and K columns (GT class).
    """

    def __init__(
        self,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        ignore_index: int = 255,
        unseen: Sequence[int] = (),
    ) -> None:
        """
        Args:
            num_classes: K, the number of classes; labels are ``0..K-1``.
            class_names: K names used as keys of the per-class results (default ``"0".."K-1"``).
            ignore_index: ground-truth value of pixels to skip; must not be a class id.
            unseen: class ids of the unseen classes of a zero-shot split (empty: no seen/unseen metrics).
        """
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        names = [str(k) for k in range(num_classes)] if class_names is None else [str(n) for n in class_names]
        if len(names) != num_classes:
            raise ValueError(f"{len(names)} class names for {num_classes} classes")
        if len(set(names)) != len(names):
            raise ValueError("class names must be unique (they key the per-class results)")
        if 0 <= ignore_index < num_classes:
            raise ValueError(f"ignore_index {ignore_index} is a class id (num_classes={num_classes})")
        bad = [u for u in unseen if not 0 <= int(u) < num_classes]
        if bad:
            raise ValueError(f"unseen class ids {bad} are outside 0..{num_classes - 1}")
        self.num_classes = num_classes
        self.class_names = tuple(names)
        self.ignore_index = ignore_index
        self.unseen = tuple(sorted({int(u) for u in unseen}))
        self.conf = np.zeros((num_classes + 1, num_classes), dtype=np.int64)
        self.num_images = 0

    def reset(self) -> None:
        """Forget every processed image."""
        self.conf[:] = 0
        self.num_images = 0

    def process(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Add one image.

        Args:
            pred: int (H, W) predicted class ids; values outside ``0..K-1`` count as wrong.
            gt: int (H, W) ground truth, ``0..K-1`` or ``ignore_index``.

        Raises:
            ValueError: shapes differ, non-integer arrays, or ground-truth values that are neither a class
                nor ``ignore_index``.
        """
        pred = np.asarray(pred)
        gt = np.asarray(gt)
        if pred.shape != gt.shape:
            raise ValueError(f"prediction shape {pred.shape} differs from ground-truth shape {gt.shape}")
        for what, arr in (("prediction", pred), ("ground truth", gt)):
            if arr.dtype.kind not in "iub":
                raise ValueError(f"{what} must be an integer label map, got dtype {arr.dtype}")
        k = self.num_classes
        g = gt.reshape(-1).astype(np.int64)
        p = pred.reshape(-1).astype(np.int64)
        keep = g != self.ignore_index
        g, p = g[keep], p[keep]
        if g.size and (g.min() < 0 or g.max() >= k):
            bad = np.unique(g[(g < 0) | (g >= k)])[:8].tolist()
            raise ValueError(f"ground truth has values {bad} outside 0..{k - 1} that are not {self.ignore_index}")
        p[(p < 0) | (p >= k)] = k  # any invalid prediction -> the extra "no valid class" row
        self.conf += np.bincount(p * k + g, minlength=self.conf.size).reshape(self.conf.shape)
        self.num_images += 1

    def per_class(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(IoU, Acc, GT pixel count) per class as float64 (K,) arrays in [0, 1]; NaN where no GT pixel."""
        conf = self.conf.astype(np.float64)
        tp = np.diagonal(conf[:-1]).copy()
        pos_gt = conf.sum(axis=0)
        pos_pred = conf[:-1].sum(axis=1)
        valid = pos_gt > 0
        iou = np.full(self.num_classes, np.nan)
        acc = np.full(self.num_classes, np.nan)
        iou[valid] = tp[valid] / (pos_gt[valid] + pos_pred[valid] - tp[valid])
        acc[valid] = tp[valid] / pos_gt[valid]
        return iou, acc, pos_gt

    def evaluate(self) -> dict[str, Any]:
        """Metrics in percent (0-100).

        Returns:
            ``{"mIoU", "fwIoU", "mAcc", "pAcc": float | None, "IoU": {name: float | None},
            "Acc": {name: float | None}, "num_pixels": int}`` plus, with an unseen split,
            ``"mIoU_seen", "mIoU_unseen", "hIoU": float | None`` and ``"unseen_classes": [names]``.
            ``None`` marks an undefined value (no labelled pixel / no class with ground truth).
        """
        iou, acc, pos_gt = self.per_class()
        valid = pos_gt > 0
        total = float(pos_gt.sum())
        tp = float(np.diagonal(self.conf[:-1]).sum())
        res: dict[str, Any] = {
            "mIoU": _pct(iou[valid].mean()) if valid.any() else None,
            "fwIoU": _pct(float((iou[valid] * pos_gt[valid]).sum() / total)) if valid.any() else None,
            "mAcc": _pct(acc[valid].mean()) if valid.any() else None,
            "pAcc": _pct(tp / total) if total else None,
            "IoU": {n: _pct(v) for n, v in zip(self.class_names, iou, strict=True)},
            "Acc": {n: _pct(v) for n, v in zip(self.class_names, acc, strict=True)},
            "num_pixels": int(total),
        }
        if self.unseen:
            is_unseen = np.zeros(self.num_classes, dtype=bool)
            is_unseen[list(self.unseen)] = True
            seen_v, unseen_v = iou[valid & ~is_unseen], iou[valid & is_unseen]
            s = _pct(seen_v.mean()) if seen_v.size else None
            u = _pct(unseen_v.mean()) if unseen_v.size else None
            res["mIoU_seen"], res["mIoU_unseen"] = s, u
            res["hIoU"] = None if s is None or u is None else (0.0 if s + u == 0 else 2 * s * u / (s + u))
            res["unseen_classes"] = [self.class_names[i] for i in self.unseen]
        return res


def _pct(value: float | np.floating) -> float | None:
    v = float(value)
    return None if math.isnan(v) else 100.0 * v


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.2f}"
    return str(value)


SUMMARY_KEYS = ("dataset", "num_images", "mIoU", "mIoU_seen", "mIoU_unseen", "hIoU", "fwIoU", "mAcc", "pAcc",
                "seconds_per_image")  # fmt: skip


def format_markdown(results: dict[str, Any]) -> str:
    """Markdown report of :meth:`SemSegEvaluator.evaluate` (or ``evaluate_dataset``) results.

    A one-row summary table (the keys of :data:`SUMMARY_KEYS` that are present), then a per-class table of
    IoU and Acc (``-`` where a class has no ground truth), with unseen classes marked.
    """
    keys = [k for k in SUMMARY_KEYS if k in results]
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    cells = [f"{results[k]:.3f}" if k == "seconds_per_image" and results[k] is not None else _fmt(results[k])
             for k in keys]  # fmt: skip
    lines.append("| " + " | ".join(cells) + " |")
    ious: dict[str, float | None] = results.get("IoU", {})
    accs: dict[str, float | None] = results.get("Acc", {})
    if ious:
        unseen = set(results.get("unseen_classes", ()))
        lines += ["", "| class | IoU | Acc |" + (" unseen |" if unseen else ""),
                  "|---|---|---|" + ("---|" if unseen else "")]  # fmt: skip
        for name, value in ious.items():
            row = f"| {name.replace('|', '/')} | {_fmt(value)} | {_fmt(accs.get(name))} |"
            lines.append(row + ((" yes |" if name in unseen else " |") if unseen else ""))
    return "\n".join(lines) + "\n"

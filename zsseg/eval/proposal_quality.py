"""How good a set of proposals is, measured against a ground-truth label map (pure numpy).

* :func:`oracle_label_map` is the paper's upper bound for a proposal generator: every proposal is given the
  class a perfect classifier would give it (the majority ground-truth class of its pixels), and the usual
  assembly (:func:`zsseg.assemble.assemble`) turns them into a label map. Its mIoU against the ground
  truth is what the proposals allow at best, whatever the classifier.
* :func:`segment_recall` counts how many ground-truth segments some proposal matches.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from zsseg.assemble import assemble
from zsseg.proposals.base import Proposals


def _check_gt(proposals: Proposals, gt: np.ndarray) -> np.ndarray:
    gt = np.asarray(gt)
    if gt.ndim != 2 or not np.issubdtype(gt.dtype, np.integer):
        raise ValueError(f"gt must be an integer label map (H, W), got {gt.dtype} {gt.shape}")
    if gt.shape != proposals.image_size:
        raise ValueError(f"gt has shape {gt.shape} but the proposals' masks are {proposals.image_size}")
    return gt


def oracle_label_map(proposals: Proposals, gt: np.ndarray, num_classes: int, ignore_index: int = 255) -> np.ndarray:
    """The label map the proposals give with a perfect classifier.

    Each proposal takes the majority ground-truth class of its non-ignored pixels (one-hot class
    probabilities; ties go to the lower class index); a proposal covering only ignored pixels is dropped.
    :func:`zsseg.assemble.assemble` then builds the label map: each pixel takes the class covered by the most
    proposals, and pixels no kept proposal covers take the label of the nearest covered pixel.

    Args:
        proposals: N masks of shape (N, H, W).
        gt: int array (H, W), ground-truth class indices in ``[0, num_classes)`` or ``ignore_index``.
        num_classes: K, the number of classes (including a background class if the data set has one).
        ignore_index: label of pixels that belong to no class (PASCAL VOC's 255 "void").

    Returns:
        int32 array (H, W) of class indices in ``[0, num_classes)``. With no usable proposal every pixel gets
        class 0.
    """
    gt = _check_gt(proposals, gt)
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    valid = gt != ignore_index
    labels = gt[valid].astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"gt holds labels outside [0, {num_classes}) other than ignore_index={ignore_index}: "
            f"{sorted(set(np.unique(labels).tolist()) - set(range(num_classes)))}"
        )
    h, w = gt.shape
    n = len(proposals)
    if n == 0:
        return np.zeros((h, w), dtype=np.int32)
    # counts[i, k]: pixels of proposal i labelled k (bincount over (proposal, class) pairs, chunked).
    onehot = np.zeros((labels.size, num_classes), dtype=np.float32)
    onehot[np.arange(labels.size), labels] = 1.0
    flat = proposals.masks.reshape(n, -1)[:, valid.reshape(-1)]
    counts = np.zeros((n, num_classes), dtype=np.float64)
    for start in range(0, n, 64):
        counts[start : start + 64] = flat[start : start + 64].astype(np.float32) @ onehot
    keep = counts.sum(axis=1) > 0
    if not keep.any():
        return np.zeros((h, w), dtype=np.int32)
    probs = np.zeros((int(keep.sum()), num_classes), dtype=np.float32)
    probs[np.arange(probs.shape[0]), counts[keep].argmax(axis=1)] = 1.0
    # every pixel gets a class (gaps filled from the nearest covered pixel); -1 never collides with a class
    label_map = assemble(proposals.masks[keep], probs, ignore_index=-1).label_map
    return np.asarray(label_map, dtype=np.int32)


class SegmentRecall(NamedTuple):
    """Result of :func:`segment_recall`.

    Attributes:
        num_gt_segments: ground-truth segments in the image (classes present, ignore label excluded).
        num_recalled: segments matched by some proposal with IoU >= the threshold.
        mean_best_iou: mean over segments of the best IoU any proposal reaches (0.0 when there is no segment).
    """

    num_gt_segments: int
    num_recalled: int
    mean_best_iou: float


def segment_recall(proposals: Proposals, gt: np.ndarray, ignore_index: int = 255, iou: float = 0.5) -> SegmentRecall:
    """How many ground-truth segments some proposal recovers.

    Ground-truth segments are *semantic* segments: one per class present in ``gt`` (all its pixels, however
    many connected components they form), as semantic-segmentation labels do not separate instances.
    Pixels labelled ``ignore_index`` count neither in a segment nor against a proposal: IoU is computed over
    the non-ignored pixels only.

    Args:
        proposals: N masks of shape (N, H, W).
        gt: int array (H, W) of class labels.
        ignore_index: label of pixels to leave out.
        iou: IoU a proposal must reach (>=) for the segment to count as recalled.

    Returns:
        A :class:`SegmentRecall` ``(num_gt_segments, num_recalled, mean_best_iou)``.
    """
    gt = _check_gt(proposals, gt)
    valid = (gt != ignore_index).reshape(-1)
    classes = np.unique(gt.reshape(-1)[valid])
    if classes.size == 0:
        return SegmentRecall(0, 0, 0.0)
    n = len(proposals)
    if n == 0:
        return SegmentRecall(int(classes.size), 0, 0.0)
    masks = proposals.masks.reshape(n, -1)[:, valid].astype(np.float32)  # (N, P)
    segs = (gt.reshape(-1)[valid][None, :] == classes[:, None]).astype(np.float32)  # (S, P)
    inter = segs @ masks.T  # (S, N)
    union = segs.sum(axis=1)[:, None] + masks.sum(axis=1)[None, :] - inter
    ious = inter / np.maximum(union, 1.0)
    best = ious.max(axis=1)
    return SegmentRecall(int(classes.size), int((best >= iou).sum()), float(best.mean()))

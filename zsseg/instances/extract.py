"""From an assembled label map back to instances: which proposal won each pixel, merged, filtered, stuff joined.

The rules (README, "Instances and exports"):

- **Owner.** A pixel labelled class k belongs to the proposal, among those covering it, with the highest probability
  of k (the one that gave the pixel most of its winning mass). Pixels no proposal covers, labelled by their nearest
  covered neighbour, take that neighbour's owner. A thing instance is what one proposal won for one class: its
  *visible* part, so instances are disjoint and every pixel of one carries its class in the label map.
- **Duplicates.** Two instances of one class whose proposals overlap with IoU >= ``nms_threshold``, or whose
  smaller proposal lies for ``part_threshold`` of its area inside the larger (a part of the same object), are
  merged; the merged score is the best one.
- **Fragments.** Segments smaller than ``min_area`` pixels (at the label map's size) are dropped; their pixels keep
  their class in the label map and are void (id 0) in the panoptic map.
- **Stuff.** Each stuff class present gives one segment: all its pixels, connected or not.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage

from zsseg.assemble import upscale_nearest, working_view
from zsseg.errors import ZsSegError
from zsseg.instances.segments import Instances
from zsseg.instances.stuff import resolve_stuff

DEFAULT_NMS_THRESHOLD = 0.5
DEFAULT_PART_THRESHOLD = 0.8
DEFAULT_MIN_AREA = 64


def check_instance_options(
    nms_threshold: float = DEFAULT_NMS_THRESHOLD,
    part_threshold: float | None = DEFAULT_PART_THRESHOLD,
    min_area: int = DEFAULT_MIN_AREA,
) -> None:
    """Refuse knobs out of range with one line naming the flag (the API and the command line share it).

    Raises:
        ZsSegError: a threshold outside [0, 1] or a negative / non-integer ``min_area``.
    """
    for name, value in (("nms_threshold", nms_threshold), ("part_threshold", part_threshold)):
        if value is None and name == "part_threshold":
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            flag = "--" + name.replace("_", "-")
            raise ZsSegError(f"{name} ({flag}) must be a number in [0, 1], got {value!r}: an overlap of two proposals")
    if isinstance(min_area, bool) or not isinstance(min_area, int | np.integer) or min_area < 0:
        raise ZsSegError(f"min_area (--min-area) must be an integer >= 0, got {min_area!r}: pixels of a segment")


def proposal_owners(label_map: np.ndarray, masks: np.ndarray, probs: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
    """int32 (h, w): the proposal that won each pixel (see the module), -1 where no proposal covers it.

    Args:
        label_map: int (h, w) at the proposals' resolution; values outside 0..K-1 are treated as class 0.
        masks: bool (N, h, w).
        probs: float32 (N, K).
    """
    n, h, w = masks.shape
    k = probs.shape[1]
    labels = torch.from_numpy(np.clip(label_map, 0, k - 1).astype(np.int64).ravel())
    flat = torch.from_numpy(masks.reshape(n, h * w))
    table = torch.from_numpy(np.ascontiguousarray(probs, dtype=np.float32))
    owner = np.empty(h * w, dtype=np.int32)
    for start in range(0, h * w, chunk):
        m = flat[:, start : start + chunk]
        score = torch.where(m, table[:, labels[start : start + chunk]], torch.tensor(-1.0))  # (N, P)
        best, idx = (
            score.max(dim=0) if n else (torch.full((m.shape[1],), -1.0), torch.zeros(m.shape[1], dtype=torch.long))
        )
        owner[start : start + chunk] = torch.where(best >= 0, idx, -1).numpy()
    return owner.reshape(h, w)


def _merge_groups(masks: np.ndarray, owners: np.ndarray, nms: float, part: float | None) -> np.ndarray:
    """For same-class candidate proposals ``owners`` (C,), the index of the group each joins (union-find)."""
    c = len(owners)
    parent = np.arange(c)
    if c < 2:
        return parent
    flat = torch.from_numpy(masks[owners].reshape(c, -1)).to(torch.float32)
    inter = (flat @ flat.T).numpy()
    area = np.diag(inter).copy()
    union = area[:, None] + area[None, :] - inter
    iou = inter / np.maximum(union, 1)
    merge = iou >= nms
    if part is not None:
        merge |= inter / np.maximum(np.minimum(area[:, None], area[None, :]), 1) >= part

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = int(parent[i])
        return i

    for i, j in zip(*np.nonzero(np.triu(merge, 1)), strict=True):
        ri, rj = find(int(i)), find(int(j))
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    return np.asarray([find(i) for i in range(c)])


def extract_instances(
    label_map: np.ndarray,
    masks: np.ndarray,
    probs: np.ndarray,
    classes: Sequence[str],
    *,
    confidence: np.ndarray | None = None,
    stuff: Sequence[str] | str | None = None,
    nms_threshold: float = DEFAULT_NMS_THRESHOLD,
    part_threshold: float | None = DEFAULT_PART_THRESHOLD,
    min_area: int = DEFAULT_MIN_AREA,
) -> Instances:
    """The instances of an assembled image (module docstring for the rules).

    Args:
        label_map: int (H, W), the assembled label map; values outside 0..K-1 are unlabelled (void).
        masks: bool (N, h, w) proposals at the working resolution, (h, w) <= (H, W); the label map is their
            nearest-neighbour upscale, as :class:`~zsseg.pipeline.Segmenter` makes it.
        probs: float32 (N, K) class probabilities of the proposals.
        classes: the K class names.
        confidence: float32 (H, W), for stuff scores (mean confidence over the region); None: stuff scores 1.
        stuff: the stuff classes (names in ``classes``; ``[]`` for none) or None for the built-in list.
        nms_threshold: IoU in [0, 1] of two same-class proposals above which their instances merge.
        part_threshold: share in [0, 1] of the smaller proposal inside the larger above which they merge;
            None: only IoU decides.
        min_area: segments with fewer pixels are dropped.

    Returns:
        :class:`Instances` at the label map's size: things by descending score, then stuff by descending area.

    Raises:
        ZsSegError: a knob out of range, a ``stuff`` name not in ``classes``.
    """
    check_instance_options(nms_threshold, part_threshold, min_area)
    classes = tuple(classes)
    split = resolve_stuff(classes, stuff)
    is_stuff = np.asarray(split.stuff + (True,), dtype=bool)  # last entry: unlabelled pixels, never a thing
    big_h, big_w = label_map.shape
    n, h, w = masks.shape
    lab = working_view(label_map, h, w)
    lab_idx = np.where((lab >= 0) & (lab < len(classes)), lab, len(classes))
    thing_px = ~is_stuff[lab_idx]

    work_ids = np.zeros((h, w), dtype=np.int32)
    thing_classes: list[int] = []
    thing_scores: list[float] = []
    if thing_px.any() and n:
        owner = proposal_owners(lab, masks, probs)
        gaps = thing_px & (owner < 0)
        if gaps.any():  # the label map filled them from the nearest covered pixel: take its owner too
            _, (rr, cc) = ndimage.distance_transform_edt(owner < 0, return_indices=True)
            owner = np.where(gaps, owner[rr, cc], owner)
        key = np.where(thing_px & (owner >= 0), owner.astype(np.int64) * len(classes) + lab_idx, -1)
        cand, inverse = np.unique(key, return_inverse=True)
        cand_owner, cand_class = cand // len(classes), cand % len(classes)
        cand_thing = np.full(len(cand), -1, dtype=np.int64)  # the thing each (proposal, class) candidate joins
        for k in np.unique(cand_class[cand >= 0]):
            members = np.flatnonzero((cand >= 0) & (cand_class == k))
            groups = _merge_groups(masks, cand_owner[members], nms_threshold, part_threshold)
            for g in np.unique(groups):
                chosen = members[groups == g]
                cand_thing[chosen] = len(thing_classes)
                thing_classes.append(int(k))
                thing_scores.append(float(probs[cand_owner[chosen], k].max()))
        rank = np.empty(len(thing_scores), dtype=np.int64)
        order = np.argsort(-np.asarray(thing_scores), kind="stable")
        rank[order] = np.arange(len(order))
        lut = np.zeros(len(cand), dtype=np.int32)
        joined = cand_thing >= 0
        lut[joined] = rank[cand_thing[joined]] + 1
        work_ids = lut[inverse.reshape(h, w)]
        thing_classes = [thing_classes[i] for i in order]
        thing_scores = [thing_scores[i] for i in order]
    id_map = upscale_nearest(work_ids, big_h, big_w).astype(np.int32, copy=True)
    class_ids, scores = list(thing_classes), list(thing_scores)
    full_idx = np.where((label_map >= 0) & (label_map < len(classes)), label_map, len(classes))
    area = np.bincount(full_idx.ravel(), minlength=len(classes) + 1)
    conf_sum = (
        np.bincount(full_idx.ravel(), weights=confidence.ravel(), minlength=len(classes) + 1)
        if confidence is not None
        else area.astype(np.float64)
    )
    for k in sorted((k for k in range(len(classes)) if split.stuff[k] and area[k]), key=lambda k: -area[k]):
        id_map[full_idx == k] = len(class_ids) + 1
        class_ids.append(k)
        scores.append(float(conf_sum[k] / area[k]))
    is_thing = np.arange(len(class_ids)) < len(thing_classes)
    result = Instances(
        id_map,
        np.asarray(class_ids, dtype=np.int32),
        np.clip(np.asarray(scores, dtype=np.float32), 0, 1),
        is_thing,
        classes,
        tuple(split.names(classes)),
        split.source,
        {"nms_threshold": nms_threshold, "part_threshold": part_threshold, "min_area": min_area},
    )
    return result[result.areas >= max(1, min_area)]

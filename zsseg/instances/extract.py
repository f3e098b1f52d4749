"""From an assembled label map back to instances: which proposal won each pixel, merged, filtered, stuff joined.

The rules (README, "Instances and exports"):

- **Owner.** A pixel labelled class k belongs to the proposal, among those covering it, with the highest probability
  of k (the one that gave the pixel most of its winning mass). Pixels no proposal covers, labelled by their nearest
  covered neighbour, take the owner of a nearest covered pixel of their class (void if none). A thing instance is
  what one proposal won for one class: its *visible* part, so instances are disjoint and every pixel of one
  carries its class in the label map.
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


def proposal_owners(label_map: np.ndarray, masks: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """int32 (h, w): the proposal that won each pixel (see the module), -1 where no proposal covers it.

    Each proposal is painted over its bounding box where it beats the best score so far, so the cost is the
    proposals' box areas, not N x pixels. Ties go to the lower index.

    Args:
        label_map: int (h, w) at the proposals' resolution; values outside 0..K-1 are treated as class 0.
        masks: bool (N, h, w).
        probs: float32 (N, K).
    """
    n, h, w = masks.shape
    k = probs.shape[1]
    labels = np.clip(label_map, 0, k - 1)
    best = np.full((h, w), -1.0, dtype=np.float32)
    owner = np.full((h, w), -1, dtype=np.int32)
    rows: np.ndarray = np.asarray(masks.any(axis=2))
    cols: np.ndarray = np.asarray(masks.any(axis=1))
    table = np.asarray(probs, dtype=np.float32)
    for i in range(n):
        ys, xs = np.flatnonzero(rows[i]), np.flatnonzero(cols[i])
        if not len(ys):
            continue
        window = np.s_[ys[0] : ys[-1] + 1, xs[0] : xs[-1] + 1]
        score = table[i][labels[window]]
        b = best[window]
        win = masks[i][window] & (score > b)
        b[win] = score[win]
        owner[window][win] = i
    return owner


#: IoU between proposals is measured on a grid of at most this many pixels (a strided view: enough to merge)
IOU_GRID_PIXELS = 1 << 16


def _fill_gaps(owner: np.ndarray, gaps: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``owner`` with each gap pixel given the owner of a nearest covered pixel (chessboard distance: 15x faster
    than the Euclidean transform assembly used) when that pixel has the gap's label; other gap pixels stay -1."""
    _, (rr, cc) = ndimage.distance_transform_cdt(owner < 0, metric="chessboard", return_indices=True)
    same = labels[rr, cc] == labels
    return np.where(gaps & same, owner[rr, cc], owner)


def _merge_groups(masks: np.ndarray, owners: np.ndarray, nms: float, part: float | None) -> np.ndarray:
    """For same-class candidate proposals ``owners`` (C,), the index of the group each joins (union-find)."""
    c = len(owners)
    parent = np.arange(c)
    if c < 2:
        return parent
    _, h, w = masks.shape
    step = max(1, int(np.ceil(np.sqrt(h * w / IOU_GRID_PIXELS))))
    grid = masks[owners, ::step, ::step]
    flat = np.ascontiguousarray(grid).reshape(c, -1).astype(np.float32)  # exact: counts stay below 2**24
    inter = flat @ flat.T  # numpy's BLAS: 20x faster than torch's for this (c, 65536) product on a busy CPU
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

    work_ids, thing_classes, thing_scores = _things(lab, lab_idx, thing_px, masks, probs, nms_threshold, part_threshold)
    id_map = upscale_nearest(work_ids, big_h, big_w).astype(np.int32, copy=True)
    full_idx = np.where((label_map >= 0) & (label_map < len(classes)), label_map, len(classes)).ravel()
    area = np.bincount(full_idx, minlength=len(classes) + 1)
    conf_sum = (
        np.bincount(full_idx, weights=confidence.ravel(), minlength=len(classes) + 1)
        if confidence is not None
        else area.astype(np.float64)
    )
    stuff_present = sorted((k for k in range(len(classes)) if split.stuff[k] and area[k]), key=lambda k: -area[k])
    stuff_lut = np.zeros(len(classes) + 1, dtype=np.int32)  # class -> its stuff segment's id (0: a thing class)
    stuff_lut[stuff_present] = np.arange(len(thing_classes) + 1, len(thing_classes) + len(stuff_present) + 1)
    id_map += stuff_lut[full_idx].reshape(big_h, big_w)  # things hold only thing-class pixels: no overlap
    class_ids = thing_classes + stuff_present
    scores = thing_scores + [float(conf_sum[k] / area[k]) for k in stuff_present]
    result = Instances(
        id_map,
        np.asarray(class_ids, dtype=np.int32),
        np.clip(np.asarray(scores, dtype=np.float32), 0, 1),
        np.arange(len(class_ids)) < len(thing_classes),
        classes,
        tuple(split.names(classes)),
        split.source,
        {"nms_threshold": nms_threshold, "part_threshold": part_threshold, "min_area": min_area},
    )
    keep = result.areas >= max(1, min_area)
    return result if keep.all() else result[keep]


def _things(
    lab: np.ndarray,
    lab_idx: np.ndarray,
    thing_px: np.ndarray,
    masks: np.ndarray,
    probs: np.ndarray,
    nms_threshold: float,
    part_threshold: float | None,
) -> tuple[np.ndarray, list[int], list[float]]:
    """The thing segments at the working resolution: int32 (h, w) ids (0: none; 1.. by descending score), and
    each segment's class and score."""
    n, h, w = masks.shape
    k_all = probs.shape[1]
    if not (thing_px.any() and n):
        return np.zeros((h, w), dtype=np.int32), [], []
    owner = proposal_owners(lab, masks, probs)
    gaps = thing_px & (owner < 0)
    if gaps.any():  # the label map filled them from the nearest covered pixel: take a near owner too
        owner = _fill_gaps(owner, gaps, lab_idx)
    key = np.where(thing_px & (owner >= 0), owner * k_all + lab_idx, -1).astype(np.int32)  # (proposal, class)
    present = np.bincount(key[key >= 0], minlength=n * k_all) > 0
    cand = np.flatnonzero(present)  # the (proposal, class) pairs that own pixels
    cand_owner, cand_class = cand // k_all, cand % k_all
    cand_thing = np.empty(len(cand), dtype=np.int64)  # the thing each candidate joins
    classes: list[int] = []
    scores: list[float] = []
    for k in np.unique(cand_class):
        members = np.flatnonzero(cand_class == k)
        groups = _merge_groups(masks, cand_owner[members], nms_threshold, part_threshold)
        for g in np.unique(groups):
            chosen = members[groups == g]
            cand_thing[chosen] = len(classes)
            classes.append(int(k))
            scores.append(float(probs[cand_owner[chosen], k].max()))
    order = np.argsort(-np.asarray(scores), kind="stable")
    rank = np.empty(len(order), dtype=np.int32)
    rank[order] = np.arange(1, len(order) + 1)
    lut = np.zeros(n * k_all + 1, dtype=np.int32)  # key -> thing id; key -1 (the last entry) -> 0
    lut[cand] = rank[cand_thing]
    return lut[key], [classes[i] for i in order], [scores[i] for i in order]

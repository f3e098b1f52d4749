"""Shared machinery of the classic, weight-free proposal generators (Selective Search, UCM).

Both generators work the same way: over-segment a downscaled copy of the image into *leaf* regions
(an int label map of shape (h, w)), greedily merge adjacent regions into a binary :class:`MergeTree`,
pick some of the tree's nodes as proposals, de-duplicate them on the working-resolution masks and
upsample the survivors with nearest-neighbour to the input's (H, W).

Node ids of a :class:`MergeTree`: leaves are ``0 .. n_leaves - 1`` (the label values of the leaf
label map); the m-th merge creates node ``n_leaves + m``. A parent's id is always larger than its
children's, and the leaves below any node are contiguous in the tree's depth-first leaf order, so a
node's mask is a range test on the leaf label map (:class:`NodeMasker`).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

MergeUpdate = Callable[[int, int, int, np.ndarray], np.ndarray]
"""``update(i, j, k, neighbours) -> priorities``: called when regions i and j merge into new region k.

``neighbours`` is an int64 array (D,) of k's neighbours (sorted ascending); the callback updates its
own per-region state and returns the float64 priorities (D,) of the new pairs (neighbour, k): lower
merges first.
"""


def check_rgb_image(image: object, who: str) -> np.ndarray:
    """Return ``image`` if it is a uint8 (H, W, 3) array with H, W >= 1, else raise ValueError.

    Args:
        image: the candidate image.
        who: the generator's name, for the error message.
    """
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{who}: expected a numpy uint8 RGB image of shape (H, W, 3), got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(
            f"{who}: expected a uint8 RGB image of shape (H, W, 3), got shape {image.shape} dtype {image.dtype}"
        )
    if image.dtype != np.uint8:
        raise ValueError(
            f"{who}: expected a uint8 RGB image of shape (H, W, 3), got dtype {image.dtype} shape {image.shape}"
        )
    return image


def downscale(image: np.ndarray, max_side: int) -> np.ndarray:
    """Area-resample ``image`` (H, W, C) so that its longest side is at most ``max_side``; same dtype.

    Returns the image itself when it is already small enough.
    """
    h, w = image.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1.0:
        return image
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA))


def upsample_masks(masks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour upsampling of bool masks (K, h, w) to bool (K, H, W), ``size`` = (H, W).

    Pixel centres are aligned, so this equals upsampling the leaf label map and then taking the masks.
    """
    k, h, w = masks.shape
    height, width = size
    if (h, w) == (height, width):
        return masks
    rows = np.minimum(((np.arange(height) + 0.5) * h / height).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * w / width).astype(np.int64), w - 1)
    return np.take(np.take(masks, rows, axis=1), cols, axis=2)


def boundary_pixel_pairs(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """4-adjacent pixel pairs lying in different regions of an int label map (h, w).

    Returns:
        (p, q): int64 arrays (M,) of flat pixel indices; ``labels.flat[p] != labels.flat[q]``.
    """
    h, w = labels.shape
    idx = np.arange(h * w, dtype=np.int64).reshape(h, w)
    horizontal = labels[:, :-1] != labels[:, 1:]
    vertical = labels[:-1, :] != labels[1:, :]
    p = np.concatenate([idx[:, :-1][horizontal], idx[:-1, :][vertical]])
    q = np.concatenate([idx[:, 1:][horizontal], idx[1:, :][vertical]])
    return p, q


def region_pairs(labels: np.ndarray, p: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group boundary pixel pairs (p, q) by the region pair they separate.

    Returns:
        pairs: int64 (E, 2), the distinct adjacent region pairs (a, b) with a < b, sorted.
        inverse: int64 (M,), the row of ``pairs`` each pixel pair belongs to.
    """
    flat = labels.reshape(-1).astype(np.int64)
    a, b = flat[p], flat[q]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    n = int(flat.max()) + 1
    keys, inverse = np.unique(lo * n + hi, return_inverse=True)
    return np.stack([keys // n, keys % n], axis=1), inverse.reshape(-1)


def relabel(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Relabel an int label map to consecutive int32 labels 0..n-1; returns (labels, n)."""
    values, inverse = np.unique(labels, return_inverse=True)
    return inverse.reshape(labels.shape).astype(np.int32), int(values.size)


@dataclass(frozen=True)
class MergeTree:
    """A binary merge hierarchy over ``n_leaves`` leaf regions (a forest if the regions were disconnected).

    Attributes:
        n_leaves: number of leaf regions.
        children: int64 (M, 2): merge m joined nodes ``children[m]`` into node ``n_leaves + m``.
        heights: float64 (M,): the priority (cost) of each merge, in merge order.
    """

    n_leaves: int
    children: np.ndarray
    heights: np.ndarray

    @property
    def n_nodes(self) -> int:
        """Leaves plus merged regions."""
        return self.n_leaves + int(self.children.shape[0])

    def parents(self) -> np.ndarray:
        """int64 (n_nodes,): each node's parent, -1 for roots."""
        parent = np.full(self.n_nodes, -1, dtype=np.int64)
        merged = np.arange(self.n_leaves, self.n_nodes, dtype=np.int64)
        parent[self.children[:, 0]] = merged
        parent[self.children[:, 1]] = merged
        return parent

    def leaf_ranges(self) -> tuple[np.ndarray, np.ndarray]:
        """Depth-first leaf order.

        Returns:
            position: int64 (n_leaves,), each leaf's place in the order.
            ranges: int64 (n_nodes, 2), [start, end) of the positions of each node's leaves.
        """
        n, m = self.n_leaves, int(self.children.shape[0])
        parent = self.parents()
        kids = self.children.tolist()
        position = np.zeros(n, dtype=np.int64)
        stack = [int(r) for r in np.flatnonzero(parent < 0)]
        nxt = 0
        while stack:
            node = stack.pop()
            if node < n:
                position[node] = nxt
                nxt += 1
            else:
                stack.extend(kids[node - n])
        ranges = np.zeros((n + m, 2), dtype=np.int64)
        ranges[:n, 0] = position
        ranges[:n, 1] = position + 1
        for k, (a, b) in enumerate(kids):
            ranges[n + k, 0] = min(ranges[a, 0], ranges[b, 0])
            ranges[n + k, 1] = max(ranges[a, 1], ranges[b, 1])
        return position, ranges

    def lowest_common_ancestor(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """int64 (E,): lowest common ancestor of node pairs (a[e], b[e]); -1 where they are in different trees."""
        parent = self.parents()
        lo, hi = np.minimum(a, b).astype(np.int64), np.maximum(a, b).astype(np.int64)
        active = lo != hi
        while active.any():
            lo[active] = parent[lo[active]]
            stuck = active & (lo < 0)
            hi[stuck] = -1
            lo[stuck] = -1
            lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
            active = lo != hi
        return lo


class NodeMasker:
    """Masks of a :class:`MergeTree`'s nodes on its leaf label map.

    Args:
        tree: the hierarchy.
        labels: int (h, w) leaf label map, values in [0, tree.n_leaves).
    """

    def __init__(self, tree: MergeTree, labels: np.ndarray) -> None:
        position, self.ranges = tree.leaf_ranges()
        self.position_map = position[labels]

    def __call__(self, nodes: np.ndarray) -> np.ndarray:
        """bool (K, h, w): the masks of ``nodes`` (int array (K,))."""
        start = self.ranges[nodes, 0][:, None, None]
        end = self.ranges[nodes, 1][:, None, None]
        pos = self.position_map[None]
        return np.asarray((pos >= start) & (pos < end))


def greedy_merge(n_leaves: int, pairs: np.ndarray, priorities: np.ndarray, update: MergeUpdate) -> MergeTree:
    """Repeatedly merge the adjacent pair with the lowest priority until no adjacent pairs remain.

    The region adjacency graph is kept as neighbour sets and the candidate pairs in a heap with lazy
    deletion (pairs whose regions are gone are skipped), so each merge costs O(degree log E), not a
    rescan of all pairs. Ties break on the node ids, so the result is deterministic. Disconnected
    components left at the end are joined in id order at the largest height seen.

    Args:
        n_leaves: number of leaf regions.
        pairs: int64 (E, 2) adjacent leaf pairs (a, b), a < b.
        priorities: float64 (E,) initial priority of each pair.
        update: see :data:`MergeUpdate`.
    """
    neighbours: list[set[int]] = [set() for _ in range(max(2 * n_leaves - 1, 1))]
    a_list, b_list = pairs[:, 0].tolist(), pairs[:, 1].tolist()
    for a, b in zip(a_list, b_list, strict=True):
        neighbours[a].add(b)
        neighbours[b].add(a)
    heap = list(zip(np.asarray(priorities, dtype=np.float64).tolist(), a_list, b_list, strict=True))
    heapq.heapify(heap)
    alive = [True] * len(neighbours)
    children: list[tuple[int, int]] = []
    heights: list[float] = []
    k = n_leaves
    while heap:
        priority, i, j = heapq.heappop(heap)
        if not (alive[i] and alive[j]):
            continue
        alive[i] = alive[j] = False
        merged = (neighbours[i] | neighbours[j]) - {i, j}
        for other in merged:
            s = neighbours[other]
            s.discard(i)
            s.discard(j)
            s.add(k)
        neighbours[k] = merged
        neighbours[i] = neighbours[j] = set()
        children.append((i, j))
        heights.append(priority)
        nbrs = np.array(sorted(merged), dtype=np.int64)
        new_priorities = update(i, j, k, nbrs)
        for other, p in zip(nbrs.tolist(), np.asarray(new_priorities).tolist(), strict=True):
            heapq.heappush(heap, (p, other, k))
        k += 1
    roots = [r for r in range(k) if alive[r]]
    top = max(heights, default=0.0)
    while len(roots) > 1:
        i, j = roots[0], roots[1]
        children.append((i, j))
        heights.append(top)
        roots = [k, *roots[2:]]
        k += 1
    return MergeTree(
        n_leaves=n_leaves,
        children=np.array(children, dtype=np.int64).reshape(-1, 2),
        heights=np.array(heights, dtype=np.float64),
    )


_BYTE_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)


def pack_masks(masks: np.ndarray) -> np.ndarray:
    """uint64 (K, W): bool masks (K, h, w) packed 64 pixels to a word (zero-padded)."""
    k = masks.shape[0]
    packed = np.packbits(masks.reshape(k, -1), axis=1)
    padded = np.zeros((k, -(-packed.shape[1] // 8) * 8), dtype=np.uint8)
    padded[:, : packed.shape[1]] = packed
    return padded.view(np.uint64)


def popcount(words: np.ndarray) -> np.ndarray:
    """int64 (...,): set bits of a uint64 array (..., W), summed over its last axis."""
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.asarray(np.bitwise_count(words).sum(axis=-1, dtype=np.int64))
    return np.asarray(_BYTE_POPCOUNT[words.view(np.uint8)].sum(axis=-1))


def select_masks(
    make_masks: Callable[[np.ndarray], np.ndarray],
    order: np.ndarray,
    max_keep: int,
    iou_threshold: float,
    batch: int = 64,
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy mask NMS in rank order, stopping once ``max_keep`` masks are kept.

    Candidates are visited in ``order``; one is kept unless its IoU with an already kept mask exceeds
    ``iou_threshold``. Masks are built lazily, ``batch`` at a time, so only the top of the ranking is
    ever materialised. IoUs are exact, on bit-packed masks (AND + popcount): no BLAS, whose threads
    stall badly on a busy machine.

    Args:
        make_masks: candidate ids (B,) -> bool masks (B, h, w).
        order: int64 (N,) candidate ids, best first.
        max_keep: the cap on kept masks.
        iou_threshold: IoU above which a candidate duplicates a kept mask.
        batch: candidates materialised per step.

    Returns:
        kept: int64 (K,) the kept candidate ids, in rank order.
        masks: bool (K, h, w) their masks.
    """
    capacity = max(0, min(max_keep, len(order)))
    kept: list[int] = []
    kept_masks: list[np.ndarray] = []
    kept_bits: np.ndarray | None = None
    kept_area = np.zeros(capacity, dtype=np.int64)
    for start in range(0, len(order), batch):
        if len(kept) >= capacity:
            break
        ids = order[start : start + batch]
        masks = make_masks(ids)
        bits = pack_masks(masks)
        area = masks.reshape(len(ids), -1).sum(axis=1)
        if kept_bits is None:
            kept_bits = np.zeros((capacity, bits.shape[1]), dtype=np.uint64)
        for b in range(len(ids)):
            n = len(kept)
            if n >= capacity:
                break
            if n:
                inter = popcount(bits[b] & kept_bits[:n])
                union = np.maximum(area[b] + kept_area[:n] - inter, 1)
                if np.any(inter > iou_threshold * union):
                    continue
            kept.append(int(ids[b]))
            kept_masks.append(masks[b])
            kept_bits[n] = bits[b]
            kept_area[n] = area[b]
    if not kept:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0, 0), dtype=bool)
    return np.array(kept, dtype=np.int64), np.stack(kept_masks)

"""gPb-UCM-style hierarchical regions (after Arbelaez, Maire, Fowlkes and Malik, TPAMI 2011), simplified.

Pipeline, on a copy of the image downscaled to ``max_side``:

1. Contour strength (:meth:`UcmProposer.contour_map`), an mPb-like local cue. Four channels: Lab L, a, b
   and a texture channel (local standard deviation of L in a Gaussian window of sigma 2). Each channel
   is soft-binned into a few histogram bins (triangular kernel), giving one indicator image per bin.
   At every scale s and orientation theta, the half-disc histogram difference of gPb is approximated
   by the steerable Gaussian derivative ``D_b = cos(theta) dG_s/dx * I_b + sin(theta) dG_s/dy * I_b`` of
   each bin's indicator image I_b (scale-normalised, so a step from one bin to another gives 1), and
   the local bin mass by ``S_b = G_s * I_b``; the chi-squared distance is ``sum_b D_b^2 / (4 S_b)``
   (1 for a step between two pure bins, as for gPb's half-discs). Channels and scales are summed with
   ``weights`` per orientation, and the maximum over orientations is taken in closed form (the largest
   eigenvalue of the 2x2 tensor the quadratic form defines). The raw value r is mapped to
   ``1 - exp(-r / contrast)`` in [0, 1).
2. Over-segmentation: watershed (``skimage.segmentation.watershed``) of the contour map (Gaussian-
   smoothed, sigma 1) from its local minima, without watershed lines: every pixel is in a leaf region.
3. Hierarchy: each pair of adjacent regions gets the mean contour strength along their shared boundary
   (over the 4-adjacent pixel pairs across it, each pair taking the larger of its two values). The pair
   with the weakest boundary is merged, repeatedly; the merged region's boundary with each neighbour
   pools the pixel pairs of its two parts, so the means are updated incrementally. A region smaller
   than ``small_region`` of the image has its boundary strengths scaled by
   ``sqrt(area / (small_region * image area))``, so tiny high-contrast blobs merge early. A region's
   height is the larger of its merge's cost and its children's heights, so heights grow towards the
   root: they define an ultrametric contour map (UCM) in which the boundary between two leaves has the
   height of the smallest region containing both (:meth:`UcmProposer.ultrametric_contour_map`).
4. Proposals: the regions of the segmentations cut at several thresholds of the UCM (a region exists
   at threshold t if its height <= t < its parent's height): the absolute ``thresholds`` and, per image,
   the thresholds at which the segmentation has each of ``region_counts`` regions. Regions below
   ``min_region_area`` are dropped; the rest are scored by lifetime (parent's height minus own height, the root
   living until 1) times the square root of the area fraction, divided by the best, visited best first,
   de-duplicated by mask IoU and capped at ``max_proposals``. Masks are upsampled with nearest-neighbour.

Simplified relative to Arbelaez et al. (TPAMI 2011):

* No globalization: the spectral component sPb (eigenvectors of an intervening-contour affinity
  matrix) is left out; the contour map is the local, mPb-like cue only. No non-maximum suppression.
* The oriented gradient of histograms uses steerable Gaussian derivatives of soft-binned indicator
  images instead of half-disc histogram differences at 8 discrete orientations; no textons (k-means
  of filter-bank responses): the local standard deviation of L stands in for texture.
* No learned cue weights or scales: hand-set ``weights`` and ``sigmas``; no calibration fitted to BSDS
  (the ``contrast`` mapping is fixed).
* The oriented watershed transform's re-weighting of arcs by the contour at the arc's orientation is
  left out: boundary strength is the plain mean of the contour map along the boundary.
* The small-region factor in the merge cost is an addition (``small_region=0`` gives plain UCM).
* Thresholds are also chosen per image from region counts; everything runs at reduced resolution.
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage.segmentation import watershed

from zsseg.proposals.base import Proposals
from zsseg.proposals.regions import (
    MergeTree,
    NodeMasker,
    boundary_pixel_pairs,
    check_rgb_image,
    downscale,
    greedy_merge,
    region_pairs,
    relabel,
    select_masks,
    upsample_masks,
)

HISTOGRAM_BINS = (12, 10, 10, 8)
"""Soft histogram bins of the L, a, b and texture channels."""


def soft_bins(channel: np.ndarray, n_bins: int) -> np.ndarray:
    """float32 (n_bins, h, w): triangular soft assignment of a float (h, w) channel in [0, 1] to bins."""
    centres = (np.arange(n_bins, dtype=np.float32) + 0.5) / n_bins
    weights = 1.0 - np.abs(channel[None] - centres[:, None, None]) * n_bins
    return np.ascontiguousarray(np.maximum(weights, 0.0), dtype=np.float32)


class UcmProposer:
    """Regions of a simplified gPb-UCM hierarchy at several thresholds of the ultrametric contour map.

    Args:
        max_side: longest side, in pixels, of the downscaled working copy (larger is slower and finer).
        sigmas: Gaussian scales, in working-copy pixels, of the oriented histogram gradients.
        weights: weights of the L, a, b and texture cues in the contour strength (4 numbers).
        contrast: raw cue strength that maps to contour strength 1 - 1/e (about 0.63).
        small_region: area fraction below which a region's boundaries are weakened (0 turns this off).
        region_counts: per image, cut the UCM where the segmentation has each of these numbers of regions.
        thresholds: also cut the UCM at these absolute heights (contour strengths in [0, 1]).
        min_region_area: smallest proposal, as a fraction of the image area.
        dedup_iou: a region whose mask IoU with a better-scored kept one exceeds this is dropped.
        max_proposals: the most proposals returned per image; 0 keeps all.
    """

    name = "ucm"

    def __init__(
        self,
        max_side: int = 256,
        sigmas: tuple[float, ...] = (1.0, 2.0, 4.0),
        weights: tuple[float, ...] = (0.35, 0.25, 0.25, 0.15),
        contrast: float = 1.0,
        small_region: float = 0.05,
        region_counts: tuple[int, ...] = (1, 2, 3, 5, 8, 13, 21, 34, 55),
        thresholds: tuple[float, ...] = (),
        min_region_area: float = 0.001,
        dedup_iou: float = 0.9,
        max_proposals: int = 100,
    ) -> None:
        if not sigmas or any(s <= 0 for s in sigmas):
            raise ValueError(f"sigmas must be positive numbers, got {sigmas!r}")
        if len(weights) != 4 or any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(f"weights must be 4 non-negative numbers (L, a, b, texture), got {weights!r}")
        if any(not 0.0 <= t <= 1.0 for t in thresholds) or any(int(k) < 1 for k in region_counts):
            raise ValueError(
                f"thresholds must be in [0, 1] and region_counts >= 1, got {thresholds!r}, {region_counts!r}"
            )
        if not thresholds and not region_counts:
            raise ValueError("give at least one of thresholds and region_counts")
        if max_side < 8 or max_proposals < 0 or contrast <= 0 or small_region < 0:
            raise ValueError("max_side must be >= 8, max_proposals >= 0, contrast > 0 and small_region >= 0")
        if not 0.0 <= min_region_area <= 1.0 or not 0.0 < dedup_iou <= 1.0:
            raise ValueError("min_region_area must be in [0, 1] and dedup_iou in (0, 1]")
        self.max_side = max_side
        self.sigmas = tuple(float(s) for s in sigmas)
        self.weights = tuple(float(w) for w in weights)
        self.contrast = contrast
        self.small_region = small_region
        self.region_counts = tuple(sorted({int(k) for k in region_counts}))
        self.thresholds = tuple(sorted({float(t) for t in thresholds}))
        self.min_region_area = min_region_area
        self.dedup_iou = dedup_iou
        self.max_proposals = max_proposals

    def contour_map(self, image: np.ndarray) -> np.ndarray:
        """float32 (h, w) contour strength in [0, 1) of the working copy of ``image`` (uint8 (H, W, 3) RGB)."""
        small = downscale(check_rgb_image(image, self.name), self.max_side)
        lab = np.asarray(cv2.cvtColor(small.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB), dtype=np.float32)
        lum = np.ascontiguousarray(lab[..., 0] / 100.0, dtype=np.float32)
        mean = cv2.GaussianBlur(lum, (0, 0), 2.0)
        variance = cv2.GaussianBlur(lum * lum, (0, 0), 2.0) - mean * mean
        channels = [
            lum,
            np.clip(lab[..., 1] / 160.0 + 0.5, 0.0, 1.0),
            np.clip(lab[..., 2] / 160.0 + 0.5, 0.0, 1.0),
            np.clip(4.0 * np.sqrt(np.maximum(variance, 0.0)), 0.0, 1.0),
        ]
        # sum over cues of D(theta)^2 / 4S = cos^2 * xx + 2 cos sin * xy + sin^2 * yy
        xx, xy, yy = (np.zeros(lum.shape, dtype=np.float32) for _ in range(3))
        for weight, channel, n_bins in zip(self.weights, channels, HISTOGRAM_BINS, strict=True):
            if weight == 0:
                continue
            indicators = soft_bins(channel, n_bins)
            for sigma in self.sigmas:
                # Sobel/8 is the derivative; x sigma*sqrt(2 pi) scale-normalises it; /4S is chi-squared
                gain = weight / len(self.sigmas) * 2.0 * np.pi * sigma * sigma / (4.0 * 64.0)
                for indicator in indicators:
                    mass = cv2.GaussianBlur(indicator, (0, 0), sigma)
                    dx = cv2.Sobel(mass, cv2.CV_32F, 1, 0, ksize=3)
                    dy = cv2.Sobel(mass, cv2.CV_32F, 0, 1, ksize=3)
                    inv = gain / (mass + 1e-3)
                    xx += dx * dx * inv
                    xy += dx * dy * inv
                    yy += dy * dy * inv
        raw = 0.5 * (xx + yy) + np.sqrt(0.25 * (xx - yy) ** 2 + xy * xy)  # max over orientations
        return (1.0 - np.exp(-raw / self.contrast)).astype(np.float32)

    def hierarchy(self, image: np.ndarray) -> tuple[np.ndarray, MergeTree, np.ndarray]:
        """The UCM hierarchy of the working copy of ``image`` (uint8 (H, W, 3) RGB).

        Returns:
            labels: int32 (h, w) watershed regions (the leaves).
            tree: their :class:`MergeTree` (tree.heights are the costs of the merges, in merge order).
            heights: float64 (n_nodes,) ultrametric height of each node (0 for leaves), <= its parent's.
        """
        contour = self.contour_map(image)
        labels, n = relabel(watershed(cv2.GaussianBlur(contour, (0, 0), 1.0)))
        p, q = boundary_pixel_pairs(labels)
        flat = contour.reshape(-1).astype(np.float64)
        pairs, inverse = region_pairs(labels, p, q) if len(p) else (np.zeros((0, 2), np.int64), p)
        sums = np.bincount(inverse, weights=np.maximum(flat[p], flat[q]), minlength=len(pairs))
        counts = np.bincount(inverse, minlength=len(pairs)).astype(np.float64)
        boundary = {
            (a, b): (s, c)
            for a, b, s, c in zip(
                pairs[:, 0].tolist(), pairs[:, 1].tolist(), sums.tolist(), counts.tolist(), strict=True
            )
        }
        size = np.zeros(max(2 * n - 1, 1), dtype=np.float64)
        size[:n] = np.bincount(labels.reshape(-1), minlength=n)
        small_area = self.small_region * labels.size

        def factor(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            if small_area <= 0:
                return np.ones(np.broadcast_shapes(np.shape(a), np.shape(b)))
            return np.asarray(np.minimum(1.0, np.sqrt(np.minimum(a, b) / small_area)))

        def update(i: int, j: int, k: int, neighbours: np.ndarray) -> np.ndarray:
            size[k] = size[i] + size[j]
            mean = np.empty(len(neighbours), dtype=np.float64)
            for e, other in enumerate(neighbours.tolist()):
                total, count = 0.0, 0.0
                for part in (i, j):
                    s, c = boundary.pop((min(part, other), max(part, other)), (0.0, 0.0))
                    total, count = total + s, count + c
                boundary[(other, k)] = (total, count)
                mean[e] = total / max(count, 1.0)
            return mean * factor(size[k], size[neighbours])

        initial = sums / np.maximum(counts, 1.0) * factor(size[pairs[:, 0]], size[pairs[:, 1]])
        tree = greedy_merge(n, pairs, initial, update)
        heights = np.zeros(tree.n_nodes, dtype=np.float64)
        for m, ((a, b), h) in enumerate(zip(tree.children.tolist(), tree.heights.tolist(), strict=True)):
            heights[n + m] = max(h, heights[a], heights[b])
        return labels, tree, heights

    def cut_heights(self, tree: MergeTree, heights: np.ndarray) -> np.ndarray:
        """float64 (T,), sorted and distinct: the absolute ``thresholds`` plus, for each region count k,
        the height at which the segmentation has k regions (counts >= the number of leaves give 0)."""
        merged = np.sort(heights[tree.n_leaves :])
        cuts = list(self.thresholds)
        for k in self.region_counts:
            merges = tree.n_leaves - k  # merges applied when k regions are left
            cuts.append(float(merged[merges - 1]) if merges >= 1 else 0.0)
        return np.unique(np.array(cuts, dtype=np.float64))

    @staticmethod
    def _alive(tree: MergeTree, heights: np.ndarray, threshold: float) -> np.ndarray:
        """bool (n_nodes,): nodes that are regions of the segmentation at ``threshold``."""
        parent = tree.parents()
        parent_height = np.where(parent >= 0, heights[np.maximum(parent, 0)], np.inf)
        return np.asarray((heights <= threshold) & (parent_height > threshold))

    def ultrametric_contour_map(self, image: np.ndarray) -> np.ndarray:
        """float32 (h, w) UCM of the working copy of ``image`` (uint8 (H, W, 3) RGB): on each side of a leaf
        boundary, the largest height of the smallest region containing both sides; 0 elsewhere."""
        labels, tree, heights = self.hierarchy(image)
        p, q = boundary_pixel_pairs(labels)
        flat = labels.reshape(-1)
        value = heights[tree.lowest_common_ancestor(flat[p], flat[q])]
        ucm = np.zeros(labels.size, dtype=np.float64)
        np.maximum.at(ucm, p, value)
        np.maximum.at(ucm, q, value)
        return ucm.reshape(labels.shape).astype(np.float32)

    def partitions(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The segmentations of ``image`` (uint8 (H, W, 3) RGB) at each of :meth:`cut_heights`.

        Returns:
            cuts: float64 (T,) ascending thresholds.
            labels: int32 (T, H, W) region labels 0.. per level; a region at a higher threshold is a union
                of regions at a lower one.
        """
        height, width = check_rgb_image(image, self.name).shape[:2]
        leaves, tree, heights = self.hierarchy(image)
        parent = tree.parents()
        cuts = self.cut_heights(tree, heights)
        levels = []
        for t in cuts.tolist():
            alive = self._alive(tree, heights, t)
            region = np.arange(tree.n_nodes, dtype=np.int64)
            for node in range(tree.n_nodes - 1, -1, -1):  # parents have larger ids: visit them first
                if not alive[node] and parent[node] >= 0:
                    region[node] = region[parent[node]]
            levels.append(relabel(region[leaves])[0])
        return cuts, upsample_masks(np.stack(levels), (height, width)).astype(np.int32)

    def __call__(self, image: np.ndarray) -> Proposals:
        """Propose masks for ``image``: uint8 (H, W, 3) RGB. Returns masks bool (N, H, W) and scores in
        (0, 1] (lifetime x sqrt(area fraction), relative to the best), best first."""
        height, width = check_rgb_image(image, self.name).shape[:2]
        labels, tree, heights = self.hierarchy(image)
        alive = np.zeros(tree.n_nodes, dtype=bool)
        for t in self.cut_heights(tree, heights).tolist():
            alive |= self._alive(tree, heights, t)
        sizes = np.zeros(tree.n_nodes, dtype=np.float64)
        sizes[: tree.n_leaves] = np.bincount(labels.reshape(-1), minlength=tree.n_leaves)
        for m, (a, b) in enumerate(tree.children.tolist()):
            sizes[tree.n_leaves + m] = sizes[a] + sizes[b]
        parent = tree.parents()
        death = np.where(parent >= 0, heights[np.maximum(parent, 0)], max(1.0, float(heights.max())))
        score = np.maximum(death - heights, 1e-6) * np.sqrt(sizes / labels.size)
        candidates = np.flatnonzero(alive & (sizes >= self.min_region_area * labels.size))
        if len(candidates) == 0:  # e.g. only absolute thresholds below every region: fall back to the root
            candidates = np.array([tree.n_nodes - 1], dtype=np.int64)
        order = candidates[np.argsort(-score[candidates], kind="stable")]
        kept, masks = select_masks(NodeMasker(tree, labels), order, self.max_proposals or len(order), self.dedup_iou)
        scores = np.clip(score[kept] / score[kept].max(), 1e-6, 1.0).astype(np.float32)
        return Proposals(upsample_masks(masks, (height, width)), scores)

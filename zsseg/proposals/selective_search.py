"""Selective Search (Uijlings et al., IJCV 2013) hierarchical grouping, proposing masks instead of boxes.

For each diversification strategy (a colour space x a Felzenszwalb scale k x a similarity subset):

1. Felzenszwalb-Huttenlocher graph segmentation (``skimage.segmentation.felzenszwalb``) of the image in
   that colour space gives the initial regions.
2. Adjacent regions are merged greedily, most similar pair first, until one region is left. The
   similarity is a sum of any of: colour (histogram intersection of L1-normalised 25-bin-per-channel
   histograms), texture (intersection of gradient-orientation histograms), size (``1 - (|a| + |b|) /
   |image|``, merges small regions first) and fill (``1 - (|bbox(a u b)| - |a| - |b|) / |image|``,
   merges regions that fill each other's gaps). Merged features are size-weighted means / sums, so a
   merge never touches pixels; the adjacency graph and candidate pairs are updated incrementally
   (:func:`zsseg.proposals.regions.greedy_merge`).
3. Every region of every hierarchy (initial and merged) is a candidate mask.

Ranking follows Uijlings: the region made by the last merge of a hierarchy has position 1, the one
before it 2, ...; the initial regions come last. A region's value is its position times a random number
in [0, 1) from a generator seeded with ``seed`` (deterministic for the same input), and candidates are
visited in ascending value across all hierarchies. Visited candidates below ``min_region_area`` or whose mask
IoU with an already kept one exceeds ``dedup_iou`` are skipped, until ``max_proposals`` are kept. The
score of the r-th kept mask (r = 0, 1, ...) of K is ``(K - r) / K``, in (0, 1].

Simplifications and differences from the paper:

* Texture: instead of 8-orientation Gaussian-derivative responses histogrammed in 10 bins per
  orientation and channel (240 dims), each channel's Gaussian-smoothed (sigma 1) Sobel gradient is
  binned by orientation (8 signed directions) x magnitude (weak / strong), plus one "flat" bin for
  near-zero gradient: 17 bins per channel, 51 in all, counts L1-normalised.
* Everything runs on a copy downscaled to ``max_side``; masks are upsampled with nearest-neighbour.
  The Felzenszwalb pre-smoothing defaults to sigma 0.3 (the paper: 0.8 at full resolution): area
  downscaling already smooths, and a wider blur turns every step edge into a thin ring region.
* Proposals are masks (not boxes), so de-duplication is mask IoU, not box identity.
* Colour spaces offered: RGB, HSV, Lab (not rgI, I, H, C); each channel is rescaled to [0, 1].
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage.segmentation import felzenszwalb

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

COLOUR_BINS = 25
TEXTURE_BINS = 17  # flat + 8 orientations x (weak, strong), per channel
_WEAK_GRADIENT = 0.01  # per-pixel change, channel scaled to [0, 1]
_STRONG_GRADIENT = 0.05
COLOUR_SPACES = ("rgb", "hsv", "lab")
SIMILARITY_CODES = "ctsf"


def to_colour_space(image: np.ndarray, space: str) -> np.ndarray:
    """float32 (h, w, 3) with channels in [0, 1]: uint8 RGB ``image`` (h, w, 3) in ``space`` (rgb/hsv/lab)."""
    rgb = image.astype(np.float32) / 255.0
    if space == "rgb":
        return rgb
    if space == "hsv":
        hsv = np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV), dtype=np.float32)  # H in [0, 360), S, V in [0, 1]
        hsv[..., 0] /= 360.0
        return np.clip(hsv, 0.0, 1.0)
    if space == "lab":
        lab = np.asarray(
            cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB), dtype=np.float32
        )  # L in [0, 100], a, b in about [-127, 127]
        lab[..., 0] /= 100.0
        lab[..., 1:] = (lab[..., 1:] + 128.0) / 255.0
        return np.clip(lab, 0.0, 1.0)
    raise ValueError(f"unknown colour space {space!r}; expected one of {COLOUR_SPACES}")


def texture_bins(image: np.ndarray) -> np.ndarray:
    """int64 (h, w, 3): each pixel's texture bin (0..16) per channel of a float (h, w, 3) image in [0, 1]."""
    smooth = cv2.GaussianBlur(image, (0, 0), 1.0)
    dx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    dy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    magnitude = np.hypot(dx, dy)
    orientation = ((np.arctan2(dy, dx) + np.pi) / (2 * np.pi) * 8).astype(np.int64) % 8
    bins = 1 + orientation + 8 * (magnitude >= _STRONG_GRADIENT)
    return np.where(magnitude < _WEAK_GRADIENT, 0, bins)


class _RegionFeatures:
    """Per-region features of one initial segmentation, as arrays with room for all 2n-1 tree nodes.

    Args:
        labels: int32 (h, w) initial regions 0..n-1.
        n: number of regions.
        colour_bin: int64 (h, w, 3) colour histogram bin of each pixel and channel.
        texture_bin: int64 (h, w, 3) texture bin of each pixel and channel.
    """

    def __init__(self, labels: np.ndarray, n: int, colour_bin: np.ndarray, texture_bin: np.ndarray) -> None:
        h, w = labels.shape
        cap = max(2 * n - 1, 1)
        flat = labels.reshape(-1).astype(np.int64)
        self.image_area = float(h * w)
        self.size = np.zeros(cap, dtype=np.float64)
        self.size[:n] = np.bincount(flat, minlength=n)
        # colour histogram in columns [0, 75), texture histogram in [75, 126), each L1-normalised
        self.hist = np.zeros((cap, 3 * (COLOUR_BINS + TEXTURE_BINS)), dtype=np.float64)
        self.hist[:n, : 3 * COLOUR_BINS] = self._histogram(flat, colour_bin, COLOUR_BINS, n)
        self.hist[:n, 3 * COLOUR_BINS :] = self._histogram(flat, texture_bin, TEXTURE_BINS, n)
        rows, cols = np.divmod(np.arange(h * w, dtype=np.int64), w)
        self.box = np.zeros((cap, 4), dtype=np.float64)  # min row, min col, max row, max col
        for c, (coord, fill, ufunc) in enumerate(
            [(rows, h, np.minimum), (cols, w, np.minimum), (rows, -1, np.maximum), (cols, -1, np.maximum)]
        ):
            values = np.full(n, fill, dtype=np.int64)
            ufunc.at(values, flat, coord)
            self.box[:n, c] = values
        self.pairs, _ = region_pairs(labels, *boundary_pixel_pairs(labels))

    def _histogram(self, flat: np.ndarray, bins: np.ndarray, n_bins: int, n: int) -> np.ndarray:
        keys = flat[:, None] * (3 * n_bins) + np.arange(3)[None, :] * n_bins + bins.reshape(-1, 3)
        hist = np.bincount(keys.reshape(-1), minlength=n * 3 * n_bins).reshape(n, 3 * n_bins)
        return hist / np.maximum(hist.sum(axis=1, keepdims=True), 1.0)

    def similarity(self, a: np.ndarray, b: np.ndarray, codes: str) -> np.ndarray:
        """float64 (E,): the similarity of region pairs (a[e], b[e]) with the measures named in ``codes``."""
        sim = np.zeros(np.broadcast_shapes(a.shape, b.shape), dtype=np.float64)
        if "c" in codes or "t" in codes:
            lo_col = 0 if "c" in codes else 3 * COLOUR_BINS
            hi_col = self.hist.shape[1] if "t" in codes else 3 * COLOUR_BINS
            sim += np.minimum(self.hist[a, lo_col:hi_col], self.hist[b, lo_col:hi_col]).sum(axis=-1)
        if "s" in codes:
            sim += 1.0 - (self.size[a] + self.size[b]) / self.image_area
        if "f" in codes:
            lo = np.minimum(self.box[a, :2], self.box[b, :2])
            hi = np.maximum(self.box[a, 2:], self.box[b, 2:])
            box_area = np.prod(hi - lo + 1.0, axis=-1)
            sim += 1.0 - (box_area - self.size[a] - self.size[b]) / self.image_area
        return sim

    def merge(self, i: int, j: int, k: int) -> None:
        """Write the features of region k = i u j."""
        si, sj = self.size[i], self.size[j]
        self.size[k] = si + sj
        self.hist[k] = (si * self.hist[i] + sj * self.hist[j]) / (si + sj)
        self.box[k, :2] = np.minimum(self.box[i, :2], self.box[j, :2])
        self.box[k, 2:] = np.maximum(self.box[i, 2:], self.box[j, 2:])


def hierarchical_grouping(features: _RegionFeatures, n: int, codes: str) -> MergeTree:
    """Uijlings' grouping of n initial regions: merge the most similar adjacent pair until one is left.

    Updates ``features`` in place with the merged regions' features (node ids n..2n-2). The tree's
    heights are the negated similarities of the merges.
    """
    pairs = features.pairs
    initial = -features.similarity(pairs[:, 0], pairs[:, 1], codes)

    def update(i: int, j: int, k: int, neighbours: np.ndarray) -> np.ndarray:
        features.merge(i, j, k)
        return -features.similarity(np.array(k), neighbours, codes)

    return greedy_merge(n, pairs, initial, update)


class SelectiveSearchProposer:
    """Selective Search hierarchical grouping; every region of every hierarchy is a candidate mask.

    Runs one hierarchy per (colour space, scale, similarity subset) combination; the defaults (2 x 2 x 2 =
    8 hierarchies on a 256-pixel copy) follow the paper's "fast" mode.

    Args:
        max_side: longest side, in pixels, of the downscaled working copy (larger is slower and finer).
        colour_spaces: comma-separated colour spaces to diversify over, from rgb, hsv, lab.
        scales: Felzenszwalb scale parameters k for the initial regions (larger gives fewer, bigger regions).
        similarities: comma-separated similarity subsets, each letters from c(olour) t(exture) s(ize) f(ill).
        sigma: Gaussian smoothing before the Felzenszwalb segmentation, in working-copy pixels.
        min_size: smallest initial region, in working-copy pixels.
        min_region_area: smallest proposal, as a fraction of the image area.
        dedup_iou: a candidate whose mask IoU with a kept proposal exceeds this is dropped.
        max_proposals: the most proposals returned per image; 0 keeps all.
        seed: seed of the random ranking (the output is deterministic for a given seed and image).
    """

    name = "selective-search"

    def __init__(
        self,
        max_side: int = 256,
        colour_spaces: str = "hsv,lab",
        scales: tuple[float, ...] = (100.0, 300.0),
        similarities: str = "ctsf,tsf",
        sigma: float = 0.3,
        min_size: int = 20,
        min_region_area: float = 0.001,
        dedup_iou: float = 0.95,
        max_proposals: int = 100,
        seed: int = 0,
    ) -> None:
        self.colour_space_list = [s.strip().lower() for s in colour_spaces.split(",") if s.strip()]
        self.similarity_list = [s.strip().lower() for s in similarities.split(",") if s.strip()]
        if not self.colour_space_list or any(s not in COLOUR_SPACES for s in self.colour_space_list):
            raise ValueError(f"colour_spaces must name some of {COLOUR_SPACES}, got {colour_spaces!r}")
        if not self.similarity_list or any(set(s) - set(SIMILARITY_CODES) for s in self.similarity_list):
            raise ValueError(f"similarities must be subsets of the letters 'ctsf', got {similarities!r}")
        if not scales or any(k <= 0 for k in scales):
            raise ValueError(f"scales must be positive numbers, got {scales!r}")
        if max_side < 8 or min_size < 1 or max_proposals < 0 or sigma < 0:
            raise ValueError("max_side must be >= 8, min_size >= 1, max_proposals >= 0 and sigma >= 0")
        if not 0.0 <= min_region_area <= 1.0 or not 0.0 < dedup_iou <= 1.0:
            raise ValueError("min_region_area must be in [0, 1] and dedup_iou in (0, 1]")
        self.max_side = max_side
        self.colour_spaces = colour_spaces
        self.scales = tuple(float(k) for k in scales)
        self.similarities = similarities
        self.sigma = sigma
        self.min_size = min_size
        self.min_region_area = min_region_area
        self.dedup_iou = dedup_iou
        self.max_proposals = max_proposals
        self.seed = seed

    def hierarchies(self, image: np.ndarray) -> list[tuple[np.ndarray, MergeTree, np.ndarray]]:
        """One hierarchy per strategy, on the working copy of ``image`` (uint8 (H, W, 3) RGB).

        Returns:
            A list of (labels, tree, sizes): the int32 (h, w) initial regions of the working copy, their
            :class:`MergeTree` and the float64 (n_nodes,) pixel count of each node.
        """
        small = downscale(check_rgb_image(image, self.name), self.max_side)
        out: list[tuple[np.ndarray, MergeTree, np.ndarray]] = []
        for space in self.colour_space_list:
            converted = to_colour_space(small, space)
            colour_bin = np.minimum((converted * COLOUR_BINS).astype(np.int64), COLOUR_BINS - 1)
            texture_bin = texture_bins(converted)
            for k in self.scales:
                segments = felzenszwalb(converted, scale=k, sigma=self.sigma, min_size=self.min_size)
                labels, n = relabel(segments)
                # merges only write nodes >= n, so the leaves' features are shared by all subsets
                features = _RegionFeatures(labels, n, colour_bin, texture_bin)
                for codes in self.similarity_list:
                    tree = hierarchical_grouping(features, n, codes)
                    out.append((labels, tree, features.size[: tree.n_nodes].copy()))
        return out

    def __call__(self, image: np.ndarray) -> Proposals:
        """Propose masks for ``image``: uint8 (H, W, 3) RGB. Returns masks bool (N, H, W), scores in (0, 1]."""
        height, width = check_rgb_image(image, self.name).shape[:2]
        hierarchies = self.hierarchies(image)
        rng = np.random.default_rng(self.seed)
        strategy_of, node_of, values = [], [], []
        for s, (labels, tree, sizes) in enumerate(hierarchies):
            m = tree.n_nodes - tree.n_leaves
            position = np.empty(tree.n_nodes, dtype=np.float64)
            position[: tree.n_leaves] = m + 1
            position[tree.n_leaves :] = np.arange(m, 0, -1)
            value = position * rng.random(tree.n_nodes)
            ok = sizes >= self.min_region_area * labels.size
            strategy_of.append(np.full(int(ok.sum()), s, dtype=np.int64))
            node_of.append(np.flatnonzero(ok))
            values.append(value[ok])
        strategy = np.concatenate(strategy_of)
        node = np.concatenate(node_of)
        order = np.argsort(np.concatenate(values), kind="stable")
        maskers: dict[int, NodeMasker] = {}

        def make_masks(ids: np.ndarray) -> np.ndarray:
            out = []
            for c in ids.tolist():
                s = int(strategy[c])
                if s not in maskers:
                    maskers[s] = NodeMasker(hierarchies[s][1], hierarchies[s][0])
                out.append(maskers[s](node[c : c + 1]))
            return np.concatenate(out, axis=0)

        kept, masks = select_masks(make_masks, order, self.max_proposals or len(order), self.dedup_iou)
        if len(kept) == 0:
            return Proposals.empty(height, width)
        scores = (len(kept) - np.arange(len(kept))) / len(kept)
        return Proposals(upsample_masks(masks, (height, width)), scores.astype(np.float32))

"""Mask prediction assembly: proposals' class probabilities times their masks, summed, argmax per pixel.

This is the paper's step 3 (and MaskFormer's semantic inference with hard masks):
``score[k, p] = sum_n probs[n, k] * mask[n, p]``, ``label[p] = argmax_k score[k, p]``.
Overlaps are resolved by the sum: a pixel covered by several proposals takes the class with the most
probability mass over all of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

IGNORE_INDEX = 255
"""Label value for pixels left unlabelled (only when asked for), as in PASCAL VOC and COCO-Stuff."""


@dataclass(frozen=True)
class Assembly:
    """Per-pixel outcome of assembly.

    Attributes:
        label_map: int32 (H, W), class index into the vocabulary, or ``ignore_index`` where unlabelled.
        confidence: float32 (H, W) in [0, 1]: the winning class's share of the probability mass at the pixel
            (0 where no proposal covers it).
        covered: bool (H, W): pixels inside at least one proposal.
    """

    label_map: np.ndarray
    confidence: np.ndarray
    covered: np.ndarray


def assemble(
    masks: np.ndarray,
    probs: np.ndarray,
    *,
    unlabelled_threshold: float | None = None,
    background_index: int | None = None,
    background_threshold: float = 0.5,
    ignore_index: int = IGNORE_INDEX,
    chunk_pixels: int = 1 << 18,
) -> Assembly:
    """Build a label map from N proposals and their class probabilities.

    Args:
        masks: bool (N, H, W) proposal masks.
        probs: float (N, K) class probabilities of each proposal (rows sum to 1).
        unlabelled_threshold: if set, pixels whose confidence is below it, and pixels no proposal covers,
            get ``ignore_index``. If None (default), every pixel gets a class: uncovered pixels take the
            label of the nearest covered pixel (SAM-style proposals leave thin gaps between masks).
        background_index: index of a "background" entry of the vocabulary, or None. Its column of ``probs``
            is ignored; a pixel whose confidence in its best other class is below ``background_threshold``
            is labelled background. Uncovered pixels are labelled background too.
        background_threshold: see ``background_index``; in [0, 1].
        ignore_index: value for unlabelled pixels; must not be a class index.
        chunk_pixels: pixels per chunk of the (K, N) x (N, P) product, to bound memory.

    Returns:
        An :class:`Assembly` with int32 label map and float32 confidence, both (H, W).
    """
    masks = np.asarray(masks)
    probs = np.asarray(probs, dtype=np.float32)
    if masks.ndim != 3 or masks.dtype != np.bool_:
        raise ValueError(f"masks must be bool (N, H, W), got {masks.dtype} {masks.shape}")
    if probs.ndim != 2 or probs.shape[0] != masks.shape[0]:
        raise ValueError(f"probs must be (N, K) with N={masks.shape[0]} to match masks, got {probs.shape}")
    n, h, w = masks.shape
    k = probs.shape[1]
    if k == 0:
        raise ValueError("probs has no classes (K=0)")
    if 0 <= ignore_index < k:
        raise ValueError(f"ignore_index={ignore_index} collides with a class index (K={k})")
    if background_index is not None:
        if not 0 <= background_index < k:
            raise ValueError(f"background_index={background_index} out of range for K={k}")
        probs = probs.copy()
        probs[:, background_index] = 0.0

    flat_masks = torch.from_numpy(masks.reshape(n, h * w))
    p = torch.from_numpy(probs).T.contiguous()  # (K, N)
    label = np.zeros(h * w, dtype=np.int32)
    conf = np.zeros(h * w, dtype=np.float32)
    for start in range(0, h * w, chunk_pixels):
        m = flat_masks[:, start : start + chunk_pixels].to(torch.float32)  # (N, P)
        score = p @ m  # (K, P)
        total = score.sum(dim=0)
        best, idx = score.max(dim=0)
        label[start : start + chunk_pixels] = idx.numpy()
        conf[start : start + chunk_pixels] = (best / total.clamp_min(1e-12)).numpy()
    label_map = label.reshape(h, w)
    confidence = conf.reshape(h, w)
    covered = np.asarray(masks.any(axis=0)) if n else np.zeros((h, w), dtype=bool)

    if background_index is not None:
        label_map[(confidence < background_threshold) | ~covered] = background_index
    elif unlabelled_threshold is not None:
        label_map[(confidence < unlabelled_threshold) | ~covered] = ignore_index
    elif not covered.all():
        label_map = fill_nearest(label_map, covered)
    return Assembly(label_map=label_map, confidence=confidence, covered=covered)


def fill_nearest(label_map: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Give every pixel outside ``valid`` the label of the nearest pixel inside it (Euclidean).

    Args:
        label_map: int (H, W).
        valid: bool (H, W); if it is empty the map is returned unchanged.
    """
    if not valid.any():
        return label_map
    _, (rows, cols) = ndimage.distance_transform_edt(~valid, return_indices=True)
    return label_map[rows, cols]


def upscale_nearest(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of a (h, w) array to (height, width), without intermediate full-size copies."""
    h, w = array.shape
    if (h, w) == (height, width):
        return array
    rows = (np.arange(height) * h) // height
    cols = (np.arange(width) * w) // width
    return array[rows[:, None], cols[None, :]]


def working_view(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """The (height, width) array that :func:`upscale_nearest` enlarges into ``array`` (H, W), H >= height and
    W >= width: the inverse of that upscale (each working pixel is read at the first full-size pixel it fills)."""
    h, w = array.shape
    if (h, w) == (height, width):
        return array
    rows = np.searchsorted((np.arange(h) * height) // h, np.arange(height))
    cols = np.searchsorted((np.arange(w) * width) // w, np.arange(width))
    return array[rows[:, None], cols[None, :]]

"""Dense region features: encode the whole image once, pool one feature per proposal from the feature map.

Strategy 1 of the paper encodes every proposal's masked crop on its own (:mod:`zsseg.classify.region`). The
dense mode runs the image encoder **once** per image, at a bounded resolution, and pools each proposal's
feature from the encoder's last feature map with the proposal's mask as soft weights (the fraction of each
feature cell the mask covers), then applies the model's own head. The cost no longer grows with the number of
proposals, and a region's feature carries its surroundings inside the receptive field: SAM's part masks (a
wheel, a wing) take the whole object's class.

Shared pieces live here: :func:`dense_input` (resize, aspect kept, sides a multiple of the network's stride)
and :func:`mask_grid_weights` (masks -> per-cell coverage on the feature grid). Each family's encoder
(``zsseg/models/<family>/dense.py``) implements :class:`DenseRegionEncoder`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F

DEFAULT_DENSE_SIZE = 448
"""Long side of the image in the dense pass when none is given (chosen on VOC val, ``docs/results.md`` §9)."""


@runtime_checkable
class DenseRegionEncoder(Protocol):
    """Embeds every proposal of an image from one encoder pass.

    ``size`` is the long side of the image as the encoder sees it.
    """

    size: int

    def __call__(self, image: np.ndarray, masks: np.ndarray) -> torch.Tensor:
        """uint8 (H, W, 3) RGB image and bool (N, H, W) masks -> float32 (N, D), L2-normalised, on the CPU."""
        ...

    def features(self, image: np.ndarray, masks: np.ndarray) -> torch.Tensor:
        """The frozen network's pooled region features before its embedding head: float32 (N, F) on the CPU.

        The same quantity as :meth:`zsseg.models.towers.ImageTower.pool` of a crop, so strategy 2 (which trains
        a head on it) and strategy 1 (:meth:`embed`) share one pass. ``__call__ = embed(features(...))``.
        """
        ...

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """:meth:`features`' float32 (N, F) -> the model's own region embeddings float32 (N, D), L2-normalised."""
        ...


def dense_shape(height: int, width: int, long_side: int, multiple: int) -> tuple[int, int]:
    """Input size (h, w) for the encoder: the long side scaled to ``long_side``, aspect kept, both sides rounded
    to the nearest multiple of ``multiple`` (at least one multiple). Few distinct shapes result, which matters on
    CPU, where each new input shape costs a first-call set-up."""
    scale = long_side / max(height, width)
    h = max(multiple, int(round(height * scale / multiple)) * multiple)
    w = max(multiple, int(round(width * scale / multiple)) * multiple)
    return h, w


def dense_input(
    image: np.ndarray,
    long_side: int,
    multiple: int,
    mean: Sequence[float],
    std: Sequence[float],
) -> torch.Tensor:
    """The whole image resized for one encoder pass (see :func:`dense_shape`) and normalised.

    Args:
        image: uint8 (H, W, 3) RGB.
        long_side: target long side in pixels.
        multiple: the network's total stride (32 for EfficientNet, the patch size for a ViT).
        mean, std: RGB normalisation in [0, 1] units.

    Returns:
        float32 (1, 3, h, w).
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    h, w = dense_shape(image.shape[0], image.shape[1], long_side, multiple)
    x = torch.tensor(image).permute(2, 0, 1)[None].float().div_(255.0)
    if (h, w) != image.shape[:2]:
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (x - mean_t) / std_t


def mask_grid_weights(masks: np.ndarray, grid: tuple[int, int]) -> torch.Tensor:
    """Fraction of each cell of a ``grid`` (gh, gw) laid over the image that each mask covers.

    Cells are the image's area split evenly (adaptive average pooling), so a mask's weights are soft at its
    borders and every non-empty mask has some weight.

    Args:
        masks: bool (N, H, W).
        grid: (gh, gw) of the feature map.

    Returns:
        float32 (N, gh, gw) in [0, 1].
    """
    if masks.ndim != 3:
        raise ValueError(f"masks must be bool (N, H, W), got shape {masks.shape}")
    n = masks.shape[0]
    if n == 0:
        return torch.zeros((0, *grid), dtype=torch.float32)
    out = torch.empty((n, *grid), dtype=torch.float32)
    step = 16  # bound the float copy of the masks: 16 masks of the image at a time
    for start in range(0, n, step):
        m = torch.from_numpy(np.ascontiguousarray(masks[start : start + step])).to(torch.float32)
        out[start : start + step] = F.adaptive_avg_pool2d(m[:, None], grid)[:, 0]
    return out


def pool_features(features: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mask-weighted average of a feature map.

    Args:
        features: (C, gh, gw) feature map of one image.
        weights: float32 (N, gh, gw) from :func:`mask_grid_weights`.

    Returns:
        (N, C) in ``features``' dtype: sum of weight x feature over cells / sum of weights.
    """
    c = features.shape[0]
    w = weights.reshape(len(weights), -1).to(features.dtype)
    pooled = w @ features.reshape(c, -1).T
    return pooled / w.sum(dim=1, keepdim=True).clamp_min(1e-6)

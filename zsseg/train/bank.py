"""Training regions as the pipeline sees them: the default proposals of each image (plus its ground-truth
segments), their features pooled from one dense pass of the frozen network, and soft targets from the labels.

Strategy 2 (projection mode) and strategy 1 both start from the frozen network's pooled region features
(:meth:`zsseg.models.pooling.DenseRegionEncoder.features`), so a training region costs one pooling of a
feature map the image needed anyway: the proposals are the expensive part, and they are computed once and
cached with the features.

Soft targets (``targets=``) of a region over the C trained classes plus "no object" (last column):

- ``"composition"`` (default): the share of the region's pixels labelled with each trained class; the rest
  (background, void, and classes that are not trained, e.g. unseen ones, whose pixels are treated as
  unlabelled and never read as themselves) is "no object". A region's ideal class distribution for the
  assembly, which sums probabilities times masks per pixel.
- ``"iou"``: the trained class of highest IoU k with IoU i gets ``clip((i - no_object_iou) / (match_iou -
  no_object_iou), 0, 1)`` and "no object" the rest (proposals matched by IoU as in MaskFormer, softened).

Ground-truth segments (:func:`zsseg.train.regions.gt_regions`) get one-hot targets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from zsseg.errors import ZsSegError

TARGET_MODES: tuple[str, ...] = ("composition", "iou")
GT, PROPOSAL = 0, 1


@dataclass(frozen=True)
class RegionBank:
    """M training regions: features, soft targets, and where each came from.

    Attributes:
        features: (M, ...) region features: float32 (M, F) pooled ones, or a crop trunk's output (mirrored
            copies included when flipping).
        targets: float32 (M, C + 1), rows summing to 1 (all zero where unknown: unlabelled images); the last
            column is "no object".
        image: int64 (M,) index of the image each region came from (for held-out splits by image).
        source: int64 (M,) ``GT`` (0) for ground-truth segments, ``PROPOSAL`` (1) for proposals.
    """

    features: torch.Tensor
    targets: torch.Tensor
    image: torch.Tensor
    source: torch.Tensor

    def __post_init__(self) -> None:
        m = self.features.shape[0]
        if self.features.ndim < 2:
            raise ValueError(f"features must be (M, F) or (M, ...), got {tuple(self.features.shape)}")
        if self.targets.ndim != 2 or self.targets.shape[0] != m:
            raise ValueError(f"targets must be ({m}, C + 1), got {tuple(self.targets.shape)}")
        for name in ("image", "source"):
            if getattr(self, name).shape != (m,):
                raise ValueError(f"{name} must be ({m},), got {tuple(getattr(self, name).shape)}")

    def __len__(self) -> int:
        return int(self.features.shape[0])

    def __getitem__(self, keep: torch.Tensor | np.ndarray) -> RegionBank:
        """The regions selected by a bool (M,) mask or an index array."""
        k = torch.as_tensor(keep)
        return RegionBank(self.features[k], self.targets[k], self.image[k], self.source[k])

    def tensors(self) -> dict[str, torch.Tensor]:
        """For a safetensors file."""
        return {"features": self.features, "targets": self.targets, "image": self.image, "source": self.source}

    @staticmethod
    def concat(banks: Sequence[RegionBank]) -> RegionBank:
        """Regions of several banks, in order."""
        names = ("features", "targets", "image", "source")
        return RegionBank(*(torch.cat([getattr(b, n) for b in banks]) for n in names))


def soft_targets(
    masks: np.ndarray,
    label: np.ndarray,
    class_ids: Sequence[int],
    mode: str = "composition",
    match_iou: float = 0.5,
    no_object_iou: float = 0.2,
) -> np.ndarray:
    """Soft targets of N regions (see the module docstring).

    Args:
        masks: bool (N, H, W), non-empty.
        label: int (H, W) class ids; ids outside ``class_ids`` (ignore, background, unseen) count as unlabelled.
        class_ids: the C trained class ids, in the order of the target columns.
        mode: ``"composition"`` or ``"iou"``.
        match_iou, no_object_iou: the IoU ramp of ``"iou"``.

    Returns:
        float32 (N, C + 1), rows summing to 1, "no object" last.
    """
    if mode not in TARGET_MODES:
        raise ZsSegError(f"unknown target mode {mode!r}: use one of {', '.join(TARGET_MODES)}")
    if masks.ndim != 3 or masks.shape[1:] != label.shape:
        raise ValueError(f"masks must be bool (N, {label.shape[0]}, {label.shape[1]}), got {masks.shape}")
    n, c = len(masks), len(class_ids)
    lut = np.full(int(max(label.max(initial=0), max(class_ids, default=0))) + 1, c, np.int64)
    lut[list(class_ids)] = np.arange(c)
    cls = lut[np.clip(label, 0, len(lut) - 1)].ravel()  # column of every pixel, C where unlabelled
    flat = masks.reshape(n, -1).astype(np.float32)
    onehot = np.zeros((cls.size, c + 1), np.float32)
    onehot[np.arange(cls.size), cls] = 1.0
    inter = flat @ onehot  # (N, C + 1) pixels of each column inside each mask
    area = flat.sum(axis=1, keepdims=True)
    if mode == "composition":
        return (inter / np.maximum(area, 1.0)).astype(np.float32)
    gt_area = onehot[:, :c].sum(axis=0)[None]
    iou = inter[:, :c] / np.maximum(area + gt_area - inter[:, :c], 1.0)
    out = np.zeros((n, c + 1), np.float32)
    if c:
        best = iou.argmax(axis=1)
        share = np.clip((iou[np.arange(n), best] - no_object_iou) / max(match_iou - no_object_iou, 1e-6), 0, 1)
        out[np.arange(n), best] = share
        out[:, c] = 1.0 - share
    else:
        out[:, 0] = 1.0
    return out


ImageRegions = tuple[np.ndarray, np.ndarray, np.ndarray]
"""One image's uint8 (H, W, 3) pixels, bool (N, H, W) region masks, float32 (N, C + 1) targets."""


def pool_bank(
    images: Iterable[tuple[ImageRegions, np.ndarray]],
    features: Callable[[np.ndarray, np.ndarray], torch.Tensor],
    total: int | None = None,
    flip: bool = True,
    progress: bool = True,
) -> RegionBank:
    """Pool every region's features (and the mirrored image's, if ``flip``) into a :class:`RegionBank`.

    Args:
        images: ``((image, masks, targets), source)`` per image; ``source`` int64 (N,) of ``GT``/``PROPOSAL``.
        features: ``(image, masks) -> float32 (N, F)``, e.g. a dense encoder's ``features``.
        total: number of images, for the progress bar.
        flip: also pool the horizontally mirrored image and masks (targets repeated).
        progress: a progress bar on stderr.
    """
    parts: list[RegionBank] = []
    for index, ((image, masks, targets), source) in enumerate(
        tqdm(images, total=total, desc="pooling regions", unit="img", disable=not progress, dynamic_ncols=True)
    ):
        if len(masks) == 0:
            continue
        views = [(image, masks)]
        if flip:
            views.append((np.ascontiguousarray(image[:, ::-1]), np.ascontiguousarray(masks[:, :, ::-1])))
        for img, m in views:
            feats = features(img, m).float().cpu()
            parts.append(
                RegionBank(
                    feats,
                    torch.from_numpy(np.asarray(targets, np.float32)),
                    torch.full((len(m),), index, dtype=torch.int64),
                    torch.from_numpy(np.asarray(source, np.int64)),
                )
            )
    if not parts:
        raise ZsSegError("no training region found: check the dataset split, --seen-only and --min-area")
    return RegionBank.concat(parts)


def holdout_images(num_images: int, fraction: float, seed: int = 0) -> torch.Tensor:
    """bool (num_images,): a seeded random ``fraction`` of the images (at least one when ``fraction > 0`` and
    there are two or more), held out of training for early stopping and temperature calibration."""
    if not 0.0 <= fraction < 1.0:
        raise ZsSegError(f"--holdout must be in [0, 1), got {fraction}: e.g. --holdout 0.15")
    out = torch.zeros(num_images, dtype=torch.bool)
    k = int(round(fraction * num_images))
    if fraction > 0 and num_images >= 2:
        k = min(max(k, 1), num_images - 1)
        out[torch.randperm(num_images, generator=torch.Generator().manual_seed(seed))[:k]] = True
    return out

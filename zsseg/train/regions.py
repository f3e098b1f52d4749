"""Training regions: ground-truth segments (and optionally matched proposals) of the trained classes, as
masked crops encoded once by a frozen trunk and cached.

Regions of an image (``regions=``):

- ``"class"``: one mask per class present in the label map;
- ``"components"``: each connected component of each class;
- ``"both"`` (default): the class masks plus the components that differ from them (a class split in
  several pieces contributes its whole mask and each piece).

Regions smaller than ``min_area`` (a fraction of the image) are dropped. Pixels of classes that are not
trained (the unseen classes) never form a region. With a proposal generator, proposals whose IoU with a
trained class's mask is at least ``match_iou`` are added with that class, and proposals overlapping no class
(IoU below ``no_object_iou`` with every class, less than 10% unseen pixels) as "no object" (label -1), at most
as many as the image's positives.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from tqdm import tqdm

from zsseg.classify.region import masked_crops
from zsseg.data.dataset import SegDataset
from zsseg.errors import ZsSegError
from zsseg.io import AtomicWriter
from zsseg.proposals.base import MaskProposer

REGION_MODES: tuple[str, ...] = ("class", "components", "both")
NO_OBJECT = -1


@dataclass(frozen=True)
class RegionOptions:
    """How training regions are cut from an image (see the module docstring)."""

    regions: str = "both"
    min_area: float = 0.002
    match_iou: float = 0.5
    no_object_iou: float = 0.2

    def __post_init__(self) -> None:
        if self.regions not in REGION_MODES:
            raise ZsSegError(f"unknown region mode {self.regions!r}: use one of {', '.join(REGION_MODES)}")


def gt_regions(
    label: np.ndarray, trained_ids: Sequence[int], options: RegionOptions = RegionOptions()
) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth regions of the trained classes of one label map.

    Args:
        label: int (H, W) class ids (anything not in ``trained_ids`` is ignored).
        trained_ids: class ids to cut regions of.
        options: region mode and minimum area.

    Returns:
        masks bool (N, H, W) and their class ids int64 (N,).
    """
    h, w = label.shape
    min_pixels = max(1, int(np.ceil(options.min_area * h * w)))
    masks: list[np.ndarray] = []
    ids: list[int] = []
    for k in (int(v) for v in np.unique(label) if int(v) in set(trained_ids)):
        whole = label == k
        if options.regions in ("class", "both") and whole.sum() >= min_pixels:
            masks.append(whole)
            ids.append(k)
        if options.regions in ("components", "both"):
            comp, n = ndimage.label(whole)
            if options.regions == "both" and n == 1:
                continue
            areas = np.bincount(comp.ravel(), minlength=n + 1)[1:]
            for j in np.flatnonzero(areas >= min_pixels):
                masks.append(comp == j + 1)
                ids.append(k)
    if not masks:
        return np.zeros((0, h, w), bool), np.zeros(0, np.int64)
    return np.stack(masks), np.array(ids, np.int64)


def match_proposals(
    proposals: np.ndarray,
    label: np.ndarray,
    trained_ids: Sequence[int],
    ignore_index: int,
    options: RegionOptions = RegionOptions(),
) -> tuple[np.ndarray, np.ndarray]:
    """Proposals labelled by IoU with the ground truth.

    Args:
        proposals: bool (P, H, W).
        label: int (H, W) class ids, ``ignore_index`` where unlabelled.
        trained_ids: the trained classes; other labelled classes (unseen) are never targets.
        ignore_index: the label map's unlabelled value.
        options: ``match_iou``, ``no_object_iou``.

    Returns:
        masks bool (M, H, W) and labels int64 (M,): a trained class id, or ``NO_OBJECT`` (-1).
    """
    proposals = proposals[proposals.reshape(len(proposals), -1).any(axis=1)] if len(proposals) else proposals
    present = [int(k) for k in np.unique(label) if int(k) != ignore_index]
    if len(proposals) == 0:
        return np.zeros((0, *label.shape), bool), np.zeros(0, np.int64)
    flat = proposals.reshape(len(proposals), -1)
    area = flat.sum(axis=1)
    best_iou = np.zeros(len(proposals))
    best_id = np.full(len(proposals), NO_OBJECT, np.int64)
    unseen_frac = np.zeros(len(proposals))
    for k in present:
        gt = (label == k).ravel()
        inter = (flat & gt).sum(axis=1)
        iou = inter / (area + gt.sum() - inter)
        if k not in set(trained_ids):
            unseen_frac += inter / area
        better = iou > best_iou
        best_iou[better], best_id[better] = iou[better], k
    positive = (best_iou >= options.match_iou) & np.isin(best_id, list(trained_ids))
    negative = np.flatnonzero((best_iou < options.no_object_iou) & (unseen_frac < 0.1))[: int(positive.sum())]
    keep = np.concatenate([np.flatnonzero(positive), negative])
    labels = np.concatenate([best_id[positive], np.full(len(negative), NO_OBJECT, np.int64)])
    return proposals[keep], labels


def iter_regions(
    dataset: SegDataset,
    trained_ids: Sequence[int],
    options: RegionOptions = RegionOptions(),
    proposer: MaskProposer | None = None,
    limit: int | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per image: ``(image uint8 (H, W, 3), masks bool (N, H, W), labels int64 (N,))``, labels a class id or -1."""
    samples = dataset.samples if limit is None else dataset.samples[:limit]
    for sample in samples:
        label = dataset.load_label(sample)
        masks, labels = gt_regions(label, trained_ids, options)
        image = dataset.load_image(sample)
        if proposer is not None:
            pm, pl = match_proposals(proposer(image).masks, label, trained_ids, dataset.info.ignore_index, options)
            masks, labels = np.concatenate([masks, pm]), np.concatenate([labels, pl])
        yield image, masks, labels


def encode_regions(
    regions: Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]],
    encode: Callable[[torch.Tensor], torch.Tensor],
    crop: tuple[int, Sequence[float], Sequence[float]],
    total: int | None = None,
    flip: bool = True,
    batch_size: int = 32,
    dtype: torch.dtype = torch.float32,
    progress: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode every region's masked crop (and its mirror image if ``flip``) with a frozen ``encode``.

    Args:
        regions: from :func:`iter_regions`.
        encode: float32 (B, 3, S, S) normalised crops -> features (B, ...); run without gradients.
        crop: (S, mean, std) of :func:`zsseg.classify.region.masked_crops`.
        total: number of images, for the progress bar.
        flip: also encode horizontally flipped crops (labels repeated).
        batch_size: crops per ``encode`` call.
        dtype: dtype the features are stored in (on the CPU).
        progress: show a progress bar (stderr).

    Returns:
        features (M, ...) of ``dtype`` and labels int64 (M,).
    """
    size, mean, std = crop
    feats: list[torch.Tensor] = []
    labels: list[torch.Tensor] = []
    pending: list[torch.Tensor] = []

    def flush() -> None:
        if pending:
            with torch.no_grad():
                feats.append(encode(torch.cat(pending)).to("cpu", dtype))
            pending.clear()

    for image, masks, region_labels in tqdm(
        regions, total=total, desc="encoding regions", unit="img", disable=not progress, dynamic_ncols=True
    ):
        if len(masks) == 0:
            continue
        crops = masked_crops(image, masks, size, mean, std)
        for part in (crops, crops.flip(-1)) if flip else (crops,):
            pending.append(part)
            labels.append(torch.from_numpy(region_labels))
            if sum(len(p) for p in pending) >= batch_size:
                flush()
    flush()
    if not feats:
        raise ZsSegError("no training region found: check the dataset split, --seen-only and --min-area")
    return torch.cat(feats), torch.cat(labels)


def features_cache_path(key_parts: Sequence[object]) -> Path:
    """Where features keyed by ``key_parts`` are cached (under ``$ZSSEG_CACHE``, default ``~/.cache/zsseg``)."""
    from zsseg.classify.backends.conse import cache_dir

    key = hashlib.sha256(repr(tuple(key_parts)).encode()).hexdigest()[:20]
    return cache_dir() / "train" / f"regions-{key}.safetensors"


def load_or_encode(
    cache: Path | None, make: Callable[[], tuple[torch.Tensor, torch.Tensor]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features and labels from the safetensors file ``cache`` if present, else ``make()`` (saved there)."""
    from safetensors.torch import load_file, save_file

    if cache is not None and cache.is_file():
        try:
            data = load_file(str(cache))
            return data["features"], data["labels"]
        except Exception:  # an unreadable cache (SafetensorError, OSError, KeyError): recompute
            pass
    feats, labels = make()
    if cache is not None:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            with AtomicWriter() as writer:
                save_file({"features": feats.contiguous(), "labels": labels.contiguous()}, str(writer.reserve(cache)))
        except OSError:
            pass  # a read-only cache only costs recomputation
    return feats, labels

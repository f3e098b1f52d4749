"""Training regions: ground-truth segments (and optionally matched proposals) of the trained classes, as
masked crops encoded once by a frozen trunk and cached.

Regions of an image (``regions=``):

- ``"class"``: one mask per class present in the label map;
- ``"components"``: each connected component of each class;
- ``"both"`` (default): the class masks plus the components that differ from them (a class split in
  several pieces contributes its whole mask and each piece).

Regions smaller than ``min_area`` (a fraction of the image) are dropped. Pixels of classes that are not
trained (the unseen classes) never form a region and count as unlabelled. With a proposal generator, every
non-empty proposal is added with soft targets (:mod:`zsseg.train.bank`): its trained classes' pixel shares
(or its IoU ramp with ``match_iou`` / ``no_object_iou``), the rest "no object".
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
from zsseg.train.bank import GT, PROPOSAL, ImageRegions, RegionBank, soft_targets

REGION_MODES: tuple[str, ...] = ("class", "components", "both")


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


def trained_label(label: np.ndarray, trained_ids: Sequence[int], ignore_index: int) -> np.ndarray:
    """``label`` with every class that is not trained (e.g. the unseen ones) set to ``ignore_index``: their
    pixels are treated as unlabelled, never read as themselves."""
    return np.where(np.isin(label, list(trained_ids)), label, ignore_index)


def iter_regions(
    dataset: SegDataset,
    trained_ids: Sequence[int],
    options: RegionOptions = RegionOptions(),
    proposer: MaskProposer | None = None,
    limit: int | None = None,
    targets: str = "composition",
) -> Iterator[tuple[ImageRegions, np.ndarray]]:
    """Per image: ``((image uint8 (H, W, 3), masks bool (N, H, W), targets float32 (N, C + 1)), source int64
    (N,))``: its ground-truth segments (one-hot targets, source ``GT``) and, with a ``proposer``, its
    non-empty proposals (:func:`~zsseg.train.bank.soft_targets` in mode ``targets``, source ``PROPOSAL``).
    Columns follow ``trained_ids``, "no object" last."""
    samples = dataset.samples if limit is None else dataset.samples[:limit]
    c = len(trained_ids)
    column = {int(k): j for j, k in enumerate(trained_ids)}
    for sample in samples:
        label = trained_label(dataset.load_label(sample), trained_ids, dataset.info.ignore_index)
        masks, ids = gt_regions(label, trained_ids, options)
        onehot = np.zeros((len(ids), c + 1), np.float32)
        onehot[np.arange(len(ids)), [column[int(k)] for k in ids]] = 1.0
        source = np.full(len(ids), GT, np.int64)
        image = dataset.load_image(sample)
        if proposer is not None:
            pm = proposer(image).masks
            pm = pm[pm.reshape(len(pm), -1).any(axis=1)] if len(pm) else pm.reshape(0, *label.shape)
            pt = soft_targets(pm, label, trained_ids, targets, options.match_iou, options.no_object_iou)
            masks, onehot = np.concatenate([masks, pm]), np.concatenate([onehot, pt])
            source = np.concatenate([source, np.full(len(pm), PROPOSAL, np.int64)])
        yield (image, masks, onehot), source


def encode_regions(
    regions: Iterator[tuple[ImageRegions, np.ndarray]],
    encode: Callable[[torch.Tensor], torch.Tensor],
    crop: tuple[int, Sequence[float], Sequence[float]],
    total: int | None = None,
    flip: bool = True,
    batch_size: int = 32,
    dtype: torch.dtype = torch.float32,
    progress: bool = True,
) -> RegionBank:
    """Encode every region's masked crop (and its mirror image if ``flip``) with a frozen ``encode``.

    Args:
        regions: from :func:`iter_regions`.
        encode: float32 (B, 3, S, S) normalised crops -> features (B, ...); run without gradients.
        crop: (S, mean, std) of :func:`zsseg.classify.region.masked_crops`.
        total: number of images, for the progress bar.
        flip: also encode horizontally flipped crops (targets repeated).
        batch_size: crops per ``encode`` call.
        dtype: dtype the features are stored in (on the CPU).
        progress: show a progress bar (stderr).

    Returns:
        a :class:`~zsseg.train.bank.RegionBank` whose features are ``encode``'s (M, ...) output in ``dtype``.
    """
    size, mean, std = crop
    feats: list[torch.Tensor] = []
    parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    pending: list[torch.Tensor] = []

    def flush() -> None:
        if pending:
            with torch.no_grad():
                feats.append(encode(torch.cat(pending)).to("cpu", dtype))
            pending.clear()

    for index, ((image, masks, targets), source) in enumerate(
        tqdm(regions, total=total, desc="encoding regions", unit="img", disable=not progress, dynamic_ncols=True)
    ):
        if len(masks) == 0:
            continue
        crops = masked_crops(image, masks, size, mean, std)
        for part in (crops, crops.flip(-1)) if flip else (crops,):
            pending.append(part)
            parts.append((torch.from_numpy(targets), torch.full((len(masks),), index), torch.from_numpy(source)))
            if sum(len(p) for p in pending) >= batch_size:
                flush()
    flush()
    if not feats:
        raise ZsSegError("no training region found: check the dataset split, --seen-only and --min-area")
    t, i, s = (torch.cat([p[k] for p in parts]) for k in range(3))
    return RegionBank(torch.cat(feats), t, i.long(), s.long())


def features_cache_path(key_parts: Sequence[object]) -> Path:
    """Where features keyed by ``key_parts`` are cached (under ``$ZSSEG_CACHE``, default ``~/.cache/zsseg``)."""
    from zsseg.models.conse.backend import cache_dir

    key = hashlib.sha256(repr(tuple(key_parts)).encode()).hexdigest()[:20]
    return cache_dir() / "train" / f"regions-{key}.safetensors"


def load_or_encode(cache: Path | None, make: Callable[[], RegionBank]) -> RegionBank:
    """The :class:`~zsseg.train.bank.RegionBank` in the safetensors file ``cache`` if present, else ``make()``
    (saved there)."""
    from safetensors.torch import load_file, save_file

    if cache is not None and cache.is_file():
        try:
            return RegionBank(**load_file(str(cache)))
        except Exception:  # an unreadable or stale cache (SafetensorError, OSError, TypeError): recompute
            pass
    bank = make()
    if cache is not None:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            with AtomicWriter() as writer:
                save_file({k: v.contiguous() for k, v in bank.tensors().items()}, str(writer.reserve(cache)))
        except OSError:
            pass  # a read-only cache only costs recomputation
    return bank

"""Collecting the training regions of a dataset split: their features (pooled from a dense pass or encoded from
crops) and soft targets, cached on disk under a key of everything they depend on."""

from __future__ import annotations

from dataclasses import asdict

import torch

from zsseg.data.dataset import SegDataset
from zsseg.models.towers import ImageTower
from zsseg.proposals.base import MaskProposer
from zsseg.train.bank import RegionBank, pool_bank
from zsseg.train.config import TrainConfig
from zsseg.train.regions import encode_regions, features_cache_path, iter_regions, load_or_encode

CACHE_VERSION = 2


def collect_bank(
    cfg: TrainConfig,
    tower: ImageTower,
    dataset: SegDataset,
    ids: list[int],
    proposer: MaskProposer | None,
    n_images: int,
    split: str,
    cache: bool,
    progress: bool,
) -> RegionBank:
    """The training regions of the first ``n_images`` images, their features and soft targets, from the
    feature cache (``$ZSSEG_CACHE/train``) when it has them."""
    backend = tower.backend
    kind = "dense" if cfg.features == "dense" else tower.trunk_kind
    key: list[object] = [
        CACHE_VERSION, backend.name, weights_digest(tower), kind, cfg.dense_size, dataset.info.name, split,
        [s.id for s in dataset.samples[:n_images]], ids, asdict(cfg.regions), cfg.flip, cfg.targets,
        proposer_key(proposer), backend.input_size,
    ]  # fmt: skip
    cache_file = features_cache_path(key) if cache and kind != "pixels" else None
    regions = iter_regions(dataset, ids, cfg.regions, proposer, n_images, cfg.targets)
    if cfg.features == "dense":
        from zsseg.models import dense_encoder as build_dense_encoder

        encoder = build_dense_encoder(backend, cfg.dense_size)
        return load_or_encode(
            cache_file, lambda: pool_bank(regions, encoder.features, total=n_images, flip=cfg.flip, progress=progress)
        )
    store = torch.float32 if kind == "pool" else torch.float16
    crop = (backend.input_size, backend.mean, backend.std)
    encode = tower.pool if cfg.what == "prompts" else tower.trunk
    return load_or_encode(
        cache_file,
        lambda: encode_regions(regions, encode, crop, total=n_images, flip=cfg.flip, dtype=store, progress=progress),
    )


def proposer_key(proposer: MaskProposer | None) -> object:
    """The proposer's name and plain settings, for the feature cache's key (None: ground truth only)."""
    if proposer is None:
        return None
    plain = (bool, int, float, str, type(None))
    settings = sorted((k, v) for k, v in vars(proposer).items() if isinstance(v, plain) and not k.startswith("_"))
    return [getattr(proposer, "name", type(proposer).__name__), settings]


def weights_digest(tower: torch.nn.Module) -> str:
    """Cheap fingerprint of the frozen network (so a cache never serves another model's features)."""
    import hashlib

    h = hashlib.sha256()
    frozen = tower.backend  # type: ignore[attr-defined]
    modules = [m for m in (frozen, getattr(frozen, "model", None)) if isinstance(m, torch.nn.Module)]
    for m in modules:
        for p in list(m.parameters())[:6] + list(m.parameters())[-6:]:
            h.update(p.detach().float().flatten()[:512].cpu().numpy().tobytes())
    return h.hexdigest()[:16]

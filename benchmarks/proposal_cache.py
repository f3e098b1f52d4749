"""Proposals computed once per dataset image and kept on disk, shared by the benchmarks that score many
classifiers on the same regions (``region_modes.py``, ``train_voc.py``, ``train_dev.py``).

Layout: ``<cache>/<generator>@<precision>/<image id>.npz`` (masks, scores). The precision is the one the
proposer runs at (``fp32`` for generators without one): bf16 and fp32 SAM masks differ slightly, so caches made
with different precisions never mix.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def cache_folder(cache: Path, generator: str, precision: str) -> Path:
    """``cache/<generator>@<precision>``, created."""
    folder = cache / f"{generator}@{precision}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class DiskCachedProposer:
    """A proposer that reads each image's proposals from the cache, computing (and caching) missing ones.

    Images are recognised by their pixels' hash, so it can stand in for the real proposer anywhere (``train``,
    ``Segmenter``) for the images of ``datasets``.
    """

    def __init__(self, generator: str, cache: Path, datasets: Sequence[Any], **options: Any) -> None:
        from zsseg.proposals import build_proposer

        self.name = f"cached-{generator}"
        self.generator = generator
        self._base: Callable[[np.ndarray], Any] = build_proposer(generator, **options)
        self.precision = str(getattr(self._base, "precision", "fp32"))  # part of zsseg train's feature-cache key
        self.folder = cache_folder(cache, generator, self.precision)
        self._ids = {hashlib.sha1(ds.load_image(s).tobytes()).hexdigest(): s.id for ds in datasets for s in ds.samples}

    def __call__(self, image: np.ndarray) -> Any:
        return self.get(self._ids[hashlib.sha1(image.tobytes()).hexdigest()], lambda: image)

    def get(self, sample_id: str, image: Callable[[], np.ndarray]) -> Any:
        """The proposals of ``sample_id``; ``image()`` is called only when they are not cached yet."""
        from zsseg.proposals import Proposals

        path = self.folder / f"{sample_id}.npz"
        if not path.is_file():
            props = self._base(image())
            tmp = path.with_name(path.stem + ".tmp.npz")
            np.savez_compressed(tmp, masks=props.masks, scores=props.scores)
            tmp.replace(path)  # an interrupted run leaves no truncated cache entry
        with np.load(path) as z:
            return Proposals(z["masks"], z["scores"])


def cached_proposals(generator: str, dataset: Any, samples: list[Any], cache: Path) -> dict[str, Any]:
    """Proposals of every sample by id, from the cache or computed (and cached) now."""
    proposer = DiskCachedProposer(generator, cache, [])  # images are passed by id here, not recognised by hash
    return {s.id: proposer.get(s.id, lambda s=s: dataset.load_image(s)) for s in samples}

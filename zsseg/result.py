"""The result of segmenting one image."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from zsseg.instances import (
    DEFAULT_MIN_AREA,
    DEFAULT_NMS_THRESHOLD,
    DEFAULT_PART_THRESHOLD,
    Instances,
    extract_instances,
)
from zsseg.io import AtomicWriter
from zsseg.proposals.base import Proposals
from zsseg.viz import colorize, label_image, overlay


def ignore_index_for(num_classes: int) -> int:
    """Value of unlabelled pixels: 255 for vocabularies of up to 255 classes (8-bit PNG), else 65535."""
    return 255 if num_classes <= 255 else 65535


@dataclass(frozen=True)
class Segmentation:
    """A label map for one image, with the proposals and class probabilities that produced it.

    Attributes:
        label_map: int32 (H, W): index of the class in ``classes`` (0-based), or ``ignore_index`` where
            unlabelled (only when an unlabelled threshold was asked for).
        classes: the vocabulary, in the order the user gave it.
        proposals: the N proposals (masks bool (N, h, w), scores float32 (N,)), at the working resolution
            (h, w) <= (H, W) of :class:`~zsseg.pipeline.Segmenter` (equal unless the image was huge).
        probs: float32 (N, K): class probabilities of each proposal.
        confidence: float32 (H, W): the winning class's share of the probability mass at each pixel.
        model: the vision-language backend used.
        proposer: the proposal generator used.
        timings: seconds per stage.
        settings: how the image was processed (region-feature mode, precisions, SAM's input side), in the JSON.

    Indexing with a boolean (N,) or integer array selects proposals (and their probabilities); the label
    map is not recomputed.
    """

    label_map: np.ndarray
    classes: tuple[str, ...]
    proposals: Proposals
    probs: np.ndarray
    confidence: np.ndarray
    model: str = ""
    proposer: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    settings: dict[str, str | int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ph, pw = self.proposals.image_size
        h, w = self.label_map.shape
        n, k = len(self.proposals), len(self.classes)
        if ph > h or pw > w:
            raise ValueError(f"proposals of size ({ph}, {pw}) are larger than the label map ({h}, {w})")
        if self.probs.shape != (n, k):
            raise ValueError(f"probs must have shape ({n}, {k}) (proposals, classes), got {self.probs.shape}")
        if self.confidence.shape != (h, w):
            raise ValueError(f"confidence must have shape ({h}, {w}), got {self.confidence.shape}")

    @property
    def ignore_index(self) -> int:
        return ignore_index_for(len(self.classes))

    def __getitem__(self, index: np.ndarray | slice | list[int]) -> Segmentation:
        return replace(self, proposals=self.proposals[index], probs=self.probs[index])

    def class_shares(self) -> dict[str, float]:
        """Fraction of the image's pixels given to each class (every class listed, 0 if absent)."""
        counts = np.bincount(self.label_map[self.label_map != self.ignore_index].ravel(), minlength=len(self.classes))
        total = self.label_map.size
        return {c: float(counts[i]) / total for i, c in enumerate(self.classes)}

    def instances(
        self,
        stuff: Sequence[str] | str | None = None,
        *,
        nms_threshold: float = DEFAULT_NMS_THRESHOLD,
        part_threshold: float | None = DEFAULT_PART_THRESHOLD,
        min_area: int = DEFAULT_MIN_AREA,
    ) -> Instances:
        """The image's segments: one per object of a thing class (what its proposal won in the label map, so
        segments are disjoint), one per stuff class; :mod:`zsseg.instances.extract` states the rules.

        Args:
            stuff: the stuff classes (names in ``classes``; ``[]``: none) or None for the built-in list
                (:data:`zsseg.instances.STUFF_NAMES`).
            nms_threshold: same-class proposals with IoU at least this merge into one instance.
            part_threshold: a same-class proposal lying this much inside a larger one merges into it; None: off.
            min_area: segments of fewer pixels are dropped.

        Returns:
            :class:`~zsseg.instances.Instances` at the label map's size. The label map itself is not changed.
        """
        return extract_instances(
            self.label_map,
            self.proposals.masks,
            self.probs,
            self.classes,
            confidence=self.confidence,
            stuff=stuff,
            nms_threshold=nms_threshold,
            part_threshold=part_threshold,
            min_area=min_area,
        )

    def colorize(self) -> np.ndarray:
        """uint8 (H, W, 3): each class in its palette colour, unlabelled pixels black."""
        return colorize(self.label_map, len(self.classes), self.ignore_index)

    def overlay(self, image: np.ndarray, alpha: float = 0.5) -> np.ndarray:
        """uint8 (H, W + legend, 3): the photo with coloured regions and a legend of the classes present."""
        return overlay(image, self.label_map, self.classes, self.ignore_index, alpha=alpha)

    def label_image(self) -> Image.Image:
        """The label map as a PIL image: 8-bit with a palette for up to 255 classes, else 16-bit grey."""
        return label_image(self.label_map, len(self.classes))

    def summary(self) -> dict[str, Any]:
        """JSON-ready description: vocabulary, model, proposer, per-class pixel share, per-stage timings."""
        h, w = self.label_map.shape
        return {
            "classes": list(self.classes),
            "model": self.model,
            "proposals": self.proposer,
            **self.settings,
            "num_proposals": len(self.proposals),
            "image_size": [h, w],
            "working_size": list(self.proposals.image_size),
            "ignore_index": self.ignore_index,
            "class_pixel_share": self.class_shares(),
            "unlabelled_pixel_share": float((self.label_map == self.ignore_index).mean()),
            "timings_s": {k: round(v, 4) for k, v in self.timings.items()},
        }

    def save(
        self, out_dir: str | Path, stem: str, image: np.ndarray, extra: dict[str, Any] | None = None
    ) -> list[Path]:
        """Write ``<stem>.png`` (label map), ``<stem>_overlay.png`` and ``<stem>.json`` into ``out_dir``.

        All three appear together or not at all.
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        summary = self.summary() | (extra or {})
        with AtomicWriter() as writer:
            writer.write_image(out / f"{stem}.png", self.label_image())
            writer.write_image(out / f"{stem}_overlay.png", Image.fromarray(self.overlay(image)))
            writer.write_text(out / f"{stem}.json", json.dumps(summary, indent=2) + "\n")
        return [out / f"{stem}.png", out / f"{stem}_overlay.png", out / f"{stem}.json"]

"""The result of segmenting one image."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from zsseg.errors import ZsSegError
from zsseg.instances import (
    DEFAULT_MIN_AREA,
    DEFAULT_NMS_THRESHOLD,
    DEFAULT_PART_THRESHOLD,
    Instances,
    extract_instances,
)
from zsseg.instances.interop import to_hf, to_supervision
from zsseg.instances.panoptic import categories, panoptic_png, segments_info
from zsseg.io import AtomicWriter
from zsseg.proposals.base import Proposals
from zsseg.viz import colorize, label_image, overlay


def ignore_index_for(num_classes: int) -> int:
    """Value of unlabelled pixels: 255 for vocabularies of up to 255 classes (8-bit PNG), else 65535."""
    return 255 if num_classes <= 255 else 65535


#: the files of each output kind of :meth:`Segmentation.save` (suffixes after the stem)
OUTPUTS: dict[str, tuple[str, ...]] = {
    "semantic": (".png",),
    "overlay": ("_overlay.png",),
    "json": (".json",),
    "instances": (".instances.json",),
    "panoptic": (".panoptic.png", ".panoptic.json"),
}
DEFAULT_SAVE = ("semantic", "overlay", "json")


def check_save(save: Sequence[str] | str) -> tuple[str, ...]:
    """The output kinds of ``save`` (a list or ``"semantic,instances"``), in :data:`OUTPUTS` order.

    Raises:
        ZsSegError: an unknown kind or none.
    """
    names = [n.strip() for n in (save.split(",") if isinstance(save, str) else save) if n.strip()]
    unknown = [n for n in names if n not in OUTPUTS]
    if unknown or not names:
        raise ZsSegError(
            f"--save {','.join(names) or '(empty)'}: unknown output {', '.join(unknown) or '(none named)'}: "
            f"use a comma-separated list of {', '.join(OUTPUTS)}"
        )
    return tuple(k for k in OUTPUTS if k in names)


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

    def overlay(self, image: np.ndarray, alpha: float = 0.5, instances: Instances | None = None) -> np.ndarray:
        """uint8 (H, W + legend, 3): the photo with coloured regions and a legend of the classes present; with
        ``instances``, every segment is outlined, each object is tagged with its class and score, and the legend
        counts objects."""
        if instances is None:
            return overlay(image, self.label_map, self.classes, self.ignore_index, alpha=alpha)
        tags = [
            (f"{instances.labels[i]} {instances.scores[i]:.2f}", int(box[0]), int(box[1]))
            for i, box in enumerate(instances.boxes)
            if instances.is_thing[i]
        ]
        return overlay(
            image, self.label_map, self.classes, self.ignore_index, alpha=alpha, segments=instances.id_map,
            tags=tags, object_counts=instances.counts(),
        )  # fmt: skip

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
        self,
        out_dir: str | Path,
        stem: str,
        image: np.ndarray,
        extra: dict[str, Any] | None = None,
        *,
        save: Sequence[str] = DEFAULT_SAVE,
        instances: Instances | None = None,
    ) -> list[Path]:
        """Write the outputs ``save`` names into ``out_dir``, all together or none (:data:`OUTPUTS` lists the files).

        Args:
            out_dir: the folder (created if needed).
            stem: the files' common name.
            image: uint8 (H, W, 3), the photo under the overlay.
            extra: more keys for ``<stem>.json``.
            save: which outputs: ``semantic``, ``overlay``, ``json``, ``instances``, ``panoptic``.
            instances: this image's instances (:meth:`instances` with the caller's knobs); None: computed with
                the defaults when ``instances`` or ``panoptic`` is asked. When given, the overlay outlines them
                and ``<stem>.json`` gains ``instance_counts`` and the stuff split.
        """
        kinds = check_save(save)
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        if instances is None and {"instances", "panoptic"} & set(kinds):
            instances = self.instances()
        summary = self.summary() | (extra or {})
        if instances is not None:
            summary |= {
                "instance_counts": instances.counts(),
                "stuff": list(instances.stuff_classes),
                "stuff_source": instances.stuff_source,
            }
        paths = [out / f"{stem}{suffix}" for kind in kinds for suffix in OUTPUTS[kind]]
        with AtomicWriter() as writer:
            if "semantic" in kinds:
                writer.write_image(out / f"{stem}.png", self.label_image())
            if "overlay" in kinds:
                writer.write_image(
                    out / f"{stem}_overlay.png", Image.fromarray(self.overlay(image, instances=instances))
                )
            if "json" in kinds:
                writer.write_text(out / f"{stem}.json", json.dumps(summary, indent=2) + "\n")
            if instances is not None and "instances" in kinds:
                doc = instances.to_json(image=str(summary.get("image", stem)))
                writer.write_text(out / f"{stem}.instances.json", json.dumps(doc) + "\n")
            if instances is not None and "panoptic" in kinds:
                writer.write_image(out / f"{stem}.panoptic.png", Image.fromarray(panoptic_png(instances)))
                info = {
                    "file_name": f"{stem}.panoptic.png",
                    "segments_info": segments_info(instances),
                    "categories": categories(instances),
                }
                writer.write_text(out / f"{stem}.panoptic.json", json.dumps(info, indent=2) + "\n")
        return paths

    def to_supervision(self, instances: Instances | None = None) -> Any:
        """``supervision.Detections`` of the instances (:meth:`instances` with defaults unless given); needs
        ``pip install 'zsseg[supervision]'``."""
        return to_supervision(self.instances() if instances is None else instances)

    def to_hf(self, instances: Instances | None = None) -> list[dict[str, Any]]:
        """The Hugging Face ``image-segmentation`` pipeline's output: one ``{"score", "label", "mask"}`` per
        segment, ``mask`` a mode-L PIL image (255 inside)."""
        return to_hf(self.instances() if instances is None else instances)

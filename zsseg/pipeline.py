"""The two-stage pipeline: proposals -> region classification -> assembly -> :class:`Segmentation`."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from scipy import ndimage

from zsseg.assemble import assemble, upscale_nearest
from zsseg.classify import Classifier, build_classifier, model_for
from zsseg.io import as_image_array, parse_classes
from zsseg.models import resolve_model, split_model
from zsseg.plan import Plan, make_plan
from zsseg.prompts import Templates
from zsseg.proposals import build_proposer
from zsseg.proposals.base import MaskProposer, Proposals
from zsseg.result import Segmentation, ignore_index_for
from zsseg.validate import check_values, validate_load_args

BACKGROUND_NAMES = ("background",)
DEFAULT_MAX_WORKING_PIXELS = 2048 * 2048


def leftover_regions(covered: np.ndarray, min_fraction: float) -> np.ndarray:
    """Connected regions that no proposal covers, large enough to classify on their own.

    Args:
        covered: bool (H, W).
        min_fraction: smallest region kept, as a fraction of the image's pixels.

    Returns:
        bool (M, H, W) masks, largest first.
    """
    labels, n = ndimage.label(~covered)
    if n == 0:
        return np.zeros((0, *covered.shape), dtype=bool)
    areas = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    keep = np.flatnonzero(areas >= max(1.0, min_fraction * covered.size))
    keep = keep[np.argsort(-areas[keep])]
    return labels[None] == (keep + 1)[:, None, None]


def working_image(image: np.ndarray, max_pixels: int | None) -> np.ndarray:
    """``image`` (uint8 (H, W, 3)) shrunk, aspect kept, to at most ``max_pixels`` pixels (unchanged if within)."""
    h, w = image.shape[:2]
    if max_pixels is None or h * w <= max_pixels:
        return image
    scale = (max_pixels / (h * w)) ** 0.5
    size = (max(1, int(w * scale)), max(1, int(h * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR, reducing_gap=3.0))


class Segmenter:
    """Open-vocabulary semantic segmentation of one image at a time.

    Args:
        proposer: class-agnostic mask generator.
        classifier: region classifier (vision-language backend + prompt templates).
        leftover_min_fraction: uncovered connected regions at least this fraction of the image are classified
            as extra proposals; smaller gaps take the label of the nearest covered pixel.
        unlabelled_threshold: if set, pixels whose confidence is below it (and uncovered pixels) are left
            unlabelled (value 255, or 65535 beyond 255 classes).
        background_threshold: for a vocabulary with a "background" entry: pixels whose confidence in their best
            other class is below this are labelled background. The entry is not prompted to the model.
        max_working_pixels: images with more pixels are shrunk (aspect kept) to this many for proposals,
            region features and assembly; the label map is returned at the input's size (nearest-neighbour).
            Bounds memory: proposals are bool (N, working H, working W). None: always the full resolution.
            The default (2048 x 2048) leaves the benchmarks' images (Cityscapes: 2048 x 1024) unchanged.
        plan: what :func:`load` resolved (None for a segmenter built from parts).

    The thresholds are defaults: :meth:`segment` takes its own per call, as it takes the prompt templates.
    """

    def __init__(
        self,
        proposer: MaskProposer,
        classifier: Classifier,
        leftover_min_fraction: float = 0.01,
        unlabelled_threshold: float | None = None,
        background_threshold: float = 0.5,
        max_working_pixels: int | None = DEFAULT_MAX_WORKING_PIXELS,
        plan: Plan | None = None,
    ) -> None:
        check_values(
            {
                "leftover_min_fraction": leftover_min_fraction,
                "unlabelled_threshold": unlabelled_threshold,
                "background_threshold": background_threshold,
                "max_working_pixels": max_working_pixels,
            },
            "load",
        )
        self.proposer = proposer
        self.classifier = classifier
        self.leftover_min_fraction = leftover_min_fraction
        self.unlabelled_threshold = unlabelled_threshold
        self.background_threshold = background_threshold
        self.max_working_pixels = max_working_pixels
        self.plan = plan

    @property
    def model_name(self) -> str:
        return self.classifier.backend.name

    @property
    def settings(self) -> dict[str, str | int]:
        """How the image was processed, for the JSON output, as the components report it: the classifier's
        region-feature mode and precision, and a generator's own ``settings`` where it has them (SAM's precision
        and input side)."""
        return {**self.classifier.settings, **getattr(self.proposer, "settings", {})}

    def segment(
        self,
        image: np.ndarray | Image.Image | str | Path,
        classes: Sequence[str] | str,
        *,
        templates: Templates | None = None,
        unlabelled_threshold: float | None = None,
        background_threshold: float | None = None,
    ) -> Segmentation:
        """Segment ``image`` into ``classes``.

        Args:
            image: path, PIL image, or uint8 array (H, W, 3) RGB.
            classes: class names, as a list or a comma-separated string.
            templates: this call's prompt templates (``single``, ``vild``, ``imagenet`` or the templates);
                None: the classifier's. Refused by a classifier with learned prompts.
            unlabelled_threshold: this call's (see the class); None: the segmenter's.
            background_threshold: this call's (see the class); None: the segmenter's.

        Returns:
            :class:`Segmentation` whose label map (and confidence) have the input's size and index ``classes``;
            its proposals are at the working resolution (see ``max_working_pixels``).

        Raises:
            ZsSegError: an empty or duplicated vocabulary, unknown templates, a threshold out of [0, 1].
        """
        check_values(
            {"unlabelled_threshold": unlabelled_threshold, "background_threshold": background_threshold}, "load"
        )
        unlabelled = self.unlabelled_threshold if unlabelled_threshold is None else unlabelled_threshold
        background = self.background_threshold if background_threshold is None else background_threshold
        vocab = tuple(parse_classes(classes))
        self.classifier.resolve_templates(templates)  # refused before any work
        full = as_image_array(image)
        img = working_image(full, self.max_working_pixels)
        h, w = img.shape[:2]
        timings: dict[str, float] = {}

        t0 = time.perf_counter()
        proposals = self.proposer(img)
        if proposals.image_size != (h, w):
            raise ValueError(f"proposer returned masks of size {proposals.image_size}, expected ({h}, {w})")
        proposals = proposals[proposals.areas() > 0]
        leftovers = leftover_regions(proposals.covered(), self.leftover_min_fraction)
        if len(leftovers):
            proposals = Proposals.concat([proposals, Proposals(leftovers, np.zeros(len(leftovers), np.float32))])
        timings["proposals"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        bg = [i for i, c in enumerate(vocab) if c.strip().lower() in BACKGROUND_NAMES]
        background_index = bg[0] if bg else None
        prompted = [c for i, c in enumerate(vocab) if i != background_index]
        probs = np.zeros((len(proposals), len(vocab)), dtype=np.float32)
        if prompted and len(proposals):
            cols = [i for i in range(len(vocab)) if i != background_index]
            probs[:, cols] = self.classifier.classify(img, proposals.masks, prompted, templates)
        timings["classify"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        if len(proposals) == 0:  # only possible with a leftover threshold above 1
            proposals = Proposals(np.ones((1, h, w), bool), np.zeros(1, np.float32))
            probs = np.full((1, len(vocab)), 1.0 / len(vocab), np.float32)
        result = assemble(
            proposals.masks,
            probs,
            unlabelled_threshold=unlabelled,
            background_index=background_index,
            background_threshold=background,
            ignore_index=ignore_index_for(len(vocab)),
        )
        timings["assemble"] = time.perf_counter() - t0
        height, width = full.shape[:2]
        return Segmentation(
            label_map=upscale_nearest(result.label_map, height, width),
            classes=vocab,
            proposals=proposals,
            probs=probs,
            confidence=upscale_nearest(result.confidence, height, width),
            model=self.model_name,
            proposer=getattr(self.proposer, "name", type(self.proposer).__name__),
            timings=timings,
            settings=self.settings,
        )


def load(
    model: str = "auto",
    proposals: str = "auto",
    *,
    device: str | torch.device = "auto",
    regions: str = "auto",
    precision: str = "auto",
    dense_size: int | None = None,
    templates: str | Sequence[str] = "vild",
    batch_size: int = 32,
    unlabelled_threshold: float | None = None,
    background_threshold: float = 0.5,
    proposal_options: dict[str, Any] | None = None,
    classifier_checkpoint: str | Path | None = None,
    prompts_checkpoint: str | Path | None = None,
    ensemble_lambda: float | None = None,
    max_working_pixels: int | None = DEFAULT_MAX_WORKING_PIXELS,
) -> Segmenter:
    """Build a :class:`Segmenter`, like ``clip.load``.

    Args:
        model: vision-language backend (``auto``, ``clip:ARCH/PRETRAINED``, ``conse:efficientnet-lite0``, ...).
        proposals: mask proposal generator (``auto``, ``mobilesam``, ``selective-search``, ...).
        device: ``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        regions: region features, ``crops`` (the paper's strategy 1: one masked crop per proposal), ``dense``
            (one encoder pass per image, features pooled per proposal), ``hybrid`` (dense, plus crops for the
            most ambiguous quarter) or ``auto`` (dense for ConSE, hybrid for CLIP; crops without a dense pass); see
            :mod:`zsseg.classify.region`.
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16`` for the vision-language encoders and SAM-family
            proposals (:mod:`zsseg.precision`; ``auto``: fp16 on CUDA; on CPUs with AMX or AVX512-BF16, bf16
            for CLIP, fp32 for ConSE, and MobileSAM ``mixed`` (its encoder's first three stages fp32), as all-bf16
            measurably moved their accuracy; else fp32).
        dense_size: long side of the image in the dense pass (None: the backend's default, 448).
        templates: prompt template set (``single``, ``vild``, ``imagenet``) or explicit templates.
        batch_size: crops per image-encoder forward pass.
        unlabelled_threshold: see :class:`Segmenter`.
        background_threshold: see :class:`Segmenter`.
        proposal_options: keyword arguments of the proposal generator's constructor. Unless they say otherwise,
            dense and hybrid regions run MobileSAM at 768 px, not its native 1024 (1.7x faster end to end on a
            CPU for -1.0 VOC-20 mIoU; :func:`zsseg.proposals.fast_path_options`).
        classifier_checkpoint: a strategy-2 checkpoint (``zsseg train --what strategy2``), ensembled with the
            frozen classifier; its backend is used when ``model`` is ``auto``.
        prompts_checkpoint: learned prompts (``zsseg train --what prompts``) replacing ``templates``.
        ensemble_lambda: the ensemble's exponent; None keeps the checkpoint's.
        max_working_pixels: see :class:`Segmenter`.

    Raises:
        ZsSegError: any argument out of range (same message as the command line's), an unavailable device.

    Example:
        >>> seg = zsseg.load(model="conse:efficientnet-lite0", proposals="selective-search")
        >>> result = seg.segment("photo.jpg", "cat, sofa, potted plant")
        >>> result.label_map.shape  # (H, W)
    """
    device = validate_load_args(**locals())["device"]  # first: locals() are exactly the arguments
    family, spec = split_model(resolve_model(model_for(model, classifier_checkpoint, prompts_checkpoint)))
    torch_device = torch.device(device)
    backend = family.load(spec, torch_device, family.dtype(precision, torch_device))
    plan = make_plan(
        backend,
        device=torch_device,
        precision=precision,
        regions=regions,
        dense_size=dense_size,
        proposals=proposals,
        proposal_options=proposal_options,
    )
    classifier = build_classifier(
        backend,
        templates=templates,
        batch_size=batch_size,
        classifier=classifier_checkpoint,
        prompts=prompts_checkpoint,
        lambda_=ensemble_lambda,
        regions=plan.regions,
        dense_size=plan.dense_size,
    )
    return Segmenter(
        build_proposer(plan.proposals, device=torch_device, **plan.options()),
        classifier,
        unlabelled_threshold=unlabelled_threshold,
        background_threshold=background_threshold,
        max_working_pixels=max_working_pixels,
        plan=plan,
    )

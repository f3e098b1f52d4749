"""Region classification, strategy 1 of the paper: classify each proposal with a frozen VLM.

Region features come in three modes (``regions``):

* ``crops`` (the paper's reference): for each mask, pixels outside it are set to the encoder's mean colour, the
  image is cropped to the mask's bounding box, resized to the encoder's input size and normalised; crops are
  encoded in batches.
* ``dense``: the encoder runs once on the whole image and each proposal's feature is pooled from its feature
  map (:mod:`zsseg.models.pooling`); the cost no longer grows with the number of proposals.
* ``hybrid``: dense for every proposal, then the ``hybrid_fraction`` whose dense decision is most ambiguous
  (smallest margin between their two best classes) are also cropped, and their dense and crop embeddings fused
  (the normalised sum).

Region embeddings are compared by cosine with the class text embeddings, scaled by the model's logit scale and
soft-maxed over the vocabulary.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from zsseg.errors import ZsSegError
from zsseg.models import default_regions, dense_encoder
from zsseg.models.base import VisionLanguageBackend
from zsseg.prompts import Templates, ensemble_class_embeddings, get_templates

REGIONS = ("crops", "dense", "hybrid", "auto")
"""Region-feature modes; ``auto`` picks per backend (:func:`resolve_regions`)."""


def resolve_regions(regions: str, backend: VisionLanguageBackend) -> str:
    """The mode ``regions`` stands for with ``backend``: ``auto`` is its family's choice (``dense`` for ConSE,
    ``hybrid`` for CLIP towers with a dense pass, :meth:`~zsseg.models.family.ModelFamily.default_regions`), and
    ``crops`` for a backend without one."""
    if regions not in REGIONS:
        raise ZsSegError(f"unknown regions mode {regions!r}: use one of {', '.join(REGIONS)}")
    return default_regions(backend) if regions == "auto" else regions


def mask_boxes(masks: np.ndarray) -> np.ndarray:
    """Tight boxes of non-empty masks: bool (N, H, W) -> int64 (N, 4) as x0, y0, x1, y1 (exclusive)."""
    rows = np.asarray(np.any(masks, axis=2))
    cols = np.asarray(np.any(masks, axis=1))
    if not (rows.any(axis=1).all()):
        raise ValueError("every mask must have at least one pixel")
    y0 = rows.argmax(axis=1)
    y1 = rows.shape[1] - rows[:, ::-1].argmax(axis=1)
    x0 = cols.argmax(axis=1)
    x1 = cols.shape[1] - cols[:, ::-1].argmax(axis=1)
    return np.stack([x0, y0, x1, y1], axis=1).astype(np.int64)


def masked_crops(
    image: np.ndarray,
    masks: np.ndarray,
    size: int,
    mean: Sequence[float],
    std: Sequence[float],
) -> torch.Tensor:
    """Background-erased, box-cropped, resized and normalised crops of each mask.

    Args:
        image: uint8 (H, W, 3) RGB.
        masks: bool (N, H, W), each non-empty.
        size: output side S.
        mean, std: RGB normalisation in [0, 1] units; erased pixels get ``mean`` (0 after normalisation).

    Returns:
        float32 (N, 3, S, S).
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    if masks.ndim != 3 or masks.shape[1:] != image.shape[:2]:
        raise ValueError(f"masks must be (N, {image.shape[0]}, {image.shape[1]}), got {masks.shape}")
    mean_t = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    img = (torch.tensor(image).permute(2, 0, 1).float() / 255.0 - mean_t) / std_t  # normalised (3, H, W)
    out = torch.empty((len(masks), 3, size, size), dtype=torch.float32)
    for i, (x0, y0, x1, y1) in enumerate(mask_boxes(masks)):
        m = torch.from_numpy(masks[i, y0:y1, x0:x1])
        crop = img[:, y0:y1, x0:x1] * m  # erased pixels -> 0 == the mean colour after normalisation
        out[i] = F.interpolate(crop[None], size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0]
    return out


class RegionClassifier:
    """Classifies mask proposals against a vocabulary with a :class:`VisionLanguageBackend`.

    Args:
        backend: the vision-language model.
        templates: name of a template set (``single``, ``vild``, ``imagenet``) or explicit templates; the
            default of every call, which may name others (:meth:`classify`).
        batch_size: crops per forward pass of the image encoder.
        logit_scale: temperature multiplier of cosine similarities; None uses the backend's.
        cache_size: vocabularies whose text embeddings are kept in memory.
        regions: region-feature mode, ``crops``, ``dense``, ``hybrid`` or ``auto`` (see the module docstring).
        dense_size: long side of the image in the dense pass; None: the backend's default (448).
        hybrid_fraction: in ``hybrid`` mode, the fraction of proposals (the most ambiguous) also cropped, in [0, 1].
    """

    def __init__(
        self,
        backend: VisionLanguageBackend,
        templates: Templates = "vild",
        batch_size: int = 32,
        logit_scale: float | None = None,
        cache_size: int = 8,
        regions: str = "crops",
        dense_size: int | None = None,
        hybrid_fraction: float = 0.25,
    ) -> None:
        if not 0.0 <= hybrid_fraction <= 1.0:
            raise ValueError(f"hybrid_fraction must be in [0, 1], got {hybrid_fraction}")
        self.backend = backend
        self.regions = resolve_regions(regions, backend)
        self.dense = dense_encoder(backend, dense_size) if self.regions != "crops" else None
        self.hybrid_fraction = hybrid_fraction
        self.templates = get_templates(templates)
        self.template_name = templates if isinstance(templates, str) else "custom"
        self.batch_size = batch_size
        self.logit_scale = backend.logit_scale if logit_scale is None else logit_scale
        self._cache: OrderedDict[tuple[tuple[str, ...], tuple[str, ...]], torch.Tensor] = OrderedDict()
        self._cache_size = cache_size

    @property
    def settings(self) -> dict[str, str]:
        """How regions are classified, for the JSON output: ``regions`` and, for a backend with a dtype, its
        ``precision``."""
        from zsseg.precision import dtype_name

        out = {"regions": self.regions}
        dtype = getattr(self.backend, "dtype", None)
        if isinstance(dtype, torch.dtype):
            out["precision"] = dtype_name(dtype)
        return out

    def resolve_templates(self, templates: Templates | None) -> tuple[str, ...]:
        """The templates a call uses: ``templates`` (a set's name or the templates), or None for the default.

        Raises:
            ZsSegError: an unknown set's name, or (subclasses) a classifier whose prompts cannot change.
        """
        return self.templates if templates is None else get_templates(templates)

    def text_embeddings(self, classes: Sequence[str], templates: Templates | None = None) -> torch.Tensor:
        """float32 (K, D) template-ensembled embeddings of ``classes``, cached per vocabulary and template set."""
        key = (self.resolve_templates(templates), tuple(classes))
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        emb = self.compute_text_embeddings(key[1], key[0])
        self._cache[key] = emb
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return emb

    def compute_text_embeddings(self, classes: tuple[str, ...], templates: tuple[str, ...]) -> torch.Tensor:
        """float32 (K, D) class embeddings, uncached: the template ensemble (subclasses change only this)."""
        with torch.inference_mode():
            return ensemble_class_embeddings(self.backend.encode_texts, classes, templates)

    def encode_crops(
        self, image: np.ndarray, masks: np.ndarray, encode: Callable[[torch.Tensor], torch.Tensor]
    ) -> list[torch.Tensor]:
        """``encode`` applied to the masks' crops (:func:`masked_crops`), ``batch_size`` crops at a time."""
        b = self.backend
        return [
            encode(masked_crops(image, masks[start : start + self.batch_size], b.input_size, b.mean, b.std))
            for start in range(0, len(masks), self.batch_size)
        ]

    def region_embeddings(self, image: np.ndarray, masks: np.ndarray) -> torch.Tensor:
        """float32 (N, D) L2-normalised embeddings of each mask: its crop's (``crops`` mode) or pooled from one
        dense pass (``dense`` and ``hybrid`` modes)."""
        if self.dense is not None and len(masks):
            return self.dense(image, masks)
        return self.crop_embeddings(image, masks)

    def crop_embeddings(self, image: np.ndarray, masks: np.ndarray) -> torch.Tensor:
        """float32 (N, D) L2-normalised embeddings of each mask's crop, encoded in batches."""
        b = self.backend
        out = self.encode_crops(image, masks, lambda crops: b.encode_images(crops.to(b.device)).float().cpu())
        if not out:
            return torch.zeros((0, self.text_embeddings(["x"]).shape[1]))
        return torch.cat(out)

    def classify(
        self, image: np.ndarray, masks: np.ndarray, classes: Sequence[str], templates: Templates | None = None
    ) -> np.ndarray:
        """Class probabilities of each proposal.

        Args:
            image: uint8 (H, W, 3) RGB.
            masks: bool (N, H, W), each non-empty.
            classes: K class names.
            templates: this call's prompt templates (a set's name or the templates); None: the classifier's.

        Returns:
            float32 (N, K), rows summing to 1: ``softmax(logit_scale * cos(region, class))``.
        """
        text = self.text_embeddings(classes, templates).cpu()
        regions = self.region_embeddings(image, masks)
        probs = (self.logit_scale * regions @ text.T).softmax(dim=-1)
        if self.regions == "hybrid" and len(masks):
            redo = ambiguous(probs, self.hybrid_fraction)
            if len(redo):
                fused = F.normalize(regions[redo] + self.crop_embeddings(image, masks[redo.numpy()]), dim=-1)
                probs[redo] = (self.logit_scale * fused @ text.T).softmax(dim=-1)
        return probs.numpy().astype(np.float32)


def ambiguous(probs: torch.Tensor, fraction: float) -> torch.Tensor:
    """Indices (int64, sorted) of the ``ceil(fraction * N)`` rows of ``probs`` (N, K) with the smallest margin
    between their two largest values (with one class, none are ambiguous)."""
    n, k = probs.shape
    count = min(n, int(np.ceil(fraction * n)))
    if count == 0 or k < 2:
        return torch.zeros(0, dtype=torch.int64)
    top = probs.topk(2, dim=-1).values
    return torch.sort(torch.argsort(top[:, 0] - top[:, 1])[:count]).values

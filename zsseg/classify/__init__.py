"""Region classification: vision-language backends, prompt templates, and the region classifier."""

from __future__ import annotations

import torch

from zsseg.classify.backends.base import VisionLanguageBackend
from zsseg.classify.region import RegionClassifier
from zsseg.errors import ZsSegError

MODEL_HELP = (
    "auto (CLIP if its weights are cached, else the offline ConSE backend), "
    "clip:ARCH/PRETRAINED (e.g. clip:ViT-B-16/openai, any open_clip name), clip:ARCH/PATH, clip:hf-hub:ORG/REPO, "
    "clip:local-dir:FOLDER, "
    "conse:efficientnet-lite0, conse:efficientnet-lite2"
)


def load_backend(
    model: str = "auto", device: str | torch.device = "cpu", precision: str = "fp32"
) -> VisionLanguageBackend:
    """Build the vision-language backend named by ``model`` (see :data:`MODEL_HELP`) in ``precision``
    (:mod:`zsseg.precision`).

    ``auto`` picks CLIP ``ViT-B-16/openai`` when its weights are already in the local cache and the
    offline ConSE backend otherwise; the returned backend's ``name`` says which.
    """
    from zsseg.classify.backends.clip_load import DEFAULT_CLIP, cached_weights, load_clip
    from zsseg.classify.backends.conse import load_conse

    kind, _, spec = model.partition(":")
    if model == "auto":
        if cached_weights(DEFAULT_CLIP) is not None:
            return load_clip(DEFAULT_CLIP, device=device, precision=precision)
        return load_conse("efficientnet-lite0", device=device, precision=precision)
    if kind == "clip" and spec:
        return load_clip(spec, device=device, precision=precision)
    if kind == "conse" and spec:
        return load_conse(spec, device=device, precision=precision)
    raise ZsSegError(f"unknown model {model!r}: use {MODEL_HELP}")


__all__ = ["MODEL_HELP", "RegionClassifier", "VisionLanguageBackend", "load_backend"]

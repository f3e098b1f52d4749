"""Strategy 2's image tower over CLIP's ViT (see :mod:`zsseg.models.towers` for the modes)."""

from __future__ import annotations

import copy
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from zsseg.errors import ZsSegError
from zsseg.models.base import VisionLanguageBackend
from zsseg.models.towers import ImageTower


class ClipViTTower(ImageTower):
    """Strategy-2 tower over CLIP's visual tower (``ClipBackend.model.visual``, an open_clip ViT)."""

    def __init__(self, backend: VisionLanguageBackend, mode: str = "projection", last_blocks: int = 1) -> None:
        super().__init__(backend, mode, last_blocks)
        v = self.visual
        proj = cast(torch.Tensor, v.proj)
        self.embed_dim = int(proj.shape[1])
        if mode == "last":
            if getattr(v, "attn_pool", None) is not None:
                raise ZsSegError("train='last' does not support attention-pooled ViTs: use --train projection or all")
            blocks = cast(nn.ModuleList, v.transformer.resblocks)
            if last_blocks > len(blocks):
                raise ZsSegError(f"last_blocks {last_blocks} exceeds the {len(blocks)} blocks of the ViT")
            self.blocks = copy.deepcopy(blocks[-last_blocks:])
            self.ln_post = copy.deepcopy(v.ln_post)
        if mode == "all":
            self.visual_copy = copy.deepcopy(v)
        else:
            self.proj = nn.Parameter(proj.detach().clone().float())
        self.to(self.device).requires_grad_(True)

    @property
    def visual(self) -> Any:
        """The backend's CLIP visual tower (frozen, shared)."""
        return self.backend.model.visual  # type: ignore[attr-defined]

    def pool(self, pixels: torch.Tensor) -> torch.Tensor:
        v = self.visual
        x = v.transformer(v._embeds(pixels.to(self.device)))
        return v._pool(x)[0].float()

    def frozen_embed(self, pooled: torch.Tensor) -> torch.Tensor:
        return F.normalize(pooled @ cast(torch.Tensor, self.visual.proj).float(), dim=-1)

    def _run_blocks(self, x: torch.Tensor, blocks: nn.ModuleList | list[nn.Module]) -> torch.Tensor:
        batch_first = getattr(self.visual.transformer, "batch_first", True)
        x = x if batch_first else x.transpose(0, 1)
        for block in blocks:
            x = block(x)
        return x if batch_first else x.transpose(0, 1)

    def _trunk_last(self, pixels: torch.Tensor) -> torch.Tensor:
        v = self.visual
        blocks = list(cast(nn.ModuleList, v.transformer.resblocks))
        return self._run_blocks(v._embeds(pixels), blocks[: len(blocks) - self.last_blocks])

    def head(self, feats: torch.Tensor) -> torch.Tensor:
        x = feats.to(self.device, torch.float32)
        if self.mode == "all":
            return self.visual_copy(x).float()
        if self.mode == "last":
            x = self._run_blocks(x, self.blocks)
            if getattr(self.visual, "final_ln_after_pool", False):
                x = self.ln_post(self.visual._global_pool(x)[0])
            else:
                x = self.visual._global_pool(self.ln_post(x))[0]
        return x @ self.proj

"""Strategy 2's image tower over ConSE's EfficientNet-Lite (see :mod:`zsseg.models.towers` for the modes)."""

from __future__ import annotations

import copy
from typing import Any, cast

import torch
from torch import nn

from zsseg.errors import ZsSegError
from zsseg.models.base import VisionLanguageBackend
from zsseg.models.towers import ImageTower


class EfficientNetTower(ImageTower):
    """Strategy-2 tower over the offline backend's EfficientNet-Lite (pooled features 1280 -> MiniLM 384)."""

    def __init__(self, backend: VisionLanguageBackend, mode: str = "projection", last_blocks: int = 1) -> None:
        super().__init__(backend, mode, last_blocks)
        net = self.net
        feat_dim = int(net._conv_head.out_channels)
        self.embed_dim = int(cast(torch.Tensor, backend.label_embeddings).shape[1])  # type: ignore[attr-defined]
        if mode == "last":
            if last_blocks > len(net._blocks):
                raise ZsSegError(f"last_blocks {last_blocks} exceeds the {len(net._blocks)} blocks of the network")
            self.blocks = copy.deepcopy(net._blocks[-last_blocks:])
            self.conv_head = copy.deepcopy(net._conv_head)
            self.bn = copy.deepcopy(net._bn1)
        elif mode == "all":
            self.net_copy = copy.deepcopy(net)
            self.net_copy._fc = nn.Identity()
        self.proj = nn.Linear(feat_dim, self.embed_dim)
        self.new_params = ("proj.weight", "proj.bias")
        self.to(self.device).requires_grad_(True)

    @property
    def net(self) -> Any:
        """The backend's EfficientNet (frozen, shared)."""
        return self.backend.classifier  # type: ignore[attr-defined]

    def pool(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.to(self.device).contiguous(memory_format=torch.channels_last)
        return self.net.extract_features(x).mean(dim=(2, 3))

    def frozen_embed(self, pooled: torch.Tensor) -> torch.Tensor:
        return cast(torch.Tensor, self.backend.embed_logits(self.net._fc(pooled)))  # type: ignore[attr-defined]

    def _trunk_last(self, pixels: torch.Tensor) -> torch.Tensor:
        net = self.net
        x = net._swish(net._bn0(net._conv_stem(pixels.contiguous(memory_format=torch.channels_last))))
        for block in net._blocks[: len(net._blocks) - self.last_blocks]:
            x = block(x)
        return x

    def head(self, feats: torch.Tensor) -> torch.Tensor:
        x = feats.to(self.device, torch.float32)
        if self.mode == "last":
            x = x.contiguous(memory_format=torch.channels_last)
            for block in self.blocks:
                x = block(x)
            x = self.net._swish(self.bn(self.conv_head(x))).mean(dim=(2, 3))
        elif self.mode == "all":
            x = self.net_copy.extract_features(x.contiguous(memory_format=torch.channels_last)).mean(dim=(2, 3))
        return self.proj(x)

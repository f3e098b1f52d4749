"""Image towers for strategy 2: a frozen trunk, run once per training crop (so its output can be cached),
and a trained head that maps the trunk's output into the text embedding space.

Three modes (``train=``) say how much of the image network is trained:

- ``"projection"``: only a linear projection on the pooled features (for the offline backend a new
  1280 -> 384 map from EfficientNet-Lite's pooled features into the MiniLM space; for CLIP a copy of the
  visual tower's own ``proj``). Trunk = the whole frozen network up to the pooled features.
- ``"last"``: the last ``last_blocks`` blocks (MBConv blocks + conv head, or ViT residual blocks + ``ln_post``)
  and the projection. Trunk = the frozen network up to those blocks.
- ``"all"``: the whole image network and the projection. Trunk = the identity (crops are cached).

Every tower also exposes :meth:`ImageTower.pool` and :meth:`ImageTower.frozen_embed`, which together
reproduce the frozen backend's own image embedding (``backend.encode_images``) from the same pooled
features: one forward pass serves strategy 1, strategy 2 (projection mode) and prompt learning.

Trained parts are copies registered as sub-modules (so ``state_dict`` and ``parameters`` hold only them);
the frozen network is shared with the backend and never saved.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from zsseg.errors import ZsSegError
from zsseg.models.base import VisionLanguageBackend

TrainMode = Literal["projection", "last", "all"]
TRAIN_MODES: tuple[str, ...] = ("projection", "last", "all")


class ImageTower(nn.Module):
    """Base class: ``forward(pixels) = head(trunk(pixels))``.

    Attributes:
        mode: what is trained (see module docstring).
        embed_dim: D, the text embedding size the head maps into.
        trunk_kind: key of the trunk's output for caching (``"pool"``, ``"last2"``, ``"pixels"``).
        new_params: names of parameters initialised from scratch (trained at the full learning rate; the
            others, copied from the pretrained network, at a reduced one).
    """

    mode: str
    embed_dim: int
    new_params: tuple[str, ...] = ()

    def __init__(self, backend: VisionLanguageBackend, mode: str, last_blocks: int) -> None:
        super().__init__()
        if mode not in TRAIN_MODES:
            raise ZsSegError(f"unknown training mode {mode!r}: use one of {', '.join(TRAIN_MODES)}")
        if last_blocks < 1:
            raise ZsSegError(f"last_blocks must be >= 1, got {last_blocks}: pass --last-blocks 1 or more")
        self.mode = mode
        self.last_blocks = last_blocks
        self._backend = (backend,)  # a tuple: not registered as a sub-module, not saved

    @property
    def backend(self) -> VisionLanguageBackend:
        return self._backend[0]

    @property
    def device(self) -> torch.device:
        return self.backend.device

    @property
    def trunk_kind(self) -> str:
        return {"projection": "pool", "last": f"last{self.last_blocks}", "all": "pixels"}[self.mode]

    def pool(self, pixels: torch.Tensor) -> torch.Tensor:
        """Frozen pooled features: normalised crops float32 (B, 3, S, S) -> float32 (B, F)."""
        raise NotImplementedError

    def frozen_embed(self, pooled: torch.Tensor) -> torch.Tensor:
        """The backend's own embedding from :meth:`pool`'s output: (B, F) -> float32 (B, D), L2-normalised."""
        raise NotImplementedError

    def trunk(self, pixels: torch.Tensor) -> torch.Tensor:
        """Frozen part: crops (B, 3, S, S) -> the head's input (float32, shape depends on the mode)."""
        if self.mode == "projection":
            return self.pool(pixels)
        if self.mode == "all":
            return pixels.to(self.device)
        return self._trunk_last(pixels.to(self.device))

    def head(self, feats: torch.Tensor) -> torch.Tensor:
        """Trained part: the trunk's output -> float32 (B, D), not normalised."""
        raise NotImplementedError

    def _trunk_last(self, pixels: torch.Tensor) -> torch.Tensor:
        raise ZsSegError(f"train='last' is not supported for {self.backend.name}: use --train projection or all")

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Crops float32 (B, 3, S, S) -> float32 (B, D), not normalised."""
        return self.head(self.trunk(pixels))

    def param_groups(self, lr: float, backbone_lr_mult: float) -> list[dict[str, object]]:
        """AdamW parameter groups: new parameters at ``lr``, pretrained copies at ``lr * backbone_lr_mult``."""
        new = [p for n, p in self.named_parameters() if n in self.new_params]
        old = [p for n, p in self.named_parameters() if n not in self.new_params]
        groups: list[dict[str, object]] = []
        if new:
            groups.append({"params": new, "lr": lr})
        if old:
            groups.append({"params": old, "lr": lr * backbone_lr_mult})
        return groups


class GenericTower(ImageTower):
    """Any backend: the frozen embedding ``encode_images`` followed by a D x D linear map (identity at start).

    Only ``train="projection"`` and ``"all"`` (which here is the same) are available.
    """

    def __init__(self, backend: VisionLanguageBackend, mode: str = "projection", last_blocks: int = 1) -> None:
        super().__init__(backend, mode, last_blocks)
        if mode == "last":
            self._trunk_last(torch.empty(0))
        with torch.no_grad():
            dim = backend.encode_images(torch.zeros(1, 3, backend.input_size, backend.input_size)).shape[1]
        self.embed_dim = int(dim)
        self.mode = "projection"
        self.proj = nn.Linear(self.embed_dim, self.embed_dim)
        with torch.no_grad():
            self.proj.weight.copy_(torch.eye(self.embed_dim))
            self.proj.bias.zero_()
        self.new_params = ("proj.weight", "proj.bias")
        self.to(self.device).requires_grad_(True)

    def pool(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.backend.encode_images(pixels.to(self.device)).float().clone()  # clone: leave inference mode

    def frozen_embed(self, pooled: torch.Tensor) -> torch.Tensor:
        return F.normalize(pooled, dim=-1)

    def head(self, feats: torch.Tensor) -> torch.Tensor:
        return self.proj(feats.to(self.device, torch.float32))

"""Learned prompts (CoOp, Zhou et al., IJCV 2022): the base of the families' prompt learners.

A class's prompt is ``[start] ctx_1 .. ctx_M <class-name tokens> <suffix tokens> [end]`` where the M context
vectors (16 by default) are learned token embeddings shared by all classes, placed where the words of a
hand-written template would be; everything else (both encoders, the name's token embeddings) stays frozen.
This is zsseg.baseline's ``LearnablePromptExtractor`` (prefix context, suffix ``"."``). Each family implements
it over its own text encoder (:mod:`zsseg.models.clip.prompts`, :mod:`zsseg.models.conse.prompts`).

With the context set to the token embeddings of a template's words (``"a photo of a"``), the prompt of
``"cat"`` is exactly the sentence ``"a photo of a cat."`` and the embedding equals the plain encoder's.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from zsseg.errors import ZsSegError


class PromptLearner(nn.Module):
    """Learnable context vectors ``ctx`` float32 (M, W) for a frozen text encoder of token width W.

    ``forward(classes)`` -> float32 (K, D), L2-normalised class embeddings, differentiable in ``ctx``.
    """

    ctx: nn.Parameter

    def __init__(self, n_ctx: int, width: int, suffix: str, device: torch.device) -> None:
        super().__init__()
        if n_ctx < 1:
            raise ZsSegError(f"the number of context vectors must be >= 1, got {n_ctx}: pass --n-ctx 16")
        self.n_ctx = n_ctx
        self.suffix = suffix
        self.ctx = nn.Parameter(torch.empty(n_ctx, width, device=device).normal_(std=0.02))  # CoOp's init

    def word_embeddings(self, text: str) -> torch.Tensor:
        """Token embeddings float32 (T, W) of the words of ``text`` (no start/end tokens)."""
        raise NotImplementedError

    def init_from_text(self, text: str) -> None:
        """Set ``ctx`` to the token embeddings of ``text`` (which must have exactly ``n_ctx`` tokens)."""
        emb = self.word_embeddings(text)
        if len(emb) != self.n_ctx:
            raise ZsSegError(f"{text!r} has {len(emb)} tokens but there are {self.n_ctx} context vectors")
        with torch.no_grad():
            self.ctx.copy_(emb)

    def forward(self, classes: Sequence[str]) -> torch.Tensor:
        raise NotImplementedError

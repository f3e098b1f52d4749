"""Learned prompts (CoOp, Zhou et al., IJCV 2022) for the frozen text encoders, and their region classifier.

A class's prompt is ``[start] ctx_1 .. ctx_M <class-name tokens> <suffix tokens> [end]`` where the M context
vectors (16 by default) are learned token embeddings shared by all classes, placed where the words of a
hand-written template would be; everything else (both encoders, the name's token embeddings) stays frozen.
This is zsseg.baseline's ``LearnablePromptExtractor`` (prefix context, suffix ``"."``), for:

- CLIP (open_clip ``CLIP``): token embedding -> + positional embedding -> causal transformer -> ``ln_final``
  -> the state at the end-of-text token (argmax of the token ids, shifted by M) -> ``text_projection``;
- the offline MiniLM encoder (BERT): ``inputs_embeds`` = word embeddings of ``[CLS] ctx <name> . [SEP]``
  (BERT adds position and token-type embeddings itself), mean pooling over the valid tokens.

With the context set to the token embeddings of a template's words (``"a photo of a"``), the prompt of
``"cat"`` is exactly the sentence ``"a photo of a cat."`` and the embedding equals the plain encoder's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from zsseg.classify.backends.base import VisionLanguageBackend
from zsseg.classify.backends.clip import TEXT_TOWER_PARTS, encode_text_cut, end_of_text_pooling, end_positions
from zsseg.classify.region import RegionClassifier
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


class ClipPromptLearner(PromptLearner):
    """CoOp over an open_clip ``CLIP`` text tower (``token_embedding``, ``transformer``, ``text_projection``)."""

    def __init__(self, backend: VisionLanguageBackend, n_ctx: int = 16, suffix: str = ".") -> None:
        model = backend.model  # type: ignore[attr-defined]
        if not all(hasattr(model, a) for a in TEXT_TOWER_PARTS):
            raise ZsSegError(
                f"learned prompts need a CLIP text tower with token embeddings, which {backend.name} lacks: "
                "use an OpenAI-style CLIP such as clip:ViT-B-16/openai"
            )
        if not end_of_text_pooling(model):
            raise ZsSegError(f"learned prompts need end-of-text pooling; {backend.name} pools otherwise")
        width = int(model.token_embedding.weight.shape[1])
        super().__init__(n_ctx, width, suffix, backend.device)
        self._frozen = (model, backend.tokenizer)  # type: ignore[attr-defined]

    def _tokens(self, texts: Sequence[str]) -> torch.Tensor:
        model, tokenizer = self._frozen
        return tokenizer(list(texts)).to(model.token_embedding.weight.device)

    def word_embeddings(self, text: str) -> torch.Tensor:
        model = self._frozen[0]
        tokens = self._tokens([text])[0]
        end = int(end_positions(model, tokens[None])[0])
        return model.token_embedding(tokens[1:end]).detach().float()

    def forward(self, classes: Sequence[str]) -> torch.Tensor:
        model = self._frozen[0]
        tokens = self._tokens([f"{c}{self.suffix}" for c in classes])  # (K, C): [start] name suffix [end] pad
        length = tokens.shape[1]
        end = end_positions(model, tokens) + self.n_ctx
        if int(end.max()) >= length:
            raise ZsSegError(
                f"a class name is too long for {self.n_ctx} context vectors in {length} tokens: shorten it"
            )
        emb = model.token_embedding(tokens)
        ctx = self.ctx.to(emb.dtype)[None].expand(len(classes), -1, -1)
        x = torch.cat([emb[:, :1], ctx, emb[:, 1 : length - self.n_ctx]], dim=1)
        return F.normalize(encode_text_cut(model, x, end).float(), dim=-1)


class BertPromptLearner(PromptLearner):
    """CoOp over the offline MiniLM encoder (:class:`~zsseg.classify.backends.minilm.MiniLMTextEncoder`)."""

    def __init__(self, backend: VisionLanguageBackend, n_ctx: int = 16, suffix: str = ".") -> None:
        encoder = getattr(backend, "text_encoder", None)
        if encoder is None or not hasattr(encoder, "bert") or not hasattr(encoder, "tokenizer"):
            raise ZsSegError(f"learned prompts are not available for {backend.name}: use a clip: or conse: model")
        words = encoder.bert.word_embeddings
        super().__init__(n_ctx, int(words.weight.shape[1]), suffix, backend.device)
        self._frozen = (encoder,)

    def word_embeddings(self, text: str) -> torch.Tensor:
        encoder = self._frozen[0]
        ids = encoder.tokenize([text])["input_ids"][0]
        return encoder.bert.word_embeddings(ids[1:-1]).detach().float()

    def forward(self, classes: Sequence[str]) -> torch.Tensor:
        encoder = self._frozen[0]
        batch = encoder.tokenize([f"{c}{self.suffix}" for c in classes])  # [CLS] name suffix [SEP] [PAD]..
        ids, mask = batch["input_ids"], batch["attention_mask"]
        emb = encoder.bert.word_embeddings(ids)
        ctx = self.ctx[None].expand(len(classes), -1, -1).to(emb.dtype)
        x = torch.cat([emb[:, :1], ctx, emb[:, 1:]], dim=1)
        mask = torch.cat([mask[:, :1], torch.ones_like(mask[:, :1]).expand(-1, self.n_ctx), mask[:, 1:]], dim=1)
        hidden = encoder.bert(mask, inputs_embeds=x)
        return cast(torch.Tensor, encoder.pool(hidden, mask)).float()


def build_prompt_learner(backend: VisionLanguageBackend, n_ctx: int = 16, suffix: str = ".") -> PromptLearner:
    """The CoOp prompt learner for ``backend`` (CLIP or the offline MiniLM); frozen encoders, random context.

    Raises:
        ZsSegError: a backend whose text encoder cannot take learned token embeddings.
    """
    from zsseg.classify.backends.clip import ClipBackend

    if isinstance(backend, ClipBackend):
        return ClipPromptLearner(backend, n_ctx, suffix)
    return BertPromptLearner(backend, n_ctx, suffix)


class PromptLearnedClassifier(RegionClassifier):
    """Strategy 1 with learned prompts: a :class:`RegionClassifier` whose class embeddings come from a
    :class:`PromptLearner` instead of hand-written templates (drop-in for :class:`zsseg.Segmenter`).

    Args:
        backend: the frozen vision-language backend the prompts were learned for.
        learner: the trained prompt learner.
        batch_size: crops per forward pass.
        cache_size: vocabularies whose embeddings are kept in memory.
        **region_options: ``regions``, ``dense_size``, ``hybrid_fraction`` of :class:`RegionClassifier`.
    """

    def __init__(
        self,
        backend: VisionLanguageBackend,
        learner: PromptLearner,
        batch_size: int = 32,
        cache_size: int = 8,
        **region_options: Any,
    ) -> None:
        super().__init__(backend, templates=("{}",), batch_size=batch_size, cache_size=cache_size, **region_options)
        self.template_name = "learned"
        self.learner = learner.eval()

    def compute_text_embeddings(self, classes: tuple[str, ...]) -> torch.Tensor:
        """float32 (K, D) learned-prompt embeddings of ``classes`` (cached by ``text_embeddings``)."""
        with torch.no_grad():
            return self.learner(classes).cpu()


__all__ = [
    "BertPromptLearner",
    "ClipPromptLearner",
    "PromptLearnedClassifier",
    "PromptLearner",
    "build_prompt_learner",
]

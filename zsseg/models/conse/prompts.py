"""CoOp over the offline MiniLM encoder (BERT): ``inputs_embeds`` = word embeddings of
``[CLS] ctx <name> . [SEP]`` (BERT adds position and token-type embeddings itself), mean pooling over the valid
tokens."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch

from zsseg.errors import ZsSegError
from zsseg.models.base import VisionLanguageBackend
from zsseg.models.prompt_learner import PromptLearner


class BertPromptLearner(PromptLearner):
    """CoOp over the offline MiniLM encoder (:class:`~zsseg.models.conse.minilm.MiniLMTextEncoder`)."""

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

"""CoOp over an open_clip text tower: token embedding -> + positional embedding -> causal transformer ->
``ln_final`` -> the state at the end-of-text token (argmax of the token ids, shifted by M) -> ``text_projection``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from zsseg.errors import ZsSegError
from zsseg.models.base import VisionLanguageBackend
from zsseg.models.clip.backend import TEXT_TOWER_PARTS, encode_text_cut, end_of_text_pooling, end_positions
from zsseg.models.prompt_learner import PromptLearner


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

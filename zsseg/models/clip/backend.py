"""A CLIP model of open_clip as a vision-language backend (:class:`ClipBackend`), and the text tower run only as
far as the prompts need (:func:`encode_text_cut`). Loading by name: :mod:`zsseg.models.clip.load`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from zsseg.models.clip.mlp import fuse_mlps


class ClipBackend:
    """A CLIP model (open_clip ``CLIP``/``CustomTextCLIP``) as a :class:`VisionLanguageBackend`.

    Args:
        model: an open_clip model with ``encode_image``, ``encode_text`` and ``logit_scale``.
        tokenizer: open_clip tokenizer: list of T strings -> int64 tensor (T, context_length).
        name: the model string shown to users.
        device: device to run on; the model is moved there and put in eval mode.
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16`` (:mod:`zsseg.precision`): the model's weights are cast
            to it and inputs follow; embeddings are returned in float32. In bf16 on a CPU the MLPs' activations
            run fused into their first matmul (:mod:`zsseg.models.clip.mlp`).
    """

    family = "clip"

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Callable[[list[str]], torch.Tensor],
        name: str = "clip",
        device: str | torch.device = "cpu",
        precision: str = "fp32",
    ) -> None:
        import open_clip

        from zsseg.precision import resolve_precision

        self.device = torch.device(device)
        self.dtype = resolve_precision(precision, self.device)
        # read before the cast: bf16 would round ln(100) to 4.594, a temperature of 98.9
        self.logit_scale = float(model.logit_scale.float().exp().item())  # type: ignore[operator]
        self.model = model.to(self.device, self.dtype).eval()
        fuse_mlps(self.model)  # bf16 CPU inference: activation as a oneDNN post-op; float32 runs as before
        self.tokenizer = tokenizer
        self.name = name
        cfg = open_clip.get_model_preprocess_cfg(model)
        size = cfg.get("size", 224)
        self.input_size = int(size if isinstance(size, int) else size[0])
        mean = [float(v) for v in cfg.get("mean", open_clip.OPENAI_DATASET_MEAN)]
        std = [float(v) for v in cfg.get("std", open_clip.OPENAI_DATASET_STD)]
        self.mean: tuple[float, float, float] = (mean[0], mean[1], mean[2])
        self.std: tuple[float, float, float] = (std[0], std[1], std[2])

    @torch.inference_mode()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """float32 (B, 3, S, S) normalised -> float32 (B, D), L2-normalised."""
        x = pixels.to(self.device, self.dtype)
        return F.normalize(self.model.encode_image(x).float(), dim=-1)  # type: ignore[operator]

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """T strings -> float32 (T, D), L2-normalised. Text towers read out at the end-of-text token with a causal
        mask (OpenAI-style CLIPs) run only up to the longest sentence's end (:func:`encode_text_cut`); others
        through ``model.encode_text``."""
        tokens = self.tokenizer(list(texts)).to(self.device)
        model: Any = self.model
        if plain_text_tower(model):
            emb = encode_text_cut(model, model.token_embedding(tokens), end_positions(model, tokens))
        else:
            emb = model.encode_text(tokens)
        return F.normalize(emb.float(), dim=-1)


#: the parts of an open_clip ``CLIP`` text tower that :func:`encode_text_cut` runs
TEXT_TOWER_PARTS = (
    "token_embedding",
    "positional_embedding",
    "transformer",
    "ln_final",
    "attn_mask",
    "text_projection",
)


def plain_text_tower(model: Any) -> bool:
    """Whether ``model`` is an open_clip ``CLIP`` whose text tower :func:`encode_text_cut` runs: the
    :data:`TEXT_TOWER_PARTS` and a ``text_pool_type`` of end-of-text pooling (``argmax`` or ``eos``)."""
    parts = (*TEXT_TOWER_PARTS, "text_pool_type")
    return all(hasattr(model, n) for n in parts) and end_of_text_pooling(model)


def end_of_text_pooling(model: Any) -> bool:
    """Whether ``model``'s text embedding is the state at the end-of-text token (pooling ``argmax`` or ``eos``)."""
    return getattr(model, "text_pool_type", "argmax") in ("argmax", "eos")


def is_causal(mask: torch.Tensor | None) -> bool:
    """Whether an additive (C, C) attention mask is causal: -inf exactly above the diagonal."""
    if not isinstance(mask, torch.Tensor) or mask.ndim != 2 or mask.shape[0] != mask.shape[1]:
        return False
    upper = torch.ones(mask.shape, dtype=torch.bool, device=mask.device).triu(1)
    return bool(torch.isneginf(mask[upper]).all() and not torch.isneginf(mask[~upper]).any())


def end_positions(model: Any, tokens: torch.Tensor) -> torch.Tensor:
    """int64 (T,) index of each row's end-of-text token in ``tokens`` (T, C): the ``eos`` id's first position,
    else the largest token id's (OpenAI's tokenizer gives end-of-text the largest id), as open_clip pools."""
    if getattr(model, "text_pool_type", "argmax") == "eos":
        return (tokens == model.text_eos_id).int().argmax(dim=-1)
    return tokens.argmax(dim=-1)


def encode_text_cut(model: Any, x: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """open_clip ``CLIP.encode_text`` from input token embeddings, cut after the last end-of-text position.

    Under a causal mask a state never sees later tokens, so the states up to ``end.max()`` are the full
    context's and the padding after it (most of CLIP's 77 tokens) need not run: 7x less time for ViT-B/16 on
    VILD's prompts, equal to ``encode_text`` up to float rounding (``benchmarks/text_speed.py``). Without a
    causal mask the whole context runs.

    Args:
        model: an open_clip ``CLIP`` for which :func:`plain_text_tower` holds.
        x: (T, C, W) token embeddings, C the context length, before positional embeddings.
        end: int64 (T,) position of each row's end-of-text state.

    Returns:
        (T, D) projected text embeddings, not normalised, in the text tower's dtype.
    """
    mask = model.attn_mask
    keep = int(end.max()) + 1 if is_causal(mask) else x.shape[1]
    cast_dtype = model.transformer.get_cast_dtype()
    x = x[:, :keep].to(cast_dtype) + model.positional_embedding[:keep].to(cast_dtype)
    x = model.ln_final(model.transformer(x, attn_mask=None if mask is None else mask[:keep, :keep]))
    x = x[torch.arange(len(x), device=x.device), end]
    proj = model.text_projection
    if proj is None:
        return x
    return proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj

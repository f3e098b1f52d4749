"""CoOp prompt learners: with the context set to a template's word embeddings, the learned-prompt encoder
must reproduce the plain text encoder on the template's sentences (CLIP and MiniLM/BERT)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from zsseg.classify.learned_prompts import PromptLearnedClassifier
from zsseg.errors import ZsSegError
from zsseg.models import build_prompt_learner
from zsseg.models.clip.prompts import ClipPromptLearner
from zsseg.models.conse.prompts import BertPromptLearner

NAMES = ["cat", "potted plant", "dog"]


def test_clip_prompt_learner_equals_text_encoder_with_template_context(tiny_clip) -> None:
    learner = build_prompt_learner(tiny_clip, n_ctx=4)
    assert isinstance(learner, ClipPromptLearner)
    learner.init_from_text("a photo of a")
    with torch.no_grad():
        got = learner(NAMES)
    want = tiny_clip.encode_texts([f"a photo of a {n}." for n in NAMES])
    assert got.shape == (3, 16)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_bert_prompt_learner_equals_text_encoder_with_template_context(tiny_bert_dir: Path) -> None:
    from zsseg.models.conse.minilm import MiniLMTextEncoder

    class TextOnly:  # the text side of a ConSE backend is all a prompt learner needs
        name, device, logit_scale, family = "fake:bert", torch.device("cpu"), 10.0, "conse"
        text_encoder = MiniLMTextEncoder(tiny_bert_dir)

    learner = build_prompt_learner(TextOnly(), n_ctx=4)  # type: ignore[arg-type]
    assert isinstance(learner, BertPromptLearner)
    learner.init_from_text("a photo of a")
    with torch.no_grad():
        got = learner(NAMES)
        want = TextOnly.text_encoder([f"a photo of a {n}." for n in NAMES])
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    with pytest.raises(ZsSegError, match="tokens"):
        learner.init_from_text("a photo")


def test_gradients_reach_only_the_context(tiny_clip) -> None:
    from zsseg.train.trainer import _freeze

    _freeze(tiny_clip)
    learner = build_prompt_learner(tiny_clip, n_ctx=16)
    assert learner.ctx.shape == (16, 32)
    learner(NAMES).sum().backward()
    assert learner.ctx.grad is not None and learner.ctx.grad.abs().sum() > 0
    assert all(p.grad is None for p in tiny_clip.model.parameters())
    assert [n for n, _ in learner.named_parameters()] == ["ctx"]


def test_prompt_learned_classifier_is_a_region_classifier(tiny_clip) -> None:
    learner = build_prompt_learner(tiny_clip, n_ctx=4)
    learner.init_from_text("a photo of a")
    clf = PromptLearnedClassifier(tiny_clip, learner)
    img = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    masks = np.zeros((2, 40, 40), bool)
    masks[0, :20], masks[1, 20:] = True, True
    probs = clf.classify(img, masks, NAMES)
    assert probs.shape == (2, 3) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    torch.testing.assert_close(
        clf.text_embeddings(NAMES), tiny_clip.encode_texts([f"a photo of a {n}." for n in NAMES])
    )


def test_too_long_name_is_a_clear_error(tiny_clip) -> None:
    learner = build_prompt_learner(tiny_clip, n_ctx=16)
    with pytest.raises(ZsSegError, match="too long"):
        learner([" ".join(["word"] * 70)])

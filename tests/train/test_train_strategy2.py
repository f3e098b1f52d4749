"""Strategy-2 towers and classifier: the frozen path reproduces the backend, checkpoints round-trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from zsseg.classify import RegionClassifier
from zsseg.classify.checkpoint import FORMAT, load_classifier_checkpoint, read_checkpoint
from zsseg.classify.ensemble import EnsembleClassifier, ensemble_probs
from zsseg.classify.strategy2 import Strategy2Classifier, build_strategy2
from zsseg.errors import ZsSegError
from zsseg.models import build_tower
from zsseg.models.clip.tower import ClipViTTower
from zsseg.models.towers import GenericTower
from zsseg.train.checkpoint import save_checkpoint


def _image_and_masks() -> tuple[np.ndarray, np.ndarray]:
    img = np.random.default_rng(1).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    masks = np.zeros((3, 40, 48), bool)
    masks[0, :20], masks[1, 20:, :30], masks[2, 5:35, 30:] = True, True, True
    return img, masks


@pytest.mark.parametrize("mode", ["projection", "last", "all"])
def test_clip_tower_starts_as_the_frozen_clip(tiny_clip, mode: str) -> None:
    tower = build_tower(tiny_clip, mode, last_blocks=1)
    assert isinstance(tower, ClipViTTower) and tower.embed_dim == 16
    x = torch.randn(3, 3, 32, 32)
    want = tiny_clip.encode_images(x)
    with torch.no_grad():
        torch.testing.assert_close(tower.frozen_embed(tower.pool(x)), want, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(F.normalize(tower(x), dim=-1), want, rtol=1e-5, atol=1e-5)
    names = {n.split(".")[0] for n, _ in tower.named_parameters()}
    assert names == {"projection": {"proj"}, "last": {"blocks", "ln_post", "proj"}, "all": {"visual_copy"}}[mode]


def test_generic_tower_for_any_backend(colour_backend) -> None:
    tower = build_tower(colour_backend, "projection")
    assert isinstance(tower, GenericTower)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    torch.testing.assert_close(F.normalize(tower(x), dim=-1), colour_backend.encode_images(x))
    with pytest.raises(ZsSegError, match="--train projection"):
        build_tower(colour_backend, "last")


def test_checkpoint_round_trip_gives_identical_outputs(tiny_clip, tmp_path: Path) -> None:
    torch.manual_seed(3)
    model = build_strategy2(tiny_clip, "last", last_blocks=1).eval()
    with torch.no_grad():  # move away from the initialisation so that a load that did nothing would show
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    vocab = ["aeroplane", "bicycle", "bird"]
    meta = {
        "format": FORMAT, "what": "strategy2", "backend": tiny_clip.name, "vocabulary": vocab, "seen": vocab,
        "dataset": "voc20", "split": "train", "lambda": 0.7, "epoch": 1, "history": [],
        "options": {"train": "last", "last_blocks": 1, "logit_scale": model.logit_scale, "templates": "single"},
    }  # fmt: skip
    path = tmp_path / "s2.safetensors"
    save_checkpoint(path, {"model." + k: v for k, v in model.state_dict().items()}, meta, None)
    assert (tmp_path / "s2.json").is_file()

    img, masks = _image_and_masks()
    classes = ["bird", "sheep", "aeroplane", "sofa"]
    direct = Strategy2Classifier(tiny_clip, model, templates="single").classify(img, masks, classes)
    loaded = load_classifier_checkpoint(path, tiny_clip, ensemble=False)
    assert isinstance(loaded, Strategy2Classifier)
    np.testing.assert_array_equal(loaded.classify(img, masks, classes), direct)
    assert direct.shape == (3, 4) and np.allclose(direct.sum(1), 1.0, atol=1e-5)

    ens = load_classifier_checkpoint(path, tiny_clip)
    assert isinstance(ens, EnsembleClassifier) and ens.lambda_ == 0.7 and ens.backend is tiny_clip
    p1 = RegionClassifier(tiny_clip, templates="single").classify(img, masks, classes)
    kept = loaded.probs_from_features(loaded.region_features(img, masks), classes, renormalise=False)
    assert (kept.sum(axis=1) < 1).all()  # strategy 2's "no object" share stays out of the ensemble's p2
    want = ensemble_probs(p1, kept, np.array([True, False, True, False]), 0.7)
    np.testing.assert_allclose(ens.classify(img, masks, classes), want, rtol=1e-4, atol=1e-6)


def test_ensemble_shares_one_forward_pass_in_projection_mode(tiny_clip) -> None:
    torch.manual_seed(0)
    model = build_strategy2(tiny_clip, "projection").eval()
    proj = model.tower.proj
    assert isinstance(proj, torch.nn.Parameter)
    with torch.no_grad():
        proj.add_(0.1 * torch.randn_like(proj))
    s1 = RegionClassifier(tiny_clip, templates="single")
    s2 = Strategy2Classifier(tiny_clip, model, templates="single")
    ens = EnsembleClassifier(s1, s2, seen=["cat"], lambda_=0.8)
    assert ens.shares_trunk
    img, masks = _image_and_masks()
    parts = ens.components(img, masks, ["cat", "dog"])
    np.testing.assert_allclose(parts["p1"], s1.classify(img, masks, ["cat", "dog"]), rtol=1e-4, atol=1e-6)
    p2 = s2.probs_from_features(s2.region_features(img, masks), ["cat", "dog"], renormalise=False)
    np.testing.assert_allclose(parts["p2"], p2, rtol=1e-4, atol=1e-6)


def test_loading_errors_name_the_fix(tiny_clip, tmp_path: Path) -> None:
    with pytest.raises(ZsSegError, match="not found"):
        read_checkpoint(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(ZsSegError, match="retrain"):
        read_checkpoint(bad)
    meta = {"format": FORMAT, "what": "prompts", "backend": "clip:other", "options": {"suffix": "."}}
    path = tmp_path / "p.safetensors"
    save_checkpoint(path, {"prompt.ctx": torch.zeros(4, 32)}, {**meta, "epoch": 1}, None)
    with pytest.raises(ZsSegError, match="--prompts"):
        load_classifier_checkpoint(path, tiny_clip)
    from zsseg.classify.checkpoint import load_prompts_checkpoint

    with pytest.raises(ZsSegError, match="--model clip:other"):
        load_prompts_checkpoint(path, tiny_clip)

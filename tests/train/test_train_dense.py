"""Training on what the pipeline sees: proposals with soft targets, pooled from one dense pass; held-out early
stopping and temperature; the ensemble on one dense pass; self-training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file
from zsseg_testing import FixedProposer

from zsseg.classify import build_classifier
from zsseg.classify.ensemble import EnsembleClassifier, ensemble_probs, seen_mask_for
from zsseg.classify.strategy2 import Strategy2Classifier
from zsseg.cli import main
from zsseg.data import load_dataset
from zsseg.errors import ZsSegError
from zsseg.train import TrainConfig, train
from zsseg.train.self_training import round_path, self_train


def quadrants(size: int = 48) -> FixedProposer:
    """Four quadrant masks and the whole image: the synthetic VOC squares sit one per quadrant."""
    masks = np.zeros((5, size, size), bool)
    half = size // 2
    for j in range(4):
        masks[j, (j // 2) * half : (j // 2 + 1) * half, (j % 2) * half : (j % 2 + 1) * half] = True
    masks[4] = True
    return FixedProposer(masks)


def _cfg(**kw: object) -> TrainConfig:
    return TrainConfig(**{"epochs": 3, "batch_size": 8, "lr": 1e-2, "holdout": 0.25, **kw})  # type: ignore[arg-type]


def test_dense_training_keeps_the_best_epoch_and_a_temperature(tiny_clip, voc_root: Path, tmp_path: Path) -> None:
    dataset = load_dataset("voc20", voc_root, "train")
    out = tmp_path / "s2.safetensors"
    summary = train(tiny_clip, dataset, out, _cfg(), split="train", seen_only=True, proposer=quadrants(),
                    progress=False)  # fmt: skip
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["options"]["features"] == "dense" and meta["options"]["dense_size"] == 448
    assert 1 <= meta["best_epoch"] <= 3 and meta["temperature"] > 0 and summary.temperature == meta["temperature"]
    assert all("held_out_loss" in h for h in meta["history"])
    tensors = load_file(str(out))
    assert {k for k in tensors if k.startswith("best.")} == {"best." + k for k in tensors if k.startswith("model.")}
    clf = build_classifier(tiny_clip, classifier=out, regions="dense")
    assert isinstance(clf, EnsembleClassifier) and clf.shares_trunk
    s2 = clf.strategy2
    assert isinstance(s2, Strategy2Classifier) and s2.dense is not None and s2.temperature == meta["temperature"]
    image = dataset.load_image(dataset.samples[0])
    masks = quadrants().masks[:4]
    classes = ["aeroplane", "sheep", "bicycle"]
    parts = clf.components(image, masks, classes)
    np.testing.assert_allclose(parts["p1"], clf.strategy1.classify(image, masks, classes), rtol=1e-4, atol=1e-6)
    p2 = s2.probs_from_features(s2.region_features(image, masks), classes, renormalise=False)
    np.testing.assert_allclose(parts["p2"], p2, rtol=1e-5, atol=1e-7)
    assert (p2.sum(axis=1) < 1).all()  # the "no object" share stays out of strategy 2's rows
    want = ensemble_probs(parts["p1"], p2, seen_mask_for(classes, meta["seen"]), meta["lambda"])
    np.testing.assert_allclose(parts["p"], want, rtol=1e-5, atol=1e-7)


def test_crops_and_dense_cannot_be_mixed_wrongly(tiny_clip, voc_root: Path, tmp_path: Path) -> None:
    dataset = load_dataset("voc20", voc_root, "train")
    with pytest.raises(ZsSegError, match="use --train projection"):
        train(tiny_clip, dataset, tmp_path / "x.safetensors", _cfg(features="dense", train="last"), progress=False)
    with pytest.raises(ZsSegError, match="--holdout"):
        train(tiny_clip, dataset, tmp_path / "x.safetensors", _cfg(holdout=1.0), progress=False)
    from dataclasses import replace

    all_unseen = load_dataset("voc20", voc_root, "train")
    all_unseen.info = replace(all_unseen.info, unseen=all_unseen.info.classes)
    with pytest.raises(ZsSegError, match="no seen class to train on"):
        train(tiny_clip, all_unseen, tmp_path / "u.safetensors", _cfg(), seen_only=True, progress=False)
    last = train(tiny_clip, dataset, tmp_path / "last.safetensors", _cfg(train="last", epochs=1), seen_only=True,
                 progress=False)  # fmt: skip
    assert json.loads(last.path.with_suffix(".json").read_text())["options"]["features"] == "crops"


def test_self_training_adds_pseudo_labelled_unseen_classes(tiny_clip, voc_root: Path, tmp_path: Path) -> None:
    dataset = load_dataset("voc20", voc_root, "train")
    out = tmp_path / "st.safetensors"
    cfg = _cfg(epochs=2)
    runs = self_train(tiny_clip, dataset, out, cfg, rounds=1, threshold=0.05, proposer=quadrants(), progress=False)
    assert len(runs) == 2 and round_path(out, 0).is_file() and round_path(out, 1).is_file() and out.is_file()
    meta0 = json.loads(round_path(out, 0).with_suffix(".json").read_text())
    meta = json.loads(out.with_suffix(".json").read_text())
    info = dataset.info
    unseen = [info.prompt_names[i] for i in info.unseen_ids]
    assert meta0["vocabulary"] == meta["seen"] and meta["vocabulary"] == [*meta["seen"], *unseen]
    assert meta["pseudo"]["threshold"] == 0.05 and set(meta["pseudo"]["regions"]) == set(unseen)
    assert sum(meta["pseudo"]["regions"].values()) > 0
    ensemble = build_classifier(tiny_clip, classifier=out, regions="dense")
    assert isinstance(ensemble, EnsembleClassifier)  # the pseudo-labelled classes are weighed as seen
    pseudo = {name for name, n in meta["pseudo"]["regions"].items() if n > 0}
    assert ensemble.seen == frozenset(meta["seen"]) | pseudo
    round0 = build_classifier(tiny_clip, classifier=round_path(out, 0), regions="dense")
    assert round0.seen == frozenset(meta["seen"])
    again = self_train(tiny_clip, dataset, out, cfg, rounds=1, threshold=0.05, proposer=quadrants(), resume=True,
                       progress=False)  # fmt: skip
    assert again == []  # every round finished: nothing to do
    with pytest.raises(ZsSegError, match="pass --resume"):
        self_train(tiny_clip, dataset, out, cfg, proposer=quadrants(), progress=False)
    with pytest.raises(ZsSegError, match="--proposals"):
        self_train(tiny_clip, dataset, tmp_path / "n.safetensors", cfg, proposer=None, progress=False)
    with pytest.raises(ZsSegError, match="--features dense"):
        self_train(tiny_clip, dataset, tmp_path / "c.safetensors", _cfg(features="crops"), proposer=quadrants(),
                   progress=False)  # fmt: skip


def test_cli_self_training_errors_name_the_fix(tiny_clip, voc_root: Path, tmp_path: Path, capsys) -> None:
    base = ["train", "--dataset", "voc20", "--root", str(voc_root), "--model", tiny_clip.name,
            "--out", str(tmp_path / "m.safetensors")]  # fmt: skip
    assert main([*base, "--what", "self-training"]) == 2
    assert "add --seen-only" in capsys.readouterr().err
    assert main([*base, "--what", "self-training", "--seen-only", "--proposals", "none"]) == 2
    assert "pass --proposals" in capsys.readouterr().err
    assert main([*base, "--what", "self-training", "--seen-only", "--resume"]) == 2
    assert "drop --resume" in capsys.readouterr().err

"""Training on a synthetic VOC split with the tiny CLIP: the loss falls, resume is exact, the CLI works."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from zsseg_testing import FixedProposer

from zsseg.classify import build_classifier
from zsseg.classify.checkpoint import load_prompts_checkpoint
from zsseg.cli import main
from zsseg.data import load_dataset
from zsseg.errors import ZsSegError
from zsseg.train import TrainConfig, train
from zsseg.train.bank import soft_targets
from zsseg.train.regions import RegionOptions, gt_regions, trained_label

FAST = {"batch_size": 8, "lr": 1e-2}


def _train(backend, root: Path, out: Path, **kw) -> object:
    dataset = load_dataset("voc20", root, "train")
    opts = {**FAST, **{k: v for k, v in kw.items() if k not in ("resume", "seen_only")}}
    return train(backend, dataset, out, TrainConfig(**opts), split="train", seen_only=kw.get("seen_only", True),
                 resume=kw.get("resume", False), progress=False)  # fmt: skip


@pytest.mark.parametrize(("what", "mode"), [("strategy2", "projection"), ("strategy2", "last"), ("prompts", "-")])
def test_a_few_epochs_reduce_the_loss(tiny_clip, voc_root: Path, tmp_path: Path, what: str, mode: str) -> None:
    extra = {"train": mode} if what == "strategy2" else {"n_ctx": 4}
    summary = _train(tiny_clip, voc_root, tmp_path / "m.safetensors", what=what, epochs=3, **extra)
    losses = [h["loss"] for h in summary.history]  # type: ignore[attr-defined]
    assert len(losses) == 3 and losses[-1] < 0.9 * losses[0]
    meta = json.loads((tmp_path / "m.json").read_text())
    info = load_dataset("voc20", voc_root, "train").info
    seen = [n for i, n in enumerate(info.prompt_names) if i not in info.unseen_ids]
    assert meta["what"] == what and meta["epoch"] == 3 and meta["seen"] == seen and len(seen) == 15
    assert meta["vocabulary"] == seen and meta["backend"] == tiny_clip.name


def interrupt_epoch_2(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """Make training raise KeyboardInterrupt as epoch 2 (index 1) starts, as Ctrl-C would; return the real epoch."""
    import zsseg.train.trainer as trainer

    real = trainer._run_epoch

    def interrupted_in_epoch_2(*a, **kw):  # type: ignore[no-untyped-def]
        if a[5] == 1:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(trainer, "_run_epoch", interrupted_in_epoch_2)
    return real


def test_resume_continues_exactly(tiny_clip, voc_root: Path, tmp_path: Path, monkeypatch) -> None:
    import zsseg.train.trainer as trainer

    _train(tiny_clip, voc_root, tmp_path / "a.safetensors", epochs=3, train="last")
    real = interrupt_epoch_2(monkeypatch)
    with pytest.raises(trainer.TrainingInterrupted) as info:
        _train(tiny_clip, voc_root, tmp_path / "b.safetensors", epochs=3, train="last")
    assert info.value.epoch == 1
    monkeypatch.setattr(trainer, "_run_epoch", real)
    summary = _train(tiny_clip, voc_root, tmp_path / "b.safetensors", epochs=3, train="last", resume=True)
    assert summary.epochs_run == 2  # type: ignore[attr-defined]
    a, b = load_file(str(tmp_path / "a.safetensors")), load_file(str(tmp_path / "b.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    hist_a = json.loads((tmp_path / "a.json").read_text())["history"]
    hist_b = json.loads((tmp_path / "b.json").read_text())["history"]
    assert [h["loss"] for h in hist_a] == [h["loss"] for h in hist_b]
    done = _train(tiny_clip, voc_root, tmp_path / "b.safetensors", epochs=3, train="last", resume=True)
    assert done.epochs_run == 0  # type: ignore[attr-defined]


def test_user_errors_name_the_fix(tiny_clip, voc_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.safetensors"
    with pytest.raises(ZsSegError, match=r"\.safetensors"):
        _train(tiny_clip, voc_root, tmp_path / "m.pt", epochs=1)
    with pytest.raises(ZsSegError, match="drop --resume"):
        _train(tiny_clip, voc_root, out, epochs=1, resume=True)
    _train(tiny_clip, voc_root, out, epochs=1)
    with pytest.raises(ZsSegError, match="pass --resume"):
        _train(tiny_clip, voc_root, out, epochs=1)
    with pytest.raises(ZsSegError, match="other lr"):
        _train(tiny_clip, voc_root, out, epochs=2, lr=0.5, resume=True)
    with pytest.raises(ZsSegError, match="with --seen-only"):
        _train(tiny_clip, voc_root, out, epochs=2, resume=True, seen_only=False)
    with pytest.raises(ZsSegError, match="--train"):
        _train(tiny_clip, voc_root, tmp_path / "x.safetensors", train="everything")


def test_prompts_and_classifier_plug_into_the_pipeline(tiny_clip, voc_root: Path, tmp_path: Path) -> None:
    from zsseg.pipeline import Segmenter

    _train(tiny_clip, voc_root, tmp_path / "s2.safetensors", epochs=1)
    _train(tiny_clip, voc_root, tmp_path / "p.safetensors", epochs=1, what="prompts", n_ctx=4)
    assert load_prompts_checkpoint(tmp_path / "p.safetensors", tiny_clip).learner.n_ctx == 4
    clf = build_classifier(tiny_clip, classifier=tmp_path / "s2.safetensors", prompts=tmp_path / "p.safetensors")
    masks = np.zeros((2, 40, 40), bool)
    masks[0, :, :20], masks[1, :, 20:] = True, True
    seg = Segmenter(FixedProposer(masks), clf)
    result = seg.segment(np.full((40, 40, 3), 128, np.uint8), ["aeroplane", "sheep", "sofa"])
    assert result.probs.shape == (2, 3) and result.label_map.shape == (40, 40)
    assert seg.model_name == tiny_clip.name


def test_regions_from_labels_and_proposals() -> None:
    label = np.full((20, 20), 255, np.int64)
    label[0:5, 0:5] = 0
    label[10:15, 10:15] = 0  # class 0 in two pieces
    label[0:8, 12:20] = 1
    label[16:20, 0:4] = 2  # unseen class 2
    masks, ids = gt_regions(label, [0, 1], RegionOptions("both", min_area=0.0))
    assert ids.tolist() == [0, 0, 0, 1] and masks[0].sum() == 50 and masks[1].sum() == 25
    masks, ids = gt_regions(label, [0, 1], RegionOptions("class", min_area=0.15))
    assert ids.tolist() == [1]  # class 0 has 50 pixels, below 15% of 400; class 1 has 64
    props = np.zeros((4, 20, 20), bool)
    props[0, 0:8, 12:20] = True  # = class 1
    props[1, 16:20, 0:4] = True  # = unseen class 2: unlabelled, so no object
    props[2, 5:10, 5:10] = True  # on unlabelled pixels: no object
    props[3, 0:20, 0:20] = True  # everything: 50 px of class 0, 64 of class 1, the rest unlabelled
    seen_label = trained_label(label, [0, 1], 255)
    assert (seen_label == 2).sum() == 0 and (seen_label == 255).sum() == (label == 255).sum() + 16
    comp = soft_targets(props, seen_label, [0, 1], "composition")
    np.testing.assert_allclose(comp, [[0, 1, 0], [0, 0, 1], [0, 0, 1], [50 / 400, 64 / 400, 286 / 400]], atol=1e-6)
    iou = soft_targets(props, seen_label, [0, 1], "iou", match_iou=0.5, no_object_iou=0.2)
    np.testing.assert_allclose(iou, [[0, 1, 0], [0, 0, 1], [0, 0, 1], [0, 0, 1]], atol=1e-6)
    half = np.zeros((1, 20, 20), bool)
    half[0, 0:8, 12:20], half[0, 8:10, 12:20] = True, True  # IoU 64/80 = 0.8 with class 1
    ramp = soft_targets(half, seen_label, [0, 1], "iou", match_iou=0.9, no_object_iou=0.4)
    np.testing.assert_allclose(ramp, [[0, 0.8, 0.2]], atol=1e-6)  # (0.8 - 0.4) / (0.9 - 0.4) of class 1


def test_cli_train_and_ctrl_c(tiny_clip, voc_root: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    out = tmp_path / "cli.safetensors"
    args = ["train", "--dataset", "voc20", "--root", str(voc_root), "--seen-only", "--what", "strategy2",
            "--model", tiny_clip.name, "--epochs", "3", "--batch-size", "8", "--out", str(out)]  # fmt: skip
    import zsseg.train.trainer as trainer

    real = interrupt_epoch_2(monkeypatch)
    assert main(args) == 130
    assert "keeps epoch 1" in capsys.readouterr().err
    assert json.loads(out.with_suffix(".json").read_text())["epoch"] == 1
    monkeypatch.setattr(trainer, "_run_epoch", real)
    assert main([*args, "--resume"]) == 0
    assert json.loads(out.with_suffix(".json").read_text())["epoch"] == 3
    assert main([*args, "--lambda", "0.6"]) == 2
    assert "pass --resume" in capsys.readouterr().err


def test_flags_for_segment_and_eval(tiny_clip, voc_root: Path, tmp_path: Path) -> None:
    import argparse

    from zsseg.classify import model_for as resolve_model
    from zsseg.cli_options import add_classifier_flags, classifier_options

    p = argparse.ArgumentParser()
    add_classifier_flags(p)
    args = p.parse_args(["--classifier", "s2.safetensors", "--lambda", "0.6"])
    assert classifier_options(args) == {
        "classifier_checkpoint": Path("s2.safetensors"),
        "prompts_checkpoint": None,
        "ensemble_lambda": 0.6,
    }
    _train(tiny_clip, voc_root, tmp_path / "s2.safetensors", epochs=1)
    assert resolve_model("auto", None, tmp_path / "s2.safetensors") == tiny_clip.name
    assert resolve_model("conse:efficientnet-lite0", tmp_path / "s2.safetensors") == "conse:efficientnet-lite0"
    assert resolve_model("auto") == "auto"

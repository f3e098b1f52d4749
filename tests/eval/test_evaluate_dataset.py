"""evaluate_dataset: running a segmenter over a dataset, timing, saving predictions."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zsseg.data import SegDataset, load_dataset
from zsseg.eval import evaluate_dataset, format_markdown, save_label_png
from zsseg.viz import palette


def make_folder(root: Path, n: int = 4) -> SegDataset:
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (6, 9, 3), dtype=np.uint8)).save(root / "images" / f"s{i}.png")
        label = np.zeros((6, 9), np.uint8)
        label[:, 4:] = 1 + i % 2
        label[0] = 255
        Image.fromarray(label).save(root / "labels" / f"s{i}.png")
    (root / "classes.txt").write_text("sky\nroad\ncar\n")
    return load_dataset("folder", root)


def test_oracle_and_constant_segmenters(tmp_path: Path) -> None:
    ds = make_folder(tmp_path / "ds")
    calls: list[tuple[tuple[int, ...], tuple[str, ...]]] = []
    gts = {s.id: ds.load_label(s) for s in ds.samples}
    order = iter(ds.samples)

    def oracle(image: np.ndarray, vocabulary: Sequence[str]) -> np.ndarray:
        calls.append((image.shape, tuple(vocabulary)))
        gt = gts[next(order).id]
        return np.where(gt == 255, 0, gt)

    res = evaluate_dataset(oracle, ds, limit=3, progress=False, save_predictions=tmp_path / "pred")
    assert calls == [((6, 9, 3), ("sky", "road", "car"))] * 3
    assert res["mIoU"] == 100.0 and res["pAcc"] == 100.0
    assert res["dataset"] == "folder" and res["num_images"] == 3
    assert res["seconds_per_image"] >= 0
    saved = sorted(p.name for p in (tmp_path / "pred").iterdir())
    assert saved == ["s0.png", "s1.png", "s2.png"]
    with Image.open(tmp_path / "pred" / "s1.png") as im:
        assert im.mode == "P"
        np.testing.assert_array_equal(np.asarray(im), np.where(gts["s1"] == 255, 0, gts["s1"]))
        assert (im.getpalette() or [])[:9] == palette(3).reshape(-1).tolist()

    def constant(image: np.ndarray, vocabulary: Sequence[str]) -> np.ndarray:
        return np.zeros(image.shape[:2], np.int64)

    res = evaluate_dataset(constant, ds, progress=False)
    assert res["num_images"] == 4
    assert res["IoU"]["sky"] == pytest.approx(400 / 9) and res["IoU"]["road"] == 0.0 and res["IoU"]["car"] == 0.0
    assert "| folder | 4 |" in format_markdown(res)


def test_wrong_prediction_shape(tmp_path: Path) -> None:
    ds = make_folder(tmp_path / "ds", n=1)
    with pytest.raises(ValueError, match=r"segmenter returned shape \(9, 6\) for s0, but its label is \(6, 9\)"):
        evaluate_dataset(lambda im, voc: np.zeros((9, 6), int), ds, progress=False)


def test_save_label_png_large_values(tmp_path: Path) -> None:
    label = np.array([[0, 846], [300, 65535]])
    save_label_png(label, tmp_path / "x.png", num_classes=847)
    with Image.open(tmp_path / "x.png") as im:
        np.testing.assert_array_equal(np.asarray(im), label)
    with pytest.raises(ValueError, match="do not fit"):
        save_label_png(np.array([[-1]]), tmp_path / "y.png", num_classes=3)
    cmap = palette(256)
    assert cmap.shape == (256, 3) and cmap[0].tolist() == [128, 0, 0] and len({tuple(c) for c in cmap}) == 256


@pytest.mark.data
def test_oracle_on_real_voc(data_root: Path) -> None:
    if not (data_root / "VOCdevkit").is_dir():
        pytest.skip("VOCdevkit is absent from the benchmark data folder")
    ds = load_dataset("voc", data_root)
    labels = iter(ds.load_label(s) for s in ds.samples)

    def oracle(image: np.ndarray, vocabulary: Sequence[str]) -> np.ndarray:
        gt = next(labels)
        assert gt.shape == image.shape[:2] and len(vocabulary) == 21
        return np.where(gt == 255, 0, gt)

    res = evaluate_dataset(oracle, ds, limit=5, progress=False)
    assert res["num_images"] == 5 and res["mIoU"] == 100.0 and res["mIoU_seen"] == 100.0
    assert res["hIoU"] in (None, 100.0)  # None when no unseen class occurs in these 5 images

"""SemSegEvaluator against independent computations (boolean masks per class) and hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest

from zsseg.eval import SemSegEvaluator, format_markdown


def reference(preds: list[np.ndarray], gts: list[np.ndarray], k: int, ignore: int = 255) -> dict:
    """Per-class IoU/Acc with boolean masks over all images, detectron2's conventions, in percent."""
    pred = np.concatenate([p.ravel() for p in preds])
    gt = np.concatenate([g.ravel() for g in gts])
    keep = gt != ignore
    pred, gt = pred[keep], gt[keep]
    iou: dict[int, float | None] = {}
    acc: dict[int, float | None] = {}
    freq: dict[int, float] = {}
    for c in range(k):
        g, p = gt == c, pred == c
        if not g.any():
            iou[c] = acc[c] = None
            continue
        iou[c] = 100 * np.logical_and(g, p).sum() / np.logical_or(g, p).sum()
        acc[c] = 100 * np.logical_and(g, p).sum() / g.sum()
        freq[c] = g.sum() / gt.size
    ious = {c: v for c, v in iou.items() if v is not None}
    accs = {c: v for c, v in acc.items() if v is not None}
    return {
        "IoU": iou,
        "Acc": acc,
        "mIoU": float(np.mean(list(ious.values()))),
        "mAcc": float(np.mean(list(accs.values()))),
        "fwIoU": float(sum(v * freq[c] for c, v in ious.items())),
        "pAcc": 100 * float((pred == gt).mean()),
    }


def test_random_arrays_match_boolean_mask_reference() -> None:
    rng = np.random.default_rng(0)
    k = 7
    ev = SemSegEvaluator(k)
    preds, gts = [], []
    for shape in [(13, 17), (9, 5), (20, 11)]:
        gt = rng.integers(0, k - 1, shape)  # class 6 never in GT ...
        gt[rng.random(shape) < 0.2] = 255
        pred = rng.integers(0, k, shape)  # ... but predicted
        pred[rng.random(shape) < 0.05] = 255  # unlabelled predictions
        pred[rng.random(shape) < 0.05] = -3  # garbage predictions
        ev.process(pred, gt)
        preds.append(pred)
        gts.append(gt)
    res, ref = ev.evaluate(), reference(preds, gts, k)
    for key in ("mIoU", "mAcc", "fwIoU", "pAcc"):
        assert res[key] == pytest.approx(ref[key], abs=1e-9), key
    for c in range(k):
        assert (res["IoU"][str(c)] is None) == (ref["IoU"][c] is None)
        if ref["IoU"][c] is not None:
            assert res["IoU"][str(c)] == pytest.approx(ref["IoU"][c])
            assert res["Acc"][str(c)] == pytest.approx(ref["Acc"][c])
    assert res["IoU"]["6"] is None  # predicted but absent from GT: no IoU, left out of the mean
    assert res["num_pixels"] == sum(int((g != 255).sum()) for g in gts)
    assert ev.num_images == 3


def test_streaming_equals_one_shot() -> None:
    rng = np.random.default_rng(1)
    gts = [rng.integers(0, 4, (8, 8)) for _ in range(4)]
    preds = [rng.integers(0, 4, (8, 8)) for _ in range(4)]
    a, b = SemSegEvaluator(4), SemSegEvaluator(4)
    for p, g in zip(preds, gts, strict=True):
        a.process(p, g)
    b.process(np.concatenate(preds), np.concatenate(gts))
    assert a.evaluate() == b.evaluate()
    a.reset()
    assert a.num_images == 0 and a.evaluate()["mIoU"] is None


def test_hand_made_case() -> None:
    # classes: 0 sky, 1 road, 2 car (absent from GT and predictions), 3 dog (predicted, absent from GT)
    gt = np.array([[0, 0, 0, 255],
                   [1, 1, 1, 255]])  # fmt: skip
    pred = np.array([[0, 0, 1, 3],
                     [1, 3, 255, 0]])  # fmt: skip
    ev = SemSegEvaluator(4, ["sky", "road", "car", "dog"])
    ev.process(pred, gt)
    res = ev.evaluate()
    # sky: tp 2, gt 3, pred 2 (ignore-pixel predictions are not counted) -> 2/3
    # road: tp 1, gt 3, pred 2 -> 1/4 ; the 255 prediction at a road pixel is a miss
    assert res["IoU"] == {
        "sky": pytest.approx(200 / 3),
        "road": pytest.approx(25.0),
        "car": None,
        "dog": None,
    }
    assert res["Acc"] == {
        "sky": pytest.approx(200 / 3),
        "road": pytest.approx(100 / 3),
        "car": None,
        "dog": None,
    }
    assert res["mIoU"] == pytest.approx((200 / 3 + 25) / 2)
    assert res["pAcc"] == pytest.approx(50.0)
    assert res["mAcc"] == pytest.approx(50.0)
    assert res["fwIoU"] == pytest.approx(0.5 * 200 / 3 + 0.5 * 25)
    assert "hIoU" not in res


def test_perfect_prediction_and_all_ignore() -> None:
    gt = np.array([[0, 1], [2, 255]])
    ev = SemSegEvaluator(3, ignore_index=255)
    ev.process(gt.copy(), gt)
    res = ev.evaluate()
    assert res["mIoU"] == res["pAcc"] == res["mAcc"] == res["fwIoU"] == 100.0
    empty = SemSegEvaluator(3)
    empty.process(np.zeros((2, 2), int), np.full((2, 2), 255))
    res = empty.evaluate()
    assert res["mIoU"] is None and res["pAcc"] is None and res["IoU"] == {"0": None, "1": None, "2": None}


def test_unseen_split_and_hiou() -> None:
    k = 4  # unseen: 2, 3
    gt = np.array([[0, 0, 1, 1, 2, 2, 3, 3]])
    pred = np.array([[0, 0, 1, 0, 2, 3, 3, 3]])
    ev = SemSegEvaluator(k, ["a", "b", "c", "d"], unseen=[3, 2])
    ev.process(pred, gt)
    res = ev.evaluate()
    iou = {"a": 2 / 3, "b": 1 / 2, "c": 1 / 2, "d": 2 / 3}
    seen = 100 * (iou["a"] + iou["b"]) / 2
    unseen = 100 * (iou["c"] + iou["d"]) / 2
    assert res["mIoU_seen"] == pytest.approx(seen)
    assert res["mIoU_unseen"] == pytest.approx(unseen)
    assert res["hIoU"] == pytest.approx(2 * seen * unseen / (seen + unseen))
    assert res["unseen_classes"] == ["c", "d"]
    # no unseen class in GT: unseen mIoU and hIoU undefined
    ev.reset()
    ev.process(np.array([[0, 1]]), np.array([[0, 1]]))
    res = ev.evaluate()
    assert res["mIoU_seen"] == 100.0 and res["mIoU_unseen"] is None and res["hIoU"] is None
    # unseen classes all missed: hIoU 0
    ev.reset()
    ev.process(np.array([[0, 1, 0]]), np.array([[0, 1, 2]]))
    assert ev.evaluate()["hIoU"] == 0.0


def test_errors() -> None:
    ev = SemSegEvaluator(3)
    with pytest.raises(ValueError, match=r"prediction shape \(2, 3\) differs from ground-truth shape \(3, 2\)"):
        ev.process(np.zeros((2, 3), int), np.zeros((3, 2), int))
    with pytest.raises(ValueError, match="integer"):
        ev.process(np.zeros((2, 2), float), np.zeros((2, 2), int))
    with pytest.raises(ValueError, match=r"ground truth has values \[3\]"):
        ev.process(np.zeros((1, 2), int), np.array([[0, 3]]))
    with pytest.raises(ValueError, match="class names"):
        SemSegEvaluator(3, ["a", "b"])
    with pytest.raises(ValueError, match="ignore_index 1 is a class id"):
        SemSegEvaluator(3, ignore_index=1)
    with pytest.raises(ValueError, match="unseen"):
        SemSegEvaluator(3, unseen=[3])
    assert ev.num_images == 0  # failed calls added nothing


def test_large_vocabulary_uint16() -> None:
    k = 847
    rng = np.random.default_rng(2)
    gt = rng.integers(0, k, (30, 30)).astype(np.uint16)
    gt[0] = 65535
    pred = gt.astype(np.int64)
    pred[1] = (pred[1] + 1) % k
    ev = SemSegEvaluator(k, ignore_index=65535)
    ev.process(pred, gt)
    ref = reference([pred], [gt.astype(np.int64)], k, ignore=65535)
    assert ev.evaluate()["mIoU"] == pytest.approx(ref["mIoU"])


def test_format_markdown() -> None:
    ev = SemSegEvaluator(3, ["sky", "road|lane", "car"], unseen=[2])
    ev.process(np.array([[0, 1, 1]]), np.array([[0, 1, 2]]))
    res = ev.evaluate() | {"dataset": "toy", "num_images": 1, "seconds_per_image": 0.5}
    md = format_markdown(res)
    lines = md.splitlines()
    header = [
        "dataset",
        "num_images",
        "mIoU",
        "mIoU_seen",
        "mIoU_unseen",
        "hIoU",
        "fwIoU",
        "mAcc",
        "pAcc",
        "seconds_per_image",
    ]
    assert lines[0] == "| " + " | ".join(header) + " |"
    assert lines[2].startswith("| toy | 1 | 50.00 | 75.00 | 0.00 | 0.00 |")
    assert "| class | IoU | Acc | unseen |" in lines
    assert "| sky | 100.00 | 100.00 | |" in lines
    assert "| road/lane | 50.00 | 100.00 | |" in lines
    assert "| car | 0.00 | 0.00 | yes |" in lines
    plain = format_markdown(SemSegEvaluator(2).evaluate())
    assert "| 0 | - | - |" in plain.splitlines()

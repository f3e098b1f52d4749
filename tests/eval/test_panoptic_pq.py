"""PQ / SQ / RQ on hand-computed cases (panopticapi's rules: IoU > 0.5, void out of the union, crowd, void FPs)."""

from __future__ import annotations

import numpy as np
import pytest

from zsseg.data.targets import InstanceTarget
from zsseg.eval.panoptic import PanopticEvaluator
from zsseg.instances import Instances

CLASSES = ("cat", "dog", "sky")
THING = (True, True, False)


def target(id_map: np.ndarray, classes: list[int], crowd: list[bool] | None = None) -> InstanceTarget:
    ids = np.asarray(classes, dtype=np.int32)
    return InstanceTarget(
        id_map.astype(np.int32), ids, np.asarray(THING)[ids], np.asarray(crowd or [False] * len(ids), bool),
        id_map == 0,
    )  # fmt: skip


def pred(id_map: np.ndarray, classes: list[int]) -> Instances:
    ids = np.asarray(classes, dtype=np.int32)
    return Instances(id_map.astype(np.int32), ids, np.ones(len(ids), np.float32), np.asarray(THING)[ids], CLASSES)


def score(*pairs: tuple[Instances, InstanceTarget]) -> dict:
    ev = PanopticEvaluator(CLASSES, THING)
    for p, t in pairs:
        ev.process(p, t)
    return ev.evaluate()


def scene() -> np.ndarray:
    m = np.full((40, 60), 3, np.int32)  # sky everywhere else
    m[5:15, 5:15] = 1  # cat, 100 px
    m[20:30, 30:50] = 2  # dog, 200 px
    return m


def test_perfect_prediction_is_pq_100() -> None:
    m = scene()
    res = score((pred(m, [0, 1, 2]), target(m, [0, 1, 2])))
    for k in ("PQ", "SQ", "RQ", "PQ_th", "PQ_st", "SQ_st", "RQ_th"):
        assert res[k] == pytest.approx(100.0), k
    assert (res["num_classes"], res["num_classes_th"], res["num_classes_st"]) == (3, 2, 1)


def test_hand_computed_partial_match_and_false_positive() -> None:
    gt = np.zeros((40, 60), np.int32)
    gt[0:10, 0:10] = 1  # a cat, 100 px; the rest void
    gt[10:40, :] = 2  # sky
    p = np.zeros_like(gt)
    p[0:10, 0:8] = 1  # 80 px of the cat
    p[10:12, 0:10] = 1  # + 20 px of sky: IoU 80 / 120
    p[12:40, :] = 2  # sky, missing the 20 px the cat took and 40 px of void-free rows
    p[30:40, 50:60] = 3  # a dog in the sky: a false positive (and sky's IoU drops)
    p_inst = pred(p, [0, 2, 1])
    res = score((p_inst, target(gt, [0, 2])))
    cat = res["per_class"]["cat"]
    assert (cat["TP"], cat["FP"], cat["FN"]) == (1, 0, 0)
    assert cat["SQ"] == pytest.approx(100 * 80 / 120)
    dog = res["per_class"]["dog"]
    assert (dog["TP"], dog["FP"], dog["FN"], dog["PQ"]) == (0, 1, 0, 0.0)  # only predicted: counts, PQ 0
    sky_gt, sky_pred = 30 * 60, 28 * 60 - 100
    sky_iou = sky_pred / sky_gt  # the prediction lies inside the ground truth
    assert res["per_class"]["sky"]["PQ"] == pytest.approx(100 * sky_iou)
    assert res["PQ_th"] == pytest.approx((100 * 80 / 120 + 0.0) / 2)
    assert res["PQ"] == pytest.approx((100 * 80 / 120 + 0 + 100 * sky_iou) / 3)
    assert res["RQ_th"] == pytest.approx((100 + 0) / 2)


def test_iou_of_exactly_half_is_no_match() -> None:
    gt = np.zeros((20, 20), np.int32)
    gt[0:10, 0:10] = 1  # 100 px
    p = np.zeros_like(gt)
    p[0:10, 0:5] = 1  # 50 px inside: IoU 0.5
    gt[10:20, :] = 2
    p[10:20, :] = 2
    res = score((pred(p, [0, 2]), target(gt, [0, 2])))
    assert res["per_class"]["cat"] == {"PQ": 0.0, "SQ": 0.0, "RQ": 0.0, "TP": 0, "FP": 1, "FN": 1, "isthing": True}


def test_void_leaves_the_union_and_mostly_void_predictions_are_not_false_positives() -> None:
    gt = np.zeros((40, 60), np.int32)
    gt[10:20, 10:20] = 1  # cat, 100 px, the rest void
    p = np.zeros_like(gt)
    p[10:20, 5:20] = 1  # the cat and 50 void px: IoU 100 / (150 - 50) = 1
    p[30:40, 0:10] = 2  # a dog all in void: not a false positive
    p[0:4, 40:60] = 3  # a second dog, 80 px, all void for now
    res = score((pred(p, [0, 1, 1]), target(gt, [0])))
    assert res["per_class"]["cat"]["SQ"] == pytest.approx(100.0)
    assert "dog" not in res["per_class"]  # neither TP, FP nor FN
    gt[0:4, 52:60] = 2  # sky under part of the second dog: 48 of its 80 px stay void (60 %): still ignored
    res = score((pred(p, [0, 1, 1]), target(gt, [0, 2])))
    assert "dog" not in res["per_class"]
    gt[0:4, 40:60] = 2  # now none of it is void: a false positive
    res = score((pred(p, [0, 1, 1]), target(gt, [0, 2])))
    assert res["per_class"]["dog"]["FP"] == 1


def test_crowd_regions_never_match_and_absorb_their_class() -> None:
    gt = np.full((40, 60), 3, np.int32)
    gt[0:20, 0:30] = 1  # a crowd of cats
    gt[25:35, 40:50] = 2  # one cat
    p = np.full_like(gt, 3)
    p[0:20, 0:30] = 1  # the crowd exactly: not a match, not a false positive
    p[25:35, 40:50] = 2
    t = target(gt, [0, 0, 2], crowd=[True, False, False])
    cat = score((pred(p, [0, 0, 2]), t))["per_class"]["cat"]
    assert (cat["TP"], cat["FP"], cat["FN"]) == (1, 0, 0)
    dog = score((pred(p, [1, 0, 2]), t))["per_class"]["dog"]  # a dog on the crowd of cats is a false positive
    assert dog["FP"] == 1


def test_counts_accumulate_over_images_and_reset() -> None:
    m = scene()
    ev = PanopticEvaluator(CLASSES, THING)
    ev.process(pred(m, [0, 1, 2]), target(m, [0, 1, 2]))
    ev.process(pred(np.where(m == 2, 3, m), [0, 1, 2]), target(m, [0, 1, 2]))  # the dog missed
    res = ev.evaluate()
    assert res["per_class"]["dog"]["TP"] == 1 and res["per_class"]["dog"]["FN"] == 1
    assert res["per_class"]["dog"]["RQ"] == pytest.approx(100 / 1.5)
    assert res["num_images"] == 2
    ev.reset()
    assert ev.evaluate()["PQ"] is None


def test_shape_mismatch_is_refused() -> None:
    m = scene()
    with pytest.raises(ValueError, match="ground truth"):
        PanopticEvaluator(CLASSES, THING).process(pred(m[:10], [0, 1, 2]), target(m, [0, 1, 2]))

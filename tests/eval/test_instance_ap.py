"""Mask AP through COCOeval on synthetic images with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from zsseg.data.targets import InstanceTarget
from zsseg.eval.instances import InstanceAPEvaluator
from zsseg.instances import Instances

pytest.importorskip("pycocotools")
CLASSES = ("cat", "dog", "sky")


def target(id_map: np.ndarray, classes: list[int], crowd: list[bool] | None = None, void=None) -> InstanceTarget:
    m = len(classes)
    ids = np.asarray(classes, dtype=np.int32)
    return InstanceTarget(
        id_map.astype(np.int32),
        ids,
        ids != 2,
        np.asarray(crowd or [False] * m, bool),
        np.zeros(id_map.shape, bool) if void is None else void,
    )


def pred(id_map: np.ndarray, classes: list[int], scores: list[float]) -> Instances:
    ids = np.asarray(classes, dtype=np.int32)
    return Instances(id_map.astype(np.int32), ids, np.asarray(scores, np.float32), ids != 2, CLASSES)


def two_objects() -> np.ndarray:
    m = np.zeros((40, 60), np.int32)
    m[5:20, 5:25] = 1  # cat
    m[22:38, 30:55] = 2  # dog
    m[:3, :] = 3  # sky (stuff: not scored)
    return m


def run(*pairs: tuple[Instances, InstanceTarget]) -> dict:
    ev = InstanceAPEvaluator(CLASSES, [0, 1])
    for p, t in pairs:
        ev.process(p, t)
    return ev.evaluate()


def test_perfect_prediction_is_ap_100() -> None:
    m = two_objects()
    res = run((pred(m, [0, 1, 2], [0.9, 0.8, 1.0]), target(m, [0, 1, 2])))
    assert res["AP"] == pytest.approx(100.0) and res["AP50"] == pytest.approx(100.0)
    assert res["AP75"] == pytest.approx(100.0)
    assert res["num_gt_instances"] == 2 and res["num_predictions"] == 2  # stuff is not a detection
    assert res["AP_per_class"] == {"cat": pytest.approx(100.0), "dog": pytest.approx(100.0)}


def test_one_false_positive_ranked_first_halves_ap() -> None:
    gt = np.zeros((40, 60), np.int32)
    gt[5:20, 5:25] = 1
    p = gt.copy()
    p[25:35, 40:55] = 2  # a second cat where there is none
    # ranked above the true one: precision 0 then 1/2 at recall 1 -> interpolated precision 0.5 everywhere
    assert run((pred(p, [0, 0], [0.5, 0.9]), target(gt, [0])))["AP"] == pytest.approx(50.0)
    # ranked below: the curve reaches recall 1 at precision 1 first
    assert run((pred(p, [0, 0], [0.9, 0.5]), target(gt, [0])))["AP"] == pytest.approx(100.0)


def test_wrong_class_is_a_miss_and_a_false_positive() -> None:
    gt = np.zeros((40, 60), np.int32)
    gt[5:20, 5:25] = 1
    res = run((pred(gt, [1], [0.9]), target(gt, [0])))
    assert res["AP"] == pytest.approx(0.0)
    assert res["AP_per_class"]["dog"] is None  # no dog in the ground truth: not in the mean


def test_iou_between_thresholds() -> None:
    gt = np.zeros((40, 60), np.int32)
    gt[0:20, 0:20] = 1  # 400 px
    p = np.zeros_like(gt)
    p[0:20, 0:14] = 1  # 280 px inside: IoU 0.7 -> a hit at 0.50..0.70, a miss from 0.75
    res = run((pred(p, [0], [0.9]), target(gt, [0])))
    assert res["AP50"] == pytest.approx(100.0) and res["AP75"] == pytest.approx(0.0)
    assert res["AP"] == pytest.approx(50.0)  # 5 of the 10 thresholds


def test_void_pixels_neither_help_nor_hurt() -> None:
    gt = np.zeros((40, 60), np.int32)
    gt[10:20, 10:20] = 1
    void = np.zeros(gt.shape, bool)
    void[8:22, 8:22] = True
    void[10:20, 10:20] = False  # a 2-px void border round the object, as in VOC
    void[30:40, 40:60] = True
    p = np.zeros_like(gt)
    p[8:22, 8:22] = 1  # the object and its border: IoU 1 once void is cleared
    p[30:40, 40:60] = 2  # a detection lying in void: nothing left of it once void is cleared
    res = run((pred(p, [0, 0], [0.5, 0.9]), target(gt, [0], void=void)))
    assert res["AP"] == pytest.approx(100.0) and res["num_predictions"] == 1


def test_detection_in_a_crowd_region_is_ignored() -> None:
    gt = np.zeros((40, 60), np.int32)
    gt[5:20, 5:25] = 1
    gt[25:40, 30:60] = 2  # a crowd of cats
    p = np.zeros_like(gt)
    p[5:20, 5:25] = 1
    p[26:38, 32:50] = 2
    res = run((pred(p, [0, 0], [0.5, 0.9]), target(gt, [0, 0], crowd=[False, True])))
    assert res["AP"] == pytest.approx(100.0) and res["num_gt_instances"] == 1


def test_no_detection_and_no_ground_truth() -> None:
    gt = two_objects()
    empty = pred(np.zeros_like(gt), [], [])
    assert run((empty, target(gt, [0, 1, 2])))["AP"] == 0.0
    assert run((empty, target(np.zeros_like(gt), [])))["AP"] is None


def test_stream_over_images_and_reset() -> None:
    m = two_objects()
    ev = InstanceAPEvaluator(CLASSES, [0, 1])
    ev.process(pred(m, [0, 1, 2], [0.9, 0.8, 1.0]), target(m, [0, 1, 2]))
    ev.process(pred(np.zeros_like(m), [], []), target(m, [0, 1, 2]))  # second image: both missed
    res = ev.evaluate()
    assert res["num_images"] == 2 and res["num_gt_instances"] == 4
    assert res["AP50"] == pytest.approx(50.0, abs=1.0)  # recall stops at 1/2 (101-point interpolation)
    ev.reset()
    assert ev.evaluate()["AP"] is None


def test_size_mismatch_is_refused() -> None:
    m = two_objects()
    with pytest.raises(ValueError, match="size"):
        InstanceAPEvaluator(CLASSES, [0, 1]).process(pred(m[:20], [0], [0.9]), target(m, [0, 1, 2]))


def test_a_match_mostly_in_void_still_counts() -> None:
    gt = np.zeros((40, 60), np.int32)
    gt[10:20, 10:20] = 1  # 100 px
    void = gt == 0  # VOC-20: background is void
    p = np.zeros_like(gt)
    p[5:25, 5:25] = 1  # 400 px, 3/4 in void: a match once void is cleared (as PQ matches it)
    res = run((pred(p, [0], [0.9]), target(gt, [0], void=void)))
    assert res["AP"] == pytest.approx(100.0)


def test_a_miss_mostly_in_void_is_no_false_positive_but_one_mostly_outside_is() -> None:
    gt = np.zeros((40, 60), np.int32)
    gt[10:20, 10:20] = 1
    void = np.zeros(gt.shape, bool)
    void[25:40, :] = True
    p = gt.copy()
    p[28:40, 40:60] = 2  # all in void, ranked first: ignored
    assert run((pred(p, [0, 0], [0.5, 0.9]), target(gt, [0], void=void)))["AP"] == pytest.approx(100.0)
    p = gt.copy()
    p[20:30, 40:60] = 2  # half outside void (share 0.5, not more): a false positive ranked first
    assert run((pred(p, [0, 0], [0.5, 0.9]), target(gt, [0], void=void)))["AP"] == pytest.approx(50.0)

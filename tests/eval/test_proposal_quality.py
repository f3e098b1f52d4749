"""Proposal quality measures on hand-made label maps."""

from __future__ import annotations

import numpy as np
import pytest

from zsseg.eval.proposal_quality import SegmentRecall, oracle_label_map, segment_recall
from zsseg.proposals.base import Proposals


def _props(*masks: np.ndarray) -> Proposals:
    stack = np.stack(masks).astype(bool)
    return Proposals(stack, np.ones(len(masks), dtype=np.float32))


@pytest.fixture
def gt() -> np.ndarray:
    """6x6: class 0 on the left half, class 2 on the right half, a void column at x=3, row 5 of class 1."""
    g = np.zeros((6, 6), dtype=np.int64)
    g[:, 3:] = 2
    g[:, 3] = 255
    g[5, :] = 1
    return g


def test_oracle_perfect_proposals_give_ground_truth(gt: np.ndarray) -> None:
    masks = [(gt == k) for k in (0, 1, 2)]
    out = oracle_label_map(_props(*masks), gt, num_classes=3)
    assert out.dtype == np.int32 and out.shape == gt.shape
    valid = gt != 255
    assert np.array_equal(out[valid], gt[valid])


def test_oracle_majority_class_and_gap_filling(gt: np.ndarray) -> None:
    left = np.zeros_like(gt, dtype=bool)
    left[:, :3] = True  # 15 pixels of class 0, 3 of class 1 -> class 0
    out = oracle_label_map(_props(left), gt, num_classes=3)
    # only one proposal: every pixel, covered or filled from the nearest covered pixel, gets class 0
    assert np.all(out == 0)


def test_oracle_overlaps_vote_by_count(gt: np.ndarray) -> None:
    everything = np.ones_like(gt, dtype=bool)  # majority: class 0 (15) vs 2 (10) vs 1 (6)
    right = np.zeros_like(gt, dtype=bool)
    right[:5, 4:] = True  # all class 2
    right2 = right.copy()
    out = oracle_label_map(_props(everything, right, right2), gt, num_classes=3)
    assert np.all(out[:5, 4:] == 2)  # two votes for 2 beat one vote for 0
    assert np.all(out[:, :3] == 0)


def test_oracle_drops_void_only_proposals(gt: np.ndarray) -> None:
    void = gt == 255
    right = np.zeros_like(gt, dtype=bool)
    right[:5, 4:] = True
    out = oracle_label_map(_props(void, right), gt, num_classes=3)
    assert np.all(out == 2)  # the void-only proposal neither votes nor counts as covering


def test_oracle_without_proposals_and_bad_input(gt: np.ndarray) -> None:
    assert np.all(oracle_label_map(Proposals.empty(6, 6), gt, 3) == 0)
    with pytest.raises(ValueError, match="outside"):
        oracle_label_map(_props(gt == 0), gt, num_classes=2)
    with pytest.raises(ValueError, match="shape"):
        oracle_label_map(Proposals.empty(5, 6), gt, 3)


def test_segment_recall(gt: np.ndarray) -> None:
    exact0 = gt == 0  # IoU 1 with class 0
    half2 = np.zeros_like(gt, dtype=bool)
    half2[:2, 4:] = True  # 4 of the 10 class-2 pixels: IoU 0.4
    res = segment_recall(_props(exact0, half2), gt)
    assert isinstance(res, SegmentRecall)
    assert res.num_gt_segments == 3 and res.num_recalled == 1
    assert res.mean_best_iou == pytest.approx((1.0 + 0.0 + 0.4) / 3)
    assert segment_recall(_props(exact0, half2), gt, iou=0.4).num_recalled == 2


def test_segment_recall_ignores_void_pixels(gt: np.ndarray) -> None:
    right = np.zeros_like(gt, dtype=bool)
    right[:5, 3:] = True  # class 2 plus the void column: void pixels do not count against it
    res = segment_recall(_props(right), gt)
    assert res.mean_best_iou == pytest.approx(1.0 / 3)
    assert segment_recall(Proposals.empty(6, 6), gt) == (3, 0, 0.0)
    assert segment_recall(Proposals.empty(6, 6), np.full((6, 6), 255)) == (0, 0, 0.0)

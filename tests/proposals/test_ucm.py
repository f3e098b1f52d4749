"""UCM proposer: contract, determinism, recovery of flat shapes, nested hierarchy; and the region helpers."""

from __future__ import annotations

import numpy as np
import pytest
from zsseg_testing import best_iou, shapes_scene

from zsseg.proposals.base import MaskProposer, Proposals
from zsseg.proposals.regions import MergeTree, greedy_merge, select_masks
from zsseg.proposals.ucm import UcmProposer


@pytest.fixture(scope="module")
def proposer() -> UcmProposer:
    return UcmProposer()


def test_is_a_mask_proposer(proposer: UcmProposer) -> None:
    assert isinstance(proposer, MaskProposer)
    assert proposer.name == "ucm"


def test_shapes_dtypes_scores(proposer: UcmProposer, photo: np.ndarray, photo_proposals: Proposals) -> None:
    p = photo_proposals
    assert p.masks.dtype == np.bool_ and p.masks.shape[1:] == photo.shape[:2]
    assert p.scores.dtype == np.float32 and p.scores.shape == (len(p),)
    assert 10 <= len(p) <= proposer.max_proposals
    assert np.all(p.scores > 0) and np.all(p.scores <= 1) and p.scores.max() == 1.0
    assert np.all(np.diff(p.scores) <= 0)  # best first
    assert p.areas().min() >= proposer.min_region_area * photo.shape[0] * photo.shape[1] * 0.9
    assert p.masks[0].all()  # the root (1 region) lives longest
    assert len(p.deduplicate(0.99)) == len(p)  # no identical masks


def test_deterministic(proposer: UcmProposer, photo: np.ndarray, photo_proposals: Proposals) -> None:
    again = proposer(photo)
    assert np.array_equal(again.masks, photo_proposals.masks)
    assert np.array_equal(again.scores, photo_proposals.scores)


@pytest.mark.parametrize("size", [(120, 160), (420, 520)])
def test_recovers_flat_shapes(size: tuple[int, int]) -> None:
    image, targets = shapes_scene(*size)
    proposals = UcmProposer()(image)
    assert proposals.masks.shape[1:] == size
    for target in targets:
        assert best_iou(proposals, target) > 0.9
    assert best_iou(proposals, ~np.any(targets, axis=0)) > 0.9


def test_flat_image_gives_whole_image() -> None:
    proposals = UcmProposer()(np.full((50, 70, 3), 200, dtype=np.uint8))
    assert len(proposals) == 1 and proposals.masks.shape == (1, 50, 70) and proposals.masks.all()
    assert proposals.scores.tolist() == [1.0]


@pytest.mark.parametrize(
    ("image", "match"),
    [
        (np.zeros((20, 30, 3), dtype=np.float64), r"uint8.*float64"),
        (np.zeros((20, 30), dtype=np.uint8), r"\(H, W, 3\).*\(20, 30\)"),
        (np.zeros((3, 20, 30), dtype=np.uint8), r"\(H, W, 3\).*\(3, 20, 30\)"),
    ],
)
def test_rejects_bad_images(proposer: UcmProposer, image: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        proposer(image)


@pytest.mark.parametrize(
    "kwargs",
    [{"weights": (1.0, 1.0)}, {"thresholds": (1.5,)}, {"region_counts": (), "thresholds": ()}, {"sigmas": (0.0,)}],
)
def test_rejects_bad_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        UcmProposer(**kwargs)  # type: ignore[arg-type]


def test_partitions_are_nested(photo: np.ndarray) -> None:
    proposer = UcmProposer(thresholds=(0.05, 0.2, 0.4))
    cuts, levels = proposer.partitions(photo)
    assert levels.shape == (len(cuts), *photo.shape[:2]) and levels.dtype == np.int32
    assert np.all(np.diff(cuts) > 0) and {0.05, 0.2, 0.4} <= set(cuts.tolist())
    counts = [len(np.unique(level)) for level in levels]
    assert counts == sorted(counts, reverse=True) and counts[-1] == 1 and counts[0] > 30
    for lower, higher in zip(levels[:-1], levels[1:], strict=True):
        # every region of the lower level lies inside exactly one region of the higher level
        pairs = np.unique(lower.astype(np.int64) * (higher.max() + 1) + higher)
        assert len(pairs) == len(np.unique(lower))
    # cutting by region counts hits the asked-for counts (ties aside)
    assert 13 in counts and 55 in counts


def test_ucm_is_ultrametric(proposer: UcmProposer, photo: np.ndarray) -> None:
    labels, tree, heights = proposer.hierarchy(photo)
    parent = tree.parents()
    assert np.all(heights[parent[parent >= 0]] >= heights[parent >= 0])
    ucm = proposer.ultrametric_contour_map(photo)
    assert ucm.shape == labels.shape and ucm.dtype == np.float32
    assert ucm.min() == 0.0 and ucm.max() == pytest.approx(heights.max())
    contour = proposer.contour_map(photo)
    assert contour.shape == labels.shape and contour.min() >= 0.0 and contour.max() < 1.0


def test_greedy_merge_and_tree_helpers() -> None:
    # a chain of 4 regions 0-1-2-3; priorities make (2, 3) merge first, then (0, 1), then the rest
    pairs = np.array([[0, 1], [1, 2], [2, 3]])
    calls: list[tuple[int, int, int, list[int]]] = []

    def update(i: int, j: int, k: int, neighbours: np.ndarray) -> np.ndarray:
        calls.append((i, j, k, neighbours.tolist()))
        return np.full(len(neighbours), 5.0)

    tree = greedy_merge(4, pairs, np.array([0.5, 0.9, 0.1]), update)
    assert tree.children.tolist() == [[2, 3], [0, 1], [4, 5]]
    assert tree.heights.tolist() == [0.1, 0.5, 5.0]
    assert calls[0] == (2, 3, 4, [1]) and calls[1] == (0, 1, 5, [4])
    assert tree.parents().tolist() == [5, 5, 4, 4, 6, 6, -1]
    assert tree.lowest_common_ancestor(np.array([0, 2, 0]), np.array([1, 3, 3])).tolist() == [5, 4, 6]
    # disconnected leaves are still joined into one tree
    forest = greedy_merge(3, np.array([[0, 1]]), np.array([0.2]), lambda i, j, k, n: np.zeros(len(n)))
    assert isinstance(forest, MergeTree) and forest.n_nodes == 5


def test_select_masks_caps_and_deduplicates() -> None:
    masks = np.zeros((4, 10, 10), dtype=bool)
    masks[0, :5] = True
    masks[1, :5] = True
    masks[1, 5, 0] = True  # near-duplicate of 0
    masks[2, 5:] = True
    masks[3, :, :3] = True
    kept, out = select_masks(lambda ids: masks[ids], np.array([1, 0, 2, 3]), 2, 0.9, batch=3)
    assert kept.tolist() == [1, 2] and np.array_equal(out, masks[[1, 2]])

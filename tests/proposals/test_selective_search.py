"""Selective Search proposer: contract, determinism, recovery of flat shapes, hierarchy structure."""

from __future__ import annotations

import numpy as np
import pytest
from zsseg_testing import best_iou, shapes_scene

from zsseg.proposals.base import MaskProposer, Proposals
from zsseg.proposals.regions import NodeMasker, upsample_masks
from zsseg.proposals.selective_search import SelectiveSearchProposer


@pytest.fixture(scope="module")
def proposer() -> SelectiveSearchProposer:
    return SelectiveSearchProposer()


def test_is_a_mask_proposer(proposer: SelectiveSearchProposer) -> None:
    assert isinstance(proposer, MaskProposer)
    assert proposer.name == "selective-search"


def test_shapes_dtypes_scores(proposer: SelectiveSearchProposer, photo: np.ndarray, photo_proposals: Proposals):
    p = photo_proposals
    assert p.masks.dtype == np.bool_ and p.masks.shape[1:] == photo.shape[:2]
    assert p.scores.dtype == np.float32 and p.scores.shape == (len(p),)
    assert 10 <= len(p) <= proposer.max_proposals
    assert np.all(p.scores > 0) and np.all(p.scores <= 1) and p.scores.max() == 1.0
    assert np.all(np.diff(p.scores) < 0)  # rank order
    assert p.areas().min() >= proposer.min_region_area * photo.shape[0] * photo.shape[1] * 0.9
    assert p.covered().all()  # the whole-image region is among the proposals
    assert len(p.deduplicate(0.99)) == len(p)  # no identical masks


def test_deterministic(proposer: SelectiveSearchProposer, photo: np.ndarray, photo_proposals: Proposals) -> None:
    again = proposer(photo)
    assert np.array_equal(again.masks, photo_proposals.masks)
    assert np.array_equal(again.scores, photo_proposals.scores)
    assert np.array_equal(SelectiveSearchProposer(seed=0)(photo).masks, again.masks)


@pytest.mark.parametrize("size", [(120, 160), (420, 520)])
def test_recovers_flat_shapes(size: tuple[int, int]) -> None:
    image, targets = shapes_scene(*size)
    proposals = SelectiveSearchProposer()(image)
    assert proposals.masks.shape[1:] == size
    for target in targets:
        assert best_iou(proposals, target) > 0.9
    assert best_iou(proposals, ~np.any(targets, axis=0)) > 0.9  # the background too


def test_cap_keeps_the_top_of_the_ranking() -> None:
    image, _ = shapes_scene(120, 160)
    capped = SelectiveSearchProposer(max_proposals=5)(image)
    everything = SelectiveSearchProposer(max_proposals=0)(image)
    assert len(capped) == 5 and len(everything) > 5
    assert np.array_equal(everything.masks[:5], capped.masks)


def test_flat_image_gives_whole_image() -> None:
    image = np.full((50, 70, 3), 77, dtype=np.uint8)
    proposals = SelectiveSearchProposer()(image)
    assert len(proposals) >= 1 and proposals.masks.shape == (len(proposals), 50, 70)
    assert proposals.masks[0].all()


def test_tiny_image() -> None:
    proposals = SelectiveSearchProposer()(np.zeros((1, 1, 3), dtype=np.uint8))
    assert proposals.masks.shape == (1, 1, 1) and proposals.masks.all()


@pytest.mark.parametrize(
    ("image", "match"),
    [
        (np.zeros((20, 30, 3), dtype=np.float32), r"uint8.*float32"),
        (np.zeros((20, 30), dtype=np.uint8), r"\(H, W, 3\).*\(20, 30\)"),
        (np.zeros((20, 30, 4), dtype=np.uint8), r"\(H, W, 3\).*\(20, 30, 4\)"),
        (np.zeros((0, 30, 3), dtype=np.uint8), r"\(0, 30, 3\)"),
    ],
)
def test_rejects_bad_images(proposer: SelectiveSearchProposer, image: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        proposer(image)


@pytest.mark.parametrize(
    "kwargs",
    [{"colour_spaces": "xyz"}, {"similarities": "cq"}, {"scales": ()}, {"max_proposals": -1}, {"min_region_area": 2.0}],
)
def test_rejects_bad_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SelectiveSearchProposer(**kwargs)  # type: ignore[arg-type]


def test_hierarchies_are_binary_merge_trees(photo: np.ndarray) -> None:
    proposer = SelectiveSearchProposer(colour_spaces="rgb", scales=(200.0,), similarities="ctsf,s")
    hierarchies = proposer.hierarchies(photo)
    assert len(hierarchies) == 2
    for labels, tree, sizes in hierarchies:
        assert labels.shape == (round(300 * 256 / 420), 256) and labels.dtype == np.int32
        assert tree.n_nodes == 2 * tree.n_leaves - 1  # merged down to a single region
        masks = NodeMasker(tree, labels)(np.arange(tree.n_nodes))
        assert np.array_equal(masks.reshape(tree.n_nodes, -1).sum(axis=1), sizes)
        for m, (a, b) in enumerate(tree.children):
            parent = masks[tree.n_leaves + m]
            assert np.array_equal(parent, masks[a] | masks[b]) and not (masks[a] & masks[b]).any()
        assert masks[-1].all()
    # the same leaves, different similarity: different merge orders
    assert not np.array_equal(hierarchies[0][1].children, hierarchies[1][1].children)


def test_upsampled_masks_match_upsampled_labels() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, size=(7, 9))
    masks = np.stack([labels == k for k in range(5)])
    up = upsample_masks(masks, (20, 31))
    assert up.shape == (5, 20, 31)
    assert np.array_equal(up.sum(axis=0), np.ones((20, 31)))  # still a partition
    up_labels = upsample_masks(labels[None], (20, 31))[0]
    assert np.array_equal(up, np.stack([up_labels == k for k in range(5)]))

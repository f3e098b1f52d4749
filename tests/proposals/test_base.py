import numpy as np
import pytest

from zsseg.proposals.base import Proposals


def test_validation_messages_state_shapes():
    with pytest.raises(ValueError, match=r"\(N, H, W\).*\(4, 4\)"):
        Proposals(np.zeros((4, 4), bool), np.zeros(4))
    with pytest.raises(ValueError, match="bool"):
        Proposals(np.zeros((2, 4, 4), np.uint8), np.zeros(2))
    with pytest.raises(ValueError, match=r"\(2,\).*\(3,\)"):
        Proposals(np.zeros((2, 4, 4), bool), np.zeros(3))


def test_boolean_indexing_and_helpers():
    masks = np.zeros((3, 4, 5), bool)
    masks[0, :2] = True
    masks[1, :, :1] = True
    masks[2, :2] = True
    p = Proposals(masks, np.array([0.5, 0.9, 0.7]))
    assert p.scores.dtype == np.float32
    assert p.image_size == (4, 5)
    assert p.areas().tolist() == [10, 4, 10]
    sub = p[p.areas() > 5]
    assert len(sub) == 2
    with pytest.raises(IndexError, match=r"\(3,\)"):
        p[np.ones(2, bool)]
    dedup = p.deduplicate(0.9)
    assert len(dedup) == 2 and sorted(dedup.scores.tolist()) == pytest.approx([0.7, 0.9])
    assert p.covered().sum() == 12
    assert len(Proposals.concat([p, Proposals.empty(4, 5)])) == 3

"""Training regions as the pipeline sees them: soft targets, the region bank, held-out images, the fitting
pieces (soft cross-entropy, temperature scaling)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from zsseg.errors import ZsSegError
from zsseg.train.bank import GT, PROPOSAL, RegionBank, holdout_images, pool_bank, soft_targets
from zsseg.train.fit import fit_temperature, held_out_loss, soft_cross_entropy


def _bank(m: int = 4, f: int = 3, c: int = 2) -> RegionBank:
    t = torch.zeros(m, c + 1)
    t[:, 0] = 1
    return RegionBank(torch.randn(m, f), t, torch.arange(m), torch.full((m,), PROPOSAL))


def test_bank_validates_shapes_and_indexes() -> None:
    bank = _bank()
    assert len(bank) == 4 and len(bank[torch.tensor([True, False, True, False])]) == 2
    both = RegionBank.concat([bank, bank[torch.tensor([0])]])
    assert len(both) == 5 and both.image.tolist() == [0, 1, 2, 3, 0]
    with pytest.raises(ValueError, match=r"targets must be \(4, C \+ 1\), got \(3, 3\)"):
        RegionBank(bank.features, bank.targets[:3], bank.image, bank.source)
    with pytest.raises(ValueError, match=r"image must be \(4,\), got \(2,\)"):
        RegionBank(bank.features, bank.targets, bank.image[:2], bank.source)


def test_soft_targets_rows_sum_to_one_and_follow_the_pixels() -> None:
    rng = np.random.default_rng(0)
    label = rng.choice([0, 3, 7, 255], size=(30, 40))
    masks = rng.random((6, 30, 40)) < 0.4
    for mode in ("composition", "iou"):
        t = soft_targets(masks, label, [3, 7], mode)
        assert t.shape == (6, 3) and t.dtype == np.float32
        np.testing.assert_allclose(t.sum(axis=1), 1.0, atol=1e-6)
    comp = soft_targets(masks, label, [3, 7])
    want = [(label[m] == 3).mean() for m in masks]
    np.testing.assert_allclose(comp[:, 0], want, atol=1e-6)  # class 0 is not trained: it counts as no object
    with pytest.raises(ZsSegError, match="composition, iou"):
        soft_targets(masks, label, [3], "majority")
    with pytest.raises(ValueError, match=r"\(N, 30, 40\)"):
        soft_targets(masks[:, :10], label, [3])


def test_pool_bank_pools_mirrored_images_too() -> None:
    image = np.zeros((8, 10, 3), np.uint8)
    image[:, :5] = 200  # left half bright
    left = np.zeros((1, 8, 10), bool)
    left[0, :, :5] = True
    targets = np.array([[1.0, 0.0]], np.float32)

    def mean_brightness(img: np.ndarray, masks: np.ndarray) -> torch.Tensor:
        return torch.tensor([[float(img[m].mean())] for m in masks])

    items = [((image, left, targets), np.array([GT]))]
    bank = pool_bank(iter(items), mean_brightness, progress=False)
    assert bank.features[:, 0].tolist() == [200.0, 200.0]  # the mirrored mask follows the mirrored image
    assert bank.image.tolist() == [0, 0] and bank.source.tolist() == [GT, GT]
    assert len(pool_bank(iter(items), mean_brightness, flip=False, progress=False)) == 1
    with pytest.raises(ZsSegError, match="no training region"):
        pool_bank(iter([]), mean_brightness, progress=False)


def test_holdout_images_are_seeded_and_never_all_or_none() -> None:
    a, b = holdout_images(20, 0.15, seed=3), holdout_images(20, 0.15, seed=3)
    assert torch.equal(a, b) and int(a.sum()) == 3
    assert int(holdout_images(3, 0.01).sum()) == 1 and int(holdout_images(2, 0.9).sum()) == 1
    assert int(holdout_images(1, 0.5).sum()) == 0 and int(holdout_images(10, 0.0).sum()) == 0
    with pytest.raises(ZsSegError, match=r"\[0, 1\)"):
        holdout_images(10, 1.0)


def test_soft_cross_entropy_matches_torch_on_one_hot_targets() -> None:
    logits = torch.randn(7, 4)
    labels = torch.randint(0, 4, (7,))
    onehot = F.one_hot(labels, 4).float()
    torch.testing.assert_close(soft_cross_entropy(logits, onehot), F.cross_entropy(logits, labels))
    w = torch.tensor([1.0, 1.0, 1.0, 0.1])
    torch.testing.assert_close(soft_cross_entropy(logits, onehot, w), F.cross_entropy(logits, labels, weight=w))
    want = float(F.cross_entropy(logits, labels))
    assert held_out_loss(lambda x: x, logits, onehot, batch_size=3) == pytest.approx(want)


def test_temperature_scaling_recovers_a_known_temperature() -> None:
    torch.manual_seed(0)
    logits = 4 * torch.randn(4000, 5)
    labels = torch.distributions.Categorical(logits=logits / 2.5).sample()  # calibrated at T = 2.5
    t = fit_temperature(logits, F.one_hot(labels, 5).float())
    assert 2.2 < t < 2.8
    assert fit_temperature(logits[:0], torch.zeros(0, 5)) == 1.0

"""The strategy 1 + 2 ensemble: zsseg.baseline's weighted geometric mean on hand-made numbers."""

from __future__ import annotations

import numpy as np
import pytest

from zsseg.classify.ensemble import ensemble_probs, normalise_name, seen_mask_for
from zsseg.errors import ZsSegError


def test_formula_on_hand_made_numbers() -> None:
    p1 = np.array([[0.5, 0.3, 0.2]])  # strategy 1 (frozen)
    p2 = np.array([[0.1, 0.6, 0.3]])  # strategy 2 (trained)
    seen = np.array([True, True, False])
    lam = 0.8
    raw = np.array([0.1**0.8 * 0.5**0.2, 0.6**0.8 * 0.3**0.2, 0.3**0.2 * 0.2**0.8])
    got = ensemble_probs(p1, p2, seen, lam)
    np.testing.assert_allclose(got[0], raw / raw.sum(), rtol=1e-6)
    assert got.dtype == np.float32


def test_no_split_uses_the_second_form_everywhere() -> None:
    p1 = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    p2 = np.array([[0.2, 0.5, 0.3], [0.3, 0.3, 0.4]])
    raw = p2**0.2 * p1**0.8
    np.testing.assert_allclose(ensemble_probs(p1, p2, None, 0.8), raw / raw.sum(1, keepdims=True), rtol=1e-6)


def test_extreme_lambdas() -> None:
    p1 = np.array([[0.6, 0.4]])
    p2 = np.array([[0.2, 0.8]])
    seen = np.array([True, False])
    # lambda = 1: strategy 2 on the seen class, strategy 1 on the other
    want = np.array([0.2, 0.4]) / 0.6
    np.testing.assert_allclose(ensemble_probs(p1, p2, seen, 1.0)[0], want, rtol=1e-6)
    # lambda = 0.5: the same geometric mean for every class
    g = np.sqrt(p1 * p2)
    np.testing.assert_allclose(ensemble_probs(p1, p2, seen, 0.5), g / g.sum(), rtol=1e-6)
    with pytest.raises(ZsSegError, match=r"\[0, 1\]"):
        ensemble_probs(p1, p2, seen, 1.5)


def test_all_zero_row_becomes_uniform() -> None:
    got = ensemble_probs(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]), np.array([True, True]), 0.8)
    np.testing.assert_allclose(got, [[0.5, 0.5]])


def test_seen_names_match_loosely() -> None:
    assert normalise_name("  Potted   Plant ") == "potted plant"
    mask = seen_mask_for(["Cat", "potted  plant", "sofa"], ["cat", "Potted Plant"])
    assert mask is not None and mask.tolist() == [True, True, False]
    assert seen_mask_for(["cat"], None) is None

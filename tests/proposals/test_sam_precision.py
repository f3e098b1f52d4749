"""SAM-family precision resolved once: what ``auto`` stands for is a pure function of precision, device and stage."""

from __future__ import annotations

import pytest
import torch

from zsseg.errors import ZsSegError
from zsseg.proposals import PROPOSERS, proposer_options, resolve_sam_precision
from zsseg.proposals.sam_precision import MOBILESAM_BF16_FROM_STAGE, SAM_PRECISIONS


@pytest.mark.parametrize("native", [True, False])
def test_auto_is_what_the_proposer_made_of_it(native: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """auto: mixed on a CPU with native bf16 where a stage is set, else resolve_precision without CPU bf16."""
    monkeypatch.setattr("zsseg.precision.cpu_has_fast_bfloat16", lambda: native)
    assert resolve_sam_precision("auto", "cpu", 3) == ("mixed" if native else "fp32")
    assert resolve_sam_precision("auto", torch.device("cpu")) == "fp32"  # no measured split: fp32 on CPUs
    assert resolve_sam_precision("auto", "cuda", 3) == resolve_sam_precision("auto", "cuda") == "fp16"
    assert resolve_sam_precision("fp32", "cpu", 3) == "fp32"
    assert resolve_sam_precision("bf16", "cpu") == ("bf16" if native else "fp32")  # bf16's fallback
    assert resolve_sam_precision("fp16", "cpu") == "fp32"
    assert resolve_sam_precision("mixed", "cpu", 0) == ("mixed" if native else "fp32")
    assert resolve_sam_precision("mixed", "cuda", 0) == "mixed"


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("device", ["cpu", "cuda"])
@pytest.mark.parametrize("stage", [None, 0, 3])
def test_a_resolved_precision_resolves_to_itself(
    native: bool, device: str, stage: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plan's concrete value handed to the proposer on the same machine stays what the plan says."""
    monkeypatch.setattr("zsseg.precision.cpu_has_fast_bfloat16", lambda: native)
    for precision in SAM_PRECISIONS:
        if precision == "mixed" and stage is None:
            continue
        once = resolve_sam_precision(precision, device, stage)
        assert once in ("fp32", "bf16", "fp16", "mixed")
        assert resolve_sam_precision(once, device, stage) == once


def test_bad_values_are_one_clear_error() -> None:
    with pytest.raises(ZsSegError, match="auto, fp32, bf16, fp16, mixed"):
        resolve_sam_precision("float16", "cpu")
    with pytest.raises(ZsSegError, match="bf16_from_stage"):
        resolve_sam_precision("mixed", "cpu")


def test_mobilesam_knobs_say_the_stage_it_is_built_with() -> None:
    """The table's builder defaults show in the knobs, where the plan reads them."""
    assert PROPOSERS["mobilesam"].defaults["bf16_from_stage"] == MOBILESAM_BF16_FROM_STAGE
    assert proposer_options("mobilesam")["bf16_from_stage"].default == MOBILESAM_BF16_FROM_STAGE
    assert proposer_options("sam:vit_b")["bf16_from_stage"].default is None

"""Precision names resolve per device, with one warning line where the hardware cannot honour them."""

import pytest
import torch

from zsseg import precision
from zsseg.precision import PRECISIONS, dtype_name, resolve_precision


@pytest.fixture
def fast_bf16(monkeypatch):
    def set_fast(value: bool) -> None:
        monkeypatch.setattr(precision, "cpu_has_fast_bfloat16", lambda: value)
        monkeypatch.setattr(precision, "_warned", set())

    return set_fast


def test_auto_follows_the_hardware(fast_bf16) -> None:
    fast_bf16(True)
    assert resolve_precision("auto", "cpu") == torch.bfloat16
    assert resolve_precision("auto", "cuda") == torch.float16
    assert resolve_precision("auto", "cpu", cpu_auto_bf16=False) == torch.float32  # opt-in bf16 only
    assert resolve_precision("auto", "cuda", cpu_auto_bf16=False) == torch.float16
    assert resolve_precision("bf16", "cpu", cpu_auto_bf16=False) == torch.bfloat16
    fast_bf16(False)
    assert resolve_precision("auto", "cpu") == torch.float32
    assert resolve_precision("fp32", "cuda") == torch.float32
    assert resolve_precision("bf16", "cuda") == torch.bfloat16


def test_unsupported_cpu_precision_falls_back_with_one_warning(fast_bf16, capsys) -> None:
    fast_bf16(False)
    assert resolve_precision("bf16", "cpu") == torch.float32
    assert resolve_precision("bf16", "cpu") == torch.float32
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("zsseg: warning:") and "fp32" in err[0]
    assert resolve_precision("fp16", "cpu") == torch.float32
    fast_bf16(True)
    assert resolve_precision("bf16", "cpu") == torch.bfloat16


def test_unknown_precision_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="auto, fp32, bf16, fp16"):
        resolve_precision("float64", "cpu")
    assert [dtype_name(resolve_precision(p, "cuda")) for p in PRECISIONS[1:]] == ["fp32", "bf16", "fp16"]

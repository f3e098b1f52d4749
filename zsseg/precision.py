"""Numeric precision of the networks: ``auto``, ``fp32``, ``bf16``, ``fp16``.

Modules are **cast** to the chosen dtype (weights and inputs), not run under ``torch.autocast``: on CPU, autocast
under ``torch.inference_mode`` was measured slower than fp32 (the cast weights leave ``nn.MultiheadAttention``'s
fast path), while a ViT-B/16 tower cast to bfloat16 ran 3.7-5x faster than fp32 on a CPU with AMX, with outputs
at cosine >= 0.99995 to fp32.

``auto`` means: float16 on CUDA, bfloat16 on CPUs that multiply it natively (AMX-BF16 or AVX512-BF16), float32
everywhere else. bfloat16 asked on a CPU without native support is emulated and slower than float32: it falls back
to float32 with one warning line. float16 on a CPU falls back to float32 likewise.

Two models narrow ``auto``, from measurements with real weights: ConSE stays float32 on every device (bf16 changed
EfficientNet-Lite0's top-1 class on 7-11% of crops); SAM-family proposals do not take bfloat16 whole on CPUs
(``cpu_auto_bf16=False``: all-bf16 MobileSAM moved the pipeline's VOC mIoU by -0.6), MobileSAM runs ``mixed``
instead (its encoder's first stages in float32, see :class:`zsseg.proposals.sam.SamProposer`); ``bf16`` asked
explicitly still casts them whole.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@functools.cache
def cpu_has_fast_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX-BF16; Linux ``/proc/cpuinfo``)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        print(f"zsseg: warning: {message}", file=sys.stderr)


def resolve_precision(precision: str, device: str | torch.device, cpu_auto_bf16: bool = True) -> torch.dtype:
    """The dtype that ``precision`` stands for on ``device``.

    Args:
        precision: one of :data:`PRECISIONS`.
        device: where the network runs.
        cpu_auto_bf16: whether ``auto`` may pick bfloat16 on a CPU; False for a network whose accuracy bf16
            measurably moved (SAM-family proposals), which then runs float32 unless bf16 is asked for.

    Raises:
        ValueError: ``precision`` is not one of :data:`PRECISIONS`.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    kind = torch.device(device).type
    if precision == "auto":
        if kind == "cuda":
            return torch.float16
        if kind == "cpu" and cpu_auto_bf16 and cpu_has_fast_bfloat16():
            return torch.bfloat16
        return torch.float32
    if kind == "cpu" and precision == "bf16" and not cpu_has_fast_bfloat16():
        _warn_once("this CPU has no native bfloat16 (AMX-BF16 or AVX512-BF16): running in fp32 instead of bf16")
        return torch.float32
    if kind == "cpu" and precision == "fp16":
        _warn_once("float16 is slow on CPUs: running in fp32 instead (use bf16 on CPUs with AMX)")
        return torch.float32
    return DTYPES[precision]


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``"bf16"`` (the names users pass)."""
    return {v: k for k, v in DTYPES.items()}[dtype]

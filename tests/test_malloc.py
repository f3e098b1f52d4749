import platform
import subprocess
import sys

import pytest

from zsseg import malloc


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_tune_malloc_applies_on_glibc_and_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    assert malloc.tune_malloc.__wrapped__() is True  # type: ignore[attr-defined]
    monkeypatch.setenv("ZSSEG_MALLOC", "default")
    assert malloc.tune_malloc.__wrapped__() is False  # type: ignore[attr-defined]
    monkeypatch.delenv("ZSSEG_MALLOC")
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")  # the user's own glibc settings win
    assert malloc.tune_malloc.__wrapped__() is False  # type: ignore[attr-defined]


def test_cli_process_runs_with_tuned_malloc() -> None:
    """The settings are process-wide: a child process that calls it still computes correctly."""
    code = "import torch, zsseg.malloc as m; m.tune_malloc(); print(float(torch.ones(4096, 4096).sum()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(float(4096 * 4096))

"""The batch worker's file handling that needs no model: sweeping a killed writer's temporaries."""

from __future__ import annotations

from pathlib import Path

from zsseg.batch.worker import sweep_temporaries


def test_sweep_removes_only_the_keys_temporaries(tmp_path: Path) -> None:
    labels, overlays = tmp_path / "labels" / "a", tmp_path / "overlays" / "a"
    labels.mkdir(parents=True)
    overlays.mkdir(parents=True)
    ours = [
        labels / ".x.png.k3j_9q.tmp",
        labels / ".x.png.0abc.tmp",
        overlays / ".x.png.zz1.tmp",
        tmp_path / "labels" / ".e.png.q.tmp",
    ]
    kept = [labels / "x.png", labels / ".y.png.abc.tmp", labels / ".x.png.abc.part", labels / ".xx.png.abc.tmp"]
    for f in ours + kept:
        f.write_bytes(b"")
    sweep_temporaries(tmp_path, ["a/x", "e", "missing/folder"])
    assert [f for f in ours if f.exists()] == []
    assert [f for f in kept if f.exists()] == kept

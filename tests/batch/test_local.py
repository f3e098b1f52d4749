"""``zsseg batch`` with local workers: outputs, index, resume, faults (killed worker, corrupt image, Ctrl-C)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from batch_testing import CLASSES, LOAD, LOAD_FLAGS, NAMES, kill_worker, tree_bytes, write_images
from PIL import Image

from zsseg.batch import read_index, run_batch
from zsseg.cli import main

pytestmark = pytest.mark.weights


@pytest.fixture(scope="module")
def first_run(images_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    """Two local workers over the eight images and a corrupt one, with overlays; a worker is SIGKILLed mid-run."""
    (images_dir / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    out = tmp_path_factory.mktemp("out")
    rows: list[dict] = []
    killed: list[int] = []

    def on_row(row: dict) -> None:
        rows.append(row)
        kill_worker(row, killed)

    summary = run_batch(
        images_dir, out, CLASSES, load_options=LOAD, workers=2, overlays=True, progress=False, on_row=on_row
    )
    assert killed and (summary.done, summary.failed) == (len(NAMES), 1)
    return out, rows


def test_killed_worker_still_every_image_exactly_once(first_run: tuple[Path, list[dict]]) -> None:
    out, rows = first_run
    keys = ["a/x.jpg", "a/x.png", "b/x", "b/y", "broken", "c/d/z", "c/w", "e", "f"]
    assert sorted(r["key"] for r in rows) == keys
    index = read_index(out).to_pylist()
    assert [r["key"] for r in index] == keys
    assert len({r["worker"] for r in index if r["status"] == "ok"}) >= 2  # the replacement worker took over
    assert not [p for p in out.rglob(".*.tmp")], "a killed worker's temporaries are swept"
    assert not (out / "_index_parts").exists() or not list((out / "_index_parts").iterdir())


def test_corrupt_image_is_one_failed_row(first_run: tuple[Path, list[dict]]) -> None:
    out, _ = first_run
    rows = {r["key"]: r for r in read_index(out).to_pylist()}
    assert [k for k, r in rows.items() if r["status"] != "ok"] == ["broken"]
    assert "broken.jpg: cannot read image" in rows["broken"]["error"]
    assert rows["broken"]["label_file"] is None and not (out / "labels/broken.png").exists()


def test_outputs_mirror_inputs_and_index_describes_them(first_run: tuple[Path, list[dict]], images_dir: Path) -> None:
    out, _ = first_run
    rows = {r["key"]: r for r in read_index(out).to_pylist()}
    row = rows["c/d/z"]
    assert row["path"] == str(images_dir / "c/d/z.jpg")
    assert row["label_file"] == "labels/c/d/z.png" and row["overlay_file"] == "overlays/c/d/z.png"
    label = np.asarray(Image.open(out / row["label_file"]))
    assert label.shape == (row["height"], row["width"]) == (40 + 4 * (4 % 3), 56)
    assert row["model"] == "conse:efficientnet-lite0" and row["proposals"] == "selective-search"
    assert abs(sum(row["class_shares"]) + row["unlabelled_share"] - 1) < 1e-5
    assert row["total_s"] > 0 and row["proposals_s"] > 0 and row["finished_at"] > 0


def test_outputs_are_byte_identical_to_zsseg_segment(first_run: tuple[Path, list[dict]], images_dir: Path) -> None:
    out, _ = first_run
    single = out.parent / "segment"
    args = ["segment", str(images_dir / "c/d/z.jpg"), "--classes", ", ".join(CLASSES), "--out", str(single)]
    assert main([*args, *LOAD_FLAGS]) == 0
    assert (single / "z.png").read_bytes() == (out / "labels/c/d/z.png").read_bytes()
    assert (single / "z_overlay.png").read_bytes() == (out / "overlays/c/d/z.png").read_bytes()


def test_rerun_skips_done_and_failed_and_refuses_other_settings(
    first_run: tuple[Path, list[dict]], images_dir: Path
) -> None:
    out, _ = first_run
    before = tree_bytes(out / "labels")
    summary = run_batch(images_dir, out, CLASSES, load_options=LOAD, overlays=True, progress=False)
    assert (summary.done, summary.skipped_done, summary.skipped_failed) == (0, len(NAMES), 1)
    assert tree_bytes(out / "labels") == before
    from zsseg.errors import ZsSegError

    with pytest.raises(ZsSegError, match="holds a batch run with classes="):
        run_batch(images_dir, out, ["cat", "dog"], load_options=LOAD, progress=False)
    with pytest.raises(ZsSegError, match="holds a batch run with model="):
        run_batch(images_dir, out, CLASSES, load_options=LOAD | {"model": "conse:efficientnet-lite2"}, progress=False)


def test_retry_failed_redoes_only_failed_images(first_run: tuple[Path, list[dict]], images_dir: Path, capsys) -> None:
    """Runs last among the first_run tests: it repairs broken.jpg and adds a new corrupt image."""
    out, _ = first_run
    write_images(images_dir / "fixed", ["broken.jpg"])
    os.replace(images_dir / "fixed/broken.jpg", images_dir / "broken.jpg")
    (images_dir / "fixed").rmdir()
    (images_dir / "new_broken.png").write_bytes(b"\x89PNG not really a png")
    args = ["batch", str(images_dir), "--classes", ", ".join(CLASSES), "--out", str(out), *LOAD_FLAGS]
    assert main([*args, "--overlays", "--retry-failed"]) == 1  # the new image failed
    err = capsys.readouterr().err
    assert "new_broken.png: cannot read image" in err and "Traceback" not in err
    assert f"1 segmented, 1 failed, {len(NAMES)} skipped (done before)" in err
    rows = {r["key"]: r["status"] for r in read_index(out).to_pylist()}
    assert rows["broken"] == "ok" and rows["new_broken"] == "failed" and len(rows) == len(NAMES) + 2


def test_usage_errors_are_one_line(tmp_path: Path, capsys) -> None:
    src = write_images(tmp_path / "in", ["a.jpg"])
    assert main(["batch", str(src), "--classes", "a, a", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "zsseg: error: class 'a' is given twice in the vocabulary: list each class once"
    args = ["batch", str(src), "--classes", "a", "--out", str(tmp_path / "o2"), "--model", "nope:x"]
    assert main(args) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("zsseg:")]
    assert len(err) == 1 and err[0].startswith("zsseg: error: unknown model 'nope:x'")
    assert main(["batch", str(src), "--classes", "a", "--out", str(tmp_path / "o3"), "--address", "auto"]) == 2
    assert "need --engine ray" in capsys.readouterr().err


def test_sigint_stops_cleanly_and_rerun_does_not_redo(tmp_path: Path) -> None:
    # enough images that a loaded machine cannot finish them all between the third label and the signal
    # (the worker runs ahead of the parent that reads its results)
    n = 48
    src = write_images(tmp_path / "in", [f"img{i:02d}.jpg" for i in range(n)])
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "zsseg.cli", "batch", str(src), "--classes", ", ".join(CLASSES), "--out", str(out)]
    cmd += [*LOAD_FLAGS, "--workers", "1"]
    # a shell starts background jobs with SIGINT ignored, and a child inherits that (Python then installs no Ctrl-C
    # handler): give the child the default, as a terminal's foreground command has
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        deadline = time.monotonic() + 120
        while len(list(out.glob("labels/*.png"))) < 3 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "batch interrupted" in err and "rerun the same command to continue" in err
    done = {r["key"]: r for r in read_index(out).to_pylist()}
    assert 2 <= len(done) < n and {r["status"] for r in done.values()} == {"ok"}
    assert not list(out.rglob(".*.tmp"))
    stamps = {k: (out / r["label_file"]).stat().st_mtime_ns for k, r in done.items()}
    (out / "labels" / ".img00.png.stale1.tmp").write_bytes(b"half")  # as a worker killed mid-write leaves it

    rerun = subprocess.run(cmd, stderr=subprocess.PIPE, text=True, timeout=180)
    assert rerun.returncode == 0, rerun.stderr
    assert not list(out.rglob(".*.tmp")), "a finished run sweeps what killed writers left"
    assert f"{n - len(done)} segmented, 0 failed, {len(done)} skipped (done before)" in rerun.stderr
    assert {k: (out / r["label_file"]).stat().st_mtime_ns for k, r in done.items()} == stamps
    assert len(read_index(out)) == n


def test_settings_stamp_leaves_out_what_only_changes_speed() -> None:
    """A rerun may change the device, the crop batch and MobileSAM's decoder batch or threads, not its coverage
    batches (which points are skipped) nor anything else that changes the outputs."""
    from zsseg.batch.runner import stamp_settings

    base = stamp_settings(CLASSES, {"model": "conse:efficientnet-lite0", "proposal_options": {"points_per_side": 8}})
    fast = stamp_settings(
        CLASSES,
        {
            "model": "conse:efficientnet-lite0",
            "device": "cuda",
            "batch_size": 64,
            "proposal_options": {"points_per_side": 8, "decode_batch_size": 64, "num_threads": 1},
        },
    )
    assert fast == base
    options = {"points_per_side": 8, "points_batch_size": 8}
    other = stamp_settings(CLASSES, {"model": "conse:efficientnet-lite0", "proposal_options": options})
    assert other != base

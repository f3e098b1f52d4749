"""``--engine ray`` on a real single-node Ray instance started here (2 CPUs, actors at half a CPU each)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from batch_testing import CLASSES, LOAD, NAMES, kill_worker, tree_bytes
from ray_testing import OBJECT_STORE_BYTES, kill_survivors, node_pids, offline_ray_env

from zsseg.batch import read_index, run_batch

pytestmark = pytest.mark.weights
ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with offline_ray_env(tmp_path_factory.mktemp("home")):
        ray.init(
            address="local",  # a new instance, never another Ray running on this machine
            num_cpus=2,
            include_dashboard=False,
            object_store_memory=OBJECT_STORE_BYTES,
            logging_level="ERROR",
        )
        pids = node_pids([ray._private.worker._global_node])
        try:
            yield
        finally:
            pids |= node_pids([ray._private.worker._global_node])
            ray.shutdown()
            kill_survivors(pids)


@pytest.fixture(scope="module")
def inputs(images_dir: Path) -> Path:
    (images_dir / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return images_dir


def test_ray_matches_local_byte_for_byte_despite_a_killed_actor(ray_instance: None, inputs: Path, tmp_path: Path):
    rows: list[dict] = []
    killed: list[int] = []

    def on_row(row: dict) -> None:
        rows.append(row)
        kill_worker(row, killed)

    summary = run_batch(
        inputs,
        tmp_path / "ray",
        CLASSES,
        load_options=LOAD,
        engine="ray",
        workers=2,
        cpus_per_worker=0.5,
        overlays=True,
        progress=False,
        on_row=on_row,
    )
    assert killed, "an actor was killed mid-run"
    assert (summary.done, summary.failed) == (len(NAMES), 1)
    assert sorted(r["path"] for r in rows) == sorted({r["path"] for r in rows}), "each image reported once"
    index = {r["key"]: r for r in read_index(tmp_path / "ray").to_pylist()}
    assert len(index) == len(NAMES) + 1
    assert index["broken"]["status"] == "failed" and "cannot read image" in index["broken"]["error"]
    assert not list((tmp_path / "ray").rglob(".*.tmp"))

    local = run_batch(inputs, tmp_path / "local", CLASSES, load_options=LOAD, workers=1, overlays=True, progress=False)
    assert (local.done, local.failed) == (len(NAMES), 1)
    for sub in ("labels", "overlays"):
        ray_files, local_files = tree_bytes(tmp_path / "ray" / sub), tree_bytes(tmp_path / "local" / sub)
        assert len(ray_files) == len(NAMES) and ray_files == local_files

    again = run_batch(inputs, tmp_path / "ray", CLASSES, load_options=LOAD, engine="ray", progress=False)
    assert (again.done, again.skipped_done, again.skipped_failed) == (0, len(NAMES), 1)


def test_ray_reports_a_bad_model_in_one_line(ray_instance: None, inputs: Path, tmp_path: Path) -> None:
    from zsseg.errors import ZsSegError

    with pytest.raises(ZsSegError, match="nope"):
        run_batch(
            inputs,
            tmp_path,
            CLASSES,
            load_options={"model": "nope:x"},
            engine="ray",
            cpus_per_worker=0.5,
            progress=False,
        )

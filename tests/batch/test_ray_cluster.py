"""``zsseg batch --engine ray --address ...`` joining a two-node Ray cluster on this machine (127.0.0.1)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from batch_testing import CLASSES, LOAD_FLAGS, NAMES
from ray_testing import OBJECT_STORE_BYTES, kill_survivors, node_pids, offline_ray_env

from zsseg.batch import read_index

pytestmark = pytest.mark.weights
pytest.importorskip("ray")


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """A head and a worker node with one CPU each; yields the address and the environment to join it with."""
    from ray.cluster_utils import Cluster

    with offline_ray_env(tmp_path_factory.mktemp("home")) as env:
        node_args = {"num_cpus": 1, "object_store_memory": OBJECT_STORE_BYTES}
        cluster = Cluster(initialize_head=True, head_node_args=node_args | {"include_dashboard": False})
        try:
            cluster.add_node(**node_args)
            cluster.wait_for_nodes()
            yield cluster.address, env
        finally:
            pids = node_pids([cluster.head_node, *cluster.worker_nodes])
            cluster.shutdown()
            kill_survivors(pids)


def test_join_a_two_node_cluster_by_address(two_nodes: tuple[str, dict[str, str]], images_dir: Path, tmp_path: Path):
    address, env = two_nodes
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "zsseg.cli", "batch", str(images_dir), "--classes", ", ".join(CLASSES)]
    cmd += ["--out", str(out), *LOAD_FLAGS, "--engine", "ray"]
    # 0.6 CPU per actor: one actor fits on each one-CPU node, so the two actors land on different nodes
    cmd += ["--address", address, "--workers", "2", "--cpus-per-worker", "0.6"]
    run = subprocess.run(cmd, stderr=subprocess.PIPE, text=True, timeout=300, env=os.environ | env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"{len(NAMES)} segmented, 0 failed" in run.stderr
    rows = read_index(out).to_pylist()
    assert len(rows) == len(NAMES) and {r["status"] for r in rows} == {"ok"}
    assert len({r["worker"].split(":")[0] for r in rows}) == 2, "both nodes segmented images"

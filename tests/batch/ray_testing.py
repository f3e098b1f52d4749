"""Helpers for tests on real local Ray clusters: an offline environment and teardown by process id."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

OBJECT_STORE_BYTES = 160 * 1024**2


@contextlib.contextmanager
def offline_ray_env(home: Path) -> Iterator[dict[str, str]]:
    """Environment for Ray processes started in the block; all their traffic stays on 127.0.0.1.

    Besides the variables the issue lists, ``HOME`` points at a folder holding a ``ray_bootstrap_config.yaml``
    (``provider: {type: local}``): Ray's dashboard process (started even with ``include_dashboard=False``, to
    run its usage-stats module) reads that file to name the cloud provider and only probes the cloud metadata
    addresses (169.254.169.254, metadata.google.internal) when it is missing. ``ZSSEG_CACHE`` keeps zsseg's
    cache where it was. The environment is restored when the block ends.
    """
    home.mkdir(parents=True, exist_ok=True)
    (home / "ray_bootstrap_config.yaml").write_text("provider:\n  type: local\n")
    env = {
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_USAGE_STATS_REPORT_URL": "http://127.0.0.1:9/",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_DATA_EXECUTION_NO_PROGRESS_TIMEOUT_S": "300",  # minutes, not Ray's 30, even on 2 loaded cores
        "ZSSEG_CACHE": os.environ.get("ZSSEG_CACHE", str(Path("~/.cache/zsseg").expanduser())),
        "HOME": str(home),
        # Ray 2.60 turns token auth on for a new local instance (token in ~/.ray, the temporary HOME here) and
        # leaves RAY_AUTH_MODE=token in this process, so the next module's cluster, under another HOME, finds
        # no token and its GCS aborts. These short-lived test clusters listen on 127.0.0.1 only: auth off.
        "RAY_AUTH_MODE": "disabled",
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        yield env


def node_pids(nodes: Iterable[Any]) -> set[int]:
    """Process ids of Ray nodes' processes (GCS, raylet, dashboard, ...) and all their descendants."""
    import psutil

    pids: set[int] = set()
    for node in nodes:
        for infos in node.all_processes.values():
            for info in infos:
                pids.add(info.process.pid)
                with contextlib.suppress(psutil.Error):
                    pids.update(c.pid for c in psutil.Process(info.process.pid).children(recursive=True))
    return pids


def kill_survivors(pids: set[int], grace_s: float = 5.0) -> None:
    """SIGKILL whichever of ``pids`` still run after ``grace_s`` (never anything else)."""
    import psutil

    deadline = time.monotonic() + grace_s
    alive = {p for p in pids if psutil.pid_exists(p)}
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = {p for p in alive if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE}
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

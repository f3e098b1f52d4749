"""Load behaviour of the service against a real uvicorn server with a stub segmenter of chosen speed.

One server for the module (``--workers 1 --queue 1 --timeout 3``); each request's duration is picked by its
image's height (0.01 s per row). The SIGTERM test stops the server, so it comes last.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from serve_testing import CLEAN_EXIT, Server, start_stub, strips_png


@pytest.fixture(scope="module")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    """The server and the TMPDIR it was started with."""
    root = tmp_path_factory.mktemp("stub")
    tmp = root / "tmp"
    tmp.mkdir()
    flags = ["--delay-per-row", "0.01", "--workers", "1", "--queue", "1", "--timeout", "3"]
    server = start_stub(root, *flags, env={"TMPDIR": str(tmp)})
    yield server, tmp
    assert server.stop() in CLEAN_EXIT


def segment(server: Server, seconds: float) -> httpx.Response:
    """A request whose segmentation takes ``seconds`` in the stub."""
    files = {"image": ("strips.png", strips_png(height=round(seconds * 100)))}
    return httpx.post(f"{server.url}/v1/segment", files=files, data={"classes": "red, green, blue"}, timeout=60)


def wait_idle(server: Server) -> None:
    deadline = time.monotonic() + 30
    while httpx.get(f"{server.url}/healthz").json()["pending"]:
        assert time.monotonic() < deadline, "the server stayed busy"
        time.sleep(0.05)


def test_full_queue_answers_503_with_retry_after(stub: tuple[Server, Path]) -> None:
    server, _ = stub
    wait_idle(server)
    with ThreadPoolExecutor(5) as ex:
        answers = list(ex.map(lambda _: segment(server, 1.0), range(5)))
    codes = sorted(r.status_code for r in answers)
    assert codes == [200, 200, 503, 503, 503], codes  # 1 running + 1 queued; the rest refused at once
    served = [r.json() for r in answers if r.status_code == 200]
    assert served[0]["proposals"] == "stub:strips"  # the stub labels each strip by its colour
    assert all(abs(v - 1 / 3) < 0.02 for v in served[0]["class_pixel_share"].values()), served[0]
    busy = [r for r in answers if r.status_code == 503]
    assert all(r.headers["retry-after"] == "2" and "server busy" in r.json()["error"] for r in busy)
    assert segment(server, 0.1).status_code == 200  # the backlog drained: served again


def test_slow_request_answers_504(stub: tuple[Server, Path]) -> None:
    server, _ = stub
    wait_idle(server)
    t0 = time.monotonic()
    r = segment(server, 4.0)
    assert r.status_code == 504 and "--timeout" in r.json()["error"]
    assert time.monotonic() - t0 < 3.9  # answered at the timeout, not when the work ended


def test_sigterm_lets_in_flight_requests_finish_and_cleans_up(stub: tuple[Server, Path]) -> None:
    server, tmp = stub
    wait_idle(server)
    private = list(tmp.glob("zsseg-serve-*"))
    assert len(private) == 1 and private[0].is_dir()  # uploads spool into one private folder
    result: dict[str, httpx.Response] = {}
    thread = threading.Thread(target=lambda: result.update(r=segment(server, 1.5)))
    thread.start()
    deadline = time.monotonic() + 10
    while httpx.get(f"{server.url}/healthz").json()["pending"] == 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(server.proc.pid, signal.SIGTERM)  # while the request is being segmented
    thread.join(30)
    assert result["r"].status_code == 200, result["r"].text
    assert server.proc.wait(30) in CLEAN_EXIT
    assert not list(tmp.glob("zsseg-serve-*"))  # removed at shutdown

"""Load behaviour of the service against a real uvicorn server with a slow stub segmenter."""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from serve_testing import CLEAN_EXIT, Server, start_stub, strips_png

PNG = strips_png()


def segment(server: Server, timeout: float = 60) -> httpx.Response:
    files = {"image": ("strips.png", PNG)}
    return httpx.post(f"{server.url}/v1/segment", files=files, data={"classes": "red, green, blue"}, timeout=timeout)


def test_full_queue_answers_503_with_retry_after(tmp_path: Path) -> None:
    server = start_stub(tmp_path, "--delay", "1.0", "--workers", "1", "--queue", "1")
    try:
        with ThreadPoolExecutor(5) as ex:
            answers = list(ex.map(lambda _: segment(server), range(5)))
        codes = sorted(r.status_code for r in answers)
        assert codes == [200, 200, 503, 503, 503], codes
        served = [r.json() for r in answers if r.status_code == 200]
        assert served[0]["proposals"] == "stub:strips"  # the stub labels each strip by its colour
        assert all(abs(v - 1 / 3) < 0.02 for v in served[0]["class_pixel_share"].values()), served[0]
        busy = [r for r in answers if r.status_code == 503]
        assert all(r.headers["retry-after"] == "2" and "server busy" in r.json()["error"] for r in busy)
        assert segment(server).status_code == 200  # the backlog drained: served again
    finally:
        assert server.stop() in CLEAN_EXIT


def test_slow_request_answers_504(tmp_path: Path) -> None:
    server = start_stub(tmp_path, "--delay", "1.5", "--timeout", "0.3")
    try:
        r = segment(server)
        assert r.status_code == 504 and "--timeout" in r.json()["error"]
    finally:
        assert server.stop() in CLEAN_EXIT


def test_sigterm_lets_in_flight_requests_finish_and_cleans_up(tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    server = start_stub(tmp_path, "--delay", "1.5", env={"TMPDIR": str(tmp)})
    private = list(tmp.glob("zsseg-serve-*"))
    assert len(private) == 1 and private[0].is_dir()  # uploads spool into one private folder
    result: dict[str, httpx.Response] = {}
    thread = threading.Thread(target=lambda: result.update(r=segment(server)))
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

"""Helpers of the serve tests: real uvicorn server processes on 127.0.0.1 and a free port, stopped by pid."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
STUB = Path(__file__).with_name("stub_server.py")
# uvicorn re-raises the SIGTERM it caught once it has shut down gracefully: that exit status is a clean stop.
CLEAN_EXIT = (0, -signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A server subprocess: ``url``, ``proc``, ``log`` (its stderr/stdout file); :meth:`stop` sends SIGTERM."""

    def __init__(
        self, argv: list[str], log: Path, ready_timeout: float = 120.0, env: dict[str, str] | None = None
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = os.environ | {"PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"} | (env or {})
        with open(log, "wb") as f:
            self.proc = subprocess.Popen([*argv, "--port", str(self.port)], stdout=f, stderr=f, cwd=REPO, env=env)
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server did not answer /healthz within {ready_timeout} s:\n{log.read_text()}")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait; SIGKILL only if it does not exit. Returns the exit status."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode


def start_stub(tmp: Path, *flags: str, env: dict[str, str] | None = None) -> Server:
    return Server([sys.executable, str(STUB), *flags], tmp / "stub.log", env=env)


def strips_png(height: int = 48, width: int = 96) -> bytes:
    """A PNG of red, green and blue vertical strips (what the stub server labels by colour)."""
    img = np.zeros((height, width, 3), np.uint8)
    for i, cols in enumerate(np.array_split(np.arange(width), 3)):
        img[:, cols, i] = 220
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()

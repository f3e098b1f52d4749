"""Fixtures of the serve tests: ``zsseg serve`` itself as a real server (helpers in ``serve_testing``)."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

pytest.importorskip("fastapi", reason="zsseg serve needs the serve extra: pip install -e '.[serve]'")
pytest.importorskip("httpx", reason="zsseg serve tests need httpx: pip install -e '.[serve]'")

from serve_testing import CLEAN_EXIT, Server  # noqa: E402


@pytest.fixture(scope="session")
def real_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``zsseg serve`` itself, with the fast offline model (ConSE EfficientNet-Lite0 + selective search)."""
    log = tmp_path_factory.mktemp("serve") / "zsseg-serve.log"
    argv = [sys.executable, "-m", "zsseg.cli", "serve", "--model", "conse:efficientnet-lite0"]
    argv += ["--proposals", "selective-search", "--max-upload-mb", "2", "--max-pixels", "2e6", "--workers", "1"]
    # A coarse, quick selective search (one colour space, one scale, at most 12 regions): seconds per image.
    argv += ["--max-side", "128", "--colour-spaces", "hsv", "--scales", "100", "--similarities", "ctsf"]
    argv += ["--max-proposals", "12"]
    # The page test's vocabulary was chosen to give several classes with these proposals and region crops.
    argv += ["--regions", "crops"]
    server = Server(argv, log)
    yield server
    assert server.stop() in CLEAN_EXIT, log.read_text()

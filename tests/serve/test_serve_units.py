"""Unit tests of the serve building blocks: image decoding from bytes, the inference pool, the config."""

from __future__ import annotations

import asyncio
import base64
import io
import threading
from typing import Any

import numpy as np
import pytest
from PIL import Image
from serve_testing import REPO

from zsseg.errors import ZsSegError
from zsseg.serve.config import ServeConfig
from zsseg.serve.errors import ApiError
from zsseg.serve.pool import InferencePool
from zsseg.serve.upload import decode_image


def encode(image: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P", "1"])
@pytest.mark.parametrize("fmt", ["PNG", "BMP", "WEBP"])
def test_decode_gives_rgb_uint8(mode: str, fmt: str) -> None:
    img = Image.new(mode, (7, 5))
    arr = decode_image(encode(img, fmt), max_pixels=100)
    assert arr.shape == (5, 7, 3) and arr.dtype == np.uint8


def test_decode_applies_exif_orientation() -> None:
    img = Image.new("RGB", (8, 4))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    arr = decode_image(encode(img, "JPEG", exif=exif), max_pixels=100)
    assert arr.shape == (8, 4, 3)


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"", 400),
        (b"GIF89a not really", 415),
        (b"plain text", 415),
        (encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (8, 8, 3), np.uint8)), "PNG")[:120], 400),
        (encode(Image.new("L", (11, 10)), "PNG"), 413),
    ],
    ids=["empty", "bad-gif", "text", "truncated", "too-many-pixels"],
)
def test_decode_errors(data: bytes, status: int) -> None:
    with pytest.raises(ApiError) as info:
        decode_image(data, max_pixels=100)
    assert info.value.status == status and ":" in info.value.message


def test_pool_bounds_backlog_and_times_out() -> None:
    release = threading.Event()

    def blocked() -> int:
        release.wait(5)
        return 1

    async def scenario() -> list[object]:
        pool = InferencePool(workers=1, queue=1, timeout_s=5, retry_after_s=3)
        tasks = [asyncio.create_task(pool.run(blocked)) for _ in range(2)]
        await asyncio.sleep(0.05)
        with pytest.raises(ApiError) as busy:
            await pool.run(blocked)
        assert busy.value.status == 503 and busy.value.headers == {"Retry-After": "3"}
        release.set()
        results = await asyncio.gather(*tasks)
        quick = InferencePool(timeout_s=0.05)
        with pytest.raises(ApiError) as late:
            await quick.run(lambda: threading.Event().wait(0.3))
        assert late.value.status == 504
        quick.shutdown()
        with pytest.raises(ApiError) as closed:
            await quick.run(lambda: 1)
        assert closed.value.status == 503 and "shutting down" in closed.value.message
        pool.shutdown()
        return [*results, pool.pending, pool.refused]

    assert asyncio.run(scenario()) == [1, 1, 0, 1]


def test_pool_passes_job_exceptions() -> None:
    def fail() -> None:
        raise ValueError("boom")

    async def scenario() -> None:
        pool = InferencePool()
        with pytest.raises(ValueError, match="boom"):
            await pool.run(fail)
        assert pool.pending == 0
        pool.shutdown()

    asyncio.run(scenario())


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ZsSegError, match="--workers"):
        ServeConfig(workers=0)
    with pytest.raises(ZsSegError, match="--queue"):
        ServeConfig(queue=-1)


def test_cli_registers_serve_and_rejects_bad_flags_before_loading(capsys: pytest.CaptureFixture[str]) -> None:
    from zsseg.cli import build_parser, main

    args = build_parser().parse_args(["serve", "--port", "0", "--max-proposals", "4"])
    assert args.host == "127.0.0.1" and args.workers == 1 and args.queue == 8 and args.max_upload_mb == 20
    from zsseg.serve.command import load_options

    options = load_options(args)
    assert options["model"] == "auto" and options["proposal_options"] == {"max_proposals": 4}
    assert main(["serve", "--workers", "0"]) == 2
    assert "zsseg: error: --workers must be at least 1" in capsys.readouterr().err


def test_unexpected_failure_is_a_json_500() -> None:
    from fastapi.testclient import TestClient
    from zsseg_testing import ColourBackend

    from zsseg.classify.region import RegionClassifier
    from zsseg.pipeline import Segmenter
    from zsseg.serve.app import create_app

    def broken(image: np.ndarray) -> None:
        raise RuntimeError("proposer exploded")

    app = create_app(Segmenter(broken, RegionClassifier(ColourBackend())))  # type: ignore[arg-type]
    with TestClient(app, raise_server_exceptions=False) as client:
        png = encode(Image.new("RGB", (8, 8)), "PNG")
        r = client.post("/v1/segment", files={"image": ("a.png", png)}, data={"classes": "red, blue"})
    assert r.status_code == 500 and "proposer exploded" in r.json()["error"]


def test_body_limit_replays_small_chunked_bodies_and_refuses_big_ones() -> None:
    from zsseg.serve.upload import BodySizeLimit

    async def echo(scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    def call(chunks: list[bytes], headers: list[tuple[bytes, bytes]]) -> list[dict[str, Any]]:
        messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return messages.pop(0)

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "POST", "headers": headers}
        asyncio.run(BodySizeLimit(echo, max_bytes=10)(scope, receive, send))
        return sent

    ok = call([b"abc", b"def"], [])
    assert ok[0]["status"] == 200 and ok[1]["body"] == b"abcdef"
    assert call([b"abcdef", b"ghijkl"], [])[0]["status"] == 413  # no length declared: counted as it arrives
    assert call([b""], [(b"content-length", b"11")])[0]["status"] == 413  # declared: refused unread
    assert call([b"0123456789"], [(b"content-length", b"10")])[1]["body"] == b"0123456789"


@pytest.mark.weights
def test_request_templates_keep_the_servers_region_mode() -> None:
    """A request naming templates is segmented by the server's own classifier with those prompts: the same region
    mode (dense here) and the label map ``Segmenter.segment(..., templates=...)`` gives. The server once rebuilt a
    classifier for the request's templates without the region mode and silently classified crops instead."""
    from fastapi.testclient import TestClient
    from zsseg_testing import GridProposer

    import zsseg
    from zsseg.serve.app import create_app

    seg = zsseg.load("conse:efficientnet-lite0", "selective-search", device="cpu", regions="dense")
    seg.proposer = GridProposer()  # type: ignore[assignment]
    dense, calls = seg.classifier.dense, []
    seg.classifier.dense = lambda img, masks: calls.append(len(masks)) or dense(img, masks)  # type: ignore
    image = np.asarray(Image.open(REPO / "zsseg/assets/astronaut.jpg").convert("RGB"))[::4, ::4].copy()
    classes = "person, rocket, sky, wall"
    with TestClient(create_app(seg)) as client:
        png = encode(Image.fromarray(image), "PNG")
        r = client.post(
            "/v1/segment", files={"image": ("a.png", png)}, data={"classes": classes, "templates": "single"}
        )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["templates"] == "single" and body["regions"] == "dense" and calls == [4]  # one dense pass
    served = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["label_map_png_base64"]))))
    want = seg.segment(image, classes, templates="single").label_map
    assert np.array_equal(served, want)
    assert seg.classifier.template_name == "vild"  # the server's default stays as it was

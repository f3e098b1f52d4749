"""The HTTP API of ``zsseg serve`` through httpx against the real server (ConSE + selective search)."""

from __future__ import annotations

import base64
import io
import socket

import httpx
import numpy as np
from PIL import Image
from serve_testing import REPO, Server

ASTRONAUT = (REPO / "zsseg" / "assets" / "astronaut.jpg").read_bytes()
CLASSES = "person, rocket, sky, wall"


def post(server: Server, path: str = "/v1/segment", data: bytes = ASTRONAUT, **fields: str) -> httpx.Response:
    form = {"classes": CLASSES} | fields
    return httpx.post(f"{server.url}{path}", files={"image": ("photo.jpg", data)}, data=form, timeout=120)


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def test_health_info_schema_and_no_cdn_docs(real_server: Server) -> None:
    assert httpx.get(f"{real_server.url}/healthz").json()["status"] == "ok"
    info = httpx.get(f"{real_server.url}/v1/info").json()
    assert info["model"] == "conse:efficientnet-lite0" and info["proposals"] == "selective-search"
    assert info["version"] and info["limits"]["max_upload_bytes"] == 2 * 2**20
    schema = httpx.get(f"{real_server.url}/openapi.json").json()
    assert {"/v1/segment", "/v1/segment.png", "/v1/info", "/healthz"} <= set(schema["paths"])
    assert httpx.get(f"{real_server.url}/docs").status_code == 404  # Swagger UI would load from a CDN
    page = httpx.get(f"{real_server.url}/")
    assert page.status_code == 200 and "<canvas" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "://" not in page.text  # no absolute URL: every asset is served by this server


def test_segment_json(real_server: Server) -> None:
    r = post(real_server)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["classes"] == ["person", "rocket", "sky", "wall"]
    assert body["model"] == "conse:efficientnet-lite0" and body["proposals"] == "selective-search"
    assert body["image_size"] == [512, 512]
    shares = body["class_pixel_share"]
    assert set(shares) == set(body["classes"]) and abs(sum(shares.values()) - 1.0) < 1e-6
    assert {"queue", "decode", "proposals", "classify", "assemble", "encode", "total"} <= set(body["timings_s"])
    assert len(body["colors"]) == 4 and all(c.startswith("#") and len(c) == 7 for c in body["colors"])
    label = Image.open(io.BytesIO(base64.b64decode(body["label_map_png_base64"])))
    arr = np.asarray(label)
    assert label.mode == "P" and arr.shape == (512, 512) and arr.max() < 4
    for i, name in enumerate(body["classes"]):
        assert abs((arr == i).mean() - shares[name]) < 1e-6


def test_segment_png_and_options(real_server: Server) -> None:
    r = post(real_server, "/v1/segment.png", templates="single", unlabelled_threshold="0.99")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png" and r.headers["x-zsseg-num-classes"] == "4"
    arr = np.asarray(Image.open(io.BytesIO(r.content)))
    assert arr.shape == (512, 512) and (arr == 255).any()  # a high threshold leaves pixels unlabelled


def test_bad_vocabularies_and_options_are_422(real_server: Server) -> None:
    for fields, words in [
        ({"classes": " , "}, "vocabulary is empty"),
        ({"classes": "cat, Cat"}, "given twice"),
        ({"templates": "nope"}, "unknown templates"),
        ({"unlabelled_threshold": "1.5"}, "between 0 and 1"),
        ({"unlabelled_threshold": "abc"}, "invalid request"),
        ({"instances": "true", "stuff": "sky, grass"}, "stuff names 'grass', not in the vocabulary"),
        ({"instances": "true", "min_area": "-5"}, "min_area must be an integer >= 0"),
    ]:
        r = post(real_server, **fields)
        assert r.status_code == 422 and words in r.json()["error"], (fields, r.text)
    r = httpx.post(f"{real_server.url}/v1/segment", data={"classes": "cat"})
    assert r.status_code == 422 and "image" in r.json()["error"]


def test_segment_with_instances(real_server: Server) -> None:
    """``instances=true``: the segments of the answer's own label map, masks as COCO RLE, disjoint, counted."""
    from zsseg.instances import rle

    r = post(real_server, instances="true")
    assert r.status_code == 200, r.text
    body = r.json()
    labels = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["label_map_png_base64"]))))
    assert body["stuff"] == ["sky", "wall"] and body["stuff_source"] == "builtin"  # the built-in list decided
    assert body["instances"] and "instances" in body["timings_s"]
    ids = np.zeros(labels.shape, np.int32)
    things: dict[str, int] = {}
    for entry in body["instances"]:
        mask = rle.decode(entry["rle"])
        assert mask.shape == labels.shape and int(mask.sum()) == entry["area"] >= body["min_area"]
        assert not ids[mask].any() and (labels[mask] == entry["class_id"]).all()
        ids[mask] = entry["id"]
        assert entry["isthing"] == (entry["label"] not in ("sky", "wall"))
        if entry["isthing"]:
            things[entry["label"]] = things.get(entry["label"], 0) + 1
    assert body["counts"] == things


def test_bad_images(real_server: Server) -> None:
    r = post(real_server, data=b"this is not an image")
    assert r.status_code == 415 and "not an image" in r.json()["error"]
    r = post(real_server, data=ASTRONAUT[: len(ASTRONAUT) // 2])
    assert r.status_code == 400 and "corrupt" in r.json()["error"]
    r = post(real_server, data=b"")
    assert r.status_code in (400, 422)
    big = png_bytes(Image.new("L", (2000, 1001)))  # 2.002e6 pixels > --max-pixels 2e6, yet a tiny file
    r = post(real_server, data=big)
    assert r.status_code == 413 and "--max-pixels" in r.json()["error"]


def _raw_request(server: Server, head: bytes, body_chunks: list[bytes]) -> bytes:
    """Send a request by hand; return what the server answered (it may answer before the body is sent)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(head)
        try:
            for chunk in body_chunks:
                s.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = b""
        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
            got = s.recv(65536)
            if not got:
                break
            data += got
        return data


def test_oversize_upload_is_413_before_the_body_is_read(real_server: Server) -> None:
    head = (
        b"POST /v1/segment HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        b"Content-Length: 50000000\r\n\r\n"
    )
    answer = _raw_request(real_server, head, [])  # no body byte sent: the declared length alone is refused
    assert answer.startswith(b"HTTP/1.1 413") and b"--max-upload-mb" in answer
    chunk = b"x" * 65536
    head = (
        b"POST /v1/segment HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunks = [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * 40  # 2.5 MiB > 2 MiB, no length declared
    answer = _raw_request(real_server, head, chunks)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_examples_are_a_fixed_table(real_server: Server) -> None:
    r = httpx.get(f"{real_server.url}/v1/examples/astronaut.jpg")
    assert r.status_code == 200 and r.content == ASTRONAUT
    for name in ["..%2F..%2Fpyproject.toml", "nope.jpg", "%2Fetc%2Fpasswd"]:
        r = httpx.get(f"{real_server.url}/v1/examples/{name}")
        assert r.status_code == 404, name

"""The web page of ``zsseg serve`` in headless Chromium (Debian's ``chromium``, driven by Playwright)."""

from __future__ import annotations

import base64
import io
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from serve_testing import REPO, Server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ASTRONAUT = REPO / "zsseg" / "assets" / "astronaut.jpg"
CLASSES = ["space shuttle", "flag", "helmet", "wall"]  # the fast test model finds three of them here
# Flags that work as root in a container, with no call home.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="chromium is absent: apt-get install chromium (.ci/run installs it)"
    ),
]


def hex_rgb(colour: str) -> np.ndarray:
    return np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])


def test_page_segments_the_bundled_photo(real_server: Server, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the dev extra)")
    outside: list[str] = []
    with sync_api.sync_playwright() as p:
        # Playwright gives the browser a fresh temporary profile (--user-data-dir) of its own.
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 820}, device_scale_factor=1)
            local = (real_server.url, "data:", "blob:")
            page.on("request", lambda r: None if r.url.startswith(local) else outside.append(r.url))
            page.goto(real_server.url)
            # Waits use selectors: the page's CSP forbids eval, which string predicates may need.
            page.wait_for_selector("#templates option >> nth=1", state="attached")
            assert "conse:efficientnet-lite0" in page.inner_text("#info")

            # A bad vocabulary: the page shows the server's error.
            page.set_input_files("#file", str(ASTRONAUT))
            page.fill("#classes", "sky, Sky")
            page.click("#submit")
            page.wait_for_selector("#status.error")
            assert "given twice" in page.inner_text("#status")

            page.fill("#classes", ", ".join(CLASSES))
            page.click("#submit")
            page.wait_for_selector("#overlay[data-ready='1']", timeout=90_000)
            legend = page.inner_text("#legend")
            assert all(c in legend for c in CLASSES) and "%" in legend
            assert page.get_attribute("#download-png", "href").startswith("data:image/png;base64,")
            assert page.get_attribute("#download-json", "href").startswith("blob:")
            assert page.is_hidden("#objects")  # the default request asks for no instances
            page.screenshot(path=str(tmp_path / "serve-page.png"), full_page=True)  # the test's artefact

            # Hovering reads a pixel's class.
            box = page.locator("#overlay").bounding_box()
            assert box is not None
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            assert any(c in page.inner_text("#hover") for c in CLASSES)

            # At full opacity the rendered overlay shows each present class in its legend colour.
            page.eval_on_selector("#opacity", "e => { e.value = 100; e.dispatchEvent(new Event('input')); }")
            shot = np.asarray(Image.open(io.BytesIO(page.locator("#overlay").screenshot())).convert("RGB"))
            rows = page.eval_on_selector_all(
                "#legend li",
                "els => els.map(e => [e.dataset.cls, e.querySelector('.swatch').style.background,"
                " e.querySelector('.share').textContent])",
            )
        finally:
            browser.close()
    present = 0
    for name, css, share_text in rows:
        rgb = np.array([int(v) for v in css.removeprefix("rgb(").removesuffix(")").split(",")])
        share = float(share_text.removesuffix("%")) / 100
        hit = (np.abs(shot.astype(int) - rgb).max(axis=2) <= 2).mean()
        if share >= 0.05:  # a class's colour covers (most of) its share of the rendered overlay
            assert hit > 0.5 * share, (name, hit, share)
            present += 1
    assert present >= 2, rows
    assert not outside, f"the page made requests off the server: {outside}"


def outline(ids: np.ndarray, things: set[int]) -> np.ndarray:
    """The page's outline of a 512-pixel image: thing pixels with a 4-neighbour (or the edge) outside their segment."""
    padded = np.pad(ids, 1, constant_values=-1)
    centre = padded[1:-1, 1:-1]
    edge = np.zeros(ids.shape, bool)
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        edge |= padded[dy : dy + ids.shape[0], dx : dx + ids.shape[1]] != centre
    return edge & np.isin(ids, list(things))


def test_page_counts_and_outlines_instances(real_server: Server, tmp_path: Path) -> None:
    """With "instances" ticked the page counts objects per class and outlines each one in white, exactly on the
    edges of the masks the answer's RLEs hold; hovering names the object under the mouse."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the dev extra)")
    from zsseg.instances import rle

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 820}, device_scale_factor=1)
            page.goto(real_server.url)
            page.wait_for_selector("#templates option >> nth=1", state="attached")
            page.set_input_files("#file", str(ASTRONAUT))
            page.fill("#classes", ", ".join(CLASSES))
            page.check("#instances")
            page.fill("#stuff", "wall")
            with page.expect_response(lambda r: r.url.endswith("/v1/segment")) as answer:
                page.click("#submit")
            page.wait_for_selector("#overlay[data-ready='1']", timeout=90_000)
            body: dict[str, Any] = answer.value.json()
            counts, stuff = page.inner_text("#counts"), page.inner_text("#stuff-used")
            page.eval_on_selector("#opacity", "e => { e.value = 100; e.dispatchEvent(new Event('input')); }")
            url = page.eval_on_selector("#overlay", "c => c.toDataURL('image/png')")
            h, w = body["image_size"]
            ids = np.zeros((h, w), np.int32)
            for entry in body["instances"]:
                ids[rle.decode(entry["rle"])] = entry["id"]
            things = {e["id"]: e for e in body["instances"] if e["isthing"]}
            assert things, body["counts"]  # the fast model finds objects in the photo
            # Hover over the middle of the largest object's interior.
            biggest = max(things.values(), key=lambda e: e["area"])
            ys, xs = np.nonzero((ids == biggest["id"]) & ~outline(ids, set(things)))
            y, x = int(ys[len(ys) // 2]), int(xs[len(xs) // 2])
            box = page.locator("#overlay").bounding_box()
            assert box is not None
            page.mouse.move(box["x"] + (x + 0.5) * box["width"] / w, box["y"] + (y + 0.5) * box["height"] / h)
            hover = page.inner_text("#hover")
            page.screenshot(path=str(tmp_path / "serve-instances.png"), full_page=True)  # the test's artefact
        finally:
            browser.close()
    want = ", ".join(f"{n} x {c}" for c, n in sorted(body["counts"].items(), key=lambda kv: -kv[1]))
    assert counts == want and " x " in counts
    assert body["stuff"] == ["wall"] and stuff == "stuff (as given): wall"
    assert f"{biggest['label']} #{biggest['id']}" in hover, hover
    canvas = np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"))
    edge = outline(ids, set(things))
    white = (canvas == 255).all(axis=2)
    assert edge.any() and white[edge].all()  # every outline pixel is drawn white
    assert not white[np.isin(ids, list(things)) & ~edge].any()  # and no other pixel of an object

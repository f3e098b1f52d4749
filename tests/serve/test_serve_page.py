"""The web page of ``zsseg serve`` in headless Chromium (Debian's ``chromium``, driven by Playwright)."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

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

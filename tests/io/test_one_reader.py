"""One image reader (issue 26): ``zsseg segment``, ``zsseg serve`` and ``zsseg batch`` decode a file to the same
pixels and so give the same label map. Each file below once decoded differently on one of the three paths: serve
and batch's URL branch used a plain ``convert("RGB")`` (16-bit greys clipped to white, transparency dropped to
the colour underneath) while the CLI scaled and composited onto white."""

from __future__ import annotations

import base64
import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from zsseg_testing import shapes_scene

from zsseg.io import DEFAULT_MAX_PIXELS, read_image, read_image_info

BATCH_TESTS = str(Path(__file__).resolve().parents[1] / "batch")
if BATCH_TESTS not in sys.path:  # batch_testing: the batch tests' fast offline model
    sys.path.insert(0, BATCH_TESTS)
from batch_testing import CLASSES, LOAD, LOAD_FLAGS  # noqa: E402

H, W = 40, 56


def scene() -> np.ndarray:
    return shapes_scene(H, W)[0]


def write_inputs(folder: Path) -> dict[str, Path]:
    """The five files, each a kind the old serve/batch decoders read differently from the CLI."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb = scene()
    files = {}
    grey = np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.uint16) * 257  # 0 .. 65535
    im16 = Image.fromarray(grey)
    assert im16.mode == "I;16" and grey.max() > 255
    files["grey16"] = folder / "grey16.png"
    im16.save(files["grey16"])
    rgba = np.dstack([rgb, np.full((H, W), 255, np.uint8)])
    rgba[:, : W // 3, 3] = 0  # fully transparent
    rgba[:, W // 3 : 2 * W // 3, 3] = 128  # half
    files["rgba"] = folder / "rgba.png"
    Image.fromarray(rgba, "RGBA").save(files["rgba"])
    files["cmyk"] = folder / "cmyk.jpg"
    Image.fromarray(rgb).convert("CMYK").save(files["cmyk"], quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6  # viewers rotate it 90 degrees clockwise
    files["exif6"] = folder / "exif6.jpg"
    Image.fromarray(rgb).save(files["exif6"], exif=exif, quality=95)
    pal = Image.fromarray(rgb).quantize(colors=8)
    files["palette"] = folder / "palette.png"
    pal.save(files["palette"], transparency=int(pal.getpixel((W - 1, H - 1))))  # the background's entry
    with Image.open(files["palette"]) as check:
        assert check.mode == "P" and "transparency" in check.info
    return files


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_inputs(tmp_path_factory.mktemp("one-reader") / "in")


def test_the_three_read_paths_decode_the_same_pixels(inputs: dict[str, Path]) -> None:
    pytest.importorskip("fsspec")
    import fsspec

    from zsseg.serve.config import ServeConfig
    from zsseg.serve.upload import decode_image

    memory = fsspec.filesystem("memory")
    for name, path in inputs.items():
        cli = read_image_info(path, DEFAULT_MAX_PIXELS).array  # what `zsseg segment` reads
        served = decode_image(path.read_bytes(), ServeConfig().max_pixels)
        memory.pipe(f"/one-reader/{path.name}", path.read_bytes())
        batch = [  # what the batch worker reads: a path, a file:// URL, any fsspec URL
            read_image(str(path)),
            read_image(f"file://{path}"),
            read_image(f"memory://one-reader/{path.name}"),
        ]
        for other in (served, *batch):
            assert other.dtype == np.uint8 and np.array_equal(other, cli), name
    # and the reader did what each file needs (not merely the same thing three times)
    grey = read_image_info(inputs["grey16"]).array
    assert grey.max() > 200 and grey.min() < 100 and (grey < 250).mean() > 0.5  # scaled, not clipped to white
    rgba = read_image_info(inputs["rgba"]).array
    assert (rgba[:, : W // 3] == 255).all()  # transparent -> white
    assert read_image_info(inputs["exif6"]).array.shape == (W, H, 3)
    pal = read_image_info(inputs["palette"]).array
    assert tuple(pal[H - 1, W - 1]) == (255, 255, 255)
    cmyk = read_image_info(inputs["cmyk"]).array
    assert np.abs(cmyk.astype(int) - scene()).mean() < 40  # JPEG CMYK round trip, roughly the scene


def label_png(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im).copy()


@pytest.mark.weights
def test_cli_serve_and_batch_give_the_same_label_maps(inputs: dict[str, Path], tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    import zsseg
    from zsseg.batch import run_batch
    from zsseg.cli import main
    from zsseg.serve.app import create_app

    folder = inputs["grey16"].parent
    cli_out, batch_out = tmp_path / "cli", tmp_path / "batch"
    assert main(["segment", str(folder), "--classes", ", ".join(CLASSES), "--out", str(cli_out), *LOAD_FLAGS]) == 0
    summary = run_batch(folder, batch_out, CLASSES, load_options=LOAD, workers=1, progress=False)
    assert (summary.done, summary.failed) == (len(inputs), 0)
    served = {}
    with TestClient(create_app(zsseg.load(**LOAD))) as client:
        for name, path in inputs.items():
            r = client.post(
                "/v1/segment", files={"image": (path.name, path.read_bytes())}, data={"classes": ", ".join(CLASSES)}
            )
            assert r.status_code == 200, r.text
            served[name] = label_png(base64.b64decode(r.json()["label_map_png_base64"]))
    for name, path in inputs.items():
        cli = label_png((cli_out / f"{path.stem}.png").read_bytes())
        batch = label_png((batch_out / "labels" / f"{path.stem}.png").read_bytes())
        assert cli.shape == ((W, H) if name == "exif6" else (H, W)), name
        assert np.array_equal(cli, served[name]), f"{name}: CLI and serve label maps differ"
        assert np.array_equal(cli, batch), f"{name}: CLI and batch label maps differ"

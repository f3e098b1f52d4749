"""Images as users have them: every Pillow mode, EXIF orientation, animations, pages, huge files, bytes."""

import io
import json

import numpy as np
import pytest
from PIL import Image
from zsseg_testing import use_stub_segmenter

from zsseg.cli import main
from zsseg.errors import ZsSegError
from zsseg.io import collect_images, read_image, read_image_info


def gradient(h: int = 24, w: int = 32) -> np.ndarray:
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None]
    rgb[..., 1] = np.linspace(0, 255, h, dtype=np.uint8)[:, None]
    rgb[..., 2] = 90
    return rgb


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "LA", "L", "P", "CMYK", "1", "I", "F", "I;16", "YCbCr", "PA"])
@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_every_mode_reads_as_uint8_rgb(mode, fmt, tmp_path):
    im = Image.fromarray(gradient()).convert(mode) if mode not in ("I;16", "PA") else None
    if mode == "I;16":
        im = Image.fromarray((np.arange(24 * 32).reshape(24, 32) * 80).astype(np.uint16))
    if mode == "PA":
        im = Image.fromarray(gradient()).convert("P").convert("PA")
    try:
        buf = io.BytesIO()
        im.save(buf, format=fmt)
    except (OSError, ValueError, KeyError):
        pytest.skip(f"Pillow cannot write {mode} as {fmt}")
    path = tmp_path / f"x.{fmt.lower()}"
    path.write_bytes(buf.getvalue())
    arr = read_image(path)
    assert arr.dtype == np.uint8 and arr.shape == (24, 32, 3)
    assert arr.max() > 0  # not all black


def test_16_bit_grey_scaled_by_true_bit_depth(tmp_path):
    ramp = np.linspace(0, 65535, 256).astype(np.uint16).reshape(16, 16)
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    info = read_image_info(tmp_path / "g16.png")
    assert info.mode.startswith("I") and info.bit_depth == 16
    grey = info.array[..., 0].astype(int)
    np.testing.assert_allclose(grey.ravel(), np.round(np.linspace(0, 255, 256)), atol=1)
    # a 12-bit TIFF (BitsPerSample 12): 4095 is white, not 1/16 grey
    twelve = (np.arange(256).reshape(16, 16) * 16).astype(np.uint16)  # 0 .. 4080
    Image.fromarray(twelve).save(tmp_path / "g12.tif", tiffinfo={258: 12})
    info12 = read_image_info(tmp_path / "g12.tif")
    if info12.bit_depth == 12:
        assert info12.array.max() >= 250
    # the API takes the same route
    import zsseg

    assert zsseg.read_image(tmp_path / "g16.png").max() == 255


def test_transparent_pixels_become_white(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[:2, :, :] = (200, 0, 0, 255)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    arr = read_image(tmp_path / "a.png")
    assert tuple(arr[0, 0]) == (200, 0, 0) and tuple(arr[3, 3]) == (255, 255, 255)


def test_exif_orientation_applied(tmp_path):
    img = np.zeros((20, 40, 3), np.uint8)  # wide: left half red
    img[:, :20] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    Image.fromarray(img).save(tmp_path / "r.jpg", exif=exif, quality=95)
    info = read_image_info(tmp_path / "r.jpg")
    assert info.array.shape == (40, 20, 3) and info.exif_orientation == 6
    assert info.array[5, 10, 0] > 200 and info.array[35, 10, 0] < 60  # red on top, as a viewer shows it
    assert info.summary()["exif_orientation"] == 6


def frames(n: int, size=(16, 12)) -> list[Image.Image]:
    return [Image.new("RGB", size, (255 * (i == 0), 255 * (i == 1), 255 * (i > 1))) for i in range(n)]


@pytest.mark.parametrize(("name", "fmt"), [("a.gif", "GIF"), ("a.webp", "WEBP"), ("a.tif", "TIFF")])
def test_animations_and_pages_use_first_frame(name, fmt, tmp_path):
    first, *rest = frames(3)
    kwargs = {"lossless": True} if fmt == "WEBP" else {}
    try:
        first.save(tmp_path / name, format=fmt, save_all=True, append_images=rest, **kwargs)
    except (OSError, KeyError):
        pytest.skip(f"no {fmt} writer")
    info = read_image_info(tmp_path / name)
    assert info.frames == 3 and info.array[0, 0, 0] > 200 and info.array[0, 0, 1] < 50
    assert "first" in info.summary()["note"]


def test_animated_gif_in_folder_segmented_and_json_says_first_frame(tmp_path, monkeypatch, capsys):
    use_stub_segmenter(monkeypatch)
    (tmp_path / "in").mkdir()
    first, *rest = frames(2, (32, 24))
    first.save(tmp_path / "in" / "anim.gif", save_all=True, append_images=rest)
    assert collect_images([tmp_path / "in"]) == [tmp_path / "in" / "anim.gif"]
    code = main(["segment", str(tmp_path / "in"), "--classes", "red, green", "--out", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr().err
    meta = json.loads((tmp_path / "out" / "anim.json").read_text())
    assert meta["input"]["frames"] == 2 and "only the first" in meta["input"]["note"]


def test_bytes_like_an_upload(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(gradient()).save(buf, format="PNG")
    info = read_image_info(buf.getvalue())
    assert info.source == "<bytes>" and info.array.shape == (24, 32, 3)
    with pytest.raises(ZsSegError, match="<bytes>: cannot read image"):
        read_image(b"\x89PNG\r\n\x1a\n truncated")


def test_truncated_and_garbage_files_are_one_clear_error(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(gradient(64, 64)).save(buf, format="JPEG")
    (tmp_path / "t.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (tmp_path / "g.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    for name in ("t.jpg", "g.png"):
        with pytest.raises(ZsSegError, match="cannot read image"):
            read_image(tmp_path / name)


def test_max_pixels_guard_is_one_line(tmp_path, monkeypatch, capsys):
    Image.new("RGB", (100, 80)).save(tmp_path / "big.png")
    with pytest.raises(ZsSegError, match="more than --max-pixels 5000"):
        read_image(tmp_path / "big.png", max_pixels=5000)
    assert read_image(tmp_path / "big.png", max_pixels=0).shape == (80, 100, 3)
    # Pillow's own decompression-bomb error becomes the same kind of line; a larger --max-pixels lifts it
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ZsSegError, match="decompression bomb"):
        read_image(tmp_path / "big.png", max_pixels=1000)
    assert read_image(tmp_path / "big.png", max_pixels=10**6).shape == (80, 100, 3)
    assert Image.MAX_IMAGE_PIXELS == 1000
    use_stub_segmenter(monkeypatch)
    args = ["segment", str(tmp_path / "big.png"), "--classes", "red", "--out", str(tmp_path / "o")]
    code = main([*args, "--max-pixels", "5000"])
    code2 = main(
        ["segment", str(tmp_path / "big.png"), "--classes", "red", "--out", str(tmp_path / "o"), "--max-pixels", "0"]
    )
    err = capsys.readouterr().err
    assert code == 1 and code2 == 0 and "--max-pixels" in err and "Traceback" not in err


def test_a_fifo_is_refused_before_it_is_opened(tmp_path):
    """Issue 31: a FIFO named as an input blocked the CLI and Segmenter.segment forever."""
    import os

    from zsseg.cli import main
    from zsseg.io import ImageError, collect_images, read_image

    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(ImageError, match="not a regular file"):
        read_image(fifo)
    with pytest.raises(ZsSegError, match="not a regular file"):
        collect_images([fifo])
    assert main(["segment", str(fifo), "--classes", "cat, dog", "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()

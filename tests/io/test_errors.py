"""The reader's typed errors (one per cause, so serve maps types to statuses), and its other sources: binary file
objects and fsspec URLs, with the same pixel guard as paths."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zsseg.errors import ZsSegError
from zsseg.io import CorruptImage, ImageError, ImageTooLarge, NotAnImage, read_image, read_image_info


def png(size: tuple[int, int] = (12, 10), mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), np.uint8)).convert(mode).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"plain text", NotAnImage),
        (b"GIF89a not really", NotAnImage),
        (b"\x89PNG\r\n\x1a\n truncated", CorruptImage),
        (png((8, 8))[:120], CorruptImage),
        (png((11, 10)), ImageTooLarge),
    ],
    ids=["text", "bad-gif", "png-signature-only", "truncated", "too-many-pixels"],
)
def test_each_cause_has_its_type(data: bytes, kind: type[ImageError]) -> None:
    with pytest.raises(kind) as info:
        read_image(data, max_pixels=100)
    err = info.value
    assert isinstance(err, ImageError) and isinstance(err, ZsSegError)
    others = {NotAnImage, CorruptImage, ImageTooLarge} - {kind}
    assert not isinstance(err, tuple(others))
    assert "\n" not in str(err) and err.source == "<bytes>" and err.detail


def test_too_large_carries_the_size_and_the_bomb_check_is_too_large(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(ImageTooLarge, match="more than --max-pixels 100") as info:
        read_image(png((11, 10)), max_pixels=100)
    assert (info.value.width, info.value.height, info.value.max_pixels) == (11, 10, 100)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40)
    with pytest.raises(ImageTooLarge, match="decompression bomb"):  # 110 pixels: past twice Pillow's limit
        read_image(png((11, 10)), max_pixels=60)
    assert read_image(png((11, 10)), max_pixels=1000).shape == (10, 11, 3)  # a larger limit lifts Pillow's
    assert Image.MAX_IMAGE_PIXELS == 40


def test_missing_file_and_folder_are_image_errors(tmp_path: Path) -> None:
    for source, message in [(tmp_path / "nope.png", "no such file"), (tmp_path, "is a folder")]:
        with pytest.raises(ImageError, match=message) as info:
            read_image(source)
        assert type(info.value) is ImageError


def test_an_unconvertible_mode_is_not_an_image() -> None:
    from zsseg.io import to_rgb_array

    class Odd:
        mode, info = "XYZ", {}

        def convert(self, mode: str) -> None:
            raise ValueError("no converter")

    with pytest.raises(NotAnImage, match="colour mode XYZ cannot be converted to RGB"):
        to_rgb_array(Odd())  # type: ignore[arg-type]


def test_binary_file_objects_are_read_from_their_position_and_left_open(tmp_path: Path) -> None:
    data = png((12, 10), "RGBA")
    (tmp_path / "a.png").write_bytes(data)
    expected = read_image(tmp_path / "a.png")
    with open(tmp_path / "a.png", "rb") as f:
        info = read_image_info(f)
        assert not f.closed and info.source == str(tmp_path / "a.png")
    assert np.array_equal(info.array, expected)
    stream = io.BytesIO(b"junk" + data)
    stream.seek(4)
    assert np.array_equal(read_image(stream), expected) and read_image_info(io.BytesIO(data)).source == "<file>"
    with open(tmp_path / "a.png") as text, pytest.raises(ImageError, match="binary mode"):
        read_image(text)  # type: ignore[arg-type]


def test_urls_get_the_same_reader_and_pixel_guard(tmp_path: Path) -> None:
    fsspec = pytest.importorskip("fsspec")

    data = png((11, 10), "P")
    fsspec.filesystem("memory").pipe("/errors-test/p.png", data)
    url = "memory://errors-test/p.png"
    assert np.array_equal(read_image(url), read_image(data))
    with pytest.raises(ImageTooLarge, match="memory://errors-test/p.png: 11 x 10"):
        read_image(url, max_pixels=100)  # batch URLs had no pixel guard
    with pytest.raises(ImageError, match="no such file") as info:
        read_image("memory://errors-test/missing.png")
    assert type(info.value) is ImageError
    fsspec.filesystem("memory").pipe("/errors-test/t.txt", b"not an image")
    with pytest.raises(NotAnImage, match="memory://errors-test/t.txt: cannot read image"):
        read_image("memory://errors-test/t.txt")

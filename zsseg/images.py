"""Reading images as users have them: every Pillow mode, EXIF orientation, animations, huge files, bytes.

Public API (shared by the CLI, ``zsseg serve`` and ``zsseg batch``):

- :func:`read_image_info` (path or bytes -> :class:`ImageInfo`: the RGB array and what was done to get it),
- :func:`read_image` (the same, array only),
- :func:`to_rgb_array` (a PIL image of any mode -> uint8 (H, W, 3)).

Rules (also in the README): the EXIF orientation is applied, so the label map matches the image as viewers
display it; transparent pixels are composited onto white; 16-bit and 32-bit greys are scaled by their true bit
depth (a 12-bit TIFF's 4095 is white); animated GIF/WebP/PNG and multi-page TIFF use their first frame; files
with more than ``max_pixels`` pixels are refused with one line (0 = no limit).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image, ImageOps

from zsseg.errors import ZsSegError

DEFAULT_MAX_PIXELS = 250_000_000
"""Largest image read by default (250 megapixels, e.g. 20000 x 12500); ``--max-pixels`` changes it."""

_GREY16 = ("I;16", "I;16L", "I;16B", "I;16N")
_ALPHA = ("RGBA", "LA", "PA", "RGBa", "La")
ImageSource = str | Path | bytes | bytearray | memoryview


@dataclass(frozen=True)
class ImageInfo:
    """An image read for segmentation.

    Attributes:
        array: uint8 (H, W, 3) RGB, EXIF orientation applied, first frame only.
        source: the path, or ``<bytes>``.
        format: the file format Pillow detected (``PNG``, ``JPEG``, ...).
        mode: the Pillow mode of the stored pixels (``RGB``, ``I;16``, ``P``, ...).
        frames: frames (animations) or pages (TIFF) in the file; only the first is segmented.
        exif_orientation: the EXIF orientation tag that was applied (1 = none).
        bit_depth: bits per sample used to scale the values to 8 bits.
    """

    array: np.ndarray
    source: str
    format: str | None = None
    mode: str = "RGB"
    frames: int = 1
    exif_orientation: int = 1
    bit_depth: int = 8

    def summary(self) -> dict[str, Any]:
        """JSON-ready facts about the input (written into ``<stem>.json`` as ``input``)."""
        out: dict[str, Any] = {"format": self.format, "mode": self.mode, "bit_depth": self.bit_depth}
        if self.exif_orientation != 1:
            out["exif_orientation"] = self.exif_orientation
        if self.frames > 1:
            out["frames"] = self.frames
            out["note"] = f"the file holds {self.frames} frames/pages: only the first was segmented"
        return out


def _bit_depth(im: Image.Image, default: int) -> int:
    tags = getattr(im, "tag_v2", None)
    bits = tags.get(258) if tags is not None else None  # TIFF BitsPerSample
    if isinstance(bits, tuple):
        bits = bits[0] if bits else None
    return int(bits) if isinstance(bits, int) and 1 <= bits <= 32 else default


def _grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    g = np.clip(np.rint(np.nan_to_num(grey, nan=0.0, posinf=255.0, neginf=0.0)), 0, 255).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=2)


def _stretch(arr: np.ndarray) -> np.ndarray:
    finite = arr[np.isfinite(arr)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    return (arr.astype(np.float32) - lo) * (255.0 / max(hi - lo, 1e-12))


def to_rgb_array(im: Image.Image) -> tuple[np.ndarray, int]:
    """A PIL image of any mode -> (uint8 (H, W, 3) RGB, bits per sample used for scaling).

    ``I;16*``: scaled by the bit depth (TIFF ``BitsPerSample``, else 16). ``I`` (int32): the TIFF bit depth if
    given, else 16 bits when values lie in 0..65535, else stretched min..max. ``F`` (float): x 255 when values
    lie in [0, 1], else stretched. Modes with transparency are composited onto white. ``1``, ``L``, ``P``,
    ``CMYK``, ``YCbCr``: Pillow's conversion.
    """
    mode = im.mode
    if mode in _GREY16:
        bits = _bit_depth(im, 16)
        return _grey_to_rgb(np.asarray(im).astype(np.float32) * (255.0 / (2**bits - 1))), bits
    if mode == "I":
        arr = np.asarray(im)
        bits = _bit_depth(im, 0)
        if not bits and arr.size and arr.min() >= 0 and arr.max() <= 65535:
            bits = 16
        if bits:
            return _grey_to_rgb(arr.astype(np.float32) * (255.0 / (2**bits - 1))), bits
        return _grey_to_rgb(_stretch(arr)), 32
    if mode == "F":
        arr = np.asarray(im, dtype=np.float32)
        finite = arr[np.isfinite(arr)]
        in_unit = finite.size == 0 or (finite.min() >= 0.0 and finite.max() <= 1.0)
        return _grey_to_rgb(arr * 255.0 if in_unit else _stretch(arr)), 32
    if mode in _ALPHA or (mode in ("P", "L", "RGB") and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB")), 8
    if mode == "RGB":
        return np.asarray(im), 8
    try:
        return np.asarray(im.convert("RGB")), 8
    except ValueError as exc:
        raise ZsSegError(f"colour mode {mode} cannot be converted to RGB ({exc}): save the image as RGB") from exc


def _open(fp: IO[bytes], name: str, max_pixels: int) -> Image.Image:
    """Open lazily (header only) and apply the pixel limit, turning Pillow's bomb check into one line."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(fp)
    except Image.DecompressionBombError:
        if max_pixels and max_pixels <= (Image.MAX_IMAGE_PIXELS or 0) * 2:
            raise ZsSegError(
                f"{name}: more than {max_pixels} pixels (a possible decompression bomb): pass a larger "
                "--max-pixels (0 = no limit) if you trust this file"
            ) from None
        previous = Image.MAX_IMAGE_PIXELS  # the user allowed more than Pillow's own limit
        Image.MAX_IMAGE_PIXELS = None
        try:
            fp.seek(0)
            im = Image.open(fp)
        finally:
            Image.MAX_IMAGE_PIXELS = previous
    w, h = im.size
    if max_pixels and w * h > max_pixels:
        im.close()
        raise ZsSegError(
            f"{name}: {w} x {h} = {w * h / 1e6:.1f} megapixels is more than --max-pixels {max_pixels}: pass a larger "
            "--max-pixels (0 = no limit) if you trust this file"
        )
    return im


def read_image_info(source: ImageSource, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Read an image file (path) or encoded bytes (e.g. an HTTP upload) for segmentation.

    Args:
        source: a path, or the bytes of an encoded image (JPEG, PNG, GIF, BMP, TIFF, WebP, ...).
        max_pixels: refuse images with more pixels (0 = no limit); checked from the header, before decoding.

    Returns:
        :class:`ImageInfo` whose ``array`` is uint8 (H, W, 3) RGB as viewers display the image.

    Raises:
        ZsSegError: missing file, a folder, an undecodable or truncated file, too many pixels.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        name = "<bytes>"
        fp: IO[bytes] = io.BytesIO(bytes(source))
    else:
        path = Path(source)
        name = str(path)
        if not path.exists():
            raise ZsSegError(f"{path}: no such file: check the path")
        if path.is_dir():
            raise ZsSegError(f"{path}: is a folder, not an image")
        try:
            fp = open(path, "rb")  # noqa: SIM115 (closed below)
        except OSError as exc:
            raise ZsSegError(f"{path}: cannot open ({exc.strerror}): check its permissions") from exc
    try:
        with fp:
            im = _open(fp, name, max_pixels)
            with im:
                frames = int(getattr(im, "n_frames", 1) or 1)
                orientation = im.getexif().get(0x0112, 1)
                im.load()  # the first frame
                upright = ImageOps.exif_transpose(im)
                array, bits = to_rgb_array(upright)
                return ImageInfo(
                    array=np.ascontiguousarray(array),
                    source=name,
                    format=im.format,
                    mode=im.mode,
                    frames=frames,
                    exif_orientation=int(orientation) if isinstance(orientation, int) else 1,
                    bit_depth=bits,
                )
    except ZsSegError:
        raise
    except MemoryError:
        raise ZsSegError(f"{name}: not enough memory to decode this image: pass a smaller image") from None
    except Exception as exc:  # corrupt files raise anything from OSError to struct.error and IndexError
        raise ZsSegError(
            f"{name}: cannot read image ({type(exc).__name__}: {exc}): pass a valid JPEG/PNG/GIF/BMP/TIFF/WebP file"
        ) from exc


def read_image(source: ImageSource, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image (path or bytes) as uint8 (H, W, 3) RGB, EXIF orientation applied; see :func:`read_image_info`."""
    return read_image_info(source, max_pixels).array

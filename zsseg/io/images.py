"""The one image reader of zsseg: the CLI, ``zsseg serve`` and ``zsseg batch`` all decode through it.

Public API:

- :func:`read_image_info` (a path, an fsspec URL, encoded bytes or a binary file -> :class:`ImageInfo`: the RGB
  array and what was done to get it),
- :func:`read_image` (the same, array only),
- :func:`as_image_array` (what the Python API accepts: a path, a PIL image or an array -> uint8 (H, W, 3)).

Rules (also in the README): the EXIF orientation is applied, so the label map matches the image as viewers
display it; transparent pixels are composited onto white; 16-bit and 32-bit greys are scaled by their true bit
depth (a 12-bit TIFF's 4095 is white; :func:`zsseg.io.pixels.to_rgb_array`); animated GIF/WebP/PNG and multi-page
TIFF use their first frame; files with more than ``max_pixels`` pixels are refused with one line (0 = no limit).
Failures are :class:`~zsseg.io.errors.ImageError` subclasses: :class:`~zsseg.io.errors.ImageTooLarge`,
:class:`~zsseg.io.errors.NotAnImage`, :class:`~zsseg.io.errors.CorruptImage`.
"""

from __future__ import annotations

import io
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from zsseg.errors import ZsSegError
from zsseg.io.errors import CorruptImage, ImageError, ImageTooLarge, NotAnImage
from zsseg.io.pixels import to_rgb_array
from zsseg.io.urls import is_url, read_url

DEFAULT_MAX_PIXELS = 250_000_000
"""Largest image read by default (250 megapixels, e.g. 20000 x 12500); ``--max-pixels`` changes it."""

ImageSource = str | Path | bytes | bytearray | memoryview | IO[bytes]
_VALID = "pass a valid JPEG/PNG/GIF/BMP/TIFF/WebP file"
_LARGER = "pass a larger --max-pixels (0 = no limit) if you trust this file"
#: Image.MAX_IMAGE_PIXELS and the warning filters are process-wide: opening holds this (serve reads in threads)
_PILLOW_GLOBALS = threading.Lock()


@dataclass(frozen=True)
class ImageInfo:
    """An image read for segmentation.

    Attributes:
        array: uint8 (H, W, 3) RGB, EXIF orientation applied, first frame only.
        source: the path or URL, ``<bytes>``, or a file object's name (``<file>`` if it has none).
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


def _open_source(source: ImageSource) -> tuple[IO[bytes], str, bool]:
    """(a binary file at the image's first byte, its name for messages, whether the reader closes it)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(source)), "<bytes>", True
    if isinstance(source, str) and is_url(source):
        return io.BytesIO(read_url(source)), source, True
    if isinstance(source, (str, os.PathLike)):
        return _open_path(Path(source))
    # a binary file object: the caller's, left open
    name = getattr(source, "name", None)
    name = name if isinstance(name, str) else "<file>"
    if isinstance(source, io.TextIOBase):
        raise ImageError(f"{name}: is a text file object: open the image in binary mode ('rb')", name)
    if source.seekable() and source.tell() == 0:
        return source, name, False
    return io.BytesIO(source.read()), name, True  # Pillow reads from the start: hand it the rest


def _open_path(path: Path) -> tuple[IO[bytes], str, bool]:
    if not path.exists():
        raise ImageError(f"{path}: no such file: check the path", str(path), "no such file")
    if path.is_dir():
        raise ImageError(f"{path}: is a folder, not an image", str(path), "a folder")
    if not path.is_file():  # a FIFO would block the open forever; a device could be read without end
        detail = "not a regular file (a pipe, socket or device)"
        raise ImageError(f"{path}: {detail}: name an image file", str(path), detail)
    try:
        return open(path, "rb"), str(path), True  # noqa: SIM115 (closed by read_image_info)
    except OSError as exc:
        detail = f"cannot open ({exc.strerror})"
        raise ImageError(f"{path}: {detail}: check its permissions", str(path), detail) from exc


def _too_large(name: str, w: int, h: int, max_pixels: int) -> ImageTooLarge:
    return ImageTooLarge(
        f"{name}: {w} x {h} = {w * h / 1e6:.1f} megapixels is more than --max-pixels {max_pixels}: {_LARGER}",
        name,
        f"{w} x {h} = {w * h} pixels, more than {max_pixels}",
        width=w,
        height=h,
        max_pixels=max_pixels,
    )


def _open(fp: IO[bytes], name: str, max_pixels: int) -> Image.Image:
    """Open lazily (header only) and apply the pixel limit, turning Pillow's bomb check into one line."""
    start = fp.tell()
    try:
        with _PILLOW_GLOBALS, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            try:
                im = Image.open(fp)
            except Image.DecompressionBombError as exc:
                if max_pixels and max_pixels <= (Image.MAX_IMAGE_PIXELS or 0) * 2:
                    raise ImageTooLarge(
                        f"{name}: more than {max_pixels} pixels (a possible decompression bomb): {_LARGER}",
                        name,
                        str(exc),
                        max_pixels=max_pixels,
                    ) from None
                previous = Image.MAX_IMAGE_PIXELS  # the caller allowed more than Pillow's own limit
                Image.MAX_IMAGE_PIXELS = None
                try:
                    fp.seek(start)
                    im = Image.open(fp)
                finally:
                    Image.MAX_IMAGE_PIXELS = previous
    except UnidentifiedImageError:
        detail = "not an image format Pillow knows"
        raise NotAnImage(f"{name}: cannot read image ({detail}): {_VALID}", name, detail) from None
    except ZsSegError:
        raise
    except Exception as exc:  # a header Pillow recognised but cannot parse
        detail = f"{type(exc).__name__}: {exc}"
        raise CorruptImage(f"{name}: cannot read image ({detail}): {_VALID}", name, detail) from exc
    w, h = im.size
    if max_pixels and w * h > max_pixels:
        im.close()
        raise _too_large(name, w, h, max_pixels)
    return im


def read_image_info(source: ImageSource, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Read an image for segmentation.

    Args:
        source: a path; an fsspec URL (``s3://``, ``gs://``, ``http(s)://``, ``memory://``, ...: needs fsspec and
            the filesystem's driver); the bytes of an encoded image (e.g. an HTTP upload); or a binary file object
            (read from its position, left open). Any format Pillow reads: JPEG, PNG, GIF, BMP, TIFF, WebP, ...
        max_pixels: refuse images with more pixels (0 = no limit); checked from the header, before decoding.

    Returns:
        :class:`ImageInfo` whose ``array`` is uint8 (H, W, 3) RGB as viewers display the image.

    Raises:
        ImageTooLarge: more than ``max_pixels`` pixels, or not enough memory to decode.
        NotAnImage: not a format Pillow knows, or a colour mode with no RGB meaning.
        CorruptImage: an undecodable or truncated file.
        ImageError: a missing file or URL, a folder, a file that cannot be opened.
        ZsSegError: fsspec or the URL's driver is not installed.
    """
    fp, name, owned = _open_source(source)
    try:
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
        detail = "not enough memory to decode this image"
        raise ImageTooLarge(f"{name}: {detail}: pass a smaller image", name, detail) from None
    except Image.DecompressionBombError as exc:  # a frame or tile past Pillow's limit, found while decoding
        raise ImageTooLarge(f"{name}: {exc}: {_LARGER}", name, str(exc), max_pixels=max_pixels) from exc
    except Exception as exc:  # corrupt files raise anything from OSError to struct.error and IndexError
        detail = f"{type(exc).__name__}: {exc}"
        raise CorruptImage(f"{name}: cannot read image ({detail}): {_VALID}", name, detail) from exc
    finally:
        if owned:
            fp.close()


def read_image(source: ImageSource, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image (path, URL, bytes or binary file) as uint8 (H, W, 3) RGB; see :func:`read_image_info`."""
    return read_image_info(source, max_pixels).array


def as_image_array(image: np.ndarray | Image.Image | str | Path) -> np.ndarray:
    """Accept a path (or URL), a PIL image, or an array (H, W, 3) uint8 / (H, W) grey; return uint8 (H, W, 3) RGB."""
    if isinstance(image, (str, Path)):
        return read_image(image)
    if isinstance(image, Image.Image):
        return to_rgb_array(image)[0]
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"image must have shape (H, W, 3), got {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"image must be uint8 in [0, 255], got dtype {arr.dtype}")
    return np.ascontiguousarray(arr[..., :3])

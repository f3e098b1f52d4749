"""Pixels of any Pillow mode as uint8 RGB: 16- and 32-bit greys scaled by their bit depth, transparency on white."""

from __future__ import annotations

import numpy as np
from PIL import Image

from zsseg.io.errors import NotAnImage

_GREY16 = ("I;16", "I;16L", "I;16B", "I;16N")
_ALPHA = ("RGBA", "LA", "PA", "RGBa", "La")


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
        detail = f"colour mode {mode} cannot be converted to RGB ({exc})"
        raise NotAnImage(f"{detail}: save the image as RGB", detail=detail) from exc

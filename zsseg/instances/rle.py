"""Run-length encodings of binary masks: COCO's (pycocotools') and Label Studio's brush RLE.

COCO RLE (what pycocotools' ``mask.encode`` writes): the mask is read **column-major** (Fortran order, down each
column, columns left to right); ``counts`` alternate runs of 0s and 1s, starting with 0s (a leading run of 0 when
the first pixel is set); the compressed form stores each count, from the fourth on as the difference to the count
two before, in 5-bit groups as characters from ``'0'`` (48). ``{"size": [h, w], "counts": str}``.

Label Studio's brush RLE (label-studio-converter's ``brush.decode_rle``) is a different thing: the mask is read
**row-major** as RGBA bytes (4 per pixel, 255 where set), packed as a bit stream: a 32-bit value count, the word
size (5 bits), four run-size classes (4 bits each), then blocks ``[series bit][size class, 2 bits][length - 1]
[value]``. It is returned as a list of byte values.
"""

from __future__ import annotations

from typing import TypedDict

import numpy as np


class CocoRle(TypedDict):
    """A compressed COCO RLE as JSON holds it: ``size`` [h, w], ``counts`` the compressed string."""

    size: list[int]
    counts: str


def run_lengths(flat: np.ndarray) -> np.ndarray:
    """int64 runs of a bool 1-D array, alternating values and starting with a run of ``False`` (maybe 0 long)."""
    n = flat.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate(([0], change, [n])))
    return np.concatenate(([0], runs)) if flat[0] else runs


def counts_to_string(counts: np.ndarray) -> str:
    """pycocotools' compressed form of uncompressed COCO counts."""
    out: list[str] = []
    cnts = [int(c) for c in counts]
    for i, x in enumerate(cnts):
        if i > 2:
            x -= cnts[i - 2]
        more = True
        while more:
            c = x & 0x1F
            x >>= 5  # arithmetic shift, as the C code's on a signed long
            more = x != -1 if c & 0x10 else x != 0
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def string_to_counts(s: str) -> np.ndarray:
    """Uncompressed int64 counts of a compressed COCO RLE string."""
    cnts: list[int] = []
    p, n = 0, len(s)
    while p < n:
        x, k, more = 0, 0, True
        while more:
            c = ord(s[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(cnts) > 2:
            x += cnts[-2]
        cnts.append(x)
    return np.asarray(cnts, dtype=np.int64)


def encode(mask: np.ndarray) -> CocoRle:
    """COCO RLE of a bool (H, W) mask, equal to ``pycocotools.mask.encode(np.asfortranarray(mask.astype(np.uint8)))``
    with ``counts`` decoded to str (JSON-ready)."""
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {mask.shape}")
    h, w = mask.shape
    return {"size": [int(h), int(w)], "counts": counts_to_string(run_lengths(np.asarray(mask, bool).T.ravel()))}


def encode_ids(id_map: np.ndarray, num: int) -> list[CocoRle]:
    """COCO RLE of each segment ``id_map == i`` for i in 1..num, from one column-major pass (not num full masks).

    Args:
        id_map: int (H, W), 0 where no segment.
        num: segments; ids above it are ignored.
    """
    h, w = id_map.shape
    flat = np.ascontiguousarray(id_map.T).ravel()
    n = flat.size
    starts = np.concatenate(([0], np.flatnonzero(flat[1:] != flat[:-1]) + 1)) if n else np.zeros(0, np.int64)
    ends = np.concatenate((starts[1:], [n])) if n else starts
    values = flat[starts]
    order = np.argsort(values, kind="stable")  # runs of each id, left to right
    bounds = np.searchsorted(values[order], np.arange(1, num + 2))
    out: list[CocoRle] = []
    for i in range(num):
        runs = order[bounds[i] : bounds[i + 1]]
        s, e = starts[runs], ends[runs]
        counts = np.empty(2 * len(runs) + 1, dtype=np.int64)
        if len(runs):
            counts[0:-1:2] = s - np.concatenate(([0], e[:-1]))
            counts[1::2] = e - s
        counts[-1] = n - (e[-1] if len(runs) else 0)
        if counts[-1] == 0:
            counts = counts[:-1]
        out.append({"size": [int(h), int(w)], "counts": counts_to_string(counts)})
    return out


def decode(rle: CocoRle | dict) -> np.ndarray:
    """bool (H, W) mask of a COCO RLE (compressed ``counts`` str or bytes, or an uncompressed list)."""
    h, w = (int(v) for v in rle["size"])
    raw = rle["counts"]
    counts = (
        np.asarray(raw, dtype=np.int64)
        if isinstance(raw, list)
        else string_to_counts(raw.decode() if isinstance(raw, bytes) else raw)
    )
    if counts.sum() != h * w:
        raise ValueError(f"RLE counts sum to {int(counts.sum())}, expected {h} x {w} = {h * w}")
    values = (np.arange(len(counts)) % 2).astype(bool)
    return np.repeat(values, counts).reshape(w, h).T


def area(rle: CocoRle | dict) -> int:
    """Pixels set in a COCO RLE (the sum of its odd runs)."""
    raw = rle["counts"]
    counts = (
        np.asarray(raw, dtype=np.int64)
        if isinstance(raw, list)
        else string_to_counts(raw.decode() if isinstance(raw, bytes) else raw)
    )
    return int(counts[1::2].sum())


#: Label Studio's run-size classes: runs of up to 2**3, 2**4, 2**8, 2**16 values.
_LS_RUN_BITS = (3, 4, 8, 16)


def encode_brush(mask: np.ndarray) -> list[int]:
    """Label Studio brush RLE (``value.rle`` of a ``brushlabels`` result) of a bool (H, W) mask.

    Decodes with label-studio-converter's ``brush.decode_rle`` to H * W * 4 bytes, 255 where the mask is set.
    """
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {mask.shape}")
    flat = np.asarray(mask, bool).ravel()
    num = flat.size * 4
    parts = [f"{num:032b}", f"{8 - 1:05b}", "".join(f"{b - 1:04b}" for b in _LS_RUN_BITS)]
    runs = run_lengths(flat) * 4  # each pixel is 4 equal bytes, so runs are never 1 long
    value = False
    for run in runs:
        left = int(run)
        byte = "11111111" if value else "00000000"
        while left > 0:
            size = min(left, 1 << 16)
            cls = next(i for i, b in enumerate(_LS_RUN_BITS) if size <= 1 << b)
            parts.append(f"1{cls:02b}{size - 1:0{_LS_RUN_BITS[cls]}b}{byte}")
            left -= size
        value = not value
    bits = "".join(parts)
    bits += "0" * (-len(bits) % 8)
    return list(int(bits, 2).to_bytes(len(bits) // 8, "big")) if bits else []

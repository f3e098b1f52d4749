"""Colours, colourised label maps, and overlays with a legend."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

UNLABELLED_COLOUR = (0, 0, 0)


def palette(num_classes: int) -> np.ndarray:
    """uint8 (num_classes, 3) distinct colours: the PASCAL VOC bit-interleaving colour map.

    Class 0 is black in VOC's map; here every class gets a visible colour, so indices are shifted by one
    (class 0 gets VOC's colour 1, dark red). Unlabelled pixels are drawn black.
    """
    idx = np.arange(1, num_classes + 1)
    cmap = np.zeros((num_classes, 3), dtype=np.int64)
    c = idx.copy()
    for shift in range(7, -1, -1):
        for ch in range(3):
            cmap[:, ch] |= ((c >> ch) & 1) << shift
        c >>= 3
    return cmap.astype(np.uint8)


def colorize(label_map: np.ndarray, num_classes: int, ignore_index: int = 255) -> np.ndarray:
    """int (H, W) label map -> uint8 (H, W, 3) RGB; ``ignore_index`` pixels are black."""
    pal = np.concatenate([palette(num_classes), np.zeros((1, 3), np.uint8)])
    idx = np.where((label_map >= 0) & (label_map < num_classes), label_map, num_classes)
    return pal[idx]


def label_image(label_map: np.ndarray, num_classes: int) -> Image.Image:
    """A label map as a single-channel PIL image whose pixel values are the class indices.

    Up to 255 classes: 8-bit with :func:`palette` colours (so viewers show colours; 255 = unlabelled, black).
    More classes: 16-bit greyscale (65535 = unlabelled).

    Args:
        label_map: int (H, W), values in 0..num_classes-1 or the unlabelled value.
        num_classes: size of the vocabulary.
    """
    if num_classes <= 255:
        im = Image.fromarray(label_map.astype(np.uint8), mode="P")
        pal = np.zeros((256, 3), np.uint8)
        pal[:num_classes] = palette(num_classes)
        im.putpalette(pal.ravel().tolist())
        return im
    return Image.fromarray(label_map.astype(np.uint16))


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the bitmap font
        return ImageFont.load_default()


def overlay(
    image: np.ndarray,
    label_map: np.ndarray,
    classes: Sequence[str],
    ignore_index: int = 255,
    alpha: float = 0.5,
    max_legend: int = 30,
    segments: np.ndarray | None = None,
    tags: Sequence[tuple[str, int, int]] = (),
    object_counts: dict[str, int] | None = None,
) -> np.ndarray:
    """The photo with coloured class regions, outlined, and a legend of the classes present.

    Args:
        image: uint8 (H, W, 3) RGB.
        label_map: int (H, W).
        classes: the vocabulary.
        ignore_index: unlabelled value (left uncoloured).
        alpha: opacity of the colours.
        max_legend: legend rows at most (largest classes first).
        segments: int (H, W) instance id map (0 = none): outline every segment, not only every class region.
        tags: ``(text, x, y)`` labels drawn with their top-left corner at (x, y), e.g. each instance's name.
        object_counts: objects per class, appended to the legend rows (``person 21.3% x3``).

    Returns:
        uint8 (max(H, legend height), W + legend width, 3); the photo is at the top left.
    """
    h, w = label_map.shape
    mixed = np.empty((h, w, 3), dtype=np.uint8)
    step = max(1, (1 << 20) // max(w, 1))  # rows per chunk (~1 Mpx): float copies stay small on huge images
    for y0 in range(0, h, step):
        y1 = min(h, y0 + step)
        lab = label_map[y0:y1]
        colours = colorize(lab, len(classes), ignore_index).astype(np.float32)
        img = image[y0:y1].astype(np.float32)
        chunk = np.where((lab != ignore_index)[..., None], (1 - alpha) * img + alpha * colours, img)
        outline = label_map if segments is None else segments
        part = outline[y0:y1]
        edges = np.zeros(lab.shape, dtype=bool)
        edges[:-1] |= part[:-1] != part[1:]
        if y1 < h:
            edges[-1] |= part[-1] != outline[y1]
        edges[:, :-1] |= part[:, :-1] != part[:, 1:]
        chunk[edges] = 255
        mixed[y0:y1] = chunk.astype(np.uint8)
    canvas_img = Image.fromarray(mixed)
    del mixed

    counts_all = np.bincount(label_map[label_map != ignore_index].ravel(), minlength=len(classes))
    ids = np.flatnonzero(counts_all)
    counts = counts_all[ids]
    order = np.argsort(-counts)[:max_legend]
    size = max(12, min(24, h // 30))
    font = _font(size)
    row = size + 8
    per_class = object_counts or {}
    names = [
        f"{classes[ids[i]]} {100 * counts[i] / label_map.size:.1f}%"
        + (f" x{per_class[classes[ids[i]]]}" if per_class.get(classes[ids[i]]) else "")
        for i in order
    ]
    text_w = max((int(font.getlength(n)) for n in names), default=0) if hasattr(font, "getlength") else 8 * size
    legend_w = text_w + row + 24
    canvas = Image.new("RGB", (w + legend_w, max(h, row * len(names) + 16)), (255, 255, 255))
    canvas.paste(canvas_img, (0, 0))
    draw = ImageDraw.Draw(canvas)
    pal = palette(len(classes))
    for r, (i, name) in enumerate(zip(order, names, strict=True)):
        y = 8 + r * row
        draw.rectangle([w + 8, y, w + 8 + size, y + size], fill=tuple(int(v) for v in pal[ids[i]]), outline=(0, 0, 0))
        draw.text((w + 16 + size, y), name, fill=(0, 0, 0), font=font)
    tag_font = _font(max(10, size - 4))
    for text, x, y in tags:
        box = draw.textbbox((x + 2, y + 1), text, font=tag_font)
        draw.rectangle([box[0] - 2, box[1] - 1, box[2] + 2, box[3] + 1], fill=(0, 0, 0))
        draw.text((x + 2, y + 1), text, fill=(255, 255, 255), font=tag_font)
    return np.asarray(canvas)


def draw_proposals(image: np.ndarray, masks: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """Each proposal in its own colour over the image, smallest on top: uint8 (H, W, 3)."""
    out = image.astype(np.float32).copy()
    if len(masks) == 0:
        return image.copy()
    order = np.argsort(-masks.reshape(len(masks), -1).sum(1))
    pal = palette(len(masks)).astype(np.float32)
    for rank, i in enumerate(order):
        m = masks[i]
        out[m] = (1 - alpha) * out[m] + alpha * pal[rank]
    return out.astype(np.uint8)

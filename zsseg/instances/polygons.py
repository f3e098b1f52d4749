"""Masks as polygons, for the formats that want outlines (COCO polygons, CVAT, YOLO-seg), and back.

Coordinates are **pixel-edge** ``(x, y)``, the frame of :attr:`Instances.boxes`: pixel ``(row r, col c)`` is the
square ``[c, c + 1] x [r, r + 1]``; ``x = 0`` is the image's left edge and ``x = W`` its right edge.

- :func:`mask_to_polygons` traces the outline of the pixels themselves (every vertex is a pixel corner), so the
  polygons enclose exactly the mask's area: rings for each component's outside and for each hole.
- :func:`polygons_to_mask` rasterises with the **pixel-centre, even-odd** rule: a pixel is set when its centre
  ``(c + 0.5, r + 0.5)`` lies inside an odd number of rings. A traced mask therefore comes back exactly, holes
  and several components included, and pycocotools' ``frPyObjects`` (which uses the same pixel-edge frame)
  rasterises a traced outline to the same pixels.
- :func:`component_polygons` joins each component's holes into its outside with zero-width *bridges* (a segment
  walked there and back, which the even-odd rule does not see): COCO polygon lists are unions of rings, so they
  cannot hold a hole otherwise. :func:`single_polygon` bridges every ring into one (a YOLO-seg line holds one
  polygon per instance), the idea of ultralytics' COCO converter that joins an object's parts at their closest
  points.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from scipy.spatial import cKDTree


def _crop(mask: np.ndarray) -> tuple[np.ndarray, int, int] | None:
    """The mask's bounding-box crop and its (x, y) offset, or None for an empty mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    return mask[y0:y1, x0:x1], int(x0), int(y0)


def _corner_grid(crop: np.ndarray) -> np.ndarray:
    """uint8 (2h + 3, 2w + 3): the crop on the grid of pixel corners, edges and centres (cell ``(i, j)`` is the
    point ``(j - 1) / 2, (i - 1) / 2``), set where a set pixel's closed square holds it, with a zero border.
    Its boundary cells lie on the pixels' edges, so contours of it trace the pixel outline."""
    h, w = crop.shape
    up = np.repeat(np.repeat(crop, 2, axis=0), 2, axis=1)
    grid = np.zeros((2 * h + 3, 2 * w + 3), dtype=np.uint8)
    for dy in (1, 2):
        for dx in (1, 2):
            grid[dy : dy + 2 * h, dx : dx + 2 * w] |= up
    return grid


def _traced(mask: np.ndarray, tolerance: float) -> tuple[list[np.ndarray], list[int]]:
    """The rings of :func:`mask_to_polygons` and, per ring, the index of its outer ring (-1 for an outer one)."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {mask.shape}")
    cropped = _crop(mask)
    if cropped is None:
        return [], []
    crop, x0, y0 = cropped
    contours, hierarchy = cv2.findContours(_corner_grid(crop), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    rings, parents = [], []
    for contour, (_, _, _, parent) in zip(contours, hierarchy[0], strict=True):
        if tolerance > 0:
            contour = cv2.approxPolyDP(contour, 2 * tolerance, closed=True)
        pts = contour.reshape(-1, 2).astype(np.float64)
        rings.append((pts - 1) / 2 + (x0, y0))
        parents.append(int(parent))
    return rings, parents


def mask_to_polygons(mask: np.ndarray, tolerance: float = 0.0) -> list[np.ndarray]:
    """The outline of a bool (H, W) mask as rings: one per component's outside and one per hole.

    Args:
        mask: bool (H, W).
        tolerance: 0 keeps every pixel corner where the outline turns (exact); above 0 simplifies each ring
            (Douglas-Peucker) to within this many pixels.

    Returns:
        float64 (P, 2) arrays of ``(x, y)`` pixel-edge vertices (not repeating the first at the end); holes among
        them, to be read with the even-odd rule (:func:`polygons_to_mask`). Empty for an empty mask.
    """
    return _traced(mask, tolerance)[0]


def polygons_to_mask(polygons: Sequence[np.ndarray], height: int, width: int) -> np.ndarray:
    """bool (height, width): the pixels whose centre lies inside an odd number of ``polygons``' rings.

    Args:
        polygons: float (P, 2) ``(x, y)`` pixel-edge rings (a flat ``[x1, y1, x2, y2, ...]`` list works too).
        height, width: the image size.
    """
    toggles = np.zeros((height, width + 1), dtype=np.int32)
    for poly in polygons:
        pts = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
        if len(pts) < 3:
            continue
        xa, ya = pts[:, 0], pts[:, 1]
        xb, yb = np.roll(xa, -1), np.roll(ya, -1)
        # rows whose centre r + 0.5 lies in [min y, max y) of an edge: each such row crosses the edge once
        first = np.clip(np.ceil(np.minimum(ya, yb) - 0.5), 0, height).astype(np.int64)
        stop = np.clip(np.ceil(np.maximum(ya, yb) - 0.5), 0, height).astype(np.int64)
        n = stop - first
        edge = np.repeat(np.arange(len(pts)), n)
        if edge.size == 0:
            continue
        row = first[edge] + np.arange(edge.size) - np.repeat(np.cumsum(n) - n, n)
        t = (row + 0.5 - ya[edge]) / (yb[edge] - ya[edge])
        x = xa[edge] + t * (xb[edge] - xa[edge])
        col = np.clip(np.ceil(x - 0.5), 0, width).astype(np.int64)  # first pixel whose centre is right of x
        np.add.at(toggles, (row, col), 1)
    return (np.cumsum(toggles, axis=1)[:, :width] % 2).astype(bool)


def bridge(rings: Sequence[np.ndarray]) -> np.ndarray:
    """One ring walking every ring of ``rings``: each next ring (nearest first) is joined at the closest pair of
    vertices by a segment walked there and back, so the even-odd area is unchanged.

    Returns:
        float64 (P, 2); empty (0, 2) for no rings.
    """
    todo = [np.asarray(r, dtype=np.float64).reshape(-1, 2) for r in rings if len(r)]
    if not todo:
        return np.zeros((0, 2))
    merged = todo.pop(0)
    while todo:
        tree = cKDTree(merged)
        best = None
        for k, ring in enumerate(todo):
            dist, idx = tree.query(ring)
            j = int(np.argmin(dist))
            if best is None or dist[j] < best[0]:
                best = (float(dist[j]), k, int(idx[j]), j)
        assert best is not None
        _, k, i, j = best
        ring = todo.pop(k)
        loop = np.concatenate([ring[j:], ring[: j + 1]])  # starts and ends at the joined vertex
        merged = np.concatenate([merged[: i + 1], loop, merged[i:]])
    return merged


def component_polygons(mask: np.ndarray, tolerance: float = 0.0) -> list[np.ndarray]:
    """One ring per component of ``mask``: its outside with its holes bridged in (COCO's and CVAT's polygon
    lists, whose rings are a union). Same arguments and coordinates as :func:`mask_to_polygons`."""
    rings, parents = _traced(mask, tolerance)
    out = []
    for k, parent in enumerate(parents):
        if parent == -1:
            out.append(bridge([rings[k], *(rings[h] for h, p in enumerate(parents) if p == k)]))
    return out


def single_polygon(mask: np.ndarray, tolerance: float = 0.0) -> np.ndarray:
    """Every ring of ``mask`` bridged into one float64 (P, 2) polygon (YOLO-seg's one polygon an instance)."""
    return bridge(_traced(mask, tolerance)[0])


def flat(polygon: np.ndarray, scale: tuple[float, float] = (1.0, 1.0), digits: int = 2) -> list[float]:
    """``[x1, y1, x2, y2, ...]`` of a (P, 2) polygon, each axis divided by ``scale`` (w, h) and rounded."""
    pts = np.asarray(polygon, dtype=np.float64) / np.asarray(scale, dtype=np.float64)
    return [round(float(v), digits) for v in pts.ravel()]

"""Polygons traced on the pixel edges: exact round trips (ours and pycocotools'), holes, parts, one-ring form."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from export_testing import blob, iou
from pycocotools import mask as coco_mask

from zsseg.instances.polygons import (
    component_polygons,
    flat,
    mask_to_polygons,
    polygons_to_mask,
    single_polygon,
)


def shapes() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    out = [blob(rng, 60, 80) for _ in range(6)]
    yy, xx = np.mgrid[:60, :80]
    ring = ((yy - 30) ** 2 + (xx - 40) ** 2 < 25**2) & ((yy - 30) ** 2 + (xx - 40) ** 2 >= 10**2)
    island = ring | ((yy - 30) ** 2 + (xx - 40) ** 2 < 4**2)  # a part inside the hole
    diagonal = np.zeros((60, 80), bool)
    diagonal[10:20, 10:20] = diagonal[20:30, 20:30] = True  # two squares touching at a corner
    edge = np.zeros((60, 80), bool)
    edge[:, 70:] = edge[0, :] = True  # touching the image border
    return [*out, ring, island, diagonal, edge]


@pytest.mark.parametrize("index", range(10))
def test_traced_rings_rasterise_back_exactly(index: int) -> None:
    mask = shapes()[index]
    rings = mask_to_polygons(mask)
    assert all(r.dtype == np.float64 and r.shape[1] == 2 for r in rings)
    assert (polygons_to_mask(rings, *mask.shape) == mask).all()
    assert (polygons_to_mask(component_polygons(mask), *mask.shape) == mask).all()
    assert (polygons_to_mask([single_polygon(mask)], *mask.shape) == mask).all()


@pytest.mark.parametrize("index", range(10))
def test_pycocotools_reads_our_polygons_as_the_mask(index: int) -> None:
    """pycocotools rasterises polygons in the same pixel-edge frame, bridged holes included."""
    mask = shapes()[index]
    h, w = mask.shape
    rles = coco_mask.frPyObjects([flat(p) for p in component_polygons(mask)], h, w)
    assert iou(coco_mask.decode(coco_mask.merge(rles)).astype(bool), mask) >= 0.99
    single = coco_mask.decode(coco_mask.frPyObjects([flat(single_polygon(mask))], h, w))[..., 0].astype(bool)
    assert iou(single, mask) >= 0.99


def test_holes_and_parts_are_separate_rings() -> None:
    ring, island = shapes()[6], shapes()[7]
    assert len(mask_to_polygons(ring)) == 2 and len(component_polygons(ring)) == 1
    assert len(mask_to_polygons(island)) == 3 and len(component_polygons(island)) == 2
    square = np.zeros((10, 10), bool)
    square[2:5, 3:7] = True
    (poly,) = mask_to_polygons(square)
    assert sorted(map(tuple, poly)) == [(3, 2), (3, 5), (7, 2), (7, 5)]  # pixel corners, x1 = last col + 1


def test_an_index_rasteriser_like_ultralytics_still_overlaps_well() -> None:
    """Readers that fill vertex indices (cv2.fillPoly, as ultralytics trains) grow a shape by about a pixel."""
    mask = shapes()[6]
    filled = np.zeros(mask.shape, np.uint8)
    cv2.fillPoly(filled, [np.round(single_polygon(mask)).astype(np.int32)], 1)
    assert iou(filled.astype(bool), mask) >= 0.9


def test_tolerance_simplifies_and_empty_masks_have_no_polygons() -> None:
    mask = shapes()[0]
    exact, simple = mask_to_polygons(mask), mask_to_polygons(mask, tolerance=1.0)
    assert sum(map(len, simple)) < sum(map(len, exact))
    assert iou(polygons_to_mask(simple, *mask.shape), mask) >= 0.9
    empty = np.zeros((5, 5), bool)
    assert mask_to_polygons(empty) == [] and component_polygons(empty) == [] and single_polygon(empty).shape == (0, 2)
    assert not polygons_to_mask([], 5, 5).any()

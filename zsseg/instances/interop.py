"""Instances in other libraries' shapes: ``supervision.Detections`` and the Hugging Face pipeline's list."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from zsseg.errors import ZsSegError
from zsseg.instances.segments import Instances


def to_supervision(instances: Instances) -> Any:
    """``supervision.Detections`` with ``xyxy`` float32 (M, 4) (supervision's convention: x1, y1 = the last pixel's
    column and row, one less than our pixel-edge boxes), ``mask`` bool (M, H, W), ``confidence``, ``class_id`` and
    ``data["class_name"]`` / ``data["isthing"]``.

    Raises:
        ZsSegError: supervision is not installed (``pip install 'zsseg[supervision]'``).
    """
    try:
        import supervision as sv
    except ImportError as exc:
        raise ZsSegError("to_supervision needs supervision: pip install 'zsseg[supervision]'") from exc
    xyxy = instances.boxes.astype(np.float32)
    xyxy[:, 2:] -= 1  # supervision's mask_to_xyxy gives the last pixel, not its far edge
    return sv.Detections(
        xyxy=xyxy.reshape(-1, 4),
        mask=instances.masks,
        confidence=instances.scores.astype(np.float32),
        class_id=instances.class_ids.astype(int),
        data={"class_name": np.asarray(instances.labels, dtype=object), "isthing": instances.is_thing.copy()},
    )


def to_hf(instances: Instances) -> list[dict[str, Any]]:
    """The Hugging Face ``image-segmentation`` pipeline's output: per segment ``{"score": float, "label": str,
    "mask": PIL.Image}`` with a mode-L mask, 255 inside and 0 outside."""
    return [
        {
            "score": float(instances.scores[i]),
            "label": instances.labels[i],
            "mask": Image.fromarray((instances.id_map == i + 1).astype(np.uint8) * 255, mode="L"),
        }
        for i in range(len(instances))
    ]

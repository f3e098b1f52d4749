"""Instances: what each proposal won in the assembled map, as countable things and per-class stuff regions.

``Segmentation.instances()`` is the entry point; :mod:`~zsseg.instances.rle` holds the mask encodings the exports
use, :mod:`~zsseg.instances.panoptic` COCO's panoptic PNG, :mod:`~zsseg.instances.interop` the conversions to
``supervision`` and the Hugging Face pipeline's output.
"""

from zsseg.instances.extract import (
    DEFAULT_MIN_AREA,
    DEFAULT_NMS_THRESHOLD,
    DEFAULT_PART_THRESHOLD,
    check_instance_options,
    extract_instances,
)
from zsseg.instances.segments import JSON_FORMAT, Instances
from zsseg.instances.stuff import STUFF_NAMES, StuffSplit, resolve_stuff

__all__ = [
    "DEFAULT_MIN_AREA",
    "DEFAULT_NMS_THRESHOLD",
    "DEFAULT_PART_THRESHOLD",
    "JSON_FORMAT",
    "STUFF_NAMES",
    "Instances",
    "StuffSplit",
    "check_instance_options",
    "extract_instances",
    "resolve_stuff",
]

"""Instances on request: the form fields of ``POST /v1/segment``, their checks, and the JSON they add.

A request with ``instances=true`` gets, beside the semantic answer, the keys of ``<stem>.instances.json``
(:meth:`zsseg.instances.Instances.to_json`): ``stuff``, ``stuff_source``, ``nms_threshold``, ``part_threshold``,
``min_area``, ``counts`` and ``instances`` (one entry per segment, its mask as COCO RLE), plus
``instances_format``. Without it the answer is what it always was, and costs nothing more.

Every knob is checked before the request queues for the model, so a bad one answers 422 at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Form

from zsseg.errors import ZsSegError
from zsseg.instances import (
    DEFAULT_MIN_AREA,
    DEFAULT_NMS_THRESHOLD,
    DEFAULT_PART_THRESHOLD,
    JSON_FORMAT,
    check_instance_options,
    resolve_stuff,
)
from zsseg.instances.stuff import parse_stuff
from zsseg.result import Segmentation
from zsseg.serve.errors import ApiError

#: what ``/v1/info`` advertises: the knobs' defaults and the layout of the instance keys
INSTANCE_DEFAULTS: dict[str, Any] = {
    "format": JSON_FORMAT,
    "nms_threshold": DEFAULT_NMS_THRESHOLD,
    "part_threshold": DEFAULT_PART_THRESHOLD,
    "min_area": DEFAULT_MIN_AREA,
    "stuff": "builtin",
}
_OFF = ("off", "none")

# Form fields (module level: FastAPI resolves these annotations by name).
InstancesField = Annotated[
    bool, Form(description="also answer the instances (things one per object, stuff one per class), masks as COCO RLE")
]
StuffField = Annotated[
    str | None,
    Form(
        description='with instances: comma-separated classes that are stuff ("sky, wall"); empty: a built-in list '
        'of common stuff names decides; "," alone: no stuff, every class is a thing'
    ),
]
NmsField = Annotated[
    float | None,
    Form(description=f"with instances: proposals of a class with IoU >= this merge (0..1, {DEFAULT_NMS_THRESHOLD})"),
]
PartField = Annotated[
    str | None,
    Form(
        description="with instances: a proposal lying this much inside a larger one of its class merges into it, "
        f'0..1, or "off" (default {DEFAULT_PART_THRESHOLD})'
    ),
]
MinAreaField = Annotated[
    int | None, Form(description=f"with instances: drop segments of fewer pixels, >= 0 (default {DEFAULT_MIN_AREA})")
]


@dataclass(frozen=True)
class InstanceForm:
    """The instance fields of a request as sent (None: not sent)."""

    instances: bool = False
    stuff: str | None = None
    nms_threshold: float | None = None
    part_threshold: str | None = None
    min_area: int | None = None


def instance_form(
    instances: InstancesField = False,
    stuff: StuffField = None,
    nms_threshold: NmsField = None,
    part_threshold: PartField = None,
    min_area: MinAreaField = None,
) -> InstanceForm:
    """FastAPI dependency: the instance fields of a multipart request."""
    return InstanceForm(instances, stuff, nms_threshold, part_threshold, min_area)


def _part_threshold(text: str | None) -> float | None:
    if text is None:
        return DEFAULT_PART_THRESHOLD
    if text.strip().lower() in _OFF:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ApiError(422, f'part_threshold must be a number between 0 and 1 or "off", got {text!r}') from None
    if not 0.0 <= value <= 1.0:
        raise ApiError(422, f'part_threshold must be between 0 and 1 (or "off"), got {value:g}')
    return value


def instance_options(form: InstanceForm, classes: list[str]) -> dict[str, Any] | None:
    """The keyword arguments of :meth:`Segmentation.instances` a request asks for, checked against its
    vocabulary; None when it does not ask for instances.

    Raises:
        ApiError: 422 for a knob without ``instances=true``, a threshold outside [0, 1], a negative ``min_area``,
            or a ``stuff`` name not among ``classes``.
    """
    if not form.instances:
        sent = [
            name for name in ("stuff", "nms_threshold", "part_threshold", "min_area") if getattr(form, name) is not None
        ]
        if sent:
            raise ApiError(422, f"{', '.join(sent)} shape the instances: send instances=true with them")
        return None
    nms = DEFAULT_NMS_THRESHOLD if form.nms_threshold is None else form.nms_threshold
    if not 0.0 <= nms <= 1.0:
        raise ApiError(422, f"nms_threshold must be between 0 and 1, got {nms:g}")
    min_area = DEFAULT_MIN_AREA if form.min_area is None else form.min_area
    if min_area < 0:
        raise ApiError(422, f"min_area must be an integer >= 0 (pixels), got {min_area}")
    options: dict[str, Any] = {
        "stuff": parse_stuff(form.stuff),
        "nms_threshold": nms,
        "part_threshold": _part_threshold(form.part_threshold),
        "min_area": min_area,
    }
    try:
        check_instance_options(options["nms_threshold"], options["part_threshold"], options["min_area"])
        resolve_stuff(classes, options["stuff"])
    except ZsSegError as exc:
        message = str(exc).replace("--stuff names", "stuff names").replace("among --classes", "among classes")
        raise ApiError(422, message) from exc
    return options


def instance_fields(result: Segmentation, options: dict[str, Any]) -> tuple[dict[str, Any], float]:
    """Runs in the worker thread: the keys a request with instances gains, and the seconds they took."""
    t0 = time.perf_counter()
    doc = result.instances(**options).to_json()
    fields = {"instances_format": doc.pop("format")}
    for key in ("height", "width", "classes"):  # the semantic answer has them (image_size, classes)
        doc.pop(key)
    fields.update(doc)
    return fields, time.perf_counter() - t0

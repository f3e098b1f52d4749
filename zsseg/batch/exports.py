"""``zsseg batch --export``: per-image instance files during the run, datasets rebuilt from them at its end.

Layout: workers write ``OUT/instances/<key>.json`` (``zsseg segment``'s ``<stem>.instances.json`` document) beside
the label PNG, in the same atomic set; at the end of a run every format asked for is rebuilt in
``OUT/exports/<format>/`` from the instance files of every image the index records as ok, so a resumed or extended
run exports each image once. An image's file name in a dataset is ``<key><suffix>`` (``b/x.jpg``; ``a/x.jpg.jpg``
where two inputs share a stem and the key keeps the suffix), its per-image files are named by its key.

Settings: the instance settings (vocabulary's stuff split, NMS, part and minimum-area thresholds) enter the run's
stamp (``zsseg_batch.json``) as ``instances`` when a run exports; later exporting runs into OUT must use the same,
runs without ``--export`` ignore them (and their stamp is what it was before exports existed). Images an earlier
run did without instance files are segmented again when this run's inputs hold them (their label PNG is written
with the same bytes); those it does not hold are left out of the export, with a warning.
"""

from __future__ import annotations

import posixpath
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zsseg.batch.worker import instances_file
from zsseg.export import ExportImage, check_export_dir, expected_settings, export_datasets, parse_formats

EXPORTS_DIR = "exports"
#: ``Segmentation.instances`` defaults, filled in so the API and the command line stamp alike
_INSTANCE_KEYS = ("stuff", "nms_threshold", "part_threshold", "min_area")


@dataclass(frozen=True)
class ExportPlan:
    """What a run exports: the formats, the instance options for the workers, and the settings they give.

    Attributes:
        formats: format names (:data:`zsseg.export.FORMATS`).
        instance_options: keyword arguments of :meth:`Segmentation.instances`.
        settings: :func:`zsseg.export.expected_settings` (the stamp's ``instances`` entry adds nothing else).
        options: format options (``polygons``, ``tolerance``, ...).
    """

    formats: tuple[str, ...]
    instance_options: dict[str, Any]
    settings: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)

    def folders(self, out: Path) -> dict[str, Path]:
        return {f: out / EXPORTS_DIR / f for f in self.formats}

    def stamp(self) -> dict[str, Any]:
        """The stamp's ``instances`` entry (the vocabulary is already the stamp's ``classes``)."""
        return {k: v for k, v in self.settings.items() if k != "classes"}


def plan_export(
    vocab: list[str],
    export: str | Sequence[str] | None,
    instance_options: dict[str, Any] | None,
    export_options: dict[str, Any] | None,
) -> ExportPlan | None:
    """Check ``--export`` and the instance flags before any work; None when the run exports nothing.

    Raises:
        ZsSegError: an unknown format, a knob out of range, a stuff class not in the vocabulary.
    """
    if not export:
        return None
    import inspect

    from zsseg.instances import check_instance_options, resolve_stuff
    from zsseg.instances.stuff import parse_stuff
    from zsseg.result import Segmentation

    formats = tuple(parse_formats(export))
    params = inspect.signature(Segmentation.instances).parameters
    opts = {k: params[k].default for k in _INSTANCE_KEYS} | dict(instance_options or {})
    opts["stuff"] = parse_stuff(opts["stuff"])
    check_instance_options(opts["nms_threshold"], opts["part_threshold"], opts["min_area"])
    split = resolve_stuff(vocab, opts["stuff"])
    settings = expected_settings(vocab, split.names(vocab), split.source, opts)
    return ExportPlan(formats, opts, settings, dict(export_options or {}))


def check_export_folders(plan: ExportPlan | None, out: Path) -> None:
    """Refuse export folders holding another run's or tool's files (nothing written)."""
    if plan is not None:
        for fmt, folder in plan.folders(out).items():
            check_export_dir(folder, fmt, plan.settings)


def file_name(key: str, path: str) -> str:
    """An image's name in the datasets: its key plus its file's suffix."""
    return key + posixpath.splitext(path)[1].lower()


def write_exports(plan: ExportPlan, out: Path, rows: list[dict[str, Any]]) -> int:
    """Rebuild every format from the ok rows' instance files; returns how many images the datasets hold."""
    images, missing, models = [], 0, []
    for r in rows:
        if r["status"] != "ok":
            continue
        doc = out / instances_file(r["key"])
        if not doc.is_file():
            missing += 1
            continue
        images.append(ExportImage(file_name(r["key"], r["path"]), r["path"], doc))
        models.append(r.get("model") or "")
    if missing:
        print(
            f"zsseg: warning: {missing} images done by a run without --export have no instance files and are not "
            "among this run's inputs: they are left out of the export (rerun with them as inputs)",
            file=sys.stderr,
        )
    options = {"model_version": f"zsseg {models[0]}" if models else "zsseg"} | plan.options
    export_datasets(images, plan.folders(out), settings=plan.settings, **options)
    return len(images)

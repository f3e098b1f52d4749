"""What every export shares: the per-image record, the folder's mark, and a writer that puts a whole dataset in
place at once (or nothing) and removes what an earlier export of the folder wrote and this one does not.

A folder zsseg exported into holds ``zsseg_export.json`` (:data:`MARKER`): the format, the vocabulary, the stuff
split and the extraction settings, and the files it wrote. An export goes only into a folder that is absent,
empty, or marked for the same format, vocabulary and settings (then it is rebuilt); anything else is refused
before a file is written, so another run's or another tool's dataset is never mixed into.
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from zsseg.errors import ZsSegError
from zsseg.instances import Instances
from zsseg.io import AtomicWriter, is_url, read_url

MARKER = "zsseg_export.json"
#: the marker's layout version
MARKER_FORMAT = "zsseg.export/1"
#: settings keys of the instances JSON that define an export (the vocabulary and how instances were made)
_SETTING_KEYS = ("classes", "stuff", "stuff_source", "nms_threshold", "part_threshold", "min_area")


@dataclass(frozen=True)
class ExportImage:
    """One image of a dataset.

    Attributes:
        file_name: its posix path inside the dataset's ``images/`` folder (``a/x.jpg``); its stem (without the
            suffix) names its per-image files (``labels/a/x.txt``), so stems must be unique.
        source: where the image file is read from to place it in ``images/`` (local path or fsspec URL); None
            leaves the image out (the annotations still name it).
        instances: its :class:`~zsseg.instances.Instances`, or their ``zsseg.instances/1`` JSON document
            (:meth:`Instances.to_json`), or the path of a file holding that document (read when exported, so a
            big dataset is never all in memory).
    """

    file_name: str
    source: str | None
    instances: Instances | dict[str, Any] | str | Path

    @property
    def stem(self) -> str:
        return posixpath.splitext(self.file_name)[0]

    def load(self) -> Instances:
        """The image's instances (decoded from their JSON where that is what the record holds)."""
        value = self.instances
        if isinstance(value, Instances):
            return value
        if isinstance(value, str | Path):
            try:
                value = json.loads(Path(value).read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise ZsSegError(f"{value}: cannot read the instances file ({exc}): redo that image") from exc
        try:
            return Instances.from_json(value)
        except (KeyError, ValueError, TypeError) as exc:
            raise ZsSegError(f"{self.file_name}: not a zsseg instances document ({exc}): redo that image") from exc


def instance_settings(inst: Instances) -> dict[str, Any]:
    """What defines an export of ``inst``: vocabulary, stuff split and extraction settings (JSON values)."""
    doc = {"classes": list(inst.classes), "stuff": list(inst.stuff_classes), "stuff_source": inst.stuff_source}
    doc |= {k: v for k, v in inst.settings.items() if k in _SETTING_KEYS}
    return json.loads(json.dumps(doc))


def read_marker(folder: Path) -> dict[str, Any] | None:
    """The folder's :data:`MARKER`, None if it has none."""
    path = folder / MARKER
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ZsSegError(f"{path} is damaged ({exc}): remove the folder {folder} or export elsewhere") from exc
    return doc if isinstance(doc, dict) else None


def check_export_dir(folder: Path, fmt: str, settings: dict[str, Any] | None = None) -> None:
    """Refuse to export ``fmt`` into ``folder`` unless it is absent, empty or our export of the same kind.

    Args:
        folder: the format's folder.
        fmt: the format's name.
        settings: :func:`instance_settings` of the images (None: the format alone is checked).

    Raises:
        ZsSegError: a file where the folder should be, a folder holding files zsseg did not export, or a zsseg
            export of another format, vocabulary or settings. Nothing is written.
    """
    if folder.exists() and not folder.is_dir():
        raise ZsSegError(f"{folder} is a file, not an export folder: move it or export into another --out folder")
    if not folder.is_dir() or not any(folder.iterdir()):
        return
    marker = read_marker(folder)
    if marker is None:
        raise ZsSegError(
            f"{folder} holds files that are not a zsseg export (no {MARKER}): export into an empty or new folder"
        )
    if marker.get("export") != fmt:
        raise ZsSegError(f"{folder} holds a zsseg {marker.get('export')} export, not {fmt}: use another folder")
    before = marker.get("settings") or {}
    if settings is not None:
        for key in sorted(before.keys() | settings.keys()):
            if before.get(key) != settings.get(key):
                raise ZsSegError(
                    f"{folder} holds a {fmt} export with {key}={before.get(key)!r}, this one has "
                    f"{settings.get(key)!r}: export into another folder or with the same settings"
                )


def check_images(images: Sequence[ExportImage]) -> None:
    """Check that file names are relative paths inside the dataset and that their stems are unique.

    Raises:
        ZsSegError: an absolute or escaping name, or two images with one stem.
    """
    seen: dict[str, str] = {}
    for im in images:
        name = im.file_name
        if not name or name.startswith("/") or ".." in name.split("/"):
            raise ZsSegError(f"{name!r}: an export file name must be a relative posix path inside the dataset")
        if im.stem in seen:
            raise ZsSegError(f"{seen[im.stem]!r} and {name!r} share the stem {im.stem!r}: give them unique names")
        seen[im.stem] = name


class DatasetWriter:
    """Collects a dataset's files as temporaries in ``folder`` and puts them in place together on :meth:`commit`.

    Args:
        folder: the format's folder (created on first write).
        fmt: the format's name (recorded in the marker).
        settings: :func:`instance_settings` of the images (recorded in the marker).
    """

    def __init__(self, folder: Path, fmt: str, settings: dict[str, Any] | None) -> None:
        self.folder = folder
        self.fmt = fmt
        self.settings = settings
        self.files: list[str] = []
        self._writer = AtomicWriter()

    def _dest(self, rel: str) -> Path:
        dest = self.folder / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        self.files.append(rel)
        return dest

    def write_text(self, rel: str, text: str) -> None:
        self._writer.write_text(self._dest(rel), text)

    def write_json(self, rel: str, doc: Any, indent: int | None = None) -> None:
        """``doc`` as JSON (compact unless ``indent``), UTF-8, names as they are."""
        separators = (",", ":") if indent is None else None
        self.write_text(rel, json.dumps(doc, indent=indent, separators=separators, ensure_ascii=False) + "\n")

    def write_png(self, rel: str, pixels: np.ndarray) -> None:
        self._writer.write_image(self._dest(rel), Image.fromarray(pixels))

    def place_image(self, rel: str, source: str | None) -> None:
        """Put the image file at ``rel``: a hard link to a local ``source`` (a copy where linking fails, e.g.
        across file systems), the bytes of a URL; kept as it is when it already is that file."""
        if source is None:
            return
        dest = self._dest(rel)
        if not is_url(source):
            src = Path(source)
            if dest.is_file() and src.is_file() and os.path.samefile(src, dest):
                return
            tmp = self._writer.reserve(dest)
            tmp.unlink()
            try:
                os.link(src, tmp)
            except OSError:
                try:
                    shutil.copyfile(src, tmp)
                except OSError as exc:
                    raise ZsSegError(f"{source}: cannot place the image in the export ({exc.strerror})") from exc
            return
        self._writer.reserve(dest).write_bytes(read_url(source))

    def commit(self) -> list[str]:
        """Write the marker, put every file in place, then remove what the folder's previous export wrote and
        this one did not. Returns the files written (relative posix paths)."""
        previous = read_marker(self.folder) if self.folder.is_dir() else None
        marker = {"format": MARKER_FORMAT, "export": self.fmt, "settings": self.settings, "files": sorted(self.files)}
        self.folder.mkdir(parents=True, exist_ok=True)
        self._writer.write_text(self.folder / MARKER, json.dumps(marker, indent=1) + "\n")
        self._writer.commit()
        stale = set((previous or {}).get("files") or ()) - set(self.files)
        for rel in sorted(stale):
            path = self.folder / rel
            if ".." not in rel.split("/") and path.is_file():
                path.unlink()
        return sorted(self.files)

    def discard(self) -> None:
        self._writer.discard()

"""Batch inputs: a folder (recursive) or a manifest (text, CSV or Parquet with a ``path`` column), local or fsspec.

Every image becomes an :class:`ImageItem`: its path (absolute local path or fsspec URL) and its *key*, the path
relative to the input's root without the suffix (``a/x`` for ``photos/a/x.jpg``), which names its outputs. Keys
never collide: where two inputs share a stem (``a/x.jpg`` and ``a/x.png``) both keep their suffix in the key
(``a/x.jpg``, ``a/x.png``).
"""

from __future__ import annotations

import csv
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from zsseg.errors import ZsSegError
from zsseg.io import IMAGE_SUFFIXES, collect_images, is_url, url_filesystem

MANIFEST_SUFFIXES = (".txt", ".csv", ".parquet")


@dataclass(frozen=True)
class ImageItem:
    """One image of a batch: ``path`` (absolute local path or fsspec URL) and ``key`` (relative output name)."""

    path: str
    key: str


def _is_image(name: str) -> bool:
    return posixpath.splitext(name)[1].lower() in IMAGE_SUFFIXES


def _list_folder(source: str) -> tuple[list[str], str]:
    """Image paths under a folder (recursive, sorted) and the folder itself as the root."""
    if not is_url(source):
        root = Path(source).resolve()
        return [str(p.resolve()) for p in collect_images([root])], str(root)
    fs, inner = url_filesystem(source)
    protocol = source.split("://", 1)[0]
    found = sorted(p for p in fs.find(inner) if _is_image(p))
    if not found:
        raise ZsSegError(f"{source}: folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return [f"{protocol}://{p}" for p in found], f"{protocol}://{inner.rstrip('/')}"


def _read_manifest(path: Path) -> list[str]:
    """The ``path`` entries of a manifest, relative ones resolved against the manifest's folder."""
    suffix = path.suffix.lower()
    if suffix == ".txt":
        lines = [ln.split("#", 1)[0].strip() for ln in path.read_text(encoding="utf-8").splitlines()]
        entries = [ln for ln in lines if ln]
    elif suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if "path" not in (reader.fieldnames or []):
                raise ZsSegError(f"{path}: the CSV manifest has no 'path' column: add a header line naming it")
            entries = [row["path"].strip() for row in reader if (row.get("path") or "").strip()]
    else:
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        if "path" not in table.column_names:
            raise ZsSegError(f"{path}: the Parquet manifest has no 'path' column: add one with the image paths")
        entries = [str(p).strip() for p in table.column("path").to_pylist() if p is not None and str(p).strip()]
    if not entries:
        raise ZsSegError(f"{path}: the manifest lists no images: give one image path per row")
    out = []
    for e in entries:
        if is_url(e):
            out.append(e)
        else:
            p = Path(e) if Path(e).is_absolute() else path.parent / e
            out.append(str(p.resolve()))
    return out


def _keys(paths: Sequence[str], root: str) -> list[str]:
    """Relative output keys of posix ``paths`` under ``root``, without suffixes unless stems would collide."""
    rel = [posixpath.relpath(p, root) for p in paths]
    keys = [posixpath.splitext(r)[0] for r in rel]
    while True:
        count: dict[str, int] = {}
        for k in keys:
            count[k] = count.get(k, 0) + 1
        clash = [i for i, k in enumerate(keys) if count[k] > 1 and keys[i] != rel[i]]
        if not clash:
            return keys
        for i in clash:
            keys[i] = rel[i]


def _posix(path: str) -> str:
    """A path or URL as one posix string (``s3://b/x`` -> ``s3/b/x``) so common roots can be computed."""
    if is_url(path):
        protocol, rest = path.split("://", 1)
        return f"/{protocol}/{rest.lstrip('/')}"
    return Path(path).as_posix()


def list_inputs(source: str | Path) -> list[ImageItem]:
    """The images of a folder (recursive) or manifest (``.txt``, ``.csv``, ``.parquet``), duplicates removed.

    Args:
        source: local folder or manifest file, or an fsspec URL of either.

    Returns:
        items in sorted (folder) or listed (manifest) order, each path once.
    """
    src = str(source)
    if is_url(src):
        fs, inner = url_filesystem(src)
        if fs.isdir(inner):
            paths, root = _list_folder(src)
        else:
            raise ZsSegError(f"{src}: give a folder URL of images; put manifests on a local path")
    else:
        p = Path(src)
        if p.is_dir():
            paths, root = _list_folder(src)
        elif p.is_file() and p.suffix.lower() in MANIFEST_SUFFIXES:
            paths = _read_manifest(p)
            root = ""
        elif p.is_file():
            raise ZsSegError(
                f"{p}: unknown input {p.suffix!r}: give a folder of images or a manifest (.txt, .csv, .parquet)"
            )
        else:
            raise ZsSegError(f"{p}: no such file or folder: check the path")
    paths = list(dict.fromkeys(paths))
    posix = [_posix(x) for x in paths]
    root_posix = _posix(root) if root else posixpath.commonpath([posixpath.dirname(x) for x in posix])
    return [ImageItem(p, k) for p, k in zip(paths, _keys(posix, root_posix), strict=True)]

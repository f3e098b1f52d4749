"""What a run reads besides pixels: image paths (files and folders), output stems, vocabularies, text files."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from zsseg.errors import ZsSegError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp")


def parse_classes(text: str | Sequence[str]) -> list[str]:
    """Validate a vocabulary given as ``"cat, sofa, potted plant"`` (commas or newlines) or a list of names.

    A string is split at commas and newlines (empty pieces between separators are dropped). A list is taken
    as given: every entry must be a non-empty string, so label ``i`` is always the user's ``i``-th entry.
    Surrounding spaces and a UTF-8 byte-order mark are removed.

    Raises:
        ZsSegError: empty vocabulary, a non-string or empty entry in a list, or the same name twice.
    """
    if isinstance(text, str):
        names = [n.strip().lstrip("\ufeff").strip() for n in text.replace("\n", ",").split(",")]
        names = [n for n in names if n]
    elif isinstance(text, (bytes, bytearray)) or not isinstance(text, Sequence):
        raise ZsSegError(f"classes must be a string or a list of strings, got {type(text).__name__}")
    else:
        names = []
        for i, n in enumerate(text):
            if not isinstance(n, str):
                raise ZsSegError(f"class {i} is {n!r} ({type(n).__name__}), not a name: give strings only")
            name = n.strip().lstrip("\ufeff").strip()
            if not name:
                raise ZsSegError(f"class {i} is an empty name: remove it or name the class")
            names.append(name)
    if not names:
        raise ZsSegError('the vocabulary is empty: give class names, e.g. --classes "cat, sofa, potted plant"')
    seen: dict[str, str] = {}
    for n in names:
        key = " ".join(n.lower().split())
        if key in seen:
            raise ZsSegError(f"class {n!r} is given twice in the vocabulary: list each class once")
        seen[key] = n
    return names


def read_text(path: str | Path, what: str = "file") -> str:
    """A text file in UTF-8 (with or without a byte-order mark); any other encoding is one clear error."""
    path = Path(path)
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ZsSegError(
            f"{path}: {what} is not UTF-8 (byte {exc.start}: {exc.object[exc.start : exc.start + 1]!r}): "
            "save it as UTF-8"
        ) from None
    except OSError as exc:
        raise ZsSegError(f"{path}: cannot read {what} ({exc.strerror}): check the path") from None


def read_classes_file(path: str | Path) -> list[str]:
    """Read a vocabulary file, UTF-8 with or without BOM.

    ``.txt`` (or no suffix): the same text as ``--classes``: names separated by newlines or commas (so
    ``cat, dog, sofa`` on one line is three classes); ``#`` starts a comment to the end of its line. A name
    holding a comma or ``#`` needs ``.json``: a list of names, taken as given.
    """
    path = Path(path)
    if not path.is_file():
        raise ZsSegError(f"{path}: no such class list file: check the path")
    suffix = path.suffix.lower()
    if suffix not in ("", ".txt", ".json"):
        raise ZsSegError(
            f"{path}: unknown class list format {suffix!r}: use a .txt file with one class name per line "
            "or a .json list of names"
        )
    text = read_text(path, "class list")
    if suffix in ("", ".txt"):
        return parse_classes("\n".join(ln.split("#", 1)[0] for ln in text.splitlines()))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ZsSegError(f"{path}: invalid JSON ({exc}): give a JSON list of class names") from exc
    if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
        raise ZsSegError(f'{path}: expected a JSON list of class names, e.g. ["cat", "sofa"]')
    return parse_classes(data)


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def collect_images(paths: Iterable[str | Path], exclude: str | Path | None = None) -> list[Path]:
    """Expand files and folders (recursively, sorted) into image paths; missing paths are an error.

    Args:
        paths: image files (taken whatever their suffix) and folders (files with :data:`IMAGE_SUFFIXES`).
        exclude: a folder whose files are never collected from folders (the run's ``--out``), so a rerun
            never segments its own outputs.
    """
    skip = Path(exclude).resolve() if exclude is not None else None
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(
                f
                for f in p.rglob("*")
                if f.is_file()
                and f.suffix.lower() in IMAGE_SUFFIXES
                and not (skip is not None and _inside(f.resolve(), skip))
            )
            if not found:
                raise ZsSegError(f"{p}: folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        elif p.exists():  # a FIFO, socket or device: opening it could block forever
            raise ZsSegError(f"{p}: not a regular file (a pipe, socket or device): name an image file")
        else:
            raise ZsSegError(f"{p}: no such file or folder: check the path")
    unique: dict[Path, Path] = {}
    for f in out:  # a file named twice (or found through two folders) is segmented once
        unique.setdefault(f.resolve(), f)
    return list(unique.values())


def check_out_not_input(paths: Iterable[str | Path], out: str | Path) -> None:
    """Refuse an ``--out`` that is an input folder or holds one (its images would mix with the outputs)."""
    out_r = Path(out).resolve()
    for p in map(Path, paths):
        if p.is_dir() and _inside(p.resolve(), out_r):
            raise ZsSegError(
                f"--out {out} is the input folder {p} or holds it: outputs would mix with inputs; pass another "
                f"--out (a folder inside the input, e.g. {p / 'zsseg-out'}, is fine: it is never read as input)"
            )


def plan_stems(paths: Sequence[Path], out: str | Path, suffixes: Sequence[str]) -> list[str]:
    """Output stems, one per input, such that no output file is an input or another output of the run.

    The stem is the input's own (``photo.jpg`` -> ``photo``); where ``<stem><suffix>`` for some suffix would
    overwrite an input file of the run or an output already claimed by an earlier input, ``_2``, ``_3``, ...
    is appended (compared case-insensitively, as on macOS and Windows). Files of earlier runs are overwritten.
    """
    out_r = Path(out).resolve()
    inputs = {str(p.resolve()).casefold() for p in paths}
    claimed: set[str] = set()
    stems: list[str] = []
    for p in paths:
        base = p.stem or "image"
        stem, i = base, 1
        while True:
            keys = [str(out_r / f"{stem}{s}").casefold() for s in suffixes]
            if not any(k in claimed or k in inputs for k in keys):
                break
            i += 1
            stem = f"{base}_{i}"
        claimed.update(keys)
        stems.append(stem)
    return stems

"""Reading images and vocabularies, finding inputs, and writing outputs atomically."""

from __future__ import annotations

import json
import os
import signal
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from zsseg.errors import ZsSegError
from zsseg.images import DEFAULT_MAX_PIXELS, ImageInfo, read_image, read_image_info, to_rgb_array

__all__ = ["DEFAULT_MAX_PIXELS", "ImageInfo", "read_image", "read_image_info", "to_rgb_array"]  # re-exported

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp")


def as_image_array(image: np.ndarray | Image.Image | str | Path) -> np.ndarray:
    """Accept a path, a PIL image, or an array (H, W, 3) uint8 / (H, W) grey; return uint8 (H, W, 3) RGB."""
    if isinstance(image, (str, Path)):
        return read_image(image)
    if isinstance(image, Image.Image):
        return to_rgb_array(image)[0]
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"image must have shape (H, W, 3), got {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"image must be uint8 in [0, 255], got dtype {arr.dtype}")
    return np.ascontiguousarray(arr[..., :3])


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
        elif p.exists():
            out.append(p)
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


def check_out_dir(path: str | Path, flag: str = "--out") -> Path:
    """Check that folder ``path`` exists and is writable, or could be created; creates nothing."""
    path = Path(path)
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise ZsSegError(f"{flag} {path}: cannot write outputs there ({probe} is a file): pass a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ZsSegError(f"{flag} {path}: cannot write outputs there ({probe} is not writable): pass a writable folder")
    return path


def ensure_writable_dir(path: str | Path) -> Path:
    """Create ``path`` if needed and check that files can be written in it."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".zsseg-write-test-"):
            pass
    except OSError as exc:
        raise ZsSegError(f"{path}: cannot write outputs there ({exc.strerror}): pass a writable --out folder") from exc
    return path


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Delay SIGINT and SIGTERM until the block ends (main thread only), so a commit is never cut in half."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[object] = []
    previous = {s: signal.signal(s, lambda *a: caught.append(a)) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if caught:
            raise KeyboardInterrupt


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C (KeyboardInterrupt) inside the block, so temporary files are cleaned up."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _umask() -> int:
    """The process's file-creation mask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


class AtomicWriter:
    """Writes several files so that either all appear or none does.

    Each ``write_*`` goes to a hidden temporary file in the destination folder; :meth:`commit` renames them
    all into place, and :meth:`discard` (or leaving the ``with`` block on an exception) removes them.
    """

    def __init__(self) -> None:
        self._pending: list[tuple[Path, Path]] = []

    @staticmethod
    def destination_name(name: str) -> str | None:
        """The destination file name a temporary file called ``name`` was made for (``.<dest>.<random>.tmp``, what
        :meth:`_tmp` makes; the random part has no dot), or None if ``name`` is not one."""
        if not (name.startswith(".") and name.endswith(".tmp")):
            return None
        return name[1:-4].rsplit(".", 1)[0]

    def _tmp(self, dest: Path) -> Path:
        fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
        os.close(fd)
        tmp = Path(name)
        self._pending.append((tmp, dest))
        return tmp

    def write_image(self, dest: Path, image: Image.Image) -> None:
        image.save(self._tmp(dest), format="PNG")

    def write_text(self, dest: Path, text: str) -> None:
        self._tmp(dest).write_text(text, encoding="utf-8")

    def reserve(self, dest: Path) -> Path:
        """A temporary path for ``dest`` that the caller's own writer fills (e.g. ``np.savez``)."""
        return self._tmp(dest)

    def commit(self) -> list[Path]:
        """Move every file into place, or none: destinations are checked first, and a failed rename puts
        back what was there before. SIGINT/SIGTERM wait until the commit is done.

        Raises:
            ZsSegError: a destination is a folder or cannot be written (no output of the set is kept).
        """
        for _, dest in self._pending:
            if dest.is_dir():
                self.discard()
                raise ZsSegError(f"{dest} is a folder: cannot write an output there; move it or pass another --out")
        mode = 0o666 & ~_umask()  # mkstemp (and safetensors) create files 0600: give outputs the usual mode
        done: list[Path] = []
        backups: list[tuple[Path, Path]] = []
        with signals_deferred():
            try:
                for tmp, dest in self._pending:
                    os.chmod(tmp, mode)
                    if dest.exists():
                        fd, bak_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".bak")
                        os.close(fd)
                        os.replace(dest, bak_name)
                        backups.append((Path(bak_name), dest))
                    os.replace(tmp, dest)
                    done.append(dest)
            except OSError as exc:
                for d in done:
                    d.unlink(missing_ok=True)
                for bak, orig in backups:
                    os.replace(bak, orig)
                self.discard()
                raise ZsSegError(f"{exc.filename}: cannot write ({exc.strerror}); none of the set was kept") from exc
            for bak, _orig in backups:
                bak.unlink(missing_ok=True)
        self._pending.clear()
        return done

    def discard(self) -> None:
        for tmp, _ in self._pending:
            tmp.unlink(missing_ok=True)
        self._pending.clear()

    def __enter__(self) -> AtomicWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()

"""Reading images and vocabularies, finding inputs, and writing outputs atomically."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from zsseg.errors import ZsSegError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as uint8 (H, W, 3) RGB, applying its EXIF orientation."""
    path = Path(path)
    if not path.exists():
        raise ZsSegError(f"{path}: no such file: check the path")
    if path.is_dir():
        raise ZsSegError(f"{path}: is a folder, not an image")
    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ZsSegError(f"{path}: cannot read image ({exc}): pass a valid JPEG/PNG/BMP/TIFF/WebP file") from exc


def as_image_array(image: np.ndarray | Image.Image | str | Path) -> np.ndarray:
    """Accept a path, a PIL image, or an array (H, W, 3) uint8 / (H, W) grey; return uint8 (H, W, 3) RGB."""
    if isinstance(image, (str, Path)):
        return read_image(image)
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"image must have shape (H, W, 3), got {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"image must be uint8 in [0, 255], got dtype {arr.dtype}")
    return np.ascontiguousarray(arr[..., :3])


def parse_classes(text: str | Sequence[str]) -> list[str]:
    """Validate a vocabulary given as ``"cat, sofa, potted plant"`` (commas or newlines) or a list.

    Raises:
        ZsSegError: empty vocabulary, empty names, or the same name twice.
    """
    names = [n.strip() for n in text.replace("\n", ",").split(",")] if isinstance(text, str) else list(text)
    names = [n.strip() for n in names if isinstance(n, str) and n.strip()]
    if not names:
        raise ZsSegError('the vocabulary is empty: give class names, e.g. --classes "cat, sofa, potted plant"')
    seen: dict[str, str] = {}
    for n in names:
        key = " ".join(n.lower().split())
        if key in seen:
            raise ZsSegError(f"class {n!r} is given twice in the vocabulary: list each class once")
        seen[key] = n
    return names


def read_classes_file(path: str | Path) -> list[str]:
    """Read a vocabulary file: ``.txt`` (one name per line, ``#`` comments) or ``.json`` (a list of names)."""
    path = Path(path)
    if not path.is_file():
        raise ZsSegError(f"{path}: no such class list file: check the path")
    suffix = path.suffix.lower()
    text = path.read_text(encoding="utf-8")
    if suffix in ("", ".txt"):
        lines = [ln.split("#", 1)[0].strip() for ln in text.splitlines()]
        return parse_classes([ln for ln in lines if ln])
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ZsSegError(f"{path}: invalid JSON ({exc}): give a JSON list of class names") from exc
        if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
            raise ZsSegError(f'{path}: expected a JSON list of class names, e.g. ["cat", "sofa"]')
        return parse_classes(data)
    raise ZsSegError(
        f"{path}: unknown class list format {suffix!r}: use a .txt file with one class name per line "
        "or a .json list of names"
    )


def collect_images(paths: Iterable[str | Path]) -> list[Path]:
    """Expand files and folders (recursively, sorted) into image paths; missing paths are an error."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise ZsSegError(f"{p}: folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
            out.extend(found)
        elif p.exists():
            out.append(p)
        else:
            raise ZsSegError(f"{p}: no such file or folder: check the path")
    return out


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
        mode = 0o666 & ~_umask()  # mkstemp (and safetensors) create files 0600: give outputs the usual mode
        done = []
        for tmp, dest in self._pending:
            os.chmod(tmp, mode)
            os.replace(tmp, dest)
            done.append(dest)
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

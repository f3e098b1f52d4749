"""Writing outputs: checking the output folder, and sets of files that appear all at once or not at all."""

from __future__ import annotations

import os
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from PIL import Image

from zsseg.errors import ZsSegError


def check_out_dir(path: str | Path, flag: str = "--out") -> Path:
    """Check that folder ``path`` exists and is writable, or could be created; creates nothing."""
    path = Path(path)
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise ZsSegError(f"{flag} {path}: cannot write outputs there ({probe} is a file): pass a folder")
    writable = os.access(probe, os.W_OK | os.X_OK)
    if writable:  # os.access says yes to root everywhere, /proc included: try a file (removed at once)
        try:
            with tempfile.TemporaryFile(dir=probe, prefix=".zsseg-write-test-"):
                pass
        except OSError:
            writable = False
    if not writable:
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

"""fsspec URLs (``s3://``, ``gs://``, ``http(s)://``, ``memory://``, ``file://``, ...): fsspec is imported only here,
and only when a URL is read, so local runs never need it (``pip install fsspec`` plus the filesystem's driver)."""

from __future__ import annotations

import re
from typing import Any

from zsseg.errors import ZsSegError
from zsseg.io.errors import ImageError

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(path: str) -> bool:
    """True for ``s3://...``, ``gs://...``, ``file://...`` and other fsspec URLs (a Windows ``C:\\`` path is not)."""
    return bool(_URL.match(path))


def url_filesystem(url: str) -> tuple[Any, str]:
    """The fsspec filesystem of ``url`` and the path inside it.

    Raises:
        ZsSegError: fsspec or the URL's driver (``s3fs``, ``gcsfs``, ...) is not installed.
    """
    try:
        import fsspec
    except ImportError as exc:
        raise ZsSegError(f"{url}: reading URLs needs fsspec: pip install fsspec (and the filesystem's driver)") from exc
    try:
        fs, path = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise ZsSegError(f"{url}: no fsspec driver for this URL ({exc}): install it, e.g. pip install s3fs") from exc
    return fs, path


def read_url(url: str) -> bytes:
    """The bytes of the file at ``url``.

    Raises:
        ImageError: no such file, or it cannot be read (permissions, network).
        ZsSegError: fsspec or the URL's driver is not installed.
    """
    fs, inner = url_filesystem(url)
    try:
        with fs.open(inner, "rb") as f:
            return bytes(f.read())
    except FileNotFoundError as exc:
        raise ImageError(f"{url}: no such file: check the path", url, "no such file") from exc
    except OSError as exc:
        detail = f"cannot open ({type(exc).__name__}: {exc})"
        raise ImageError(f"{url}: {detail}: check the URL and its permissions", url, detail) from exc

"""zsseg's one I/O layer: reading images (one reader for the CLI, serve and batch), finding inputs, reading
vocabularies, and writing outputs atomically.

- :mod:`zsseg.io.images`: :func:`read_image` / :func:`read_image_info` (paths, fsspec URLs, bytes, file objects),
- :mod:`zsseg.io.pixels`: :func:`to_rgb_array` (any Pillow mode -> uint8 RGB),
- :mod:`zsseg.io.errors`: :class:`ImageError` and its causes :class:`ImageTooLarge`, :class:`NotAnImage`,
  :class:`CorruptImage`,
- :mod:`zsseg.io.urls`: fsspec URLs (imported only when a URL is read),
- :mod:`zsseg.io.inputs`: image paths, output stems, vocabularies, text files,
- :mod:`zsseg.io.outputs`: output folders, :class:`AtomicWriter`, signal handling around commits.
"""

from __future__ import annotations

from zsseg.io.errors import CorruptImage, ImageError, ImageTooLarge, NotAnImage
from zsseg.io.images import (
    DEFAULT_MAX_PIXELS,
    ImageInfo,
    ImageSource,
    as_image_array,
    read_image,
    read_image_info,
)
from zsseg.io.inputs import (
    IMAGE_SUFFIXES,
    check_out_not_input,
    collect_images,
    parse_classes,
    plan_stems,
    read_classes_file,
    read_text,
)
from zsseg.io.outputs import (
    AtomicWriter,
    check_out_dir,
    ensure_writable_dir,
    signals_deferred,
    sigterm_as_interrupt,
)
from zsseg.io.pixels import to_rgb_array
from zsseg.io.urls import is_url, read_url, url_filesystem

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_SUFFIXES",
    "AtomicWriter",
    "CorruptImage",
    "ImageError",
    "ImageInfo",
    "ImageSource",
    "ImageTooLarge",
    "NotAnImage",
    "as_image_array",
    "check_out_dir",
    "check_out_not_input",
    "collect_images",
    "ensure_writable_dir",
    "is_url",
    "parse_classes",
    "plan_stems",
    "read_classes_file",
    "read_image",
    "read_image_info",
    "read_text",
    "read_url",
    "sigterm_as_interrupt",
    "signals_deferred",
    "to_rgb_array",
    "url_filesystem",
]

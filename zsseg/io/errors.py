"""Why an image could not be read: one :class:`ImageError` type per cause, so callers map causes, not messages.

``zsseg serve`` answers them with HTTP 413 (:class:`ImageTooLarge`), 415 (:class:`NotAnImage`) and 400
(:class:`CorruptImage`, and the base class for a missing or unreadable file); the CLI and ``zsseg batch`` print
the message, one line that names the fix, as for every :class:`~zsseg.errors.ZsSegError`.
"""

from __future__ import annotations

from zsseg.errors import ZsSegError


class ImageError(ZsSegError):
    """An image that cannot be read (a missing file, a folder, a file that cannot be opened, or a subclass).

    Attributes:
        source: the path, URL, ``<bytes>`` or ``<file>`` that was read.
        detail: what went wrong, without the source and the fix (for callers that word their own message).
    """

    def __init__(self, message: str, source: str = "", detail: str = "") -> None:
        super().__init__(message)
        self.source = source
        self.detail = detail or message


class ImageTooLarge(ImageError):
    """More pixels than the caller's limit (or Pillow's decompression-bomb limit), or too little memory to decode.

    Attributes:
        width, height: the image's size from its header (None where Pillow refused it before telling).
        max_pixels: the limit that was passed (0 where the limit was memory).
    """

    def __init__(
        self,
        message: str,
        source: str = "",
        detail: str = "",
        *,
        width: int | None = None,
        height: int | None = None,
        max_pixels: int = 0,
    ) -> None:
        super().__init__(message, source, detail)
        self.width = width
        self.height = height
        self.max_pixels = max_pixels


class NotAnImage(ImageError):
    """Not an image format Pillow knows (text, a truncated header), or a colour mode with no RGB meaning."""


class CorruptImage(ImageError):
    """A known image format whose pixels cannot be decoded: truncated or corrupt data."""

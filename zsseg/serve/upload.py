"""Guarding uploads: a request-body size limit (ASGI middleware) and decoding an uploaded image from bytes."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import numpy as np

from zsseg.io import ImageError, ImageTooLarge, NotAnImage, read_image
from zsseg.serve.errors import ApiError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:g} MB"


class BodySizeLimit:
    """ASGI middleware: request bodies over ``max_bytes`` answer 413 before they are read whole.

    A declared ``Content-Length`` over the limit is refused at once, without reading any of the body. A body
    without one (chunked) is read up to the limit and refused as soon as it passes it; below the limit it is
    handed on to the app unchanged. Works the same whatever FastAPI/Starlette version is installed.

    Args:
        app: the wrapped ASGI app.
        max_bytes: largest body accepted, in bytes.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _refuse(self, send: Send, what: str) -> None:
        err = ApiError(
            413,
            f"upload too large ({what}; the limit is {_mb(self.max_bytes)}): send a smaller image, "
            "or start the server with a larger --max-upload-mb",
        )
        body = json.dumps(err.body()).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers + [(b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None:
            if not length.isdigit():
                await self._refuse(send, "invalid Content-Length")
            elif int(length) > self.max_bytes:
                await self._refuse(send, f"Content-Length {_mb(int(length))}")
            else:
                await self.app(scope, receive, send)  # the server enforces the declared length
            return
        # No declared length: buffer at most max_bytes, then replay the messages to the app.
        messages: list[Message] = []
        total = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            total += len(message.get("body", b""))
            if total > self.max_bytes:
                await self._refuse(send, f"more than {_mb(self.max_bytes)} sent")
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """Decode an uploaded image file with zsseg's one reader (:func:`zsseg.io.read_image`): the same pixels as
    ``zsseg segment`` and ``zsseg batch`` give the same file (every Pillow mode, EXIF orientation, transparency
    on white, 16-bit greys by their bit depth, the first frame of an animation).

    The size is checked from the header, before the pixels are decoded. The reader's errors become statuses by
    their type: :class:`~zsseg.io.ImageTooLarge` 413, :class:`~zsseg.io.NotAnImage` 415, any other
    :class:`~zsseg.io.ImageError` (:class:`~zsseg.io.CorruptImage`) 400.

    Raises:
        ApiError: 400 empty or corrupt file, 413 more than ``max_pixels`` pixels, 415 not an image.
    """
    if not data:
        raise ApiError(400, "the image file is empty: attach a JPEG/PNG/BMP/TIFF/WebP file as the image field")
    try:
        return read_image(data, max_pixels)
    except ImageTooLarge as exc:
        if exc.width is not None and exc.height is not None:
            w, h = exc.width, exc.height
            what = f"{w}x{h} = {w * h} pixels; the limit is {max_pixels}"
        else:
            what = exc.detail
        fix = "downscale it, or start the server with a larger --max-pixels"
        raise ApiError(413, f"image too large ({what}): {fix}") from exc
    except NotAnImage as exc:
        raise ApiError(
            415, f"the upload is not an image zsseg can read ({exc.detail}): send a JPEG, PNG, BMP, TIFF or WebP file"
        ) from exc
    except ImageError as exc:
        raise ApiError(400, f"the image file is corrupt or truncated ({exc.detail}): send the complete file") from exc

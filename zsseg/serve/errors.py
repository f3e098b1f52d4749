"""The one error type of the service: an HTTP status and a message that names the fix."""

from __future__ import annotations


class ApiError(Exception):
    """Answered as ``{"error": message, "status": status}`` with ``status`` and optional extra headers.

    Args:
        status: HTTP status code (4xx for the client's input, 503/504 for load).
        message: one sentence saying what is wrong and what to do about it.
        headers: extra response headers (e.g. ``Retry-After``).
    """

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, object]:
        return {"error": self.message, "status": self.status}

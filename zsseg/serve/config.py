"""Settings of the HTTP service (every knob of ``zsseg serve``, with its default)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServeConfig:
    """Limits and pool sizes of the service.

    Args:
        max_upload_bytes: largest request body accepted; bigger ones get 413 before the body is read whole.
        max_pixels: largest image (width x height) accepted; bigger ones get 413 before they are decoded.
        workers: inference threads sharing the one model (requests segmented at the same time).
        queue: requests allowed to wait for a worker; beyond ``workers + queue`` requests answer 503.
        timeout_s: seconds a request may wait and run before it answers 504.
        retry_after_s: the ``Retry-After`` header (seconds) of 503 answers.
        max_classes: largest vocabulary accepted in one request.
    """

    max_upload_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000
    workers: int = 1
    queue: int = 8
    timeout_s: float = 60.0
    retry_after_s: int = 2
    max_classes: int = 255

    def __post_init__(self) -> None:
        from zsseg.errors import ZsSegError

        if self.max_upload_bytes < 1:
            raise ZsSegError(f"--max-upload-mb must be positive, got {self.max_upload_bytes} bytes")
        if self.max_pixels < 1:
            raise ZsSegError(f"--max-pixels must be positive, got {self.max_pixels}")
        if self.workers < 1:
            raise ZsSegError(f"--workers must be at least 1, got {self.workers}")
        if self.queue < 0:
            raise ZsSegError(f"--queue must be 0 or more, got {self.queue}")
        if self.timeout_s <= 0:
            raise ZsSegError(f"--timeout must be positive, got {self.timeout_s}")
        if not 1 <= self.max_classes <= 255:
            raise ZsSegError(f"max_classes must be in 1..255 (8-bit label PNG), got {self.max_classes}")

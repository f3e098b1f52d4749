"""A bounded pool of inference threads: work runs off the event loop, and a full pool refuses at once."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from zsseg.serve.errors import ApiError

T = TypeVar("T")


class InferencePool:
    """Runs blocking jobs (decode + segment) in ``workers`` threads, with at most ``queue`` jobs waiting.

    A job is counted from submission until its thread finishes it (even when its request has timed out or its
    client has gone), so the backlog never exceeds ``workers + queue``: a job beyond that answers 503 with
    ``Retry-After``. A job that has not finished within ``timeout_s`` answers 504 (if it had not started yet it
    is cancelled; a running one finishes in its thread and its result is dropped).

    Args:
        workers: threads (jobs running at the same time).
        queue: jobs allowed to wait for a thread.
        timeout_s: seconds from submission to answer.
        retry_after_s: value of the ``Retry-After`` header of 503 answers.
    """

    def __init__(self, workers: int = 1, queue: int = 8, timeout_s: float = 60.0, retry_after_s: int = 2) -> None:
        self.workers = workers
        self.capacity = workers + queue
        self.timeout_s = timeout_s
        self.retry_after_s = retry_after_s
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="zsseg-infer")
        self._lock = threading.Lock()
        self._pending = 0
        self._closed = False
        self.served = 0
        self.refused = 0

    @property
    def pending(self) -> int:
        """Jobs submitted and not yet finished (running + waiting)."""
        return self._pending

    def _release(self, _: Future[Any]) -> None:
        with self._lock:
            self._pending -= 1
            self.served += 1

    def _busy(self, why: str) -> ApiError:
        return ApiError(
            503,
            f"server busy ({why}): retry after {self.retry_after_s} s, or start the server with more --workers/--queue",
            headers={"Retry-After": str(self.retry_after_s)},
        )

    async def run(self, job: Callable[[], T]) -> T:
        """Run ``job()`` in a worker thread and return its result (or raise its exception).

        Raises:
            ApiError: 503 when ``workers + queue`` jobs are pending or the pool is shutting down, 504 on timeout.
        """
        with self._lock:
            if self._closed:
                raise self._busy("shutting down")
            if self._pending >= self.capacity:
                self.refused += 1
                raise self._busy(f"{self._pending} requests in progress or queued, the limit is {self.capacity}")
            self._pending += 1
            future: Future[T] = self._executor.submit(job)
        future.add_done_callback(self._release)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout_s)
        except asyncio.TimeoutError as exc:
            future.cancel()
            raise ApiError(
                504,
                f"segmentation did not finish within {self.timeout_s:g} s: send a smaller image or fewer classes, "
                "or start the server with a larger --timeout",
            ) from exc

    def shutdown(self) -> None:
        """Refuse new jobs and wait for the submitted ones to finish."""
        with self._lock:
            self._closed = True
        self._executor.shutdown(wait=True)

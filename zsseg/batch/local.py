"""The ``local`` engine: worker processes on this machine, one segmenter each, images streamed to them over pipes.

The driver keeps up to ``prefetch`` images in flight per worker and knows which ones each worker holds, so a worker
that dies (killed, out of memory, a crash in native code) loses nothing: its images go back to the front of the queue
and a new worker takes its place. An image that kills ``max_attempts`` workers is recorded as failed.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import signal
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from zsseg.batch.inputs import ImageItem
from zsseg.batch.worker import BatchSegmenter, WorkerSpec, sweep_temporaries
from zsseg.errors import ZsSegError


def _worker_main(conn: Connection, spec: WorkerSpec, device: str | None) -> None:
    """A worker process: build the segmenter, then answer each ``(path, key)`` with a row until ``None``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the driver, which stops the workers
    try:
        worker = BatchSegmenter(spec, device=device)
    except ZsSegError as exc:
        conn.send(("error", str(exc)))
        return
    except Exception as exc:
        conn.send(("error", f"cannot build the segmenter: {type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", None))
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        conn.send(("row", worker.process(*task)))


@dataclass
class _Slot:
    process: Any
    conn: Connection
    device: str | None
    ready: bool = False
    inflight: deque[int] = field(default_factory=deque)


def _devices(spec: WorkerSpec, workers: int) -> list[str | None]:
    """``cuda`` (and ``auto`` where CUDA is present) spreads the workers over the visible GPUs (``cuda:0``,
    ``cuda:1``, ...); other devices as given."""
    import torch

    device = str(spec.load_options.get("device", "auto"))
    if device != "cuda" and not (device == "auto" and torch.cuda.is_available()):
        return [None] * workers

    n = torch.cuda.device_count()
    return [f"cuda:{i % n}" if n > 1 else None for i in range(workers)]


def run_local(
    items: Sequence[ImageItem],
    spec: WorkerSpec,
    on_row: Callable[[dict[str, Any]], None],
    workers: int = 1,
    prefetch: int = 2,
    max_attempts: int = 3,
) -> None:
    """Segment ``items`` with ``workers`` processes, calling ``on_row`` (in this process) with each image's row.

    Args:
        items: the images to do.
        spec: the segmenter and output settings.
        on_row: receives every image's index row exactly once, in completion order.
        workers: worker processes.
        prefetch: images sent ahead to each worker, so it never waits for the driver.
        max_attempts: an image whose worker died this many times is recorded as failed.

    Raises:
        ZsSegError: the workers cannot build the segmenter (bad model name, missing weights, ...).
    """
    ctx = mp.get_context("spawn")  # fork would copy the driver's threads and CUDA state
    out = Path(spec.out)
    todo: deque[int] = deque(range(len(items)))
    attempts = [0] * len(items)
    devices = _devices(spec, workers)
    slots: list[_Slot] = []
    load_deaths = 0

    def start(device: str | None) -> _Slot:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker_main, args=(child, spec, device), daemon=True, name="zsseg-batch-worker")
        proc.start()
        child.close()
        return _Slot(proc, parent, device)

    def died(slot: _Slot) -> None:
        nonlocal load_deaths
        slot.process.join(5)
        code = slot.process.exitcode
        slot.conn.close()
        slots.remove(slot)
        if not slot.ready:
            load_deaths += 1
            if load_deaths > workers + 2:
                raise ZsSegError(f"batch workers die while loading the model (exit code {code}): check memory")
        if slot.inflight:
            head = slot.inflight[0]
            attempts[head] += slot.ready  # a death while loading the model is not the image's fault
            sweep_temporaries(out, (items[i].key for i in slot.inflight))
            lost = list(slot.inflight)
            if attempts[head] >= max_attempts:
                lost.pop(0)
                item = items[head]
                message = f"{item.path}: the worker process died (exit code {code}) {attempts[head]} times on it"
                on_row({"path": item.path, "key": item.key, "status": "failed", "error": message})
            todo.extendleft(reversed(lost))
        if todo or any(s.inflight for s in slots):
            slots.append(start(slot.device))

    try:
        slots.extend(start(d) for d in devices[: max(1, min(workers, len(items)))])
        while slots and (todo or any(s.inflight for s in slots)):
            for slot in slots:
                while todo and len(slot.inflight) < prefetch:
                    i = todo.popleft()
                    slot.inflight.append(i)
                    with contextlib.suppress(OSError):  # a dead worker: its sentinel fires, died() requeues
                        slot.conn.send((items[i].path, items[i].key))
            by_handle: dict[Any, _Slot] = {s.conn: s for s in slots} | {s.process.sentinel: s for s in slots}
            for ready in wait(list(by_handle), timeout=1.0):
                slot = by_handle[ready]
                if slot not in slots:
                    continue
                try:
                    while slot.conn.poll():
                        kind, payload = slot.conn.recv()
                        if kind == "error":
                            raise ZsSegError(payload)
                        if kind == "ready":
                            slot.ready = True
                        else:
                            slot.inflight.popleft()
                            on_row(payload)
                except (EOFError, OSError):
                    died(slot)
                    continue
                if not slot.process.is_alive():
                    died(slot)
    except KeyboardInterrupt:
        for slot in slots:  # images finished before Ctrl-C keep their rows
            with contextlib.suppress(EOFError, OSError, ValueError):
                while slot.conn.poll():
                    kind, payload = slot.conn.recv()
                    if kind == "row":
                        slot.inflight.popleft()
                        on_row(payload)
        raise
    finally:
        for slot in slots:  # normal end: ask politely; Ctrl-C or an error: stop at once
            with contextlib.suppress(OSError):
                slot.conn.send(None)
        for slot in slots:
            if todo or slot.inflight:
                slot.process.terminate()
            slot.process.join(10)
            if slot.process.is_alive():
                slot.process.kill()
                slot.process.join()
            sweep_temporaries(out, (items[i].key for i in slot.inflight))

"""The ``ray`` engine: Ray Data streams the image list through a pool of actors, each holding one segmenter.

``ray.data.from_items`` holds the list (paths and keys only; each actor reads its images itself, from local or
shared storage), ``map_batches`` runs :class:`SegmentActor` with ``compute=ActorPoolStrategy(size=workers)`` and
``num_cpus``/``num_gpus`` per actor, and the driver iterates the output rows as they complete. Ray Data restarts an
actor whose process dies and retries its block (its defaults ``max_restarts=-1``, ``max_task_retries=-1``); outputs
are written atomically, so a retried image is rewritten with the same bytes, and the driver keeps the first row of
each image.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from zsseg.batch.inputs import ImageItem
from zsseg.batch.worker import BatchSegmenter, WorkerSpec
from zsseg.errors import ZsSegError

#: Set (unless already set) before zsseg starts or joins Ray: no usage reports, no public DNS probe for the IP.
RAY_ENV_DEFAULTS = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_USAGE_STATS_REPORT_URL": "http://127.0.0.1:9/",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
}


class SegmentActor:
    """A Ray Data callable class: builds a :class:`BatchSegmenter` once, then segments each batch's images.

    Args:
        spec: the batch's settings.
    """

    def __init__(self, spec: WorkerSpec) -> None:
        import ray

        node = ray.get_runtime_context().get_node_id()
        self.worker = BatchSegmenter(spec, worker=f"{node[:12]}:{os.getpid()}")

    def __call__(self, batch: Any) -> Any:
        """pyarrow table with ``path`` and ``key`` -> pyarrow table of index rows (``zsseg.batch.index.SCHEMA``)."""
        from zsseg.batch.index import rows_to_table

        paths, keys = batch.column("path").to_pylist(), batch.column("key").to_pylist()
        return rows_to_table([self.worker.process(p, k) for p, k in zip(paths, keys, strict=True)])


@contextmanager
def ray_session(address: str | None, runtime_env: dict[str, Any] | None = None) -> Iterator[None]:
    """Join ``address`` (or ``$RAY_ADDRESS``; with neither, start a new local instance), unless this process is
    connected already.

    Ray's own default for no address is to join any Ray instance running on the machine; a batch run must not
    land on a stranger's cluster, so no address means ``"local"``. A session started here is shut down on exit;
    one the caller started is left alone.
    """
    try:
        import ray
    except ImportError as exc:
        raise ZsSegError("--engine ray needs Ray Data: pip install 'zsseg[ray]'") from exc
    if ray.is_initialized():
        yield
        return
    for key, value in RAY_ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    try:
        ray.init(
            address=address or os.environ.get("RAY_ADDRESS") or "local",
            include_dashboard=False,
            runtime_env=runtime_env,
            logging_level=logging.WARNING,
            log_to_driver=True,
        )
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = address or "a local instance"
        raise ZsSegError(f"cannot start or join Ray at {where} ({exc}): check --address") from exc
    try:
        yield
    finally:
        ray.shutdown()


def _zsseg_error_in(exc: BaseException) -> str | None:
    """The message of a :class:`ZsSegError` raised inside an actor, if that is what Ray reports."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ZsSegError):
            return str(seen)
        seen = seen.__cause__ or seen.__context__ or getattr(seen, "cause", None)
    m = re.search(r"ZsSegError: (.+)", str(exc))
    return m.group(1).strip() if m else None


def run_ray(
    items: Sequence[ImageItem],
    spec: WorkerSpec,
    on_row: Callable[[dict[str, Any]], None],
    workers: int = 1,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float = 0.0,
    address: str | None = None,
    runtime_env: dict[str, Any] | None = None,
    block_size: int = 16,
) -> None:
    """Segment ``items`` with ``workers`` Ray actors, calling ``on_row`` (in the driver) with each image's row.

    Args:
        items: the images to do.
        spec: the segmenter and output settings; ``spec.out`` must be reachable by every node.
        on_row: receives each image's index row, in completion order (a retried block's rows may come twice).
        workers: actors in the pool.
        cpus_per_worker: each actor's ``num_cpus`` (fractions allowed).
        gpus_per_worker: each actor's ``num_gpus``.
        address: cluster to join; None: ``$RAY_ADDRESS`` if set, else a new local instance (or the session this
            process is connected to already).
        runtime_env: the job's runtime environment when this call connects.
        block_size: at most this many images per block; a block is the unit of retry after an actor dies.

    Raises:
        ZsSegError: the actors cannot build the segmenter, or Ray cannot be reached.
    """
    with ray_session(address, runtime_env):
        import ray.data
        from ray.data import ActorPoolStrategy

        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # zsseg draws its own bar
        ctx.print_on_execution_start = False
        per_block = max(1, min(block_size, math.ceil(len(items) / (workers * 4))))
        listed = ray.data.from_items(
            [{"path": it.path, "key": it.key} for it in items],
            override_num_blocks=math.ceil(len(items) / per_block),
        )
        ds = listed.map_batches(
            SegmentActor,
            fn_constructor_kwargs={"spec": spec},
            batch_format="pyarrow",
            batch_size=1,
            compute=ActorPoolStrategy(size=workers),
            num_cpus=cpus_per_worker,
            num_gpus=gpus_per_worker,
        )
        try:
            for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None, prefetch_batches=0):
                for row in batch.to_pylist():  # type: ignore[union-attr]
                    on_row(row)
        except (ZsSegError, KeyboardInterrupt):
            raise
        except Exception as exc:
            message = _zsseg_error_in(exc)
            if message is None:
                raise
            raise ZsSegError(message) from exc

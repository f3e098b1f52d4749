"""A batch run: list the inputs, skip what OUT already holds, run an engine, index every row, summarise."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zsseg.batch.exports import EXPORTS_DIR, check_export_folders, plan_export, write_exports
from zsseg.batch.index import IndexWriter, check_stamp, compact
from zsseg.batch.inputs import ImageItem, list_inputs
from zsseg.batch.worker import WorkerSpec, instances_file, output_files, sweep_temporaries
from zsseg.errors import ZsSegError
from zsseg.io import ensure_writable_dir, parse_classes

ENGINES = ("local", "ray")
#: ``load()`` arguments that do not change the outputs, so a rerun may change them.
_RUNTIME_OPTIONS = ("device", "batch_size")
#: proposal generator knobs that do not change the outputs either (SamProposer's).
_RUNTIME_PROPOSAL_OPTIONS = ("decode_batch_size", "num_threads")


@dataclass
class BatchSummary:
    """What a run did: ``done`` images segmented now (ok), ``failed`` now, ``skipped`` (done or failed before)."""

    total: int
    done: int = 0
    failed: int = 0
    skipped_done: int = 0
    skipped_failed: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    exported: int | None = None
    export_formats: tuple[str, ...] = ()

    @property
    def images_per_second(self) -> float:
        return (self.done + self.failed) / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        head = "interrupted" if self.interrupted else "done"
        text = (
            f"zsseg: batch {head}: {self.done} segmented, {self.failed} failed, {self.skipped_done} skipped "
            f"(done before)"
        )
        if self.skipped_failed:
            text += f", {self.skipped_failed} skipped (failed before; --retry-failed redoes them)"
        text += f"; {self.seconds:.1f} s, {self.images_per_second:.2f} images/s"
        if self.exported is not None:
            text += f"; exported {self.exported} images as {', '.join(self.export_formats)} to {EXPORTS_DIR}/"
        if self.interrupted:
            text += "; rerun the same command to continue"
        return text


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped the run after its finished rows were indexed; ``summary`` says how far it got."""

    def __init__(self, summary: BatchSummary) -> None:
        super().__init__(summary.line())
        self.summary = summary


def stamp_settings(vocab: list[str], load_options: dict[str, Any]) -> dict[str, Any]:
    """The settings that define a run's outputs: the vocabulary and every ``load()`` argument (defaults filled in,
    so the API and the command line agree) except those that only change speed."""
    import inspect

    from zsseg.pipeline import load

    defaults = {name: p.default for name, p in inspect.signature(load).parameters.items() if p.default is not p.empty}
    merged = defaults | load_options
    proposal_options = merged.get("proposal_options") or {}
    merged["proposal_options"] = {k: v for k, v in proposal_options.items() if k not in _RUNTIME_PROPOSAL_OPTIONS}
    return {"classes": vocab} | {k: v for k, v in sorted(merged.items()) if k not in _RUNTIME_OPTIONS}


def plan(
    items: Sequence[ImageItem],
    out: Path,
    index_rows: list[dict[str, Any]],
    overlays: bool,
    retry_failed: bool,
    instances: bool = False,
) -> tuple[list[ImageItem], int, int]:
    """The items still to do, and how many are skipped as done / as failed before (an ok image counts as done
    when its files are there: label, overlay if asked, instances file if the run exports)."""
    prior = {r["path"]: r for r in index_rows}
    todo, skipped_done, skipped_failed = [], 0, 0
    for item in items:
        row = prior.get(item.path)
        if row is not None and row["status"] == "ok":
            label, overlay = output_files(row["key"], overlays)
            files = [label, overlay, instances_file(row["key"]) if instances else None]
            if all((out / f).is_file() for f in files if f is not None):
                skipped_done += 1
                continue
        elif row is not None and row["status"] == "failed" and not retry_failed:
            skipped_failed += 1
            continue
        todo.append(item)
    return todo, skipped_done, skipped_failed


def run_batch(
    source: str | Path,
    out: str | Path,
    classes: Sequence[str] | str,
    *,
    load_options: dict[str, Any] | None = None,
    engine: str = "local",
    workers: int = 1,
    cpus_per_worker: float | None = None,
    gpus_per_worker: float = 0.0,
    overlays: bool = False,
    retry_failed: bool = False,
    address: str | None = None,
    runtime_env: dict[str, Any] | None = None,
    export: str | Sequence[str] | None = None,
    instance_options: dict[str, Any] | None = None,
    export_options: dict[str, Any] | None = None,
    progress: bool = True,
    on_row: Callable[[dict[str, Any]], None] | None = None,
    flush_rows: int = 256,
    flush_seconds: float = 10.0,
    compact_seconds: float = 300.0,
) -> BatchSummary:
    """Segment every image of a folder or manifest into ``out``, resumably.

    Args:
        source: folder (recursive) or manifest (``.txt``, ``.csv``, ``.parquet`` with a ``path`` column); local or
            an fsspec URL.
        out: output folder: ``labels/<key>.png``, ``overlays/<key>.png``, ``index.parquet``.
        classes: the vocabulary.
        load_options: keyword arguments of :func:`zsseg.load` (``model``, ``proposals``, ``device``, ...).
        engine: ``local`` (worker processes here) or ``ray`` (Ray Data actors).
        workers: worker processes (local) or actors (ray).
        cpus_per_worker: local: torch threads per worker (default: this machine's CPUs / workers); ray: each
            actor's ``num_cpus`` (default 1; fractions allowed).
        gpus_per_worker: ray: each actor's ``num_gpus``; above 0 the actors segment on ``cuda``.
        overlays: also write the overlays.
        retry_failed: redo the images an earlier run recorded as failed.
        address: ray: the cluster to join (``auto``, ``ray://head:10001``); None: ``$RAY_ADDRESS`` if set, else a
            new local Ray instance.
        runtime_env: ray: the job's runtime environment (e.g. ``{"py_modules": [...]}`` to ship code).
        export: dataset formats (:data:`zsseg.export.FORMATS`, a list or comma-separated) to rebuild in
            ``OUT/exports/<format>/`` at the end of the run; the workers then also write ``instances/<key>.json``
            (:mod:`zsseg.batch.exports` has the layout and the resume rules).
        instance_options: :meth:`Segmentation.instances` arguments (``stuff``, ``nms_threshold``,
            ``part_threshold``, ``min_area``) for the exported instances; unset ones take its defaults.
        export_options: format options (``polygons`` for COCO polygons instead of RLE, ``tolerance``, ...).
        progress: show a progress bar (images/s, ETA) on stderr.
        on_row: called in this process with each new index row, once per image.
        flush_rows: index part size in rows.
        flush_seconds: longest time a finished image waits before its row is on disk (in a part).
        compact_seconds: how often the parts are folded into ``index.parquet`` during the run.

    Returns:
        the run's counts and time.

    Raises:
        ZsSegError: bad input, an OUT filled with other settings, or a model that cannot be built.
        BatchInterrupted: Ctrl-C (a KeyboardInterrupt); the finished images are indexed, a rerun continues.
    """
    if engine not in ENGINES:
        raise ZsSegError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")
    if workers < 1:
        raise ZsSegError(f"--workers must be at least 1, got {workers}")
    if engine == "local" and (address or gpus_per_worker or runtime_env):
        raise ZsSegError("--address, --gpus-per-worker and --ship-code need --engine ray; local workers use --device")
    vocab = parse_classes(classes)
    options = dict(load_options or {})
    export_plan = plan_export(vocab, export, instance_options, export_options)
    items = list_inputs(source)
    check_export_folders(export_plan, Path(out))
    out = ensure_writable_dir(out)
    check_stamp(out, stamp_settings(vocab, options), {"instances": export_plan.stamp()} if export_plan else None)
    index_rows = compact(out, vocab).select(["path", "key", "status", "model"]).to_pylist()
    todo, skipped_done, skipped_failed = plan(
        items, out, index_rows, overlays, retry_failed, instances=export_plan is not None
    )
    models = {r["model"] for r in index_rows if r["status"] == "ok"}
    summary = BatchSummary(len(items), skipped_done=skipped_done, skipped_failed=skipped_failed)
    writer = IndexWriter(out, flush_rows=flush_rows, flush_seconds=flush_seconds)
    seen: set[str] = set()
    last_compaction = time.monotonic()

    from tqdm import tqdm

    bar = tqdm(total=len(todo), unit="img", disable=not progress or not todo, file=sys.stderr, smoothing=0.1)

    def handle(row: dict[str, Any]) -> None:
        nonlocal last_compaction
        if row["path"] in seen:  # a retried piece of work reported twice: keep the first
            return
        if row.get("model") and models and row["model"] not in models:
            raise ZsSegError(
                f"{out} holds results of model {sorted(models)[0]}, this run's workers loaded {row['model']} "
                "(auto resolves differently here): pass --model explicitly or use another --out folder"
            )
        seen.add(row["path"])
        writer.add(row)
        if row["status"] == "ok":
            summary.done += 1
        else:
            summary.failed += 1
            bar.write(f"zsseg: error: {row['error']}", file=sys.stderr)
        bar.update(1)
        if time.monotonic() - last_compaction > compact_seconds:
            writer.flush()
            compact(out, vocab)
            last_compaction = time.monotonic()
        if on_row is not None:
            on_row(row)

    spec_threads = None
    if engine == "local":
        cpus = cpus_per_worker if cpus_per_worker is not None else (os.cpu_count() or 1) / workers
        spec_threads = max(1, round(cpus))
    else:
        spec_threads = max(1, round(cpus_per_worker if cpus_per_worker is not None else 1))
        if gpus_per_worker > 0 and str(options.get("device", "cpu")) == "cpu":
            options["device"] = "cuda"
    spec = WorkerSpec(
        str(out.resolve()),
        tuple(vocab),
        options,
        overlays=overlays,
        threads=spec_threads,
        instances=export_plan.instance_options if export_plan else None,
    )
    t0 = time.perf_counter()
    try:
        if todo and engine == "local":
            from zsseg.batch.local import run_local

            run_local(todo, spec, handle, workers=workers)
        elif todo:
            from zsseg.batch.ray_engine import run_ray

            run_ray(
                todo,
                spec,
                handle,
                workers=workers,
                cpus_per_worker=cpus_per_worker if cpus_per_worker is not None else 1.0,
                gpus_per_worker=gpus_per_worker,
                address=address,
                runtime_env=runtime_env,
            )
    except KeyboardInterrupt as exc:
        summary.interrupted = True
        _finish(bar, writer, out, vocab, summary, t0)
        raise BatchInterrupted(summary) from exc
    except BaseException:
        _finish(bar, writer, out, vocab, summary, t0)
        raise
    # every worker is done: remove what one killed mid-write left (Ray retries its images on another actor without
    # saying which; an interrupted earlier run may have left some too)
    sweep_temporaries(out, (item.key for item in items))
    _finish(bar, writer, out, vocab, summary, t0)
    if export_plan is not None:
        rows = compact(out, vocab).select(["path", "key", "status", "model"]).to_pylist()
        summary.exported = write_exports(export_plan, out, rows)
        summary.export_formats = export_plan.formats
    return summary


def _finish(bar: Any, writer: IndexWriter, out: Path, vocab: list[str], summary: BatchSummary, t0: float) -> None:
    """Close the bar, put every finished row on disk and compact the index (also after an error or Ctrl-C)."""
    bar.close()
    summary.seconds = time.perf_counter() - t0
    writer.flush()
    compact(out, vocab)

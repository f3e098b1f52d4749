"""The batch index (``OUT/index.parquet``), its parts, and the run's settings stamp (``OUT/zsseg_batch.json``).

Rows arrive in the driver as the workers finish images; :class:`IndexWriter` appends them as small Parquet
*parts* under ``OUT/_index_parts/`` (each written atomically), and :func:`compact` folds the parts into
``index.parquet`` (atomically) at the start of a run, every few minutes, and at its end. A killed run therefore
leaves a readable ``index.parquet`` (up to its last compaction) plus complete parts: :func:`read_index` reads both,
and the next run compacts them. One row per image path: a later
row for the same path replaces an earlier one (a retried failure).
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from zsseg.errors import ZsSegError
from zsseg.io import AtomicWriter

INDEX_NAME = "index.parquet"
PARTS_DIR = "_index_parts"
STAMP_NAME = "zsseg_batch.json"

#: Columns of the index; ``class_shares`` is in vocabulary order (the vocabulary is in the schema metadata).
SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("key", pa.string()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("label_file", pa.string()),
        ("overlay_file", pa.string()),
        ("height", pa.int32()),
        ("width", pa.int32()),
        ("num_proposals", pa.int32()),
        ("class_shares", pa.list_(pa.float32())),
        ("unlabelled_share", pa.float32()),
        ("model", pa.string()),
        ("proposals", pa.string()),
        ("read_s", pa.float32()),
        ("proposals_s", pa.float32()),
        ("classify_s", pa.float32()),
        ("assemble_s", pa.float32()),
        ("write_s", pa.float32()),
        ("total_s", pa.float32()),
        ("worker", pa.string()),
        ("run_id", pa.string()),
        ("finished_at", pa.float64()),
    ]
)


def rows_to_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Index rows (dicts with :data:`SCHEMA`'s keys; missing keys are null) as a table of that schema."""
    return pa.Table.from_pylist([{k: r.get(k) for k in SCHEMA.names} for r in rows], schema=SCHEMA)


def _write_table(table: pa.Table, dest: Path) -> None:
    with AtomicWriter() as writer:
        pq.write_table(table, writer.reserve(dest))


def _parts(out: Path) -> list[Path]:
    folder = out / PARTS_DIR
    return sorted(folder.glob("part-*.parquet")) if folder.is_dir() else []


def _dedupe(table: pa.Table) -> pa.Table:
    """Keep the last row of each path (rows are in arrival order), sorted by key."""
    if table.num_rows == 0:
        return table
    paths = table.column("path").to_pylist()
    last = {p: i for i, p in enumerate(paths)}
    table = table.take(sorted(last.values()))
    return table.sort_by([("key", "ascending"), ("path", "ascending")])


def read_index(out: str | Path) -> pa.Table:
    """Every image's latest row: the compacted index plus any parts a killed run left (without changing files)."""
    out = Path(out)
    tables = [pq.read_table(out / INDEX_NAME)] if (out / INDEX_NAME).is_file() else []
    tables += [pq.read_table(p) for p in _parts(out)]
    if not tables:
        return SCHEMA.empty_table()
    return _dedupe(pa.concat_tables(tables, promote_options="default"))


def compact(out: str | Path, classes: list[str] | None = None) -> pa.Table:
    """Fold the parts into ``OUT/index.parquet`` (atomically; an empty index if there is nothing yet), remove
    them, and return the index."""
    out = Path(out)
    parts = _parts(out)
    if not parts and (out / INDEX_NAME).is_file():
        return pq.read_table(out / INDEX_NAME)
    table = read_index(out)
    if classes is not None:
        table = table.replace_schema_metadata({b"zsseg.classes": json.dumps(classes).encode()})
    _write_table(table, out / INDEX_NAME)
    for p in parts:
        p.unlink(missing_ok=True)
    return table


class IndexWriter:
    """Appends rows to ``OUT/_index_parts/`` in parts of ``flush_rows`` rows or ``flush_seconds`` seconds.

    Args:
        out: the batch output folder.
        run_id: names this run's parts (a new one per run by default).
        flush_rows: write a part once this many rows are pending.
        flush_seconds: write a part once the oldest pending row is this old (checked on each :meth:`add`).
    """

    def __init__(
        self, out: Path, run_id: str | None = None, flush_rows: int = 256, flush_seconds: float = 10.0
    ) -> None:
        self.out = out
        self.run_id = run_id or time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self._pending: list[dict[str, Any]] = []
        self._since = time.monotonic()
        self._seq = 0

    def add(self, row: dict[str, Any]) -> None:
        if not self._pending:
            self._since = time.monotonic()
        self._pending.append(row | {"run_id": self.run_id})
        if len(self._pending) >= self.flush_rows or time.monotonic() - self._since >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        """Write the pending rows as one part (atomically); nothing if none are pending."""
        if not self._pending:
            return
        (self.out / PARTS_DIR).mkdir(exist_ok=True)
        _write_table(rows_to_table(self._pending), self.out / PARTS_DIR / f"part-{self.run_id}-{self._seq:06d}.parquet")
        self._seq += 1
        self._pending.clear()


def check_stamp(out: Path, settings: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
    """Record the run's output-defining settings in ``OUT/zsseg_batch.json``, or refuse if OUT holds others.

    Args:
        out: the batch output folder.
        settings: the settings every run into OUT must share (compared key by key).
        extra: settings only some runs have (e.g. ``instances`` for a run that exports): compared where the stamp
            holds them, added to it where it does not, ignored by runs that do not pass them. A stamp written
            without them is byte-identical to one written before they existed.

    Raises:
        ZsSegError: OUT was filled by a run with a different model, generator, vocabulary or option. Nothing is
            written then.
    """
    path = out / STAMP_NAME
    settings = json.loads(json.dumps(settings))  # tuples -> lists, as they come back from the file
    extra = json.loads(json.dumps(extra or {}))
    before: dict[str, Any] | None = None
    if path.is_file():
        try:
            before = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ZsSegError(f"{path} is damaged ({exc}): remove it only if OUT holds a single run") from exc
        assert before is not None
        optional = {k for k in before if k not in settings and k in _OPTIONAL_STAMP_KEYS}
        diff = sorted(k for k in (before.keys() - optional) | settings.keys() if before.get(k) != settings.get(k))
        diff += sorted(k for k in extra if k in before and before[k] != extra[k])
        if diff:
            k = diff[0]
            now = extra[k] if k in extra else settings.get(k)
            raise ZsSegError(
                f"{out} holds a batch run with {k}={before.get(k)!r}, this run asks for {now!r}: "
                "use another --out folder or the same settings"
            )
        if all(k in before for k in extra):
            return
    with AtomicWriter() as writer:
        writer.write_text(path, json.dumps((before or settings) | extra, indent=2) + "\n")


#: stamp keys a run may leave out (see :func:`check_stamp`'s ``extra``)
_OPTIONAL_STAMP_KEYS = ("instances",)

"""The index: parts written atomically, compaction, last row wins, readable after a kill; the settings stamp."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from zsseg.batch.index import INDEX_NAME, PARTS_DIR, IndexWriter, check_stamp, compact, read_index
from zsseg.errors import ZsSegError


def _row(path: str, status: str = "ok", **extra: object) -> dict:
    return {"path": path, "key": Path(path).stem, "status": status, "finished_at": 0.0, **extra}


def test_parts_then_compaction(tmp_path: Path) -> None:
    writer = IndexWriter(tmp_path, flush_rows=2)
    for name in ("a", "b", "c"):
        writer.add(_row(f"/in/{name}.jpg"))
    assert len(list((tmp_path / PARTS_DIR).glob("part-*.parquet"))) == 1  # two rows flushed, one pending
    writer.flush()
    # a run killed before its first compaction leaves complete parts, which read_index merges
    assert not (tmp_path / INDEX_NAME).exists()
    assert read_index(tmp_path).column("key").to_pylist() == ["a", "b", "c"]
    table = compact(tmp_path, ["cat", "sofa"])
    assert table.num_rows == 3 and not list((tmp_path / PARTS_DIR).glob("*"))
    assert pq.read_table(tmp_path / INDEX_NAME).schema.metadata[b"zsseg.classes"] == b'["cat", "sofa"]'


def test_a_run_starts_with_a_readable_index(tmp_path: Path) -> None:
    assert compact(tmp_path).num_rows == 0
    assert pq.read_table(tmp_path / INDEX_NAME).schema.names[:3] == ["path", "key", "status"]


def test_a_later_row_replaces_an_earlier_one(tmp_path: Path) -> None:
    first = IndexWriter(tmp_path)
    first.add(_row("/in/a.jpg", "failed", error="boom"))
    first.add(_row("/in/b.jpg"))
    first.flush()
    compact(tmp_path)
    retry = IndexWriter(tmp_path)
    retry.add(_row("/in/a.jpg"))
    retry.flush()
    rows = {r["path"]: r for r in read_index(tmp_path).to_pylist()}
    assert rows["/in/a.jpg"]["status"] == "ok" and rows["/in/a.jpg"]["error"] is None
    assert compact(tmp_path).num_rows == 2


def test_stamp_refuses_other_settings(tmp_path: Path) -> None:
    settings = {"classes": ["cat", "sofa"], "model": "conse:efficientnet-lite0", "proposal_options": {"k": (1, 2)}}
    check_stamp(tmp_path, settings)
    check_stamp(tmp_path, dict(settings))  # the same settings again: fine
    with pytest.raises(ZsSegError, match=r"holds a batch run with classes=\['cat', 'sofa'\].*another --out"):
        check_stamp(tmp_path, settings | {"classes": ["cat", "dog"]})
    with pytest.raises(ZsSegError, match="model="):
        check_stamp(tmp_path, settings | {"model": "clip:ViT-B-16/openai"})

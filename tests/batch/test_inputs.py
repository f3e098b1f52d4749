"""Batch inputs: folders, manifests (txt, csv, parquet), fsspec URLs, and collision-free output keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from batch_testing import NAMES, write_images

from zsseg.batch.inputs import list_inputs
from zsseg.errors import ZsSegError
from zsseg.io import read_image


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return write_images(tmp_path / "photos", NAMES[:5])


def test_folder_keys_mirror_relative_paths_and_never_collide(folder: Path) -> None:
    items = list_inputs(folder)
    keys = {Path(it.path).relative_to(folder).as_posix(): it.key for it in items}
    # a/x.jpg and a/x.png share a stem: both keep their suffix; b/x.jpg is in another folder, so it is b/x
    assert keys == {"a/x.jpg": "a/x.jpg", "a/x.png": "a/x.png", "b/x.jpg": "b/x", "b/y.png": "b/y"} | {
        "c/d/z.jpg": "c/d/z"
    }
    assert all(Path(it.path).is_absolute() for it in items)


def test_manifests_txt_csv_parquet_agree(folder: Path, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rel = NAMES[:5]
    (tmp_path / "list.txt").write_text("# my images\n" + "\n".join(f"photos/{r}" for r in rel) + "\nphotos/b/y.png\n")
    (tmp_path / "list.csv").write_text("id,path\n" + "\n".join(f"{i},{folder / r}" for i, r in enumerate(rel)) + "\n")
    pq.write_table(pa.table({"path": [f"photos/{r}" for r in rel]}), tmp_path / "list.parquet")
    results = [list_inputs(tmp_path / f"list.{s}") for s in ("txt", "csv", "parquet")]
    assert results[0] == results[1] == results[2]
    assert len(results[0]) == 5  # the duplicate line counts once
    assert [it.key for it in results[0]][:2] == ["a/x.jpg", "a/x.png"]  # relative to the images' common folder


def test_fsspec_urls(folder: Path, tmp_path: Path) -> None:
    pytest.importorskip("fsspec")
    items = list_inputs(f"file://{folder}")
    assert sorted(it.key for it in items) == sorted(it.key for it in list_inputs(folder))
    assert all(it.path.startswith("file://") for it in items)
    local = read_image(str(folder / "b/y.png"))
    assert (read_image(f"file://{folder}/b/y.png") == local).all()
    (tmp_path / "urls.txt").write_text(f"file://{folder}/b/y.png\nfile://{folder}/a/x.jpg\n")
    assert [it.key for it in list_inputs(tmp_path / "urls.txt")] == ["b/y", "a/x"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("m.csv", "file\nx.jpg\n", "no 'path' column"),
        ("m.txt", "# nothing\n", "lists no images"),
        ("m.json", "[]", "unknown input '.json'"),
    ],
)
def test_bad_manifests_say_how_to_fix(tmp_path: Path, name: str, content: str, message: str) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(ZsSegError, match=message):
        list_inputs(tmp_path / name)


def test_missing_input(tmp_path: Path) -> None:
    with pytest.raises(ZsSegError, match="no such file or folder"):
        list_inputs(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ZsSegError, match="holds no images"):
        list_inputs(tmp_path / "empty")

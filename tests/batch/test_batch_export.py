"""``zsseg batch --export``: datasets rebuilt from per-image instance files, resumed runs export each image once,
bad input refused in one line before any model loads, and runs without ``--export`` unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from batch_testing import CLASSES, LOAD, LOAD_FLAGS, tree_bytes, write_images

from zsseg.batch import read_index, run_batch
from zsseg.cli import main

pytestmark = pytest.mark.weights

NAMES = ["a/x.jpg", "a/x.png", "b/y.png"]


def args(src: Path, out: Path, *extra: str) -> list[str]:
    return ["batch", str(src), "--classes", ", ".join(CLASSES), "--out", str(out), *LOAD_FLAGS, *extra]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two images segmented without --export, then the same folder plus one image with --export coco,yolo-seg."""
    root = tmp_path_factory.mktemp("export")
    src = write_images(root / "in", NAMES[:2])
    out = root / "out"
    assert main(args(src, out)) == 0
    write_images(root / "more", NAMES[2:])
    (src / "b").mkdir()
    (root / "more/b/y.png").rename(src / "b/y.png")
    assert main(args(src, out, "--export", "coco,yolo-seg", "--stuff", "wall", "--min-area", "4")) == 0
    return src, out


def test_export_holds_every_image_once_with_instance_files(exported: tuple[Path, Path]) -> None:
    from pycocotools.coco import COCO

    _, out = exported
    keys = sorted(r["key"] for r in read_index(out).to_pylist())
    assert keys == ["a/x.jpg", "a/x.png", "b/y"]
    for key in keys:  # the images of the run without --export were redone to get theirs
        doc = json.loads((out / "instances" / f"{key}.json").read_text())
        assert doc["format"] == "zsseg.instances/1" and doc["stuff"] == ["wall"] and doc["min_area"] == 4
    coco = COCO(str(out / "exports/coco/annotations/instances.json"))
    assert sorted(im["file_name"] for im in coco.dataset["images"]) == ["a/x.jpg.jpg", "a/x.png.png", "b/y.png"]
    assert sorted(
        p.relative_to(out / "exports/yolo-seg/labels").as_posix() for p in out.glob("exports/yolo-seg/labels/**/*.txt")
    ) == [
        "a/x.jpg.txt",
        "a/x.png.txt",
        "b/y.txt",
    ]
    assert (out / "exports/yolo-seg/images/b/y.png").is_file()
    stamp = json.loads((out / "zsseg_batch.json").read_text())
    assert stamp["instances"]["stuff"] == ["wall"] and stamp["instances"]["min_area"] == 4


def test_resumed_run_redoes_nothing_and_exports_each_image_once(exported: tuple[Path, Path], capsys) -> None:
    src, out = exported
    labels = tree_bytes(out / "labels")
    assert main(args(src, out, "--export", "coco,labelstudio", "--stuff", "wall", "--min-area", "4")) == 0
    err = capsys.readouterr().err
    assert "0 segmented, 0 failed, 3 skipped (done before)" in err and "exported 3 images as coco, labelstudio" in err
    assert tree_bytes(out / "labels") == labels
    doc = json.loads((out / "exports/coco/annotations/instances.json").read_text())
    assert len(doc["images"]) == 3 and len({a["id"] for a in doc["annotations"]}) == len(doc["annotations"])
    assert len(json.loads((out / "exports/labelstudio/tasks.json").read_text())) == 3
    # a run without --export ignores the instance settings and leaves the exports alone
    assert main(args(src, out)) == 0
    assert len(json.loads((out / "exports/coco/annotations/instances.json").read_text())["images"]) == 3


def test_bad_input_is_one_line_exit_2_and_writes_nothing(exported: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    src, out = exported
    before = tree_bytes(out)
    cases = [
        (args(src, tmp_path / "o1", "--export", "coco,voc"), "--export got 'voc'"),
        (
            args(src, tmp_path / "o2", "--export", "coco", "--stuff", "sky"),
            "--stuff names 'sky', not in the vocabulary",
        ),
        (args(src, out, "--export", "coco", "--stuff", "wall"), "holds a coco export with min_area=4"),
        (args(src, out, "--export", "cvat"), "holds a batch run with instances="),
    ]
    for k, (argv, message) in enumerate(cases):
        unknown_model = ["--model", "nope:x"] if k < 3 else []  # refused before the (unknown) model would load
        assert main([*argv, *unknown_model]) == 2
        lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("zsseg: error: ") and message in lines[0], lines
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()
    foreign = tmp_path / "o3"
    (foreign / "exports/coco").mkdir(parents=True)
    (foreign / "exports/coco/annotations.json").write_text("{}")
    assert main(args(src, foreign, "--export", "coco")) == 2
    assert "not a zsseg export" in capsys.readouterr().err
    assert sorted(p.name for p in foreign.rglob("*")) == ["annotations.json", "coco", "exports"]
    assert tree_bytes(out) == before


def test_without_export_the_outputs_and_stamp_are_what_they_were(exported: tuple[Path, Path], tmp_path: Path):
    """No instance files, no exports, the stamp as before; the label PNGs are the exporting run's bytes."""
    from zsseg.batch.runner import stamp_settings

    src, out = exported
    plain = tmp_path / "plain"
    run_batch(src, plain, CLASSES, load_options=LOAD, progress=False)
    names = sorted(p.name for p in plain.iterdir() if p.name != "_index_parts")  # an emptied parts folder
    assert names == ["index.parquet", "labels", "zsseg_batch.json"]
    stamp = json.dumps(json.loads(json.dumps(stamp_settings(CLASSES, LOAD))), indent=2) + "\n"
    assert (plain / "zsseg_batch.json").read_text() == stamp
    assert tree_bytes(plain / "labels") == tree_bytes(out / "labels")

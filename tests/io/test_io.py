import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zsseg.errors import ZsSegError
from zsseg.io import (
    AtomicWriter,
    as_image_array,
    collect_images,
    parse_classes,
    read_classes_file,
    read_image,
)


def test_parse_classes():
    assert parse_classes("cat, sofa,potted plant\nwall") == ["cat", "sofa", "potted plant", "wall"]
    with pytest.raises(ZsSegError, match="empty"):
        parse_classes(" , ")
    with pytest.raises(ZsSegError, match="twice"):
        parse_classes("cat, Cat")


def test_classes_files(tmp_path):
    (tmp_path / "a.txt").write_text("# VOC\ncat\n\nsofa  # furniture\n")
    assert read_classes_file(tmp_path / "a.txt") == ["cat", "sofa"]
    (tmp_path / "b.json").write_text(json.dumps(["cat", "dog"]))
    assert read_classes_file(tmp_path / "b.json") == ["cat", "dog"]
    (tmp_path / "c.yaml").write_text("- cat\n")
    with pytest.raises(ZsSegError, match="unknown class list format '.yaml'"):
        read_classes_file(tmp_path / "c.yaml")
    (tmp_path / "d.json").write_text('{"cat": 1}')
    with pytest.raises(ZsSegError, match="JSON list"):
        read_classes_file(tmp_path / "d.json")
    with pytest.raises(ZsSegError, match="no such class list"):
        read_classes_file(tmp_path / "missing.txt")


def test_read_image_errors(tmp_path):
    with pytest.raises(ZsSegError, match="no such file"):
        read_image(tmp_path / "missing.jpg")
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(ZsSegError, match="cannot read image"):
        read_image(tmp_path / "bad.jpg")
    Image.fromarray(np.zeros((4, 5), np.uint8)).save(tmp_path / "grey.png")
    assert read_image(tmp_path / "grey.png").shape == (4, 5, 3)


def test_as_image_array_validates():
    with pytest.raises(ValueError, match=r"uint8.*float64"):
        as_image_array(np.zeros((4, 4, 3)))
    with pytest.raises(ValueError, match=r"\(H, W, 3\).*\(4, 4, 2\)"):
        as_image_array(np.zeros((4, 4, 2), np.uint8))
    assert as_image_array(np.zeros((4, 4, 4), np.uint8)).shape == (4, 4, 3)


def test_collect_images(tmp_path):
    (tmp_path / "d").mkdir()
    for n in ["b.jpg", "a.png", "notes.txt"]:
        (tmp_path / "d" / n).write_bytes(b"x")
    assert [p.name for p in collect_images([tmp_path / "d"])] == ["a.png", "b.jpg"]
    with pytest.raises(ZsSegError, match="no such file or folder"):
        collect_images([tmp_path / "nope"])


def test_atomic_writer_all_or_nothing(tmp_path):
    with pytest.raises(RuntimeError), AtomicWriter() as w:
        w.write_text(tmp_path / "a.json", "{}")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with AtomicWriter() as w:
        w.write_text(tmp_path / "a.json", "{}")
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_atomic_writer_gives_outputs_the_usual_permissions(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        with AtomicWriter() as w:
            w.write_text(tmp_path / "a.json", "{}")
            w.reserve(tmp_path / "b.bin").write_bytes(b"x")  # a caller's own writer
    finally:
        os.umask(mask)
    for name in ("a.json", "b.bin"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--out", "/proc/zsseg/c.safetensors", "--dataset", "voc20", "--root", "."],
        ["segment", "zsseg/assets/astronaut.jpg", "--classes", "a, b", "--out", "/proc/zsseg/out"],
    ],
)
def test_an_out_that_root_cannot_write_either_is_refused_up_front(argv, capsys):
    """Issue 31: os.access says yes to root in /proc; train then ended in a traceback from mkdir."""
    from zsseg.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot write outputs there (/proc is not writable)" in err[0]

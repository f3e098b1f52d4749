"""Never destroy or silently change a user's data (issue 15): outputs vs inputs, all-or-nothing commits,
zero proposals, exact vocabularies, fail-fast errors that leave nothing behind."""

import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from zsseg_testing import FixedProposer, stub_segmenter, use_stub_segmenter

import zsseg
from zsseg.cli import main
from zsseg.errors import ZsSegError
from zsseg.io import AtomicWriter, parse_classes, plan_stems, read_classes_file, sigterm_as_interrupt
from zsseg.proposals.base import Proposals


def photo(path: Path, colour=(200, 30, 30), size=(40, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def stub(monkeypatch):
    use_stub_segmenter(monkeypatch)


def segment(*args: str) -> int:
    return main(["segment", *args, "--classes", "red, green"])


def test_out_equal_to_input_folder_is_refused_and_inputs_untouched(tmp_path, stub, capsys):
    photo(tmp_path / "inout" / "photo.png")
    before = snapshot(tmp_path / "inout")
    assert segment(str(tmp_path / "inout"), "--out", str(tmp_path / "inout")) == 2
    assert segment(str(tmp_path / "inout"), "--out", str(tmp_path)) == 2  # --out holding the input folder
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(e.startswith("zsseg: error: --out") and "input folder" in e for e in err)
    assert snapshot(tmp_path / "inout") == before


def test_explicit_input_file_inside_out_is_never_overwritten(tmp_path, stub, capsys):
    src = photo(tmp_path / "inout" / "photo.png")
    before = src.read_bytes()
    assert segment(str(src), "--out", str(tmp_path / "inout")) == 0
    assert src.read_bytes() == before
    assert {"photo_2.png", "photo_2_overlay.png", "photo_2.json"} <= set(os.listdir(tmp_path / "inout"))
    assert "named photo_2" in capsys.readouterr().err


def test_out_inside_input_folder_is_never_read_back(tmp_path, stub):
    photo(tmp_path / "in" / "photo.jpg")
    out = tmp_path / "in" / "nested" / "results"
    assert segment(str(tmp_path / "in"), "--out", str(out)) == 0
    first = sorted(os.listdir(out))
    assert segment(str(tmp_path / "in"), "--out", str(out)) == 0  # the rerun does not segment its outputs
    assert sorted(os.listdir(out)) == first == ["photo.json", "photo.png", "photo_overlay.png"]


def test_inputs_whose_outputs_would_collide_get_distinct_names(tmp_path, stub):
    photo(tmp_path / "in" / "x.jpg")
    photo(tmp_path / "in" / "x_overlay.jpg", colour=(20, 200, 20))
    photo(tmp_path / "in" / "sub" / "x.png", colour=(20, 20, 200))
    assert segment(str(tmp_path / "in"), "--out", str(tmp_path / "out")) == 0
    metas = [json.loads(p.read_text()) for p in (tmp_path / "out").glob("*.json")]
    assert len(metas) == 3 and len({m["image"] for m in metas}) == 3
    assert len(os.listdir(tmp_path / "out")) == 9
    assert plan_stems([Path("a/x.jpg"), Path("a/X_overlay.jpg")], "o", (".png", "_overlay.png")) == ["x", "X_overlay_2"]


def test_same_file_twice_is_segmented_once(tmp_path, stub):
    src = photo(tmp_path / "p.png")
    assert segment(str(src), str(src), "--out", str(tmp_path / "o")) == 0
    assert sorted(os.listdir(tmp_path / "o")) == ["p.json", "p.png", "p_overlay.png"]


def test_folder_in_the_way_commits_nothing_and_leaves_no_temp_files(tmp_path, stub, capsys):
    src = photo(tmp_path / "s.png")
    (tmp_path / "out" / "s_overlay.png").mkdir(parents=True)
    assert segment(str(src), "--out", str(tmp_path / "out")) == 1
    assert os.listdir(tmp_path / "out") == ["s_overlay.png"]
    assert "is a folder" in capsys.readouterr().err


def test_failed_rename_puts_back_the_previous_files(tmp_path, monkeypatch):
    (tmp_path / "a.txt").write_text("old a")
    real = os.replace
    calls = []

    def flaky(src, dst):
        calls.append(dst)
        if str(dst).endswith("b.txt"):
            raise OSError(28, "No space left on device", str(dst))
        return real(src, dst)

    monkeypatch.setattr(os, "replace", flaky)
    with pytest.raises(ZsSegError, match="none of the set was kept"), AtomicWriter() as w:
        w.write_text(tmp_path / "a.txt", "new a")
        w.write_text(tmp_path / "b.txt", "new b")
    monkeypatch.setattr(os, "replace", real)
    assert sorted(os.listdir(tmp_path)) == ["a.txt"] and (tmp_path / "a.txt").read_text() == "old a"


def test_sigterm_is_handled_like_ctrl_c(tmp_path):
    with pytest.raises(KeyboardInterrupt), sigterm_as_interrupt(), AtomicWriter() as w:
        w.write_text(tmp_path / "a.txt", "half")
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    assert os.listdir(tmp_path) == []


def test_sigterm_during_segment_exits_130_without_temp_files(tmp_path, monkeypatch, capsys):
    import zsseg.cli_options

    seg = stub_segmenter()
    real_save = zsseg.result.Segmentation.save

    def save_then_term(self, out, stem, image, extra=None, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return real_save(self, out, stem, image, extra, **kwargs)

    monkeypatch.setattr(zsseg.cli_options, "segmenter_from_args", lambda args, **kw: seg)
    monkeypatch.setattr(zsseg.result.Segmentation, "save", save_then_term)
    photo(tmp_path / "in" / "a.png")
    photo(tmp_path / "in" / "b.png")
    assert segment(str(tmp_path / "in"), "--out", str(tmp_path / "out")) == 130
    assert [p for p in os.listdir(tmp_path / "out") if p.endswith(".tmp")] == []
    assert "interrupted" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--out", ""], "empty path"),
        (["--out", "O", "--lambda", "0.5"], "only applies to a strategy-2 checkpoint"),
        (["--out", "O", "--model", "nope:thing"], ""),
    ],
)
def test_fail_fast_errors_leave_no_out_folder(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    photo(tmp_path / "p.png")
    try:
        code = main(["segment", "p.png", "--classes", "cat", *argv])
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert sorted(os.listdir(tmp_path)) == ["p.png"]


def test_train_out_creates_its_folder(tmp_path, monkeypatch):
    from zsseg.train.trainer import check_out

    check_out(tmp_path / "ckpt" / "x.safetensors", resume=False)  # a missing folder is fine: it is created
    with pytest.raises(ZsSegError, match="is a folder"):
        (tmp_path / "d.safetensors").mkdir()
        check_out(tmp_path / "d.safetensors", resume=False)
    import zsseg.data
    import zsseg.models
    import zsseg.train.trainer

    monkeypatch.setattr(zsseg.data, "load_dataset", lambda *a: type("D", (), {"info": type("I", (), {"name": "d"})}))
    monkeypatch.setattr(zsseg.models, "load_backend", lambda *a, **k: type("B", (), {"name": "b"}))
    made = []
    monkeypatch.setattr(zsseg.train.trainer, "train", lambda *a, **k: made.append(a[2].parent.is_dir()) or 1 / 0)
    with pytest.raises(ZeroDivisionError):
        main(["train", "--dataset", "voc20", "--root", str(tmp_path), "--out", str(tmp_path / "ck" / "x.safetensors")])
    assert made == [True]


def test_eval_out_checked_before_work_and_limit_refused(tmp_path, monkeypatch, capsys):
    import zsseg.cli_options

    monkeypatch.setattr(zsseg.cli_options, "segmenter_from_args", lambda *a, **k: pytest.fail("work started"))
    (tmp_path / "res").mkdir()
    base = ["eval", "--dataset", "folder", "--root", str(tmp_path)]
    assert main([*base, "--out", str(tmp_path / "res")]) == 2
    assert main([*base, "--limit", "0"]) == 2
    assert main([*base, "--limit", "-1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "is a folder" in err[0] and all("limit (--limit) must be an integer >= 1" in e for e in err[1:])


def test_zero_proposals_still_give_a_label_map(colour_backend):
    from zsseg.classify import RegionClassifier
    from zsseg.pipeline import Segmenter

    assert Proposals.empty(5, 6).areas().shape == (0,)
    img = np.zeros((30, 40, 3), np.uint8)
    img[..., 0] = 220
    seg = Segmenter(FixedProposer(np.zeros((0, 30, 40), bool)), RegionClassifier(colour_backend, templates="single"))
    result = seg.segment(img, ["green", "red"])
    assert result.label_map.shape == (30, 40) and (result.label_map == 1).all()


@pytest.mark.weights
def test_mobilesam_with_a_threshold_nothing_passes(tmp_path):
    seg = zsseg.load(
        model="conse:efficientnet-lite0", proposals="mobilesam", proposal_options={"pred_iou_thresh": 0.999}
    )
    result = seg.segment(np.full((64, 64, 3), 128, np.uint8), "wall, floor")
    assert result.label_map.shape == (64, 64)


def test_vocabulary_kept_exactly_as_given(tmp_path):
    (tmp_path / "bom.txt").write_bytes("\ufeffbackground\ncat\n".encode())
    assert read_classes_file(tmp_path / "bom.txt") == ["background", "cat"]
    (tmp_path / "bom.json").write_bytes('\ufeff["background", "cat"]'.encode())
    assert read_classes_file(tmp_path / "bom.json") == ["background", "cat"]
    (tmp_path / "one.txt").write_text("cat, dog, sofa\n")
    assert read_classes_file(tmp_path / "one.txt") == ["cat", "dog", "sofa"]
    (tmp_path / "c.txt").write_text("# my classes\ncat  # the pet\ndog\n")
    assert read_classes_file(tmp_path / "c.txt") == ["cat", "dog"]
    (tmp_path / "latin.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(ZsSegError, match="not UTF-8.*save it as UTF-8"):
        read_classes_file(tmp_path / "latin.txt")
    for bad, msg in ((["cat", ""], "class 1 is an empty name"), (["cat", 3], "class 1 is 3"), (["a", None], "None")):
        with pytest.raises(ZsSegError, match=msg):
            parse_classes(bad)
    with pytest.raises(ZsSegError, match="string or a list"):
        parse_classes(b"cat")  # type: ignore[arg-type]


def test_folder_dataset_classes_with_bom_keep_background(tmp_path):
    from zsseg.data import load_dataset

    for sub in ("images", "labels"):
        (tmp_path / sub).mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "images" / "a.png")
    Image.new("L", (8, 8)).save(tmp_path / "labels" / "a.png")
    (tmp_path / "classes.txt").write_bytes("\ufeffbackground\ncat\n".encode())
    assert load_dataset("folder", tmp_path, "val").info.classes[0] == "background"
    (tmp_path / "classes.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(ZsSegError, match="not UTF-8"):
        load_dataset("folder", tmp_path, "val")

"""The command line as a user runs it: outputs, exit codes, and one-line errors."""

import json

import numpy as np
import pytest
from PIL import Image

from zsseg.cli import build_parser, main


@pytest.fixture
def images(tmp_path):
    import skimage.data

    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(skimage.data.astronaut()[::4, ::4]).save(folder / "astro.jpg")
    Image.fromarray(skimage.data.coffee()[::4, ::4]).save(folder / "coffee.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 this is not really a jpeg")
    return folder


@pytest.mark.weights
def test_segment_writes_outputs_and_reports_failures(images, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(
        [
            "segment",
            str(images),
            "--classes",
            "person, cup, wall",
            "--model",
            "conse:efficientnet-lite0",
            "--proposals",
            "selective-search",
            "--out",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "broken.jpg: cannot read image" in err and "1 of 3 image(s) failed" in err
    assert "Traceback" not in err
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"{s}{e}" for s in ("astro", "coffee") for e in (".png", "_overlay.png", ".json"))
    label = np.asarray(Image.open(out / "astro.png"))
    assert label.shape == (128, 128) and label.max() <= 2
    meta = json.loads((out / "coffee.json").read_text())
    assert meta["model"] == "conse:efficientnet-lite0" and meta["proposals"] == "selective-search"
    assert meta["classes"] == ["person", "cup", "wall"]
    assert abs(sum(meta["class_pixel_share"].values()) - 1) < 1e-6
    assert {"proposals", "classify", "assemble", "total"} <= set(meta["timings_s"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--classes", " , "], "vocabulary is empty"),
        (["--classes", "cat, cat"], "given twice"),
        (["--classes", "cat", "--model", "nope"], "unknown model"),
        (
            ["--classes", "cat", "--model", "conse:efficientnet-lite0", "--proposals", "nope"],
            "unknown proposal generator",
        ),
        (
            [
                "--classes",
                "cat",
                "--model",
                "conse:efficientnet-lite0",
                "--proposals",
                "selective-search",
                "--points-per-side",
                "8",
            ],
            "do not apply",
        ),
        (
            ["--classes", "cat", "--model", "conse:efficientnet-lite0", "--proposals", "ucm", "--dedup-iou", "2"],
            "proposals 'ucm': min_region_area must be in [0, 1] and dedup_iou in (0, 1]",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message, images, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["segment", str(images / "astro.jpg"), "--out", str(out), *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("zsseg: error:") and message in err[0]
    assert not out.exists() or not any(out.iterdir())


def test_bad_clip_models_are_one_line_and_exit_2(images, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00not a checkpoint" * 64)
    for model, message in [
        (f"clip:ViT-B-16/{corrupt}", "could not read CLIP checkpoint"),
        (f"clip:local-dir:{tmp_path / 'no-folder'}", "needs open_clip_config.json"),
        ("clip:hf-hub:zsseg-test/not-cached-anywhere", "create_model('hf-hub:zsseg-test/not-cached-anywhere')"),
    ]:
        out = tmp_path / "out"
        code = main(["segment", str(images / "astro.jpg"), "--classes", "cat", "--out", str(out), "--model", model])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2, err
        assert len(err) == 1 and err[0].startswith("zsseg: error:") and message in err[0], err
        assert not out.exists() or not any(out.iterdir())


def test_missing_path_and_unwritable_out(images, tmp_path, capsys):
    assert main(["segment", str(tmp_path / "nope.jpg"), "--classes", "cat", "--out", str(tmp_path / "o")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["segment", str(images / "astro.jpg"), "--classes", "cat", "--out", str(blocker / "sub")]) == 2
    assert "cannot write outputs" in capsys.readouterr().err
    (tmp_path / "v.csv").write_text("cat\n")
    assert (
        main(
            [
                "segment",
                str(images / "astro.jpg"),
                "--classes-file",
                str(tmp_path / "v.csv"),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "unknown class list format" in capsys.readouterr().err


def test_proposer_knobs_become_flags():
    parser = build_parser()
    seg = parser._subparsers._group_actions[0].choices["segment"]  # type: ignore[union-attr]
    flags = {opt for action in seg._actions for opt in action.option_strings}
    assert {"--classes", "--classes-file", "--model", "--proposals", "--templates", "--unlabelled-threshold"} <= flags


def test_proposals_command(images, tmp_path):
    out = tmp_path / "props"
    code = main(["proposals", str(images / "coffee.png"), "--method", "selective-search", "--out", str(out)])
    assert code == 0
    data = np.load(out / "coffee.npz")
    assert data["masks"].dtype == bool and data["masks"].shape[1:] == (100, 150)
    assert data["scores"].dtype == np.float32 and len(data["scores"]) == len(data["masks"])
    assert (out / "coffee_proposals.png").is_file()


@pytest.mark.parametrize(
    "argv",
    [[], ["segment", "x.jpg"], ["batch"], ["segment", "x.jpg", "--classes", "a", "--out", "o", "--min-area", "abc"]],
)
def test_usage_errors_are_one_line_naming_help(argv, capsys):
    """Issue 31: argparse printed a 30-line usage block before its one line."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("zsseg: error: ") and "--help)" in err[0]


def test_ctrl_c_while_starting_up_is_one_line(monkeypatch, capsys):
    """Issue 31: Ctrl-C during start-up (the parser imports the sub-commands) printed a traceback."""
    import zsseg.cli

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(zsseg.cli, "build_parser", interrupted)
    assert main(["models"]) == 130
    assert capsys.readouterr().err.strip() == "zsseg: error: interrupted"

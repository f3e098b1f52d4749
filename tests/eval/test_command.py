"""``zsseg eval`` end to end on a tiny user dataset in the ``folder`` layout."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zsseg.cli import main


def make_folder(root: Path) -> None:
    import skimage.data

    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for name in ("coffee", "chelsea"):
        img = getattr(skimage.data, name)()[::4, ::4]
        Image.fromarray(img).save(root / "images" / f"{name}.png")
        label = np.zeros(img.shape[:2], np.uint8)
        label[: img.shape[0] // 2] = 1
        Image.fromarray(label).save(root / "labels" / f"{name}.png")
    (root / "classes.txt").write_text("cat\ncup\n")


@pytest.mark.weights
def test_eval_writes_json_markdown_and_predictions(tmp_path, capsys):
    make_folder(tmp_path / "ds")
    out = tmp_path / "res" / "results.json"
    code = main(
        [
            "eval",
            "--dataset",
            "folder",
            "--root",
            str(tmp_path / "ds"),
            "--model",
            "conse:efficientnet-lite0",
            "--proposals",
            "selective-search",
            "--out",
            str(out),
            "--save-predictions",
            str(tmp_path / "pred"),
        ]
    )
    assert code == 0
    res = json.loads(out.read_text())
    assert res["num_images"] == 2 and 0 <= res["mIoU"] <= 100
    assert res["model"] == "conse:efficientnet-lite0" and res["proposals"] == "selective-search"
    assert "| folder | 2 |" in out.with_suffix(".md").read_text()
    assert sorted(p.name for p in (tmp_path / "pred").iterdir()) == ["chelsea.png", "coffee.png"]
    assert "mIoU" in capsys.readouterr().out


def test_eval_bad_root_is_one_line(tmp_path, capsys):
    code = main(
        ["eval", "--dataset", "voc20", "--root", str(tmp_path / "missing"), "--model", "conse:efficientnet-lite0"]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("zsseg: error:")

"""Property-based fuzzing of the CLI and the API with random vocabularies, flags and generated or corrupted files.

The contract: exit status 0, 1 or 2; never a traceback; a usage error (2) is exactly one error line; every
image's outputs are complete or absent, with no temporary files left. The model does not matter here, so the
CLI builds a weight-free stub segmenter; a few real subprocess runs check the installed entry point.
"""

import contextlib
import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from zsseg_testing import REPO, stub_segmenter

from zsseg.cli import main
from zsseg.errors import ZsSegError
from zsseg.io import read_image

FUZZ = settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))

names = st.text(alphabet=st.sampled_from(list("abc xyz,#\n\ufeffé-_")), max_size=8)
vocabularies = st.lists(names, min_size=0, max_size=5)
numbers = st.sampled_from(["0", "-1", "0.5", "1", "2", "1e9", "nan", "inf", "-0.0", "x", "", "3"])
flags = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "--batch-size",
                "--unlabelled-threshold",
                "--background-threshold",
                "--lambda",
                "--max-pixels",
                "--max-working-pixels",
                "--device",
                "--templates",
                "--model",
            ]
        ),
        numbers | st.sampled_from(["cpu", "cuda", "gpu0", "auto", "vild", "cuda:7", "mps"]),
    ),
    max_size=3,
)


@st.composite
def image_files(draw: st.DrawFn) -> tuple[str, bytes]:
    """A small generated image in a random mode and format, maybe corrupted (truncated or bytes flipped)."""
    h, w = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    mode = draw(st.sampled_from(["RGB", "RGBA", "L", "LA", "P", "1", "I;16", "CMYK"]))
    fmt = draw(st.sampled_from(["PNG", "JPEG", "GIF", "TIFF", "BMP", "WEBP"]))
    seed = draw(st.integers(0, 2**16))
    arr = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    im = Image.fromarray(arr)
    im = Image.fromarray(arr[..., 0].astype(np.uint16) * 257) if mode == "I;16" else im.convert(mode)
    buf = io.BytesIO()
    try:
        im.save(buf, format=fmt)
    except (OSError, ValueError, KeyError):
        im.convert("RGB").save(buf, format="PNG")
        fmt = "PNG"
    data = buf.getvalue()
    damage = draw(st.sampled_from(["none", "truncate", "flip", "garbage"]))
    if damage == "truncate":
        data = data[: draw(st.integers(0, max(len(data) - 1, 0)))]
    elif damage == "flip":
        pos = draw(st.integers(0, len(data) - 1))
        data = data[:pos] + bytes([data[pos] ^ 0xFF]) + data[pos + 1 :]
    elif damage == "garbage":
        data = draw(st.binary(max_size=64))
    return f"img.{fmt.lower()}", data


def run_cli(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code if isinstance(exc.code, int) else 2
    return code, err.getvalue()


def check_contract(code: int, err: str, out: Path, images: int) -> None:
    assert code in (0, 1, 2), err
    assert "Traceback" not in err, err
    errors = [ln for ln in err.splitlines() if "error:" in ln]
    assert len(errors) <= images + 1, err
    if code == 2:
        assert len(errors) == 1, err
    if out.is_dir():
        files = {p.name for p in out.iterdir()}
        assert not [f for f in files if f.endswith((".tmp", ".bak"))], files
        for meta in (f for f in files if f.endswith(".json")):
            stem = meta[: -len(".json")]
            assert {f"{stem}.png", f"{stem}_overlay.png"} <= files, files
            json.loads((out / meta).read_text())


@FUZZ
@given(
    vocab=vocabularies,
    as_file=st.sampled_from(["", ".txt", ".json", ".csv"]),
    options=flags,
    files=st.lists(image_files(), min_size=1, max_size=2),
)  # noqa: E501
def test_fuzz_segment_cli(vocab, as_file, options, files):
    with pytest.MonkeyPatch.context() as mp, tempfile.TemporaryDirectory() as tmp:
        import zsseg.cli_options

        mp.setattr(zsseg.cli_options, "segmenter_from_args", lambda args, **extra: stub_segmenter(**extra))
        root = Path(tmp)
        (root / "in").mkdir()
        for i, (name, data) in enumerate(files):
            (root / "in" / f"{i}{name}").write_bytes(data)
        if as_file:
            path = root / f"classes{as_file}"
            text = json.dumps(vocab) if as_file == ".json" else "\n".join(vocab)
            path.write_text(text, encoding="utf-8")
            vocab_args = ["--classes-file", str(path)]
        else:
            vocab_args = ["--classes", ",".join(vocab)]
        argv = ["segment", str(root / "in"), *vocab_args, "--out", str(root / "out")]
        for flag, value in options:
            argv += [flag, value]
        code, err = run_cli(argv)
        check_contract(code, err, root / "out", len(files))
        if code == 2:  # usage errors stop before any output folder is made
            assert not (root / "out").exists()


@FUZZ
@given(vocab=st.lists(st.one_of(names, st.none(), st.integers(), st.just("")), max_size=4), file=image_files())
def test_fuzz_api(vocab, file):
    seg = stub_segmenter()
    try:
        image = read_image(file[1])
    except ZsSegError:
        return
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    try:
        result = seg.segment(image, vocab)
    except ZsSegError:
        return
    assert result.label_map.shape == image.shape[:2]
    assert len(result.classes) == len(vocab)  # every entry kept, in order: label i is the user's i-th class


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["segment", "{img}", "--classes", "cat", "--out", "{out}", "--device", "gpu0"], 2),
        (["segment", "{img}", "--classes-file", "{latin}", "--out", "{out}"], 2),
        (["proposals", "{bad}", "--method", "selective-search", "--out", "{out}"], 1),
    ],
)
def test_real_subprocess_one_line_no_traceback(args, expect, tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "p.png")
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    (tmp_path / "latin.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    fill = {"img": tmp_path / "p.png", "bad": tmp_path / "bad.jpg", "latin": tmp_path / "latin.txt"}
    argv = [a.format(out=tmp_path / "out", **fill) for a in args]
    run = subprocess.run([sys.executable, "-m", "zsseg.cli", *argv], capture_output=True, text=True, cwd=REPO)
    errors = [ln for ln in run.stderr.splitlines() if ln.startswith("zsseg: error:")]
    assert run.returncode == expect and "Traceback" not in run.stderr, run.stderr
    assert len(errors) == (1 if expect == 2 else 2), run.stderr  # per-image failure: its line + the summary

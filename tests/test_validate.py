"""One validation layer: every flag's range and choices, devices, combinations; same message from CLI and API."""

import pytest
import torch

import zsseg
from zsseg.cli import main
from zsseg.errors import ZsSegError
from zsseg.validate import RULES, Rule, add_rule, check_values, resolve_device, validate_load_args


@pytest.fixture
def img(tmp_path):
    from PIL import Image

    Image.new("RGB", (16, 12)).save(tmp_path / "p.png")
    return str(tmp_path / "p.png")


def cli_error(argv, capsys) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("zsseg: error: "), err
    return err[0].removeprefix("zsseg: error: ")


@pytest.mark.parametrize(
    ("flag", "value", "kwarg", "api_value"),
    [
        ("--batch-size", "0", "batch_size", 0),
        ("--unlabelled-threshold", "-0.1", "unlabelled_threshold", -0.1),
        ("--background-threshold", "-1", "background_threshold", -1.0),
        ("--background-threshold", "nan", "background_threshold", float("nan")),
        ("--lambda", "1.5", "ensemble_lambda", 1.5),
        ("--max-working-pixels", "10", "max_working_pixels", 10),
        ("--device", "gpu0", "device", "gpu0"),
    ],
)
def test_cli_and_api_fail_the_same_way(flag, value, kwarg, api_value, img, tmp_path, capsys):
    extra = ["--classifier", str(tmp_path / "c.safetensors")] if flag == "--lambda" else []
    msg = cli_error(["segment", img, "--classes", "cat", "--out", str(tmp_path / "o"), flag, value, *extra], capsys)
    api_extra = {"classifier_checkpoint": "c.safetensors"} if kwarg == "ensemble_lambda" else {}
    with pytest.raises(ZsSegError) as exc:
        zsseg.load(model="conse:efficientnet-lite0", **{kwarg: api_value}, **api_extra)
    assert str(exc.value) == msg and kwarg in msg
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("command", ["segment", "proposals"])
def test_cuda_without_a_gpu_is_one_line(command, img, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    vocab = ["--classes", "cat"] if command == "segment" else []
    for device in ("cuda", "cuda:1"):
        msg = cli_error([command, img, *vocab, "--out", str(tmp_path / "o"), "--device", device], capsys)
        assert "no CUDA GPU" in msg and "--device cpu" in msg
    assert resolve_device("auto") == "cpu" and resolve_device(None) == "cpu" and resolve_device("CPU") == "cpu"


def test_cuda_index_beyond_the_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("auto") == "cuda" and resolve_device("cuda:0") == "cuda:0"
    with pytest.raises(ZsSegError, match="has 1 CUDA GPU"):
        resolve_device("cuda:3")
    with pytest.raises(ZsSegError, match="not a device"):
        resolve_device("cuda:x")


def test_eval_and_train_flags(tmp_path, capsys):
    base = ["eval", "--dataset", "folder", "--root", str(tmp_path)]
    assert "batch_size" in cli_error([*base, "--batch-size", "0"], capsys)
    assert "only applies" in cli_error([*base, "--lambda", "0.5"], capsys)
    train = ["train", "--dataset", "voc20", "--root", str(tmp_path), "--out", str(tmp_path / "x.safetensors")]
    for flag, value in [("--epochs", "0"), ("--lr", "0"), ("--lambda", "2"), ("--limit", "0"), ("--min-area", "-1")]:
        assert flag in cli_error([*train, flag, value], capsys)
    with pytest.raises(SystemExit) as exc:  # argparse's own usage errors also exit 2
        main(["segment", "x.png", "--classes", "cat", "--out", "o", "--batch-size", "two"])
    assert exc.value.code == 2


def test_api_checks_types_and_proposal_options():
    with pytest.raises(ZsSegError, match="batch_size .* got True"):
        validate_load_args(batch_size=True)
    with pytest.raises(ZsSegError, match=r"batch_size .* got 2\.5"):
        validate_load_args(batch_size=2.5)
    with pytest.raises(ZsSegError, match="pred_iou_thresh"):
        validate_load_args(proposal_options={"pred_iou_thresh": 1.5})
    with pytest.raises(ZsSegError, match="templates"):
        validate_load_args(templates=["no placeholder"])
    with pytest.raises(ZsSegError, match="templates .* one of single, vild, imagenet"):
        validate_load_args(templates="fancy")
    with pytest.raises(ZsSegError, match="model"):
        validate_load_args(model="")
    assert validate_load_args(device="auto", batch_size=4)["device"] in ("cpu", "cuda")


def test_new_options_are_one_line_each():
    rule = Rule("precision_test", "--precision-test", str, choices=("auto", "fp32", "bf16", "fp16"))
    add_rule(rule)
    try:
        check_values({"precision_test": "fp32"}, "load")
        with pytest.raises(ZsSegError, match=r"precision_test \(--precision-test\) must be one of auto, fp32"):
            check_values({"precision_test": "fp64"}, "segment")
    finally:
        RULES.pop("precision_test")

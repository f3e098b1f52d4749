"""``zsseg.available_models()`` and ``zsseg models``: every family's models, and which load here."""

from __future__ import annotations

import pytest

import zsseg
from zsseg.cli import main


def test_available_models_lists_each_family() -> None:
    models = zsseg.available_models()
    names = [m.name for m in models]
    assert names[0] == "clip:ViT-B-16/openai"  # the paper's model first
    assert {"conse:efficientnet-lite0", "conse:efficientnet-lite2"} <= set(names)
    assert {m.family for m in models} == {"clip", "conse"}
    assert all(m.available or m.how for m in models)  # a model that is not here says how to get it


def test_models_command_lists_what_loads_here(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    here = {m.name for m in zsseg.available_models() if m.available}
    assert all(name in out for name in here) and "conse:efficientnet-lite0" in out
    assert "mobilesam" in out
    assert main(["models", "--all"]) == 0
    assert "clip:ViT-B-16/openai" in capsys.readouterr().out


def test_flags_default_to_loads_own_defaults() -> None:
    """The command line, zsseg.load and the batch stamp read one set of defaults (zsseg.load's signature)."""
    import inspect

    from zsseg.cli import build_parser
    from zsseg.cli_options import load_options

    args = build_parser().parse_args(["segment", "x.jpg", "--classes", "cat", "--out", "o"])
    params = inspect.signature(zsseg.load).parameters
    got = load_options(args)
    assert got.pop("proposal_options") == {}
    assert got == {name: params[name].default for name in got}
    assert args.background_threshold == params["background_threshold"].default
    assert args.max_working_pixels == params["max_working_pixels"].default

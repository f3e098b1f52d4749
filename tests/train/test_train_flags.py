"""``zsseg train``'s flags: their defaults are TrainConfig's, and parsed flags give back the config."""

from __future__ import annotations

import argparse
from dataclasses import fields

from zsseg.train.command import config_from_args, register
from zsseg.train.config import TrainConfig


def _parse(*flags: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser.parse_args(["train", "--dataset", "voc20", "--root", ".", "--out", "x.safetensors", *flags])


def test_flag_defaults_are_the_configs() -> None:
    assert config_from_args(_parse()) == TrainConfig()


def test_every_field_but_the_suffix_has_a_flag() -> None:
    args = vars(_parse())
    special = {"flip": "no_flip", "calibrate": "no_calibrate", "regions": "min_area"}
    missing = [f.name for f in fields(TrainConfig) if special.get(f.name, f.name) not in args]
    assert missing == ["suffix"]


def test_flags_reach_the_config() -> None:
    cfg = config_from_args(_parse("--what", "prompts", "--lambda", "0.6", "--no-flip", "--min-area", "0.01"))
    assert (cfg.what, cfg.lambda_, cfg.flip, cfg.regions.min_area) == ("prompts", 0.6, False, 0.01)
    assert config_from_args(_parse("--what", "self-training")).what == "strategy2"

"""The one table of proposal generators: names, knobs, flags and builders all come from it."""

from __future__ import annotations

import pytest

from zsseg.errors import ZsSegError
from zsseg.proposals import (
    PROPOSER_NAMES,
    PROPOSERS,
    build_proposer,
    fast_path_options,
    flag_proposers,
    proposer_class,
    proposer_options,
    resolve_name,
)


def test_names_and_flag_owners_come_from_the_table() -> None:
    assert PROPOSER_NAMES == (
        "auto", "mobilesam", "selective-search", "ucm", "sam:vit_b", "sam:vit_l", "sam:vit_h", "mask2former:HF_ID",
    )  # fmt: skip
    assert flag_proposers() == ("mobilesam", "selective-search", "ucm", "sam:vit_b", "mask2former:HF_ID")
    assert set(PROPOSERS) == {name.partition(":")[0] for name in PROPOSER_NAMES} - {"auto"}
    assert all(entry.help for entry in PROPOSERS.values())
    assert resolve_name("auto") in ("mobilesam", "selective-search")


def test_knobs_are_the_constructors_arguments() -> None:
    from zsseg.proposals.selective_search import SelectiveSearchProposer

    assert proposer_class("selective-search") is SelectiveSearchProposer
    assert proposer_class("sam:vit_l") is proposer_class("mobilesam")
    knobs = proposer_options("ucm")
    assert "max_side" in knobs and "self" not in knobs
    assert {"precision", "image_size", "bf16_from_stage"} <= set(proposer_options("mobilesam"))
    assert "model" not in proposer_options("mobilesam") and "device" not in proposer_options("mobilesam")


def test_fast_path_defaults() -> None:
    assert fast_path_options("mobilesam") == {"image_size": 768}
    assert fast_path_options("sam:vit_b") == fast_path_options("ucm") == fast_path_options("mobilesam:x") == {}


@pytest.mark.parametrize("name", ["nope", "sam", "mobilesam:x", "ucm:y", "mask2former"])
def test_unknown_names_list_the_choices(name: str) -> None:
    with pytest.raises(ZsSegError, match="use one of auto, mobilesam"):
        build_proposer(name)
    with pytest.raises(ZsSegError, match="unknown proposal generator"):
        proposer_options(name)


def test_builders_check_knob_names_and_checkpoints() -> None:
    proposer = build_proposer("selective-search", max_proposals=3)
    assert proposer.name == "selective-search" and proposer.max_proposals == 3
    with pytest.raises(ZsSegError, match="do not apply to proposals 'ucm'"):
        build_proposer("ucm", points_per_side=4)
    with pytest.raises(ZsSegError, match="--checkpoint does not apply"):
        build_proposer("ucm", checkpoint="x.pth")
    with pytest.raises(ZsSegError, match="--checkpoint does not apply"):
        build_proposer("mask2former:some/id", checkpoint="x.pth")
    with pytest.raises(ZsSegError, match="proposals 'ucm': max_side"):
        build_proposer("ucm", max_side=2)
    with pytest.raises(ZsSegError, match="need the model's weights"):
        build_proposer("sam:vit_b")

"""Mask2Former proposals with a tiny randomly initialised transformers model."""

import numpy as np
import pytest
import torch
from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation, SwinConfig

from zsseg.errors import ZsSegError
from zsseg.proposals import build_proposer
from zsseg.proposals.mask2former import Mask2FormerProposer


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    torch.manual_seed(0)
    backbone = SwinConfig(
        image_size=64,
        patch_size=4,
        embed_dim=16,
        depths=[1, 1, 1, 1],
        num_heads=[1, 1, 1, 1],
        window_size=4,
        out_features=["stage1", "stage2", "stage3", "stage4"],
    )
    cfg = Mask2FormerConfig(
        backbone_config=backbone,
        hidden_dim=32,
        num_queries=8,
        encoder_layers=1,
        decoder_layers=2,
        dim_feedforward=64,
        mask_feature_size=32,
        feature_size=32,
        num_attention_heads=2,
        encoder_feedforward_dim=64,
        num_labels=4,
        use_timm_backbone=False,
    )
    folder = tmp_path_factory.mktemp("m2f")
    Mask2FormerForUniversalSegmentation(cfg).save_pretrained(folder)
    return folder


def test_local_checkpoint_gives_valid_proposals(tiny_folder):
    proposer = build_proposer(f"mask2former:{tiny_folder}", score_threshold=0.0, min_region_area=0.0)
    assert isinstance(proposer, Mask2FormerProposer)
    image = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    props = proposer(image)
    assert props.masks.shape[1:] == (50, 70) and props.masks.dtype == bool
    assert 0 < len(props) <= 8 and ((props.scores >= 0) & (props.scores <= 1)).all()
    assert (props.areas() > 0).all()
    none = build_proposer(f"mask2former:{tiny_folder}", score_threshold=1.1)(image)
    assert len(none) == 0 and none.image_size == (50, 70)


def test_missing_weights_is_clear(tmp_path):
    with pytest.raises(ZsSegError, match="mask2former:PATH"):
        build_proposer(f"mask2former:{tmp_path / 'nothing-here'}")

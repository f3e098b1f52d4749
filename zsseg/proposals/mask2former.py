"""Class-agnostic mask proposals from a Hugging Face Mask2Former (the paper's default kind of generator).

The paper's proposals come from a MaskFormer trained on seen classes; its masks are used without their
class predictions. Here any ``Mask2FormerForUniversalSegmentation`` checkpoint serves (a hub id such as
``facebook/mask2former-swin-tiny-coco-panoptic`` or a local folder): each query's mask is a proposal and its
objectness ``1 - p(no object)`` is the score.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from zsseg.errors import ZsSegError
from zsseg.proposals.base import Proposals

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Mask2FormerProposer:
    """Mask2Former queries as class-agnostic proposals.

    Args:
        model: a ``transformers`` ``Mask2FormerForUniversalSegmentation``.
        input_size: the image's shorter side is resized to this many pixels before the forward pass.
        score_threshold: queries with objectness (1 - no-object probability) below this are dropped.
        mask_threshold: a pixel belongs to a query's mask where the mask probability exceeds this.
        min_region_area: masks with fewer pixels than this fraction of the image are dropped.
        max_proposals: keep at most this many masks, highest objectness first.
        dedup_iou: masks overlapping a better one with IoU above this are dropped.
        device: torch device for the model.
    """

    name = "mask2former"

    def __init__(
        self,
        model: torch.nn.Module,
        input_size: int = 384,
        score_threshold: float = 0.3,
        mask_threshold: float = 0.5,
        min_region_area: float = 0.0005,
        max_proposals: int = 100,
        dedup_iou: float = 0.9,
        device: str | torch.device = "cpu",
    ) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.input_size = input_size
        self.score_threshold = score_threshold
        self.mask_threshold = mask_threshold
        self.min_region_area = min_region_area
        self.max_proposals = max_proposals
        self.dedup_iou = dedup_iou

    def _pixels(self, image: np.ndarray) -> torch.Tensor:
        """uint8 (H, W, 3) -> normalised float32 (1, 3, h, w), shorter side ``input_size``, sides multiple of 32."""
        h, w = image.shape[:2]
        scale = self.input_size / min(h, w)
        nh, nw = (max(32, int(round(s * scale / 32)) * 32) for s in (h, w))
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255.0
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        return ((x - mean) / std).to(self.device)

    @torch.inference_mode()
    def __call__(self, image: np.ndarray) -> Proposals:
        """Propose masks for a uint8 (H, W, 3) RGB image; returns masks bool (N, H, W)."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
        h, w = image.shape[:2]
        out = self.model(pixel_values=self._pixels(image))
        objectness = 1.0 - out.class_queries_logits[0].softmax(-1)[:, -1]  # (Q,)
        keep = torch.nonzero(objectness >= self.score_threshold).flatten()
        keep = keep[objectness[keep].argsort(descending=True)][: self.max_proposals]
        if len(keep) == 0:
            return Proposals.empty(h, w)
        logits = out.masks_queries_logits[0, keep][None]  # (1, N, h', w')
        masks = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)[0].sigmoid()
        masks_np = (masks > self.mask_threshold).cpu().numpy()
        props = Proposals(masks_np, objectness[keep].float().cpu().numpy())
        props = props[props.areas() >= max(1.0, self.min_region_area * h * w)]
        return props.deduplicate(self.dedup_iou)


def build_mask2former(
    model_id: str | Path, device: str | torch.device = "cpu", **options: object
) -> Mask2FormerProposer:
    """``mask2former:HF_ID``: load a Mask2Former from the Hugging Face cache, the hub, or a local folder.

    Raises:
        ZsSegError: weights neither cached nor downloadable, or not a Mask2Former checkpoint.
    """
    from transformers import Mask2FormerForUniversalSegmentation

    try:
        model = Mask2FormerForUniversalSegmentation.from_pretrained(str(model_id))
    except OSError as exc:
        raise ZsSegError(
            f"Mask2Former weights {model_id!r} are not cached and could not be downloaded: download them once with "
            f'internet (python -c "from transformers import Mask2FormerForUniversalSegmentation as M; '
            f"M.from_pretrained('{model_id}')\") or pass a local folder as --proposals mask2former:PATH"
        ) from exc
    except ValueError as exc:
        raise ZsSegError(f"{model_id!r} is not a Mask2Former checkpoint ({exc})") from exc
    return Mask2FormerProposer(model, device=device, **options)  # type: ignore[arg-type]

"""The proposal stage's contract: a :class:`MaskProposer` turns an image into :class:`Proposals`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Proposals:
    """Class-agnostic mask proposals for one image.

    Attributes:
        masks: bool array of shape (N, H, W), one binary mask per proposal, H and W those of the image.
        scores: float32 array of shape (N,), the generator's confidence in each proposal (higher is better;
            its scale depends on the generator).

    Index with a boolean array of shape (N,) or an integer array to select proposals, as with
    ``supervision.Detections``: ``proposals[proposals.areas() > 100]``.
    """

    masks: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        masks = np.asarray(self.masks)
        scores = np.asarray(self.scores)
        if masks.ndim != 3:
            raise ValueError(f"Proposals.masks must have shape (N, H, W), got shape {masks.shape}")
        if masks.dtype != np.bool_:
            raise ValueError(f"Proposals.masks must be bool, got dtype {masks.dtype}")
        if scores.shape != (masks.shape[0],):
            raise ValueError(
                f"Proposals.scores must have shape ({masks.shape[0]},) to match masks {masks.shape}, "
                f"got shape {scores.shape}"
            )
        object.__setattr__(self, "masks", masks)
        object.__setattr__(self, "scores", scores.astype(np.float32, copy=False))

    def __len__(self) -> int:
        return int(self.masks.shape[0])

    def __getitem__(self, index: np.ndarray | slice | list[int]) -> Proposals:
        if isinstance(index, np.ndarray) and index.dtype == np.bool_ and index.shape != (len(self),):
            raise IndexError(f"boolean index must have shape ({len(self)},), got shape {index.shape}")
        return Proposals(masks=self.masks[index], scores=self.scores[index])

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) of the image the masks belong to."""
        return int(self.masks.shape[1]), int(self.masks.shape[2])

    def areas(self) -> np.ndarray:
        """int64 array (N,): pixels in each mask."""
        return self.masks.sum(axis=(1, 2), dtype=np.int64)  # (reshape(0, -1) fails on zero proposals)

    def covered(self) -> np.ndarray:
        """bool array (H, W): pixels inside at least one proposal."""
        if len(self) == 0:
            return np.zeros(self.image_size, dtype=bool)
        return np.asarray(self.masks.any(axis=0))

    @staticmethod
    def empty(height: int, width: int) -> Proposals:
        """No proposals for an image of the given size."""
        return Proposals(np.zeros((0, height, width), dtype=bool), np.zeros((0,), dtype=np.float32))

    @staticmethod
    def concat(parts: list[Proposals]) -> Proposals:
        """Concatenate proposals of the same image."""
        if not parts:
            raise ValueError("Proposals.concat needs at least one part")
        return Proposals(
            np.concatenate([p.masks for p in parts], axis=0),
            np.concatenate([p.scores for p in parts], axis=0),
        )

    def deduplicate(self, iou_threshold: float = 0.9) -> Proposals:
        """Greedy mask NMS: keep the highest-scoring of any group of masks whose IoU exceeds the threshold."""
        n = len(self)
        if n <= 1:
            return self
        h, w = self.image_size
        step = max(1, int(np.ceil(np.sqrt(h * w / 65536))))  # IoU on a <=256x256 grid: cheap, accurate enough
        flat = self.masks[:, ::step, ::step].reshape(n, -1).astype(np.float32)
        inter = flat @ flat.T
        area = np.diag(inter)
        iou = inter / np.maximum(area[:, None] + area[None, :] - inter, 1.0)
        order = np.argsort(-self.scores, kind="stable")
        keep: list[int] = []
        suppressed = np.zeros(n, dtype=bool)
        for i in order:
            if suppressed[i]:
                continue
            keep.append(int(i))
            suppressed |= iou[i] > iou_threshold
        return self[np.array(sorted(keep), dtype=np.int64)]


@runtime_checkable
class MaskProposer(Protocol):
    """Anything that proposes class-agnostic masks for an RGB image.

    ``name`` is the string a user passes as ``--proposals``.
    """

    name: str

    def __call__(self, image: np.ndarray) -> Proposals:
        """Propose masks for ``image``: uint8 array (H, W, 3), RGB. Returns masks of shape (N, H, W)."""
        ...

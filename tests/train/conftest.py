"""Fixtures for training tests: a tiny random open_clip model, a synthetic VOC split (the tiny BERT is shared)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from zsseg.models.clip.backend import ClipBackend

TINY_NAME = "zsseg-train-tiny"
TINY = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
# VOC raw label values -> colour of their synthetic objects (voc20 class id = raw - 1)
COLOURS = {1: (230, 30, 30), 2: (30, 200, 40), 3: (40, 60, 230), 16: (230, 230, 40), 17: (200, 40, 200)}


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Encoded-region caches go to the test's folder, not ~/.cache."""
    monkeypatch.setenv("ZSSEG_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="session")
def tiny_clip_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint of a tiny random CLIP (ViT 2 blocks, width 32, 32 px; text 1 layer), registered as TINY_NAME."""
    folder = tmp_path_factory.mktemp("tinyclip")
    (folder / f"{TINY_NAME}.json").write_text(json.dumps(TINY))
    open_clip.add_model_config(folder / f"{TINY_NAME}.json")
    torch.manual_seed(0)
    model = open_clip.create_model(TINY_NAME)
    path = folder / "tiny.pt"
    torch.save({"state_dict": model.state_dict()}, path)
    return path


@pytest.fixture
def tiny_clip(tiny_clip_file: Path) -> ClipBackend:
    """A fresh :class:`ClipBackend` over the tiny CLIP (fresh: training freezes the backend's weights)."""
    from zsseg.models import load_backend

    return load_backend(f"clip:{TINY_NAME}/{tiny_clip_file}")  # type: ignore[return-value]


def _square_image(rng: np.random.Generator, raws: list[int], size: int = 48) -> tuple[np.ndarray, np.ndarray]:
    img = rng.integers(90, 140, (size, size, 3)).astype(np.uint8)
    label = np.zeros((size, size), np.uint8)  # 0 = VOC background (ignored by voc20)
    half = size // 2
    for j, raw in enumerate(raws):
        y0, x0 = (j // 2) * half + 2, (j % 2) * half + 2
        img[y0 : y0 + half - 6, x0 : x0 + half - 6] = COLOURS[raw]
        label[y0 : y0 + half - 6, x0 : x0 + half - 6] = raw
        label[y0 - 1, x0 : x0 + half - 6] = 255  # a void border line, as in VOC
    return img, label


def make_voc(root: Path, n: int = 8, split: str = "train", seed: int = 0) -> Path:
    """A synthetic VOC2012 split: each image has 2-3 coloured squares of aeroplane/bicycle/bird (seen) and
    pottedplant/sheep (unseen); every class has its own colour."""
    top = root / "VOCdevkit" / "VOC2012"
    for d in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (top / d).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    raws = list(COLOURS)
    ids = []
    for i in range(n):
        chosen = [raws[(i + k) % len(raws)] for k in range(2 + i % 2)]
        img, label = _square_image(rng, chosen)
        sid = f"2008_{i:06d}"
        Image.fromarray(img).save(top / "JPEGImages" / f"{sid}.jpg", quality=98)
        lab = Image.fromarray(label, mode="P")
        lab.putpalette([v for k in range(256) for v in (k, k, k)])
        lab.save(top / "SegmentationClass" / f"{sid}.png")
        ids.append(sid)
    (top / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return root


@pytest.fixture
def voc_root(tmp_path: Path) -> Path:
    return make_voc(tmp_path / "data")

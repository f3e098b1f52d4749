"""Run a segmenter over a dataset split and score it with :class:`~zsseg.eval.semseg.SemSegEvaluator`."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from zsseg.data.dataset import SegDataset
from zsseg.eval.semseg import SemSegEvaluator
from zsseg.viz import label_image

Segmenter = Callable[[np.ndarray, Sequence[str]], np.ndarray]
"""``segment(image uint8 (H, W, 3) RGB, vocabulary) -> int (H, W)`` label map indexing the vocabulary."""


def save_label_png(label: np.ndarray, path: Path, num_classes: int) -> None:
    """Write an int (H, W) prediction in ``zsseg segment``'s format (:func:`zsseg.viz.label_image`).

    Raises:
        ValueError: a map that is not 2-D, or values outside 0..65535.
    """
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f"label map must be (H, W), got shape {label.shape}")
    lo, hi = (int(label.min()), int(label.max())) if label.size else (0, 0)
    if lo < 0 or hi > 65535:
        raise ValueError(f"label values {lo}..{hi} do not fit a PNG (0..65535)")
    path.parent.mkdir(parents=True, exist_ok=True)
    label_image(label, num_classes).save(path)


def evaluate_dataset(
    segment: Segmenter,
    dataset: SegDataset,
    *,
    limit: int | None = None,
    progress: bool = True,
    save_predictions: Path | None = None,
) -> dict[str, Any]:
    """Segment the first ``limit`` samples (all if None) of ``dataset`` in its sorted order and score them.

    ``segment(image, dataset.info.prompt_names)`` is called per image; its label map must have the
    image's (H, W) size. Only the time spent inside ``segment`` is counted in ``seconds_per_image``.

    Args:
        segment: the segmenter (see :data:`Segmenter`).
        dataset: the split to evaluate.
        limit: evaluate only the first ``limit`` samples.
        progress: show a tqdm progress bar with ETA (on stderr).
        save_predictions: folder to write each prediction to, as ``<sample id>.png`` (see
            :func:`save_label_png`).

    Returns:
        :meth:`SemSegEvaluator.evaluate`'s dict plus ``"dataset"`` (name), ``"num_images"`` and
        ``"seconds_per_image"`` (mean seconds in ``segment``, None when no image was run).

    Raises:
        ValueError: a prediction whose shape differs from the label's.
        ZsSegError: malformed dataset files.
    """
    info = dataset.info
    evaluator = SemSegEvaluator(info.num_classes, info.classes, info.ignore_index, info.unseen_ids)
    samples = dataset.samples if limit is None else dataset.samples[: max(limit, 0)]
    vocabulary = list(info.prompt_names)
    seconds = 0.0
    bar = tqdm(samples, desc=f"eval {info.name}", unit="img", disable=not progress, dynamic_ncols=True)
    for sample in bar:
        image = dataset.load_image(sample)
        gt = dataset.load_label(sample)
        start = time.perf_counter()
        pred = np.asarray(segment(image, vocabulary))
        seconds += time.perf_counter() - start
        if pred.shape != gt.shape:
            raise ValueError(f"segmenter returned shape {pred.shape} for {sample.id}, but its label is {gt.shape}")
        evaluator.process(pred, gt)
        if save_predictions is not None:
            save_label_png(pred, Path(save_predictions) / f"{sample.id}.png", info.num_classes)
    bar.close()
    results = evaluator.evaluate()
    results["dataset"] = info.name
    results["num_images"] = len(samples)
    results["seconds_per_image"] = seconds / len(samples) if samples else None
    return results

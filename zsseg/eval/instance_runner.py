"""Run an instance segmenter over a split with instance ground truth; score mask AP or PQ; format the report."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from zsseg.data.instances import InstanceDataset
from zsseg.eval.instances import InstanceAPEvaluator
from zsseg.eval.panoptic import PanopticEvaluator
from zsseg.instances import Instances

InstanceSegmenter = Callable[[np.ndarray, Sequence[str]], Instances]
"""``segment(image uint8 (H, W, 3) RGB, vocabulary) -> Instances`` at the image's size."""

TASKS = ("semantic", "instances", "panoptic")


def make_evaluator(task: str, dataset: InstanceDataset) -> InstanceAPEvaluator | PanopticEvaluator:
    """The evaluator of ``task`` (``instances``: mask AP, ``panoptic``: PQ) for ``dataset``'s classes."""
    if task == "instances":
        return InstanceAPEvaluator(dataset.info.classes, dataset.thing_ids)
    if task == "panoptic":
        return PanopticEvaluator(dataset.info.classes, dataset.thing)
    raise ValueError(f"unknown instance task {task!r}; choose instances or panoptic")


def evaluate_instances(
    segment: InstanceSegmenter,
    dataset: InstanceDataset,
    task: str,
    *,
    limit: int | None = None,
    progress: bool = True,
    save_predictions: Path | None = None,
) -> dict[str, Any]:
    """Segment the first ``limit`` samples (all if None) of ``dataset`` and score them for ``task``.

    ``segment(image, dataset.info.prompt_names)`` is called per image; only the time inside it counts in
    ``seconds_per_image``. With ``save_predictions``, each prediction is written as ``<id>.instances.json``
    (:meth:`Instances.to_json`).

    Returns:
        The evaluator's dict plus ``"task"``, ``"dataset"``, ``"num_images"``, ``"seconds_per_image"``.

    Raises:
        ValueError: a prediction at another size than its ground truth.
        ZsSegError: malformed dataset files.
    """
    evaluator = make_evaluator(task, dataset)
    samples = dataset.samples if limit is None else dataset.samples[: max(limit, 0)]
    vocabulary = list(dataset.info.prompt_names)
    seconds = 0.0
    bar = tqdm(samples, desc=f"eval {dataset.info.name} {task}", unit="img", disable=not progress, dynamic_ncols=True)
    for sample in bar:
        image = dataset.load_image(sample)
        target = dataset.load_target(sample)
        start = time.perf_counter()
        pred = segment(image, vocabulary)
        seconds += time.perf_counter() - start
        if pred.image_size != target.image_size:
            got, want = pred.image_size, target.image_size
            raise ValueError(f"segmenter returned {got} for {sample.id}, its ground truth is {want}")
        evaluator.process(pred, target)
        if save_predictions is not None:
            path = Path(save_predictions) / f"{sample.id}.instances.json"
            path.write_text(json.dumps(pred.to_json(image=str(sample.image_path))) + "\n")
    bar.close()
    results = evaluator.evaluate()
    results.update({"task": task, "dataset": dataset.info.name, "num_images": len(samples),
                    "seconds_per_image": seconds / len(samples) if samples else None})  # fmt: skip
    return results


AP_KEYS = ("dataset", "num_images", "AP", "AP50", "AP75", "APs", "APm", "APl", "num_gt_instances",
           "num_predictions", "seconds_per_image")  # fmt: skip
PQ_KEYS = ("dataset", "num_images", "PQ", "SQ", "RQ", "PQ_th", "SQ_th", "RQ_th", "PQ_st", "SQ_st", "RQ_st",
           "seconds_per_image")  # fmt: skip


def _fmt(value: object, key: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if key == "seconds_per_image" else f"{value:.2f}"
    return str(value)


def format_instance_markdown(results: dict[str, Any]) -> str:
    """Markdown report of :func:`evaluate_instances`' results: a summary row, then one row per class."""
    panoptic = results.get("task") == "panoptic" or "PQ" in results
    keys = [k for k in (PQ_KEYS if panoptic else AP_KEYS) if k in results]
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys),
             "| " + " | ".join(_fmt(results[k], k) for k in keys) + " |", ""]  # fmt: skip
    if panoptic:
        lines += ["| class | thing | PQ | SQ | RQ | TP | FP | FN |", "|---|---|---|---|---|---|---|---|"]
        for name, c in results.get("per_class", {}).items():
            lines.append(f"| {name.replace('|', '/')} | {'yes' if c['isthing'] else 'no'} | {_fmt(c['PQ'])} | "
                         f"{_fmt(c['SQ'])} | {_fmt(c['RQ'])} | {c['TP']} | {c['FP']} | {c['FN']} |")  # fmt: skip
    else:
        lines += ["| class | AP |", "|---|---|"]
        lines += [f"| {n.replace('|', '/')} | {_fmt(v)} |" for n, v in results.get("AP_per_class", {}).items()]
    return "\n".join(lines) + "\n"

"""Reading the checkpoints of ``zsseg train`` into inference classifiers (``zsseg/train/checkpoint.py`` writes
them): a safetensors file of the trained tensors plus a JSON file beside it.

``NAME.safetensors`` holds the trained tensors only (strategy 2: ``model.tower.*`` and ``model.no_object``;
prompts: ``prompt.ctx``) as of the last epoch (for ``--resume``), the same under ``best.`` for the epoch with
the best held-out loss (what inference loads), and, in its metadata under ``"zsseg"``, the same JSON as
``NAME.json``: format, ``what`` (``strategy2`` or ``prompts``), ``backend`` (model string), ``vocabulary``
(trained class names), ``seen`` (names treated as seen by the ensemble, or null), ``dataset``, ``split``,
``lambda``, ``epoch`` (epochs completed), ``best_epoch``, ``temperature`` (strategy 2's calibrated one),
``options`` (training options), ``history`` (per-epoch loss, accuracy, held-out loss, seconds) and, after
self-training, ``pseudo`` (where its pseudo labels came from and how many regions got each class).
The safetensors metadata is authoritative; the JSON is for people and tools. ``NAME.optim.safetensors``
holds the optimizer state for ``--resume``. Every file is written to a temporary name and moved into place
(``os.replace``), so an interrupted save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypedDict, cast

import torch

from zsseg.classify.ensemble import EnsembleClassifier, check_lambda
from zsseg.classify.learned_prompts import PromptLearnedClassifier
from zsseg.classify.region import RegionClassifier
from zsseg.classify.strategy2 import Strategy2Classifier, build_strategy2
from zsseg.errors import ZsSegError
from zsseg.models import build_prompt_learner
from zsseg.models.base import VisionLanguageBackend
from zsseg.prompts import Templates

FORMAT = "zsseg-train/1"
WHATS: tuple[str, ...] = ("strategy2", "prompts")


#: Where self-training's pseudo labels came from: the previous round's checkpoint, the knobs, the regions per class.
PseudoRecord = TypedDict(
    "PseudoRecord", {"from": str, "threshold": float, "fraction": float, "regions": dict[str, int]}
)  # (the functional form: ``from`` and ``lambda`` are keywords)

_Meta = TypedDict(
    "_Meta",
    {
        "format": str,
        "what": str,
        "backend": str,
        "vocabulary": list[str],
        "seen": list[str] | None,
        "dataset": str,
        "split": str,
        "lambda": float,
        "options": dict[str, Any],
        "epoch": int,
        "history": list[dict[str, float]],
        "best_epoch": int,
        "temperature": float,
    },
)


class CheckpointMeta(_Meta, total=False):
    """A checkpoint's metadata; the module docstring says what each key holds. ``pseudo`` only after
    self-training."""

    pseudo: PseudoRecord


def json_path(path: Path) -> Path:
    """``x.safetensors`` -> ``x.json``."""
    return Path(path).with_suffix(".json")


def read_checkpoint(path: str | Path, tensors: bool = True) -> tuple[dict[str, torch.Tensor], CheckpointMeta]:
    """Tensors and metadata of a checkpoint (``tensors=False``: the metadata only, no tensor is read).

    Raises:
        ZsSegError: a missing, unreadable or foreign file.
    """
    from safetensors import safe_open

    path = Path(path).expanduser()
    if not path.is_file():
        raise ZsSegError(f"checkpoint {path} not found: pass the .safetensors file written by zsseg train --out")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("zsseg", "null"))
            loaded = {k: f.get_tensor(k) for k in f.keys()} if tensors else {}  # noqa: SIM118 (not a dict)
    except Exception as exc:  # safetensors raises its own SafetensorError on a corrupt file
        raise ZsSegError(f"cannot read checkpoint {path} ({exc}): retrain it with zsseg train") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("what") not in WHATS:
        raise ZsSegError(f"{path} is not a zsseg train checkpoint: pass a file written by zsseg train --out")
    return loaded, cast(CheckpointMeta, meta)


def _check(meta: CheckpointMeta, path: Path, backend: VisionLanguageBackend, what: str) -> None:
    if meta["what"] != what:
        flag = "--prompts" if meta["what"] == "prompts" else "--classifier"
        raise ZsSegError(f"{path} holds a {meta['what']} checkpoint, not {what}: pass it as {flag}")
    if meta["backend"] != backend.name:
        raise ZsSegError(f"{path} was trained with --model {meta['backend']}, not {backend.name}: pass that model")


def checkpoint_model(path: str | Path) -> str:
    """The model string (``--model``) a checkpoint was trained with."""
    return str(read_checkpoint(path, tensors=False)[1]["backend"])


def model_for(model: str, *checkpoints: str | Path | None) -> str:
    """``model``, except that ``auto`` becomes the model the first given checkpoint was trained with."""
    given = [c for c in checkpoints if c is not None]
    return checkpoint_model(given[0]) if model == "auto" and given else model


def load_strategy2(
    path: str | Path, backend: VisionLanguageBackend, batch_size: int = 32
) -> tuple[Strategy2Classifier, CheckpointMeta]:
    """A :class:`~zsseg.classify.strategy2.Strategy2Classifier` and the checkpoint's metadata."""
    tensors, meta = read_checkpoint(path)
    _check(meta, Path(path), backend, "strategy2")
    opts = meta["options"]
    model = build_strategy2(backend, opts["train"], int(opts["last_blocks"]), float(opts["logit_scale"]))
    prefix = "best.model." if any(k.startswith("best.model.") for k in tensors) else "model."
    state = {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ZsSegError(f"{path} does not fit {backend.name} ({exc}): retrain it with zsseg train") from exc
    features = opts.get("features", "crops")
    classifier = Strategy2Classifier(
        backend, model, templates=opts["templates"], batch_size=batch_size, features=features,
        dense_size=opts.get("dense_size"), temperature=float(meta.get("temperature", 1.0)),
    )  # fmt: skip
    return classifier, meta


def load_classifier_checkpoint(
    path: str | Path,
    backend: VisionLanguageBackend,
    *,
    strategy1: RegionClassifier | None = None,
    ensemble: bool = True,
    lambda_: float | None = None,
    batch_size: int = 32,
) -> RegionClassifier:
    """The strategy-2 classifier of a ``zsseg train --what strategy2`` checkpoint, ensembled with strategy 1.

    Args:
        path: the checkpoint's ``.safetensors`` file.
        backend: the backend it was trained with (``checkpoint_model(path)`` names it).
        strategy1: the frozen classifier to ensemble with; default a :class:`RegionClassifier` with the
            checkpoint's templates (pass a prompt-learned one to combine both).
        ensemble: False returns strategy 2 alone.
        lambda_: ensemble exponent; None uses the one stored in the checkpoint (``--lambda``).
        batch_size: crops per forward pass.

    Returns:
        an :class:`~zsseg.classify.ensemble.EnsembleClassifier` (or a ``Strategy2Classifier``); both have
        ``classify(image, masks, classes) -> float32 (N, K)`` and ``backend``.
    """
    s2, meta = load_strategy2(path, backend, batch_size)
    if not ensemble:
        return s2
    if strategy1 is None:
        strategy1 = RegionClassifier(backend, templates=meta["options"]["templates"], batch_size=batch_size)
    lam = check_lambda(float(meta["lambda"]) if lambda_ is None else float(lambda_))
    return EnsembleClassifier(strategy1, s2, ensemble_seen(meta), lam)


def ensemble_seen(meta: CheckpointMeta) -> list[str] | None:
    """The classes the ensemble weighs as seen: the checkpoint's ``seen`` plus, after self-training, the
    classes that got pseudo-labelled regions.

    Strategy 2 has learnt those from its own pseudo labels, and weighing them like the seen classes removes the
    ensemble's bias between the two groups: on held-out VOC train images this lifted unseen mIoU by 9.1 over the
    self-trained ensemble that weighs them as unseen (``docs/results.md`` §5).
    """
    seen = meta.get("seen")
    if seen is None:
        return None
    record = meta.get("pseudo")
    pseudo = [name for name, n in record["regions"].items() if n > 0] if record else []
    return [*seen, *(name for name in pseudo if name not in seen)]


def load_prompts_checkpoint(
    path: str | Path, backend: VisionLanguageBackend, batch_size: int = 32, **region_options: Any
) -> PromptLearnedClassifier:
    """The :class:`~zsseg.classify.learned_prompts.PromptLearnedClassifier` of a ``zsseg train --what prompts``
    checkpoint (``region_options``: ``regions``, ``dense_size`` of :class:`~zsseg.classify.RegionClassifier`)."""
    tensors, meta = read_checkpoint(path)
    _check(meta, Path(path), backend, "prompts")
    ctx = tensors.get("best.prompt.ctx", tensors.get("prompt.ctx"))
    if ctx is None or ctx.ndim != 2:
        raise ZsSegError(f"{path} has no context vectors: retrain it with zsseg train --what prompts")
    learner = build_prompt_learner(backend, int(ctx.shape[0]), meta["options"]["suffix"])
    if learner.ctx.shape != ctx.shape:
        raise ZsSegError(
            f"{path} has context vectors {tuple(ctx.shape)}, {backend.name} needs width "
            f"{learner.ctx.shape[1]}: retrain it with zsseg train --what prompts"
        )
    with torch.no_grad():
        learner.ctx.copy_(ctx)
    return PromptLearnedClassifier(backend, learner, batch_size=batch_size, **region_options)


def build_classifier(
    backend: VisionLanguageBackend,
    templates: Templates = "vild",
    batch_size: int = 32,
    classifier: str | Path | None = None,
    prompts: str | Path | None = None,
    lambda_: float | None = None,
    regions: str = "crops",
    dense_size: int | None = None,
) -> RegionClassifier:
    """The pipeline's region classifier: strategy 1 (templates, or learned ``prompts``; its region features in
    mode ``regions``), ensembled with the strategy-2 ``classifier`` checkpoint when given (strategy 2 encodes
    crops). With neither checkpoint: ``RegionClassifier(backend, ...)``.
    """
    region_options: dict[str, Any] = {"regions": regions, "dense_size": dense_size}
    strategy1 = (
        load_prompts_checkpoint(prompts, backend, batch_size, **region_options)
        if prompts is not None
        else RegionClassifier(backend, templates=templates, batch_size=batch_size, **region_options)
    )
    if classifier is None:
        return strategy1
    return load_classifier_checkpoint(classifier, backend, strategy1=strategy1, lambda_=lambda_, batch_size=batch_size)

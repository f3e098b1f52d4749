"""The optimisation pieces of :mod:`zsseg.train.trainer`: soft-target cross-entropy, one epoch, the held-out
loss that early stopping watches, and temperature calibration.

Targets are soft: float (B, C) rows summing to 1 (one-hot for ground-truth segments, pixel shares for
proposals, see :mod:`zsseg.train.bank`). Column weights ``w`` (e.g. a smaller weight for "no object", as
MaskFormer's ``eos_coef``) give the loss ``sum_i sum_c w_c t_ic (-log p_ic) / sum_i sum_c w_c t_ic``.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch
from tqdm import tqdm


class EpochConfig(Protocol):
    """What :func:`run_epoch` reads of a :class:`~zsseg.train.config.TrainConfig`."""

    @property
    def epochs(self) -> int | None: ...

    @property
    def batch_size(self) -> int | None: ...

    @property
    def seed(self) -> int: ...


def soft_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Weighted cross-entropy of float (B, C) ``logits`` against soft float (B, C) ``targets`` (a scalar).

    ``weights``: float (C,) per-column weights (None: all 1). Rows whose weighted target mass is 0 add nothing.
    """
    t = targets.to(logits.device, logits.dtype)
    if weights is not None:
        t = t * weights.to(t.device, t.dtype)
    return -(t * logits.log_softmax(dim=-1)).sum() / t.sum().clamp_min(1e-12)


def run_epoch(
    step: Callable[[torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    feats: torch.Tensor,
    targets: torch.Tensor,
    cfg: EpochConfig,
    epoch: int,
    progress: bool,
    weights: torch.Tensor | None = None,
) -> tuple[float, float]:
    """One epoch over ``feats`` (M, ...) with soft ``targets`` (M, C): cosine learning-rate decay per step
    (from each group's ``base_lr``), shuffling seeded by (seed, epoch). ``step(x)`` returns logits (B, C).

    Returns:
        (mean loss, accuracy of the argmax against the targets' argmax).
    """
    assert cfg.batch_size is not None and cfg.epochs is not None
    n = len(targets)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch))
    per_epoch = math.ceil(n / cfg.batch_size)
    total_steps = per_epoch * cfg.epochs
    loss_sum, correct, seen = 0.0, 0, 0
    bar = tqdm(
        range(per_epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="step", disable=not progress,
        dynamic_ncols=True, file=sys.stderr, leave=False,
    )  # fmt: skip
    for i in bar:
        factor = 0.5 * (1.0 + math.cos(math.pi * (epoch * per_epoch + i) / total_steps))
        for group in optimizer.param_groups:
            group["lr"] = group["base_lr"] * factor
        idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
        t = targets[idx]
        logits = step(feats[idx])
        loss = soft_cross_entropy(logits, t, weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += float(loss.detach()) * len(idx)
        correct += int((logits.argmax(dim=-1).cpu() == t.argmax(dim=-1)).sum())
        seen += len(idx)
        bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.1%}")
    bar.close()
    return loss_sum / max(seen, 1), correct / max(seen, 1)


@torch.no_grad()
def batched_logits(
    logits_of: Callable[[torch.Tensor], torch.Tensor], feats: torch.Tensor, batch_size: int = 1024
) -> torch.Tensor:
    """``logits_of`` over all of ``feats`` (M, ...) in batches, without gradients: float32 (M, C) on the CPU."""
    return torch.cat([logits_of(feats[i : i + batch_size]).float().cpu() for i in range(0, len(feats), batch_size)])


@torch.no_grad()
def held_out_loss(
    logits_of: Callable[[torch.Tensor], torch.Tensor],
    feats: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor | None = None,
    batch_size: int = 1024,
) -> float:
    """:func:`soft_cross_entropy` over all of ``feats`` / ``targets`` (in batches), as a float."""
    if len(targets) == 0:
        return float("nan")
    return float(soft_cross_entropy(batched_logits(logits_of, feats, batch_size), targets, weights))


@torch.no_grad()
def fit_temperature(logits: torch.Tensor, targets: torch.Tensor, lo: float = 0.25, hi: float = 16.0) -> float:
    """Temperature scaling (Guo et al., ICML 2017): the T in [lo, hi] minimising the cross-entropy of
    ``logits / T`` against ``targets`` (held-out regions), by a log-spaced grid refined once around the best.

    Args:
        logits: float (M, C). targets: float (M, C) soft targets.

    Returns:
        T (1.0 when there is nothing to fit).
    """
    if len(targets) == 0 or float(targets.sum()) == 0:
        return 1.0
    logits, targets = logits.float(), targets.float()

    def loss(t: float) -> float:
        return float(soft_cross_entropy(logits / t, targets))

    grid = np.exp(np.linspace(math.log(lo), math.log(hi), 41))
    best = min(grid, key=loss)
    step = (math.log(hi) - math.log(lo)) / 40
    fine = np.exp(np.linspace(math.log(best) - step, math.log(best) + step, 21))
    return float(min(fine, key=loss))

"""Losses for partially labelled multi-label targets.

All losses take probabilities ``p`` (B, C) (not logits), targets ``y`` (B, C) in
[0, 1] (hard 0/1, or soft after mixup) and a label mask (B, C) (bool or 0/1 float;
True = this (clip, class) entry is labelled). Unlabelled entries contribute
nothing: their ``y`` may be anything, even NaN. The result is the mean over the
labelled entries, ``sum(mask * loss) / max(sum(mask), 1)``, so a batch without any
label gives 0 with zero gradient.
"""
from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

if TYPE_CHECKING:
    from instrec.training.config import TrainConfig


def _masked_mean(loss: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``loss`` over entries where ``mask`` is true; 0 if there are none."""
    keep = mask.to(loss.dtype)
    return (loss * keep).sum() / keep.sum().clamp(min=1.0)


def _prepare(p: torch.Tensor, y: torch.Tensor, mask: torch.Tensor,
             eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Check shapes, clip p into [eps, 1-eps] and zero the targets of unlabelled entries.

    Zeroing ``y`` (rather than only masking the loss) keeps NaN or inf targets of
    unlabelled entries from leaking NaN into the gradient through ``0 * nan``.
    """
    if p.shape != y.shape or p.shape != mask.shape:
        raise ValueError(
            f"p, y and mask must have the same shape, got {tuple(p.shape)}, "
            f"{tuple(y.shape)} and {tuple(mask.shape)}"
        )
    labelled = mask.bool()
    y = torch.where(labelled, y, torch.zeros_like(y))
    return p.clamp(eps, 1.0 - eps), y, labelled


def _weighted(pos: torch.Tensor, neg: torch.Tensor, pos_weight: torch.Tensor | None,
              neg_weight: torch.Tensor | None) -> torch.Tensor:
    """``pos * pos_weight + neg * neg_weight`` with (C,) weights broadcast over the batch."""
    if pos_weight is not None:
        pos = pos * pos_weight.to(pos.device, pos.dtype)
    if neg_weight is not None:
        neg = neg * neg_weight.to(neg.device, neg.dtype)
    return pos + neg


def masked_focal_loss(p: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, alpha: float = 0.75,
                      gamma: float = 2.0, eps: float = 1e-7, pos_weight: torch.Tensor | None = None,
                      neg_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Focal loss (Lin et al. 2017) averaged over labelled entries; scalar tensor.

    Per entry: ``-[alpha * y * (1-p)^gamma * log p + (1-alpha) * (1-y) * p^gamma * log(1-p)]``,
    which for y in {0, 1} is ``-alpha_t (1-p_t)^gamma log p_t`` with alpha_t = alpha for
    positives and 1-alpha for negatives, and interpolates linearly for soft targets.
    ``p`` is clipped into [eps, 1-eps] so the logs stay finite.
    """
    p, y, labelled = _prepare(p, y, mask, eps)
    pos = alpha * y * (1.0 - p).pow(gamma) * torch.log(p)
    neg = (1.0 - alpha) * (1.0 - y) * p.pow(gamma) * torch.log1p(-p)
    return _masked_mean(-_weighted(pos, neg, pos_weight, neg_weight), labelled)


def masked_bce(p: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, eps: float = 1e-7,
               pos_weight: torch.Tensor | None = None, neg_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Binary cross-entropy ``-[y log p + (1-y) log(1-p)]`` averaged over labelled entries."""
    p, y, labelled = _prepare(p, y, mask, eps)
    loss = -_weighted(y * torch.log(p), (1.0 - y) * torch.log1p(-p), pos_weight, neg_weight)
    return _masked_mean(loss, labelled)


def label_balance_weights(targets: np.ndarray, mask: np.ndarray, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """(C,) float32 weights of the positive and the negative term of each class.

    targets (N, C) in [0, 1], mask (N, C) bool: the training clips' partial labels. An entry
    counts as positive when ``targets >= 0.5``. With ``n[c, s]`` the labelled entries of class
    ``c`` and polarity ``s`` and ``n`` their total, the raw weight is ``(n / (2 C n[c, s])) ** beta``:
    with ``beta = 1`` every (class, polarity) cell carries the same total weight, so rarely
    labelled classes and the rarer answer of each class count as much as the common ones;
    ``beta = 0`` gives all ones. Weights are then scaled so that their mean over the labelled
    entries is 1 (the loss keeps its scale and learning rate). A cell without entries gets
    weight 1 before scaling (it never occurs in training)."""
    mask = np.asarray(mask, dtype=bool)
    positive = np.asarray(targets) >= 0.5
    counts = np.stack([(mask & positive).sum(axis=0), (mask & ~positive).sum(axis=0)]).astype(np.float64)  # (2, C)
    total = counts.sum()
    if beta == 0 or total == 0:
        ones = np.ones(counts.shape[1], dtype=np.float32)
        return ones, ones.copy()
    raw = np.where(counts > 0, (total / (counts.size * np.maximum(counts, 1))) ** beta, 1.0)
    raw /= (raw * counts).sum() / total
    return raw[0].astype(np.float32), raw[1].astype(np.float32)


def loss_function(cfg: "TrainConfig", targets: np.ndarray | None = None,
                  mask: np.ndarray | None = None) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """The loss a run trains on: masked BCE, or masked focal loss with the run's alpha and gamma;
    with ``cfg.label_balance > 0``, weighted per class from the training labels ``targets`` and
    ``mask`` (N, C) (:func:`label_balance_weights`)."""
    weights = {}
    if cfg.label_balance > 0:
        if targets is None or mask is None:
            raise ValueError("label_balance needs the training targets and mask")
        pos_w, neg_w = label_balance_weights(targets, mask, cfg.label_balance)
        weights = {"pos_weight": torch.from_numpy(pos_w), "neg_weight": torch.from_numpy(neg_w)}
    if cfg.loss == "bce":
        return partial(masked_bce, **weights) if weights else masked_bce
    return partial(masked_focal_loss, alpha=cfg.focal_alpha, gamma=cfg.focal_gamma, **weights)

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


def masked_focal_loss(p: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, alpha: float = 0.75,
                      gamma: float = 2.0, eps: float = 1e-7) -> torch.Tensor:
    """Focal loss (Lin et al. 2017) averaged over labelled entries; scalar tensor.

    Per entry: ``-[alpha * y * (1-p)^gamma * log p + (1-alpha) * (1-y) * p^gamma * log(1-p)]``,
    which for y in {0, 1} is ``-alpha_t (1-p_t)^gamma log p_t`` with alpha_t = alpha for
    positives and 1-alpha for negatives, and interpolates linearly for soft targets.
    ``p`` is clipped into [eps, 1-eps] so the logs stay finite.
    """
    p, y, labelled = _prepare(p, y, mask, eps)
    pos = alpha * y * (1.0 - p).pow(gamma) * torch.log(p)
    neg = (1.0 - alpha) * (1.0 - y) * p.pow(gamma) * torch.log1p(-p)
    return _masked_mean(-(pos + neg), labelled)


def masked_bce(p: torch.Tensor, y: torch.Tensor, mask: torch.Tensor,
               eps: float = 1e-7) -> torch.Tensor:
    """Binary cross-entropy ``-[y log p + (1-y) log(1-p)]`` averaged over labelled entries."""
    p, y, labelled = _prepare(p, y, mask, eps)
    loss = -(y * torch.log(p) + (1.0 - y) * torch.log1p(-p))
    return _masked_mean(loss, labelled)


def loss_function(cfg: "TrainConfig") -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """The loss a run trains on: masked BCE, or masked focal loss with the run's alpha and gamma."""
    if cfg.loss == "bce":
        return masked_bce
    return partial(masked_focal_loss, alpha=cfg.focal_alpha, gamma=cfg.focal_gamma)

"""Batch augmentations for partially labelled clips: mixup and clip concatenation.

Conventions: x (B, T, F) features, y (B, C) targets in [0, 1] (soft after mixup),
mask (B, C) bool (True = labelled). Random draws are made by the caller with a
``torch.Generator`` (helpers below) so that augmentation is reproducible.
"""
from __future__ import annotations

from typing import Sequence

import torch


def sample_mixup_lambda(generator: torch.Generator, batch: int, alpha: float) -> torch.Tensor:
    """(batch,) float32 mixing weights drawn from Beta(alpha, alpha) with ``generator``.

    Beta(a, a) = G1 / (G1 + G2) for independent Gamma(a) draws, made in float64 by torch's
    native gamma sampler (about 100x faster than a rejection loop written in Python). Small
    draws are frequent when a is small, but a double does not underflow before a < 0.05;
    should both draws underflow to 0, lambda is 0.5.
    """
    if alpha <= 0:
        raise ValueError(f"mixup alpha must be > 0, got {alpha}")
    g1, g2 = torch._standard_gamma(torch.full((2, batch), float(alpha), dtype=torch.float64), generator=generator)
    total = g1 + g2
    lam = torch.where(total > 0, g1 / total, torch.full_like(total, 0.5))
    return lam.float()


def sample_partners(generator: torch.Generator, batch: int, k: int = 2) -> torch.Tensor:
    """(k-1, batch) int64 random permutations of the batch, one per extra source clip."""
    return torch.stack([torch.randperm(batch, generator=generator) for _ in range(k - 1)]) \
        if k > 1 else torch.empty(0, batch, dtype=torch.int64)


def mixup(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, lam: torch.Tensor | float,
          perm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mix each clip with partner ``perm[b]``: ``lam * a + (1 - lam) * partner``.

    lam: scalar or (B,) weights in [0, 1]; perm: (B,) partner indices.
    Returns x_mix (B, T, F), y_mix (B, C) soft targets and mask_mix (B, C) bool.
    A mixed entry is labelled only where BOTH sources are labelled: with one label
    unknown, the mixed target lam*y_a + (1-lam)*y_b is unknown too (it could be
    anywhere between the two possible values), so training on it would teach a
    made-up target. y_mix is 0 at unlabelled entries.
    """
    lam = torch.as_tensor(lam, dtype=x.dtype, device=x.device)
    if lam.dim() == 0:
        lam = lam.expand(x.shape[0])
    if lam.shape != (x.shape[0],) or perm.shape != (x.shape[0],):
        raise ValueError(f"lam and perm must be scalar/(B,) and (B,) with B = {x.shape[0]}, "
                         f"got {tuple(lam.shape)} and {tuple(perm.shape)}")
    mask = mask.bool()
    # index_select rather than x[perm]: the same copy, several times faster on CPU.
    mask_mix = mask & mask.index_select(0, perm)
    lx = lam.view(-1, 1, 1)
    x_mix = lx * x + (1 - lx) * x.index_select(0, perm)
    ly = lam.view(-1, 1).to(y.dtype)
    y_mix = ly * y + (1 - ly) * y.index_select(0, perm)
    y_mix = torch.where(mask_mix, y_mix, torch.zeros_like(y_mix))
    return x_mix, y_mix, mask_mix


def concat(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor,
           perms: torch.Tensor | Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Join each clip with k-1 partner clips along time into one (B, k*T, F) sequence.

    perms: (k-1, B) tensor or a sequence of k-1 (B,) index tensors; source 0 is the
    clip itself, source j is ``x[perms[j-1]]`` (appended in that order).
    Labels (element-wise OR over the k sources, partial-label aware): positive if ANY
    source is a known positive (labelled and y >= 0.5, so soft mixup targets count as
    positive from 0.5); negative only if ALL sources are known negatives; otherwise
    unknown. Returns x_cat (B, k*T, F), y_cat (B, C) in {0, 1}, mask_cat (B, C) bool.
    """
    partners = [p.to(x.device) for p in perms]
    mask = mask.bool()
    known_pos = mask & (y >= 0.5)
    known_neg = mask & (y < 0.5)
    any_pos, all_neg = known_pos, known_neg
    for p in partners:
        any_pos = any_pos | known_pos.index_select(0, p)
        all_neg = all_neg & known_neg.index_select(0, p)
    x_cat = torch.cat([x] + [x.index_select(0, p) for p in partners], dim=1)
    return x_cat, any_pos.to(y.dtype), any_pos | all_neg

"""Batch augmentations for partially labelled clips: mixup and clip concatenation.

Conventions: x (B, T, F) features, y (B, C) targets in [0, 1] (soft after mixup),
mask (B, C) bool (True = labelled). Random draws are made by the caller with a
``torch.Generator`` (helpers below) so that augmentation is reproducible.
"""
from __future__ import annotations

from typing import Sequence

import torch

from instrec.data.label_rules import MIXUP_LABEL_RULES


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


def mixup_labels(y: torch.Tensor, mask: torch.Tensor, lam: torch.Tensor, perm: torch.Tensor,
                 rule: str = "both") -> tuple[torch.Tensor, torch.Tensor]:
    """Targets (B, C) and mask (B, C) of clips mixed as ``lam * a + (1 - lam) * a[perm]``.

    y (B, C) targets in [0, 1]; mask (B, C) bool; lam (B,) weights of the clip itself. With
    both entries labelled the mixed target is ``lam * y_a + (1 - lam) * y_b`` under every rule
    but ``presence``. The rules differ where one entry, or both, are unknown:

    * ``both``: unknown (labelled only where both sources are). Safe, but with about 2 of 20
      instruments labelled per clip it keeps about a tenth of the labelled entries.
    * ``known``: an unknown source's relevance can be anything in [0, 1], so the mixed target
      lies in ``[k, k + w_u]`` (k: the known sources' weighted targets, w_u: the unknown
      source's weight). The entry stays labelled when that whole interval falls on one side of
      the 0.5 decision, with the interval's end nearest the decision as a cautious target:
      a known source that dominates the mix (weight >= 0.5, as most mixes are with lambda ~
      Beta(0.2, 0.2)) keeps its answer; a faint one does not.
    * ``presence``: the OR of concatenation. Positive (target: the largest known positive
      target) when either source is a known positive, whatever its weight; negative (0) when
      both are known negatives; unknown otherwise.
    * ``naive``: unknown entries count as negatives (target 0) and the anchor clip's mask is
      used alone, as the public OpenMIC code of PaSST and EfficientAT does. A documented
      contrast: it trains unknowns as absences.

    Targets are 0 at unlabelled entries."""
    if rule not in MIXUP_LABEL_RULES:
        raise ValueError(f"unknown mixup label rule {rule!r}; choose one of {', '.join(MIXUP_LABEL_RULES)}")
    mask = mask.bool()
    mask_b = mask.index_select(0, perm)
    y_b = y.index_select(0, perm)
    ly = lam.view(-1, 1).to(y.dtype)
    if rule == "naive":
        y_mix = ly * torch.where(mask, y, 0.0) + (1 - ly) * torch.where(mask_b, y_b, 0.0)
        return torch.where(mask, y_mix, torch.zeros_like(y_mix)), mask.clone()
    if rule == "presence":
        pos_a, pos_b = mask & (y >= 0.5), mask_b & (y_b >= 0.5)
        both_neg = mask & mask_b & ~pos_a & ~pos_b
        target = torch.maximum(torch.where(pos_a, y, 0.0), torch.where(pos_b, y_b, 0.0))
        return target, pos_a | pos_b | both_neg
    known = torch.where(mask, ly * y, 0.0) + torch.where(mask_b, (1 - ly) * y_b, 0.0)
    if rule == "both":
        mask_mix = mask & mask_b
        return torch.where(mask_mix, known, torch.zeros_like(known)), mask_mix
    unknown_weight = torch.where(mask, 0.0, ly) + torch.where(mask_b, 0.0, 1 - ly)
    high = known + unknown_weight
    positive, negative = known >= 0.5, high < 0.5
    mask_mix = (mask | mask_b) & (positive | negative)
    target = torch.where(positive, known, high)
    return torch.where(mask_mix, target, torch.zeros_like(target)), mask_mix


def mixup(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, lam: torch.Tensor | float,
          perm: torch.Tensor, rule: str = "both") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mix each clip with partner ``perm[b]``: ``lam * a + (1 - lam) * partner``.

    lam: scalar or (B,) weights in [0, 1]; perm: (B,) partner indices; ``rule``: how mixed
    entries are labelled (:func:`mixup_labels`; ``both``, the default, labels an entry only
    where both sources are labelled).
    Returns x_mix (B, T, F), y_mix (B, C) soft targets and mask_mix (B, C) bool.
    """
    lam = torch.as_tensor(lam, dtype=x.dtype, device=x.device)
    if lam.dim() == 0:
        lam = lam.expand(x.shape[0])
    if lam.shape != (x.shape[0],) or perm.shape != (x.shape[0],):
        raise ValueError(f"lam and perm must be scalar/(B,) and (B,) with B = {x.shape[0]}, "
                         f"got {tuple(lam.shape)} and {tuple(perm.shape)}")
    lx = lam.view(-1, 1, 1)
    # index_select rather than x[perm]: the same copy, several times faster on CPU.
    x_mix = lx * x + (1 - lx) * x.index_select(0, perm)
    y_mix, mask_mix = mixup_labels(y, mask, lam, perm, rule)
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

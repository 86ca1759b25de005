"""Training batches: rows gathered from the training tensors, then augmented."""
from __future__ import annotations

import torch

from instrec.data import augment
from instrec.training.config import TrainConfig


def gather_rows(rows: torch.Tensor, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Rows ``rows`` (1-D int64 tensor) of each tensor, e.g. a batch of (X, Y, M).

    ``index_select`` makes the same copy as ``t[rows]``, several times faster on CPU."""
    return tuple(t.index_select(0, rows) for t in tensors)


def augment_batch(x: torch.Tensor, y: torch.Tensor, m: torch.Tensor, cfg: TrainConfig,
                  generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mixup, then concatenation, drawn from the run's generator so runs are reproducible.

    x (B, T, F) features, y (B, C) targets, m (B, C) label mask; concatenation doubles T."""
    # The share draw is made only when some batches stay unmixed, so runs that mix every
    # batch draw the same numbers as before the option existed.
    if cfg.mixup > 0 and (cfg.mixup_prob >= 1 or float(torch.rand((), generator=generator)) < cfg.mixup_prob):
        lam = augment.sample_mixup_lambda(generator, len(x), cfg.mixup)
        x, y, m = augment.mixup(x, y, m, lam, torch.randperm(len(x), generator=generator), cfg.mixup_labels)
    if cfg.concat > 0 and float(torch.rand((), generator=generator)) < cfg.concat:
        x, y, m = augment.concat(x, y, m, [torch.randperm(len(x), generator=generator)])
    return x, y, m

"""Per-class label-balance weights of the loss (--label-balance), against hand-computed values."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from instrec.training.config import TrainConfig
from instrec.training.losses import label_balance_weights, loss_function, masked_bce, masked_focal_loss

# Class 0: 3 positives, 1 negative; class 1: 1 positive, 3 negatives; one unlabelled entry each.
TARGETS = np.array([[1, 1], [1, 0], [1, 0], [0, 0], [1, 0]], dtype=np.float32)
MASK = np.array([[1, 1], [1, 1], [1, 1], [1, 1], [0, 0]], dtype=bool)


def test_full_balance_gives_every_cell_the_same_total_weight():
    pos, neg = label_balance_weights(TARGETS, MASK, 1.0)
    # 8 labelled entries over 4 (class, polarity) cells: 2 each; a cell of 3 gets 2/3, of 1 gets 2.
    np.testing.assert_allclose(pos, [2 / 3, 2.0], rtol=1e-6)
    np.testing.assert_allclose(neg, [2.0, 2 / 3], rtol=1e-6)


def test_half_balance_is_the_square_root_rescaled_to_mean_one():
    pos, neg = label_balance_weights(TARGETS, MASK, 0.5)
    a, b = math.sqrt(2 / 3), math.sqrt(2.0)
    scale = (3 * a + b + b + 3 * a) / 8  # mean raw weight over the 8 labelled entries
    np.testing.assert_allclose(pos, [a / scale, b / scale], rtol=1e-6)
    np.testing.assert_allclose(neg, [b / scale, a / scale], rtol=1e-6)
    assert float((pos * [3, 1]).sum() + (neg * [1, 3]).sum()) == pytest.approx(8.0)


def test_zero_balance_and_empty_cells():
    pos, neg = label_balance_weights(TARGETS, MASK, 0.0)
    assert pos.tolist() == [1.0, 1.0] and neg.tolist() == [1.0, 1.0]
    # class 1 without any negative: its negative cell gets raw weight 1 and counts for nothing
    targets = np.array([[1, 1], [0, 1]], dtype=np.float32)
    pos, neg = label_balance_weights(targets, np.ones((2, 2), bool), 1.0)
    # cells: pos (1, 2), neg (1, 0); total 4 over 4 cells -> raw pos (1, 0.5), neg (1, 1);
    # the 4 entries weigh 1 + 2 * 0.5 + 1 = 3, so every weight is scaled by 4/3
    np.testing.assert_allclose(pos, [4 / 3, 2 / 3], rtol=1e-6)
    np.testing.assert_allclose(neg, [4 / 3, 4 / 3], rtol=1e-6)


def test_weighted_losses_by_hand():
    p = torch.tensor([[0.8, 0.3]])
    y = torch.tensor([[1.0, 0.0]])
    m = torch.ones(1, 2, dtype=torch.bool)
    pw, nw = torch.tensor([2.0, 3.0]), torch.tensor([5.0, 0.5])
    expected = (-2.0 * math.log(0.8) - 0.5 * math.log(0.7)) / 2
    assert float(masked_bce(p, y, m, pos_weight=pw, neg_weight=nw)) == pytest.approx(expected, rel=1e-6)
    expected = (-2.0 * 0.75 * 0.2 ** 2 * math.log(0.8) - 0.5 * 0.25 * 0.3 ** 2 * math.log(0.7)) / 2
    got = masked_focal_loss(p, y, m, alpha=0.75, gamma=2.0, pos_weight=pw, neg_weight=nw)
    assert float(got) == pytest.approx(expected, rel=1e-6)


def test_loss_function_uses_the_training_labels():
    cfg = TrainConfig(data="d", out="o", loss="bce", label_balance=1.0)
    fn = loss_function(cfg, TARGETS, MASK)
    p = torch.tensor([[0.8, 0.8]])
    y = torch.tensor([[1.0, 1.0]])
    m = torch.ones(1, 2, dtype=torch.bool)
    expected = (-(2 / 3) * math.log(0.8) - 2.0 * math.log(0.8)) / 2
    assert float(fn(p, y, m)) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="needs the training targets"):
        loss_function(cfg)
    assert loss_function(TrainConfig(data="d", out="o", loss="bce")) is masked_bce

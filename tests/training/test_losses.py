"""Masked focal loss and masked BCE against hand-computed and independent values."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from instrec.training.losses import masked_bce, masked_focal_loss


def test_focal_loss_hand_computed_2x2() -> None:
    p = torch.tensor([[0.9, 0.2], [0.4, 0.7]])
    y = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    mask = torch.tensor([[True, True], [False, True]])
    # alpha = 0.75, gamma = 2; entry (1, 0) is unlabelled.
    e00 = -0.75 * 0.1**2 * math.log(0.9)
    e01 = -0.25 * 0.2**2 * math.log(0.8)
    e11 = -0.25 * 0.7**2 * math.log(0.3)
    expected = (e00 + e01 + e11) / 3
    assert masked_focal_loss(p, y, mask).item() == pytest.approx(expected, rel=1e-6)


def test_bce_hand_computed_2x2() -> None:
    p = torch.tensor([[0.9, 0.2], [0.4, 0.7]])
    y = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    mask = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    expected = -(math.log(0.9) + math.log(0.4) + math.log(0.3)) / 3
    assert masked_bce(p, y, mask).item() == pytest.approx(expected, rel=1e-6)


def test_focal_with_gamma0_alpha_half_is_half_bce() -> None:
    torch.manual_seed(0)
    p = torch.rand(6, 5) * 0.98 + 0.01
    y = torch.rand(6, 5)  # soft targets too
    mask = torch.rand(6, 5) < 0.6
    focal = masked_focal_loss(p, y, mask, alpha=0.5, gamma=0.0)
    torch.testing.assert_close(focal, 0.5 * masked_bce(p, y, mask))


def test_matches_torchvision_style_sigmoid_focal_formula() -> None:
    torch.manual_seed(1)
    logits = torch.randn(8, 20) * 3
    y = (torch.rand(8, 20) < 0.4).float()
    mask = torch.rand(8, 20) < 0.5
    # torchvision.ops.sigmoid_focal_loss, written out on logits.
    prob = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
    p_t = prob * y + (1 - prob) * (1 - y)
    alpha_t = 0.75 * y + 0.25 * (1 - y)
    per_entry = alpha_t * ce * (1 - p_t) ** 2
    expected = per_entry[mask].mean()
    torch.testing.assert_close(masked_focal_loss(prob, y, mask), expected, rtol=1e-5, atol=1e-7)


def test_soft_targets_interpolate_linearly() -> None:
    p = torch.tensor([[0.3, 0.8]])
    mask = torch.ones(1, 2, dtype=torch.bool)
    pos = masked_focal_loss(p, torch.ones(1, 2), mask)
    neg = masked_focal_loss(p, torch.zeros(1, 2), mask)
    mixed = masked_focal_loss(p, torch.full((1, 2), 0.3), mask)
    torch.testing.assert_close(mixed, 0.3 * pos + 0.7 * neg)


@pytest.mark.parametrize("loss_fn", [masked_focal_loss, masked_bce])
def test_unlabelled_entries_change_neither_loss_nor_gradients(loss_fn) -> None:
    torch.manual_seed(2)
    p = (torch.rand(4, 3) * 0.9 + 0.05).requires_grad_()
    y = (torch.rand(4, 3) < 0.5).float()
    mask = torch.rand(4, 3) < 0.5
    mask[0, 0] = True
    garbage = y.clone()
    garbage[~mask] = torch.tensor([float("nan"), 7.0, -3.0]).repeat(12)[: int((~mask).sum())]
    loss_a = loss_fn(p, y, mask)
    (grad_a,) = torch.autograd.grad(loss_a, p)
    loss_b = loss_fn(p, garbage, mask)
    (grad_b,) = torch.autograd.grad(loss_b, p)
    torch.testing.assert_close(loss_a, loss_b)
    torch.testing.assert_close(grad_a, grad_b)
    assert (grad_b[~mask] == 0).all() and (grad_b[mask] != 0).all()


def test_all_unlabelled_batch_gives_zero_loss_and_zero_grad() -> None:
    p = torch.full((2, 3), 0.3, requires_grad=True)
    y = torch.full((2, 3), float("nan"))
    loss = masked_focal_loss(p, y, torch.zeros(2, 3, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0.0
    assert (p.grad == 0).all()


def test_extreme_probabilities_stay_finite() -> None:
    p = torch.tensor([[0.0, 1.0]], requires_grad=True)
    loss = masked_focal_loss(p, torch.tensor([[1.0, 0.0]]), torch.ones(1, 2))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(p.grad).all()
    # p is clipped into [1e-7, 1 - 1e-7]; in float32, 1 - 1e-7 rounds to 1 - 2**-23.
    expected = -0.5 * (0.75 * math.log(1e-7) + 0.25 * math.log(2.0**-23))
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_shape_mismatch_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"same shape, got \(2, 3\), \(2, 3\) and \(3, 2\)"):
        masked_bce(torch.rand(2, 3), torch.rand(2, 3), torch.ones(3, 2))

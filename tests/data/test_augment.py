"""Mixup and concatenation on partially labelled batches."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from instrec.data.augment import concat, mixup, sample_mixup_lambda, sample_partners


def _batch():
    x = torch.arange(2 * 3 * 2, dtype=torch.float32).view(2, 3, 2)
    y = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 1.0, 0.0]])
    mask = torch.tensor([[True, True, False, True], [True, False, True, False]])
    return x, y, mask


def test_mixup_values_and_partial_label_rule() -> None:
    x, y, mask = _batch()
    perm = torch.tensor([1, 0])
    lam = torch.tensor([0.7, 0.2])
    x_mix, y_mix, m_mix = mixup(x, y, mask, lam, perm)
    torch.testing.assert_close(x_mix[0], 0.7 * x[0] + 0.3 * x[1])
    torch.testing.assert_close(x_mix[1], 0.2 * x[1] + 0.8 * x[0])
    # Labelled only where both sources are: column 0 (both), column 1 (only clip 0),
    # column 2 (only clip 1), column 3 (only clip 0). y[:, 0] = (1, 0).
    assert m_mix.tolist() == [[True, False, False, False], [True, False, False, False]]
    torch.testing.assert_close(y_mix, torch.tensor([[0.7, 0.0, 0.0, 0.0], [0.8, 0.0, 0.0, 0.0]]))


def test_mixup_scalar_lambda_and_identity_partner() -> None:
    x, y, mask = _batch()
    x_a, y_a, m_a = mixup(x, y, mask, 0.4, torch.tensor([1, 0]))
    x_b, y_b, m_b = mixup(x, y, mask, torch.tensor([0.4, 0.4]), torch.tensor([1, 0]))
    torch.testing.assert_close(x_a, x_b)
    torch.testing.assert_close(y_a, y_b)
    assert torch.equal(m_a, m_b)
    x_id, y_id, m_id = mixup(x, y, mask, 0.3, torch.tensor([0, 1]))
    torch.testing.assert_close(x_id, x)
    assert torch.equal(m_id, mask)
    torch.testing.assert_close(y_id, torch.where(mask, y, 0.0))


def test_mixup_rejects_bad_shapes() -> None:
    x, y, mask = _batch()
    with pytest.raises(ValueError, match=r"got \(3,\) and \(2,\)"):
        mixup(x, y, mask, torch.tensor([0.1, 0.2, 0.3]), torch.tensor([1, 0]))


def test_mixup_lambda_is_reproducible_and_beta_distributed() -> None:
    a = sample_mixup_lambda(torch.Generator().manual_seed(5), 1000, 0.2)
    b = sample_mixup_lambda(torch.Generator().manual_seed(5), 1000, 0.2)
    assert torch.equal(a, b) and a.shape == (1000,)
    assert a.min() >= 0 and a.max() <= 1
    for alpha in (0.2, 2.0):
        lam = sample_mixup_lambda(torch.Generator().manual_seed(0), 20000, alpha).double().numpy()
        points = np.array([0.01, 0.1, 0.3, 0.5, 0.7, 0.9])
        empirical = (lam[:, None] <= points).mean(axis=0)
        np.testing.assert_allclose(empirical, stats.beta(alpha, alpha).cdf(points), atol=0.012)
        assert lam.var() == pytest.approx(1 / (4 * (2 * alpha + 1)), rel=0.05)
    with pytest.raises(ValueError, match="alpha must be > 0"):
        sample_mixup_lambda(torch.Generator(), 4, 0.0)
    # Tiny alpha: both gamma draws often underflow to 0; lambda is then 0.5, never NaN.
    tiny = sample_mixup_lambda(torch.Generator().manual_seed(1), 2000, 1e-3)
    assert torch.isfinite(tiny).all() and (tiny == 0.5).any()
    assert ((tiny == 0) | (tiny == 1) | (tiny == 0.5)).float().mean() > 0.9


def test_concat_joins_along_time_and_ors_labels() -> None:
    x = torch.randn(3, 2, 4)
    # Columns: 0 known pos + known neg -> pos; 1 known neg + known neg -> neg;
    # 2 known neg + unknown -> unknown; 3 known pos + unknown -> pos;
    # 4 unknown + unknown -> unknown.
    y = torch.tensor([[1.0, 0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0, 1.0], [0.0] * 5])
    mask = torch.tensor([[True, True, True, True, False], [True, True, False, False, False], [False] * 5])
    x_cat, y_cat, m_cat = concat(x, y, mask, torch.tensor([[1, 0, 2]]))
    assert x_cat.shape == (3, 4, 4)
    torch.testing.assert_close(x_cat[0], torch.cat([x[0], x[1]]))
    torch.testing.assert_close(x_cat[1], torch.cat([x[1], x[0]]))
    assert m_cat[0].tolist() == [True, True, False, True, False]
    assert y_cat[0].tolist() == [1.0, 0.0, 0.0, 1.0, 0.0]
    # Clip 2 paired with itself: all unknown stays unknown.
    assert m_cat[2].tolist() == [False] * 5


def test_concat_three_sources_and_soft_targets() -> None:
    x = torch.randn(3, 2, 1)
    y = torch.tensor([[0.6, 0.4], [0.4, 0.4], [0.1, 0.3]])  # soft (mixup) targets
    mask = torch.ones(3, 2, dtype=torch.bool)
    perms = [torch.tensor([1, 2, 0]), torch.tensor([2, 0, 1])]
    x_cat, y_cat, m_cat = concat(x, y, mask, perms)
    assert x_cat.shape == (3, 6, 1)
    torch.testing.assert_close(x_cat[1, :, 0], torch.cat([x[1], x[2], x[0]])[:, 0])
    # 0.6 counts as positive, 0.4 as negative: column 0 positive for every triple.
    assert y_cat[:, 0].tolist() == [1.0, 1.0, 1.0] and m_cat.all()
    assert y_cat[:, 1].tolist() == [0.0, 0.0, 0.0]


def test_sample_partners_are_permutations() -> None:
    perms = sample_partners(torch.Generator().manual_seed(0), 6, k=3)
    assert perms.shape == (2, 6)
    for p in perms:
        assert sorted(p.tolist()) == list(range(6))
    assert sample_partners(torch.Generator(), 6, k=1).shape == (0, 6)


def _rule_batch():
    """Two clips, five instruments; clip 1 is clip 0's partner and vice versa.

    column:        0        1        2        3        4
    clip 0:      pos 1.0  neg 0.0  pos 1.0  unknown  neg 0.0
    clip 1:      neg 0.0  unknown  unknown  unknown  neg 0.0
    """
    y = torch.tensor([[1.0, 0.0, 1.0, 0.7, 0.0], [0.0, 0.3, 0.9, 0.0, 0.0]])  # unknown entries hold junk
    mask = torch.tensor([[True, True, True, False, True], [True, False, False, False, True]])
    return y, mask, torch.tensor([1, 0])


@pytest.mark.parametrize("lam0", [0.9, 0.2])
def test_mixup_label_rules_against_hand_computed_values(lam0) -> None:
    from instrec.data.augment import mixup_labels

    y, mask, perm = _rule_batch()
    lam = torch.tensor([lam0, 0.6])  # clip 0 keeps lam0 of itself; clip 1 keeps 0.6 of itself
    w0, w1 = lam0, 0.6
    # both: only columns 0 and 4 are labelled in both clips.
    t, m = mixup_labels(y, mask, lam, perm, "both")
    assert m.tolist() == [[True, False, False, False, True], [True, False, False, False, True]]
    torch.testing.assert_close(t[:, 0], torch.tensor([w0 * 1.0, (1 - w1) * 1.0]))
    # known: the mixed target lies in [k, k + w_unknown]; kept when that interval is on one side of 0.5.
    t, m = mixup_labels(y, mask, lam, perm, "known")
    dominant = w0 >= 0.5
    # row 0 col 1: clip 0 known negative with weight w0, partner unknown -> [0, 1 - w0]: kept iff w0 > 0.5
    # row 0 col 2: known positive weight w0 -> [w0, 1]: kept iff w0 >= 0.5, target w0
    # row 1 col 1: clip 1 unknown (weight 0.6), partner clip 0 known negative (0.4) -> [0, 0.6]: dropped
    # row 1 col 2: partner known positive 1.0 with weight 0.4 -> [0.4, 1.0]: dropped
    assert m.tolist() == [[True, dominant, dominant, False, True], [True, False, False, False, True]]
    if dominant:
        torch.testing.assert_close(t[0, 1:3], torch.tensor([1 - w0, w0]))
    assert t[1, 1:4].tolist() == [0.0, 0.0, 0.0]
    # presence: positive if either is a known positive; negative only if both are known negatives.
    t, m = mixup_labels(y, mask, lam, perm, "presence")
    assert m.tolist() == [[True, False, True, False, True], [True, False, True, False, True]]
    assert t.tolist() == [[1.0, 0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 1.0, 0.0, 0.0]]
    # naive: the anchor's mask; the partner's unknowns count as 0.
    t, m = mixup_labels(y, mask, lam, perm, "naive")
    assert torch.equal(m, mask)
    torch.testing.assert_close(t[0], torch.tensor([w0, 0.0, w0, 0.0, 0.0]))
    torch.testing.assert_close(t[1, [0, 4]], torch.tensor([1 - w1, 0.0]))


def test_labelled_share_of_each_rule_matches_its_expectation() -> None:
    from instrec.data.augment import mixup_labels

    gen = torch.Generator().manual_seed(0)
    y = (torch.rand(4000, 20, generator=gen) < 0.3).float()
    mask = torch.rand(4000, 20, generator=gen) < 0.1
    lam = sample_mixup_lambda(gen, 4000, 0.2)
    perm = torch.randperm(4000, generator=gen)
    kept = {r: mixup_labels(y, mask, lam, perm, r)[1].sum().item() / mask.sum().item()
            for r in ("both", "known", "presence")}
    # Mixed entries labelled, per labelled entry of the batch, with p = 0.1 labelled, 0.3 positive:
    # both: p^2 / p = 0.1. known: both labelled (p^2) + exactly one labelled and dominant
    # (2 p (1 - p) / 2) = p, so 1.0. presence: a known positive on either side, 1 - (1 - 0.03)^2,
    # or both known negatives, 0.07^2: 0.0640 / 0.1 = 0.64.
    assert kept["both"] == pytest.approx(0.10, abs=0.02)
    assert kept["known"] == pytest.approx(1.00, abs=0.05)
    assert kept["presence"] == pytest.approx(0.64, abs=0.05)
    with pytest.raises(ValueError, match="unknown mixup label rule 'soft'"):
        mixup_labels(y, mask, lam, perm, "soft")


def test_mixup_prob_mixes_a_share_of_batches_and_the_default_draws_nothing_more() -> None:
    from instrec.training.batches import augment_batch
    from instrec.training.config import TrainConfig

    x, y, mask = torch.randn(8, 3, 2), torch.ones(8, 4), torch.ones(8, 4, dtype=torch.bool)
    every = TrainConfig(data="d", out="o", mixup=0.2)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    augment_batch(x, y, mask, every, g1)
    sample_mixup_lambda(g2, 8, 0.2), torch.randperm(8, generator=g2)
    assert torch.equal(g1.get_state(), g2.get_state())  # mixing every batch: no extra draw
    half = TrainConfig(data="d", out="o", mixup=0.2, mixup_prob=0.5)
    gen = torch.Generator().manual_seed(1)
    mixed = sum(not torch.equal(augment_batch(x, y, mask, half, gen)[0], x) for _ in range(400))
    assert 160 < mixed < 240

"""FusedAdam: the same updates and state layout as torch.optim.Adam(fused=True)."""
from __future__ import annotations

import pytest
import torch

from instrec.training.optim import FusedAdam


def _params(seed: int) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(shape, generator=g)) for shape in [(7, 5), (5,), (3, 4, 2)]]


def _set_grads(params, step: int, skip: int | None = None) -> None:
    g = torch.Generator().manual_seed(100 + step)
    for i, p in enumerate(params):
        p.grad = None if i == skip else torch.randn(p.shape, generator=g)


def test_updates_equal_torch_fused_adam_bit_for_bit():
    ours, theirs = _params(0), _params(0)
    opt_a = FusedAdam(ours, lr=5e-4)
    opt_b = torch.optim.Adam(theirs, lr=5e-4, fused=True)
    for step in range(6):
        # parameter 1 gets no gradient on step 2: it must be left untouched that step
        for params in (ours, theirs):
            _set_grads(params, step, skip=1 if step == 2 else None)
        before = ours[1].detach().clone()
        opt_a.step()
        opt_b.step()
        if step == 2:
            assert torch.equal(ours[1], before)
        for a, b in zip(ours, theirs):
            assert torch.equal(a, b)
    sa, sb = opt_a.state_dict(), opt_b.state_dict()
    assert sa["param_groups"][0]["params"] == sb["param_groups"][0]["params"]
    for pid in sb["state"]:
        for name in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(sa["state"][pid][name], sb["state"][pid][name]), (pid, name)


def test_moves_against_the_gradient_by_about_lr():
    p = torch.nn.Parameter(torch.zeros(3))
    opt = FusedAdam([p], lr=0.1)
    p.grad = torch.tensor([2.0, -3.0, 0.0])
    opt.step()
    # first Adam step: m_hat / sqrt(v_hat) = sign(g), so the update is -lr * sign(g)
    assert torch.allclose(p.detach(), torch.tensor([-0.1, 0.1, 0.0]), atol=1e-6)


def test_state_dict_round_trip_continues_identically():
    a, b = _params(1), _params(1)
    opt_a = FusedAdam(a, lr=1e-3)
    for step in range(3):
        _set_grads(a, step)
        opt_a.step()
    with torch.no_grad():
        for pa, pb in zip(a, b):
            pb.copy_(pa)
    opt_b = FusedAdam(b, lr=1e-3)
    opt_b.load_state_dict({"state": {k: {n: v.clone() for n, v in s.items()} for k, s in opt_a.state_dict()["state"].items()},
                           "param_groups": opt_a.state_dict()["param_groups"]})
    for step in range(3, 5):
        _set_grads(a, step)
        _set_grads(b, step)
        opt_a.step()
        opt_b.step()
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_mismatched_state_is_refused():
    opt = FusedAdam(_params(0), lr=1e-3)
    other = FusedAdam(_params(0)[:2], lr=1e-3)
    with pytest.raises(ValueError, match="does not match the parameters"):
        opt.load_state_dict(other.state_dict())
    bad = opt.state_dict()
    bad["state"][0]["exp_avg"] = torch.zeros(2, 2)
    with pytest.raises(ValueError, match=r"exp_avg of parameter 0 has shape \(2, 2\), expected \(7, 5\)"):
        opt.load_state_dict(bad)
    with pytest.raises(ValueError, match="empty parameter list"):
        FusedAdam([], lr=1e-3)

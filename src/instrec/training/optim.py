"""Adam on PyTorch's fused CPU kernel, without ``torch.optim``.

Constructing any ``torch.optim`` optimizer imports ``torch._dynamo`` (its methods are
wrapped to opt out of compilation), which costs about a second per process here: a third
of a short training command's start-up. This class calls the same fused kernel that
``torch.optim.Adam(fused=True)`` uses, with the same arguments, so its updates are
bit-identical to it (tested), and its ``state_dict`` has the same layout, so resume
files are interchangeable.

Hyper-parameters are PyTorch's Adam defaults (betas 0.9/0.999, eps 1e-8, no weight decay).
"""
from __future__ import annotations

from typing import Any, Iterable

import torch


class FusedAdam:
    """Adam over ``params`` (float32 tensors, on the CPU or an accelerator that has the fused
    kernel: CUDA, mps) with learning rate ``lr``.

    ``step()`` updates the parameters that have a gradient; state is created for every
    parameter up front (zero moments, step 0), which gives the same updates as PyTorch's
    lazy creation."""

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError("optimizer got an empty parameter list")
        if lr <= 0:
            raise ValueError(f"learning rate must be > 0, got {lr}")
        self.lr, self.betas, self.eps = float(lr), (float(betas[0]), float(betas[1])), float(eps)
        self.exp_avg = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        # float32 step counts on each parameter's device (as torch's fused Adam keeps them)
        self.steps = [torch.zeros((), dtype=torch.float32, device=p.device) for p in self.params]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        live = [i for i, p in enumerate(self.params) if p.grad is not None]
        if not live:
            return
        steps = [self.steps[i] for i in live]
        torch._foreach_add_(steps, 1)
        torch._fused_adam_([self.params[i] for i in live], [self.params[i].grad for i in live],
                           [self.exp_avg[i] for i in live], [self.exp_avg_sq[i] for i in live], [], steps,
                           amsgrad=False, lr=self.lr, beta1=self.betas[0], beta2=self.betas[1],
                           weight_decay=0.0, eps=self.eps, maximize=False, grad_scale=None, found_inf=None)

    def state_dict(self) -> dict[str, Any]:
        """``torch.optim.Adam(fused=True).state_dict()`` layout; tensors are not copied."""
        state = {i: {"step": self.steps[i], "exp_avg": self.exp_avg[i], "exp_avg_sq": self.exp_avg_sq[i]}
                 for i in range(len(self.params))}
        group = {"lr": self.lr, "betas": list(self.betas), "eps": self.eps, "weight_decay": 0.0,
                 "amsgrad": False, "maximize": False, "foreach": None, "capturable": False,
                 "differentiable": False, "fused": True, "decoupled_weight_decay": False,
                 "params": list(range(len(self.params)))}
        return {"state": state, "param_groups": [group]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore moments and step counts saved by :meth:`state_dict` (or by torch's Adam)."""
        groups = state_dict["param_groups"]
        if len(groups) != 1 or len(groups[0]["params"]) != len(self.params):
            raise ValueError("optimizer state does not match the parameters")
        group = groups[0]
        loaded = []
        for i, pid in enumerate(group["params"]):
            slots = state_dict["state"].get(pid)
            if slots is None:
                continue
            for name, dest in (("exp_avg", self.exp_avg[i]), ("exp_avg_sq", self.exp_avg_sq[i])):
                if slots[name].shape != dest.shape:
                    raise ValueError(f"optimizer state {name} of parameter {i} has shape "
                                     f"{tuple(slots[name].shape)}, expected {tuple(dest.shape)}")
            loaded.append((i, slots))
        # Checked everything before changing anything: a refused state leaves this one intact.
        self.lr, self.betas, self.eps = float(group["lr"]), tuple(float(b) for b in group["betas"]), float(group["eps"])
        for i, slots in loaded:
            self.exp_avg[i].copy_(slots["exp_avg"])
            self.exp_avg_sq[i].copy_(slots["exp_avg_sq"])
            self.steps[i].fill_(float(slots["step"]))


def make_optimizer(params: Iterable[torch.Tensor], lr: float) -> FusedAdam:
    """Adam with PyTorch's defaults (betas 0.9/0.999, eps 1e-8), as Keras' Adam up to eps,
    on the fused CPU kernel. It is elementwise, so the lockstep engine's Adam over stacked
    weights stays bit-identical to solo runs."""
    return FusedAdam(params, lr=lr)

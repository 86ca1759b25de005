"""K models of one architecture with their weights stacked along a leading member axis.

A stacked model holds, for every parameter and buffer of the solo model (same names, same
order), one tensor of shape (K, *solo_shape); member k's weights are ``tensor[k]``. A
forward pass takes one batch per member, ``x`` (k', B, T, F), for a subset ``members`` of
k' members (all with the same B and T), and returns the k' members' clip probabilities.

A ``bilstm-att`` member computes exactly the floating-point operations of its solo model,
so its numbers are bit-identical to a solo run (checked by tests/test_lockstep.py):

* ``bilstm-att``: the recurrences of all members run as one: 2K directions, one batched
  matrix product per time step. Every elementwise operation acts on per-direction blocks
  of B x H or B x 4H values, as in the solo kernel, so even the vectorised kernels' scalar
  tails fall on the same elements.
* its attention heads run per member with the solo model's own operations on views of
  the stacked weights: batched over members, sigmoid/log kernels would treat other
  elements in their scalar tails, and reductions would round differently.
* ``att`` is the exception: its layers are small enough that running members one by one
  is mostly per-call overhead, so they are batched over members (see
  :class:`StackedGururaniAttention`), and an ``att`` member matches its solo run up to
  float rounding only.
* dropout masks are drawn per member from its solo model's stream
  (:class:`~instrec.models.dropout.MaskRNG`), with the same shapes and in the same order
  as the solo model draws them.

Because Adam is elementwise, one Adam over the stacked parameters, stepped on the sum of
the members' losses, is K independent Adams.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from instrec.models.dropout import MaskRNG, on_device_of
from instrec.models.lstm import (
    functional_recurrence,
    inplace_recurrence,
    recurrence_backward,
)
from instrec.models.output import ATT_EPS


class StackedModel(nn.Module):
    """Base: solo parameters/buffers stacked over members; see the module docstring.

    ``solo_models``: K initialised solo models of one architecture (same config).
    """

    def __init__(self, solo_models: Sequence[nn.Module]) -> None:
        super().__init__()
        first = solo_models[0]
        self.n_members = len(solo_models)
        self.config = dict(first.config)
        self.param_names = [n for n, _ in first.named_parameters()]
        self.buffer_names = [n for n, _ in first.named_buffers()]
        self.stacked = nn.ParameterDict()
        states = [m.state_dict() for m in solo_models]
        for name in self.param_names:
            self.stacked[_key(name)] = nn.Parameter(torch.stack([s[name].detach() for s in states]).contiguous())
        for name in self.buffer_names:
            self.register_buffer(_key(name), torch.stack([s[name] for s in states]).contiguous())

    def p(self, name: str) -> torch.Tensor:
        """Stacked parameter (K, ...) of solo name ``name``."""
        return self.stacked[_key(name)]

    def b(self, name: str) -> torch.Tensor:
        """Stacked buffer (K, ...) of solo name ``name``."""
        return getattr(self, _key(name))

    def member_state(self, k: int) -> dict[str, torch.Tensor]:
        """Member k's weights under the solo model's state_dict names (copies)."""
        out = {n: self.p(n)[k].detach().clone() for n in self.param_names}
        out.update({n: self.b(n)[k].clone() for n in self.buffer_names})
        return out

    @torch.no_grad()
    def load_member(self, k: int, state: dict[str, torch.Tensor]) -> None:
        """Set member k's weights from a solo state_dict."""
        for n in self.param_names:
            self.p(n)[k].copy_(state[n])
        for n in self.buffer_names:
            self.b(n)[k].copy_(state[n])

    def forward(self, x: torch.Tensor, members: Sequence[int],
                rngs: Sequence[MaskRNG] | None = None) -> list[torch.Tensor]:
        """x (k', B, T, F): one batch per member of ``members`` -> k' clip probabilities (B, C).

        ``rngs``: every member's dropout RNG (indexed by member), needed in training mode.
        Each architecture's subclass defines it."""
        raise TypeError(f"{type(self).__name__} is a base class; use a stacked architecture's subclass")

    def _head(self, h: Sequence[torch.Tensor], members: Sequence[int]) -> list[torch.Tensor]:
        """The attention head of each member on its features h[j] (B, T, D) -> k' clips (B, C)."""
        w, b = self.p("head.proj.weight").unbind(0), self.p("head.proj.bias").unbind(0)
        return [_pool(nn.functional.linear(h_j, w[m], b[m])) for h_j, m in zip(h, members)]


def _key(name: str) -> str:
    return name.replace(".", "__")


def _select(t: torch.Tensor, members: Sequence[int], n_members: int) -> torch.Tensor:
    """Rows ``members`` of a stacked tensor; the tensor itself when all members take part."""
    if len(members) == n_members and list(members) == list(range(n_members)):
        return t
    return t[torch.as_tensor(list(members))]


def _pool(proj: torch.Tensor) -> torch.Tensor:
    """``AttentionPooling`` after its linear layer, op for op: proj (B, T, 2C) -> clip (B, C)."""
    n_classes = proj.shape[-1] // 2
    cla, att = torch.sigmoid(proj).split(n_classes, dim=-1)
    att = att.clamp(ATT_EPS, 1.0 - ATT_EPS)
    att = att / att.sum(dim=1, keepdim=True)
    return (att * cla).sum(dim=1).clamp(0.0, 1.0)


class _StackedBiLSTMFunction(torch.autograd.Function):
    """Both directions of K BiLSTMs in one recurrence; hand-written backward.

    Same algorithm as ``instrec.models.lstm._BiLSTMFunction`` with 2K "directions":
    row 2k+d is direction d of member k (d = 1 consumes its input time-reversed).
    Inputs: x2 (2K, T*B, F) rows ordered (t, b); w_ih (2K, F, 4H); bias (2K, 4H);
    w_hh (2K, H, 4H); mask (2K, B, H) or None; n_steps = T.
    Output: (K, T, B, 2H), forward direction in [..., :H], backward in [..., H:].
    """

    @staticmethod
    def forward(ctx: Any, x2: torch.Tensor, w_ih: torch.Tensor, bias: torch.Tensor,
                w_hh: torch.Tensor, mask: torch.Tensor | None, n_steps: int) -> torch.Tensor:
        n_dir, rows, _ = x2.shape
        batch, hid = rows // n_steps, w_hh.shape[1]
        if torch.compiler.is_compiling():  # traceable form, as in lstm._BiLSTMFunction
            hs, saved = functional_recurrence(x2, w_ih, bias, w_hh, mask, n_steps)
        else:
            hs, saved = inplace_recurrence(x2, w_ih, bias, w_hh, mask, n_steps, bias_per_step=True)
        ctx.save_for_backward(*saved)
        hs5 = hs.view(n_dir // 2, 2, n_steps, batch, hid)
        return torch.cat([hs5[:, 0], hs5[:, 1].flip(1)], dim=-1)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, dout: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        n_dir, n_steps, batch, g4 = ctx.saved_tensors[4].shape
        hid = g4 // 4
        dhs = torch.stack([dout[..., :hid], dout[..., hid:].flip(1)], dim=1).view(n_dir, n_steps, batch, hid)
        dx2, dw_ih, dbias, dw_hh = recurrence_backward(ctx.saved_tensors, dhs, ctx.needs_input_grad[0])
        return dx2, dw_ih, dbias, dw_hh, None, None


class StackedBiLSTMAttention(StackedModel):
    """K ``BiLSTMAttention`` members (``bilstm-att``) in lockstep."""

    def forward(self, x: torch.Tensor, members: Sequence[int],
                rngs: Sequence[MaskRNG] | None = None) -> list[torch.Tensor]:
        k, batch, n_steps, n_feat = x.shape
        hid, n = self.config["hidden"], self.n_members
        p_in, p_rec = self.config["dropout"], self.config["recurrent_dropout"]
        train = self.training and (p_in > 0 or p_rec > 0)
        if train:
            assert rngs is not None, "training mode needs the members' dropout RNGs"
        masks_in, masks_rec = [], []
        for m in members if train else ():  # per member: input mask, then recurrent mask, as solo
            if p_in > 0:
                masks_in.append(rngs[m].mask((2, 1, batch, n_feat), p_in))
            if p_rec > 0:
                masks_rec.append(rngs[m].mask((2, batch, hid), p_rec))
        # x2 (k', 2, T, B, F): direction 1 time-reversed, input dropout applied on the way.
        x_tbf = x.transpose(1, 2)
        x2 = x.new_empty(k, 2, n_steps, batch, n_feat)
        if masks_in:
            mask_in = on_device_of(torch.cat(masks_in), x).view(k, 2, 1, batch, n_feat)
            torch.mul(x_tbf, mask_in[:, 0], out=x2[:, 0])
            torch.mul(x_tbf.flip(1), mask_in[:, 1], out=x2[:, 1])
        else:
            x2[:, 0], x2[:, 1] = x_tbf, x_tbf.flip(1)
        w_ih = _select(self.p("lstm.weight_ih"), members, n)
        w_hh = _select(self.p("lstm.weight_hh"), members, n)
        bias = _select(self.p("lstm.bias"), members, n)
        mask_rec = on_device_of(torch.cat(masks_rec), x) if masks_rec else None
        h = _StackedBiLSTMFunction.apply(x2.view(2 * k, n_steps * batch, n_feat), w_ih.reshape(2 * k, n_feat, -1),
                                         bias.reshape(2 * k, -1), w_hh.reshape(2 * k, hid, -1),
                                         mask_rec, n_steps)  # (k', T, B, 2H)
        return self._head(h.transpose(1, 2), members)


class StackedGururaniAttention(StackedModel):
    """K ``GururaniAttention`` members (``att``) in lockstep, batched over members.

    Layout (k', F, N), N = B*T frames per member: a member's 1x1 convolution is one matrix
    of a ``bmm``, and the BatchNorms of all members are one ``batch_norm`` over k'*F channels
    (statistics per channel over the member's N frames, as in the solo model). The operations
    are the solo model's, but sums may run in another order, so a member matches its solo run
    up to float rounding, not bit for bit. One weight shows it: the BatchNorm after the first
    convolution cancels ``input_bn.bias``, whose gradient is therefore rounding noise that
    Adam turns into full-size steps; it drifts apart from the solo run's without effect on
    any output."""

    def forward(self, x: torch.Tensor, members: Sequence[int],
                rngs: Sequence[MaskRNG] | None = None) -> list[torch.Tensor]:
        k, batch, n_frames, n_feat = x.shape
        n, n_layers, p_drop = batch * n_frames, self.config["n_layers"], self.config["dropout"]
        train = self.training
        if train and p_drop > 0:
            assert rngs is not None, "training mode needs the members' dropout RNGs"
        def pick(t: torch.Tensor) -> torch.Tensor:
            return _select(t, members, self.n_members)

        frames = x.reshape(k, n, n_feat).transpose(1, 2)  # (k', F, N)
        z = self._batch_norm(frames.contiguous(), "input_bn", members, train)
        for layer in range(n_layers):
            z = torch.bmm(pick(self.p(f"convs.{layer}.weight")), z)
            z = torch.relu(self._batch_norm(z, f"bns.{layer}", members, train))
            if train and p_drop > 0:  # the solo model's (N, F) masks, member by member
                z = z * on_device_of(torch.stack([rngs[m].mask((n, n_feat), p_drop) for m in members]),
                                     z).transpose(1, 2)
        z = z + frames
        proj = torch.baddbmm(pick(self.p("head.proj.bias")).unsqueeze(-1), pick(self.p("head.proj.weight")), z)
        n_classes = proj.shape[1] // 2
        prob = torch.sigmoid(proj.view(k, 2 * n_classes, batch, n_frames))
        cla, att = prob[:, :n_classes], prob[:, n_classes:].clamp(ATT_EPS, 1.0 - ATT_EPS)
        att = att / att.sum(dim=-1, keepdim=True)
        clip = (att * cla).sum(dim=-1).clamp(0.0, 1.0)  # (k', C, B)
        if train:
            with torch.no_grad():
                for name in ["input_bn"] + [f"bns.{i}" for i in range(n_layers)]:
                    self.b(f"{name}.num_batches_tracked")[torch.as_tensor(list(members))] += 1
        return list(clip.transpose(1, 2).unbind(0))

    def _batch_norm(self, z: torch.Tensor, name: str, members: Sequence[int], train: bool) -> torch.Tensor:
        """``BatchNorm1d`` ``name`` of ``members`` on z (k', F, N), as one call over k'*F channels."""
        k, n_feat, n = z.shape
        stats = [self.b(f"{name}.running_mean"), self.b(f"{name}.running_var")]
        mean, var, weight, bias = (_select(t, members, self.n_members)
                                   for t in (*stats, self.p(f"{name}.weight"), self.p(f"{name}.bias")))
        out = nn.functional.batch_norm(z.reshape(1, k * n_feat, n), mean.view(-1), var.view(-1),
                                       weight.reshape(-1), bias.reshape(-1), train, 0.1, 1e-5)
        if train and mean is not stats[0]:  # some members only: the statistics were updated in copies
            rows = torch.as_tensor(list(members))
            with torch.no_grad():
                stats[0][rows], stats[1][rows] = mean, var
        return out.view(k, n_feat, n)


"""A fast bidirectional LSTM with Keras-style (Gal & Ghahramani) input and recurrent dropout.

``nn.LSTM`` has no recurrent dropout, so the recurrence is written here. Speed comes from:

* both directions run in one batched op per time step: hidden states are stacked as
  (2, B, H) and ``W_hh`` as (2, H, 4H), the backward direction consuming its input
  reversed in time, so step ``s`` is forward time ``s`` and backward time ``T-1-s``;
* the input projection for all steps and both directions is one ``baddbmm``;
* projection and recurrence are one custom autograd Function with a hand-written
  backward: the forward records no autograd graph and writes into preallocated
  buffers through views made before the loop; the backward vectorises over time
  everything that does not depend on the recurrence and gets the weight gradients
  from one ``bmm`` each after the loop;
* tanh is computed through sigmoid, which is several times faster on CPU.

On one CPU thread, an eager training step of the attention BiLSTM (batch 32, 10 frames,
the paper's dropout) runs 1.0-1.25x as fast as one with the fused ``nn.LSTM`` (which has no
recurrent dropout), and a compiled one 1.2-1.5x, depending on the machine; see
benchmarks/bench_lstm_kernel.py.
Under ``torch.compile`` (:mod:`instrec.training.step`) the same Function runs a functional
forward (no in-place ops, which the compiler cannot trace); the compiler fuses each time
step's elementwise work, forward and backward, into one C++ kernel, and the weight
gradients still come from one ``bmm`` each after the loop.

Internal layout is direction-major, time-major: (2, T, B, ...). Gate order in the
weights is i, f, g, o as in PyTorch.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from instrec.models.dropout import MaskRNG, check_probability, on_device_of


def gate_scale(hid: int, like: torch.Tensor) -> torch.Tensor:
    """(4H,) column scale of the gate weights: 2 for the g gate, 1 elsewhere, so that one
    sigmoid gives tanh(z) = 2 sigmoid(2z) - 1 for g and sigmoid for i, f, o."""
    scale = like.new_ones(4 * hid)
    scale[2 * hid : 3 * hid] = 2.0
    return scale


def scaled_weights(w_ih: torch.Tensor, bias: torch.Tensor,
                   w_hh: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """w_ih, bias (as (n_dir, 1, 4H)) and w_hh with the g-gate columns doubled (see gate_scale)."""
    scale = gate_scale(w_hh.shape[1], w_hh)
    return w_ih * scale, (bias * scale).unsqueeze(1), w_hh * scale


Saved = tuple[torch.Tensor | None, ...]


def inplace_recurrence(x2: torch.Tensor, w_ih: torch.Tensor, bias: torch.Tensor, w_hh: torch.Tensor,
                       mask: torch.Tensor | None, n_steps: int, bias_per_step: bool = False
                       ) -> tuple[torch.Tensor, Saved]:
    """The eager forward of :class:`_BiLSTMFunction`: no autograd graph, preallocated buffers
    written through views made before the loop. Returns hs (2, T, B, H) and the tensors the
    backward needs: (x2, w_ih, w_hh, mask, acts, cs, sc, hm), where acts (2, T, B, 4H) holds
    the gate activations (tanh for g), cs (2, T+1, B, H) the cell states after each step
    (cs[:, 0] = 0, the initial state), sc (2, T, B, H) sigmoid(2c) and hm the hidden states
    as fed to the next step (h times the recurrent dropout mask). Any number of "directions"
    (2K for K stacked BiLSTMs).

    ``bias_per_step``: add the bias to each step's slice just before its activations instead
    of in the input projection; the same numbers (baddbmm rounds as bmm then add), one pass
    less over the (n_dir, T*B, 4H) buffer, which pays for large stacks."""
    n_dir, rows, _ = x2.shape
    batch, hid = rows // n_steps, w_hh.shape[1]
    g4 = 4 * hid
    w_ih_s, bias_s, w_hh_s = scaled_weights(w_ih, bias, w_hh)
    xg = torch.bmm(x2, w_ih_s) if bias_per_step else torch.baddbmm(bias_s, x2, w_ih_s)
    acts = xg.view(n_dir, n_steps, batch, g4)  # overwritten in place by the activations
    cs = x2.new_zeros(n_dir, n_steps + 1, batch, hid)
    sc = x2.new_empty(n_dir, n_steps, batch, hid)
    hs = torch.empty_like(sc)
    hm = hs if mask is None else torch.empty_like(sc)
    # Per-step views made up front: unbind is much cheaper than indexing in the loop.
    a_t, c_t, sc_t, h_t, hm_t = (v.unbind(1) for v in (acts, cs, sc, hs, hm))
    i_t, f_t, g_t, o_t = (v.unbind(1) for v in acts.split(hid, dim=-1))
    # 0-dim tensors instead of Python floats: a float operand costs a conversion per call.
    two, one = x2.new_tensor(2.0), x2.new_tensor(1.0)
    for t in range(n_steps):
        a = a_t[t].add_(bias_s) if bias_per_step else a_t[t]
        if t > 0:
            a.baddbmm_(hm_t[t - 1], w_hh_s)
        a.sigmoid_()
        g = g_t[t]
        g.mul_(two).sub_(one)  # tanh of the g pre-activation
        c = c_t[t + 1]
        torch.mul(i_t[t], g, out=c)
        if t > 0:
            c.addcmul_(f_t[t], c_t[t])
        s = sc_t[t]
        torch.mul(c, two, out=s).sigmoid_()
        h = h_t[t]
        torch.mul(o_t[t], s, out=h).mul_(two).sub_(o_t[t])  # o * tanh(c)
        if mask is not None:
            torch.mul(h, mask, out=hm_t[t])
    return hs, (x2, w_ih, w_hh, mask, acts, cs, sc, hm)


def functional_recurrence(x2: torch.Tensor, w_ih: torch.Tensor, bias: torch.Tensor, w_hh: torch.Tensor,
                          mask: torch.Tensor | None, n_steps: int) -> tuple[torch.Tensor, Saved]:
    """What :func:`inplace_recurrence` computes, op for op, written without in-place ops or
    ``out=`` so that torch.compile can trace it and fuse each step's elementwise work into one
    kernel. Any number of "directions" (2K for K stacked BiLSTMs)."""
    n_dir, rows, _ = x2.shape
    batch, hid = rows // n_steps, w_hh.shape[1]
    w_ih_s, bias_s, w_hh_s = scaled_weights(w_ih, bias, w_hh)
    xg = torch.baddbmm(bias_s, x2, w_ih_s).view(n_dir, n_steps, batch, 4 * hid)
    c = x2.new_zeros(n_dir, batch, hid)
    acts, cs, sc, hs, hm = [], [c], [], [], []
    for t in range(n_steps):
        a = xg[:, t] if t == 0 else torch.baddbmm(xg[:, t], hm[-1], w_hh_s)
        i, f, g, o = a.sigmoid().split(hid, dim=-1)
        g = g * 2.0 - 1.0
        c = i * g if t == 0 else torch.addcmul(i * g, f, c)
        s = (c * 2.0).sigmoid()
        h = o * s * 2.0 - o
        acts.append(torch.cat([i, f, g, o], dim=-1))
        cs.append(c)
        sc.append(s)
        hs.append(h)
        hm.append(h if mask is None else h * mask)
    stacked = [torch.stack(v, 1) for v in (hs, acts, cs, sc, hm)]
    return stacked[0], (x2, w_ih, w_hh, mask, *stacked[1:])


class _BiLSTMFunction(torch.autograd.Function):
    """Both LSTM directions, input projection included, with a hand-written backward.

    Inputs: x2 (2, T*B, F) per-direction input (direction 1 time-reversed, input
    dropout applied), rows ordered (t, b); w_ih (2, F, 4H); bias (2, 4H); w_hh (2, H, 4H);
    mask (2, B, H) recurrent dropout mask or None; n_steps = T.
    Output: (B, T, 2H) hidden states, forward direction in [..., :H], backward in [..., H:]
    (a transposed view of a (T, B, 2H) tensor).

    tanh is several times slower than sigmoid on CPU, so both tanh's are computed as
    tanh(z) = 2 sigmoid(2z) - 1: the g-gate columns of the weights are doubled so one
    sigmoid covers all four gates, and ``sc`` stores sigmoid(2c) instead of tanh(c).
    """

    @staticmethod
    def forward(ctx: Any, x2: torch.Tensor, w_ih: torch.Tensor, bias: torch.Tensor,
                w_hh: torch.Tensor, mask: torch.Tensor | None, n_steps: int) -> torch.Tensor:
        recurrence = functional_recurrence if torch.compiler.is_compiling() else inplace_recurrence
        hs, saved = recurrence(x2, w_ih, bias, w_hh, mask, n_steps)
        ctx.save_for_backward(*saved)
        return torch.cat([hs[0], hs[1].flip(0)], dim=-1).transpose(0, 1)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, dout: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        hid = ctx.saved_tensors[2].shape[1]
        d_tb = dout.transpose(0, 1)
        dhs = torch.stack([d_tb[..., :hid], d_tb[..., hid:].flip(0)])
        dx2, dw_ih, dbias, dw_hh = recurrence_backward(ctx.saved_tensors, dhs, ctx.needs_input_grad[0])
        return dx2, dw_ih, dbias, dw_hh, None, None


def _gate_coefficients(acts: torch.Tensor, cs: torch.Tensor, tc: torch.Tensor) -> torch.Tensor:
    """(n_dir, T, B, 4H) factors with dL/d(pre-activation) = coef * dc for the gates i, f, g
    and coef * dh for o (the derivative of the gate's activation times its chain-rule factor:
    s - s^2 times g, c_{t-1} and tanh(c) for the sigmoids i, f, o; 1 - g^2 times i for g).
    They do not depend on the recurrence, so they are computed for all T at once.

    Two formulations of the same operations: eager PyTorch is fast on in-place updates of
    column slices and slow on concatenating them along the last dimension; torch.compile
    cannot trace in-place updates cheaply and fuses the concatenation into one kernel."""
    hid = acts.shape[-1] // 4
    i, f, g, o = acts.split(hid, dim=-1)
    if torch.compiler.is_compiling():
        derivative = torch.addcmul(torch.cat([i, f, torch.ones_like(g), o], dim=-1), acts, acts, value=-1.0)
        return derivative * torch.cat([g, cs[:, :-1], i, tc], dim=-1)
    coef = torch.addcmul(acts, acts, acts, value=-1.0)  # sigmoid' = s - s^2
    ci, cf, cg, co = coef.split(hid, dim=-1)
    torch.addcmul(torch.ones_like(g), g, g, value=-1.0, out=cg)  # tanh' = 1 - g^2
    ci.mul_(g)
    cf.mul_(cs[:, :-1])
    cg.mul_(i)
    co.mul_(tc)
    return coef


def recurrence_backward(saved: tuple[torch.Tensor, ...], dhs: torch.Tensor,
                        need_dx: bool) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of the LSTM recurrence given dL/dh per direction and step.

    ``saved``: (x2, w_ih, w_hh, mask, acts, cs, sc, hm) as saved by the forward pass, with any
    number of "directions" n_dir (2 for one BiLSTM, 2K for K stacked ones); ``dhs`` (n_dir, T, B, H).
    Returns (dx2 or None, dw_ih, dbias, dw_hh)."""
    x2, w_ih, w_hh, mask, acts, cs, sc, hm = saved
    n_dir, n_steps, batch, g4 = acts.shape
    hid = g4 // 4
    _, f, _, o = acts.split(hid, dim=-1)
    tc = sc * 2.0 - 1.0  # tanh(c)
    coef = _gate_coefficients(acts, cs, tc)
    dh_to_dc = o - o * tc * tc  # dh/dc = o * tanh'(c)
    w_hh_t = w_hh.transpose(1, 2)

    # Written without out= or in-place updates of saved tensors, so that torch.compile can
    # trace it (the compiled training step fuses each step's elementwise work).
    coef_t, dhs_t, k_t, f_t = (v.unbind(1) for v in (coef, dhs, dh_to_dc, f))
    dg_t: list[torch.Tensor] = []
    dh_rec = None
    dc = None
    for t in range(n_steps - 1, -1, -1):
        dh = dhs_t[t] if dh_rec is None else dhs_t[t] + dh_rec
        dc = dh * k_t[t] if dc is None else torch.addcmul(dc, dh, k_t[t])
        dg_t.append(coef_t[t] * torch.cat([dc, dc, dc, dh], dim=-1))
        if t > 0:
            dc = dc * f_t[t]
            dh_rec = torch.bmm(dg_t[-1], w_hh_t)
            if mask is not None:
                dh_rec = dh_rec * mask
    dgates = torch.stack(dg_t[::-1], 1)
    if n_steps > 1:
        h_in = hm[:, :-1].reshape(n_dir, (n_steps - 1) * batch, hid)
        d_in = dgates[:, 1:].reshape(n_dir, (n_steps - 1) * batch, g4)
        dw_hh = torch.bmm(h_in.transpose(1, 2), d_in)
    else:
        dw_hh = torch.zeros_like(w_hh)
    dg_rows = dgates.view(n_dir, n_steps * batch, g4)
    dw_ih = torch.bmm(x2.transpose(1, 2), dg_rows)
    dbias = dg_rows.sum(dim=1)
    dx2 = torch.bmm(dg_rows, w_ih.transpose(1, 2)) if need_dx else None
    return dx2, dw_ih, dbias, dw_hh

class BiLSTM(nn.Module):
    """Single-layer bidirectional LSTM, batch-first, with Keras dropout semantics.

    ``dropout`` zeroes input features and ``recurrent_dropout`` zeroes the previous
    hidden state before the recurrent matmul; each direction draws one mask per
    sequence, shared by all time steps (Gal & Ghahramani 2016), only in training mode,
    from the module's own stream ``rng`` (:class:`~instrec.models.dropout.MaskRNG`).

    Parameters use the ``x @ W`` layout: ``weight_ih`` (2, F, 4H), ``weight_hh``
    (2, H, 4H), ``bias`` (2, 4H), gate order i, f, g, o; index 0 is the forward
    direction. A single bias per gate as in Keras (PyTorch's b_ih + b_hh).
    Initialisation follows Keras: Glorot-uniform input kernel, orthogonal recurrent
    kernel, zero bias except forget-gate bias 1.
    """

    def __init__(self, input_size: int, hidden_size: int = 64, dropout: float = 0.0,
                 recurrent_dropout: float = 0.0) -> None:
        super().__init__()
        for name, p in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            check_probability(p, name)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.dropout = dropout
        self.recurrent_dropout = recurrent_dropout
        self.weight_ih = nn.Parameter(torch.empty(2, input_size, 4 * hidden_size))
        self.weight_hh = nn.Parameter(torch.empty(2, hidden_size, 4 * hidden_size))
        self.bias = nn.Parameter(torch.empty(2, 4 * hidden_size))
        self.reset_parameters()
        self.rng = MaskRNG()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Keras LSTM initialisation (see class docstring)."""
        hid = self.hidden_size
        # orthogonal_ is a QR decomposition, whose rounding follows the thread count: on one
        # thread, the initial weights of a seed are the same whatever --threads says.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            for d in range(2):
                nn.init.xavier_uniform_(self.weight_ih[d])
                nn.init.orthogonal_(self.weight_hh[d])
        finally:
            torch.set_num_threads(threads)
        self.bias.zero_()
        self.bias[:, hid : 2 * hid] = 1.0

    @torch.no_grad()
    def load_torch_lstm(self, lstm: nn.LSTM) -> None:
        """Copy weights from a single-layer bidirectional ``nn.LSTM`` with matching sizes."""
        if not (lstm.bidirectional and lstm.num_layers == 1 and lstm.hidden_size == self.hidden_size
                and lstm.input_size == self.input_size and lstm.bias):
            raise ValueError("need a 1-layer bidirectional nn.LSTM with bias and the same sizes")
        for d, sfx in enumerate(("", "_reverse")):
            self.weight_ih[d].copy_(getattr(lstm, f"weight_ih_l0{sfx}").t())
            self.weight_hh[d].copy_(getattr(lstm, f"weight_hh_l0{sfx}").t())
            self.bias[d].copy_(getattr(lstm, f"bias_ih_l0{sfx}") + getattr(lstm, f"bias_hh_l0{sfx}"))

    def draw_masks(self, batch: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The dropout masks of the next training batch of ``batch`` sequences: input (2, 1, B, F)
        and recurrent (2, B, H), each None when that dropout is off or in eval mode."""
        train = self.training
        in_mask = rec_mask = None
        if train and self.dropout > 0:
            in_mask = self.rng.mask((2, 1, batch, self.input_size), self.dropout)
        if train and self.recurrent_dropout > 0:
            rec_mask = self.rng.mask((2, batch, self.hidden_size), self.recurrent_dropout)
        return in_mask, rec_mask

    def forward(self, x: torch.Tensor,
                masks: tuple[torch.Tensor | None, torch.Tensor | None] | None = None) -> torch.Tensor:
        """x: (B, T, F) -> (B, T, 2H); [..., :H] forward and [..., H:] backward direction.

        ``masks``: from :meth:`draw_masks`, or None to draw them here."""
        batch, n_steps, n_feat = x.shape
        in_mask, rec_mask = self.draw_masks(batch) if masks is None else masks
        in_mask, rec_mask = on_device_of(in_mask, x), on_device_of(rec_mask, x)
        x_tbf = x.transpose(0, 1)
        x2 = torch.stack([x_tbf, x_tbf.flip(0)])  # (2, T, B, F), direction 1 time-reversed
        if in_mask is not None:
            x2 = x2 * in_mask
        x2 = x2.view(2, n_steps * batch, n_feat)
        return _BiLSTMFunction.apply(x2, self.weight_ih, self.bias, self.weight_hh, rec_mask, n_steps)

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, dropout={self.dropout}, "
                f"recurrent_dropout={self.recurrent_dropout}")

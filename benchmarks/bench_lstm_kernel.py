"""Training throughput of the attention BiLSTM: instrec's LSTM vs a plain ``nn.LSTM`` loop.

One training step = forward + masked focal loss + backward + Adam step on a batch of
B clips of T frames x F features. Runs single-threaded; variants are interleaved in
each repeat so background load hits them alike; reports the median clips/s.

    python benchmarks/bench_lstm_kernel.py [--batch 32] [--frames 10] [--repeats 7]

The torch.compile row runs the paper's model through instrec's compiled training step
(:mod:`instrec.training.step`; compiled during the warm-up, so not timed). The last row is
not a model: it times only the matrix products one instrec training step
must compute (input projection, recurrent products forward and backward, the two weight
gradients, the head's linear layer forward and backward) with this machine's BLAS, one
call each as the kernel makes them. Its clips/s is the ceiling of any implementation that
computes the same products, reached only if every elementwise operation, the loss, Adam
and the framework's per-call overhead cost nothing.

Two rows try the machine's second core inside one process, as an idle 2-core machine offers it
(both measured with the same interleaving; every other row runs on 1 thread):

* ``2 torch threads``: the paper's model with ``torch.set_num_threads(2)``. Whether its weights
  are the 1-thread ones bit for bit, after 20 steps here and after a short ``instrec train`` run,
  is checked and printed; where they are not
  (the thread count changes float rounding), a thread count that followed the machine's load
  would make results depend on it.
* ``directions on 2 Python threads``: the two LSTM directions are independent, so the
  recurrence's forward and backward run one direction per Python thread (a worker thread for
  the backward direction; torch releases the GIL inside each operation). Whether the numbers are
  the batched kernel's bit for bit is checked and printed too; each of the step's ~200 small
  operations still parses its arguments under the GIL.

The fused nn.LSTM is sensitive to glibc malloc settings: with the defaults its large
per-call buffers are page-faulted in on every step. Run with e.g.
MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=536870912 to see it without
that cost (instrec's LSTM barely changes, nn.LSTM gets about 30% faster).
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import nn

from instrec.models.bilstm_att import BiLSTMAttention
from instrec.models.dropout import MaskRNG
from instrec.models.lstm import BiLSTM, inplace_recurrence, recurrence_backward
from instrec.models.output import AttentionPooling, ModelOutput
from instrec.training.losses import masked_focal_loss

CEILING = "ceiling: the step's matrix products only"
COMPILED = "instrec BiLSTM, torch.compile (dropout 0.2/0.2)"
TWO_THREADS = "instrec BiLSTM (paper), 2 torch threads"
SPLIT = "instrec BiLSTM (paper), directions on 2 Python threads"


class PlainLSTMAttention(nn.Module):
    """Reference: fused ``nn.LSTM`` (no recurrent dropout possible) + the same attention head."""

    def __init__(self, n_classes: int = 20, n_features: int = 128, hidden: int = 64) -> None:
        super().__init__()
        self.lstm = nn.LSTM(n_features, hidden, batch_first=True, bidirectional=True)
        self.head = AttentionPooling(2 * hidden, n_classes)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        return self.head(self.lstm(x)[0])


class AutogradBaddbmmAttention(nn.Module):
    """Reference: same batched-direction recurrence, but differentiated by autograd per step."""

    def __init__(self, n_classes: int = 20, n_features: int = 128, hidden: int = 64) -> None:
        super().__init__()
        ref = BiLSTMAttention(n_classes, n_features, hidden=hidden, dropout=0.0, recurrent_dropout=0.0)
        self.lstm, self.head = ref.lstm, ref.head

    def forward(self, x: torch.Tensor) -> ModelOutput:
        lstm = self.lstm
        b, t_len, f = x.shape
        x_tbf = x.transpose(0, 1)
        x2 = torch.stack([x_tbf, x_tbf.flip(0)]).view(2, t_len * b, f)
        xg = torch.baddbmm(lstm.bias.unsqueeze(1), x2, lstm.weight_ih).view(2, t_len, b, -1)
        h = x.new_zeros(2, b, lstm.hidden_size)
        c = torch.zeros_like(h)
        outs = []
        for t in range(t_len):
            i, fg, g, o = torch.baddbmm(xg[:, t], h, lstm.weight_hh).chunk(4, dim=-1)
            c = torch.sigmoid(fg) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            outs.append(h)
        hs = torch.stack(outs, dim=1)
        return self.head(torch.cat([hs[0], hs[1].flip(0)], dim=-1).transpose(0, 1))


_POOL = ThreadPoolExecutor(1)  # the second direction's thread


class _SplitDirections(torch.autograd.Function):
    """instrec's BiLSTM Function with each direction's recurrence on its own Python thread."""

    @staticmethod
    def forward(ctx, x2, w_ih, bias, w_hh, mask, n_steps):
        @torch.no_grad()  # grad mode is per thread: the worker's is on
        def one(d: int):
            s = slice(d, d + 1)
            return inplace_recurrence(x2[s], w_ih[s], bias[s], w_hh[s], None if mask is None else mask[s], n_steps)

        other = _POOL.submit(one, 1)
        (h0, s0), (h1, s1) = one(0), other.result()
        ctx.saved = (s0, s1)
        return torch.cat([h0[0], h1[0].flip(0)], dim=-1).transpose(0, 1)

    @staticmethod
    def backward(ctx, dout):
        hid = dout.shape[-1] // 2
        d_tb = dout.transpose(0, 1)
        dhs = (d_tb[..., :hid].unsqueeze(0), d_tb[..., hid:].flip(0).unsqueeze(0))
        other = _POOL.submit(torch.no_grad()(recurrence_backward), ctx.saved[1], dhs[1], False)
        g0, g1 = recurrence_backward(ctx.saved[0], dhs[0], False), other.result()
        return None, *(torch.cat([a, b]) for a, b in zip(g0[1:], g1[1:])), None, None


class SplitBiLSTM(BiLSTM):
    """instrec's BiLSTM with the directions on two Python threads (see the module docstring)."""

    def forward(self, x: torch.Tensor, masks=None) -> torch.Tensor:
        batch, n_steps, n_feat = x.shape
        in_mask, rec_mask = self.draw_masks(batch) if masks is None else masks
        x_tbf = x.transpose(0, 1)
        x2 = torch.stack([x_tbf, x_tbf.flip(0)])
        if in_mask is not None:
            x2 = x2 * in_mask
        return _SplitDirections.apply(x2.view(2, n_steps * batch, n_feat), self.weight_ih, self.bias,
                                      self.weight_hh, rec_mask, n_steps)


def split_model() -> BiLSTMAttention:
    """The paper's model with :class:`SplitBiLSTM` (the same initial weights as BiLSTMAttention())."""
    model = BiLSTMAttention()
    split = SplitBiLSTM(128, 64, dropout=0.2, recurrent_dropout=0.2)
    split.load_state_dict(model.lstm.state_dict())
    model.lstm = split
    return model


def same_bits(batch: int, frames: int, twin: BiLSTMAttention, twin_threads: int = 1, steps: int = 20) -> bool:
    """Train the paper's model (1 thread) and ``twin`` (``twin_threads``) from the same weights and
    dropout streams for a few steps; True when every parameter is the same bit for bit."""
    torch.manual_seed(1)
    ref = BiLSTMAttention()
    twin.load_state_dict(ref.state_dict())
    for model, n in ((ref, 1), (twin, twin_threads)):
        torch.set_num_threads(n)
        model.lstm.rng = MaskRNG(seed=7)  # the same dropout masks in both
        step = make_step(model, batch, frames, 128, 20)
        for _ in range(steps):
            step()
    torch.set_num_threads(1)
    return all(torch.equal(a, b) for a, b in zip(ref.state_dict().values(), twin.state_dict().values()))


def train_threads_same(clips: int = 3000, epochs: int = 2) -> bool:
    """``instrec train`` (bilstm-att, eager) on synthetic OpenMIC-shaped clips with 1 and with 2
    threads; True when the two runs' weights are the same bit for bit."""
    import sys
    import tempfile
    from pathlib import Path

    from safetensors.torch import load_file

    from instrec.training.config import TrainConfig
    from instrec.training.loop import train

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import _common as C

    with tempfile.TemporaryDirectory(prefix="instrec-bench-kernel-") as tmp:
        data = C.synthetic_openmic(Path(tmp) / "data", clips, seed=0)
        weights = []
        for n in (1, 2):
            out = Path(tmp) / f"run{n}"
            train(TrainConfig(data=str(data), out=str(out), epochs=epochs, threads=n, compile="off"), progress=False)
            weights.append(load_file(str(out / "model.safetensors")))
    torch.set_num_threads(1)
    return all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def make_step(model: nn.Module, batch: int, frames: int, n_feat: int,
              n_classes: int, compiled: bool = False) -> Callable[[], None]:
    """A closure running one training step on fixed random data (``compiled``: the loss through
    instrec's torch.compile'd training step, :class:`instrec.training.step.TrainingStep`)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, frames, n_feat, generator=gen)
    y = (torch.rand(batch, n_classes, generator=gen) < 0.3).float()
    mask = torch.rand(batch, n_classes, generator=gen) < 0.4
    opt = torch.optim.Adam(model.parameters(), lr=5e-4)
    model.train()
    loss_of = None
    if compiled:
        from instrec.training.step import TrainingStep

        loss_of = TrainingStep(model, masked_focal_loss, "on", batch_size=batch)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = loss_of(x, y, mask) if loss_of else masked_focal_loss(model(x).clip, y, mask)
        loss.backward()
        opt.step()

    return step


def make_matmul_ceiling(batch: int, frames: int, n_feat: int, n_classes: int, hidden: int = 64) -> Callable[[], None]:
    """A closure computing only the matrix products of one instrec BiLSTM-attention training step."""
    gen = torch.Generator().manual_seed(0)

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen)

    rows, g4 = frames * batch, 4 * hidden
    x2, w_ih, bias, xg = r(2, rows, n_feat), r(2, n_feat, g4), r(2, 1, g4), r(2, batch, g4)
    h, w_hh, dg, w_hh_t = r(2, batch, hidden), r(2, hidden, g4), r(2, batch, g4), r(2, g4, hidden)
    h_in, d_in = r(2, hidden, (frames - 1) * batch), r(2, (frames - 1) * batch, g4)
    x2_t, dg_rows = r(2, n_feat, rows), r(2, rows, g4)
    feats, w_head, d_head = r(rows, 2 * hidden), r(2 * n_classes, 2 * hidden), r(rows, 2 * n_classes)

    def step() -> None:
        torch.baddbmm(bias, x2, w_ih)                # input projection, both directions
        for _ in range(frames - 1):
            xg.baddbmm_(h, w_hh)                     # recurrence, forward
            torch.bmm(dg, w_hh_t)                    # recurrence, backward
        torch.bmm(h_in, d_in)                        # dL/dW_hh
        torch.bmm(x2_t, dg_rows)                     # dL/dW_ih
        torch.nn.functional.linear(feats, w_head)    # head forward
        d_head @ w_head                              # head backward: dL/dfeatures
        d_head.t() @ feats                           # head backward: dL/dW

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--features", type=int, default=128)
    ap.add_argument("--steps", type=int, default=100, help="training steps per timed repeat")
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    variants = {
        "nn.LSTM (fused, no dropout)": PlainLSTMAttention(),
        "baddbmm, autograd per step (no dropout)": AutogradBaddbmmAttention(),
        "instrec BiLSTM (no dropout)": BiLSTMAttention(dropout=0.0, recurrent_dropout=0.0),
        "instrec BiLSTM (dropout 0.2/0.2, paper)": BiLSTMAttention(),
        COMPILED: BiLSTMAttention(),
        TWO_THREADS: BiLSTMAttention(),
        SPLIT: split_model(),
    }
    threads = {TWO_THREADS: 2}  # every other variant: 1
    steps = {k: make_step(m, args.batch, args.frames, args.features, 20, compiled=k == COMPILED)
             for k, m in variants.items()}
    steps[CEILING] = make_matmul_ceiling(args.batch, args.frames, args.features, 20)
    for name, step in steps.items():  # warm-up
        torch.set_num_threads(threads.get(name, 1))
        for _ in range(10):
            step()
    rates: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(args.repeats):
        for name, step in steps.items():
            torch.set_num_threads(threads.get(name, 1))
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step()
            rates[name].append(args.steps * args.batch / (time.perf_counter() - t0))
    torch.set_num_threads(1)
    base = statistics.median(rates["nn.LSTM (fused, no dropout)"])
    split_same = same_bits(args.batch, args.frames, split_model())
    threads_same = same_bits(args.batch, args.frames, BiLSTMAttention(), twin_threads=2)
    run_same = train_threads_same()
    print(f"batch {args.batch}, T={args.frames}, F={args.features}, 1 thread unless named, "
          f"median of {args.repeats} x {args.steps} steps; weights the same bit for bit as with 1 thread: "
          f"directions on 2 Python threads after 20 steps {'yes' if split_same else 'no'}; 2 torch threads "
          f"after 20 steps {'yes' if threads_same else 'no'}, after a 2-epoch instrec train run on 3000 synthetic "
          f"clips {'yes' if run_same else 'no'}")
    for name, r in rates.items():
        med = statistics.median(r)
        print(f"{name:48s} {med:8.0f} clips/s  x{med / base:.2f}  (min {min(r):.0f}, max {max(r):.0f})")


if __name__ == "__main__":
    main()

"""Several models in one compiled training step: does stacking amortise the per-step cost?

The experiment grid spends its time in the compiled training step of one model at a time
(see bench_grid). A step of these small models is partly per-step overhead (Python,
dispatch, autograd, many small kernels), so the obvious remedy is to train K models of
one architecture in one compiled step: weights stacked along a member axis (as in
:mod:`instrec.models.stacked`), batched matrix products, one backward, one Adam. This
script measures that remedy on one thread before anyone builds it into the lockstep
engine:

* solo: instrec's compiled training step (:class:`instrec.training.step.TrainingStep`) of
  one model, as every solo grid run trains;
* stacked: one compiled step of K models, written here for the measurement only: the
  stacked weights of :mod:`instrec.models.stacked`, dropout masks drawn per member as solo
  runs draw them, the grid's mix of losses (cross-entropy and focal alternating), fused Adam.

Both at 10 frames and at 20 (concatenated clips), timed in interleaved blocks so that
background load hits them alike; the median over repeats is reported as clips/s per model.
A short torch.profiler pass gives the share of each step spent in matrix products, which
stacking cannot make cheaper: they are the same products, batched.

    python benchmarks/bench_stacked_step.py [--quick] [--members K] [--steps N] [--repeats R] [--out DIR]
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
import torch  # noqa: E402

# The lockstep engine's recurrence of K BiLSTMs (traceable under torch.compile) and its
# attention pooling over dim 1, (K, T, B, 2C) -> (K, B, C).
from instrec.models.stacked import _pool, _StackedBiLSTMFunction  # noqa: E402

NAME = "bench_stacked_step"
BATCH, N_FEAT, N_CLASSES, HIDDEN = 32, 128, 20, 64
MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")


def _losses(k: int) -> list[Callable]:
    from instrec.training.losses import masked_bce, masked_focal_loss

    return [masked_bce if j % 2 == 0 else masked_focal_loss for j in range(k)]


def stacked_bilstm_loss(losses: list[Callable]) -> Callable:
    """(x (K,B,T,F), in_mask (K,2,1,B,F), rec_mask (2K,B,H), y, m, weights) -> (K,) losses."""

    def loss(x, in_mask, rec_mask, y, m, w_ih, bias, w_hh, head_w, head_b):
        k, b, t, f = x.shape
        x_tbf = x.transpose(1, 2)
        x2 = torch.stack([x_tbf, x_tbf.flip(1)], 1) * in_mask
        h = _StackedBiLSTMFunction.apply(x2.reshape(2 * k, t * b, f), w_ih.reshape(2 * k, f, -1),
                                         bias.reshape(2 * k, -1), w_hh.reshape(2 * k, w_hh.shape[-2], -1),
                                         rec_mask, t)  # (K, T, B, 2H)
        proj = torch.baddbmm(head_b.unsqueeze(1), h.reshape(k, t * b, -1), head_w.transpose(1, 2))
        clip = _pool(proj.view(k, t, b, -1))  # (K, B, C)
        return torch.stack([losses[j](clip[j], y[j], m[j]) for j in range(k)])

    return loss


def _batch_norm(z, weight, bias, mean, var, count):
    """Training-mode BatchNorm of every member over its frames: z (K, N, F), statistics (K, F)."""
    n = z.shape[1]
    mu = z.mean(1, keepdim=True)
    sigma2 = z.var(1, unbiased=False, keepdim=True)
    with torch.no_grad():
        mean.mul_(0.9).add_(mu.squeeze(1), alpha=0.1)
        var.mul_(0.9).add_(sigma2.squeeze(1) * (n / (n - 1)), alpha=0.1)
        count.add_(1)
    return (z - mu) * torch.rsqrt(sigma2 + 1e-5) * weight.unsqueeze(1) + bias.unsqueeze(1)


def stacked_att_loss(losses: list[Callable], n_layers: int) -> Callable:
    """(x (K,B,T,F), masks: n_layers x (K,B*T,F), y, m, params, buffers) -> (K,) losses."""

    def loss(x, masks, y, m, p, s):
        k, b, t, f = x.shape
        frames = x.reshape(k, b * t, f)
        def bn(z, name):
            return _batch_norm(z, p[f"{name}__weight"], p[f"{name}__bias"], s[f"{name}__running_mean"],
                               s[f"{name}__running_var"], s[f"{name}__num_batches_tracked"])

        z = bn(frames, "input_bn")
        for i in range(n_layers):
            z = torch.relu(bn(torch.bmm(z, p[f"convs__{i}__weight"].transpose(1, 2)), f"bns__{i}")) * masks[i]
        proj = torch.baddbmm(p["head__proj__bias"].unsqueeze(1), z + frames, p["head__proj__weight"].transpose(1, 2))
        clip = _pool(proj.view(k, b, t, -1).transpose(1, 2))  # (K, B, C)
        return torch.stack([losses[j](clip[j], y[j], m[j]) for j in range(k)])

    return loss


def make_steps(arch: str, k: int, frames: int) -> tuple[Callable[[], None], Callable[[], None]]:
    """(solo step, stacked step of k models) on fixed random data; both compile on first call."""
    from instrec.models import build_model, model_spec
    from instrec.models.dropout import mask_rngs
    from instrec.training.losses import masked_focal_loss
    from instrec.training.optim import make_optimizer
    from instrec.training.step import TrainingStep

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(k, BATCH, frames, N_FEAT, generator=gen)
    y = (torch.rand(k, BATCH, N_CLASSES, generator=gen) < 0.3).float()
    m = torch.rand(k, BATCH, N_CLASSES, generator=gen) < 0.4
    models = []
    for seed in range(k):
        torch.manual_seed(seed)
        models.append(build_model(arch, n_classes=N_CLASSES, n_features=N_FEAT, n_frames=10))
    solo = models[0]
    solo_opt = make_optimizer(solo.parameters(), 5e-4)
    solo_loss = TrainingStep(solo, masked_focal_loss, "on", BATCH)

    def solo_step() -> None:
        loss = solo_loss(x[0], y[0], m[0])
        solo_opt.zero_grad()
        loss.backward()
        solo_opt.step()

    stacked = model_spec(arch).stacked([build_model(arch, n_classes=N_CLASSES, n_features=N_FEAT, n_frames=10)
                                    for _ in range(k)])
    stacked.train()
    opt = make_optimizer(stacked.parameters(), 5e-4)
    rngs = [mask_rngs(model)[0] for model in models]
    cfg = solo.config
    if arch == "bilstm-att":
        compiled = torch.compile(stacked_bilstm_loss(_losses(k)), dynamic=False, fullgraph=True)
        weights = [stacked.p(n) for n in ("lstm.weight_ih", "lstm.bias", "lstm.weight_hh",
                                          "head.proj.weight", "head.proj.bias")]

        def run() -> torch.Tensor:
            in_mask = torch.stack([r.mask((2, 1, BATCH, N_FEAT), cfg["dropout"]) for r in rngs])
            rec_mask = torch.cat([r.mask((2, BATCH, HIDDEN), cfg["recurrent_dropout"]) for r in rngs])
            return compiled(x, in_mask, rec_mask, y, m, *weights)
    else:
        compiled = torch.compile(stacked_att_loss(_losses(k), cfg["n_layers"]), dynamic=False, fullgraph=True)
        params, buffers = dict(stacked.stacked.items()), dict(stacked.named_buffers())

        def run() -> torch.Tensor:
            masks = [torch.stack([r.mask((BATCH * frames, N_FEAT), cfg["dropout"]) for r in rngs])
                     for _ in range(cfg["n_layers"])]
            return compiled(x, masks, y, m, params, buffers)

    def stacked_step() -> None:
        losses = run()
        opt.zero_grad()
        losses.sum().backward()
        opt.step()

    return solo_step, stacked_step


def matmul_share(step: Callable[[], None], n: int) -> float:
    """Fraction of the self CPU time of ``n`` steps spent in matrix-product operators."""
    from torch.profiler import profile

    with profile() as prof:
        for _ in range(n):
            step()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    return sum(e.self_cpu_time_total for e in events if e.key in MATMUL_OPS) / total if total else float("nan")


def measure(arch: str, k: int, frames: int, steps: int, repeats: int) -> dict[str, Any]:
    solo, stacked = make_steps(arch, k, frames)
    t0 = time.perf_counter()
    for step in (solo, stacked):
        for _ in range(3):
            step()
    warm_s = time.perf_counter() - t0
    solo_rates, stacked_rates = [], []
    for _ in range(repeats):
        solo_rates.append(k * steps * BATCH / C.time_call(lambda: [solo() for _ in range(k * steps)]))
        stacked_rates.append(k * steps * BATCH / C.time_call(lambda: [stacked() for _ in range(steps)]))
    solo_rate, stacked_rate = C.median(solo_rates), C.median(stacked_rates)
    return {"model": arch, "frames": frames, "members": k, "solo_clips_per_s": solo_rate,
            "stacked_clips_per_s": stacked_rate, "ratio": stacked_rate / solo_rate,
            "solo_matmul_share": matmul_share(solo, k * 5), "stacked_matmul_share": matmul_share(stacked, 5),
            "compile_s": warm_s}


def run_child(job: dict[str, Any]) -> dict[str, Any]:
    """One measurement in a fresh process, so that no model's compiled graphs or memory
    left over from an earlier measurement can affect it."""
    res = C.run_child([sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(job)]).check()
    row = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"{row['model']}, {row['frames']} frames: stacked / solo = {row['ratio']:.2f}", flush=True)
    return row


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        job = json.loads(sys.argv[2])
        torch.set_num_threads(1)
        print(json.dumps(measure(job["model"], job["members"], job["frames"], job["steps"], job["repeats"])))
        return
    p = C.base_parser(__doc__.splitlines()[0], default_repeats=5)
    p.add_argument("--members", type=int, default=None, help="models per stacked step (default 6, 2 with --quick)")
    p.add_argument("--steps", type=int, default=None, help="stacked steps per timed block (default 40, 5 with --quick)")
    args = p.parse_args()
    repeats = C.repeats_of(args, default=5)
    k = args.members or (2 if args.quick else 6)
    steps = args.steps or (5 if args.quick else 40)
    frame_counts = (10,) if args.quick else (10, 20)
    rows = [run_child({"model": arch, "members": k, "frames": t, "steps": steps, "repeats": repeats})
            for arch in ("bilstm-att", "att") for t in frame_counts]
    columns = ["model", "frames", "members", "solo_clips_per_s", "stacked_clips_per_s", "ratio",
               "solo_matmul_share", "stacked_matmul_share"]
    headers = {"solo_clips_per_s": "solo step, clips/s", "stacked_clips_per_s": "stacked step, clips/s per model",
               "ratio": "stacked / solo", "solo_matmul_share": "matmul share, solo",
               "stacked_matmul_share": "matmul share, stacked"}
    title = f"One compiled step of {k} stacked models vs {k} compiled solo steps (batch {BATCH}, 1 thread)"
    C.print_table(title, rows, columns, headers)
    notes = [f"Each model and clip length measured in a fresh process, 1 thread. Median of {repeats} interleaved blocks ({steps} stacked steps, {k * steps} solo steps each); "
             "random data; forward, loss, backward and Adam; dropout masks drawn per model in both.",
             "Stacked: weights of instrec.models.stacked, one torch.compile'd forward for all models "
             "(written in this script for the measurement, not part of instrec); solo: "
             "instrec.training.step.TrainingStep, as every solo grid run trains.",
             "Matmul share: self CPU time of mm/addmm/bmm/baddbmm over all operators' self time "
             "(torch.profiler, a few steps); the compiled kernels count as non-matmul time."]
    C.write_results(args.out, NAME, "Stacked models per compiled step", args.quick,
                    {"members": k, "steps": steps, "repeats": repeats, "batch": BATCH, "frames": list(frame_counts)},
                    [C.table("stacked", title, rows, columns, headers)], C.machine_info(), [], notes,
                    {"compile_s": {f"{r['model']}@{r['frames']}": r["compile_s"] for r in rows}})


if __name__ == "__main__":
    main()

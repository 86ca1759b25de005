"""Experiment-grid throughput: instrec's grid (solo or lockstep engine) against sequential plain loops.

The grid is the paper's ablation: {att, bilstm-att} x {bce, focal} x {none, mixup, concat,
both} x 3 seeds = 48 runs. Data: an OpenMIC-*shaped* synthetic dataset (``--clips`` clips x
10 x 128 uint8, 20 classes; not OpenMIC itself). Measured, each in a fresh process, every
measurement repeated and the median reported:

(a) plain loops: the obvious ~30-line PyTorch loop of each architecture (BiLSTM-ATT with
    the fused ``nn.LSTM``, which cannot do recurrent dropout; ATT written out), tensors in
    memory, a permutation per epoch, forward, backward, Adam; no validation, no
    checkpoints. Without augmentation and with mixup 0.2 + concat 0.5 (a concatenated batch
    is twice as long, so concat runs cost more). 1 thread and torch's default threads.
(b) ``instrec train`` of one run (solo), 1 thread;
(c) ``train_lockstep`` of K runs of one architecture (the grid's mix of losses and
    augmentations), 1 thread: model-clips/s = K x training clips / epoch seconds;
(d) the whole 48-run grid with ``instrec.pipelines.experiment.run_specs`` (2 worker processes, 1
    thread each), with the solo engine (one run per task; the default) and, with
    ``--engines solo,lockstep``, the lockstep engine too, each at two epoch counts; the
    difference gives the cost of one epoch of the grid, the rest is fixed cost (start-up,
    data loading, final evaluation).

Rates (a)-(c) come from per-epoch times after the first epoch; (b), (c) and (d) include
validation every epoch, (a) does not. The default data has OpenMIC-2018's size and split
(20,000 clips, 5,085 test; 12,678 training clips after the 15 % hold-out), so nothing is
scaled but the epoch count: sequential plain loops = sum over the 48 runs of 12,678 x 200 /
plain rate (the faster thread count, with or without concat as the run needs); grid = 200 x
(grid epoch seconds) + fixed cost. (On a smaller ``--clips`` both are scaled by the data
ratio, which overstates the grid's per-epoch costs that do not grow with the data, such as
checkpoints.)

    python benchmarks/bench_grid.py [--quick] [--out DIR] [--clips N] [--members K] [--engines E,..] [--repeats R]
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

NAME = "bench_grid"
OPENMIC_TRAIN = 12_678
OPENMIC_CLIPS, OPENMIC_TEST = 20000, 5085  # OpenMIC-2018 and its split01 test partition
PAPER_EPOCHS = 200
TARGET = 3.0  # the issue's target: the grid this many times faster than sequential plain loops
ARCHS = ("bilstm-att", "att")
AUGS = {"none": (0.0, 0.0), "mixup": (0.2, 0.0), "concat": (0.0, 0.5), "both": (0.2, 0.5)}

PLAIN_LOOP_SOURCE = '''
def plain_loop(arch, X, Y, M, epochs, mixup=0.0, concat=0.0, batch_size=32, lr=5e-4, on_epoch=None):
    """X (N, T, 128) float32, Y (N, 20) 0/1 targets, M (N, 20) bool labelled mask."""
    from instrec.data import augment
    from instrec.training.losses import masked_focal_loss

    class Head(nn.Module):  # Kong et al. attention over time
        def __init__(self, d, c=20):
            super().__init__()
            self.proj, self.c = nn.Linear(d, 2 * c), c

        def forward(self, h):
            cla, att = torch.sigmoid(self.proj(h)).split(self.c, dim=-1)
            att = att.clamp(1e-7, 1 - 1e-7)
            return ((att / att.sum(dim=1, keepdim=True)) * cla).sum(dim=1).clamp(0, 1)

    class PlainBiLSTMAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.drop, self.lstm = nn.Dropout(0.2), nn.LSTM(128, 64, batch_first=True, bidirectional=True)
            self.head = Head(128)

        def forward(self, x):
            return self.head(self.lstm(self.drop(x))[0])

    class PlainATT(nn.Module):
        def __init__(self):
            super().__init__()
            self.bn0 = nn.BatchNorm1d(128)
            self.layers = nn.ModuleList(nn.Sequential(nn.Linear(128, 128, bias=False), nn.BatchNorm1d(128),
                                                      nn.ReLU(), nn.Dropout(0.6)) for _ in range(3))
            self.head = Head(128)

        def forward(self, x):
            b, t, f = x.shape
            z = self.bn0(x.reshape(b * t, f))
            for layer in self.layers:
                z = layer(z)
            return self.head((z + x.reshape(b * t, f)).view(b, t, f))

    torch.manual_seed(0)
    model = PlainBiLSTMAttention() if arch == "bilstm-att" else PlainATT()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(0)
    model.train()
    for epoch in range(epochs):
        perm = torch.randperm(len(X), generator=gen)
        for start in range(0, len(X), batch_size):
            i = perm[start:start + batch_size]
            x, y, m = X[i], Y[i], M[i]
            if mixup > 0:
                lam = augment.sample_mixup_lambda(gen, len(i), mixup)
                x, y, m = augment.mixup(x, y, m, lam, torch.randperm(len(i), generator=gen))
            if concat > 0 and float(torch.rand((), generator=gen)) < concat:
                x, y, m = augment.concat(x, y, m, [torch.randperm(len(i), generator=gen)])
            loss = masked_focal_loss(model(x), y, m)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if on_epoch is not None:  # timing hook of the benchmark
            on_epoch(epoch)
'''


# --------------------------------------------------------------------------- child processes
def _member_cfgs(data: str, root: Path, arch: str, k: int, epochs: int) -> list:
    """k runs with the grid's mix: member i has loss bce/focal alternating, augmentation cycling."""
    from instrec.training.config import TrainConfig

    augs = list(AUGS.values())
    return [TrainConfig(data=data, out=str(root / f"m{i}"), model=arch, epochs=epochs, seed=i,
                        loss=("bce", "focal")[i % 2], mixup=augs[(i // 2) % 4][0], concat=augs[(i // 2) % 4][1])
            for i in range(k)]


def _epoch_seconds(run_dir: Path) -> list[float]:
    import csv

    with open(run_dir / "train_log.csv", newline="") as fh:
        return [float(r["seconds"]) for r in csv.DictReader(fh)]


def child(job: dict) -> dict:
    """Run one measurement in this (fresh) process and return what it timed."""
    import torch

    kind, data, root = job["kind"], job["data"], Path(job["root"])
    if kind == "plain":
        from torch import nn

        from instrec.data.openmic import load_split, validation_split

        torch.set_num_threads(job["threads"])
        full = load_split(data, "train")
        sub = full.subset(validation_split(len(full), 0.15, 0)[0])
        X, Y, M = torch.from_numpy(sub.X), torch.from_numpy(sub.targets), torch.from_numpy(sub.Y_mask)
        scope = {"torch": torch, "nn": nn}
        exec(PLAIN_LOOP_SOURCE, scope)
        marks = [time.perf_counter()]
        scope["plain_loop"](job["arch"], X, Y, M, job["epochs"], *job["aug"],
                            on_epoch=lambda e: marks.append(time.perf_counter()))
        return {"epoch_s": [b - a for a, b in zip(marks, marks[1:])], "n_train": len(X),
                "threads": torch.get_num_threads()}
    if kind == "solo":
        from instrec.training.loop import train

        cfg = _member_cfgs(data, root, job["arch"], 8, job["epochs"])[7]  # focal, mixup + concat
        assert cfg.loss == "focal" and (cfg.mixup, cfg.concat) == AUGS["both"]
        cfg.compile, cfg.threads = job["compile"], 1  # one thread, as each grid worker has
        train(cfg, overwrite=True, progress=False)
        return _run_timing(Path(cfg.out))
    if kind == "lockstep":
        from instrec.pipelines.experiment import tune_malloc
        from instrec.training.lockstep import train_lockstep

        tune_malloc()
        cfgs = _member_cfgs(data, root, job["arch"], job["members"], job["epochs"])
        for cfg in cfgs:
            cfg.threads = 1  # one thread, as each grid worker has
        train_lockstep(cfgs, overwrite=True, progress=False)
        return _run_timing(Path(cfgs[0].out))
    if kind == "grid":
        from instrec.pipelines.experiment import grid_specs, run_specs

        specs = [s for s in grid_specs("paper", 3) if s.model in ARCHS]
        t0 = time.perf_counter()
        run_specs(specs, data, root, job["epochs"], jobs=2, engine=job["engine"], max_members=job["max_members"],
                  compile=job["compile"])
        return {"wall_s": time.perf_counter() - t0, "runs": len(specs),
                "n_train": _n_train(root / "runs" / specs[0].name)}
    raise ValueError(kind)


def _n_train(run_dir: Path) -> int:
    return int(json.loads((run_dir / "config.json").read_text())["n_train"])


def _run_timing(run_dir: Path) -> dict:
    """Epoch seconds, training clips and torch threads a finished run recorded."""
    config = json.loads((run_dir / "config.json").read_text())
    return {"epoch_s": _epoch_seconds(run_dir), "n_train": int(config["n_train"]), "threads": int(config["threads"])}


def run_job(job: dict, env: dict | None = None) -> dict:
    res = C.run_child([sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(job)], env=env).check()
    return json.loads(res.stdout.strip().splitlines()[-1])


def steady_rate(runs: list[dict], clips_per_epoch: float) -> float:
    """Clips/s from the median epoch time after the first epoch (one-off warm-up) over all repeats."""
    later = [s for r in runs for s in (r["epoch_s"][1:] or r["epoch_s"])]
    return clips_per_epoch / C.median(later)


# --------------------------------------------------------------------------- main
def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(child(json.loads(sys.argv[2]))))
        return 0
    p = C.base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--clips", type=int, default=None,
                   help=f"clips in the dataset (default {OPENMIC_CLIPS}, OpenMIC's size; --quick 400)")
    p.add_argument("--epochs", type=int, default=None, help="epochs of the (a)-(c) runs (default 3; --quick 2)")
    p.add_argument("--engines", default="solo", help="grid engines to time in (d): solo, lockstep or both "
                   "comma-separated (default solo, instrec's default engine)")
    p.add_argument("--members", type=int, default=6,
                   help="K of measurement (c) (default 6: the grid's group size with 2 workers)")
    p.add_argument("--grid-epochs", default=None, help="the two epoch counts of (d) (default 1,3; --quick 1,2)")
    p.add_argument("--max-members", type=int, default=8, help="largest lockstep group in (d) (default 8)")
    p.add_argument("--compile", default="on", choices=["auto", "on", "off"],
                   help="instrec's --compile for (b) and the solo grid (default on: what `auto` does on the "
                        "paper's 200-epoch runs, which these short runs stand in for)")
    args = p.parse_args()
    repeats = C.repeats_of(args, default=2)
    clips = args.clips or (400 if args.quick else OPENMIC_CLIPS)
    epochs = args.epochs or (2 if args.quick else 3)
    e1, e2 = (int(x) for x in (args.grid_epochs or ("1,2" if args.quick else "1,3")).split(","))
    engines = tuple(e for e in args.engines.split(",") if e)
    if not engines or any(e not in ("solo", "lockstep") for e in engines):
        p.error(f"--engines: choose from solo, lockstep (got {args.engines!r})")
    machine = C.machine_info()
    threads = sorted({1, machine["torch_threads_default"]})
    print(f"bench_grid: {clips} synthetic OpenMIC-shaped clips, {epochs} epoch(s) for (a)-(c), grid at {e1} and "
          f"{e2} epochs, {repeats} repeat(s), median reported{' [QUICK MODE]' if args.quick else ''}")
    print(f"machine: {C.machine_line(machine)}", flush=True)

    plain: dict[tuple, list] = {}
    solo: dict[str, list] = {}
    lock: dict[str, list] = {}
    grid: dict[tuple, list] = {(g, e): [] for g in engines for e in (e1, e2)}
    with C.workdir(args, "instrec-bench-grid-") as work:
        data = str(C.synthetic_openmic(work / "data", clips, seed=0, test_fraction=OPENMIC_TEST / OPENMIC_CLIPS))
        base = {"data": data, "root": str(work / "runs"), "compile": args.compile}
        C.fresh_compile_cache(work)
        warm_s = None
        if args.compile != "off":
            # Compiled graphs depend on batch size, clip length, model and loss, not on the data, so a
            # 1-epoch grid on 400 clips fills the compile cache; every timed grid below then finds it
            # warm, as a user's grids do after their first (otherwise the first timed grid would carry
            # all compilations and bias the per-epoch difference).
            small = str(C.synthetic_openmic(work / "warm-data", 400, seed=0, test_fraction=0.25))
            r = run_job({**base, "data": small, "kind": "grid", "epochs": 1, "max_members": args.max_members,
                         "engine": "solo", "root": str(work / "grid-warm-up")})
            warm_s = r["wall_s"]
            print(f"compile-cache warm-up (the {r['runs']} runs on 400 clips, 1 epoch): {warm_s:.1f} s", flush=True)
        for rep in range(repeats):
            print(f"repeat {rep + 1}/{repeats}", flush=True)
            for arch in ARCHS:
                for aug, values in AUGS.items():
                    for th in threads:
                        r = run_job({**base, "kind": "plain", "arch": arch, "aug": values, "epochs": epochs,
                                     "threads": th})
                        plain.setdefault((arch, aug, th), []).append(r)
                solo.setdefault(arch, []).append(run_job({**base, "kind": "solo", "arch": arch, "epochs": epochs}))
                lock.setdefault(arch, []).append(run_job({**base, "kind": "lockstep", "arch": arch,
                                                          "members": args.members, "epochs": epochs}))
                print(f"  {arch}: plain/solo/lockstep done", flush=True)
            for engine in engines:
                for e in (e1, e2):
                    r = run_job({**base, "kind": "grid", "epochs": e, "max_members": args.max_members,
                                 "engine": engine, "root": str(work / f"grid-{engine}-{rep}-{e}")})
                    grid[(engine, e)].append(r)
                    print(f"  {engine} grid of {r['runs']} runs, {e} epoch(s): {r['wall_s']:.1f} s", flush=True)

    n_train = lock[ARCHS[0]][0]["n_train"]
    rows = []
    plain_rate: dict[tuple, float] = {}
    for (arch, aug, th), runs in plain.items():
        rate = steady_rate(runs, n_train)
        rows.append({"implementation": "plain loop", "model": arch, "augmentation": aug, "threads": th,
                     "runs": 1, "clips_per_s": rate})
        plain_rate[(arch, aug)] = max(rate, plain_rate.get((arch, aug), 0.0))
    for arch in ARCHS:
        rows.append({"implementation": "instrec train (solo)", "model": arch, "augmentation": "both",
                     "threads": solo[arch][0]["threads"], "runs": 1, "clips_per_s": steady_rate(solo[arch], n_train)})
        rows.append({"implementation": "lockstep", "model": arch, "augmentation": "grid mix",
                     "threads": lock[arch][0]["threads"], "runs": args.members,
                     "clips_per_s": steady_rate(lock[arch], args.members * n_train)})

    n_runs = grid[(engines[0], e1)][0]["runs"]
    scale = OPENMIC_TRAIN / n_train
    fit = {}
    for engine in engines:
        w1, w2 = (C.median([r["wall_s"] for r in grid[(engine, e)]]) for e in (e1, e2))
        per_epoch = (w2 - w1) / (e2 - e1)
        fixed = max(0.0, w1 - e1 * per_epoch)
        fit[engine] = {"wall_s": {str(e1): w1, str(e2): w2}, "epoch_s": per_epoch, "fixed_s": fixed,
                       "hours": (PAPER_EPOCHS * per_epoch + fixed) * scale / 3600}
        rows.append({"implementation": f"{engine} grid, 2 processes", "model": "both", "augmentation": "grid mix",
                     "threads": 1, "runs": n_runs, "clips_per_s": n_runs * n_train / per_epoch})
    runs_per_cell = n_runs // (len(ARCHS) * len(AUGS))
    seq_h = sum(runs_per_cell * OPENMIC_TRAIN * PAPER_EPOCHS / plain_rate[(a, g)] for a in ARCHS for g in AUGS) / 3600
    seq1_h = sum(runs_per_cell * OPENMIC_TRAIN * PAPER_EPOCHS / steady_rate(plain[(a, g, 1)], n_train)
                 for a in ARCHS for g in AUGS) / 3600
    issue_h = n_runs * OPENMIC_TRAIN * PAPER_EPOCHS / plain_rate[("bilstm-att", "none")] / 3600
    best = min(engines, key=lambda e: fit[e]["hours"])
    grid_h = fit[best]["hours"]
    grid_rows = [
        {"variant": "sequential plain loops (each run its architecture's and augmentation's plain loop, "
                    "faster thread count)", "hours": seq_h, "speedup": 1.0},
        {"variant": "sequential plain loops, 1 thread", "hours": seq1_h, "speedup": seq_h / seq1_h},
        {"variant": "sequential plain loops, every run at the plain BiLSTM rate without augmentation (the "
                    "issue's way of estimating)", "hours": issue_h, "speedup": seq_h / issue_h},
        *({"variant": f"instrec grid, engine=\"{e}\": 2 worker processes x 1 thread, "
                      + ("one run per task" if e == "solo" else "lockstep groups"),
           "hours": fit[e]["hours"], "speedup": seq_h / fit[e]["hours"]} for e in engines),
    ]
    # What the target asks of the grid, in the throughput it would need (validation, checkpoints and
    # augmentation included, as in the grid measured here).
    best_rate = n_runs * n_train / fit[best]["epoch_s"]
    needed_rate = best_rate * TARGET / (seq_h / grid_h)
    cores = machine["usable_cores"]
    grid_rows.append({"variant": f"target: {TARGET:g}x the sequential plain loops", "hours": seq_h / TARGET,
                      "speedup": TARGET})
    cols = ["implementation", "model", "augmentation", "threads", "runs", "clips_per_s"]
    heads = {"clips_per_s": "model-clips/s"}
    C.print_table("Training throughput (model-clips/s: training clips x runs per second; median)", rows, cols, heads)
    C.print_table(f"Paper grid ({n_runs} runs) at OpenMIC size (12,678 training clips, 200 epochs), extrapolated",
                  grid_rows, ["variant", "hours", "speedup"], {"speedup": "speed-up"})
    for engine, f in fit.items():
        print(f"{engine} grid measured: {f['wall_s'][str(e1)]:.1f} s at {e1} epochs, {f['wall_s'][str(e2)]:.1f} s at "
              f"{e2}: {f['epoch_s']:.2f} s per grid epoch ({n_runs} runs x {n_train} clips), {f['fixed_s']:.1f} s "
              f"fixed; data ratio to OpenMIC {scale:.2f}")
    targets = [C.target(f"paper grid at OpenMIC size: sequential plain loops / instrec grid (engine {best}, "
                        "2 processes)", seq_h / grid_h, ">=", TARGET, "x")]
    C.print_targets(targets)
    notes = [
        "Synthetic OpenMIC-shaped data (write_openmic), not OpenMIC-2018.",
        "Plain loops are timed on their epoch loop only (no validation, no checkpoints); instrec solo, lockstep "
        "and the grid validate every epoch and write checkpoints. Rates use the epochs after the first.",
        f"Grid: {n_runs} runs ({', '.join(ARCHS)} x bce/focal x {'/'.join(AUGS)} x 3 seeds) through "
        "instrec.pipelines.experiment.run_specs with jobs=2 (one process per core, 1 thread each; engine lockstep: groups "
        "of up to --max-members runs, engine solo: one run per task), evaluation of every run on the test split "
        "included.",
        f"Extrapolation to 200 epochs: grid = (200 x seconds per grid epoch + fixed seconds) x 12,678 / training "
        f"clips here ({n_train:,}); "
        "sequential = sum over runs of 12,678 x 200 / plain-loop rate of the run's architecture and augmentation.",
        f"{TARGET:g}x the sequential plain loops takes a grid training at about "
        f"{needed_rate:,.0f} model-clips/s, {needed_rate / cores:,.0f} per core on {cores} core(s), validation, "
        f"checkpoints and augmentation included: {needed_rate / best_rate:.2f}x what it reaches here.",
        f"instrec runs (b) and the solo grid use --compile {args.compile} (torch.compile of the training step; "
        "`auto`, the default, compiles the paper's 200-epoch runs, which the short runs here stand in for). "
        "The compile cache starts empty and is filled by an untimed 1-epoch grid on 400 clips before the timed "
        "grids" + (f" ({warm_s:.0f} s, i.e. the one-off compilation a machine's first grid pays on top)"
                   if warm_s is not None else "") + "; each run still traces and loads its graphs (fixed cost).",
    ]
    path = C.write_results(args.out, NAME, "Experiment-grid throughput: instrec vs sequential plain loops",
                           args.quick, {"clips": clips, "epochs": epochs, "members": args.members, "engines": engines,
                                        "grid_epochs": [e1, e2], "max_members": args.max_members,
                                        "compile": args.compile, "compile_warm_up_s": warm_s,
                                        "repeats": repeats, "plain_loop_source": PLAIN_LOOP_SOURCE.strip()},
                           [C.table("throughput", "Training throughput", rows, cols, heads),
                            C.table("grid", "Paper grid at OpenMIC size (extrapolated)", grid_rows,
                                    ["variant", "hours", "speedup"], {"speedup": "speed-up"})],
                           machine, targets, notes,
                           {"headline": {"grid": fit, "n_train": n_train, "sequential_plain_hours": seq_h,
                                         "sequential_plain_1_thread_hours": seq1_h, "issue_estimate_hours": issue_h,
                                         "grid_engine": best, "grid_hours": grid_h, "speedup": seq_h / grid_h,
                                         "grid_model_clips_per_s": best_rate,
                                         "needed_model_clips_per_s": needed_rate}})
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

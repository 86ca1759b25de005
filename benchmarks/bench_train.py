"""Training throughput of every neural model, and `instrec train` against a plain PyTorch loop.

Data: an OpenMIC-*shaped* synthetic dataset (not OpenMIC itself): N clips x 10 frames x 128
uint8 features, 20 classes, 2 labelled classes per clip, written with
``instrec.data.openmic.write_openmic``. ``instrec train`` trains on the train partition
minus its 15 % validation hold-out; the plain loop gets exactly those clips.

Measured, each repeated and the median reported (variants interleaved in every repeat):

* ``instrec train --model M`` for M in bilstm-att, att, fc, fc-t, rnn at the paper's
  settings (batch 32, Adam 5e-4, focal loss), augmentation off and with mixup 0.2 +
  concat 0.5 (``fc`` takes fixed-length clips, so it gets mixup only). Two speeds:
  *command* clips/s = training clips x epochs / wall time of the whole subprocess
  (interpreter and torch start-up, data loading, validation every epoch, checkpoints,
  threshold tuning), and *loop* clips/s from the per-epoch seconds in ``train_log.csv``
  (training + validation of each epoch).
* The plain loop: the obvious implementation of the same BiLSTM-attention model
  (fused ``nn.LSTM``, which cannot do recurrent dropout; input dropout 0.2; the same
  Kong attention head and masked focal loss written inline), tensors in memory, a random
  permutation per epoch, forward, backward, Adam step, nothing else: no validation, no
  checkpoints. Only its loop is timed (start-up and data loading excluded), in a fresh
  process, with 1 thread and with torch's default thread count; the faster counts.

``instrec train`` runs with its defaults, so the headline run compiles its training step with
``torch.compile`` (``--compile auto``); the short runs of bilstm-att and att pass
``--compile on`` to show the compiled steady state. The compile cache starts empty, so the
first repeat pays the one-off compilation.

Headline: speed-up = plain-loop seconds / `instrec train --model bilstm-att` command seconds,
augmentation off (target >= 1.2x). The default data has OpenMIC-2018's size and split01
proportions (20,000 clips, 5,085 of them test; 12,678 training clips after the hold-out), so
both sides train on the paper's clips for the paper's 200 epochs. The command pays a fixed
cost outside its epoch loop (mostly importing torch, about 1.3 s here), so the ratio grows with
the epoch count; the outside-loop seconds and the epoch-loop ratio, which does not depend on
the epoch count, are printed beside it, so the ratio at any other epoch count follows. The
other models run 5 epochs (their clips/s do not depend on it).

    python benchmarks/bench_train.py [--quick] [--out DIR] [--clips N] [--epochs E] [--other-epochs E] [--repeats R]
"""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

MODELS = ("bilstm-att", "att", "fc", "fc-t", "rnn")
COMPILED_MODELS = ("bilstm-att", "att")  # the models whose training step torch.compile can take
MIXUP, CONCAT = 0.2, 0.5
OPENMIC_CLIPS, OPENMIC_TEST = 20000, 5085  # OpenMIC-2018 and its split01 test partition
NAME = "bench_train"


# --------------------------------------------------------------------------- the plain loop
PLAIN_LOOP_SOURCE = '''
def plain_loop(X, Y, M, epochs, batch_size=32, lr=5e-4, seed=0, alpha=0.75, gamma=2.0, on_epoch=None):
    """X (N, T, 128) float32, Y (N, 20) 0/1 targets, M (N, 20) labelled mask -> trained model."""
    torch.manual_seed(seed)

    class PlainBiLSTMAttention(nn.Module):
        def __init__(self, n_features=128, hidden=64, n_classes=20):
            super().__init__()
            self.drop = nn.Dropout(0.2)
            self.lstm = nn.LSTM(n_features, hidden, batch_first=True, bidirectional=True)
            self.proj = nn.Linear(2 * hidden, 2 * n_classes)
            self.n_classes = n_classes

        def forward(self, x):
            h, _ = self.lstm(self.drop(x))
            cla, att = torch.sigmoid(self.proj(h)).split(self.n_classes, dim=-1)
            att = att.clamp(1e-7, 1 - 1e-7)
            att = att / att.sum(dim=1, keepdim=True)
            return (att * cla).sum(dim=1).clamp(0, 1)

    def focal(p, y, m):
        p = p.clamp(1e-7, 1 - 1e-7)
        loss = -(alpha * y * (1 - p) ** gamma * torch.log(p) + (1 - alpha) * (1 - y) * p ** gamma * torch.log1p(-p))
        return (loss * m).sum() / m.sum().clamp(min=1)

    model = PlainBiLSTMAttention()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for epoch in range(epochs):
        perm = torch.randperm(len(X))
        for start in range(0, len(X), batch_size):
            idx = perm[start:start + batch_size]
            loss = focal(model(X[idx]), Y[idx], M[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if on_epoch is not None:  # timing hook of the benchmark
            on_epoch(epoch)
    return model
'''


def plain_loop_child(data_dir: str, epochs: int, threads: int, seed: int) -> None:
    """Entry point of the child process: load the same training clips, time the plain loop."""
    import time

    import torch
    from torch import nn

    from instrec.data.openmic import load_split, validation_split

    if threads > 0:
        torch.set_num_threads(threads)
    data = load_split(data_dir, "train")
    tr, _ = validation_split(len(data), 0.15, seed)
    sub = data.subset(tr)
    X, Y = torch.from_numpy(sub.X), torch.from_numpy(sub.targets)
    M = torch.from_numpy(sub.Y_mask.astype("float32"))
    scope = {"torch": torch, "nn": nn}
    exec(PLAIN_LOOP_SOURCE, scope)  # the loop is kept as source text so the JSON can show it
    marks = []
    t0 = time.perf_counter()
    scope["plain_loop"](X, Y, M, epochs, seed=seed, on_epoch=lambda e: marks.append(time.perf_counter()))
    seconds = time.perf_counter() - t0
    epoch_s = [b - a for a, b in zip([t0, *marks[:-1]], marks)]
    print(json.dumps({"loop_seconds": seconds, "epoch_seconds": epoch_s, "n_train": len(X),
                      "threads": torch.get_num_threads()}))


# --------------------------------------------------------------------------- measurements
def instrec_train(data: Path, run: Path, model: str, epochs: int, augment: bool, seed: int,
                  compile_mode: str = "auto") -> dict:
    argv = C.instrec_argv("train", "--data", str(data), "--model", model, "--epochs", str(epochs),
                          "--seed", str(seed), "--out", str(run), "--overwrite", "--quiet", "--compile", compile_mode)
    if augment:
        argv += ["--mixup", str(MIXUP)] + (["--concat", str(CONCAT)] if model != "fc" else [])
    res = C.run_child(argv).check()
    with open(run / "train_log.csv", newline="") as fh:
        epoch_s = [float(r["seconds"]) for r in csv.DictReader(fh)]
    loop_seconds = sum(epoch_s)
    config = json.loads((run / "config.json").read_text())
    return {"wall_s": res.wall_s, "loop_s": loop_seconds, "epoch_s": epoch_s, "n_train": config["n_train"],
            "threads": config["threads"], "engine": config["training_engine"]["engine"], "max_rss_mib": res.max_rss_mib, "command": C.display_command(argv)}


def plain_run(data: Path, epochs: int, threads: int, seed: int, env: dict | None = None) -> dict:
    argv = [sys.executable, str(Path(__file__).resolve()), "--plain-loop-child", str(data), str(epochs),
            str(threads), str(seed)]
    res = C.run_child(argv, env=env).check()
    out = json.loads(res.stdout.strip().splitlines()[-1])
    return {"wall_s": res.wall_s, "loop_s": out["loop_seconds"], "epoch_s": out["epoch_seconds"],
            "n_train": out["n_train"], "threads": out["threads"], "max_rss_mib": res.max_rss_mib}


def epoch_stats(runs: list[dict]) -> dict:
    """Median first-epoch seconds and steady-state clips/s (median over the later epochs)."""
    first = C.median([r["epoch_s"][0] for r in runs if r.get("epoch_s")])
    later = C.median([x for r in runs for x in r.get("epoch_s", [])[1:]])
    return {"first_epoch_s": first, "later_epochs_clips_per_s": runs[0]["n_train"] / later if later == later else None}


def main() -> int:
    if len(sys.argv) == 6 and sys.argv[1] == "--plain-loop-child":
        plain_loop_child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
        return 0
    p = C.base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--clips", type=int, default=None,
                   help=f"clips in the dataset (default {OPENMIC_CLIPS}, OpenMIC's size; --quick 500)")
    p.add_argument("--epochs", type=int, default=None,
                   help="epochs of the headline pair (instrec bilstm-att and the plain loop; default 200, "
                        "the paper's protocol; --quick 3)")
    p.add_argument("--other-epochs", type=int, default=None,
                   help="epochs of the other models and of augmented runs (default 5, --quick 2)")
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated models")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    repeats = C.repeats_of(args)
    clips = args.clips or (500 if args.quick else OPENMIC_CLIPS)
    epochs = args.epochs or (3 if args.quick else 200)
    other_epochs = args.other_epochs or (2 if args.quick else 5)
    models = [m for m in args.models.split(",") if m]
    machine = C.machine_info()
    default_threads = machine["torch_threads_default"]
    print(f"bench_train: {clips} synthetic OpenMIC-shaped clips (10 x 128 uint8, 2 labels/clip), {epochs} "
          f"epoch(s) for the headline pair, {other_epochs} for the rest, {repeats} repeat(s), median reported"
          f"{' [QUICK MODE]' if args.quick else ''}")
    print(f"machine: {C.machine_line(machine)}", flush=True)

    plain_variants = {"plain loop, 1 thread": (1, None)}
    if default_threads != 1:
        plain_variants[f"plain loop, {default_threads} threads (torch default)"] = (default_threads, None)

    with C.workdir(args, "instrec-bench-train-") as work:
        data = C.synthetic_openmic(work / "data", clips, seed=args.seed, test_fraction=OPENMIC_TEST / OPENMIC_CLIPS)
        C.fresh_compile_cache(work)
        results: dict[tuple[str, bool], list[dict]] = {}
        plain: dict[str, list[dict]] = {k: [] for k in plain_variants}
        for rep in range(repeats):
            print(f"repeat {rep + 1}/{repeats}", flush=True)
            # The headline pair first, back to back, so they see the same background load.
            order = [("bilstm-att", False)] + [(m, a) for m in models for a in (False, True)
                                               if (m, a) != ("bilstm-att", False)]
            order = [o for o in order if o[0] in models]
            for i, (model, aug) in enumerate(order):
                n_epochs = epochs if i == 0 else other_epochs
                # The headline run uses the default (auto: compiled on a run this long); the short
                # runs force compilation where a model supports it, to show its steady state.
                mode = "auto" if i == 0 else ("on" if model in COMPILED_MODELS else "auto")
                r = instrec_train(data, work / "run", model, n_epochs, aug, args.seed, mode)
                r["epochs"] = n_epochs
                results.setdefault((model, aug), []).append(r)
                print(f"  instrec train {model:<10} aug={'on ' if aug else 'off'} {r['wall_s']:7.2f} s "
                      f"(epoch loop {r['loop_s']:.2f} s, {r['engine']})", flush=True)
                if i == 0:
                    for label, (threads, env) in plain_variants.items():
                        pr = plain_run(data, epochs, threads, args.seed, env)
                        plain[label].append(pr)
                        print(f"  {label:<50} {pr['loop_s']:7.2f} s (loop only)", flush=True)

    rows = []
    for (model, aug), runs in results.items():
        n = runs[0]["n_train"] * runs[0]["epochs"]
        wall, loop = C.median([r["wall_s"] for r in runs]), C.median([r["loop_s"] for r in runs])
        rows.append({"implementation": f"instrec train ({runs[0]['engine']})", "model": model,
                     "augmentation": (f"mixup {MIXUP}" + (f" + concat {CONCAT}" if model != "fc" else "")) if aug else "off",
                     "threads": runs[0]["threads"], "train_clips": runs[0]["n_train"], "epochs": runs[0]["epochs"],
                     "command_s": wall, "command_clips_per_s": n / wall,
                     "loop_s": loop, "loop_clips_per_s": n / loop, "outside_loop_s": wall - loop,
                     **epoch_stats(runs), "peak_rss_mib": C.median([r["max_rss_mib"] for r in runs]), "repeats": len(runs)})
    for label, runs in plain.items():
        if not runs:
            continue
        n = runs[0]["n_train"] * epochs
        loop = C.median([r["loop_s"] for r in runs])
        rows.append({"implementation": label, "model": "bilstm-att (nn.LSTM)", "augmentation": "off",
                     "threads": runs[0]["threads"], "train_clips": runs[0]["n_train"], "epochs": epochs,
                     "command_s": C.median([r["wall_s"] for r in runs]), "command_clips_per_s": None,
                     "loop_s": loop, "loop_clips_per_s": n / loop, **epoch_stats(runs),
                     "peak_rss_mib": C.median([r["max_rss_mib"] for r in runs]), "repeats": len(runs)})

    targets, headline = [], {}
    ref = results.get(("bilstm-att", False))
    counted = [k for k in plain if "(info)" not in k and plain[k]]
    if ref and counted:
        best = min(counted, key=lambda k: C.median([r["loop_s"] for r in plain[k]]))
        plain_s = C.median([r["loop_s"] for r in plain[best]])
        cmd_s = C.median([r["wall_s"] for r in ref])
        loop_s = C.median([r["loop_s"] for r in ref])
        per_rep = [pl["loop_s"] / ir["wall_s"] for pl, ir in zip(plain[best], ref)]
        headline = {"baseline": best, "instrec_engine": ref[0]["engine"], "outside_loop_s": cmd_s - loop_s, "plain_loop_s": plain_s, "instrec_command_s": cmd_s,
                    "speedup_command_vs_plain": plain_s / cmd_s, "speedup_loop_vs_plain": plain_s / loop_s,
                    "speedup_per_repeat": per_rep,
                    "plain_process_s": C.median([r["wall_s"] for r in plain[best]]),
                    "speedup_command_vs_plain_process": C.median([r["wall_s"] for r in plain[best]]) / cmd_s}
        targets.append(C.target("`instrec train --model bilstm-att` (whole command) vs plain loop, aug off",
                                plain_s / cmd_s, ">=", 1.2, "x"))

    columns = ["implementation", "model", "augmentation", "threads", "train_clips", "epochs", "command_s",
               "command_clips_per_s", "loop_s", "loop_clips_per_s", "outside_loop_s", "first_epoch_s",
               "later_epochs_clips_per_s", "peak_rss_mib"]
    headers = {"command_s": "command s", "command_clips_per_s": "command clips/s", "loop_s": "loop s",
               "loop_clips_per_s": "loop clips/s", "outside_loop_s": "outside loop s",
               "first_epoch_s": "1st epoch s", "later_epochs_clips_per_s": "later epochs clips/s", "train_clips": "train clips", "peak_rss_mib": "peak RSS MiB"}
    C.print_table("Training throughput (synthetic OpenMIC-shaped data; median of repeats)", rows, columns, headers)
    if headline:
        print(f"speed-up of the whole `instrec train --model bilstm-att` command over the plain loop "
              f"({headline['baseline']}, loop only): {headline['speedup_command_vs_plain']:.2f}x "
              f"(per repeat: {', '.join(f'{x:.2f}' for x in headline['speedup_per_repeat'])}); "
              f"epoch loop alone: {headline['speedup_loop_vs_plain']:.2f}x; whole command vs the plain loop's whole "
              f"process (start-up and data loading included): {headline['speedup_command_vs_plain_process']:.2f}x")
    C.print_targets(targets)
    notes = [
        "Synthetic OpenMIC-shaped data (random uint8 features with a weak class signal), not OpenMIC-2018.",
        "command = wall time of the whole `instrec train` subprocess: start-up, data loading, validation every "
        "epoch, recurrent dropout 0.2, a checkpoint per epoch, threshold tuning. loop = sum of the per-epoch seconds "
        "in train_log.csv (training + validation). 1st epoch s / later epochs clips/s: the first epoch (it carries "
        "one-off warm-up, e.g. fused nn.LSTM's first calls) and the median of the later ones (steady state).",
        "The plain loop is timed on its loop only (no start-up, no data loading, no validation) in a fresh process; "
        "the faster of 1 thread and torch's default thread count is the baseline.",
        "instrec train uses its default threads (see instrec.runinfo; the usable cores, at most 2, before the thread "
        "policy); the headline pair runs "
        f"{epochs} epochs, the other rows {other_epochs}.",
        "fc needs fixed-length clips, so its augmented run uses mixup only.",
        "Engine (in the implementation column): instrec's default `--compile auto` compiles the training step "
        "with torch.compile (Inductor, C++ kernels built with the machine's g++) for bilstm-att and att on runs of "
        ">= 20,000 steps, so the headline run is compiled; the shorter rows of those two models pass "
        "`--compile on` to show the compiled steady state, and their command time is dominated by the one-off "
        "compilation. The benchmark starts with an empty compile cache (TORCHINDUCTOR_CACHE_DIR in its scratch "
        "folder): the first repeat of a configuration pays the full compilation, later repeats load it from the "
        "cache, as a user's later runs do; per-repeat ratios show both.",
        "On 2-vCPU virtual machines, two-thread training (instrec's and the plain loop's) was seen to switch "
        "between a fast and a slow mode, between runs and even within one, presumably with the host's scheduling "
        "of the second vCPU; hence the per-repeat ratios.",
    ]
    path = C.write_results(args.out, NAME, "Training throughput", args.quick,
                           {"clips": clips, "epochs": epochs, "other_epochs": other_epochs, "repeats": repeats, "batch_size": 32, "lr": 5e-4,
                            "loss": "focal", "mixup": MIXUP, "concat": CONCAT, "models": models,
                            "data": "synthetic OpenMIC-shaped (write_openmic), 10 x 128 uint8, 2 labels/clip",
                            "plain_loop_source": PLAIN_LOOP_SOURCE.strip()},
                           [C.table("throughput", "Training throughput", rows, columns, headers)],
                           machine, targets, notes, {"headline": headline})
    print(f"\nwrote {path} and {path.with_suffix('.csv')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

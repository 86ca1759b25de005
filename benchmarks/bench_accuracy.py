"""Accuracy: the paper's experiment grid on an OpenMIC-layout dataset, as mean ± std over seeds.

Runs ``instrec experiment --data DIR --grid GRID --seeds S --out EXP`` as a subprocess and
collects, per configuration (model, loss, augmentation), macro F1, micro F1, 2-class
macro F1 and mean average precision (mean ± std over seeds) from ``EXP/results.csv``,
plus the Fig. 2 / Fig. 3 plots the experiment draws (copied to ``OUT/accuracy/``).

Data: any OpenMIC-layout folder (``--data``, e.g. the real OpenMIC-2018 from
``instrec download openmic``); by default the offline synthetic corpus rendered by
``instrec synth --clips 2000 --seed 0`` (synthetic music, *not* OpenMIC: its scores say
how the models compare on it, not what they score on OpenMIC).

The default (paper grid: 20 configurations x 3 seeds, 200 epochs each) takes an hour or more
on 2 cores; ``--experiment-dir`` keeps the runs, and a re-run continues where it stopped
(finished runs are reused).

    python benchmarks/bench_accuracy.py [--quick] [--out DIR] [--data DIR] [--grid paper] [--seeds 3]
                                        [--epochs 200] [--jobs 2] [--experiment-dir DIR]
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

NAME = "bench_accuracy"
METRICS = ("macro_f1", "micro_f1", "macro_f1_2class", "mean_ap")
METRIC_NAMES = {"macro_f1": "macro F1", "micro_f1": "micro F1", "macro_f1_2class": "2-class macro F1",
                "mean_ap": "mean AP"}
FIGURES = ("fig2_macro_f1.png", "fig3_per_instrument_f1.png")


def summary_rows(results_csv: Path) -> list[dict]:
    from instrec.evaluation import report

    rows = [{k: v for k, v in r.items() if k != "per_class_f1"} for r in report.read_results_csv(results_csv)]
    out = []
    for s in report.summarise(rows):
        row = {"model": s.get("model"), "loss": s.get("loss"), "augment": s.get("augment"), "seeds": s["n"]}
        for m in METRICS:
            row[m] = s[f"{m}_mean"]
            row[f"{m}_std"] = s[f"{m}_std"]
            row[f"{m}_text"] = f"{s[f'{m}_mean']:.3f} ± {s[f'{m}_std']:.3f}"
        if "train_seconds_mean" in s:
            row["train_s"] = s["train_seconds_mean"]
        out.append(row)
    return out


def main() -> int:
    p = C.base_parser(__doc__.split("\n\n")[0], default_repeats=1)
    p.add_argument("--data", help="OpenMIC-layout dataset (default: render the synthetic corpus)")
    p.add_argument("--synth-clips", type=int, default=None, help="clips of the default corpus (default 2000; "
                   "--quick 200)")
    p.add_argument("--grid", default=None, help="experiment grid: paper, demo, baselines, smoke "
                   "(default paper; --quick smoke)")
    p.add_argument("--seeds", type=int, default=None, help="seeds per configuration (default 3; --quick 2)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per run (default: instrec's, 200; --quick 2)")
    p.add_argument("--jobs", type=int, default=2, help="runs trained in parallel (default 2)")
    p.add_argument("--experiment-dir", help="keep the experiment (runs, figures) here; reused when re-run")
    args = p.parse_args()
    grid = args.grid or ("smoke" if args.quick else "paper")
    seeds = args.seeds or (2 if args.quick else 3)
    epochs = args.epochs or (2 if args.quick else None)
    synth_clips = args.synth_clips or (200 if args.quick else 2000)
    machine = C.machine_info()
    print(f"bench_accuracy: grid {grid}, {seeds} seed(s), epochs {epochs or 'default (200)'}"
          f"{' [QUICK MODE]' if args.quick else ''}")
    print(f"machine: {C.machine_line(machine)}", flush=True)

    out = Path(args.out)
    fig_dir = out / "accuracy"
    with C.workdir(args, "instrec-bench-accuracy-") as work:
        commands = []
        if args.data:
            data = Path(args.data)
            data_desc = f"{data} (given)"
        else:
            data = work / f"synth-corpus-{synth_clips}"
            argv = C.instrec_argv("synth", "--out", str(data), "--clips", str(synth_clips), "--seed", "0", "--quiet")
            commands.append(C.display_command(argv).replace(str(data), "CORPUS"))
            if (data / "openmic-2018.npz").is_file():
                print(f"reusing the corpus in {data}", flush=True)
            else:
                print(f"rendering the synthetic corpus: {commands[-1]}", flush=True)
                C.run_child(argv).check()
            data_desc = f"synthetic corpus, `instrec synth --clips {synth_clips} --seed 0` (not OpenMIC)"
        exp = Path(args.experiment_dir) if args.experiment_dir else work / "experiment"
        argv = C.instrec_argv("experiment", "--data", str(data), "--grid", grid, "--seeds", str(seeds),
                              "--jobs", str(args.jobs), "--out", str(exp), "--quiet")
        if epochs:
            argv += ["--epochs", str(epochs)]
        if (exp / "results.csv").exists():
            argv.append("--overwrite")  # finished runs are reused; only the tables and figures are redone
        commands.append(C.display_command(argv).replace(str(exp), "EXP").replace(str(data), "CORPUS"
                                                                                  if not args.data else str(data)))
        print(f"running: {commands[-1]}", flush=True)
        res = C.run_child(argv).check()
        print(f"experiment finished in {res.wall_s:.1f} s", flush=True)
        rows = summary_rows(exp / "results.csv")
        fig_dir.mkdir(parents=True, exist_ok=True)
        figures = []
        for name in (*FIGURES, "results.csv", "summary.md"):
            if (exp / name).is_file():
                shutil.copy2(exp / name, fig_dir / name)
                figures.append(str((fig_dir / name).relative_to(out)) if fig_dir.is_relative_to(out) else name)
        experiment_json = json.loads((exp / "experiment.json").read_text()) if (exp / "experiment.json").is_file() else {}

    columns = ["model", "loss", "augment", "seeds", *(f"{m}_text" for m in METRICS)]
    headers = {f"{m}_text": METRIC_NAMES[m] for m in METRICS}
    C.print_table(f"Accuracy on the test split, mean ± std over seeds ({data_desc})", rows, columns, headers)
    notes = [f"Data: {data_desc}.",
             "Scores: threshold 0.5, labelled (clip, class) entries only; 2-class macro F1 averages the F1 of the "
             "positive and the negative class per instrument; mean ± sample std over seeds.",
             f"Experiment wall time: {res.wall_s:.0f} s with --jobs {args.jobs}."]
    if args.quick:
        notes.append("QUICK MODE: tiny corpus, smoke grid, 2 epochs; the scores mean nothing.")
    path = C.write_results(args.out, NAME, "Accuracy", args.quick,
                           {"data": data_desc, "grid": grid, "seeds": seeds, "epochs": epochs or 200,
                            "jobs": args.jobs, "commands": commands, "experiment": experiment_json,
                            "wall_s": res.wall_s},
                           [C.table("summary", "Accuracy, mean ± std over seeds", rows,
                                    ["model", "loss", "augment", "seeds",
                                     *[c for m in METRICS for c in (m, f"{m}_std")]], headers)],
                           machine, [], notes, {"figures": figures, "display_columns": columns})
    print(f"\nwrote {path}, {path.with_suffix('.csv')} and {fig_dir}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())

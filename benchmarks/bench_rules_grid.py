"""The ``rules`` grid: the paper's configuration, its claims, the mixup label rules and the
methods beyond the paper, over seeds, with both metric families and confidence intervals.

Runs ``instrec experiment --grid rules`` (through the library: :func:`run_experiment`) on
``--data`` (default: ``instrec synth`` with the ``openmic`` preset and ``--clips``), ``--seeds``
seeds, ``--epochs`` epochs, the logmel front end the corpus was rendered with. Every run keeps
the weights of its best validation macro F1 (the validation clips are a seeded 15 % of the
training partition; this script checks that no validation clip is in the test partition) and
is scored once on the test partition: positive-class macro F1 and 2-class macro F1 at 0.5
(the OpenMIC baseline's and Gururani et al.'s), masked mean AP (PaSST's and EfficientAT's), and
the macro F1 with thresholds tuned on validation. Per configuration: mean, standard deviation
and the 95 % Student-t confidence interval over seeds; per claim of the paper: the paired
(same seed) difference with its 95 % interval, and a verdict (supported / contradicted when the
interval excludes 0, within noise otherwise).
"""
from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

NAME = "bench_rules_grid"
METRICS = ("macro_f1", "macro_f1_2class", "mean_ap", "tuned_macro_f1")
PAPER = ("bilstm-att", "focal", "both", "none")
#: (claim, configuration expected to win, configuration it should beat)
CLAIMS = (
    ("BiLSTM-ATT beats ATT", ("bilstm-att", "focal", "both-known", "none"), ("att", "focal", "both-known", "none")),
    ("focal loss beats cross-entropy", ("bilstm-att", "focal", "both-known", "none"),
     ("bilstm-att", "bce", "both-known", "none")),
    ("mixup helps", ("bilstm-att", "focal", "mixup-known", "none"), ("bilstm-att", "focal", "none", "none")),
    ("concatenation helps", ("bilstm-att", "focal", "concat", "none"), ("bilstm-att", "focal", "none", "none")),
    ("mixup + concatenation helps (paper's rule)", PAPER, ("bilstm-att", "focal", "none", "none")),
)


def t95(n: int) -> float:
    """Two-sided 95 % Student-t quantile with n - 1 degrees of freedom (nan for n < 2)."""
    if n < 2:
        return float("nan")
    from scipy.stats import t

    return float(t.ppf(0.975, n - 1))


def mean_std_ci(values: list[float]) -> tuple[float, float, float]:
    """Mean, sample standard deviation and 95 % confidence half-width of ``values``."""
    n = len(values)
    mean = statistics.mean(values)
    std = statistics.stdev(values) if n > 1 else float("nan")
    return mean, std, t95(n) * std / math.sqrt(n) if n > 1 else float("nan")


def verdict(low: float, high: float) -> str:
    if math.isnan(low):
        return "one seed: no verdict"
    return "supported" if low > 0 else "contradicted" if high < 0 else "within noise"


def key_of(row: dict) -> tuple[str, str, str, str]:
    return (row["model"], row["loss"], row["augment"], row.get("method", "none"))


def label(key: tuple[str, str, str, str]) -> str:
    model, loss, aug, method = key
    return f"{model}, {loss}, {aug}" + ("" if method == "none" else f", {method}")


def summarise(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """One row per configuration, and one per claim (paired over seeds)."""
    by_key: dict[tuple, dict[int, dict]] = {}
    for r in rows:
        by_key.setdefault(key_of(r), {})[r["seed"]] = r
    paper = by_key.get(PAPER, {})
    table = []
    for key, seeds in by_key.items():
        out = {"configuration": label(key), "role": "paper" if key == PAPER else "", "seeds": len(seeds)}
        for m in METRICS:
            out[m], out[f"{m}_std"], out[f"{m}_ci95"] = mean_std_ci([s[m] for s in seeds.values()])
        common = sorted(set(seeds) & set(paper))
        if key != PAPER and common:
            d, _, h = mean_std_ci([seeds[s]["macro_f1"] - paper[s]["macro_f1"] for s in common])
            out["delta_macro_f1_vs_paper"], out["delta_ci95"] = d, h
        for m in ("macro_precision", "macro_recall", "best_epoch"):
            out[m] = statistics.mean(s[m] for s in seeds.values())
        table.append(out)
    claims = []
    for claim, a, b in CLAIMS:
        if a not in by_key or b not in by_key:
            continue
        common = sorted(set(by_key[a]) & set(by_key[b]))
        for m in ("macro_f1", "mean_ap"):
            d, _, h = mean_std_ci([by_key[a][s][m] - by_key[b][s][m] for s in common])
            claims.append({"claim": claim, "metric": m, "winner_expected": label(a), "against": label(b),
                           "difference": d, "ci95_low": d - h, "ci95_high": d + h,
                           "verdict": verdict(d - h, d + h)})
    return table, claims


def fmt(mean: float, std: float, ci: float) -> str:
    """``mean ± std [low, high]`` (the 95 % interval), or the mean alone for one seed."""
    if math.isnan(std):
        return f"{mean:.3f}"
    return f"{mean:.3f} ± {std:.3f} [{mean - ci:.3f}, {mean + ci:.3f}]"


def display(table: list[dict]) -> list[dict]:
    """The README's view of the grid table: one text cell per metric."""
    out = []
    for r in table:
        row = {"configuration": r["configuration"] + (" (paper)" if r["role"] == "paper" else ""),
               "seeds": r["seeds"] or None}
        for m in METRICS:
            row[m] = fmt(r[m], r[f"{m}_std"], r[f"{m}_ci95"])
        if "delta_macro_f1_vs_paper" in r:
            d, h = r["delta_macro_f1_vs_paper"], r["delta_ci95"]
            row["delta"] = f"{d:+.3f}" + ("" if math.isnan(h) else f" [{d - h:+.3f}, {d + h:+.3f}]")
        row.update({k: r[k] for k in ("macro_precision", "macro_recall", "best_epoch")})
        out.append(row)
    return out


DISPLAY_HEADERS = {"macro_f1": "macro F1 at 0.5 (positive class)", "macro_f1_2class": "2-class macro F1 at 0.5",
                   "mean_ap": "masked mAP", "tuned_macro_f1": "macro F1, tuned thresholds",
                   "delta": "macro F1 minus paper (paired)", "macro_precision": "precision at 0.5",
                   "macro_recall": "recall at 0.5", "best_epoch": "selected epoch"}


def all_positive(data: Path) -> dict:
    """The trivial reference: every labelled test entry called present (probability 1 everywhere)."""
    import numpy as np

    from instrec.data.openmic import load_split
    from instrec.evaluation.metrics import evaluate

    test = load_split(data, "test")
    scores = evaluate(test.Y_true, test.Y_mask, np.ones(test.Y_true.shape), list(test.classes))
    row = {"configuration": "reference: every labelled entry called present", "role": "reference", "seeds": 0}
    for m in METRICS:
        key = "macro_f1" if m == "tuned_macro_f1" else m
        row.update({m: scores[key], f"{m}_std": float("nan"), f"{m}_ci95": float("nan")})
    row.update(macro_precision=scores["macro_precision"], macro_recall=scores["macro_recall"], best_epoch=None)
    return row


def selection_check(exp: Path, data: Path) -> dict:
    """Validation clips of every run against the test partition: they must not overlap."""
    test = set((data / "partitions" / "split01_test.csv").read_text().split())
    runs = sorted((exp / "runs").iterdir())
    overlap = sum(len(test & set((r / "validation-keys.csv").read_text().split())) for r in runs)
    best = [json.loads((r / "config.json").read_text()).get("best_epoch") for r in runs]
    return {"runs": len(runs), "validation_clips_in_test": overlap,
            "best_epoch_median": statistics.median(b for b in best if b is not None)}


def pseudo_summary(exp: Path) -> list[dict]:
    out = []
    for r in sorted((exp / "runs").glob("*_pseudo_s*")):
        rec = json.loads((r / "config.json").read_text()).get("pseudo_labels") or {}
        if rec:
            out.append({"run": r.name, **{k: rec[k] for k in ("precision", "labelled_before", "added_positive",
                                                                "added_negative", "labelled_after")}})
    return out


def main() -> int:
    p = C.base_parser(__doc__.split("\n\n")[0], default_repeats=1)
    p.add_argument("--data", help="OpenMIC-layout dataset (default: instrec synth, preset openmic, --clips)")
    p.add_argument("--clips", type=int, default=None, help="clips of the rendered corpus (default: the preset's)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per run (default 20; --quick 1)")
    p.add_argument("--seeds", type=int, default=None, help="seeds per configuration (default 3; --quick 1)")
    p.add_argument("--jobs", type=int, default=1, help="runs trained at once (default 1)")
    p.add_argument("--rows", help="comma-separated rows of the rules grid to run (0 = the paper's configuration; "
                   "a pseudo-label row needs its teacher's row; default: all)")
    p.add_argument("--tag", help="results name suffix (bench_rules_grid_TAG), to keep results on other data")
    args = p.parse_args()
    name = NAME + (f"_{args.tag}" if args.tag else "")
    if args.rows and "0" not in args.rows.split(","):
        p.error("--rows must include 0, the paper's configuration")
    epochs = args.epochs or (1 if args.quick else 20)
    seeds = args.seeds or (1 if args.quick else 3)
    machine = C.machine_info()
    from instrec.pipelines.experiment import (
        RULES_GRID,
        RunSpec,
        grid_specs,
        run_experiment,
        run_path,
        run_specs,
        write_outputs,
    )
    from instrec.synth import build_corpus
    from instrec.synth.presets import class_imbalance, preset_options

    with C.workdir(args, "instrec-bench-rules-grid-") as work:
        data = Path(args.data) if args.data else work / "corpus"
        if not args.data and not (data / "openmic-2018.npz").is_file():
            opts = preset_options("openmic")
            n = args.clips or (150 if args.quick else opts.pop("n_clips"))
            opts.pop("n_clips", None)
            build_corpus(data, n, 0, jobs=args.jobs, overwrite=True, progress=False, **opts)
        exp = work / "experiment"
        if args.rows:
            keep = [RULES_GRID[int(i)] for i in args.rows.split(",")]
            specs = [s for s in grid_specs("rules", seeds) if (s.model, s.loss, s.augment, s.method) in keep]
            rows = run_specs(specs, data, exp, epochs, args.jobs, desc="experiment rules (rows " + args.rows + ")",
                             compile="off")
            write_outputs(exp, rows, "rules", data, seeds, epochs)
        else:
            rows = run_experiment(data, exp, grid="rules", seeds=seeds, epochs=epochs, jobs=args.jobs,
                                  overwrite=True, compile="off")
        for r in rows:  # precision, recall at 0.5 and the selected epoch: where calibration goes
            run_dir = run_path(exp, RunSpec(r["model"], r["loss"], r["augment"], r["seed"], r["method"]))
            metrics = json.loads((run_dir / "metrics.json").read_text())
            r.update(macro_precision=metrics["macro_precision"], macro_recall=metrics["macro_recall"],
                     best_epoch=json.loads((run_dir / "config.json").read_text())["best_epoch"])
        table, claims = summarise(rows)
        reference = all_positive(data)
        selection = selection_check(exp, data)
        pseudo = pseudo_summary(exp)
        stats = json.loads((data / "corpus-stats.json").read_text())
    columns = ["configuration", "role", "seeds"] + [c for m in METRICS for c in (m, f"{m}_std", f"{m}_ci95")] \
        + ["delta_macro_f1_vs_paper", "delta_ci95", "macro_precision", "macro_recall", "best_epoch"]
    claim_cols = ["claim", "metric", "winner_expected", "against", "difference", "ci95_low", "ci95_high", "verdict"]
    C.print_table("Test partition, mean over seeds", table + [reference], columns)
    C.print_table("The paper's claims (paired by seed)", claims, claim_cols)
    best = max((r for r in table if r["role"] == ""), key=lambda r: r["macro_f1"])
    paper = next(r for r in table if r["role"] == "paper")
    gain = best["macro_f1"] - paper["macro_f1"]
    std = max(best["macro_f1_std"], paper["macro_f1_std"])
    targets = [C.target(f"best ({best['configuration']}) minus paper, macro F1", gain, ">=", 0.03),
               C.target("gain over twice the larger seed std", gain - 2 * std, ">=", 0.0)]
    C.print_targets(targets)
    imbalance = class_imbalance(stats["per_class"])
    notes = [
        (f"Data: {args.data or 'instrec synth preset openmic'} ({stats['n_clips']:,} clips, {stats['n_train']:,} "
         f"in the training partition, {stats['labelled_per_clip']:.2f} labelled instruments per clip, "
         f"{len(stats['renderable_classes'])} classes rendered; the most frequent class is present in "
         f"{imbalance['max_over_min']:.1f}x as many clips as the least), logmel; {epochs} epochs per run "
         f"(the paper: 200), {seeds} seeds; test partition; threshold 0.5 unless tuned; labelled entries only."),
        (f"Model selection: best validation macro F1 (a seeded 15 % of the training partition, never the test "
         f"partition); {selection['validation_clips_in_test']} validation clips in the test partition over "
         f"{selection['runs']} runs; median selected epoch {selection['best_epoch_median']}."),
        ("ci95: half-width of the 95 % Student-t interval over seeds; claims and deltas are paired by seed "
         "(same validation split and initial weights); verdict supported/contradicted when the interval of "
         "the difference excludes 0."),
        ("Augmentation names: mixup 0.2 and/or concatenation 0.5; '-known', '-naive': the mixup label rule "
         "(none given: 'both', the paper's). balance: --label-balance 0.5; pseudo: --teacher = the same "
         "configuration without it, same seed, --pseudo-precision 0.9; alpha0.5: --focal-alpha 0.5 (the paper: 0.75)."),
    ]
    if pseudo:
        added = statistics.mean(r["labelled_after"] / r["labelled_before"] for r in pseudo)
        notes.append(f"Pseudo-labels multiplied the labelled training entries by {added:.2f} on average.")
    if args.quick:
        notes.append("QUICK MODE: tiny corpus, 1 epoch, 1 seed; the scores mean nothing.")
    title = "Label rules and methods beyond the paper (grid rules" + (f", {args.tag})" if args.tag else ")")
    path = C.write_results(args.out, name, title, args.quick,
                           {"epochs": epochs, "seeds": seeds, "data": args.data or "synth preset openmic",
                            "rows": args.rows or "all", "selection": selection},
                           [C.table("grid", "Test partition: mean ± std [95 % interval] over seeds",
                                    display(table + [reference]),
                                    ["configuration", "seeds", *METRICS, "delta", "macro_precision", "macro_recall",
                                     "best_epoch"], DISPLAY_HEADERS),
                            C.table("claims", "The paper's claims (paired by seed)", claims, claim_cols),
                            C.table("pseudo", "Pseudo-labels added per run", pseudo,
                                    ["run", "precision", "labelled_before", "added_positive", "added_negative",
                                     "labelled_after"])],
                           machine, targets, notes, extra={"grid_numbers": table, "grid_columns": columns})
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

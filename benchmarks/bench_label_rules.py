"""Label rules for mixed clips: how much supervision each keeps, and the accuracy it gives.

Part 1 (no training): over the batches of an epoch of the training partition (batch 32,
lambda ~ Beta(0.2, 0.2), random partners, as ``instrec train`` draws them), the labelled
(clip, instrument) entries after mixup per labelled entry before it, for each rule of
``--mixup-labels``; and, for concatenation (OR rule), the same share.

Part 2: ``instrec train`` with mixup 0.2 under each rule, and without mixup, for ``att`` and
``bilstm-att`` over ``--seeds`` seeds (``--epochs``, default 30), evaluated on the test
partition (macro F1 at 0.5, mean AP), mean and standard deviation over seeds.
Data: ``--data`` (any OpenMIC-layout folder), default the corpus of ``instrec synth --clips
2000 --seed 0`` rendered in the scratch folder.
"""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

NAME = "bench_label_rules"
RULES = ("both", "known", "presence", "naive")


def kept_shares(data_dir: Path, epochs: int = 3, batch: int = 32, alpha: float = 0.2) -> list[dict]:
    """Labelled entries after each augmentation per labelled entry before it, over ``epochs`` epochs."""
    import torch

    from instrec.data import augment
    from instrec.data.openmic import load_split

    data = load_split(data_dir, "train")
    y, mask = torch.from_numpy(data.targets), torch.from_numpy(data.Y_mask)
    gen = torch.Generator().manual_seed(0)
    before, after = 0, {r: 0 for r in (*RULES, "concat (OR)")}
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=gen)
        for start in range(0, len(y), batch):
            rows = order[start:start + batch]
            yb, mb = y.index_select(0, rows), mask.index_select(0, rows)
            lam = augment.sample_mixup_lambda(gen, len(rows), alpha)
            perm = torch.randperm(len(rows), generator=gen)
            before += int(mb.sum())
            for rule in RULES:
                after[rule] += int(augment.mixup_labels(yb, mb, lam, perm, rule)[1].sum())
            after["concat (OR)"] += int(augment.concat(torch.zeros(len(rows), 1, 1), yb, mb, [perm])[2].sum())
    return [{"augmentation": k, "labelled_share": v / before} for k, v in after.items()]


def train_and_score(data: Path, work: Path, model: str, rule: str | None, seed: int, epochs: int) -> dict:
    run = work / "runs" / f"{model}_{rule or 'none'}_s{seed}"
    argv = C.instrec_argv("train", "--data", str(data), "--model", model, "--epochs", str(epochs), "--seed",
                          str(seed), "--threads", "1", "--compile", "off", "--out", str(run), "--overwrite", "-q")
    if rule is not None:
        argv += ["--mixup", "0.2", "--mixup-labels", rule]
    C.run_child(argv).check()
    C.run_child(C.instrec_argv("evaluate", str(run), "-q")).check()
    metrics = json.loads((run / "metrics.json").read_text())
    return {"macro_f1": metrics["macro_f1"], "mean_ap": metrics["mean_ap"]}


def main() -> int:
    p = C.base_parser(__doc__.split("\n\n")[0], default_repeats=1)
    p.add_argument("--data", help="OpenMIC-layout dataset (default: a 2,000-clip corpus rendered here)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs per run (default 30; --quick 2)")
    p.add_argument("--seeds", type=int, default=None, help="seeds per configuration (default 2; --quick 1)")
    args = p.parse_args()
    epochs = args.epochs or (2 if args.quick else 30)
    seeds = args.seeds or (1 if args.quick else 2)
    machine = C.machine_info()
    with C.workdir(args, "instrec-bench-rules-") as work:
        data = Path(args.data) if args.data else work / "corpus"
        if not args.data and not (data / "openmic-2018.npz").is_file():
            clips = 200 if args.quick else 2000
            C.run_child(C.instrec_argv("synth", "--out", str(data), "--clips", str(clips), "--seed", "0",
                                       "--jobs", "2", "-q")).check()
        shares = kept_shares(data)
        C.print_table("Labelled entries after augmentation, per labelled entry before it", shares,
                      ["augmentation", "labelled_share"])
        rows = []
        for model in ("att", "bilstm-att"):
            for rule in (None, *RULES):
                scores = [train_and_score(data, work, model, rule, s, epochs) for s in range(seeds)]
                row = {"model": model, "mixup": "off" if rule is None else f"0.2, {rule}", "seeds": seeds}
                for m in ("macro_f1", "mean_ap"):
                    values = [s[m] for s in scores]
                    row[m] = statistics.mean(values)
                    row[f"{m}_std"] = statistics.stdev(values) if len(values) > 1 else float("nan")
                rows.append(row)
                print(f"  {model:<10} {row['mixup']:<16} macro F1 {row['macro_f1']:.3f} mAP {row['mean_ap']:.3f}",
                      flush=True)
    columns = ["model", "mixup", "seeds", "macro_f1", "macro_f1_std", "mean_ap", "mean_ap_std"]
    C.print_table("Test-split accuracy per mixup label rule", rows, columns)
    notes = [f"Data: {args.data or 'instrec synth --clips 2000 --seed 0 (logmel)'}; {epochs} epochs per run, "
             f"{seeds} seed(s), threshold 0.5, labelled entries only; std over seeds.",
             "Labelled share: mixed entries that keep a label, per labelled entry of the batch before mixing "
             "(each clip is mixed once as the anchor), over 3 epochs of batches of 32."]
    if args.quick:
        notes.append("QUICK MODE: 200 clips, 2 epochs, 1 seed; the scores mean nothing.")
    path = C.write_results(args.out, NAME, "Mixup label rules", args.quick,
                           {"epochs": epochs, "seeds": seeds, "data": args.data or "synth 2000 seed 0"},
                           [C.table("accuracy", "Test-split accuracy per mixup label rule", rows, columns),
                            C.table("kept", "Labelled entries after augmentation", shares,
                                    ["augmentation", "labelled_share"])], machine, [], notes)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

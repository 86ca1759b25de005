"""Per-second localisation: frame outputs at 0.5, the clip decision repeated (frame-agnostic),
and the clip-gated frame decision tuned on validation (instrec.evaluation.frame_decisions).

For every run of an experiment folder (``--experiment``, e.g. the work folder of
bench_rules_grid.py) whose name matches ``--runs``, the frame threshold and median width of the
clip-gated decision are picked on the run's own validation clips (segment F1 against the strong
labels), then all three decisions are scored once on the test partition: segment-based F1 and
error rate (1-s segments, Mesaros et al. 2016) over the rendered classes. Mean ± std over seeds.
"""
from __future__ import annotations

import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

NAME = "bench_frame_gate"


def score_run(run_dir: Path, data_dir: Path) -> dict:
    import numpy as np

    from instrec.data.layout import read_corpus_stats, read_strong_labels
    from instrec.data.openmic import load_split
    from instrec.evaluation.frame_decisions import CLIP_THRESHOLDS, score_gate, tune_clip_threshold, tune_gate
    from instrec.models.inference import run_model
    from instrec.run import load_model, read_validation_keys

    model, config = load_model(run_dir)
    classes = config["classes"]
    strong = read_strong_labels(data_dir, classes)
    eval_classes = (read_corpus_stats(data_dir) or {}).get("renderable_classes", classes)
    train = load_split(data_dir, "train")
    val_keys = set(read_validation_keys(run_dir))
    val = train.subset([i for i, k in enumerate(train.sample_key) if k in val_keys])
    test = load_split(data_dir, "test")
    v, t = run_model(model, val.X), run_model(model, test.X)
    thr, width, gate_clip_thr, val_f1 = tune_gate(strong, list(val.sample_key), v.frame, v.clip, classes,
                                                  eval_classes=eval_classes, clip_thresholds=CLIP_THRESHOLDS)
    keys = list(test.sample_key)
    raw = score_gate(strong, keys, t.frame, np.ones_like(t.clip), classes, 0.5, eval_classes=eval_classes)
    agnostic = score_gate(strong, keys, t.frame, t.clip, classes, -np.inf, eval_classes=eval_classes)
    gated = score_gate(strong, keys, t.frame, t.clip, classes, thr, width, eval_classes=eval_classes,
                       clip_threshold=gate_clip_thr)
    clip_thr, _ = tune_clip_threshold(strong, list(val.sample_key), v.clip, classes, v.frame.shape[1],
                                      eval_classes=eval_classes)
    tuned_clip = score_gate(strong, keys, t.frame, t.clip, classes, -np.inf, eval_classes=eval_classes,
                            clip_threshold=clip_thr)
    return {"frame_threshold": thr, "width": width, "gate_clip_threshold": gate_clip_thr, "clip_threshold": clip_thr,
            "val_f1": val_f1,
            **{f"{name}_{m}": s[m] for name, s in (("frames", raw), ("agnostic", agnostic),
                                                   ("agnostic_tuned", tuned_clip), ("gated", gated))
               for m in ("f1", "er")}}


def main() -> int:
    p = C.base_parser(__doc__.split("\n\n")[0], default_repeats=1)
    p.add_argument("--experiment", required=True, help="experiment folder with runs/ (e.g. bench_rules_grid's)")
    p.add_argument("--data", required=True, help="the dataset the runs were trained on (with strong labels)")
    p.add_argument("--runs", default="*_focal_both_s*,att_focal_both-known_s*",
                   help="comma-separated glob patterns of run names (default: the paper's BiLSTM-ATT and ATT)")
    args = p.parse_args()
    machine = C.machine_info()
    runs = sorted({r for pat in args.runs.split(",") for r in (Path(args.experiment) / "runs").glob(pat)})
    if not runs:
        p.error(f"no run in {args.experiment}/runs matches {args.runs}")
    groups: dict[str, list[dict]] = {}
    for run in runs:
        scores = score_run(run, Path(args.data))
        groups.setdefault(run.name.rsplit("_s", 1)[0], []).append(scores)
        print(f"  {run.name}: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()), flush=True)
    rows = []
    for config, members in groups.items():
        row = {"configuration": config, "seeds": len(members)}
        for k in members[0]:
            values = [m[k] for m in members]
            row[k] = statistics.mean(values)
            finite = len(values) > 1 and all(math.isfinite(v) for v in values)
            row[f"{k}_std"] = statistics.stdev(values) if finite else float("nan")
        rows.append(row)
    columns = ["configuration", "seeds", "frames_f1", "frames_er", "agnostic_f1", "agnostic_f1_std", "agnostic_er",
               "agnostic_tuned_f1", "agnostic_tuned_f1_std", "agnostic_tuned_er", "clip_threshold",
               "gated_f1", "gated_f1_std", "gated_er", "frame_threshold", "width", "gate_clip_threshold"]
    headers = {"frames_f1": "frames > 0.5: F1", "frames_er": "frames: ER", "agnostic_f1": "clip decision repeated: F1",
               "agnostic_f1_std": "(std)", "agnostic_er": "repeated: ER", "gated_f1": "clip-gated frames, tuned: F1",
               "gated_f1_std": "(std)", "gated_er": "gated: ER", "frame_threshold": "tuned frame threshold (mean)",
               "width": "median width (mean)", "agnostic_tuned_f1": "repeated, clip threshold tuned: F1",
               "agnostic_tuned_f1_std": "(std)", "agnostic_tuned_er": "tuned repeated: ER",
               "clip_threshold": "tuned clip threshold (mean)", "gate_clip_threshold": "gate's clip threshold (mean)"}
    C.print_table("Segment-based localisation on the test partition (1-s segments)", rows, columns, headers)
    notes = [f"Runs: {args.runs} in {args.experiment} on {args.data}; mean (std) over seeds.",
             ("Clip-gated: an instrument is active in a frame only where the clip is tagged present (clip threshold "
              "tuned with the others) and "
              "its median-smoothed frame probability exceeds a threshold picked on the run's validation clips "
              "(a threshold of -inf is the clip decision repeated); frames > 0.5: the frame outputs alone; "
              "repeated, clip threshold tuned: the clip decision at a threshold picked on validation, the fair "
              "baseline (part of the gated decision's gain is a stricter clip threshold).")]
    path = C.write_results(args.out, NAME, "Per-second localisation: clip-gated frame decisions", False,
                           {"experiment": args.experiment, "data": args.data, "runs": args.runs},
                           [C.table("localisation", "Segment-based localisation on the test partition", rows,
                                    columns, headers)], machine, [], notes)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

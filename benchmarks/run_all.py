"""Run every benchmark, one after the other, writing benchmarks/results/*.json|csv.

    python benchmarks/run_all.py [--quick] [--out DIR] [--only a,b] [--skip a,b] [--data DIR] [--readme]

Benchmarks (in this order): synth, train, busy, inference, musicnn, dask, lstm_kernel, stacked_step, grid
(when benchmarks/bench_grid.py exists), accuracy. ``--quick`` is passed to each (small sizes,
about a minute or two each: checks that everything works; not numbers to publish).
``--data`` is passed to the accuracy benchmark (default: the synthetic corpus).
``--readme`` regenerates the README's Results section afterwards
(``make_readme_results.py``). A failing benchmark is reported and the others still run;
the exit status is 1 if any failed. ``OUT/run_all.json`` records what ran, for how long.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _common as C  # noqa: E402

ORDER = ("synth", "train", "busy", "inference", "musicnn", "dask", "lstm_kernel", "stacked_step", "grid", "accuracy",
         "realaudio", "label_rules", "rules_grid", "rules_real")


def lstm_kernel_results(out: Path, quick: bool) -> int:
    """bench_lstm_kernel.py prints a table only; run it and store that table in the common format."""
    argv = [sys.executable, str(HERE / "bench_lstm_kernel.py")] + (["--repeats", "3", "--steps", "50"] if quick else [])
    proc = subprocess.run(argv, capture_output=True, text=True)
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    if proc.returncode != 0:
        return proc.returncode
    rows = []
    for line in proc.stdout.splitlines():
        m = re.match(r"^(.*?)\s+(\d+) clips/s\s+x([\d.]+)\s+\(min (\d+), max (\d+)\)", line)
        if m:
            rows.append({"variant": m.group(1).strip(), "clips_per_s": float(m.group(2)),
                         "relative_to_nn_lstm": float(m.group(3)), "min": float(m.group(4)),
                         "max": float(m.group(5))})
    header = proc.stdout.splitlines()[0] if proc.stdout else ""
    cols = ["variant", "clips_per_s", "relative_to_nn_lstm", "min", "max"]
    heads = {"clips_per_s": "clips/s (median)", "relative_to_nn_lstm": "vs nn.LSTM"}
    C.write_results(out, "bench_lstm_kernel", "BiLSTM training step (kernel level)", quick,
                    {"argv": argv[1:], "header": header},
                    [C.table("kernel", "BiLSTM-attention training step, 1 thread unless the variant says otherwise",
                             rows, cols, heads)],
                    C.machine_info(), [], [header, "One training step (forward, focal loss, backward, Adam) on fixed "
                                           "random data, 1 thread unless the variant says otherwise; from "
                                           "benchmarks/bench_lstm_kernel.py."])
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=str(C.DEFAULT_OUT))
    p.add_argument("--only", default="", help=f"comma-separated subset of {', '.join(ORDER)}")
    p.add_argument("--skip", default="", help="comma-separated benchmarks to leave out")
    p.add_argument("--data", help="OpenMIC-layout dataset for the accuracy benchmark")
    p.add_argument("--readme", action="store_true", help="regenerate the README's Results section afterwards")
    args = p.parse_args()
    only = [x for x in args.only.split(",") if x]
    skip = {x for x in args.skip.split(",") if x}
    unknown = [x for x in [*only, *skip] if x not in ORDER]
    if unknown:
        p.error(f"unknown benchmark(s) {unknown}; choose from {', '.join(ORDER)}")
    names = [n for n in ORDER if (not only or n in only) and n not in skip]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    common = (["--quick"] if args.quick else []) + ["--out", str(out)]
    status = []
    for name in names:
        print(f"\n{'=' * 20} {name} {'=' * 20}", flush=True)
        t0 = time.perf_counter()
        if name == "lstm_kernel":
            rc = lstm_kernel_results(out, args.quick)
        else:
            script = HERE / f"bench_{name}.py"
            if not script.is_file():
                print(f"{script.name}: not present, skipped")
                status.append({"benchmark": name, "status": "absent", "seconds": 0.0})
                continue
            extra = ["--data", args.data] if (name == "accuracy" and args.data) else []
            rc = subprocess.run([sys.executable, str(script), *common, *extra]).returncode
        seconds = time.perf_counter() - t0
        status.append({"benchmark": name, "status": "ok" if rc == 0 else f"failed (exit {rc})", "seconds": seconds})
        print(f"--- {name}: {'ok' if rc == 0 else f'FAILED (exit {rc})'} in {seconds:.0f} s", flush=True)
    (out / "run_all.json").write_text(json.dumps({"quick": args.quick, "benchmarks": status,
                                                  "machine": C.machine_info()}, indent=2) + "\n")
    print("\nsummary:")
    for s in status:
        print(f"  {s['benchmark']:<12} {s['status']:<18} {s['seconds']:7.0f} s")
    failed = any(s["status"].startswith("failed") for s in status)
    if args.readme:
        rc = subprocess.run([sys.executable, str(HERE / "make_readme_results.py"), "--results", str(out)]).returncode
        failed = failed or rc != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""instrec on a busy machine: every command idle and beside a background load this script starts.

The load is ``--load-procs`` (default 2) Python processes spinning on the CPU, started
before a loaded phase and killed after it (in a ``finally``; each also stops by itself
after ``--load-seconds``). Idle and loaded phases alternate in every repeat, so slow spells
of the machine hit both; the load average is recorded with each phase.

Measured (each as a subprocess, wall time start-up included, and where there is one the
epoch loop alone):

* ``instrec train --model bilstm-att`` (3 epochs, 2,550 training clips: an OpenMIC-shaped
  synthetic set of 3,750 clips; ``--quick``: 600) with its default threads and with
  ``--threads 2`` (the default before the thread policy, torch's default here);
* the plain PyTorch loop of the same model (``bench_train``'s) at torch's default threads
  and at one thread;
* ``instrec predict`` (logmel front end, a bilstm-att run) on a folder of 10 s clips
  (default 100; ``--quick`` 8): the default (worker processes across files, one thread
  each), one process with one thread (``--jobs 1``), and one process at torch's default
  threads (``--jobs 1 --threads 2``: what predict did before the policy);
* ``instrec predict`` with the default model (musicnn front end) on the same folder, the
  default and one process at torch's default threads (before the policy: 2 threads);
* ``instrec featurize --frontend logmel`` on the same folder, default and before the policy;
* ``instrec experiment --grid smoke --seeds 1 --epochs 2`` (two processes) and
  ``instrec synth --clips 12 --jobs 2``, default settings.

Slowdown = loaded / idle (medians). The targets compare instrec's default with itself idle
and with the plain loop (train) or the same command in one process at torch's default
threads (predict: that is the plain way to run it) under the same load.
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import _common as C
import bench_train as BT
from bench_inference import synth_audio

SPIN = "import time\nt = time.time() + {s}\nwhile time.time() < t:\n    pass\n"
#: Another user's small PyTorch training at torch's default threads: the load that users of a
#: shared server meet (its OpenMP threads spin at barriers too, competing for the same cores).
TORCH_WORK = (
    "import time, torch\nt = time.time() + {s}\nlstm = torch.nn.LSTM(128, 64, batch_first=True, bidirectional=True)\n"
    "opt = torch.optim.Adam(lstm.parameters())\nx = torch.randn(32, 10, 128)\n"
    "while time.time() < t:\n    opt.zero_grad()\n    lstm(x)[0].square().mean().backward()\n    opt.step()\n")
LOADS = {"spin": SPIN, "torch": TORCH_WORK}


class BackgroundLoad:
    """``n`` processes spinning on the CPU for at most ``seconds``; killed on exit."""

    def __init__(self, n: int, seconds: float, kind: str = "spin"):
        self.n, self.seconds, self.kind, self.procs = n, seconds, kind, []

    def __enter__(self):
        flags = ["-S"] if self.kind == "spin" else []  # the torch load needs site-packages
        self.procs = [subprocess.Popen([sys.executable, *flags, "-c", LOADS[self.kind].format(s=self.seconds)])
                      for _ in range(self.n)]
        time.sleep(0.5)  # let them reach the scheduler's steady state
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.kill()
        for p in self.procs:
            p.wait()
        self.procs = []


def loadavg() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return float("nan")


def torch_default_threads() -> int:
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
                         capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def train_cmd(data: Path, run: Path, threads: int | None) -> dict:
    argv = C.instrec_argv("train", "--data", str(data), "--model", "bilstm-att", "--epochs", "3", "--out", str(run),
                          "--overwrite", "--quiet")
    if threads is not None:
        argv += ["--threads", str(threads)]
    res = C.run_child(argv).check()
    with open(run / "train_log.csv", newline="") as fh:
        loop = sum(float(r["seconds"]) for r in csv.DictReader(fh))
    threads_used = json.loads((run / "config.json").read_text())["threads"]
    return {"wall_s": res.wall_s, "loop_s": loop, "threads": threads_used}


def plain_cmd(data: Path, threads: int) -> dict:
    r = BT.plain_run(data, 3, threads, 0)
    return {"wall_s": r["wall_s"], "loop_s": r["loop_s"], "threads": r["threads"]}


def simple_cmd(argv: list[str], threads: int | None) -> dict:
    argv = list(argv) + (["--threads", str(threads)] if threads is not None else [])
    res = C.run_child(argv).check()
    return {"wall_s": res.wall_s, "loop_s": None, "threads": threads if threads is not None else "auto"}


def main() -> int:
    p = C.base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--load-procs", type=int, default=2, help="spinning background processes (default 2)")
    p.add_argument("--load-kind", default="spin", choices=sorted(LOADS),
                   help="spin: Python busy loops (default); torch: small PyTorch trainings at torch's default "
                        "threads (results saved as bench_busy_torch)")
    p.add_argument("--load-seconds", type=float, default=1200.0, help="the most a loaded phase's load processes live (a cap: each phase kills them when it ends)")
    p.add_argument("--clips", type=int, default=None, help="synthetic data set size (default 3750; --quick 600)")
    p.add_argument("--audio-clips", type=int, default=None, help="10 s clips to tag (default 100; --quick 8)")
    p.add_argument("--skip-slow", action="store_true", help="leave out experiment and synth")
    args = p.parse_args()
    repeats = C.repeats_of(args)
    n_clips = args.clips or (600 if args.quick else 3750)
    n_audio = args.audio_clips or (8 if args.quick else 100)
    machine = C.machine_info()
    tdef = torch_default_threads()
    print(f"bench_busy: {repeats} repeat(s), median reported{' [QUICK MODE]' if args.quick else ''}; load: "
          f"{args.load_procs} spinning processes; torch default threads {tdef}")
    print(f"machine: {C.machine_line(machine)}", flush=True)

    with C.workdir(args, "instrec-bench-busy-") as work:
        data = C.synthetic_openmic(work / "data", n_clips, frontend="logmel")
        from instrec.training.config import TrainConfig
        from instrec.training.loop import train

        run = work / "run-logmel"
        train(TrainConfig(data=str(data), out=str(run), model="bilstm-att", epochs=1, threads=1), overwrite=True,
              progress=False)
        clips_dir = work / "clips"
        for i in range(n_audio):
            if not (clips_dir / f"clip{i:03d}.flac").is_file():
                synth_audio(clips_dir / f"clip{i:03d}.flac", 10.0, seed=i)
        audio_s = 10.0 * n_audio

        variants = {  # (command, implementation) -> fn
            ("train", "instrec (default threads)"): lambda: train_cmd(data, work / "run-a", None),
            ("train", f"instrec --threads {tdef} (torch default)"): lambda: train_cmd(data, work / "run-b", tdef),
            ("train", f"plain loop, {tdef} threads (torch default)"): lambda: plain_cmd(data, tdef),
            ("train", "plain loop, 1 thread"): lambda: plain_cmd(data, 1),
        }
        pred = C.instrec_argv("predict", "--run", str(run), str(clips_dir), "--out", str(work / "tags.csv"),
                              "--overwrite", "--quiet")
        feat = C.instrec_argv("featurize", str(clips_dir), "--frontend", "logmel", "--out", str(work / "feats"),
                              "--overwrite", "--quiet")
        before = f"instrec --jobs 1 --threads {tdef} (one process, torch default)"
        variants[("predict logmel", "instrec (default: workers across files)")] = lambda: simple_cmd(pred, None)
        variants[("predict logmel", "instrec --jobs 1 (one process, 1 thread)")] = \
            lambda: simple_cmd(pred + ["--jobs", "1"], None)
        variants[("predict logmel", before)] = lambda: simple_cmd(pred + ["--jobs", "1"], tdef)
        default_model = C.instrec_argv("predict", str(clips_dir), "--out", str(work / "tags-default.csv"),
                                       "--overwrite", "--quiet")
        variants[("predict default model (musicnn)", "instrec (default: workers across files)")] = \
            lambda: simple_cmd(default_model, None)
        variants[("predict default model (musicnn)", before)] = lambda: simple_cmd(default_model + ["--jobs", "1"], tdef)
        variants[("featurize logmel", "instrec (default: workers across files)")] = lambda: simple_cmd(feat, None)
        variants[("featurize logmel", before)] = lambda: simple_cmd(feat + ["--jobs", "1"], tdef)
        if not args.skip_slow:
            exp = C.instrec_argv("experiment", "--data", str(data), "--grid", "smoke", "--seeds", "1", "--epochs", "2",
                                 "--jobs", "2", "--out", str(work / "exp"), "--overwrite", "--quiet")
            syn = C.instrec_argv("synth", "--out", str(work / "synth"), "--clips", "12", "--jobs", "2", "--overwrite",
                                 "--quiet")

            def experiment():
                import shutil
                shutil.rmtree(work / "exp", ignore_errors=True)  # finished runs would be reused
                return simple_cmd(exp, None)

            variants[("experiment smoke", "instrec (default)")] = experiment
            variants[("synth", "instrec --jobs 2 (default threads)")] = lambda: simple_cmd(syn, None)

        samples: dict[tuple, dict[str, list]] = {k: {"idle": [], "loaded": []} for k in variants}
        loads: dict[str, list[float]] = {"idle": [], "loaded": []}
        for rep in range(repeats):
            phases = ("idle", "loaded") if rep % 2 == 0 else ("loaded", "idle")
            for phase in phases:
                if phase == "loaded":
                    ctx = BackgroundLoad(args.load_procs, args.load_seconds, args.load_kind)
                else:
                    import contextlib
                    ctx = contextlib.nullcontext()
                with ctx:
                    for key, fn in variants.items():
                        r = fn()
                        r["load"] = loadavg()
                        samples[key][phase].append(r)
                        loads[phase].append(r["load"])
                        loop = f", loop {r['loop_s']:.2f} s" if r.get("loop_s") is not None else ""
                        print(f"  [{rep + 1}/{repeats} {phase}] {key[0]}: {key[1]}: {r['wall_s']:.2f} s{loop} "
                              f"(load {r['load']})", flush=True)

        rows = []
        for (command, impl), s in samples.items():
            row = {"command": command, "implementation": impl, "threads": s["idle"][0]["threads"]}
            for phase in ("idle", "loaded"):
                row[f"{phase}_wall_s"] = C.median([r["wall_s"] for r in s[phase]])
                loops = [r["loop_s"] for r in s[phase] if r.get("loop_s") is not None]
                row[f"{phase}_loop_s"] = C.median(loops) if loops else None
            row["slowdown_wall"] = row["loaded_wall_s"] / row["idle_wall_s"]
            row["slowdown_loop"] = (row["loaded_loop_s"] / row["idle_loop_s"]) if row["idle_loop_s"] else None
            if command.startswith(("predict", "featurize")):
                row["idle_x_real_time"] = audio_s / row["idle_wall_s"]
                row["loaded_x_real_time"] = audio_s / row["loaded_wall_s"]
            rows.append(row)

        def get(command, impl_start):
            return next(r for r in rows if r["command"] == command and r["implementation"].startswith(impl_start))

        tr, tr_old = get("train", "instrec (default"), get("train", "instrec --threads")
        plain = get("train", f"plain loop, {tdef}")
        pr, pr_old = get("predict logmel", "instrec (default"), get("predict logmel", "instrec --jobs 1 --threads")
        dm = get("predict default model (musicnn)", "instrec (default")
        dm_old = get("predict default model (musicnn)", "instrec --jobs 1 --threads")
        targets = [
            C.target("train bilstm-att: loaded / idle command time", tr["slowdown_wall"], "<=", 2.5, "x"),
            C.target(f"train bilstm-att loaded: plain loop ({tdef} threads) loop s / instrec loop s",
                     plain["loaded_loop_s"] / tr["loaded_loop_s"], ">=", 5, "x"),
            C.target(f"train bilstm-att idle: command time vs --threads {tdef} (today's default)",
                     tr["idle_wall_s"] / tr_old["idle_wall_s"], "<=", 1.0, "x"),
            C.target("predict logmel: loaded / idle command time", pr["slowdown_wall"], "<=", 2.5, "x"),
            C.target(f"predict logmel loaded: one process at {tdef} threads (torch default) time / default time",
                     pr_old["loaded_wall_s"] / pr["loaded_wall_s"], ">=", 5, "x"),
            C.target(f"predict logmel idle: command time vs one process at {tdef} threads (before the policy)",
                     pr["idle_wall_s"] / pr_old["idle_wall_s"], "<=", 1.0, "x"),
            C.target("predict default model (musicnn): loaded / idle command time", dm["slowdown_wall"], "<=", 2.5, "x"),
            C.target(f"predict default model (musicnn) loaded: one process at {tdef} threads time / default time",
                     dm_old["loaded_wall_s"] / dm["loaded_wall_s"], ">=", 5, "x"),
            C.target(f"predict default model (musicnn) idle: command time vs one process at {tdef} threads",
                     dm["idle_wall_s"] / dm_old["idle_wall_s"], "<=", 1.0, "x"),
        ]
        columns = ["command", "implementation", "threads", "idle_wall_s", "loaded_wall_s", "slowdown_wall",
                   "idle_loop_s", "loaded_loop_s", "slowdown_loop", "idle_x_real_time", "loaded_x_real_time"]
        headers = {"idle_wall_s": "idle s", "loaded_wall_s": "loaded s", "slowdown_wall": "slowdown",
                   "idle_loop_s": "idle loop s", "loaded_loop_s": "loaded loop s", "slowdown_loop": "loop slowdown",
                   "idle_x_real_time": "idle x real time", "loaded_x_real_time": "loaded x real time"}
        C.print_table("instrec idle and beside a background load", rows, columns, headers)
        C.print_targets(targets)
        load_text = (f"{args.load_procs} Python processes spinning on the CPU" if args.load_kind == "spin" else
                     f"{args.load_procs} processes each training a small BiLSTM with PyTorch at its default threads")
        notes = [
            f"Background load: {load_text}, started by the script for "
            f"each loaded phase; idle and loaded phases alternate. Median load average (1 min) at the end of each "
            f"command: idle {C.median(loads['idle']):.2f}, loaded {C.median(loads['loaded']):.2f} (the 1-minute "
            "average lags: it mixes the phases).",
            f"train: 3 epochs of bilstm-att on {n_clips} synthetic clips (the training partition minus 15 % "
            "validation); 'loop s' is the epoch loop (instrec: train_log.csv; plain loop: timed inside). "
            "predict/featurize: logmel front end on "
            f"{n_audio} 10 s clips, a 1-epoch bilstm-att run. The predict target compares with the same command "
            f"in one process at torch's default threads ({tdef}): how predict ran before the policy, and how a "
            "plain PyTorch script runs it.",
            "Thread policy (instrec.runinfo): one torch thread per process for training and the logmel front end; "
            "parallelism across processes: experiment and synth runs, and predict/featurize files (one forked "
            "worker per usable core with at least 4 files each); one process on few files keeps up to 2 threads "
            "for vggish and musicnn.",
        ]
        name, title = "bench_busy", "instrec on a busy machine (idle vs background load)"
        if args.load_kind != "spin":
            name, title = f"{name}_{args.load_kind}", f"{title}, the load: other PyTorch trainings"
        C.write_results(args.out, name, title, args.quick,
                        {"repeats": repeats, "load_kind": args.load_kind, "clips": n_clips, "audio_clips": n_audio,
                         "load_procs": args.load_procs,
                         "torch_default_threads": tdef, "epochs": 3},
                        [C.table("busy", "instrec idle and beside a background load", rows, columns, headers)],
                        machine, targets, notes,
                        extra={"samples": [{"command": k[0], "implementation": k[1], **v} for k, v in samples.items()]})
    return 0


if __name__ == "__main__":
    sys.exit(main())

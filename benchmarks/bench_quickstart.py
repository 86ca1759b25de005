"""The README's quick start, timed as a newcomer meets it: ``make demo`` and ``make test`` from
a fresh clone, on an idle machine and beside ``--load-procs`` busy processes.

Each repeat clones the repository (``git clone`` of the commit checked out here, so
uncommitted edits are not measured) into a scratch folder and runs ``make test`` and then
``make demo`` there, each timed by itself. By default ``make`` builds the clone's own
``.venv`` (the installation is part of the first command's time, as for a newcomer); with
``--venv DIR`` the clone uses an existing environment instead (``make -o`` skips the install
step and ``PYTHONPATH`` points at the clone's sources), which measures the commands alone.

The README's quick-start sentence is generated from ``benchmarks/results/bench_quickstart.json``
by ``make_readme_results.py``.

    python benchmarks/bench_quickstart.py [--load idle,busy] [--venv .venv] [--only demo,test]
    python benchmarks/bench_quickstart.py --only demo --make-args "DEMO_ARGS='--clips 48 --epochs 2'"  # a quick check
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

import _common as C
from bench_busy import BackgroundLoad, loadavg

COMMANDS = ("test", "demo")  # test first: from a fresh clone it pays the installation
#: The README's first tagging command, run in the clone; its answer is shown on the first screen.
EXAMPLE = ("predict", "examples/real/trumpet-medley-solos-db-test-6.flac", "--print")


def run_make(clone: Path, target: str, venv: Path | None, make_args: list[str]) -> C.ChildResult:
    """``make TARGET`` in ``clone``; with ``venv``, that environment and the clone's sources."""
    argv, env = ["make", *make_args, target], {}
    if venv is not None:
        instrec = venv / "bin" / "instrec"
        argv = ["make", f"VENV={venv}", "-o", str(instrec), *make_args, target]
        env["PYTHONPATH"] = str(clone / "src")
    return C.run_child(argv, env=env, cwd=clone)


def run_example(clone: Path, venv: Path | None) -> dict[str, str]:
    """The README's tagging command in ``clone`` (after its ``make``): the command and what it printed."""
    python = (venv or clone / ".venv") / "bin" / "python"
    env = {**os.environ, "PYTHONPATH": str(clone / "src")} if venv is not None else None
    proc = subprocess.run([str(python), "-m", "instrec.cli", *EXAMPLE], cwd=clone, env=env, capture_output=True,
                          text=True, check=True)
    return {"command": " ".join(["instrec", *EXAMPLE]), "output": proc.stdout}


def main() -> int:
    p = C.base_parser(__doc__.split("\n\n")[0], default_repeats=1)
    p.add_argument("--load", default="idle,busy", help="comma-separated: idle (nothing else started) and/or busy "
                   "(beside --load-procs spinning processes)")
    p.add_argument("--load-procs", type=int, default=1, help="busy processes for --load busy (default 1)")
    p.add_argument("--only", default=",".join(COMMANDS), help="comma-separated make targets to time; none: only record the README's tagging example")
    p.add_argument("--venv", default=None, help="use this environment instead of building one in each clone")
    p.add_argument("--make-args", default="", help="extra make arguments, e.g. 'DEMO_ARGS=--clips 48 --epochs 2' "
                   "to check this script quickly (such numbers are not the quick start's)")
    args = p.parse_args()
    repeats = C.repeats_of(args, 1)
    loads = [x for x in args.load.split(",") if x]
    targets = [t for t in COMMANDS if t in args.only.split(",")]
    venv = Path(args.venv).resolve() if args.venv else None
    machine = C.machine_info()
    rows, example = [], None
    with C.workdir(args, "instrec-quickstart-") as work:
        for rep in range(repeats):
            for load in loads:
                clone = Path(work) / f"clone-{rep}-{load}"
                subprocess.run(["git", "clone", "-q", str(C.REPO), str(clone)], check=True)
                ctx = BackgroundLoad(args.load_procs, 3600.0) if load == "busy" else None
                try:
                    if ctx:
                        ctx.__enter__()
                    for target in targets:
                        before = loadavg()
                        r = run_make(clone, target, venv, shlex.split(args.make_args))
                        tail = (r.stdout + r.stderr).strip().splitlines()[-1:] or [""]
                        rows.append({"command": f"make {target}", "load": load,
                                     "busy_processes": args.load_procs if load == "busy" else 0,
                                     "installs": venv is None and target == targets[0], "repeat": rep,
                                     "wall_s": round(r.wall_s, 1), "minutes": round(r.wall_s / 60, 2),
                                     "exit_status": r.returncode, "load_average_before": before,
                                     "last_line": tail[0][:200]})
                        print(f"make {target} ({load}): {r.wall_s:.1f} s, exit {r.returncode}; {tail[0][:120]}",
                              flush=True)
                        if r.returncode != 0:  # what failed, before the clone is removed
                            print("\n".join((r.stdout + r.stderr).strip().splitlines()[-40:]), flush=True)
                    if example is None:
                        example = run_example(clone, venv)
                finally:
                    if ctx:
                        ctx.__exit__(None, None, None)
                shutil.rmtree(clone, ignore_errors=True)
    notes = [f"{C.usable_cores()} usable cores; each command from a fresh `git clone`; "
             + ("the clone builds its own .venv in its first command (pip's download cache as found)"
                if venv is None else "an existing environment, so no installation is timed"),
             "busy: one process spinning on a core for the whole measurement (another user's job)"]
    C.write_results(args.out, "bench_quickstart", "The quick start from a fresh clone", args.quick or bool(args.make_args),
                    {"repeats": repeats, "loads": loads, "load_procs": args.load_procs, "venv": bool(venv),
                     "targets": targets, "make_args": args.make_args,
                     "commit": subprocess.run(["git", "-C", str(C.REPO), "rev-parse", "HEAD"], capture_output=True,
                                              text=True).stdout.strip()},
                    [C.table("quickstart", "make demo and make test from a fresh clone", rows,
                             ["command", "load", "busy_processes", "installs", "repeat", "wall_s", "minutes",
                              "exit_status", "load_average_before"])],
                    machine, notes=notes, extra={"example": example})
    return 0 if all(r["exit_status"] == 0 for r in rows) else 1


if __name__ == "__main__":
    os.environ.setdefault("TMPDIR", tempfile.gettempdir())
    raise SystemExit(main())

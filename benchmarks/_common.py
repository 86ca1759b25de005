"""Shared helpers of the benchmark scripts: machine info, timing, child processes, tables, output.

Every script writes ``OUT/<name>.json`` and ``OUT/<name>.csv`` (default OUT:
``benchmarks/results``). The JSON has this shape, which ``make_readme_results.py`` reads:

    {"benchmark": name, "title": str, "quick": bool, "created": ISO time,
     "command": the command line that produced it, "machine": machine_info(),
     "config": {...}, "notes": [str, ...],
     "tables": [{"name": str, "title": str, "columns": [str, ...], "rows": [{...}, ...]}],
     "targets": [{"name": str, "value": float, "target": str, "met": bool}]}

The CSV holds the rows of the first (main) table; further tables go to
``OUT/<name>_<table>.csv``.
"""
from __future__ import annotations

import argparse
import csv
import datetime as _dt
import io
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "benchmarks" / "results"

# Run from a clean clone without `pip install -e .`: fall back to the source tree.
try:  # noqa: SIM105
    import instrec  # noqa: F401
except ImportError:  # pragma: no cover - depends on the environment
    sys.path.insert(0, str(REPO / "src"))
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), os.environ.get("PYTHONPATH")) if p)


# --------------------------------------------------------------------------- arguments
def base_parser(description: str, default_repeats: int = 3) -> argparse.ArgumentParser:
    """``--quick``, ``--out`` and ``--repeats``, shared by all scripts."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="small sizes: checks the script end to end in about "
                   "a minute; the numbers are not the ones to publish")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="folder for the CSV and JSON results "
                   "(default: benchmarks/results)")
    p.add_argument("--repeats", type=int, default=None,
                   help=f"repetitions of every measurement; the median is reported (default {default_repeats}, "
                        "2 with --quick)")
    p.add_argument("--workdir", default=None, help="scratch folder for data sets and runs (default: a temporary "
                   "folder, deleted at the end)")
    return p


def repeats_of(args: argparse.Namespace, default: int = 3) -> int:
    if args.repeats is not None:
        return max(1, args.repeats)
    return 2 if args.quick else default


# --------------------------------------------------------------------------- machine
def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else platform.processor()."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 ** 2, 1)
    except OSError:
        pass
    return None


def machine_info() -> dict[str, Any]:
    """What the numbers depend on: CPU, cores, memory, torch threads, package versions, load."""
    import torch

    from instrec.runinfo import package_versions

    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cores": usable_cores(),
        "memory_gib": memory_gib(),
        "torch_threads_default": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "load_average_at_start": load,
        "versions": package_versions(),
    }


def machine_line(m: Mapping[str, Any]) -> str:
    v = m.get("versions", {})
    return (f"{m.get('cpu_model')}, {m.get('usable_cores')} usable cores, {m.get('memory_gib')} GiB RAM, "
            f"torch {v.get('torch')} ({m.get('torch_threads_default')} threads by default), "
            f"Python {v.get('python')}, {v.get('platform')}")


# --------------------------------------------------------------------------- timing
def median(values: Sequence[float]) -> float:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(vals) if vals else float("nan")


def time_call(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


@dataclass
class ChildResult:
    """A finished child process: wall seconds, peak resident memory and its output."""

    argv: list[str]
    returncode: int
    wall_s: float
    max_rss_mib: float
    stdout: str
    stderr: str

    def check(self) -> "ChildResult":
        if self.returncode != 0:
            raise RuntimeError(f"command failed with exit status {self.returncode}: {shlex.join(self.argv)}\n"
                               f"--- stderr (tail) ---\n{self.stderr[-3000:]}")
        return self


_WRAPPER = (
    "import json, os, subprocess, sys, time\n"
    "t0 = time.perf_counter()\n"
    "p = subprocess.Popen(sys.argv[2:])\n"
    "_, status, ru = os.wait4(p.pid, 0)\n"
    "wall = time.perf_counter() - t0\n"
    "with open(sys.argv[1], 'w') as fh:\n"
    "    json.dump({'wall_s': wall, 'ru_maxrss': ru.ru_maxrss, 'rc': os.waitstatus_to_exitcode(status)}, fh)\n"
)


def run_child(argv: Sequence[str], env: Mapping[str, str] | None = None,
              cwd: str | os.PathLike | None = None) -> ChildResult:
    """Run ``argv``; return its wall time (start-up included), peak RSS and output.

    The command is started by a tiny Python wrapper (``python -S -c``) that times it and
    reads its ``ru_maxrss`` from ``os.wait4``. The wrapper matters: Linux carries the
    resident-set high-water mark of the process that forks across ``exec``, so a command
    spawned directly from this (large) process would report at least this process's size.
    """
    import tempfile

    argv = [str(a) for a in argv]
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    with tempfile.TemporaryDirectory(prefix="instrec-bench-child-") as d:
        res_path = Path(d) / "result.json"
        with open(Path(d) / "stdout", "w+b") as out, open(Path(d) / "stderr", "w+b") as err:
            proc = subprocess.run([sys.executable, "-S", "-c", _WRAPPER, str(res_path), *argv], stdout=out,
                                  stderr=err, env=full_env, cwd=cwd)
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        if proc.returncode != 0 or not res_path.is_file():
            return ChildResult(argv, proc.returncode or 1, float("nan"), float("nan"), stdout, stderr)
        res = json.loads(res_path.read_text())
    rss = res["ru_maxrss"] / (1024.0 if sys.platform != "darwin" else 1024.0 ** 2)
    return ChildResult(argv, res["rc"], res["wall_s"], rss, stdout, stderr)


def instrec_argv(*args: str) -> list[str]:
    """The ``instrec`` command of this interpreter's environment (the console script when it is
    installed next to the interpreter, else ``python -m instrec.cli``)."""
    script = Path(sys.executable).parent / "instrec"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script), *args]
    return [sys.executable, "-m", "instrec.cli", *args]


def display_command(argv: Sequence[str]) -> str:
    """A command as a reader would type it: ``instrec ...`` instead of the full interpreter path."""
    argv = [str(a) for a in argv]
    if argv[:3] == [sys.executable, "-m", "instrec.cli"]:
        argv = ["instrec", *argv[3:]]
    elif argv and Path(argv[0]).name == "instrec":
        argv = ["instrec", *argv[1:]]
    return shlex.join(argv)


# --------------------------------------------------------------------------- tables and output
def cell(value: Any) -> str:
    """One markdown table cell: numbers rounded to their magnitude, pipes escaped."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        mag = abs(value)
        if mag >= 1000:
            return f"{value:,.0f}"
        if mag >= 100:
            return f"{value:.1f}"
        if mag >= 1:
            return f"{value:.2f}"
        return f"{value:.3f}"
    return str(value).replace("|", "\\|")


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str],
                   headers: Mapping[str, str] | None = None) -> str:
    """A GitHub markdown table; text columns left-aligned, numbers right-aligned."""
    headers = dict(headers or {})
    numeric = [all(isinstance(r.get(c), (int, float)) and not isinstance(r.get(c), bool)
                   for r in rows if r.get(c) is not None) for c in columns]
    lines = ["| " + " | ".join(headers.get(c, c) for c in columns) + " |",
             "|" + "|".join("--:" if n else "---" for n in numeric) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(cell(r.get(c)) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def print_table(title: str, rows: Sequence[Mapping[str, Any]], columns: Sequence[str],
                headers: Mapping[str, str] | None = None) -> None:
    print(f"\n## {title}\n")
    print(markdown_table(rows, columns, headers), flush=True)


def _csv_text(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for r in rows:
        writer.writerow(["" if r.get(c) is None else (json.dumps(r[c]) if isinstance(r.get(c), (list, dict))
                                                       else r.get(c)) for c in columns])
    return buf.getvalue()


def table(name: str, title: str, rows: Sequence[Mapping[str, Any]], columns: Sequence[str],
          headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {"name": name, "title": title, "columns": list(columns), "headers": dict(headers or {}),
            "rows": [dict(r) for r in rows]}


def target(name: str, value: float, op: str, threshold: float, unit: str = "") -> dict[str, Any]:
    """A pass/fail target, e.g. target("train speed-up vs plain loop", 1.3, ">=", 1.2, "x")."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        met = False
    else:
        met = {">=": value >= threshold, "<": value < threshold, "<=": value <= threshold}[op]
    return {"name": name, "value": value, "target": f"{op} {threshold:g}{unit}", "unit": unit, "met": bool(met)}


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, float) and (math.isnan(obj) or math.isinf(obj)):
        return None
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return _jsonable(obj.item())
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_results(out_dir: str | os.PathLike, name: str, title: str, quick: bool, config: Mapping[str, Any],
                  tables: Sequence[Mapping[str, Any]], machine: Mapping[str, Any],
                  targets: Sequence[Mapping[str, Any]] = (), notes: Iterable[str] = (),
                  extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``OUT/name.json`` (everything) and one CSV per table; return the JSON path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": name, "title": title, "quick": bool(quick),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join(["python", *[_relative(a) for a in sys.argv]]),
        "machine": dict(machine), "config": dict(config), "notes": list(notes),
        "tables": list(tables), "targets": list(targets), **dict(extra or {}),
    }
    path = out / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(_jsonable(doc), indent=2) + "\n")
    os.replace(tmp, path)
    for i, t in enumerate(tables):
        csv_path = out / (f"{name}.csv" if i == 0 else f"{name}_{t['name']}.csv")
        csv_path.write_text(_csv_text(t["rows"], t["columns"]))
    return path


def _relative(arg: str) -> str:
    try:
        return str(Path(arg).resolve().relative_to(REPO)) if Path(arg).exists() else arg
    except (ValueError, OSError):  # outside the repository, or no path at all (a long --note)
        return arg


def print_targets(targets: Sequence[Mapping[str, Any]]) -> None:
    if not targets:
        return
    print("\nTargets:")
    for t in targets:
        print(f"  [{'met' if t['met'] else 'MISSED'}] {t['name']}: {cell(t['value'])}{t.get('unit', '')} "
              f"(target {t['target']})")


def workdir(args: argparse.Namespace, prefix: str):
    """A context manager giving the scratch folder (``--workdir`` is kept, a temporary one is not)."""
    import contextlib
    import tempfile

    if args.workdir:
        path = Path(args.workdir)
        path.mkdir(parents=True, exist_ok=True)
        return contextlib.nullcontext(path)

    @contextlib.contextmanager
    def tmp():
        with tempfile.TemporaryDirectory(prefix=prefix) as d:
            yield Path(d)

    return tmp()


# --------------------------------------------------------------------------- synthetic data
def synthetic_openmic(path: str | os.PathLike, n_clips: int, n_frames: int = 10, n_features: int = 128,
                      labels_per_clip: int = 2, test_fraction: float = 0.2, seed: int = 0,
                      frontend: str | None = None) -> Path:
    """An OpenMIC-*shaped* synthetic dataset: uint8 (N, T, F) features with a weak class signal,
    ``labels_per_clip`` labelled (clip, class) entries per clip (about 40% positive, relevance in
    [0, 1]), 20 classes; written with :func:`instrec.data.openmic.write_openmic`. Optionally a
    ``frontend.json`` naming the front end the features pretend to come from."""
    import numpy as np

    from instrec.classes import OPENMIC_CLASSES
    from instrec.data.openmic import write_openmic

    rng = np.random.default_rng(seed)
    n_classes = len(OPENMIC_CLASSES)
    Y_true = np.zeros((n_clips, n_classes), np.float32)
    Y_mask = np.zeros((n_clips, n_classes), bool)
    for i in range(n_clips):
        cls = rng.choice(n_classes, size=labels_per_clip, replace=False)
        Y_mask[i, cls] = True
        positive = rng.random(labels_per_clip) < 0.4
        Y_true[i, cls] = np.where(positive, rng.uniform(0.55, 1.0, labels_per_clip),
                                  rng.uniform(0.0, 0.45, labels_per_clip))
    patterns = rng.normal(0.0, 25.0, (n_classes, n_features))
    X = rng.normal(128.0, 30.0, (n_clips, n_frames, n_features))
    present = (Y_true >= 0.5) & Y_mask
    X += (present.astype(np.float64) @ patterns)[:, None, :]
    X = np.clip(np.rint(X), 0, 255).astype(np.uint8)
    keys = [f"synthetic_{i:06d}" for i in range(n_clips)]
    n_test = max(1, int(round(n_clips * test_fraction)))
    order = rng.permutation(n_clips)
    test = sorted(keys[i] for i in order[:n_test])
    train = sorted(keys[i] for i in order[n_test:])
    out = write_openmic(path, X, Y_true, Y_mask, keys, OPENMIC_CLASSES, train=train, test=test)
    if frontend is not None:
        (Path(path) / "frontend.json").write_text(json.dumps({"name": frontend}) + "\n")
    return out


def fresh_compile_cache(work: Path) -> Path:
    """Point torch.compile's on-disk cache (Inductor's, inherited by child processes) at a new
    folder under ``work``, so the first compiling run of a benchmark pays the full one-off
    compilation, as on a user's first run, and later runs find what it cached."""
    cache = work / "torchinductor-cache"
    cache.mkdir(parents=True, exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache)
    return cache

"""Experiment grids: the paper's comparison (ATT vs BiLSTM-ATT), its ablations (BCE vs focal
loss; no augmentation, mixup, concatenation, both) and the baselines, each over several
seeds. Work is spread over ``jobs`` worker processes (one per core); with the default
``engine="solo"`` every run is its own task. With ``engine="lockstep"`` the runs of each
lockstep-capable architecture (``bilstm-att``, ``att``) are split into groups (``jobs`` or
a multiple of it, at most ``max_members`` runs each), each trained in lockstep in one
worker (:mod:`instrec.training.lockstep`: the same numbers as training each run alone, bit for
bit for ``bilstm-att``, up to float rounding for ``att``). On 2 CPU cores the lockstep grid
measured no faster than the solo one (benchmarks/bench_grid.py), so it is opt-in.
With ``engine="dask"`` the solo runs are tasks of a Dask cluster (an existing one, or a
local one of ``jobs`` processes): the same numbers, spread over as many machines as the
cluster has.
A finished run (its ``metrics.json`` exists) is skipped, so an interrupted experiment
continues where it stopped (an interrupted lockstep group continues from its members'
resume state, or restarts from scratch when they disagree).

Outputs in ``out``: ``runs/<name>/`` (one run directory each), ``results.csv`` (one row per
run), ``summary.md`` (mean ± std per configuration), ``fig2_macro_f1.png``,
``fig3_per_instrument_f1.png`` and ``report.md``.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import time
from concurrent.futures import Executor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Sequence

from tqdm import tqdm

from instrec._io import InstrecError, atomic_write_json
from instrec._jsonread import Obj, read_json
from instrec.data.openmic import load_split
from instrec.device import resolve_device
from instrec.evaluation import report
from instrec.evaluation.evaluate import evaluate_run
from instrec.evaluation.metrics import call_everything_macro_f1
from instrec.models import STACKABLE_MODELS, model_spec
from instrec.parallel import dask_client, process_pool
from instrec.pipelines.grids import (  # noqa: F401  (re-exported: the grids are part of this module's interface)
    AUGMENTATIONS,
    BASELINES,
    DEMO_RULE,
    GRIDS,
    METHODS,
    PAPER_MODELS,
    RULES_GRID,
    RunSpec,
    augmentation,
    grid_specs,
)
from instrec.resume import has_resume_state
from instrec.run import CONFIG_FILE, METRICS_FILE, read_config
from instrec.runinfo import AUTO_THREADS, package_versions
from instrec.training.config import TrainConfig
from instrec.training.lifecycle import reusable
from instrec.training.lockstep import train_lockstep
from instrec.training.loop import train

METRICS = ("macro_f1", "micro_f1", "macro_f1_2class", "mean_ap")
FIG3_MAX_CONFIGS = 8  # more configurations than this: Fig. 3 shows each model's best one
#: Training engines ("solo", "lockstep") and "dask" (solo runs on a Dask cluster).
ENGINES = ("solo", "lockstep", "dask")
RUNS_DIR = "runs"
RESULTS_FILE = "results.csv"
SUMMARY_FILE = "summary.md"
EXPERIMENT_FILE = "experiment.json"
FIG2_FILE = "fig2_macro_f1.png"
FIG3_FILE = "fig3_per_instrument_f1.png"


def run_path(out: str | Path, spec: RunSpec) -> Path:
    """``out/runs/<spec name>``: the run directory of one configuration."""
    return Path(out) / RUNS_DIR / spec.name


def _train_config(spec: RunSpec, data: str, out: str, epochs: int, threads: int = 1, compile: str = "auto",
                  device: str = "auto"):
    run_dir = run_path(out, spec)
    if has_resume_state(run_dir) and (run_dir / CONFIG_FILE).is_file():
        # An interrupted run continues with the thread count it started with (it can change
        # float rounding), whatever --jobs the experiment is resumed with.
        # A damaged config keeps the given count: reusable() reports the run, or removes it with overwrite.
        with contextlib.suppress(InstrecError):
            threads = read_config(run_dir)["train"].get("threads", threads)
    mixup, concat, rule = augmentation(spec.augment)
    if not model_spec(spec.model).variable_length:
        concat = 0.0  # concatenated clips are longer than such a model accepts
    if spec.method not in METHODS:
        raise InstrecError(f"unknown method {spec.method!r}; choose one of {', '.join(METHODS)}")
    extra = dict(METHODS[spec.method])
    if spec.teacher is not None:
        extra["teacher"] = str(run_path(out, spec.teacher))
    return TrainConfig(data=data, out=str(run_dir), model=spec.model, loss=spec.loss,
                       mixup=mixup, concat=concat, epochs=epochs, seed=spec.seed, threads=threads,
                       compile=compile, device=device, mixup_labels=rule, **extra)


def run_one(spec: RunSpec, data: str, out: str, epochs: int, threads: int = 1,
            compile: str = "auto", overwrite: bool = False, device: str = "auto") -> dict[str, Any]:
    """Train and evaluate one configuration (in a worker process, with ``threads`` torch
    threads; ``compile``: see :mod:`instrec.training.step`); return its results row.
    A finished run is reused only if it recorded these settings and this dataset's content
    (:func:`~instrec.training.lifecycle.reusable`; ``overwrite`` retrains one that did not)."""
    run_dir = run_path(out, spec)
    if not reusable(_train_config(spec, data, out, epochs, threads, compile, device), overwrite):
        t0 = time.perf_counter()
        train(_train_config(spec, data, out, epochs, threads, compile, device), resume=True, progress=False)
        _write_metrics(run_dir, {"train_seconds": time.perf_counter() - t0, "train_engine": "solo"}, device)
    return _row(spec, run_dir)


def run_group(specs: Sequence[RunSpec], data: str, out: str, epochs: int, threads: int = 1,
              overwrite: bool = False, device: str = "auto") -> list[dict[str, Any]]:
    """Train the configurations ``specs`` (one architecture) in lockstep in this process,
    evaluate each, and return their results rows. ``train_seconds`` of a lockstep run is
    its share of the group's wall time (group time / group size). Reuse: as :func:`run_one`."""
    tune_malloc()
    todo = [s for s in specs if not reusable(_train_config(s, data, out, epochs, threads, device=device), overwrite)]
    if todo:
        t0 = time.perf_counter()
        train_lockstep([_train_config(s, data, out, epochs, threads, device=device) for s in todo], resume=True,
                       progress=False)
        share = (time.perf_counter() - t0) / len(todo)
        for s in todo:
            _write_metrics(run_path(out, s), {"train_seconds": share, "train_engine": "lockstep",
                                              "lockstep_group_size": len(todo)}, device)
    return [_row(s, run_path(out, s)) for s in specs]


def _write_metrics(run_dir: Path, extra: dict[str, Any], device: str = "auto") -> None:
    metrics = evaluate_run(run_dir, overwrite=True, device=device)  # the experiment owns its runs
    metrics.update(extra)
    atomic_write_json(run_dir / METRICS_FILE, metrics)


def _row(spec: RunSpec, run_dir: Path) -> dict[str, Any]:
    metrics = read_json(run_dir / METRICS_FILE, Obj({"tuned_thresholds": dict}, (*METRICS, "tuned_thresholds")))
    row: dict[str, Any] = {"model": spec.model, "loss": spec.loss, "augment": spec.augment, "method": spec.method,
                           "seed": spec.seed}
    row.update({k: _number(metrics[k]) for k in METRICS})
    row["tuned_macro_f1"] = _number(metrics["tuned_thresholds"]["macro_f1"])
    row["train_seconds"] = _number(metrics.get("train_seconds"))
    row["per_class_f1"] = {c["instrument"]: _number(c["f1"]) for c in metrics["per_class"]}
    return row


def tune_malloc() -> None:
    """Keep glibc from returning freed multi-megabyte buffers to the OS after every step:
    lockstep steps allocate such buffers, and re-faulting their pages costs a few per cent
    of a step. Process-wide, so only called in worker processes; a no-op without glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, 64 << 20)   # M_MMAP_THRESHOLD
        libc.mallopt(-1, 512 << 20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


def plan_tasks(specs: Sequence[RunSpec], jobs: int, engine: str = "solo",
               max_members: int = 8) -> list[list[RunSpec]]:
    """Split ``specs`` into tasks, largest first: lockstep groups (one architecture each,
    about ``jobs`` groups per architecture, at most ``max_members`` runs each) and single
    runs (other architectures, or everything with ``engine="solo"``)."""
    if engine not in ("lockstep", "solo"):
        raise InstrecError(f"unknown engine {engine!r}; choose lockstep or solo")
    stackable = STACKABLE_MODELS if engine == "lockstep" else ()
    # a run with a teacher trains on labels of its own: never in a lockstep group
    tasks: list[list[RunSpec]] = [[s] for s in specs if s.model not in stackable or s.teacher is not None]
    for model in stackable:
        mine = [s for s in specs if s.model == model and s.teacher is None]
        if not mine:
            continue
        per_job = -(-len(mine) // max(1, jobs))
        n_groups = max(1, jobs) * -(-per_job // max(1, max_members))
        n_groups = min(n_groups, len(mine))
        tasks += [mine[i::n_groups] for i in range(n_groups)]
    return sorted(tasks, key=_task_cost, reverse=True)


_LOCKSTEP_SPEEDUP = 1.1


def _task_cost(task: list[RunSpec]) -> float:
    cost = sum(model_spec(s.model).cost for s in task)
    return cost / _LOCKSTEP_SPEEDUP if len(task) > 1 else cost


def _number(value: Any) -> float:
    """metrics.json stores undefined values as null; tables want NaN."""
    return float("nan") if value is None else float(value)


def run_experiment(data: str | Path, out: str | Path, grid: str = "paper", seeds: int = 3, epochs: int = 200,
                   jobs: int = 2, overwrite: bool = False, progress: bool = True,
                   executor: Executor | None = None, engine: str = "solo",
                   max_members: int = 8, compile: str = "auto", scheduler: str | None = None,
                   device: str = "auto") -> list[dict[str, Any]]:
    """Run a grid and write the results table, summary, figures and report.

    ``engine``: "solo" (default) or "lockstep", see the module docstring, or "dask": the solo
    runs as tasks of a Dask cluster, the one at ``scheduler`` or else a local one of ``jobs``
    worker processes, one torch thread per run (the numbers of "solo"); ``max_members``:
    the largest lockstep group; ``compile``: whether solo runs compile their training step
    (auto, on, off; see :mod:`instrec.training.step`). ``executor``: any ``concurrent.futures.Executor`` (e.g. a
    Dask client's) to scale out; default a spawn-based process pool of ``jobs`` workers.
    ``device``: every run's (:mod:`instrec.device`), checked here before any work when the runs
    train on this machine; each worker resolves it again (a Dask worker: on its own machine)
    and every run records its own."""
    if scheduler is None and executor is None:
        resolve_device(device)
    out = Path(out)
    specs = grid_specs(grid, seeds)
    if out.exists() and (out / RESULTS_FILE).exists() and not overwrite:
        raise InstrecError(f"{out}: holds a finished experiment (results.csv); pass --overwrite to redo the "
                           "tables and figures (finished runs of the same settings and data are reused, others "
                           "trained again)")
    desc = f"experiment {grid}" if progress else None
    if engine not in ENGINES:
        raise InstrecError(f"unknown engine {engine!r}; choose {', '.join(ENGINES)}")
    if scheduler is not None and engine != "dask":
        raise InstrecError(f"a scheduler address ({scheduler}) needs the dask engine, not {engine!r}")
    if engine == "dask":
        if executor is not None:
            raise InstrecError("the dask engine brings its own executor; pass one or the other")
        with dask_client(scheduler, jobs) as client:
            rows = run_specs(specs, data, out, epochs, jobs, client.get_executor(pure=False), "solo", max_members,
                             desc=desc, compile=compile, overwrite=overwrite, device=device)
    else:
        rows = run_specs(specs, data, out, epochs, jobs, executor, engine, max_members, desc=desc, compile=compile,
                         overwrite=overwrite, device=device)
    write_outputs(out, rows, grid, data, seeds, epochs)
    return rows


def run_specs(specs: Sequence[RunSpec], data: str | Path, out: str | Path, epochs: int, jobs: int = 2,
              executor: Executor | None = None, engine: str = "solo", max_members: int = 8,
              desc: str | None = None, compile: str = "auto", overwrite: bool = False,
              device: str = "auto") -> list[dict[str, Any]]:
    """Train and evaluate ``specs`` into ``out/runs`` (see :func:`run_experiment`); return
    their results rows in the order of ``specs``. ``desc``: progress-bar title (None: no bar).
    Runs with a teacher (method ``pseudo``) start once every other run has finished."""
    names = {s.name for s in specs}
    for s in specs:
        if s.teacher is not None and s.teacher.name not in names \
                and not (run_path(out, s.teacher) / METRICS_FILE).is_file():
            raise InstrecError(f"{s.name}: its teacher {s.teacher.name} is neither in the grid nor finished in {out}")
    phases = [[s for s in specs if s.teacher is None], [s for s in specs if s.teacher is not None]]
    (Path(out) / RUNS_DIR).mkdir(parents=True, exist_ok=True)
    own = executor is None
    # Parallel across processes, one torch thread each (see instrec.runinfo's thread policy).
    threads = AUTO_THREADS
    if own:
        executor = process_pool(max(1, jobs), mp_context=get_context("spawn"))  # workers die with us
    rows: dict[str, dict[str, Any]] = {}
    bar = tqdm(total=len(specs), desc=desc, unit="run") if desc is not None else None
    try:
        for phase in phases:
            futures = {}
            for task in plan_tasks(phase, jobs, engine, max_members):
                if engine == "lockstep" and task[0].model in STACKABLE_MODELS and task[0].teacher is None:
                    futures[executor.submit(run_group, task, str(data), str(out), epochs, threads, overwrite,
                                            device)] = task
                else:
                    futures[executor.submit(run_one, task[0], str(data), str(out), epochs, threads, compile,
                                            overwrite, device)] = task
            for future in as_completed(futures):
                result = future.result()
                for spec, row in zip(futures[future], result if isinstance(result, list) else [result]):
                    rows[spec.name] = row
                if bar is not None:
                    bar.update(len(futures[future]))
    finally:
        if bar is not None:
            bar.close()
        if own:
            executor.shutdown()
    return [rows[s.name] for s in specs]


def _config_label(row: dict[str, Any]) -> str:
    method = row.get("method", "none")
    return f"{row['model']} ({row['loss']}, {row['augment']}{'' if method == 'none' else ', ' + method})"


def write_outputs(out: Path, rows: list[dict[str, Any]], grid: str, data: str | Path, seeds: int, epochs: int) -> None:
    """results.csv, summary.md, the two figures and report.md."""
    flat = [{k: v for k, v in r.items() if k != "per_class_f1"} for r in rows]
    report.write_results_csv(out / RESULTS_FILE, flat)
    summary = report.summarise(flat)
    if all(r.get("method", "none") == "none" for r in summary):  # no method beyond the paper: no column for it
        summary = [{k: v for k, v in r.items() if k != "method"} for r in summary]
    report.write_summary_markdown(out / SUMMARY_FILE, summary)
    test = load_split(data, "test")
    floor = call_everything_macro_f1(test.Y_true, test.Y_mask, test.classes)
    fig2 = report.plot_macro_f1(summary, out / FIG2_FILE, reference=("calling every instrument present", floor))
    # Fig. 3 stays readable: with more than FIG3_MAX_CONFIGS configurations it shows the best
    # one (mean macro F1) of each model, as the paper compares its systems.
    shown = range(len(summary))
    title = "Instrument-level F1"
    if len(summary) > FIG3_MAX_CONFIGS:
        shown = report.best_per_group(summary, "model", "macro_f1")
        title += ": the best configuration of each model (mean macro F1)"
    keep = {_config_label(summary[i]) for i in shown}
    per_class: dict[str, dict[str, list[float]]] = {}
    for r in rows:
        label = _config_label(r)
        if label in keep:
            for inst, f1 in r["per_class_f1"].items():
                per_class.setdefault(label, {}).setdefault(inst, []).append(f1)
    fig3 = report.plot_per_class_f1(report.mean_std_by_instrument(per_class), out / FIG3_FILE,
                                    title=title, n_seeds=seeds)
    atomic_write_json(out / EXPERIMENT_FILE, {"grid": grid, "data": str(data), "seeds": seeds, "epochs": epochs,
                                                 "versions": package_versions()})
    report.write_report(out, summary, {"Fig. 2: macro F1 per configuration": fig2,
                                       "Fig. 3: per-instrument F1": fig3},
                        {"Setup": f"Grid `{grid}` on `{data}`, {seeds} seed(s), {epochs} epochs, "
                                  "threshold 0.5, labelled entries only.",
                         "Scores": f"Every metric of every configuration: [{SUMMARY_FILE}]({SUMMARY_FILE}) "
                                   f"(per run: [{RESULTS_FILE}]({RESULTS_FILE})). A tagger that calls every "
                                   f"instrument present scores a macro F1 of {floor:.3f} on these test clips "
                                   "(the dashed line of Fig. 2): only the margin above it is learned."},
                        table=False)

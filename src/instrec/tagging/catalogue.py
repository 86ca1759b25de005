"""Tagging a catalogue: millions of files on a Dask cluster (or any executor), resumable.

Files are cut into batches; each batch is one task. A worker loads the model and front
end once (kept per worker process, see :func:`_worker_tagger`), tags the batch with the
same code as ``instrec predict`` (:func:`instrec.tagging.batch.tag_paths`) and writes
its Parquet parts itself, atomically, named by a hash of the batch's files: a task run a
second time (its worker died) rewrites the same part. Only a bounded number of tasks is
in flight, so memory stays flat whatever the length of the file list.

The output folder ``out``:

- ``clips/part-<hash>.parquet``: the clip table, ``seconds/part-<hash>.parquet``: the
  per-second table (with ``per_second``), ``failures.parquet``: the files that could not be
  tagged (schemas in :mod:`instrec.tagging.tables`; read them all with :func:`read_catalogue`);
- ``manifest.jsonl``: one line per finished batch (its part, its files, its failures),
  appended by the client only after the worker's parts are on disk. It is the record of
  what is done: running the same job again tags only the files it does not list, and first
  deletes any part it does not list (the client was killed between a worker's write and
  the manifest line), so every file is in the tables exactly once. A failed file is done
  too (it would fail again); it stays in the failures table;
- ``job.json``: the model, the options and the threshold policy of the present flags (with
  each instrument's threshold) and the per-second policy; a rerun with other ones is refused.

The paths are stored absolute (workers of a cluster need the files, and ``out``, at the
same paths: a shared file system).
"""
from __future__ import annotations

import collections
import os
import resource
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from instrec._io import InstrecError, OutputLock, atomic_write_json
from instrec._jsonread import ListOf, Obj, Str, read_json
from instrec.device import resolve_device
from instrec.features.audio import expand_inputs
from instrec.parallel import as_completed_bounded, dask_client
from instrec.run import CONFIG_FILE, MODEL_FILE
from instrec.runinfo import set_threads, usable_cores
from instrec.tagging import tables
from instrec.tagging.batch import tag_paths
from instrec.tagging.manifest import PART_SUFFIX, Manifest, part_name, sweep
from instrec.tagging.predict import Tagger, require_frame_outputs

CLIPS_DIR = "clips"
SECONDS_DIR = "seconds"
FAILURES_FILE = "failures.parquet"
MANIFEST_FILE = "manifest.jsonl"
JOB_FILE = "job.json"
#: Files per task by default: seconds of work per task, so the scheduler's few milliseconds per task are noise.
BATCH_FILES = 16
#: A worker process keeps the taggers it loaded, keyed by run and options (see _worker_tagger).
_TAGGERS: dict[tuple, Tagger] = {}


@dataclass(frozen=True)
class BatchJob:
    """What a worker needs to tag a batch (picklable; the same for every batch of a job)."""

    run_dir: str
    out: str
    per_second: bool
    options: tuple[tuple[str, Any], ...]  # Tagger keyword arguments, sorted
    threads: int
    device: str = "auto"  # resolved by each worker on its own machine (not part of the job's identity)


@dataclass
class CatalogueReport:
    """What a catalogue job did. ``files_*`` count files; ``audio_seconds`` and ``wall_seconds``
    are this run's; ``failed`` lists every failure recorded in ``out`` (this run and earlier ones)."""

    out: Path
    files_total: int
    files_skipped: int  # already done by an earlier run
    files_tagged: int  # tagged now, successfully
    failed: list[tuple[str, str]] = field(default_factory=list)
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    peak_worker_rss_mib: float = 0.0

    @property
    def exit_code(self) -> int:
        """0 when every file was tagged, 1 when some failed (as ``instrec predict``)."""
        return 1 if self.failed else 0


def _worker_tagger(job: BatchJob) -> Tagger:
    """The job's tagger, loaded once per worker process. The key holds the model files'
    modification times, so a long-lived cluster reloads a run that was retrained in place."""
    run = Path(job.run_dir)
    stamp = tuple((run / name).stat().st_mtime_ns for name in (CONFIG_FILE, MODEL_FILE))
    key = (job.run_dir, job.options, job.device, stamp)
    if key not in _TAGGERS:
        _TAGGERS.clear()  # one model at a time per worker
        _TAGGERS[key] = Tagger(job.run_dir, device=job.device, **dict(job.options))
    set_threads(job.threads)
    return _TAGGERS[key]


def tag_batch(job: BatchJob, paths: list[str]) -> dict[str, Any]:
    """Tag ``paths`` on a worker and write the batch's parts; return its manifest entry
    (plus the worker's peak memory in MiB, which the manifest does not keep)."""
    tagger = _worker_tagger(job)
    files, failures = tag_paths(tagger, paths)
    part = part_name(paths)
    out = Path(job.out)
    try:
        if files:
            tables.write_parquet(out / CLIPS_DIR / (part + PART_SUFFIX), tables.clip_table(files, tagger.classes))
            if job.per_second:
                tables.write_parquet(out / SECONDS_DIR / (part + PART_SUFFIX),
                                     tables.seconds_table(files, tagger.classes))
    except OSError as exc:
        raise InstrecError(f"{out}: worker {socket.gethostname()} cannot write its part there ({exc}); the output "
                           "folder must be on a file system every worker shares, at the same path") from exc
    return {"part": part if files else None, "files": list(paths), "failed": [list(f) for f in failures],
            "audio_seconds": float(sum(f.seconds for f in files)),
            "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


#: ``job.json`` as the defensive reader checks it.
JOB_SCHEMA = Obj({"run_dir": str, "per_second": bool, "classes": ListOf(Str(True), 1), "options": dict,
                  "threshold": str, "thresholds": dict}, ("run_dir", "per_second", "classes", "options"))


def _check_job(out: Path, doc: dict[str, Any]) -> None:
    path = out / JOB_FILE
    if path.is_file():
        old = read_json(path, JOB_SCHEMA)
        changed = sorted(k for k in doc if old.get(k) != doc[k])
        if changed:
            raise InstrecError(f"{out}: holds the output of another job ({', '.join(changed)} differ); "
                               "use a new output folder")
    else:
        atomic_write_json(path, doc)


def _batches(paths: list[str], size: int, done: set[str]) -> Iterator[list[str]]:
    """Consecutive batches of ``size`` paths cut from the whole input list, less the files
    done. With the same inputs a rerun submits exactly the batches not finished before,
    under the same part names: a task left running by a killed client can only write a
    part the rerun writes again with the same content."""
    for i in range(0, len(paths), size):
        batch = [p for p in paths[i:i + size] if p not in done]
        if batch:
            yield batch


def tag_catalogue(run_dir: str | Path | None, inputs: Iterable[str | Path], out: str | Path, *,
                  per_second: bool = False, scheduler: str | None = None, executor: Any = None,
                  workers: int | None = None, batch_files: int | None = None, max_in_flight: int | None = None,
                  threads: int = 1, progress: bool = False, on_batch: Callable[[dict[str, Any]], None] | None = None,
                  device: str = "auto", **tagger_options: Any) -> CatalogueReport:
    """Tag the audio files ``inputs`` (files or folders) into the Parquet tables in ``out``.

    Runs on ``executor`` (any ``concurrent.futures.Executor``, e.g. a Dask client's
    ``get_executor()``) if given; else on the Dask cluster at ``scheduler``; else on a local
    Dask cluster of ``workers`` processes (default: the usable cores), one thread each.
    ``batch_files``: files per task (default :data:`BATCH_FILES`); ``max_in_flight``: tasks submitted at once (default
    2 per worker); ``threads``: torch threads per task; ``device``: where each worker runs the
    networks, resolved by the worker (``auto``: its own GPU if it has one; checked here first
    for a local cluster, which runs on this machine). ``on_batch(entry)`` is called after
    each finished batch is recorded. ``tagger_options``: see :class:`~instrec.tagging.predict.Tagger`.
    Resumable; see the module docstring. Returns what was done; its ``exit_code`` is 1 when
    some file failed."""
    if executor is not None and scheduler is not None:
        raise InstrecError(f"pass an executor or a scheduler address ({scheduler}), not both")
    batch_files = BATCH_FILES if batch_files is None else batch_files
    if batch_files < 1:
        raise InstrecError(f"batch_files must be >= 1, got {batch_files}")
    if scheduler is None and executor is None:
        resolve_device(device)  # the local cluster's workers run here: a missing GPU is an error now
    out = Path(out)
    # Checks the run, front end and thresholds here, not on a worker (on the CPU: the workers tag).
    tagger = Tagger(run_dir, device="cpu", **tagger_options)
    if per_second:
        require_frame_outputs(tagger)
    options = tuple(sorted(tagger_options.items()))
    job = BatchJob(str(tagger.run_dir.resolve()), str(out.resolve()), per_second, options, threads, device)
    # One job at a time per output folder (as every other output): a second one would tag
    # the same files again and the tables would hold them twice.
    with OutputLock(out):
        out.mkdir(parents=True, exist_ok=True)
        _check_job(out, {"run_dir": job.run_dir, "per_second": per_second, "classes": tagger.classes,
                         "options": {k: str(v) for k, v in options}, "threshold": tagger.policy.description,
                         "thresholds": dict(zip(tagger.classes, map(float, tagger.thresholds))),
                         "frame_policy": tagger.frame_policy["description"] if tagger.frame_policy else None})
        manifest = Manifest(out / MANIFEST_FILE)
        entries = manifest.load()
        sweep([out / CLIPS_DIR, out / SECONDS_DIR], entries)
        done = {p for e in entries for p in e["files"]}
        failed = [tuple(f) for e in entries for f in e["failed"]]
        paths = list(dict.fromkeys(os.path.abspath(p) for p in expand_inputs(inputs)))
        todo = [p for p in paths if p not in done]
        report = CatalogueReport(out, len(paths), len(paths) - len(todo), 0, failed)
        t0 = time.perf_counter()
        batches = _batches(paths, batch_files, done)
        try:
            if todo and executor is not None:
                _run(job, batches, len(todo), executor, max_in_flight or 4, manifest, report, progress, on_batch)
            elif todo:
                n_workers = workers or usable_cores()
                with dask_client(scheduler, n_workers) as client:
                    n = len(client.scheduler_info().get("workers", {})) or n_workers
                    _run(job, batches, len(todo), client.get_executor(pure=False), max_in_flight or 2 * n, manifest,
                         report, progress, on_batch)
        finally:
            report.wall_seconds = time.perf_counter() - t0
            # Parts of tasks cancelled by an interrupt are not in the manifest: not results.
            sweep([out / CLIPS_DIR, out / SECONDS_DIR], manifest.load())
            tables.write_parquet(out / FAILURES_FILE, tables.failures_table(report.failed))
        return report


def _run(job: BatchJob, batches: Iterator[list[str]], n_files: int, executor: Any, max_in_flight: int,
         manifest: Manifest, report: CatalogueReport, progress: bool,
         on_batch: Callable[[dict[str, Any]], None] | None) -> None:
    """Submit the batches, record each finished one in the manifest, show progress."""
    # A batch whose worker died too often (Dask's KilledWorker: some file crashes the process)
    # is retried one file per task, so the culprit fails alone and the others are tagged.
    queue = _Requeue(batches)
    bar = tqdm(total=n_files, desc="tagging", unit="file", disable=not progress, smoothing=0.1)
    t0 = time.perf_counter()
    try:
        for batch, fut in as_completed_bounded(_Call(job), queue, executor, max_in_flight):
            try:
                entry = fut.result()
            except Exception as exc:  # only a dead worker is handled here; the rest is re-raised
                if isinstance(exc, ImportError):
                    raise InstrecError(f"a worker cannot import what the task needs ({exc}); install instrec "
                                       "(the client's version) on every worker") from exc
                if type(exc).__name__ != "KilledWorker":
                    raise
                if len(batch) > 1:
                    queue.retry.extend([p] for p in batch)
                    continue
                error = f"{batch[0]}: the worker process died while tagging this file"
                entry = {"part": None, "files": batch, "failed": [[batch[0], error]], "audio_seconds": 0.0,
                         "rss_mib": 0.0}
            report.peak_worker_rss_mib = max(report.peak_worker_rss_mib, entry.pop("rss_mib", 0.0))
            manifest.append(entry)
            report.files_tagged += len(entry["files"]) - len(entry["failed"])
            report.failed.extend(tuple(f) for f in entry["failed"])
            report.audio_seconds += entry["audio_seconds"]
            bar.update(len(entry["files"]))
            bar.set_postfix_str(f"{report.audio_seconds / 3600 / max(time.perf_counter() - t0, 1e-9):.3g} audio-h/s, "
                                f"{len(report.failed)} failed", refresh=False)
            if on_batch is not None:
                on_batch(entry)
    finally:
        bar.close()


class _Requeue:
    """The batches, with retries first: an iterator that can be asked again after it ran dry
    (:func:`~instrec.parallel.as_completed_bounded` asks whenever a slot is free)."""

    def __init__(self, batches: Iterator[list[str]]):
        self.batches = batches
        self.retry: collections.deque[list[str]] = collections.deque()

    def __iter__(self) -> _Requeue:
        return self

    def __next__(self) -> list[str]:
        return self.retry.popleft() if self.retry else next(self.batches)


class _Call:
    """``tag_batch`` bound to a job: a picklable callable for ``executor.submit(fn, batch)``."""

    def __init__(self, job: BatchJob):
        self.job = job

    def __call__(self, paths: list[str]) -> dict[str, Any]:
        return tag_batch(self.job, paths)


def read_catalogue(out: str | Path) -> dict[str, Any]:
    """The tables of a catalogue folder as pyarrow Tables: ``clips``, ``seconds`` (empty
    without per-second tags) and ``failures``."""
    out = Path(out)
    if not (out / JOB_FILE).is_file():
        raise InstrecError(f"{out}: not a catalogue output folder (no {JOB_FILE})")
    classes = read_json(out / JOB_FILE, JOB_SCHEMA)["classes"]
    # Only the parts the manifest lists: a task of a killed client may have left another.
    parts = [e["part"] + PART_SUFFIX for e in Manifest(out / MANIFEST_FILE).load() if e.get("part")]
    return {"clips": tables.read_parts(out / CLIPS_DIR, tables.clip_schema(classes), parts),
            "seconds": tables.read_parts(out / SECONDS_DIR, tables.seconds_schema(), parts),
            "failures": tables.read_parquet(out / FAILURES_FILE, tables.failures_schema())}

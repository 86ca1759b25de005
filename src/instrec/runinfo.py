"""What a run records beside its results: package versions, host, seed, threads; and the
thread policy of every command.

Thread policy (measured by ``benchmarks/bench_busy.py``; figures in the README):

* **One torch intra-op thread per process** is the default (``threads=0``/``--threads 0``)
  of every command: ``train``, ``experiment`` (per worker process), ``predict`` and
  ``featurize`` with any front end, ``synth`` (its worker processes) and the Dask workers.
  These models' operations are tiny (a 64-unit BiLSTM step, a 20-class attention head, a
  128-band mel frame): two threads meet at an OpenMP barrier after every one of them. Idle
  on 2 cores two threads are only about 1.1x faster in the epoch loop (bilstm-att: 0.26 s
  against 0.29 s per epoch of 2,550 clips; 3 % of a 3-epoch ``instrec train`` command), but
  beside two CPU-bound processes a 2-thread ``instrec train`` took 3-16 s of epoch loop
  where one thread took 1.2-2.6 s: a thread waiting at a barrier waits for its sibling to
  get a core back, and the issue's measurement at load average 5 was 12x (94.8 s against
  8.1 s). bench_busy's medians: 1 thread 0.86 s idle / 1.32 s loaded, 2 threads 0.76 s /
  2.02 s (one repeat 18.4 s).
* The **musicnn and vggish front ends** too: their convolutions are larger, yet the same
  cliff is there. ``instrec predict`` with the default model (musicnn) on a 321-s file, 4
  runs each on 2 cores: idle 4.5-4.9 s with one thread, 4.2-4.5 s with two (6 % faster);
  beside two spinning processes 7.1-7.6 s with one thread, 13-30 s with two. On four 10-s
  clips one thread was faster idle as well (2.09 s against 2.28 s median).
* Parallelism comes from **processes, not threads**: ``experiment --jobs`` and ``synth
  --jobs`` run one single-threaded worker per core, which never wait for each other.
* ``predict`` and ``featurize`` work **across files**: with at least
  :data:`MIN_FILES_PER_JOB` files per worker they fork one single-threaded worker per usable
  core (``--jobs 0``, :func:`plan_file_workers`; :func:`instrec.parallel.inherited_map`).
  Decoding and resampling take most of a file's time (a 10-s FLAC clip with the logmel front
  end: 9 ms decoding, 2 ms resampling, 4 ms features, under 1 ms model), and none of that is
  spread over threads. Forked workers inherit the loaded model and front end, so a worker
  costs milliseconds, not an import and a model load. Measured on 2 idle cores: 200 clips
  with logmel 5.4 s -> 3.7 s command time, the default model (musicnn) on the 24
  realaudio-dev files 4.2 s -> 2.5 s, the tags identical.
* **OpenMP wait policy**: left at its default. ``OMP_WAIT_POLICY=PASSIVE`` (threads sleep
  instead of spinning at barriers) made a 2-thread plain loop 2.5x slower idle (4.3 s
  against 1.7 s) and only helped it under load, where one thread is faster still; with one
  intra-op thread OpenMP's pool is not used, so the policy does not matter.
* **numpy's BLAS** gets the same count as torch: OpenBLAS otherwise runs one thread per
  core for the logmel front end's matrix products. Measured on 24 30-s files with a logmel
  run on a busy machine (load average 4.5): ``predict`` 1.75 s wall / 1.16 s CPU with
  OpenBLAS's 2 threads, 0.75 s / 0.50 s with one (2.3x). The synth workers already ran with one.
* **Inter-op threads**: set to 1. instrec never forks torch work (no ``torch.jit.fork``), so
  the inter-op pool only holds idle threads.
* ``--threads N`` (N > 0) overrides all of this; the resolved count is recorded in
  ``config.json`` (it can change float rounding).
"""
from __future__ import annotations

import contextlib
import functools
import os
import platform
import sys
import warnings
from collections.abc import Callable
from importlib import metadata

import torch
from threadpoolctl import threadpool_limits

_PACKAGES = ("instrec", "numpy", "torch", "scikit-learn", "soundfile", "soxr", "safetensors",
             "midirenderer", "pretty_midi", "matplotlib")


def package_versions() -> dict[str, str]:
    """Versions of Python and of the packages that can change instrec's numbers."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


#: Intra-op threads of every process by default (``--threads 0``; see the module docstring).
AUTO_THREADS = 1


#: Files per worker process below which :func:`auto_jobs` does not start another worker:
#: forking one and setting it up takes about as long as decoding and tagging a few 10-s clips.
MIN_FILES_PER_JOB = 4


def auto_jobs(n_files: int, fork_ok: bool = True) -> int:
    """Worker processes for featurising or tagging ``n_files`` files (``--jobs 0``): one per
    usable core, but at least :data:`MIN_FILES_PER_JOB` files each; 1 when workers cannot
    be forked (``fork_ok`` False: see :func:`instrec.parallel.fork_available`)."""
    if not fork_ok:
        return 1
    return max(1, min(usable_cores(), n_files // MIN_FILES_PER_JOB))


def plan_file_workers(n_files: int, jobs: int, threads: int | None, fork_ok: bool) -> tuple[int, int | None]:
    """``--jobs`` and ``--threads`` of ``featurize``/``predict`` on ``n_files`` files resolved
    to (worker processes, intra-op threads of each as :func:`set_threads` takes them):
    ``jobs`` 0 is :func:`auto_jobs`; workers get ``threads`` if > 0, else
    :data:`AUTO_THREADS` (never "keep": torch's own default is one thread per core); one
    process gets ``threads`` unchanged. ``fork_ok``: whether workers can be forked here (a
    request for more than one without it warns and runs in-process)."""
    n = jobs if jobs > 0 else auto_jobs(n_files, fork_ok)
    n = min(n, max(1, n_files))
    if n > 1 and not fork_ok:
        warnings.warn(f"--jobs {jobs}: worker processes are forked, which is safe only on Linux; "
                      "working in this process")
        n = 1
    if n <= 1:
        return 1, threads
    return n, threads if threads else AUTO_THREADS


def threads_for_workers(jobs: int, threads: int | None) -> Callable[[], int] | None:
    """Set this process's threads for a map over ``jobs`` forked workers (``jobs`` and
    ``threads`` from :func:`plan_file_workers`) and return what each worker must run first
    (None: nothing). One process gets ``threads``. With workers this process keeps one
    thread, so that it starts no OpenMP pool before forking (checking a model's weights for
    NaN would: a forked worker with more threads then hangs in the dead pool), and the
    workers set ``threads`` themselves."""
    if jobs <= 1:
        set_threads(threads)
        return None
    set_threads(AUTO_THREADS)
    return None if threads in (None, 0, AUTO_THREADS) else functools.partial(set_threads, threads)


def _one_interop_thread() -> None:
    """Inter-op threads to 1 (only possible before torch has used its inter-op pool)."""
    if torch.get_num_interop_threads() != 1:
        # RuntimeError: already set, or inter-op work already started: keep it.
        with contextlib.suppress(RuntimeError):
            torch.set_num_interop_threads(1)


def set_threads(n: int | None) -> int:
    """Set torch's intra-op thread count and return it: ``n`` > 0 as given, 0 for
    :data:`AUTO_THREADS`, ``None`` to keep the current one. Also sets one inter-op thread.

    The thread count can change float rounding, so the resolved count is part of a run's
    recorded configuration."""
    if n == 0:
        n = AUTO_THREADS
    if n is not None and n > 0:
        torch.set_num_threads(n)
        # numpy's BLAS (OpenBLAS: the mel filterbank and STFT matrix products of the logmel
        # front end) starts its own threads, one per core, whatever torch does: limit it alike.
        threadpool_limits(limits=n, user_api="blas")
    _one_interop_thread()
    return torch.get_num_threads()

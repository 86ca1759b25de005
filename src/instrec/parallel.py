"""Parallel maps with a bounded number of in-flight tasks, and a Dask client to run them on.

Results come back in input order whatever the number of workers, so anything built from
them is identical for ``jobs=1`` and ``jobs=N``. Any :class:`concurrent.futures.Executor`
can be passed (a Dask ``distributed.Client.get_executor()``, a thread pool, ...); by
default ``jobs > 1`` uses a :class:`~concurrent.futures.ProcessPoolExecutor` and
``jobs == 1`` runs in the calling process.
"""
from __future__ import annotations

import collections
import contextlib
import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from typing import Any, TypeVar

from tqdm.auto import tqdm

from instrec._io import InstrecError

T = TypeVar("T")
R = TypeVar("R")


def ordered_map(fn: Callable[[T], R], items: Iterable[T], jobs: int = 1, executor: Executor | None = None,
                max_in_flight: int | None = None, progress: bool = False, desc: str = "",
                total: int | None = None, unit: str = "clip", mp_context: Any = None,
                initializer: Callable[..., Any] | None = None, initargs: tuple = ()) -> Iterator[R]:
    """Yield ``fn(item)`` for each item, in input order.

    ``jobs``: worker processes when no ``executor`` is given (1 = in-process, no pool);
    ``mp_context``, ``initializer`` and ``initargs`` go to that pool (:func:`process_pool`).
    ``max_in_flight``: submitted-but-unconsumed tasks (default ``4 * jobs``), which bounds
    memory. ``progress``: a tqdm bar on stderr counting ``unit``. ``fn`` and the items must
    be picklable for process pools. The first exception raised by ``fn`` propagates;
    pending tasks are cancelled.
    """
    bar = None
    if progress:
        bar = tqdm(total=total, desc=desc, unit=unit, leave=False)
    try:
        if executor is None and jobs <= 1:
            for item in items:
                yield fn(item)
                if bar is not None:
                    bar.update(1)
            return
        own = executor is None
        pool = executor if executor is not None else process_pool(jobs, mp_context, initializer, initargs)
        limit = max_in_flight or 4 * max(jobs, 1)
        pending: collections.deque[Future] = collections.deque()
        done = False
        try:
            it = iter(items)
            exhausted = False
            while True:
                while not exhausted and len(pending) < limit:
                    try:
                        pending.append(pool.submit(fn, next(it)))
                    except StopIteration:
                        exhausted = True
                if not pending:
                    break
                result = pending.popleft().result()
                yield result
                if bar is not None:
                    bar.update(1)
            done = True
        finally:
            if own and not done:
                # Interrupted or failed: do not wait for the tasks in progress. The pending
                # futures are not cancelled first: the stopped pool fails them itself, and a
                # cancelled one makes its manager thread die with a traceback (InvalidStateError
                # in terminate_broken, Python 3.11).
                _stop(pool)
            else:
                for fut in pending:
                    fut.cancel()
                if own:
                    pool.shutdown(wait=True, cancel_futures=True)
    finally:
        if bar is not None:
            bar.close()


def fork_available() -> bool:
    """Whether worker processes can be forked safely: Linux only (macOS's system libraries
    are not fork-safe, and Windows has no fork)."""
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


_INHERITED: Callable[[Any], Any] | None = None  # in a forked worker: the function it inherited


def _adopt(fn: Callable[[Any], Any], setup: Callable[[], Any] | None) -> None:
    global _INHERITED
    _INHERITED = fn
    if setup is not None:
        setup()
    # Ctrl-C reaches every process of the terminal's group: the parent stops the pool
    # (ordered_map terminates its workers) and reports it once; a forked worker raising
    # KeyboardInterrupt itself would print a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _call_inherited(item: Any) -> Any:
    assert _INHERITED is not None, "a worker of inherited_map runs before its initializer"
    return _INHERITED(item)


def inherited_map(fn: Callable[[T], R], items: Iterable[T], jobs: int, worker_setup: Callable[[], Any] | None = None,
                  progress: bool = False, desc: str = "", total: int | None = None,
                  unit: str = "file") -> Iterator[R]:
    """:func:`ordered_map` over ``jobs`` forked workers that inherit ``fn``, and all it holds
    (a loaded model, a front end), from this process instead of receiving it pickled.

    Why fork: a spawned worker would import torch and load the model again (about a second
    each), which is longer than tagging a folder of 10-s clips; a forked one starts in
    milliseconds and shares the weights' memory pages. The workers inherit this process's
    thread counts (torch's, the BLAS's); ``worker_setup`` runs first in each worker. A worker
    that runs torch with more than one thread hangs if this process started an OpenMP thread
    pool before the fork (libgomp's pool does not survive it): run this process with one
    thread (:func:`instrec.runinfo.threads_for_workers` arranges both). With ``jobs <= 1`` or
    where fork is not safe (:func:`fork_available`), ``fn`` runs in this process and
    ``worker_setup`` is not called. The items and results are pickled; the results come back
    in input order."""
    if jobs <= 1 or not fork_available():
        yield from ordered_map(fn, items, 1, progress=progress, desc=desc, total=total, unit=unit)
        return
    yield from ordered_map(_call_inherited, items, jobs, progress=progress, desc=desc, total=total, unit=unit,
                           mp_context=multiprocessing.get_context("fork"), initializer=_adopt,
                           initargs=(fn, worker_setup))


def _stop(pool: ProcessPoolExecutor) -> None:
    """End a process pool at once: its workers are terminated (waiting for their tasks could
    hang on an interrupt that arrived inside the pool's bookkeeping)."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            process.terminate()
    pool.shutdown(wait=False)  # not cancel_futures (see ordered_map): the broken pool fails them
    # Let the pool's manager thread see its dead workers and close its wake-up pipe now: left
    # running, it races Python's exit hook, which writes to that pipe (an 'OSError: Bad file
    # descriptor' traceback after 'interrupted', seen under load with Python 3.11).
    manager = getattr(pool, "_executor_manager_thread", None)
    if manager is not None:
        manager.join(timeout=10)


_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int | None = None) -> None:
    """Make this (worker) process die with SIGTERM when its parent dies, even by SIGKILL.

    Linux: ``prctl(PR_SET_PDEATHSIG)``; elsewhere a daemon thread watches the parent pid.
    ``parent``: the pid the worker was started by (checked after arming, as the parent may
    have died before)."""
    parent = parent if parent is not None else os.getppid()
    armed = False
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            armed = libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) == 0
        except (OSError, AttributeError):
            armed = False
    if os.getppid() != parent:  # orphaned already, before the signal was armed
        os._exit(1)
    if not armed:
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _watch_parent(parent: int) -> None:
    import time

    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _init_worker(parent: int, initializer: Callable[..., Any] | None, args: tuple) -> None:
    # A forked worker inherits the parent's Python SIGTERM handler (sigterm_as_interrupt);
    # a worker has nothing to clean up, so SIGTERM (the parent-death signal too) ends it.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    die_with_parent(parent)
    if initializer is not None:
        initializer(*args)


def process_pool(jobs: int, mp_context: Any = None, initializer: Callable[..., Any] | None = None,
                 initargs: tuple = ()) -> ProcessPoolExecutor:
    """A process pool whose workers die with this process (see :func:`die_with_parent`): a
    killed instrec leaves no orphan workers running for minutes."""
    return ProcessPoolExecutor(max_workers=jobs, mp_context=mp_context, initializer=_init_worker,
                               initargs=(os.getpid(), initializer, initargs))


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C so that cleanup code runs."""


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` (a KeyboardInterrupt) instead of
    ending the process at once, so ``finally`` blocks remove staging folders and locks.
    Only in the main thread (elsewhere signal handlers cannot be set; nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def as_completed_bounded(fn: Callable[[T], R], items: Iterable[T], executor: Executor,
                         max_in_flight: int) -> Iterator[tuple[T, Future]]:
    """Submit ``fn(item)`` to ``executor`` with at most ``max_in_flight`` tasks outstanding and
    yield ``(item, future)`` as each finishes (completion order, not input order).

    The caller reads ``future.result()`` itself, so it decides what a failed task means.
    ``items`` is read lazily, one item per free slot, so a list of millions of work items
    never becomes millions of queued tasks. ``items`` is asked again whenever a slot is free,
    even after it raised StopIteration, so an iterator that can grow (a retry queue) may
    add work while tasks run. Closing the generator (an exception or Ctrl-C in the caller) cancels
    the tasks not yet finished."""
    limit = max(1, max_in_flight)
    it = iter(items)
    pending: dict[Future, T] = {}
    try:
        while True:
            while len(pending) < limit:
                try:
                    item = next(it)
                except StopIteration:
                    break
                pending[executor.submit(fn, item)] = item
            if not pending:
                return
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                yield pending.pop(fut), fut
    finally:
        for fut in pending:
            fut.cancel()


@contextmanager
def dask_client(scheduler: str | None, workers: int, timeout: float = 20.0) -> Iterator[Any]:
    """A ``distributed.Client``: connected to the scheduler at ``scheduler`` (an existing
    cluster, e.g. ``tcp://10.0.0.5:8786``), or, when None, to a new local cluster of
    ``workers`` processes with one thread each (callers size it to the machine); the local
    cluster is shut down on exit. ``timeout``: seconds to wait for the scheduler. Needs ``pip install instrec[scale]``."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise InstrecError("the Dask engine needs dask.distributed: pip install 'instrec[scale]'") from exc
    cluster = None
    if scheduler is None:
        # The scheduler's HTTP server (dashboard, health checks) on a free port: a fixed one
        # would clash with a second job on the machine.
        cluster = LocalCluster(n_workers=max(1, workers), threads_per_worker=1, processes=True,
                               dashboard_address=":0")
        client = Client(cluster)
    else:
        try:
            client = Client(scheduler, timeout=timeout)
        except (OSError, TimeoutError, ValueError) as exc:
            raise InstrecError(f"{scheduler}: no Dask scheduler answers at this address ({exc})") from exc
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()

"""Order-preserving parallel map with a bounded number of in-flight tasks.

Results come back in input order whatever the number of workers, so anything built from
them is identical for ``jobs=1`` and ``jobs=N``. Any :class:`concurrent.futures.Executor`
can be passed (a Dask ``distributed.Client.get_executor()``, a thread pool, ...); by
default ``jobs > 1`` uses a :class:`~concurrent.futures.ProcessPoolExecutor` and
``jobs == 1`` runs in the calling process.
"""
from __future__ import annotations

import collections
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
R = TypeVar("R")


def ordered_map(fn: Callable[[T], R], items: Iterable[T], jobs: int = 1, executor: Executor | None = None,
                max_in_flight: int | None = None, progress: bool = False, desc: str = "",
                total: int | None = None) -> Iterator[R]:
    """Yield ``fn(item)`` for each item, in input order.

    ``jobs``: worker processes when no ``executor`` is given (1 = in-process, no pool).
    ``max_in_flight``: submitted-but-unconsumed tasks (default ``4 * jobs``), which bounds
    memory. ``progress``: a tqdm bar on stderr. ``fn`` and the items must be picklable for
    process pools. The first exception raised by ``fn`` propagates; pending tasks are
    cancelled.
    """
    bar = None
    if progress:
        bar = tqdm(total=total, desc=desc, unit="clip", leave=False)
    try:
        if executor is None and jobs <= 1:
            for item in items:
                yield fn(item)
                if bar is not None:
                    bar.update(1)
            return
        own = executor is None
        pool = executor if executor is not None else ProcessPoolExecutor(max_workers=jobs)
        limit = max_in_flight or 4 * max(jobs, 1)
        pending: collections.deque[Future] = collections.deque()
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
        finally:
            for fut in pending:
                fut.cancel()
            if own:
                pool.shutdown(wait=True, cancel_futures=True)
    finally:
        if bar is not None:
            bar.close()

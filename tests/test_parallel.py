"""Order-preserving bounded parallel map."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from instrec.parallel import ordered_map


def _slow_square(x: int) -> int:
    time.sleep(0.002 * ((7 * x) % 5))  # later items often finish first
    return x * x


def _fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("three")
    return x


def test_results_keep_input_order_in_process_and_with_processes():
    expected = [x * x for x in range(30)]
    assert list(ordered_map(_slow_square, range(30), jobs=1)) == expected
    assert list(ordered_map(_slow_square, range(30), jobs=2)) == expected


def test_in_flight_tasks_are_bounded():
    running = peak = 0
    lock = threading.Lock()
    submitted = []

    def task(x: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
        time.sleep(0.001)
        with lock:
            running -= 1
        return x

    def items():
        for i in range(50):
            submitted.append(i)
            yield i

    consumed = 0
    with ThreadPoolExecutor(4) as pool:
        for i, r in enumerate(ordered_map(task, items(), executor=pool, max_in_flight=3)):
            assert r == i
            consumed += 1
            peak = max(peak, len(submitted) - consumed)
    assert consumed == 50 and peak <= 3


def test_errors_propagate():
    with pytest.raises(ValueError, match="three"):
        list(ordered_map(_fail_on_three, range(10), jobs=2))
    with pytest.raises(ValueError, match="three"):
        list(ordered_map(_fail_on_three, range(10), jobs=1))


def test_as_completed_bounded_reads_items_lazily_and_picks_up_requeued_ones():
    from collections import deque

    from instrec.parallel import as_completed_bounded

    pulled = []
    queue: deque[int] = deque()

    def items():
        for x in range(10):
            while queue:
                yield queue.popleft()
            pulled.append(x)
            yield x
        while queue:
            yield queue.popleft()

    seen = []
    with ThreadPoolExecutor(max_workers=3) as pool:
        for item, fut in as_completed_bounded(_slow_square, items(), pool, max_in_flight=3):
            # never more than 3 items pulled beyond those already handed back
            assert len(pulled) - len([s for s in seen if s < 10]) <= 3
            seen.append(item)
            assert fut.result() == item * item
            if item == 4:
                queue.append(100)  # a retry, submitted in a free slot
    assert sorted(seen) == [*range(10), 100]


def test_as_completed_bounded_cancels_what_is_left_when_closed():
    from instrec.parallel import as_completed_bounded

    gate = threading.Event()
    submitted = []

    def task(x: int) -> int:
        if x:
            gate.wait(5)
        return x

    class Spy(ThreadPoolExecutor):
        def submit(self, fn, *args):
            submitted.append(super().submit(fn, *args))
            return submitted[-1]

    with Spy(max_workers=1) as pool:
        gen = as_completed_bounded(task, range(100), pool, max_in_flight=4)
        assert next(gen)[0] == 0
        gen.close()  # as an exception in the caller's loop would
        gate.set()
    assert len(submitted) == 4  # items 0-3; nothing read after the close
    assert [f.cancelled() for f in submitted[2:]] == [True, True]  # queued ones never ran


def test_an_unreachable_dask_scheduler_is_a_one_line_error():
    pytest.importorskip("distributed")
    from instrec._io import InstrecError
    from instrec.parallel import dask_client

    with pytest.raises(InstrecError, match="tcp://127.0.0.1:9: no Dask scheduler answers at this address"), \
            dask_client("tcp://127.0.0.1:9", 1, timeout=0.5):
        pass


def test_a_failed_map_stops_its_pool_without_a_traceback_from_the_pool_thread():
    """A task's error stops the pool with tasks still queued; the pool's manager thread must
    not die on them (Python 3.11 raises InvalidStateError there for cancelled futures)."""
    errors: list[BaseException] = []
    previous = threading.excepthook
    threading.excepthook = lambda args: errors.append(args.exc_value)
    try:
        for _ in range(3):
            with pytest.raises(ValueError, match="three"):
                list(ordered_map(_fail_on_three, range(200), jobs=2, max_in_flight=50))
    finally:
        threading.excepthook = previous
    assert errors == []

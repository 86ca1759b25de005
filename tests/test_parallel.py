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

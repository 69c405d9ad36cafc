"""`fork_map`: the ordered map over forked workers that `socctl ingest` runs files on."""

from __future__ import annotations

import os
import time

import pytest

from correlator.cli.fork_map import WorkerTaskError, fork_map


def _slow_square(n: int) -> tuple[int, int, int]:
    time.sleep(0.002 * (n % 5))  # uneven tasks: they finish out of order
    return n, n * n, os.getpid()


def _fail_on_seven(n: int) -> int:
    if n == 7:
        raise ValueError("seven is not allowed")
    return n


def _die_on_three(n: int) -> int:
    if n == 3:
        os._exit(9)  # a crash: no exception, no reply
    return n


@pytest.mark.parametrize("workers", [1, 2, 3], ids=["one", "two", "three"])
def test_results_come_back_in_task_order(workers: int) -> None:
    results = list(fork_map(_slow_square, list(range(40)), workers))
    assert [(n, square) for n, square, _ in results] == [(n, n * n) for n in range(40)]
    pids = {pid for _, _, pid in results}
    assert os.getpid() not in pids  # computed in the workers, not here
    assert len(pids) == workers


def test_no_task_no_worker() -> None:
    assert list(fork_map(_slow_square, [], 2)) == []


def test_a_task_that_raises_is_raised_with_its_traceback() -> None:
    with pytest.raises(WorkerTaskError, match="task 7 failed in a worker process") as info:
        list(fork_map(_fail_on_seven, list(range(20)), 2))
    assert "ValueError: seven is not allowed" in str(info.value)


def test_a_worker_that_dies_is_an_error_not_a_hang() -> None:
    with pytest.raises(WorkerTaskError, match="died while running task 3"):
        list(fork_map(_die_on_three, list(range(10)), 2))


def test_leaving_early_stops_the_workers() -> None:
    import multiprocessing

    results = fork_map(_slow_square, list(range(1000)), 2)
    assert next(results)[0] == 0
    results.close()  # the consumer stops (an error downstream): the generator's cleanup ends the workers
    assert multiprocessing.active_children() == []

"""Worker processes (issue 14): results in task order, one native thread per worker, errors raised, workers=0."""

from __future__ import annotations

import os

import pytest

from bankseg.parallel import available_cores, map_ordered, resolve_workers


def worker_facts(task: int) -> tuple[int, int, str | None]:
    return task, os.getpid(), os.environ.get("OMP_NUM_THREADS")


def fails_on_three(task: int) -> int:
    if task == 3:
        raise ValueError(f"task {task} is bad")
    return task


def test_two_workers_return_results_in_task_order_from_other_processes_on_one_thread_each():
    results = list(map_ordered(worker_facts, range(7), 2))
    assert [task for task, _, _ in results] == list(range(7))
    pids = {pid for _, pid, _ in results}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    assert {threads for _, _, threads in results} == {"1"}


def test_one_worker_runs_in_this_process():
    assert [pid for _, pid, _ in map_ordered(worker_facts, range(3), 1)] == [os.getpid()] * 3


def test_a_failing_task_raises_its_error():
    with pytest.raises(ValueError, match="task 3 is bad"):
        list(map_ordered(fails_on_three, range(6), 2))


def test_workers_setting():
    assert resolve_workers(None) == resolve_workers(0) == available_cores()
    assert resolve_workers(3) == 3
    with pytest.raises(ValueError, match="workers must be >= 1"):
        resolve_workers(-1)

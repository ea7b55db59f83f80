"""Worker processes for bucket-by-bucket jobs: one setting (``workers``), results in task order.

Feature building and batch scoring split customers into buckets (:func:`bankseg.features.build.bucket_of`);
each bucket is independent, so buckets can run in separate processes and the results, taken back in bucket
order, are the same as one process gives. :func:`map_ordered` does that with a spawn-context
``ProcessPoolExecutor`` (no forked copies of the parent's memory, no inherited threads or locks) and keeps at most
``workers + 1`` buckets in flight, so memory stays bounded by a few buckets however many there are.

Inside a worker every native thread pool (OpenMP, hence LightGBM; BLAS) is limited to one thread: two workers on
two cores would otherwise start two threads each and fight over the cores. The limit is set in the worker's
environment before any task is unpickled, that is before LightGBM or numpy's BLAS is loaded there.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the platform tells, else ``os.cpu_count``)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return max(os.cpu_count() or 1, 1)


def resolve_workers(workers: int | None) -> int:
    """The number of worker processes: ``None`` or 0 means every available core; negative is refused."""
    if workers is None or int(workers) == 0:
        return available_cores()
    if int(workers) < 0:
        raise ValueError(f"workers must be >= 1 (or 0 / null for every core), got {workers}")
    return int(workers)


def _start_worker() -> None:
    for name in THREAD_VARIABLES:
        os.environ[name] = "1"


def map_ordered(fn: Callable[[T], R], tasks: Iterable[T], workers: int) -> Iterator[R]:
    """Yield ``fn(task)`` for each task, in task order, computed in ``workers`` processes.

    ``workers == 1`` runs in this process (no pool, no pickling). Otherwise ``fn`` must be a module-level
    function (or a ``functools.partial`` of one) and tasks picklable; a task that raises stops the run and its
    exception is raised here, pending tasks are cancelled.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if workers == 1:
        for task in tasks:
            yield fn(task)
        return
    pending: deque[Future[Any]] = deque()
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"), initializer=_start_worker) as pool:
        try:
            for task in tasks:
                pending.append(pool.submit(fn, task))
                if len(pending) > workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except BaseException:
            for future in pending:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            raise

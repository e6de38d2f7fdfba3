"""Benchmark runs in worker processes that stop when the benchmark does.

`ProcessPoolExecutor` leaves its workers running when the process that owns the pool is stopped with
SIGTERM (``kill PID``, a job scheduler's timeout): each goes on training its run, for tens of minutes, on
cores the next benchmark then shares, and nobody records the result. `completed` runs the calls in
spawned processes and terminates every worker it started whenever it exits early: an error in a run,
Ctrl-C, or SIGTERM (turned into `SystemExit` while the calls run). Only SIGKILL, which no process
outlives to clean up, still leaves them.
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, TypeVar

Key = TypeVar("Key")


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


def completed(calls: Iterable[tuple[Key, Callable[..., Any], tuple]], jobs: int) -> Iterator[tuple[Key, Any]]:
    """``(key, fn(*args))`` for each ``(key, fn, args)`` of ``calls``, in the order they finish, ``jobs``
    at a time, each in a spawned process (not forked: a forked child would inherit this process's JAX
    runtime). ``fn`` must be importable by the workers (a module-level function)."""
    if jobs < 1:
        raise ValueError(f"completed: jobs must be at least 1, got {jobs}")
    # signal handlers can only be set from the main thread; elsewhere SIGTERM keeps its own handling
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm) if main_thread else None
    others = set(multiprocessing.active_children())
    pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"))
    finished = False
    try:
        futures = {pool.submit(fn, *args): key for key, fn, args in calls}
        for future in as_completed(futures):
            yield futures[future], future.result()
        finished = True
    finally:
        if not finished:  # an error, Ctrl-C, SIGTERM or a caller that stopped early: no run is wanted any more
            workers = [p for p in multiprocessing.active_children() if p not in others]  # the pool's
            for worker in workers:
                worker.terminate()
            # the pool's own thread reaps the workers it sees die: joining them here as well races it (one
            # waitpid gets the exit status, the other none, and that Process stays "started"), so wait for
            # that thread to finish instead, then join what it may have left
            pool.shutdown(wait=True, cancel_futures=True)
            for worker in workers:
                worker.join()
        else:
            pool.shutdown()
        if main_thread and previous is not None:  # None: a handler not set from Python, left as it is
            signal.signal(signal.SIGTERM, previous)

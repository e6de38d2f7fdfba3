"""`benchmarks/processes.completed`: runs in spawned workers, which stop when the benchmark stops."""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from processes import completed  # noqa: E402


def alive(pid: int) -> bool:
    """Whether ``pid`` is a process that has not exited (a zombie has)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def test_every_call_runs_once_in_another_process():
    results = dict(completed([(x, math.sqrt, (x,)) for x in (4.0, 9.0, 16.0)], jobs=2))
    assert results == {4.0: 2.0, 9.0: 3.0, 16.0: 4.0}
    pids = {pid for _, pid in completed([(i, os.getpid, ()) for i in range(4)], jobs=2)}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    assert not multiprocessing.active_children()
    with pytest.raises(ValueError, match="jobs must be at least 1"):
        list(completed([], jobs=0))


def test_a_failing_run_stops_the_others():
    """The error of one run reaches the caller, and the run still going (a minute's sleep) is terminated
    instead of left to finish."""
    start = time.monotonic()
    with pytest.raises(ValueError, match="math domain error"):
        for _ in completed([("slow", time.sleep, (60.0,)), ("bad", math.sqrt, (-1.0,))], jobs=2):
            pass
    assert time.monotonic() - start < 30, "waited for the slow run to finish"
    assert not multiprocessing.active_children()


def test_sigterm_stops_the_workers_too(tmp_path):
    """``kill PID`` of a benchmark running two workers: it exits with 128 + SIGTERM and neither worker is
    left running (before this, each went on training its run)."""
    script = tmp_path / "bench.py"
    script.write_text(textwrap.dedent(f"""
        import os, sys, time
        sys.path.insert(0, {str(ROOT / "benchmarks")!r})
        from processes import completed

        def nap(path):
            with open(path + ".tmp", "w") as f:
                f.write(str(os.getpid()))
            os.replace(path + ".tmp", path)
            time.sleep(300)

        if __name__ == "__main__":
            for key, _ in completed([(i, nap, ({str(tmp_path)!r} + f"/worker{{i}}",)) for i in range(2)], 2):
                print("finished", key, flush=True)
    """))
    bench = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    files = [tmp_path / f"worker{i}" for i in range(2)]
    try:
        deadline = time.monotonic() + 120
        while not all(f.exists() for f in files):
            assert bench.poll() is None and time.monotonic() < deadline, bench.communicate()
            time.sleep(0.1)
        workers = [int(f.read_text()) for f in files]
        assert all(alive(pid) for pid in workers)
        bench.send_signal(signal.SIGTERM)
        out, err = bench.communicate(timeout=60)
    finally:
        if bench.poll() is None:
            bench.kill()
    assert bench.returncode == 128 + signal.SIGTERM, err
    assert "finished" not in out
    assert not any(alive(pid) for pid in workers), "a worker outlived the benchmark"

"""Workers end with their parent: clean exit without shutdown(), a parent killed outright, a worker killed idle."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from kintsugi.runtime import JobManager, JobSpec, JobState, transport

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

pytestmark = pytest.mark.timeout(60)

SCRIPT = """
import os, sys, time
sys.path.insert(0, {here!r})
from kintsugi.runtime import JobManager, JobSpec
if __name__ == "__main__":
    m = JobManager()
    job = m.submit(JobSpec("runtime_tasks:sleep_reporting", {{"seconds": 60, "flag": {flag!r}}}, device="cpu"))
    while not os.path.exists({flag!r}):
        time.sleep(0.01)
    print(job.worker_pid, flush=True)
    {ending}
"""


def _start(tmp_path: Path, ending: str) -> tuple[subprocess.Popen, int]:
    flag = tmp_path / "running"
    code = SCRIPT.format(here=str(HERE), flag=str(flag), ending=ending)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()  # printed once the task runs
    assert line.strip().isdigit(), proc.stderr.read()
    return proc, int(line)


def _wait_gone(pid: int, timeout: float) -> None:
    t0 = time.monotonic()
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() - t0 < timeout, f"process {pid} still there after {timeout} s"
        time.sleep(0.02)


def test_leaving_with_a_running_job_and_no_shutdown_stops_the_worker(tmp_path):
    proc, worker = _start(tmp_path, "sys.exit(0)")
    assert proc.wait(timeout=20) == 0, proc.stderr.read()
    _wait_gone(worker, 2.0)
    assert transport.leftovers(f"{transport.PREFIX}{proc.pid}-") == []


def test_a_killed_parent_takes_its_worker_along_and_the_next_run_sweeps_its_files(tmp_path):
    proc, worker = _start(tmp_path, "time.sleep(60)")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    _wait_gone(worker, 3.0)  # the worker watches its parent, even in the middle of a task
    transport.sweep_stale()
    assert transport.leftovers(f"{transport.PREFIX}{proc.pid}-") == []


def test_an_idle_worker_killed_from_outside_is_replaced():
    with JobManager() as m:
        first = m.run(JobSpec("runtime_tasks:pid", device="cpu"), timeout=30)
        os.kill(first.result, signal.SIGKILL)
        _wait_gone(first.result, 5.0)
        job = m.run(JobSpec("runtime_tasks:pid", device="cpu"), timeout=30)
        assert job.state is JobState.DONE and job.result != first.result
        m.forget(first)
        assert m.jobs() == [job]

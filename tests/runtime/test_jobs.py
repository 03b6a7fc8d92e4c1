"""The job runtime end to end: real spawned workers running the tasks in runtime_tasks.py.

Most tests share one manager (one warm "cpu" worker), as the GUI does; tests that need other settings
make their own. Every test checks that no shared-memory segment of this process is left behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from kintsugi.core import Geometry, Volume
from kintsugi.runtime import Job, JobManager, JobSpec, JobState, transport

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # workers inherit sys.path, so they find runtime_tasks too

pytestmark = pytest.mark.timeout(60)


def spec(name: str, device: str = "cpu", **kwargs) -> JobSpec:
    return JobSpec(f"runtime_tasks:{name}", kwargs, device=device, task_id=f"test.{name}")


def segments() -> list[Path]:
    """This process's shared-memory segments (worker crash logs are not segments)."""
    return [p for p in transport.leftovers(f"{transport.PREFIX}{os.getpid()}-") if not p.name.endswith(".log")]


def wait_for(predicate, timeout: float = 10.0) -> None:
    t0 = time.monotonic()
    while not predicate():
        if time.monotonic() - t0 > timeout:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def gone(pid: int) -> bool:
    return not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


@pytest.fixture(scope="module")
def manager():
    m = JobManager()
    yield m
    m.shutdown()
    assert transport.leftovers(f"{transport.PREFIX}{os.getpid()}-") == []


@pytest.fixture(autouse=True)
def no_leaks():
    yield
    assert segments() == []


def test_a_volume_goes_in_and_a_new_one_comes_back(manager):
    data = np.random.default_rng(1).random((20, 512, 512), dtype=np.float32)  # 20 MB
    vol = Volume(data=data, geometry=Geometry((0.7, 0.7, 1.5), (-10.0, 0.0, 5.0)), name="ct", modality="CT")
    job = manager.run(spec("brighten", volume=vol, offset=3.0), timeout=30)
    assert job.state is JobState.DONE, job.error
    out = job.result
    assert isinstance(out, Volume) and out.name == "ct (x2)" and out.modality == "CT"
    assert out.geometry.spacing == vol.geometry.spacing and out.geometry.origin == vol.geometry.origin
    np.testing.assert_array_equal(out.data, data * 2 + np.float32(3.0))
    assert out.data.flags.writeable
    assert np.array_equal(vol.data, data)  # the input in this process is untouched
    assert job.fraction == 1.0 and job.device == "cpu" and job.worker_pid not in (None, os.getpid())
    assert job.started >= job.submitted and job.finished >= job.started and job.duration_s > 0


def test_plain_values_round_trip(manager):
    arr = np.arange(500_000, dtype=np.float64)  # 4 MB: by shared memory
    job = manager.run(spec("plain_values", items=[1, "two", 3.0], mapping={"a": 1}, arr=arr), timeout=30)
    assert job.state is JobState.DONE, job.error
    r = job.result
    assert r["items"] == [3.0, "two", 1] and r["mapping"] == {1: "a"} and r["sum"] == float(arr.sum())
    np.testing.assert_array_equal(r["twice"], arr * 2)
    np.testing.assert_array_equal(r["strided"], arr[::2])
    assert r["fortran"].flags.f_contiguous and r["fortran"].shape == (600, 700)
    assert manager.run(spec("add", a=2, b=3), timeout=30).result == 5


def test_progress_arrives_in_order_and_ends_with_the_last_report(manager):
    seen: list[tuple[str, float, str]] = []

    def listen(job: Job) -> None:
        snap = job.snapshot()
        seen.append((snap["state"], snap["fraction"], snap["message"]))

    manager.job_changed.connect(listen)
    try:
        job = manager.run(spec("steps", n=300, delay=0.002, linger=0.3), timeout=30)
    finally:
        manager.job_changed.disconnect(listen)
    assert job.state is JobState.DONE and job.result == 300
    steps = [(f, m) for s, f, m in seen if s is JobState.RUNNING and m.startswith("step ")]
    numbers = [int(m.split()[1]) for _, m in steps]
    assert numbers == sorted(numbers)
    assert steps[-1] == (1.0, "step 300")  # the last report is never throttled away
    assert len(set(numbers)) <= 40  # ~0.6 s of reports at <= 20 a second, not 300 messages
    assert seen[-1][0] is JobState.DONE and seen[-1][1] == 1.0


def test_cancel_a_task_that_reports_progress(manager, tmp_path):
    flag = tmp_path / "running"
    job = manager.submit(spec("sleep_reporting", seconds=60, flag=str(flag)))
    wait_for(flag.exists)
    pid = int(flag.read_text())
    t0 = time.monotonic()
    manager.cancel(job)
    manager.wait(job, timeout=10)
    assert job.state is JobState.CANCELLED and job.error is None
    assert time.monotonic() - t0 < 1.0
    assert psutil.pid_exists(pid) and not gone(pid)  # the worker survives a cooperative cancel
    again = manager.run(spec("pid"), timeout=30)
    assert again.result == pid


def test_cancel_a_task_that_never_reports_kills_its_worker(manager, tmp_path):
    flag = tmp_path / "running"
    job = manager.submit(spec("sleep_silent", seconds=60, flag=str(flag)))
    wait_for(flag.exists)
    pid = int(flag.read_text())
    t0 = time.monotonic()
    manager.cancel(job)
    wait_for(lambda: gone(pid), timeout=2.0)
    assert time.monotonic() - t0 < 2.0
    manager.wait(job, timeout=10)
    assert job.state is JobState.CANCELLED and "worker was stopped" in job.message
    assert "sleep_silent" in (job.traceback or "")  # where it was stuck, from faulthandler
    nxt = manager.run(spec("add", a=1, b=1), timeout=30)
    assert nxt.state is JobState.DONE and nxt.result == 2 and nxt.worker_pid != pid


@pytest.mark.parametrize(("task", "message"), [
    ("segfault", "worker crashed: segmentation fault (SIGSEGV)"),
    ("exit3", "worker exited with code 3"),
    ("kill_myself", "worker was killed (SIGKILL), possibly out of memory"),
])
def test_a_crash_fails_the_job_and_a_fresh_worker_takes_the_next(manager, task, message):
    job = manager.run(spec(task), timeout=30)
    assert job.state is JobState.FAILED
    assert job.error == message
    if task == "segfault":
        assert "Segmentation fault" in job.traceback and "runtime_tasks.py" in job.traceback
    nxt = manager.run(spec("pid"), timeout=30)
    assert nxt.state is JobState.DONE and nxt.result != job.worker_pid and gone(job.worker_pid)


def test_a_crash_while_sending_the_result_leaks_nothing(manager):
    vol = Volume(data=np.zeros((8, 512, 512), dtype=np.float32))
    job = manager.run(spec("crash_while_sending", volume=vol), timeout=30)
    assert job.state is JobState.FAILED and job.error == "worker exited with code 5"
    # no_leaks checks that its input and the half-written result are gone


def test_an_exception_is_one_line_plus_traceback_and_the_worker_survives(manager):
    first = manager.run(spec("pid"), timeout=30).result
    job = manager.run(spec("fail", message="the message"), timeout=30)
    assert job.state is JobState.FAILED
    assert job.error == "ValueError: the message"
    assert job.traceback.startswith("Traceback") and 'raise ValueError(message)' in job.traceback
    assert "worker.py" not in job.traceback  # starts at the task's own frame
    assert manager.run(spec("pid"), timeout=30).result == first


def test_jobs_on_one_device_run_one_at_a_time_in_order(manager, tmp_path):
    added: list[Job] = []
    manager.job_added.connect(added.append)
    flag = tmp_path / "first"
    try:
        first = manager.submit(spec("sleep_reporting", seconds=0.5, flag=str(flag)))
        second = manager.submit(spec("add", a=1, b=2))
        third = manager.submit(spec("add", a=3, b=4))
        wait_for(flag.exists)
        assert first.state is JobState.RUNNING
        assert second.state is JobState.QUEUED and third.state is JobState.QUEUED
        manager.cancel(third)
        assert third.state is JobState.CANCELLED and third.started is None
        manager.wait(second, timeout=30)
    finally:
        manager.job_added.disconnect(added.append)
    assert first.state is JobState.DONE and second.result == 3
    assert second.started >= first.finished
    wait_for(lambda: len(added) == 3)
    assert added == [first, second, third]
    assert {first, second, third} <= set(manager.jobs())


def test_device_and_injection(manager):
    job = manager.run(spec("which_device"), timeout=30)
    assert job.result == "cpu" and job.device == "cpu"
    got = manager.run(spec("everything", x=1), timeout=30).result
    assert got == ["device", "progress", "weights", "x"]
    bad = manager.run(spec("add", device="cuda", a=1, b=2), timeout=60)
    assert bad.state is JobState.FAILED and bad.error.startswith("ValueError: device 'cuda'")


def test_weights_are_checked_in_the_worker(manager, tmp_path):
    import torch
    from safetensors.torch import save_file

    from kintsugi.plugins.weights import Weights, WeightsFile, sha256_of

    path = tmp_path / "tiny.safetensors"
    save_file({"w": torch.ones(3, 4), "b": torch.full((2,), 0.5)}, str(path))
    good = Weights({"tiny": WeightsFile("tiny", path, sha256_of(path))}).to_spec()
    job = manager.run(JobSpec("runtime_tasks:weights_total", weights=good, device="cpu"), timeout=60)
    assert job.state is JobState.DONE, job.traceback
    assert job.result == 13.0
    bad = Weights({"tiny": WeightsFile("tiny", path, "0" * 64)}).to_spec()
    job = manager.run(JobSpec("runtime_tasks:weights_total", weights=bad, device="cpu"), timeout=60)
    assert job.state is JobState.FAILED
    assert job.error.startswith("WeightsError: weights 'tiny': checksum mismatch")


def test_bad_submissions_fail_in_the_caller(manager):
    with pytest.raises(ValueError, match="package.module:function"):
        JobSpec("no_colon", {})
    with pytest.raises((TypeError, AttributeError)):
        manager.submit(spec("add", a=lambda: 1, b=2))
    missing = manager.run(JobSpec("no_such_module:f", {}, device="cpu"), timeout=30)
    assert missing.state is JobState.FAILED and missing.error == "ModuleNotFoundError: No module named 'no_such_module'"


def test_listeners_run_outside_the_lock_and_their_errors_do_not_stop_jobs(manager):
    calls = []

    def nosy(job: Job) -> None:
        calls.append(len(manager.jobs()))  # takes the manager's lock: would deadlock if called under it
        raise RuntimeError("listener bug")

    manager.job_changed.connect(nosy)
    try:
        job = manager.run(spec("add", a=1, b=2), timeout=30)
    finally:
        manager.job_changed.disconnect(nosy)
    assert job.result == 3 and calls


def test_run_with_timeout_cancels(manager):
    with pytest.raises(TimeoutError):
        manager.run(spec("sleep_reporting", seconds=30), timeout=0.3)
    last = manager.jobs()[-1]
    assert last.state is JobState.CANCELLED


def test_memory_limit_turns_a_runaway_allocation_into_memory_error():
    with JobManager(memory_limit_bytes=3 << 30) as m:
        job = m.run(spec("allocate", n_bytes=8 << 30), timeout=60)
        assert job.state is JobState.FAILED and job.error.startswith("MemoryError"), job.error
        assert m.run(spec("allocate", n_bytes=1 << 20), timeout=30).result == 1 << 20


def test_warm_up_two_workers_and_shutdown():
    m = JobManager(workers_per_device=2)
    m.warm_up("cpu")
    flags = []
    jobs = []
    for i in range(2):
        flags.append(Path(os.environ.get("TMPDIR", "/tmp")) / f"kintsugi-test-{os.getpid()}-{i}")
        flags[-1].unlink(missing_ok=True)
        jobs.append(m.submit(spec("sleep_reporting", seconds=60, flag=str(flags[-1]))))
    try:
        wait_for(lambda: all(f.exists() for f in flags), timeout=20)  # both run at once on two workers
        pids = [int(f.read_text()) for f in flags]
        assert len(set(pids)) == 2
        queued = m.submit(spec("add", a=1, b=1))
        done = threading.Event()
        m.job_changed.connect(lambda j: done.set() if j is queued and j.done else None)
        m.shutdown()
        m.shutdown()  # idempotent
        assert all(j.state is JobState.CANCELLED for j in [*jobs, queued])
        assert all(gone(p) for p in pids)
        assert done.wait(5)
        with pytest.raises(RuntimeError):
            m.submit(spec("add", a=1, b=1))
    finally:
        for f in flags:
            f.unlink(missing_ok=True)


def test_auto_resolves_in_the_worker_and_the_parent_never_imports_torch():
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(HERE)!r})\n"
        "from kintsugi.runtime import run_job, JobSpec\n"
        "if __name__ == '__main__':\n"
        "    job = run_job(JobSpec('runtime_tasks:which_device', {}), timeout=60)\n"
        "    print(job.state.value, job.result, job.device, 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["done", "cpu", "cpu", "False"]


def test_workers_yield_the_cpu_to_the_window(manager):
    pid = manager.run(spec("pid"), timeout=30).result
    assert psutil.Process(pid).nice() == min(19, os.nice(0) + 5)


def test_auto_and_cpu_share_one_queue_on_a_machine_without_gpu(manager, tmp_path):
    """'One job per device at a time' holds between an 'auto' job and a 'cpu' job when auto means cpu."""
    from kintsugi.runtime.device import queue_key

    assert queue_key("cpu") == "cpu" and queue_key("cuda:0") == "cuda" and queue_key("cuda:1") == "cuda:1"
    if queue_key("auto") != "cpu":
        pytest.skip("this machine has an accelerator")
    flag = tmp_path / "first"
    first = manager.submit(spec("sleep_reporting", device="auto", seconds=0.5, flag=str(flag)))
    second = manager.submit(spec("add", device="cpu", a=1, b=2))
    wait_for(flag.exists)
    assert first.state is JobState.RUNNING and second.state is JobState.QUEUED
    manager.wait(second, timeout=30)
    assert first.done and second.result == 3 and first.device == "cpu"

"""`kintsugi batch` from the command line: through a real dask scheduler with two dask workers on loopback,
and Ctrl-C on a local cluster (stops cleanly, keeps what is done; the rerun finishes the rest)."""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import make_cohort

KINTSUGI = str(Path(sys.executable).parent / "kintsugi")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _statuses(out: Path) -> dict[str, str]:
    with open(out / "batch.csv", newline="") as fh:
        return {Path(r["input"]).name: r["status"] for r in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def scheduler(plugin_env, tmp_path_factory):
    """`dask scheduler` + two `dask worker` processes from this venv, on 127.0.0.1 and a free port."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = tmp_path_factory.mktemp("dask-logs")
    env = dict(os.environ, KINTSUGI_PLUGIN_PATH=str(plugin_env))
    stack = contextlib.ExitStack()
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", str(port), "--no-dashboard"], env=env, stdout=subprocess.DEVNULL,
                              stderr=stack.enter_context(open(logs / "scheduler.log", "w")))]  # noqa: SIM115
    for i in range(2):
        procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                                       "--host", "127.0.0.1", "--no-dashboard", "--name", f"w{i}"], env=env,
                                      stdout=subprocess.DEVNULL,
                                      stderr=stack.enter_context(open(logs / f"worker{i}.log", "w"))))  # noqa: SIM115
    from distributed import Client

    deadline = time.monotonic() + 60
    with Client(address, timeout="60s") as c:
        while len(c.scheduler_info()["workers"]) < 2:
            assert time.monotonic() < deadline, (logs / "worker0.log").read_text()[-2000:]
            time.sleep(0.2)
    yield address
    for p in reversed(procs):
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
    stack.close()


def test_cli_batch_through_an_external_scheduler(tmp_path, scheduler):
    make_cohort(tmp_path / "scans", 4)
    listing = tmp_path / "cohort.txt"
    listing.write_text("\n".join(f"scans/ct_{i:02d}.nii.gz" for i in range(4)) + "\n")
    out = tmp_path / "out"
    proc = subprocess.run([KINTSUGI, "batch", "volume.threshold", "--inputs", f"@{listing}", "--level", "300",
                           "--largest-only", "true", "--scheduler", scheduler, "--output", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "4 done, 0 skipped" in proc.stdout and "[4/4] done" in proc.stderr  # a line per input in a log
    assert set(_statuses(out).values()) == {"done"}
    assert all((out / f"ct_{i:02d}" / "mask.nii.gz").is_file() for i in range(4))
    with open(out / "batch.csv", newline="") as fh:
        assert {int(r["voxels"]) for r in csv.DictReader(fh)} == {32, 48, 64, 80}
    import json

    workers = {item["worker"] for item in json.loads((out / "batch.json").read_text())["items"]}
    assert workers and all(not w.endswith(f":{os.getpid()}") for w in workers)  # ran in the dask workers
    again = subprocess.run([KINTSUGI, "batch", "volume.threshold", "--inputs", str(listing), "--level", "300",
                            "--largest-only", "yes", "--scheduler", scheduler, "-o", str(out)],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "0 done, 4 skipped" in again.stdout, again.stderr[-2000:]


def test_ctrl_c_stops_cleanly_keeps_what_is_done_and_a_rerun_finishes(tmp_path, scheduler):
    make_cohort(tmp_path / "scans", 5)
    out = tmp_path / "out"
    cmd = [KINTSUGI, "batch", "batchtest.slow", "--inputs", str(tmp_path / "scans" / "*.nii.gz"), "--seconds", "1.5",
           "--workers", "1", "--output", str(out)]
    # As from a terminal: SIGINT at its default even when this test runs in a background job (which inherits
    # SIGINT ignored, and a Python started that way never turns Ctrl-C into KeyboardInterrupt).
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 90
    while not ((out / "batch.csv").is_file() and "done" in _statuses(out).values()):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal does: the whole process group, workers included
    t0 = time.monotonic()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert time.monotonic() - t0 < 30
    assert "interrupted; finished inputs are kept" in err and "Traceback" not in err
    statuses = _statuses(out)
    done = [k for k, v in statuses.items() if v == "done"]
    assert done and "cancelled" in statuses.values() and set(statuses.values()) <= {"done", "cancelled"}
    with pytest.raises(ProcessLookupError):  # nothing of the batch is left running
        for _ in range(50):
            os.killpg(proc.pid, 0)
            time.sleep(0.1)
    # The rerun (here on the external cluster) skips what was done and finishes the rest.
    rerun = subprocess.run([*cmd[:-4], "--scheduler", scheduler, "--output", str(out)], capture_output=True,
                           text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"{len(done)} skipped" in rerun.stdout
    assert set(_statuses(out).values()) == {"done"}

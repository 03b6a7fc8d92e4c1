"""Big arrays through shared memory, small things through pickle; nothing left behind (no processes here)."""

from __future__ import annotations

import errno
import pickle
import signal

import numpy as np
import pytest

from kintsugi.core import Geometry, Volume
from kintsugi.runtime import transport
from kintsugi.runtime.process import describe_exit
from kintsugi.runtime.worker import _ProgressSender, one_line


@pytest.fixture
def prefix(request) -> str:
    p = transport.job_prefix(f"test{abs(hash(request.node.name)) % 10**8}")
    yield p
    transport.release(p)


def test_big_arrays_go_to_segments_and_come_back_mapped(prefix):
    vol = Volume(data=np.arange(20 * 256 * 256, dtype=np.float32).reshape(20, 256, 256),
                 geometry=Geometry((0.5, 0.5, 2.0), (1.0, 2.0, 3.0)), name="ct")
    small = np.arange(10)
    data, paths = transport.dumps({"vol": vol, "small": small, "n": 3}, prefix)
    assert len(paths) == 1 and paths[0].name.startswith(prefix) and paths[0].exists()
    assert len(data) < 100_000  # the 5 MB array is not in the pickle
    out = transport.loads(data)
    assert not paths[0].exists()  # the name is gone as soon as it is mapped; the memory lives on
    assert np.array_equal(out["vol"].data, vol.data) and out["vol"].data.flags.writeable
    assert out["vol"].geometry.spacing == vol.geometry.spacing and out["vol"].name == "ct"
    assert np.array_equal(out["small"], small) and out["n"] == 3
    out["vol"].data[0, 0, 0] = -1  # writable, and private to this copy
    assert vol.data[0, 0, 0] == 0


@pytest.mark.parametrize("make", [
    lambda: np.asfortranarray(np.random.default_rng(0).random((300, 500))),
    lambda: np.arange(2_000_000, dtype=">i4")[::3],
    lambda: np.ones((400, 300, 3), dtype=np.uint8)[:, ::-1, :].transpose(1, 0, 2),
    lambda: np.zeros(200_000, dtype=[("a", "<f8"), ("b", "<i4")]),
], ids=["fortran", "big-endian-strided", "transposed", "structured"])
@pytest.mark.parametrize("copy", [False, True], ids=["mapped", "copied"])
def test_layouts_and_dtypes_survive(prefix, make, copy):
    out = _round_trip(make(), prefix, copy)
    assert out.flags.owndata is copy  # copied: ordinary memory; mapped: a view of the segment


def test_a_memmap_travels_as_an_array(prefix, tmp_path):
    arr = np.memmap(tmp_path / "m.dat", dtype=np.int16, mode="w+", shape=(1000, 1000))
    arr[:] = 7
    assert type(_round_trip(arr, prefix)) is np.ndarray


def _round_trip(arr: np.ndarray, prefix: str, copy: bool = False) -> np.ndarray:
    data, paths = transport.dumps(arr, prefix, threshold=1 << 16)
    assert paths
    out = transport.loads(data, copy=copy)
    assert not any(p.exists() for p in paths)
    assert out.dtype == arr.dtype and out.shape == arr.shape and np.array_equal(out, arr)
    if arr.flags.f_contiguous and not arr.flags.c_contiguous:
        assert out.flags.f_contiguous
    return out


def test_small_arrays_and_object_arrays_stay_in_the_pickle(prefix):
    data, paths = transport.dumps([np.zeros(100), np.array([object()] * 300_000, dtype=object)], prefix)
    assert paths == []
    assert len(transport.loads(data)[1]) == 300_000


def test_a_failed_dump_removes_what_it_wrote(prefix):
    class Unpicklable:
        def __reduce__(self):
            raise TypeError("no")

    with pytest.raises(TypeError):
        transport.dumps([np.zeros(1 << 20), Unpicklable()], prefix)
    assert transport.leftovers(prefix) == []


def test_check_picklable_copies_nothing(prefix):
    transport.check_picklable({"a": np.zeros(1 << 22)})
    assert transport.leftovers(prefix) == []
    with pytest.raises((TypeError, AttributeError, pickle.PicklingError)):
        transport.check_picklable({"f": lambda: 1})


def test_a_full_folder_falls_back_to_the_next(prefix, tmp_path, monkeypatch):
    full, spare = tmp_path / "full", tmp_path / "spare"
    full.mkdir()
    spare.mkdir()
    monkeypatch.setattr(transport, "segment_dirs", lambda: [full, spare])
    real = transport._write_array

    def write(path, arr):
        if path.parent == full:
            path.write_bytes(b"x")  # a partial file, as a write that ran out of room leaves
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, arr)

    monkeypatch.setattr(transport, "_write_array", write)
    data, paths = transport.dumps(np.ones(1 << 18), prefix)
    assert [p.parent for p in paths] == [spare] and list(full.iterdir()) == []
    assert transport.loads(data).sum() == 1 << 18


def test_release_and_stale_sweep(tmp_path, monkeypatch):
    monkeypatch.setattr(transport, "segment_dirs", lambda: [tmp_path])
    mine = tmp_path / f"{transport.job_prefix('abc')}a0"
    # A pid that cannot be running: above the kernel's pid_max.
    dead = tmp_path / f"{transport.PREFIX}{2**31 - 5}-abc-a0"
    other = tmp_path / "kintsugi-bench"
    for p in (mine, dead, other):
        p.write_bytes(b"x")
    assert transport.sweep_stale() == 1
    assert mine.exists() and other.exists() and not dead.exists()
    assert transport.release(transport.job_prefix("abc")) == 1 and not mine.exists()


def test_exit_descriptions():
    assert describe_exit(-signal.SIGSEGV) == "worker crashed: segmentation fault (SIGSEGV)"
    assert describe_exit(-signal.SIGKILL) == "worker was killed (SIGKILL), possibly out of memory"
    assert describe_exit(3) == "worker exited with code 3"
    assert describe_exit(-signal.SIGABRT) == "worker crashed: aborted (SIGABRT)"


def test_one_line_error():
    assert one_line(ValueError("the message\nmore detail")) == "ValueError: the message"
    assert one_line(KeyError()) == "KeyError"


def test_progress_is_throttled_but_the_last_report_is_sent():
    sent = []

    class Channel:
        def send(self, msg):
            sent.append(msg)

    sender = _ProgressSender(Channel(), seq=7, interval=0.05)  # type: ignore[arg-type]
    for i in range(1000):
        sender.report(i / 999, f"step {i}")
    sender.close()
    assert sent[0] == ("progress", 7, 0.0, "step 0") and sent[-1] == ("progress", 7, 1.0, "step 999")
    assert len(sent) <= 5
    fractions = [m[2] for m in sent]
    assert fractions == sorted(fractions)


def test_a_lone_report_inside_the_interval_is_flushed_by_the_timer():
    import time

    sent = []

    class Channel:
        def send(self, msg):
            sent.append(msg)

    sender = _ProgressSender(Channel(), seq=1, interval=0.05)  # type: ignore[arg-type]
    sender.report(0.1, "loading")
    sender.report(0.2, "computing")  # inside the interval: pending
    time.sleep(0.2)  # the task computes silently; the flusher still delivers "computing"
    assert sent[-1] == ("progress", 1, 0.2, "computing")
    sender.close()
    assert len(sent) == 2

"""Moving job inputs and results between processes: big arrays by shared memory, the rest by pickle.

A 150 MB volume pickled through a pipe is copied four times and blocks both ends while it streams.
Instead, :func:`dumps` pickles everything normally except numpy arrays of at least ``threshold`` bytes:
each of those is written once into its own file in ``/dev/shm`` (RAM-backed on Linux) and the pickle
only names the file. :func:`loads` maps the file back (``mmap``, no copy) and unlinks its name at once,
so the memory lives exactly as long as the array that uses it and nothing can be left behind by a
reader that crashes later.

Why files and ``mmap`` rather than ``multiprocessing.shared_memory``: an ndarray made over an ``mmap``
keeps the mapping alive by reference, so no ``close()`` bookkeeping can unmap memory still in use, and
``SharedMemory`` registers every segment with a resource tracker that (before Python 3.13) unlinks or
warns about segments the *other* process still owns. ``write()`` is also the safe way to fill tmpfs:
a full ``/dev/shm`` (64 MB in a default Docker container) gives ``ENOSPC``, where filling an ``mmap``
would kill the process with SIGBUS; :func:`dumps` then falls back to the temp folder (disk, page cache).

Every name starts with ``kintsugi-rt-<parent pid>-<job id>-``, so the parent can release whatever a job
left (a worker killed half-way through writing its result) with one :func:`release` of that prefix,
and :func:`sweep_stale` can remove what a killed parent left behind.
"""

from __future__ import annotations

import contextlib
import errno
import io
import mmap
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from kintsugi.system import pid_alive

PREFIX = "kintsugi-rt-"
THRESHOLD = 1 << 20
"""Arrays of at least this many bytes travel by shared memory; smaller ones are cheaper to pickle."""

_TAG = "kintsugi.ndarray/1"
_CHUNK = 16 << 20
_SHM = Path("/dev/shm")


def segment_dirs() -> list[Path]:
    """Where segments may live, best first: RAM-backed ``/dev/shm`` when it exists, then the temp folder."""
    dirs = [_SHM] if _SHM.is_dir() and os.access(_SHM, os.W_OK) else []
    tmp = Path(tempfile.gettempdir())
    if tmp not in dirs:
        dirs.append(tmp)
    return dirs


def job_prefix(job_id: str, pid: int | None = None) -> str:
    """The name prefix of every segment of one job (``pid`` is the parent's, which owns the cleanup)."""
    return f"{PREFIX}{os.getpid() if pid is None else pid}-{job_id}-"


def _shareable(obj: Any, threshold: int) -> bool:
    # Exact types only: a masked array or other subclass would lose its extra state as a plain ndarray.
    return (type(obj) is np.ndarray or type(obj) is np.memmap) and obj.nbytes >= threshold \
        and not obj.dtype.hasobject


def _write_array(path: Path, arr: np.ndarray) -> str:
    """Write the array's bytes to a new file; returns the memory order ('C' or 'F') they are in."""
    order = "F" if arr.flags.f_contiguous and not arr.flags.c_contiguous else "C"
    flat = arr.T if order == "F" else arr
    with open(path, "xb") as fh:
        if flat.flags.c_contiguous:
            fh.write(memoryview(flat).cast("B"))
        else:  # a strided view (never 0-d): copy a slab at a time instead of the whole array at once
            rows = max(1, _CHUNK // max(1, flat[:1].nbytes))
            for start in range(0, len(flat), rows):
                fh.write(np.ascontiguousarray(flat[start:start + rows]).data.cast("B"))
    return order


class _Pickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO, prefix: str | None, threshold: int) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.prefix = prefix
        self.threshold = threshold
        self.paths: list[Path] = []

    def persistent_id(self, obj: Any) -> Any:
        if not _shareable(obj, self.threshold):
            return None
        if self.prefix is None:  # dry run (check_picklable): name the array without writing it
            return (_TAG, "", obj.dtype, obj.shape, "C")
        name = f"{self.prefix}{len(self.paths)}"
        for folder in segment_dirs():
            path = folder / name
            try:
                order = _write_array(path, obj)
            except OSError as e:
                with contextlib.suppress(OSError):
                    path.unlink()
                if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                    continue  # this folder is full: try the next one
                raise
            self.paths.append(path)
            return (_TAG, str(path), obj.dtype, obj.shape, order)
        raise OSError(errno.ENOSPC, f"no room for a {obj.nbytes / 1e6:.0f} MB array in {segment_dirs()}")


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, copy: bool) -> None:
        super().__init__(file)
        self.copy = copy

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and pid and pid[0] == _TAG):
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
        _, path, dtype, shape, order = pid
        try:
            return (_read_array if self.copy else _map_array)(path, dtype, shape, order)
        finally:
            # The array has the memory (mapped or copied); dropping the name now means no later
            # failure can leak it.
            with contextlib.suppress(OSError):
                os.unlink(path)


def _map_array(path: str, dtype: np.dtype, shape: tuple[int, ...], order: str) -> np.ndarray:
    count = int(np.prod(shape, dtype=np.int64))
    fd = os.open(path, os.O_RDWR)
    try:
        mm = mmap.mmap(fd, count * dtype.itemsize)
    finally:
        os.close(fd)
    return np.frombuffer(mm, dtype=dtype, count=count).reshape(shape, order=order)


def _read_array(path: str, dtype: np.dtype, shape: tuple[int, ...], order: str) -> np.ndarray:
    arr = np.empty(shape, dtype=dtype, order=order)
    view = memoryview(arr.T if order == "F" else arr).cast("B")
    with open(path, "rb", buffering=0) as fh:
        done = 0
        while done < len(view):
            n = fh.readinto(view[done:])
            if not n:
                raise EOFError(f"shared-memory segment {path} is shorter than its array")
            done += n
    return arr


def dumps(obj: Any, prefix: str, threshold: int = THRESHOLD) -> tuple[bytes, list[Path]]:
    """Pickle ``obj``; big arrays go to segment files named ``prefix0``, ``prefix1``… (returned too).

    On failure every segment written so far is removed before the error propagates.
    """
    buf = io.BytesIO()
    pickler = _Pickler(buf, prefix, threshold)
    try:
        pickler.dump(obj)
    except BaseException:
        for path in pickler.paths:
            with contextlib.suppress(OSError):
                path.unlink()
        raise
    return buf.getvalue(), pickler.paths


def loads(data: bytes, copy: bool = False) -> Any:
    """Unpickle what :func:`dumps` wrote, unlinking each segment's name as it is read.

    By default big arrays are mapped, not copied: no second copy of a 2 GB volume at any moment, and
    no extra pass over it. The memory then stays in ``/dev/shm`` as long as the array lives; when
    ``/dev/shm`` fills up, :func:`dumps` moves on to the temp folder. ``copy=True`` reads them into
    ordinary process memory instead (always on Windows, which cannot delete a mapped file).
    """
    return _Unpickler(io.BytesIO(data), copy or os.name == "nt").load()


def check_picklable(obj: Any, threshold: int = THRESHOLD) -> None:
    """Raise now (in the caller) if ``obj`` cannot be sent, without copying any big array."""
    _Pickler(io.BytesIO(), None, threshold).dump(obj)


def release(prefix: str) -> int:
    """Remove every segment whose name starts with ``prefix``; returns how many there were."""
    n = 0
    for folder in segment_dirs():
        for path in folder.glob(prefix + "*"):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                n += 1
    return n


def leftovers(prefix: str = PREFIX) -> list[Path]:
    """Segments (and worker crash logs) still present under ``prefix``: for tests and diagnostics."""
    return sorted(p for folder in segment_dirs() for p in folder.glob(prefix + "*"))


def sweep_stale() -> int:
    """Remove this user's ``kintsugi-rt-<pid>-…`` files whose owning process no longer exists.

    A parent killed outright (SIGKILL, power loss of a session) cannot clean up; the next run does.
    """
    uid = os.getuid() if hasattr(os, "getuid") else None
    n = 0
    for path in leftovers():
        pid_text = path.name[len(PREFIX):].split("-", 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid() or pid_alive(int(pid_text)):
            continue
        try:
            if uid is not None and path.stat().st_uid != uid:
                continue
            path.unlink()
            n += 1
        except OSError:
            pass
    return n

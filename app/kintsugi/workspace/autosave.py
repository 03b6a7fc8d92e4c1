"""Autosave and crash recovery, headless.

Each running app has its own session folder under the state directory::

    <state>/sessions/<pid>-<start ms>-<rand>/session.lock   pid, process start time, host
    <state>/sessions/<pid>-<start ms>-<rand>/autosave/      a folder workspace, rewritten atomically

so two instances never write the same autosave. A clean exit (``stop(clean=True)``) deletes its
session folder; a session whose lock names a process that is gone (or a different process that
reused the pid: the start time differs) is a crash, and its autosave is offered on the next start.

How the GUI uses it::

    info = find_recoverable()            # before creating this session's Autosaver
    if info and user_agrees(info):       # "Restore the work autosaved at {info.saved}?"
        layers, extra = open_workspace(info.path)
        scene.extend(layers); restore_view_state(extra)
    if info:
        discard_recoverable(info)        # restored (this session autosaves it anew) or declined
    autosaver = Autosaver(scene, extra_provider=window.view_state, snapshot_runner=run_on_gui_thread)
    ...
    autosaver.save_now(wait=False)       # after a change that produced data (a plugin result, an edit)
    autosaver.stop(clean=True)           # on normal exit
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import secrets
import shutil
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

from psygnal import Signal

from kintsugi.core import Layer, Scene
from kintsugi.io.jsonio import atomic_write_bytes
from kintsugi.system import pid_alive
from kintsugi.workspace.format import MANIFEST_ONLY_CHANGES, EncodedLayer, WorkspaceError, encode_layer, to_json
from kintsugi.workspace.store import Snapshot, read_manifest, write_snapshot

log = logging.getLogger("kintsugi.workspace")

LOCK_NAME = "session.lock"
AUTOSAVE_NAME = "autosave"
SESSIONS_DIR = "sessions"
_ORPHAN_AGE_S = 3600.0  # a session folder without a lock this old is left from an interrupted clean exit


def state_dir() -> Path:
    """``$KINTSUGI_STATE_DIR``, else ``$XDG_STATE_HOME/kintsugi``, else ``~/.local/state/kintsugi``."""
    env = os.environ.get("KINTSUGI_STATE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(base) / "kintsugi"


# ----------------------------------------------------------------------------------- session locks


def _process_create_time(pid: int) -> float | None:
    try:
        import psutil

        return float(psutil.Process(pid).create_time())
    except Exception:  # psutil missing, no such process, access denied
        return None


def _lock_alive(lock: dict[str, Any]) -> bool:
    """Whether the session that wrote ``lock`` may still be running (then never touch its files)."""
    host = lock.get("host")
    if host and host != socket.gethostname():
        return True  # a state folder shared between machines: we cannot see that process
    pid = lock.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool):
        return False
    try:
        import psutil
    except ImportError:
        return pid_alive(pid)
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        started = proc.create_time()
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True  # exists, but we may not look at it
    stored = lock.get("create_time")
    if not isinstance(stored, (int, float)):
        return True
    return abs(started - float(stored)) < 1.0  # otherwise the pid was reused by another process


def _read_lock(session: Path) -> dict[str, Any] | None:
    """The lock of a session folder; None when there is none; {} when unreadable (treated as dead:
    locks are written atomically, so an unreadable one is garbage)."""
    p = session / LOCK_NAME
    if not p.is_file():
        return None
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _parse_time(text: Any) -> _dt.datetime | None:
    try:
        t = _dt.datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=_dt.timezone.utc)


@dataclass(frozen=True)
class RecoveryInfo:
    """An autosave left by a session that did not exit cleanly; ``open_workspace(info.path)`` restores it."""

    path: Path
    saved: _dt.datetime
    n_layers: int
    layer_names: tuple[str, ...]
    pid: int | None
    started: _dt.datetime | None
    session_dir: Path = field(repr=False)

    def describe(self) -> str:
        local = self.saved.astimezone()
        names = ", ".join(self.layer_names[:5]) + (" ..." if len(self.layer_names) > 5 else "")
        return f"{self.n_layers} layer(s) autosaved {local:%Y-%m-%d %H:%M:%S}: {names}"


def _recovery_info(session: Path) -> RecoveryInfo | None:
    lock = _read_lock(session)
    if lock is None or _lock_alive(lock):
        return None
    autosave = session / AUTOSAVE_NAME
    try:
        doc = read_manifest(autosave)
    except WorkspaceError:
        return None
    layers = doc["layers"]
    if not layers:
        return None
    saved = _parse_time(doc.get("created"))
    if saved is None:
        saved = _dt.datetime.fromtimestamp(session.stat().st_mtime, _dt.timezone.utc)
    names = tuple(str(e.get("name", "?")) if isinstance(e, dict) else "?" for e in layers)
    pid = lock.get("pid") if isinstance(lock.get("pid"), int) else None
    return RecoveryInfo(autosave, saved, len(layers), names, pid, _parse_time(lock.get("started")), session)


def _sessions(directory: str | Path | None) -> list[Path]:
    root = (Path(directory).expanduser() if directory else state_dir()) / SESSIONS_DIR
    try:
        return sorted(p for p in root.iterdir() if p.is_dir())
    except OSError:
        return []


def list_recoverable(directory: str | Path | None = None) -> list[RecoveryInfo]:
    """Autosaves of sessions that crashed, the most recent first."""
    found = [info for s in _sessions(directory) if (info := _recovery_info(s)) is not None]
    return sorted(found, key=lambda i: i.saved, reverse=True)


def find_recoverable(directory: str | Path | None = None) -> RecoveryInfo | None:
    """The most recent autosave of a crashed session, or None. ``directory`` defaults to :func:`state_dir`."""
    found = list_recoverable(directory)
    return found[0] if found else None


def discard_recoverable(target: RecoveryInfo | str | Path | None = None) -> int:
    """Delete crashed sessions' autosaves: the one ``RecoveryInfo`` given, or every one under the state
    directory ``target`` (default :func:`state_dir`). Sessions still running are never touched.
    Returns how many session folders were removed."""
    candidates = [target.session_dir] if isinstance(target, RecoveryInfo) else _sessions(target)
    removed = 0
    for session in candidates:
        lock = _read_lock(session)
        if lock is None or _lock_alive(lock):
            continue
        shutil.rmtree(session, ignore_errors=True)
        removed += 1
    return removed


def _prune(directory: Path) -> None:
    """Remove session folders nobody can recover: dead without an autosave, or lockless leftovers."""
    now = time.time()
    for session in _sessions(directory):
        lock = _read_lock(session)
        try:
            if lock is None:
                if now - session.stat().st_mtime > _ORPHAN_AGE_S:
                    shutil.rmtree(session, ignore_errors=True)
            elif not _lock_alive(lock) and _recovery_info(session) is None:
                shutil.rmtree(session, ignore_errors=True)
        except OSError:
            continue


# ---------------------------------------------------------------------------------------- autosaver


@dataclass(eq=False)
class _Job:
    snap: Snapshot
    seq: int
    layers: list[Layer]
    versions: list[int]
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    taken: float = field(default_factory=time.monotonic)


class Autosaver:
    """Keeps an autosave of ``scene`` in this session's folder, on a background thread.

    Every scene signal marks it dirty; it saves after ``debounce_s`` without changes, and at least
    every ``interval_s`` while changes keep coming. A layer whose data did not change since the last
    autosave (its ``changed`` signals named only display state such as ``visible`` or ``pose``) is
    hard-linked from the previous autosave instead of being written again, so display edits and
    label edits beside a large CT stay cheap.

    Snapshots copy the arrays under :attr:`lock`; writing happens outside it. Code that mutates layer
    arrays in place from another thread should hold :attr:`lock` while it does. A GUI passes
    ``snapshot_runner``, a callable that runs its argument on the thread owning the scene and returns
    its result (or None when it cannot right now), so background snapshots never see a half-done edit.
    """

    saved = Signal(object)  # the autosave's Path; emitted on the thread that wrote it
    failed = Signal(str)  # one-line reason; emitted on the thread that tried

    def __init__(
        self,
        scene: Scene,
        directory: str | Path | None = None,
        interval_s: float = 180.0,
        debounce_s: float = 2.0,
        extra_provider: Callable[[], dict[str, Any]] | None = None,
        *,
        snapshot_runner: Callable[[Callable[[], Any]], Any] | None = None,
    ) -> None:
        if interval_s <= 0 or debounce_s < 0:
            raise ValueError("interval_s must be > 0 and debounce_s >= 0")
        self.scene = scene
        self.directory = Path(directory).expanduser() if directory else state_dir()
        self.interval_s = float(interval_s)
        self.debounce_s = float(debounce_s)
        self.extra_provider = extra_provider
        self.snapshot_runner = snapshot_runner
        self.lock = threading.RLock()
        self.save_count = 0
        self.last_saved: _dt.datetime | None = None
        self.last_error: str | None = None

        self._cond = threading.Condition()
        self._write_lock = threading.Lock()
        self._queue: deque[_Job] = deque()
        self._stopping = False
        self._stopped = False
        now = time.monotonic()
        self._dirty = len(scene) > 0
        self._dirty_since = now
        self._last_change = now
        self._not_before = 0.0
        self._change_seq = 0
        self._written_seq = -1
        self._versions: WeakKeyDictionary[Layer, int] = WeakKeyDictionary()
        self._saved_files: WeakKeyDictionary[Layer, tuple[int, dict[str, str]]] = WeakKeyDictionary()

        self.session_dir = self._start_session()
        self.autosave_path = self.session_dir / AUTOSAVE_NAME
        scene.layer_added.connect(self._on_added)
        scene.layer_removed.connect(self._on_removed)
        scene.layer_changed.connect(self._on_changed)
        self._thread = threading.Thread(target=self._run, name="kintsugi-autosave", daemon=True)
        self._thread.start()

    # -- session ---------------------------------------------------------------------------------

    def _start_session(self) -> Path:
        sessions = self.directory / SESSIONS_DIR
        try:
            sessions.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise WorkspaceError(sessions, f"cannot create the autosave folder: {e.strerror or e}") from None
        _prune(self.directory)
        pid = os.getpid()
        created = _process_create_time(pid)
        started = _dt.datetime.now(_dt.timezone.utc)
        stamp = int((created if created is not None else started.timestamp()) * 1000)
        session = sessions / f"{pid}-{stamp}-{secrets.token_hex(2)}"
        session.mkdir()
        import kintsugi

        lock = {"pid": pid, "create_time": created, "host": socket.gethostname(), "started": started.isoformat(),
                "kintsugi_version": str(kintsugi.__version__)}
        atomic_write_bytes(session / LOCK_NAME, (json.dumps(lock, indent=1) + "\n").encode("utf-8"))
        return session

    # -- change tracking -------------------------------------------------------------------------

    def _mark(self, layer: Layer | None, data: bool) -> None:
        with self._cond:
            now = time.monotonic()
            if not self._dirty:
                self._dirty = True
                self._dirty_since = now
            self._last_change = now
            self._change_seq += 1
            if layer is not None and data:
                self._versions[layer] = self._versions.get(layer, 0) + 1
            self._cond.notify_all()

    def _on_added(self, layer: Layer, index: int) -> None:
        self._mark(layer, data=True)

    def _on_removed(self, layer: Layer, index: int) -> None:
        with self._cond:
            self._saved_files.pop(layer, None)
        self._mark(None, data=False)

    def _on_changed(self, layer: Layer, what: str) -> None:
        self._mark(layer, data=what not in MANIFEST_ONLY_CHANGES)

    def mark_dirty(self) -> None:
        """Something worth autosaving changed outside the scene's signals (e.g. the view state)."""
        self._mark(None, data=False)

    @property
    def dirty(self) -> bool:
        with self._cond:
            return self._dirty

    # -- snapshot and write ----------------------------------------------------------------------

    def _snapshot(self) -> _Job:
        """Encode the scene now, copying arrays of layers whose data changed since the last autosave."""
        with self.lock:
            layers = list(self.scene)
            with self._cond:
                seq = self._change_seq
                versions = [self._versions.get(layer, 0) for layer in layers]
                previous = [self._saved_files.get(layer) for layer in layers]
            notes: list[str] = []
            encoded: list[EncodedLayer] = []
            kept: list[Layer] = []
            kept_versions: list[int] = []
            for layer, version, prev in zip(layers, versions, previous, strict=True):
                index = len(encoded)
                reuse = prev is not None and prev[0] == version
                enc = encode_layer(layer, index, notes, copy=not reuse)
                if enc is None:
                    continue
                if reuse:
                    sources = {f.role: self.autosave_path / prev[1][f.role] for f in enc.files if f.role in prev[1]}
                    if len(sources) == len(enc.files) and all(p.is_file() for p in sources.values()):
                        for f in enc.files:
                            f.link_from = sources[f.role]
                    else:
                        enc = encode_layer(layer, index, [], copy=True)
                encoded.append(enc)
                kept.append(layer)
                kept_versions.append(version)
            extra: Any = {}
            if self.extra_provider is not None:
                try:
                    extra = self.extra_provider() or {}
                except Exception as e:
                    notes.append(f"extra: the view state could not be read ({type(e).__name__}: {e})")
            extra_json = to_json(extra, "extra", notes)
        snap = Snapshot(encoded, extra_json if isinstance(extra_json, dict) else {}, notes)
        return _Job(snap, seq, kept, kept_versions)

    def _write(self, job: _Job) -> None:
        try:
            with self._write_lock:
                self._refresh_links(job)
                try:
                    if job.seq >= self._written_seq:  # never replace a newer autosave with an older one
                        write_snapshot(job.snap, self.autosave_path)
                except Exception as e:
                    job.error = e
                    self._failed(e)
                    return
                with self._cond:
                    if job.seq >= self._written_seq:
                        for layer, version, enc in zip(job.layers, job.versions, job.snap.layers, strict=True):
                            self._saved_files[layer] = (version, {f.role: f.rel for f in enc.files})
                        self._written_seq = job.seq
                    if self._change_seq == job.seq:
                        self._dirty = False
                    else:  # changed since the snapshot: the next interval counts from this save
                        self._dirty_since = max(self._dirty_since, job.taken)
                    self.save_count += 1
                    self.last_saved = _dt.datetime.now(_dt.timezone.utc)
                    self.last_error = None
        finally:
            job.done.set()
        if job.error is None:
            self.saved.emit(self.autosave_path)

    def _refresh_links(self, job: _Job) -> None:
        """A save written since ``job``'s snapshot may have renamed unchanged files (a layer was renamed
        or moved): link from their current names; the data is the same when the version is."""
        with self._cond:
            for layer, version, enc in zip(job.layers, job.versions, job.snap.layers, strict=True):
                current = self._saved_files.get(layer)
                for f in enc.files:
                    if f.link_from is None or f.link_from.is_file():
                        continue
                    if current is not None and current[0] == version and f.role in current[1]:
                        f.link_from = self.autosave_path / current[1][f.role]

    def _failed(self, e: BaseException) -> None:
        msg = str(e) if isinstance(e, WorkspaceError) else f"{self.autosave_path}: {type(e).__name__}: {e}"
        log.warning("autosave failed: %s", msg)
        with self._cond:
            self.last_error = msg
            self._saved_files.clear()  # the next try writes everything afresh
            self._not_before = time.monotonic() + max(self.debounce_s, min(self.interval_s, 30.0))
        self.failed.emit(msg)

    def _run(self) -> None:
        while True:
            with self._cond:
                jobs: list[_Job] = []
                while True:
                    if self._stopping:
                        return
                    if self._queue:
                        jobs = list(self._queue)
                        self._queue.clear()
                        break
                    if self._dirty:
                        now = time.monotonic()
                        due = min(self._last_change + self.debounce_s, self._dirty_since + self.interval_s)
                        due = max(due, self._not_before)
                        if now >= due:
                            break
                        self._cond.wait(due - now)
                    else:
                        self._cond.wait()
            if jobs:  # explicit saves: the latest snapshot covers the earlier ones
                latest = jobs[-1]
                try:
                    self._write(latest)
                except Exception as e:
                    latest.error = e
                    self._failed(e)
                for job in jobs[:-1]:
                    job.error = latest.error
                    job.done.set()
                continue
            try:
                job = self._background_snapshot()
                if job is not None:
                    self._write(job)
            except Exception as e:  # keep autosaving whatever one attempt ran into
                self._failed(e)

    def _background_snapshot(self) -> _Job | None:
        try:
            job = self.snapshot_runner(self._snapshot) if self.snapshot_runner else self._snapshot()
        except Exception as e:
            job = None
            log.warning("autosave snapshot failed: %s: %s", type(e).__name__, e)
            self.last_error = f"snapshot failed: {type(e).__name__}: {e}"
        if job is None:
            with self._cond:
                self._not_before = time.monotonic() + max(self.debounce_s, 1.0)
        return job

    # -- public ----------------------------------------------------------------------------------

    def save_now(self, wait: bool = True, timeout: float | None = None) -> Path:
        """Snapshot the scene now (on the calling thread) and write the autosave on the background thread.

        ``wait=True`` returns when it is written (raising :class:`WorkspaceError` if that failed);
        ``wait=False`` returns at once, as the GUI does after each change that produced data.
        """
        with self._cond:
            if self._stopping or self._stopped:
                raise RuntimeError("the autosaver is stopped")
        job = self._snapshot()
        with self._cond:
            self._queue.append(job)
            self._cond.notify_all()
        if wait:
            if not job.done.wait(timeout):
                raise TimeoutError(f"autosave to {self.autosave_path} did not finish in {timeout} s")
            if job.error is not None:
                raise job.error
        return self.autosave_path

    def stop(self, clean: bool = True, timeout: float = 60.0) -> None:
        """Stop autosaving. ``clean=True`` (normal exit) deletes this session's lock and autosave, so it is
        never offered for recovery; ``clean=False`` first writes pending changes and leaves both."""
        with self._cond:
            if self._stopping or self._stopped:
                return
        for signal, slot in ((self.scene.layer_added, self._on_added), (self.scene.layer_removed, self._on_removed),
                             (self.scene.layer_changed, self._on_changed)):
            with contextlib.suppress(Exception):  # already disconnected
                signal.disconnect(slot)
        if not clean and self.dirty:
            try:
                self.save_now(wait=True, timeout=timeout)
            except Exception as e:
                log.warning("final autosave failed: %s", e)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout)
        with self._cond:
            self._stopped = True
            for job in self._queue:
                job.error = RuntimeError("the autosaver stopped before writing")
                job.done.set()
            self._queue.clear()
        if clean:
            (self.session_dir / LOCK_NAME).unlink(missing_ok=True)  # first: a half-deleted folder is not offered
            shutil.rmtree(self.session_dir, ignore_errors=True)

    def __enter__(self) -> Autosaver:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.stop(clean=exc_type is None)

"""Autosave on a background thread, and recovery after the app is killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from kintsugi.core import Geometry, LabelMap, Scene, Volume
from kintsugi.workspace import (
    Autosaver,
    WorkspaceError,
    discard_recoverable,
    find_recoverable,
    list_recoverable,
    open_workspace,
    save_workspace,
    state_dir,
)
from kintsugi.workspace import format as wsformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ws_scenes import assert_same_layers, build_scene  # noqa: E402

QUIET = {"debounce_s": 60.0, "interval_s": 600.0}  # only explicit saves


def _wait_for(predicate, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.fixture
def saver_factory(tmp_path):
    made: list[Autosaver] = []

    def make(scene: Scene, **kw) -> Autosaver:
        saver = Autosaver(scene, tmp_path / "state", **kw)
        made.append(saver)
        return saver

    yield make
    for saver in made:
        saver.stop(clean=True)


def test_state_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("KINTSUGI_STATE_DIR", str(tmp_path / "s"))
    assert state_dir() == tmp_path / "s"
    monkeypatch.delenv("KINTSUGI_STATE_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert state_dir() == tmp_path / "xdg" / "kintsugi"


def test_save_now_writes_the_autosave_and_a_clean_stop_removes_it(tmp_path, saver_factory):
    scene = build_scene()
    saver = saver_factory(scene, extra_provider=lambda: {"layout": "1x3"}, **QUIET)
    lock = json.loads((saver.session_dir / "session.lock").read_text())
    assert lock["pid"] == os.getpid()
    assert saver.session_dir.parent == tmp_path / "state" / "sessions"
    assert saver.dirty  # the scene had layers before the autosaver came
    path = saver.save_now()
    assert path == saver.autosave_path and saver.save_count == 1 and not saver.dirty
    layers, extra = open_workspace(path)
    assert_same_layers(scene.layers, layers)
    assert extra == {"layout": "1x3"}
    assert find_recoverable(tmp_path / "state") is None  # this session is alive
    saver.stop(clean=True)
    assert not saver.session_dir.exists()
    assert find_recoverable(tmp_path / "state") is None


def test_rapid_changes_give_one_save_after_quiet(saver_factory):
    scene = Scene()
    saver = saver_factory(scene, debounce_s=0.2, interval_s=600.0)
    saves = []
    saver.saved.connect(saves.append)
    layer = scene.add(Volume(name="v", data=np.zeros((2, 3, 4), np.int16)))
    for i in range(10):
        layer.set(opacity=i / 10)
        layer.data[0, 0, 0] = i
        layer.changed.emit("data")
    assert saves == []  # nothing before the quiet period
    assert _wait_for(lambda: len(saves) == 1, 5.0)
    time.sleep(0.5)
    assert len(saves) == 1 and saver.save_count == 1
    (back,), _ = open_workspace(saver.autosave_path)
    assert back.opacity == 0.9 and back.data[0, 0, 0] == 9


def test_changes_that_never_stop_are_saved_every_interval(saver_factory, monkeypatch):
    original = wsformat._write_grid

    def slow(*args):  # a save takes a while, and changes come in during it
        time.sleep(0.03)
        original(*args)

    monkeypatch.setattr(wsformat, "_write_grid", slow)
    scene = Scene()
    saver = saver_factory(scene, debounce_s=30.0, interval_s=0.3)
    layer = scene.add(Volume(name="v", data=np.zeros((2, 3, 4), np.int16)))
    end = time.monotonic() + 5.0
    while saver.save_count == 0 and time.monotonic() < end:
        layer.set(opacity=0.5 if layer.opacity == 1.0 else 1.0)
        time.sleep(0.05)
    assert saver.save_count >= 1
    first = saver.save_count
    end = time.monotonic() + 1.0
    while time.monotonic() < end:  # still changing: about one save per interval, not one after another
        layer.data[0, 0, 0] += 1
        layer.changed.emit("data")
        time.sleep(0.01)
    assert 1 <= saver.save_count - first <= 5


def test_unchanged_data_is_linked_not_rewritten(saver_factory):
    scene = Scene()
    ct = scene.add(Volume(name="ct", data=np.arange(32 * 32 * 32, dtype=np.int16).reshape(32, 32, 32)))
    seg = scene.add(LabelMap(name="seg", data=np.zeros((32, 32, 32), np.uint8)))
    saver = saver_factory(scene, **QUIET)
    saver.save_now()
    ct_file, seg_file = saver.autosave_path / "data/000-ct.nii.gz", saver.autosave_path / "data/001-seg.nii.gz"
    ct_inode, seg_inode = ct_file.stat().st_ino, seg_file.stat().st_ino
    ct.set(visible=False)  # display only
    seg.data[4:8, 4:8, 4:8] = 3
    seg.changed.emit("data")
    saver.save_now()
    assert ct_file.stat().st_ino == ct_inode  # linked from the previous autosave
    assert seg_file.stat().st_ino != seg_inode  # rewritten
    ct_back, seg_back = open_workspace(saver.autosave_path)[0]
    assert not ct_back.visible and np.array_equal(ct_back.data, ct.data)
    assert np.array_equal(seg_back.data, seg.data)
    ct.data[0, 0, 0] = -5  # a data edit rewrites the volume too
    ct.changed.emit("data")
    saver.save_now()
    assert open_workspace(saver.autosave_path)[0][0].data[0, 0, 0] == -5


def test_a_failed_autosave_is_reported_and_the_next_one_works(saver_factory, monkeypatch):
    scene = Scene()
    scene.add(Volume(name="ct", data=np.zeros((2, 2, 2), np.int16)))
    saver = saver_factory(scene, **QUIET)
    errors = []
    saver.failed.connect(errors.append)

    def broken(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(wsformat, "_write_grid", broken)
    with pytest.raises(WorkspaceError, match="No space left"):
        saver.save_now()
    assert errors and "No space left" in errors[0] and saver.last_error and saver.dirty
    monkeypatch.undo()
    saver.save_now()
    assert saver.last_error is None and not saver.dirty
    assert [x.name for x in open_workspace(saver.autosave_path)[0]] == ["ct"]


def test_a_snapshot_does_not_see_later_edits(saver_factory):
    """The write happens on another thread; what it writes is the scene at save_now time."""
    scene = Scene()
    seg = scene.add(LabelMap(name="seg", data=np.zeros((8, 8, 8), np.uint8)))
    saver = saver_factory(scene, **QUIET)
    gate = threading.Event()
    original = wsformat._write_grid

    def slow(data, geometry, dest):
        gate.wait(5)
        original(data, geometry, dest)

    wsformat._write_grid = slow
    try:
        seg.data[0] = 1
        seg.changed.emit("data")
        saver.save_now(wait=False)
        seg.data[:] = 7  # while the autosave is being written
        gate.set()
        assert _wait_for(lambda: saver.save_count == 1)
    finally:
        wsformat._write_grid = original
    back = open_workspace(saver.autosave_path)[0][0]
    assert (back.data[0] == 1).all() and (back.data[1:] == 0).all()


def test_two_sessions_never_share_an_autosave(saver_factory):
    a, b = Scene(), Scene()
    sa, sb = saver_factory(a, **QUIET), saver_factory(b, **QUIET)
    assert sa.autosave_path != sb.autosave_path
    a.add(Volume(name="a", data=np.zeros((1, 1, 1))))
    b.add(Volume(name="b", data=np.ones((1, 1, 1))))
    sa.save_now()
    sb.save_now()
    assert open_workspace(sa.autosave_path)[0][0].name == "a"
    assert open_workspace(sb.autosave_path)[0][0].name == "b"


def test_a_live_pid_with_another_start_time_is_a_crash(tmp_path):
    """The pid of a crashed session may be reused by an unrelated process."""
    session = tmp_path / "sessions" / "1-1-aaaa"
    layer = Volume(name="old work", data=np.zeros((2, 2, 2), np.int16))
    save_workspace([layer], session / "autosave")
    lock = {"pid": os.getpid(), "create_time": 12345.0, "host": None, "started": "2020-01-01T00:00:00+00:00"}
    (session / "session.lock").write_text(json.dumps(lock))
    info = find_recoverable(tmp_path)
    assert info is not None and info.n_layers == 1 and info.layer_names == ("old work",)
    assert info.path == session / "autosave" and "old work" in info.describe()
    lock["create_time"] = None  # no start time to compare: assume the pid is still that session
    (session / "session.lock").write_text(json.dumps(lock))
    assert find_recoverable(tmp_path) is None
    lock["pid"] = 2**22 + 12345  # beyond Linux's pid range: certainly gone
    (session / "session.lock").write_text(json.dumps(lock))
    assert find_recoverable(tmp_path) is not None
    assert discard_recoverable(tmp_path) == 1
    assert not session.exists() and list_recoverable(tmp_path) == []


CHILD = textwrap.dedent("""
    import time
    import numpy as np
    from kintsugi.core import Geometry, LabelMap, Scene
    from kintsugi.workspace import Autosaver

    scene = Scene()
    saver = Autosaver(scene, debounce_s=60, interval_s=600)
    seg = LabelMap(name="vertebrae", data=np.zeros((6, 7, 8), np.uint8),
                   geometry=Geometry((0.5, 0.6, 0.7), (1.5, -2.0, 3.0)))
    scene.add(seg)
    seg.data[2:4, 3:5, 1:6] = 3
    seg.data[0, 0, 0] = 9
    seg.changed.emit("data")
    saver.save_now()
    print("saved", flush=True)
    time.sleep(120)
""")


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_killed_app_is_offered_and_restored(tmp_path):
    state = tmp_path / "state"
    env = {**os.environ, "KINTSUGI_STATE_DIR": str(state)}
    proc = subprocess.Popen([sys.executable, "-c", CHILD], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "saved", proc.stderr.read() if proc.poll() is not None else line
        assert find_recoverable(state) is None  # still running: not a crash
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()
    info = find_recoverable(state)
    assert info is not None and info.pid == proc.pid and info.n_layers == 1
    (seg,), extra = open_workspace(info.path)
    expected = np.zeros((6, 7, 8), np.uint8)
    expected[2:4, 3:5, 1:6] = 3
    expected[0, 0, 0] = 9
    assert isinstance(seg, LabelMap) and seg.name == "vertebrae"
    assert seg.data.dtype == np.uint8 and np.array_equal(seg.data, expected)
    assert seg.geometry.spacing == (0.5, 0.6, 0.7) and seg.geometry.origin == (1.5, -2.0, 3.0)
    # a new session does not hide it, and can take the restored layers over
    scene = Scene()
    with Autosaver(scene, state, **QUIET) as saver:
        assert find_recoverable(state) == info
        scene.add(seg)
        saver.save_now()
        assert discard_recoverable(info) == 1
        assert find_recoverable(state) is None
    assert find_recoverable(state) is None  # and the clean exit is not offered either
    assert not any((state / "sessions").iterdir())


def test_a_geometry_edit_is_autosaved(saver_factory):
    scene = Scene()
    v = scene.add(Volume(name="v", data=np.zeros((2, 2, 2), np.int16)))
    saver = saver_factory(scene, **QUIET)
    saver.save_now()
    v.set(geometry=Geometry((2.0, 2.0, 2.0), (1.0, 2.0, 3.0)))
    saver.save_now()
    assert open_workspace(saver.autosave_path)[0][0].geometry.spacing == (2.0, 2.0, 2.0)


def test_background_snapshots_run_through_the_runner(saver_factory):
    """The GUI hands snapshots to its own thread; the runner may also decline (return None)."""
    calls = []

    def runner(fn):
        calls.append(threading.current_thread().name)
        return fn() if len(calls) > 1 else None  # the first time: "not now"

    scene = Scene()
    saver = saver_factory(scene, debounce_s=0.05, interval_s=600.0, snapshot_runner=runner)
    scene.add(Volume(name="v", data=np.zeros((2, 2, 2), np.int16)))
    assert _wait_for(lambda: saver.save_count == 1, 5.0)
    assert len(calls) == 2 and calls[0] == "kintsugi-autosave"


def test_a_rename_while_a_save_is_in_flight(saver_factory):
    """Unchanged files are linked from the previous autosave even when a save in between renamed them."""
    scene = Scene()
    a = scene.add(Volume(name="a", data=np.full((4, 4, 4), 3, np.int16)))
    saver = saver_factory(scene, **QUIET)
    saver.save_now()
    gate, started = threading.Event(), threading.Event()
    original = wsformat._write_grid

    def gated(data, geometry, dest):
        started.set()
        gate.wait(5)
        original(data, geometry, dest)

    wsformat._write_grid = gated
    try:
        scene.add(Volume(name="b", data=np.full((4, 4, 4), 5, np.int16)), index=0)  # "a" moves: data/001-a
        saver.save_now(wait=False)
        assert started.wait(5)  # that save is being written
        a.set(name="renamed")
        threading.Timer(0.2, gate.set).start()
        saver.save_now()  # snapshot taken now, when the autosave still holds data/000-a
    finally:
        wsformat._write_grid = original
    assert saver.last_error is None and saver.save_count == 3
    b_back, a_back = open_workspace(saver.autosave_path)[0]
    assert (b_back.name, a_back.name) == ("b", "renamed")
    assert (a_back.data == 3).all() and (b_back.data == 5).all()


def test_view_state_changes_are_autosaved_too(saver_factory):
    view = {"layout": "1x1"}
    scene = Scene()
    saver = saver_factory(scene, extra_provider=lambda: dict(view), **QUIET)
    saver.save_now()
    view["layout"] = "2x2"
    saver.mark_dirty()
    assert saver.dirty
    saver.save_now()
    assert open_workspace(saver.autosave_path)[1] == {"layout": "2x2"}


def test_an_unwritable_state_folder_is_one_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(WorkspaceError, match="cannot create the autosave folder"):
        Autosaver(Scene(), blocker)

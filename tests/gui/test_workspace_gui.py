"""Workspace save/open from the window, and crash recovery: SIGKILL after an edit, restart, restore."""

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from kintsugi.core import Fragment, Fragments, Geometry, LabelMap, Mesh, Volume

pytestmark = pytest.mark.gui


@pytest.fixture
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("KINTSUGI_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


@pytest.fixture
def window(qtbot, state_dir):
    from kintsugi.gui.main_window import MainWindow

    w = MainWindow(interactive=False)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.close()


def test_save_then_open_gives_back_layers_geometry_poses_and_edits(window, tmp_path, qtbot):
    a = np.deg2rad(20)
    direction = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    g = Geometry((0.7, 0.8, 1.5), (-10, 5, 30), direction)
    ct = Volume(name="ct", data=np.random.default_rng(0).integers(-1000, 1000, (6, 7, 8)).astype(np.int16),
                geometry=g, modality="CT", unit="HU")
    labels = LabelMap(name="seg", data=np.zeros((6, 7, 8), np.uint8), geometry=g)
    labels.data[1:3, 2:4, 3:5] = 9  # an edit
    pose = np.eye(4)
    pose[:3, :3] = direction
    pose[:3, 3] = (1.5, -2.25, 3)
    tet = Mesh(vertices=[[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]],
               faces=[[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    frags = Fragments(name="pieces", items=[Fragment("a", tet, pose), Fragment("b", tet)])
    for layer in (ct, labels, frags):
        window.scene.add(layer)
    labels.set(opacity=0.4)
    out = window.save_workspace(tmp_path / "study.kintsugi.zip")
    assert out is not None and out.exists()
    from kintsugi.gui.main_window import MainWindow

    other = MainWindow(interactive=False)
    qtbot.addWidget(other)
    try:
        other.open_path(out)
        names = [x.name for x in other.scene]
        assert names == ["ct", "seg", "pieces"]
        ct2, seg2, frags2 = list(other.scene)
        assert np.array_equal(ct2.data, ct.data) and ct2.geometry == g
        assert np.array_equal(seg2.data, labels.data) and seg2.opacity == 0.4
        assert np.allclose(frags2["a"].pose, pose, atol=1e-12) and np.allclose(frags2["b"].pose, np.eye(4))
    finally:
        other.close()


CRASHING_SESSION = textwrap.dedent("""
    import os, sys, time
    os.environ["QT_API"] = "pyside6"
    import numpy as np

    def main():
        from qtpy.QtWidgets import QApplication
        app = QApplication([])
        from kintsugi.core import Geometry, LabelMap
        from kintsugi.gui.main_window import MainWindow
        w = MainWindow(interactive=False)
        w.show()
        labels = LabelMap(name="seg", data=np.zeros((10, 12, 14), np.uint8), geometry=Geometry((0.5, 0.5, 1.0)))
        w.scene.add(labels)
        labels.data[2:5, 3:7, 4:9] = 3          # the user's edit ...
        labels.changed.emit("data")             # ... announced, as the paint tools do
        w.autosaver.save_now(wait=True)
        print("saved", flush=True)
        while True:
            app.processEvents()
            time.sleep(0.05)

    if __name__ == "__main__":
        main()
""")


def test_sigkill_after_an_edit_then_restart_offers_and_restores_it(tmp_path, state_dir, qtbot):
    script = tmp_path / "session.py"
    script.write_text(CRASHING_SESSION)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=dict(os.environ))
    try:
        line = proc.stdout.readline()
        assert line.strip() == "saved", proc.stderr.read()[-2000:] if proc.poll() is not None else line
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    from kintsugi.gui.main_window import MainWindow

    w = MainWindow(interactive=False)
    qtbot.addWidget(w)
    try:
        assert w.recovery is not None and w.restore_action.isEnabled()
        assert "seg" in w.recovery.describe()
        (seg,) = w.restore_autosave()
        expected = np.zeros((10, 12, 14), np.uint8)
        expected[2:5, 3:7, 4:9] = 3
        assert np.array_equal(seg.data, expected)
        assert w.recovery is None and not w.restore_action.isEnabled()
    finally:
        w.close()
    from kintsugi.workspace import find_recoverable

    assert find_recoverable() is None  # restored and discarded; a clean exit leaves nothing behind

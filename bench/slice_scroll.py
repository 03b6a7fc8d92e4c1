"""Slice scrolling in the linked slice grid: how many axial slices per second a 512x512x300 int16 CT
goes through when each step is drawn (the product acceptance asks for at least 30).

Each step is what the slider does -- ``dims.set_current_step`` on the axial pane -- followed by
processing Qt events, which paints every canvas with a pending update (the other two panes repaint
when their crosshair line moves), and a check that the axial canvas did draw (painted now if not,
then ``glFinish``). The number includes napari's slicing, the texture upload, the (software, under
Xvfb) OpenGL draws and Qt's composition of the window. Runs the grid in a subprocess; without a display it
starts one with ``xvfb-run``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from bench.display import with_display
from bench.results_table import Row, machine, today

REPO = Path(__file__).resolve().parents[1]
SHAPE = (300, 512, 512)
STEPS = 100
SCRIPT = textwrap.dedent('''
    import json, os, sys, time
    os.environ.setdefault("QT_API", "pyside6")
    import numpy as np

    def volume(shape):
        rng = np.random.default_rng(0)
        z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
        body = ((x - 256) / 200.0) ** 2 + ((y - 256) / 150.0) ** 2 < 1
        vol = np.where(np.broadcast_to(body, shape), 40, -1000).astype(np.int16)
        spine = ((x - 256) / 25.0) ** 2 + ((y - 330) / 20.0) ** 2 < 1
        vol[np.broadcast_to(spine, shape)] = 400
        vol += rng.normal(0, 15, shape[1:]).astype(np.int16)  # per-slice noise pattern, cheap to make
        return vol, np.broadcast_to(spine, shape).astype(np.uint8) * 20

    def step(app, axial, k, paints):
        """One slider step: move the axial slice, let Qt paint what is pending, and make sure the axial
        canvas really drew the new slice (paint it now if Qt did not, then wait for GL to finish)."""
        before = paints["axial"]
        axial.model.dims.set_current_step(0, k)
        app.processEvents()
        canvas = axial.qt_viewer.canvas
        if paints["axial"] == before:
            canvas.native.repaint()
        canvas._scene_canvas.context.finish()

    def main():
        shape, steps = tuple(json.loads(sys.argv[1])), int(sys.argv[2])
        with_labels, view = sys.argv[3] == "1", sys.argv[4]
        from qtpy.QtWidgets import QApplication
        app = QApplication([])
        from kintsugi.core import Geometry, LabelMap, Volume
        from kintsugi.gui.viewers.slice_grid import SliceGrid
        from kintsugi.gui.viewers.slices import SliceView
        data, labels = volume(shape)
        g = Geometry((0.7, 0.7, 1.0), (-180.0, -180.0, -300.0))
        widget = SliceGrid() if view == "grid" else SliceView()
        widget.resize(1400, 860)  # the main window's default size
        widget.show()
        widget.add(Volume(name="ct", data=data, geometry=g, modality="CT", unit="HU"))
        if with_labels:
            widget.add(LabelMap(name="seg", data=labels, geometry=g))
        for _ in range(20):
            app.processEvents(); time.sleep(0.01)
        panes = dict(widget.panes) if view == "grid" else {"axial": widget}
        paints = {name: 0 for name in panes}
        for name, pane in panes.items():
            pane.qt_viewer.canvas._scene_canvas.events.draw.connect(
                lambda _e, n=name: paints.__setitem__(n, paints[n] + 1))
        axial = panes["axial"]
        start = max(0, axial.model.dims.current_step[0] - steps // 2)
        for k in range(start, start + 5):  # warm up: shaders, first textures
            step(app, axial, k, paints)
        seen = []
        if view == "grid":
            widget.crosshair_changed.connect(seen.append)
        for name in paints:
            paints[name] = 0
        t0 = time.perf_counter()
        for k in range(start, start + steps):
            step(app, axial, k, paints)
        app.processEvents()
        dt = time.perf_counter() - t0
        assert view != "grid" or len(seen) >= steps - 1, f"crosshair followed only {len(seen)} of {steps} steps"
        print(json.dumps({"slices_per_s": steps / dt, "ms_per_slice": 1000 * dt / steps, "steps": steps,
                          "paints": paints}))
        widget.close_viewer()

    if __name__ == "__main__":
        main()
''')


def run(workdir: Path, repeats: int = 3) -> list[Row]:
    workdir.mkdir(parents=True, exist_ok=True)
    script = workdir / "slice_scroll.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, QT_API="pyside6")
    rows = []
    where, when = machine(), today()
    label = "Slice scroll: axial slices through 512x512x300 int16, drawn each step (Xvfb, software GL, 1400x860)"
    cases = [("grid", False, "slice grid, CT"), ("grid", True, "slice grid, CT + label map"),
             ("single", True, "single SliceView (reference), CT + label map")]
    for view, with_labels, what in cases:
        cmd = [sys.executable, str(script), json.dumps(SHAPE), str(STEPS), "1" if with_labels else "0", view]
        cmd = with_display(cmd)
        rates = []
        for _ in range(repeats):
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(REPO), timeout=600)
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("{")), None)
            if line is None:
                raise RuntimeError(f"slice scroll run failed: {proc.stderr[-800:]}")
            data = json.loads(line)
            rates.append(data["slices_per_s"])
            print(f"  {what}: {data['slices_per_s']:.1f} slices/s, canvas paints {data['paints']}", flush=True)
        rates.sort()
        median = rates[len(rates) // 2]
        print(f"slice scroll ({what}): median {median:.1f} slices/s, runs {', '.join(f'{r:.1f}' for r in rates)}")
        goal = " (goal >= 30)" if view == "grid" else ""
        rows.append(Row(label, f"slices per second, {what}, median of {repeats} runs of {STEPS}{goal}",
                        f"{median:.1f}", "slices/s", where, when))
    return rows

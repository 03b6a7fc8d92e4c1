"""Cold start to a responsive main window, against napari's own cold start, in the same run.

Each measurement is a fresh Python process: time from process creation (psutil) until the window is
shown and the event loop has processed its first events. Median of ``repeats``; needs a display
(Xvfb is started with xvfb-run when there is none).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

from bench.display import with_display
from bench.results_table import Row, machine, today

KINTSUGI = textwrap.dedent('''
    import json, os, time, psutil
    os.environ["QT_API"] = "pyside6"
    def main():
        from qtpy.QtWidgets import QApplication
        app = QApplication([])
        from kintsugi.gui.main_window import MainWindow
        w = MainWindow(interactive=False)
        w.show()
        app.processEvents()
        print(json.dumps({"s": time.time() - psutil.Process().create_time()}), flush=True)
        w.close()
    if __name__ == "__main__":
        main()
''')
NAPARI = textwrap.dedent('''
    import json, os, time, psutil
    os.environ["QT_API"] = "pyside6"
    def main():
        import napari
        v = napari.Viewer(show=True)
        from qtpy.QtWidgets import QApplication
        QApplication.instance().processEvents()
        print(json.dumps({"s": time.time() - psutil.Process().create_time()}), flush=True)
        v.close()
    if __name__ == "__main__":
        main()
''')


def _measure(script: Path, env: dict) -> float:
    cmd = [sys.executable, str(script)]
    cmd = with_display(cmd)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("{")), None)
    if line is None:
        raise RuntimeError(f"{script.name} failed: {proc.stderr[-800:]}")
    return float(json.loads(line)["s"])


def run(workdir: Path, repeats: int = 5) -> list[Row]:
    workdir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, KINTSUGI_STATE_DIR=str(workdir / "state"), KINTSUGI_CONFIG_DIR=str(workdir / "config"))
    rows, where, when = [], machine(), today()
    for name, code in (("Kintsugi main window", KINTSUGI), ("napari Viewer (reference)", NAPARI)):
        script = workdir / f"coldstart_{name.split()[0].lower()}.py"  # not kintsugi.py: it would shadow the package
        script.write_text(code)
        _measure(script, env)  # warm the OS file cache once, as a user's second start would be
        times = [_measure(script, env) for _ in range(repeats)]
        print(f"cold start {name:<28} median {statistics.median(times):.2f} s  {[round(t, 2) for t in times]}")
        rows.append(Row("cold start to a shown window", f"{name}, median of {repeats} (goal ≤ 2 s)",
                        f"{statistics.median(times):.2f}", "s", where, when))
    return rows

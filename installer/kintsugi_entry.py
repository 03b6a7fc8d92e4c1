"""Entry script of the desktop bundle (PyInstaller runs this instead of the ``kintsugi`` console script).

What a frozen app needs that ``kintsugi.cli.main:main`` does not do itself:

- ``multiprocessing.freeze_support()`` first thing: task workers are spawned, and in a bundle a spawned
  child is this same executable started with ``--multiprocessing-fork`` (or ``-c ...resource_tracker``);
  freeze_support turns such a start into the child's loop and never returns.
- ``QT_API=pyside6`` so qtpy, napari, magicgui and pyvistaqt all pick the bundled binding.
- ``kintsugi --bundle-check``: a self-test of the bundle (plugins found through the copied entry points,
  every task importable, weights present and matching their checksums, one task run in a spawned worker).
  installer/smoke_test.sh runs it; it is hidden from ``--help`` and does nothing in a source install.

Built-in plugins are found through the ``kintsugi.plugins`` entry points of the bundled
``kintsugi_studio-*.dist-info`` (the spec copies it); nothing here registers them by hand, so a bundle
behaves exactly like a pip install, plus the plugin folders (``KINTSUGI_PLUGIN_PATH``, the user folder).
"""

from __future__ import annotations

import multiprocessing
import os
import sys


def bundle_check() -> int:
    """Check the bundle from inside; print one line per check; non-zero exit if any failed."""
    import time

    import numpy as np

    import kintsugi
    from kintsugi.core import Geometry, Volume
    from kintsugi.plugins.execute import PreparedTask
    from kintsugi.plugins.registry import discover
    from kintsugi.runtime import JobManager

    failures: list[str] = []

    def check(name: str, ok: bool, detail: str = "") -> None:
        print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True)
        if not ok:
            failures.append(name)

    check("frozen", bool(getattr(sys, "frozen", False)), f"version {kintsugi.__version__}")
    reg = discover(check=True)
    check("plugins", bool(reg.plugins), ", ".join(sorted(reg.plugins)) or "none found")
    for f in reg.failed:
        check(f"plugin {f.source}", False, f.reason)
    for info in sorted(reg.tasks.values(), key=lambda t: t.id):
        try:
            w = info.task_weights(None)
            if w.files:
                w.checksums()
            check(f"task {info.id}", True, f"weights {len(w.files)}" if w.files else "")
        except Exception as e:  # noqa: BLE001 - report and go on
            check(f"task {info.id}", False, f"{type(e).__name__}: {e}")
    for mod in ("PySide6.QtWidgets", "vtkmodules.vtkRenderingOpenGL2", "pyvistaqt", "napari", "vispy.app",
                "torch", "SimpleITK", "openjpeg"):
        try:
            __import__(mod)
            check(f"import {mod}", True)
        except Exception as e:  # noqa: BLE001
            check(f"import {mod}", False, f"{type(e).__name__}: {e}")
    if "volume.threshold" in reg.tasks:
        data = np.full((16, 16, 16), -1000, np.int16)
        data[4:12, 4:12, 4:12] = 500
        vol = Volume(name="cube", data=data, geometry=Geometry((1.0, 1.0, 1.0)))
        t0 = time.perf_counter()
        try:
            prepared = PreparedTask(reg.task("volume.threshold"), {"volume": vol, "level": 300.0})
            with JobManager() as jobs:
                job = jobs.run(prepared.job_spec(), timeout=120)
            state = getattr(job.state, "name", str(job.state))
            ok = state.lower() == "done"
            check("worker process (spawn) runs volume.threshold", ok,
                  f"{state} in {time.perf_counter() - t0:.1f} s" + ("" if ok else f": {job.error}"))
        except Exception as e:  # noqa: BLE001
            check("worker process (spawn) runs volume.threshold", False, f"{type(e).__name__}: {e}")
    print(f"bundle check: {'FAILED: ' + ', '.join(failures) if failures else 'all ok'}", flush=True)
    return 1 if failures else 0


def main() -> int:
    multiprocessing.freeze_support()
    os.environ.setdefault("QT_API", "pyside6")
    if sys.argv[1:2] == ["--bundle-check"]:
        return bundle_check()
    from kintsugi.cli.main import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())

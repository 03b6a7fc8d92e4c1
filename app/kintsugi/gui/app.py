"""Start the Qt application: ``kintsugi gui``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_API", "pyside6")

# Which files of each sample the GUI opens (the rest, e.g. truth JSON, stays on disk for the tasks).
_SAMPLE_FILES = {
    "fragments": ["."],
    "spine": ["ct.nii.gz", "vertebrae.nii.gz"],
    "crack": ["crack_00_lowlight.png", "crack_00.png", "crack_00_mask.png"],
    "dental": ["cbct.nii.gz", "teeth_labels.nii.gz"],
}


def cache_dir() -> Path:
    root = os.environ.get("KINTSUGI_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "kintsugi"
    )
    return Path(root)


def sample_paths(name: str, seed: int = 0) -> list[Path]:
    """Make the sample once into the cache (samples are deterministic by seed) and return what to open."""
    from kintsugi.samples import make_sample

    folder = cache_dir() / "samples" / f"seed{seed}" / name
    done = folder / ".complete"
    if not done.exists():
        make_sample(name, folder, seed=seed)
        done.write_text("ok\n")
    return [folder / f if f != "." else folder for f in _SAMPLE_FILES.get(name, ["."])]


def run_gui(paths: list[str] | None = None, samples: list[str] | None = None, screenshot: str | None = None,
            layout: str | None = None) -> int:
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    from kintsugi.gui.main_window import MainWindow
    from kintsugi.samples import sample_names

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Kintsugi")
    window = MainWindow(interactive=screenshot is None)
    names: list[str] = []
    for s in samples or []:
        names.extend(sample_names() if s == "all" else [s])
    for name in names:
        if name not in sample_names():
            window.report_error(f"unknown sample {name!r}; choose one of {', '.join(sample_names())}")
            continue
        window.open_sample(name)
    for p in paths or []:
        window.open_path(p)
    if layout:
        try:
            window.set_layout(layout)
        except ValueError as e:
            window.report_error(str(e))
    window.show()
    if window.recovery is not None and screenshot is None:
        QTimer.singleShot(300, window.offer_recovery)
    if screenshot:
        def shoot() -> None:
            window.save_screenshot(screenshot)
            print(f"screenshot saved to {screenshot}")
            window.close()
            app.quit()

        QTimer.singleShot(1500, shoot)
    return app.exec()

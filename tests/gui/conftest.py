"""The main window, shown under Xvfb, for GUI tests (test files with special needs define their own)."""

import pytest


@pytest.fixture
def window(qtbot):
    from kintsugi.gui.main_window import MainWindow

    w = MainWindow(interactive=False)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    yield w
    if getattr(w, "_batch_dialog", None) is not None:
        w._batch_dialog.cancel_all()  # a batch still running must not outlive its window
    w.close()

"""Run a GUI benchmark script in a subprocess, on a virtual screen when there is no display."""

from __future__ import annotations

import os
import shutil


def with_display(cmd: list[str]) -> list[str]:
    """``cmd`` as is where a display exists; otherwise wrapped in ``xvfb-run`` (true-colour screen)."""
    if not os.environ.get("DISPLAY") and shutil.which("xvfb-run"):
        return ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", *cmd]
    return cmd

"""Only kintsugi.gui may import Qt: the core must run headless (CLI, batch, workers)."""

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
QT_MODULES = ("PySide6", "PySide2", "PyQt5", "PyQt6", "qtpy", "pyvistaqt", "superqt", "napari", "vispy",
              "magicgui.widgets")


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _non_gui_sources() -> list[Path]:
    roots = [REPO / "app" / "kintsugi", REPO / "plugins"]
    out = []
    for root in roots:
        for p in root.rglob("*.py"):
            rel = p.relative_to(root).parts
            if "gui" in rel or p.name in ("widgets.py",) or "widgets" in rel:
                continue
            out.append(p)
    return out


def test_no_module_outside_gui_imports_qt():
    offenders = []
    for path in _non_gui_sources():
        for name in _imports(path):
            if name.split(".")[0] in {m.split(".")[0] for m in QT_MODULES if "." not in m} or name in QT_MODULES:
                offenders.append(f"{path.relative_to(REPO)} imports {name}")
    assert not offenders, "\n".join(offenders)


def test_the_scan_finds_an_offender(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from qtpy.QtWidgets import QWidget\nimport PySide6\n")
    assert _imports(bad) == ["qtpy.QtWidgets", "PySide6"]


def test_importing_every_headless_module_loads_no_qt():
    modules = []
    for path in _non_gui_sources():
        if path.is_relative_to(REPO / "app"):
            rel = path.relative_to(REPO / "app").with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            if parts[-1] != "__main__":
                modules.append(".".join(parts))
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "qt = sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6','PyQt5','PyQt6','qtpy','pyvistaqt'))\n"
        "print(len(sys.modules)); assert not qt, qt\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]

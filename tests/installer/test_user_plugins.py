"""A desktop bundle loads extra plugins from folders (the user plugins folder and KINTSUGI_PLUGIN_PATH).

Acceptance of issue 9: a bad or missing plugin in the plugins folder is reported and skipped, and the
app still starts (the command line and the main window), with the good plugins next to it working.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

GOOD = ("""
    name = "{prefix}-good"
    [[tasks]]
    id = "{prefix}.double"
    function = "{prefix}_good.tasks:double"
    """, """
    from kintsugi.core import Volume
    def double(volume: Volume, factor: float = 2.0) -> Volume:
        return Volume(name="doubled", data=volume.data * factor, geometry=volume.geometry)
    """)

# package name -> (manifest or None, tasks.py or None): the ways a user plugin is commonly broken
BROKEN = {
    "no_manifest": (None, ""),
    "bad_toml": ("name = \n", ""),
    "import_error": ('name = "{prefix}-import-error"\n[[tasks]]\nid = "{prefix}.import_error"\n'
                     'function = "{prefix}_import_error.tasks:f"\n', "import module_that_is_not_installed\n"),
    "missing_module": ('name = "{prefix}-missing-module"\n[[tasks]]\nid = "{prefix}.missing_module"\n'
                       'function = "{prefix}_missing_module.gone:f"\n', None),
    "syntax_error": ('name = "{prefix}-syntax-error"\n[[tasks]]\nid = "{prefix}.syntax_error"\n'
                     'function = "{prefix}_syntax_error.tasks:f"\n', "def f(:\n"),
    "no_tasks": ('name = "{prefix}-no-tasks"\n', ""),
    "same_name_as_builtin": ('name = "kintsugi-tools"\n[[tasks]]\nid = "{prefix}.x"\n'
                             'function = "{prefix}_same_name_as_builtin.tasks:f"\n',
                             "def f(x: int) -> int:\n    return x\n"),
}
# Plugins that used to end discovery itself (a non-UTF-8 manifest, SystemExit on import, a mistyped folder).
DISCOVERY_KILLERS = {
    "not_utf8": (b'name = "\xff\xfe"\n', ""),
    "exits_on_import": ('name = "{prefix}-exits"\n[[tasks]]\nid = "{prefix}.exits"\n'
                        'function = "{prefix}_exits_on_import.tasks:f"\n', "raise SystemExit(3)\n"),
}


def _package(folder: Path, name: str, manifest: str | bytes | None, code: str | None, prefix: str) -> None:
    pkg = folder / f"{prefix}_{name}"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    if isinstance(manifest, bytes):
        (pkg / "kintsugi.toml").write_bytes(manifest)
    elif manifest is not None:
        (pkg / "kintsugi.toml").write_text(textwrap.dedent(manifest.format(prefix=prefix)))
    if code is not None:
        (pkg / "tasks.py").write_text(textwrap.dedent(code))


def _user_folder(tmp_path: Path, prefix: str, cases: dict) -> Path:
    """$XDG_DATA_HOME/kintsugi/plugins with one good plugin and the given broken ones."""
    folder = tmp_path / "data" / "kintsugi" / "plugins"
    _package(folder, "good", GOOD[0], GOOD[1], prefix)
    for name, (manifest, code) in cases.items():
        _package(folder, name, manifest, code, prefix)
    return folder


def _cli(*args: str, data_home: Path, extra: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, XDG_DATA_HOME=str(data_home), **(extra or {}))
    env.pop("KINTSUGI_PLUGIN_PATH", None)
    env.update(extra or {})
    return subprocess.run([sys.executable, "-m", "kintsugi.cli.main", *args], capture_output=True, text=True,
                          timeout=300, env=env)


def _failed_names(listing: dict, prefix: str) -> set[str]:
    names = set()
    for f in listing["failed"]:
        p = Path(f["source"])
        names.add((p.parent if p.name == "kintsugi.toml" else p).name.removeprefix(prefix + "_"))
    return names


def test_broken_user_plugins_are_reported_and_the_command_line_still_works(tmp_path):
    prefix = "ucli"
    _user_folder(tmp_path, prefix, BROKEN)
    proc = _cli("plugins", "list", "--json", data_home=tmp_path / "data")
    assert proc.returncode == 0, proc.stderr
    listing = json.loads(proc.stdout)
    tasks = {t["id"] for m in listing["plugins"] for t in m["tasks"]}
    assert {"ucli.double", "volume.threshold", "labels.meshes"} <= tasks  # the good one and the built-ins
    assert _failed_names(listing, prefix) == set(BROKEN)
    assert not any(t.startswith("ucli.") and t != "ucli.double" for t in tasks)
    text = _cli("plugins", data_home=tmp_path / "data")
    assert text.returncode == 0 and "failed to load:" in text.stdout and "module_that_is_not_installed" in text.stdout
    # the good user plugin runs next to the broken ones
    import numpy as np

    from kintsugi.core import Geometry, Volume
    from kintsugi.io import write_volume

    write_volume(Volume(data=np.ones((3, 3, 3), np.float32), geometry=Geometry((1, 1, 1))), tmp_path / "v.nii.gz")
    run = _cli("run", "ucli.double", "--volume", str(tmp_path / "v.nii.gz"), "--factor", "3", "--quiet",
               "--output", str(tmp_path / "out"), data_home=tmp_path / "data")
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "out" / "provenance.json").is_file()


@pytest.mark.gui
def test_the_window_starts_with_broken_user_plugins_and_lists_them(tmp_path, monkeypatch, qtbot):
    from qtpy.QtWidgets import QLabel

    from kintsugi.gui.main_window import MainWindow
    from kintsugi.plugins import get_registry

    prefix = "ugui"
    _user_folder(tmp_path, prefix, BROKEN)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv("KINTSUGI_PLUGIN_PATH", raising=False)
    try:
        reg = get_registry(refresh=True)
        assert "ugui.double" in reg.tasks and len(reg.failed) == len(BROKEN)
        w = MainWindow(interactive=False)
        qtbot.addWidget(w)
        w.show()
        qtbot.waitExposed(w)
        labels = [lb.text() for lb in w.tasks_panel.findChildren(QLabel)]
        report = next(t for t in labels if t.startswith("Plugins that failed to load"))
        assert "module_that_is_not_installed" in report and "invalid TOML" in report
        w.tasks_panel.select_task("ugui.double")
        w.close()
    finally:
        monkeypatch.undo()
        get_registry(refresh=True)


def test_plugins_that_kill_discovery_today_are_reported_too(tmp_path):
    prefix = "unot"
    _user_folder(tmp_path, prefix, DISCOVERY_KILLERS)
    missing = tmp_path / "no-such-folder"
    proc = _cli("plugins", "list", "--json", data_home=tmp_path / "data", extra={"KINTSUGI_PLUGIN_PATH": str(missing)})
    assert proc.returncode == 0, proc.stderr
    listing = json.loads(proc.stdout)
    assert "unot.double" in {t["id"] for m in listing["plugins"] for t in m["tasks"]}
    assert _failed_names(listing, prefix) >= set(DISCOVERY_KILLERS)
    assert any(str(missing) in f["source"] for f in listing["failed"])

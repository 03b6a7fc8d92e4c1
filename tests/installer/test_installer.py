"""Fast checks of the desktop-bundle recipe (the bundle itself is built and tested by installer/smoke_test.sh).

The spec collects built-in plugins generically (installer/bundle_files.py); these tests make sure that
every plugin package in plugins/ is picked up with its manifest and every weights file its manifest
names, that the installed metadata (which the bundle copies) registers it, and that the Linux desktop
entry is valid.
"""

from __future__ import annotations

import configparser
import importlib.util
import shutil
import subprocess
import sys
from importlib.metadata import distribution
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]
INSTALLER = REPO / "installer"


def _bundle_files():
    spec = importlib.util.spec_from_file_location("kintsugi_bundle_files", INSTALLER / "bundle_files.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_builtin_plugin_is_bundled_with_its_manifest_and_weights():
    bf = _bundle_files()
    packages = bf.plugin_packages(REPO)
    on_disk = sorted(p.name for p in (REPO / "plugins").glob("kintsugi_*") if (p / "__init__.py").is_file())
    assert packages == on_disk, "a plugins/kintsugi_* package without kintsugi.toml would be left out"
    assert "kintsugi_tools" in packages
    for pkg in packages:
        bundled = {Path(src).resolve() for src, _ in bf.plugin_datas(pkg, REPO)}
        manifest = REPO / "plugins" / pkg / "kintsugi.toml"
        assert manifest.resolve() in bundled
        for name, w in tomllib.loads(manifest.read_text(encoding="utf-8")).get("weights", {}).items():
            path = (manifest.parent / w["file"]).resolve()
            if path.is_file():  # a missing file is the plugin's own failure (its checksum check reports it)
                assert path in bundled, f"{pkg}: weights '{name}' ({w['file']}) would not be bundled"
        for src, dest in bf.plugin_datas(pkg, REPO):  # same relative place in the bundle as in the package
            rel = Path(src).resolve().parent.relative_to((REPO / "plugins").resolve())
            assert Path(dest) == rel
            assert not src.endswith((".py", ".pyc"))


def test_every_builtin_plugin_has_an_entry_point_in_the_metadata_the_bundle_copies():
    eps = {ep.value.split(":")[0] for ep in distribution("kintsugi-studio").entry_points
           if ep.group == "kintsugi.plugins"}
    missing = sorted(set(_bundle_files().plugin_packages(REPO)) - eps)
    assert not missing, f"no kintsugi.plugins entry point for {missing} (pyproject.toml, then reinstall)"


def test_test_packages_stay_out_of_the_bundle():
    no_tests = _bundle_files().no_tests
    assert no_tests("napari.layers.image") and no_tests("kintsugi_tools.tasks")
    assert not no_tests("napari._tests.test_viewer") and not no_tests("napari.utils._testsupport")


def test_desktop_entry_is_valid():
    desktop = INSTALLER / "kintsugi.desktop"
    if shutil.which("desktop-file-validate"):
        proc = subprocess.run(["desktop-file-validate", str(desktop)], capture_output=True, text=True)
        assert proc.returncode == 0 and "error" not in proc.stdout, proc.stdout
    cp = configparser.ConfigParser(interpolation=None)
    cp.optionxform = str
    cp.read(desktop, encoding="utf-8")
    entry = cp["Desktop Entry"]
    assert entry["Type"] == "Application" and entry["Name"] == "Kintsugi"
    assert entry["Exec"].split()[0] == "kintsugi" and entry["Icon"] == "kintsugi"
    assert entry["Categories"].endswith(";")
    for icon in ("kintsugi.svg", "kintsugi.png"):
        assert (INSTALLER / icon).stat().st_size > 200


def test_entry_script_runs_the_cli():
    proc = subprocess.run([sys.executable, str(INSTALLER / "kintsugi_entry.py"), "--version"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("kintsugi ")


@pytest.mark.parametrize("script", ["build.sh", "smoke_test.sh", "install-desktop.sh"])
def test_shell_scripts_parse(script):
    proc = subprocess.run(["bash", "-n", str(INSTALLER / script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr

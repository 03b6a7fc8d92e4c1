"""The kintsugi command: info, sample, version, and error behaviour."""

import json
import subprocess
import sys

import numpy as np
import pytest

from kintsugi.cli.main import main
from kintsugi.core import Geometry, Volume
from kintsugi.io import write_volume


def run_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kintsugi.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_version():
    proc = run_cli("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("kintsugi ")


def test_info_reports_geometry(tmp_path, capsys):
    write_volume(Volume(data=np.zeros((3, 4, 5), np.int16), geometry=Geometry((0.5, 0.6, 2.0), (1, 2, 3))),
                 tmp_path / "v.nrrd")
    assert main(["info", str(tmp_path / "v.nrrd")]) == 0
    out = capsys.readouterr().out
    assert "5 x 4 x 3" in out and "0.5 x 0.6 x 2 mm" in out and "LPS" in out
    assert main(["info", "--json", str(tmp_path / "v.nrrd")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["layers"][0]["type"] == "Volume"


def test_info_on_a_document_is_described_not_failed(tmp_path, capsys):
    (tmp_path / "README.md").write_text("# notes\n")
    assert main(["info", str(tmp_path / "README.md")]) == 0
    assert "text document" in capsys.readouterr().out


def test_info_with_one_bad_path_reports_it_and_continues(tmp_path, capsys):
    write_volume(Volume(data=np.zeros((2, 2, 2), np.int16)), tmp_path / "ok.nii.gz")
    assert main(["info", str(tmp_path / "missing.nii"), str(tmp_path / "ok.nii.gz")]) == 1
    captured = capsys.readouterr()
    assert "missing.nii: no such file" in captured.err and "ok" in captured.out


def test_sample_list_names_all_four():
    proc = run_cli("sample", "list")
    assert proc.returncode == 0
    names = [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]
    assert names == ["fragments", "spine", "crack", "dental"]
    assert "unavailable" not in proc.stdout


def test_sample_make_unknown_name_is_a_one_line_error(tmp_path):
    proc = run_cli("sample", "make", "pottery", str(tmp_path))
    assert proc.returncode == 1 and "unknown sample 'pottery'" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("name, expected", [
    ("fragments", ["gt.json", "piece_00.ply"]),
    ("spine", ["ct.nii.gz", "vertebrae.nii.gz", "truth.json"]),
    ("crack", ["crack_00.png", "crack_00_lowlight.png", "crack_00_mask.png", "truth.json"]),
    ("dental", ["cbct.nii.gz", "teeth_labels.nii.gz", "teeth.json"]),
])
def test_sample_make_writes_files_that_open(tmp_path, name, expected):
    proc = run_cli("sample", "make", name, str(tmp_path / name), "--seed", "3")
    assert proc.returncode == 0, proc.stderr
    for f in expected:
        assert (tmp_path / name / f).is_file(), f
    info = run_cli("info", str(tmp_path / name))
    assert info.returncode == 0, info.stderr


def test_sample_listing_matches_the_modules_without_importing_them():
    import importlib
    import sys

    from kintsugi.samples import list_samples

    for name in ("fragments", "spine", "crack", "dental"):
        sys.modules.pop(f"kintsugi.samples.{name}", None)
    infos = list_samples()
    assert not any(f"kintsugi.samples.{i.name}" in sys.modules for i in infos)
    for info in infos:
        mod = importlib.import_module(f"kintsugi.samples.{info.name}")
        assert (info.name, info.title, info.description) == (mod.NAME, mod.TITLE, mod.DESCRIPTION)

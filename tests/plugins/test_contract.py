"""The plugin contract: manifests, signatures, discovery, failures, running, provenance, weights."""

import enum
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import pytest

import kintsugi
from kintsugi.core import Geometry, Image2D, LabelMap, Volume
from kintsugi.plugins import (
    Cancelled,
    ManifestError,
    Param,
    Progress,
    TaskInputError,
    discover,
    get_registry,
)
from kintsugi.plugins.manifest import parse_manifest
from kintsugi.plugins.params import SignatureError, read_signature


class Mode(enum.Enum):
    FAST = "fast"
    GOOD = "good"


def _demo(image: Image2D, masks: list[Image2D] = (),
          gain: Annotated[float, Param(min=0, max=2, help="how much")] = 1.0,
          count: int = 3, mode: Literal["a", "b"] = "a", quality: Mode = Mode.FAST, *, progress=None):
    return None


def test_signature_describes_inputs_params_and_injected_names():
    sig = read_signature(_demo)
    assert [(i.name, i.type_name, i.multiple, i.optional) for i in sig.inputs] == [
        ("image", "Image2D", False, False), ("masks", "Image2D", True, True)]
    gain = sig.param("gain")
    assert (gain.min, gain.max, gain.help, gain.default) == (0, 2, "how much", 1.0)
    assert sig.param("mode").choices == ("a", "b")
    assert sig.param("quality").convert("good") is Mode.GOOD
    assert sig.injected == ("progress",)
    with pytest.raises(ValueError, match="≤ 2"):
        gain.convert("5")
    with pytest.raises(ValueError, match="an integer"):
        sig.param("count").convert("2.5")
    with pytest.raises(ValueError, match="one of a, b"):
        sig.param("mode").convert("c")


def test_unsupported_parameter_type_is_refused():
    def bad(x: dict = None):  # noqa: RUF013 - deliberately unsupported
        pass

    with pytest.raises(SignatureError, match="unsupported type"):
        read_signature(bad)

    def untyped(x=1):
        pass

    with pytest.raises(SignatureError, match="no type annotation"):
        read_signature(untyped)


def test_manifest_errors_are_specific():
    with pytest.raises(ManifestError, match="missing 'name'"):
        parse_manifest({"tasks": []})
    with pytest.raises(ManifestError, match="declares no tasks"):
        parse_manifest({"name": "x"})
    with pytest.raises(ManifestError, match="weights 'w' that"):
        parse_manifest({"name": "x", "tasks": [{"id": "x.a", "function": "m:f", "weights": ["w"]}]})
    with pytest.raises(ManifestError, match="duplicate task id"):
        parse_manifest({"name": "x", "tasks": [{"id": "x.a", "function": "m:f"}, {"id": "x.a", "function": "m:g"}]})


def test_builtin_plugin_is_found_through_its_entry_point():
    reg = discover()
    assert "kintsugi-tools" in reg.plugins
    assert {"labels.meshes", "volume.threshold"} <= set(reg.tasks)
    assert reg.plugins["kintsugi-tools"].version == kintsugi.__version__


def _write_plugin(root: Path, package: str, manifest: str, code: str) -> Path:
    pkg = root / package
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "kintsugi.toml").write_text(textwrap.dedent(manifest))
    (pkg / "tasks.py").write_text(textwrap.dedent(code))
    return pkg


def test_broken_plugins_are_reported_and_skipped(tmp_path, monkeypatch):
    _write_plugin(tmp_path, "good_plugin", """
        name = "good"
        [[tasks]]
        id = "good.double"
        function = "good_plugin.tasks:double"
        """, """
        from kintsugi.core import Volume
        def double(volume: Volume, factor: float = 2.0) -> Volume:
            return Volume(name="doubled", data=volume.data * factor, geometry=volume.geometry)
        """)
    _write_plugin(tmp_path, "import_error_plugin", """
        name = "broken-import"
        [[tasks]]
        id = "broken.task"
        function = "import_error_plugin.tasks:f"
        """, "import does_not_exist\n")
    _write_plugin(tmp_path, "bad_toml_plugin", "name = \n", "")
    (tmp_path / "no_manifest_plugin").mkdir()
    monkeypatch.setenv("KINTSUGI_PLUGIN_PATH", str(tmp_path))
    reg = discover()
    assert "good.double" in reg.tasks
    reasons = {Path(f.source).parent.name if f.source.endswith(".toml") else Path(f.source).name: f.reason
               for f in reg.failed}
    assert "does_not_exist" in " ".join(reasons.values())
    assert any("invalid TOML" in r for r in reasons.values())
    assert any("no kintsugi.toml" in r for r in reasons.values())
    assert "broken.task" not in reg.tasks
    vol = Volume(data=np.ones((2, 2, 2)))
    from kintsugi.plugins.execute import run_task

    result = run_task(reg.task("good.double"), volume=vol, factor="3")
    assert result.layers[0].data.max() == 3
    assert result.provenance.parameters == {"factor": 3.0}
    assert result.layers[0].provenance.plugin == "good"


def test_run_validates_inputs_and_parameters():
    labels = LabelMap(data=np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(TaskInputError, match="needs input 'labels'"):
        kintsugi.run("labels.meshes")
    with pytest.raises(TaskInputError, match="must be ≤ 4"):
        kintsugi.run("labels.meshes", labels=labels, step=9)
    with pytest.raises(TaskInputError, match="no input or parameter 'colour'"):
        kintsugi.run("labels.meshes", labels=labels, colour="red")
    with pytest.raises(TaskInputError, match="needs a LabelMap"):
        kintsugi.run("labels.meshes", labels=Volume(data=np.zeros((2, 2, 2))))
    with pytest.raises(ValueError, match="has no labels"):
        kintsugi.run("labels.meshes", labels=labels)


def test_progress_spans_and_cancel():
    seen = []
    cancel = {"now": False}
    p = Progress(lambda f, m: seen.append((round(f, 2), m)), lambda: cancel["now"])
    child = p.span(0.5, 1.0)
    child(0.5, "half of the second half")
    assert seen == [(0.75, "half of the second half")]
    cancel["now"] = True
    with pytest.raises(Cancelled):
        child(0.6)


def test_label_meshes_are_closed_outward_and_in_millimetres(tmp_path):
    import trimesh

    data = np.zeros((20, 20, 20), np.uint8)
    data[5:15, 4:12, 6:16] = 3
    data[1:4, 1:4, 1:4] = 7
    for direction in (np.eye(3), np.diag([-1.0, 1, 1])):
        lm = LabelMap(name="seg", data=data, geometry=Geometry((0.5, 0.7, 1.2), (10, 0, 0), direction))
        result = kintsugi.run("labels.meshes", labels=lm, output=tmp_path / "out")
        mesh = next(m for m in result.layers if m.name.endswith("label 3"))
        tm = trimesh.Trimesh(mesh.vertices, mesh.faces)
        expected = 10 * 8 * 10 * 0.5 * 0.7 * 1.2
        assert tm.is_watertight and 0.9 * expected < tm.volume < 1.02 * expected  # positive: normals out
        lo, hi = mesh.bounds()
        assert np.allclose(hi - lo, [10 * 0.5, 8 * 0.7, 10 * 1.2], atol=1e-6)  # surface half a voxel out
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert written == ["labels.csv", "labels.json", "meshes/3.ply", "meshes/7.ply", "provenance.json"]


def run_cli(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "kintsugi.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_cli_run_help_lists_inputs_and_parameters():
    proc = run_cli("run", "volume.threshold", "--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())  # whatever the terminal width wrapped
    assert "--volume PATH" in text and "--level FLOAT" in text and "default: 300.0" in text


def test_cli_run_writes_outputs_and_fails_in_one_line(tmp_path):
    from kintsugi.io import write_volume

    data = np.full((10, 10, 10), -1000, np.int16)
    data[2:8, 2:8, 2:8] = 500
    write_volume(Volume(data=data, geometry=Geometry((2, 2, 2))), tmp_path / "ct.nii.gz")
    ok = run_cli("run", "volume.threshold", "--volume", str(tmp_path / "ct.nii.gz"), "--level", "300",
                 "--output", str(tmp_path / "out"))
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "out" / "mask.nii.gz").exists() and (tmp_path / "out" / "provenance.json").exists()
    assert "voxels: 216" in ok.stdout
    bad = run_cli("run", "volume.threshold", "--volume", str(tmp_path / "ct.nii.gz"), "--largest-only", "maybe",
                  "--output", str(tmp_path / "out2"))
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines() == ["kintsugi: error: parameter 'largest_only' must be true/false, "
                                               "got 'maybe'"]


def test_weights_are_checked_against_the_manifest(tmp_path, monkeypatch):
    import torch
    from safetensors.torch import save_file

    from kintsugi.plugins import WeightsError

    pkg = _write_plugin(tmp_path, "weighted_plugin", """
        name = "weighted"
        [weights.net]
        file = "w.safetensors"
        sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
        [[tasks]]
        id = "weighted.sum"
        function = "weighted_plugin.tasks:total"
        weights = ["net"]
        """, """
        from kintsugi.core import Volume
        def total(volume: Volume, *, weights, device) -> dict:
            t = weights.load("net", device)
            return {"sum": float(t["w"].sum()), "device": device}
        """)
    save_file({"w": torch.ones(3)}, str(pkg / "w.safetensors"))
    save_file({"w": torch.full((3,), 2.0)}, str(tmp_path / "other.safetensors"))
    monkeypatch.setenv("KINTSUGI_PLUGIN_PATH", str(tmp_path))
    reg = get_registry(refresh=True)
    try:
        vol = Volume(data=np.zeros((2, 2, 2)))
        with pytest.raises(WeightsError, match="checksum mismatch"):
            kintsugi.run("weighted.sum", volume=vol)
        result = kintsugi.run("weighted.sum", volume=vol, weights={"net": tmp_path / "other.safetensors"})
        assert result.summary == {"sum": 6.0, "device": "cpu"}
        assert result.provenance.weights_sha256.startswith("net=")
        with pytest.raises(ManifestError, match="no weights named 'head'"):
            kintsugi.run("weighted.sum", volume=vol, weights={"head": tmp_path / "other.safetensors"})
    finally:
        monkeypatch.delenv("KINTSUGI_PLUGIN_PATH")
        get_registry(refresh=True)
    assert "weighted.sum" in reg.tasks and "weighted.sum" not in get_registry().tasks  # gone with its folder


def test_new_plugin_is_installed_listed_and_run_from_the_cli(tmp_path):
    """Acceptance: `kintsugi plugins new` → install → listed → runs from the CLI, its own test passes."""
    import os

    proc = run_cli("plugins", "new", "Bone age", str(tmp_path / "plugin"))
    assert proc.returncode == 0, proc.stderr
    site = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                          "--target", str(site), str(tmp_path / "plugin")], capture_output=True, text=True,
                         timeout=300)
    assert pip.returncode == 0, pip.stderr[-2000:]
    env = dict(os.environ, PYTHONPATH=str(site))
    listed = run_cli("plugins", env=env)
    assert "kintsugi-bone-age" in listed.stdout and "bone_age.smooth" in listed.stdout, listed.stdout
    from kintsugi.io import write_volume

    data = np.zeros((9, 9, 9), np.float32)
    data[4, 4, 4] = 100
    write_volume(Volume(data=data), tmp_path / "v.nii.gz")
    ran = run_cli("run", "bone_age.smooth", "--volume", str(tmp_path / "v.nii.gz"), "--sigma-mm", "1",
                  "--output", str(tmp_path / "out"), env=env)
    assert ran.returncode == 0, ran.stderr
    assert (tmp_path / "out" / "smoothed.nii.gz").exists()
    own = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:xvfb", "-p", "no:cacheprovider",
                          str(tmp_path / "plugin" / "tests")], capture_output=True, text=True, env=env, timeout=300,
                         cwd=tmp_path / "plugin")
    assert own.returncode == 0, own.stdout[-2000:]


def test_every_installed_task_prints_its_help():
    """Help text goes through argparse's %-formatting: a plugin's "7 %" once crashed `--help`."""
    from kintsugi.cli.run_cmd import build_task_parser
    from kintsugi.plugins.registry import get_registry

    tasks = get_registry().tasks
    assert "crack.segment" in tasks
    for task_id, task in tasks.items():
        text = build_task_parser(task).format_help()
        assert task_id in text and "--output DIR" in text
    assert "7 % F1" in " ".join(build_task_parser(tasks["crack.segment"]).format_help().split())

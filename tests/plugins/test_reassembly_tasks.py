"""Reassembly plugin: CLI outputs against the contract, GARF metrics, bad-input messages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kintsugi.core import Fragment, Fragments, Mesh, PointCloud

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = Path("/work/shared/contracts/assembly.schema.json")
KINTSUGI = [sys.executable, "-m", "kintsugi.cli.main"]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*KINTSUGI, *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("reassembly")
    frags, out = base / "frags", base / "out"
    r = _cli("sample", "make", "fragments", str(frags))
    assert r.returncode == 0, r.stderr
    r = _cli("run", "reassembly.assemble", "--fragments", str(frags), "--output", str(out))
    assert r.returncode == 0, r.stderr
    return frags, out


def test_cli_writes_contract_outputs(sample_run):
    frags, out = sample_run
    doc = json.loads((out / "assembly.json").read_text())
    if SCHEMA.exists():
        import jsonschema

        jsonschema.validate(doc, json.loads(SCHEMA.read_text()))
    files = sorted(p.name for p in frags.glob("*.ply"))
    assert sorted(f["file"] for f in doc["fragments"]) == files
    for f in doc["fragments"]:
        m = np.asarray(f["transform"])
        assert m.shape == (4, 4) and np.allclose(m[:3, :3].T @ m[:3, :3], np.eye(3), atol=1e-6)
    assert {"score", "contact", "penetration"} <= set(doc["scores"])
    assert "alternatives" in doc
    assert (out / "assembled.ply").stat().st_size > 1000


def _evaluate(frags: Path, assembly: Path, out: Path) -> dict:
    r = _cli("run", "reassembly.evaluate", "--fragments", str(frags), "--assembly", str(assembly),
             "--gt", str(frags / "gt.json"), "--output", str(out))
    assert r.returncode == 0, r.stderr
    return json.loads((out / "metrics.json").read_text())


def test_sample_reassembles_with_full_part_accuracy(sample_run, tmp_path):
    frags, out = sample_run
    m = _evaluate(frags, out / "assembly.json", tmp_path / "ev")
    assert m["part_accuracy"] == 1.0


def test_evaluate_perfect_and_wrong(sample_run, tmp_path):
    frags, _ = sample_run
    m = _evaluate(frags, frags / "gt.json", tmp_path / "perfect")
    assert m["part_accuracy"] == 1.0
    assert m["rmse_r_deg"] < 1e-6 and m["rmse_t"] < 1e-9 and m["chamfer"] < 1e-12
    gt = json.loads((frags / "gt.json").read_text())
    # turn one non-anchor piece by 90 degrees about z: its errors must show
    victim = next(f for f in gt["fragments"] if f["file"] != m["anchor"])
    rz = np.array([[0, -1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], float)
    victim["transform"] = (np.asarray(victim["transform"]) @ rz).tolist()
    (tmp_path / "wrong.json").write_text(json.dumps(gt))
    w = _evaluate(frags, tmp_path / "wrong.json", tmp_path / "wrong")
    assert w["part_accuracy"] < 1.0 and w["rmse_r_deg"] > 1.0 and w["chamfer"] > 0


def test_two_piece_object_reassembles():
    from kintsugi_reassembly import data
    from kintsugi_reassembly.metrics import evaluate
    from kintsugi_reassembly.pipeline import run
    from kintsugi_reassembly.tasks import sample_points

    obj = data.generate(data.HELDOUT_SEED0 + 4, n_pieces=2, shape="bone", faces=8000)
    sample = data.to_sample(obj)
    result = run(sample.fragments, method="geometric")
    m = evaluate(result.poses, sample.gt, sample_points(sample.fragments), result.anchor)
    assert m["part_accuracy"] == 1.0 and m["rmse_r_deg"] < 5.0


def _box(name: str, size: float = 10.0, shift: float = 0.0) -> Fragment:
    import trimesh

    m = trimesh.creation.box(extents=(size, size, size))
    return Fragment(name, Mesh(name=name, vertices=np.asarray(m.vertices) + shift, faces=np.asarray(m.faces)))


def _assemble(frags: Fragments):
    from kintsugi_reassembly.tasks import assemble

    return assemble(frags)


def test_one_fragment_is_refused():
    with pytest.raises(ValueError, match="at least 2 fragments"):
        _assemble(Fragments(items=[_box("a")]))


def test_degenerate_and_empty_pieces_are_refused():
    flat = Fragment("flat", Mesh(name="flat", vertices=np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0.0]]),
                                 faces=np.array([[0, 1, 2]])))
    with pytest.raises(ValueError, match="degenerate"):
        _assemble(Fragments(items=[_box("a"), flat]))
    few = Fragment("few", PointCloud(name="few", points=np.random.default_rng(0).normal(size=(5, 3))))
    with pytest.raises(ValueError, match="only 5 points"):
        _assemble(Fragments(items=[_box("a"), few]))


def test_pieces_in_different_units_are_refused():
    with pytest.raises(ValueError, match="different units"):
        _assemble(Fragments(items=[_box("mm", 50.0), _box("m", 0.05)]))


def test_cli_one_fragment_message(tmp_path):
    from kintsugi.io import write_mesh

    frag = _box("only")
    write_mesh(frag.geometry, tmp_path / "only.ply")
    r = _cli("run", "reassembly.assemble", "--fragments", str(tmp_path), "--output", str(tmp_path / "out"))
    assert r.returncode != 0
    assert "at least 2 fragments" in (r.stderr + r.stdout)
    assert "Traceback" not in r.stderr

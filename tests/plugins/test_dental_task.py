"""dental.segment_teeth with the shipped weights: the CLI on the dental sample, the output contract, bad inputs."""

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from scipy import ndimage as ndi

import kintsugi
from kintsugi.core import Geometry, Volume
from kintsugi.io import read_volume
from kintsugi.samples import dental, make_sample
from kintsugi_dental.metrics import binary_dice, instance_scores

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT.parent / "shared" / "contracts" / "teeth.schema.json"
if not SCHEMA.is_file():
    SCHEMA = Path("/work/shared/contracts/teeth.schema.json")


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("dental-sample")
    make_sample("dental", out, seed=0)
    return out


@pytest.fixture(scope="module")
def cli_run(sample, tmp_path_factory):
    out = tmp_path_factory.mktemp("dental-out")
    kintsugi_exe = Path(sys.executable).with_name("kintsugi")
    proc = subprocess.run([str(kintsugi_exe), "run", "dental.segment_teeth", "--image", str(sample / "cbct.nii.gz"),
                           "--output", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


def test_cli_finds_the_right_number_of_teeth(sample, cli_run):
    truth = json.loads((sample / "teeth.json").read_text())
    found = json.loads((cli_run / "teeth.json").read_text())
    assert len(found) == len(truth)
    labels = read_volume(cli_run / "teeth_labels.nii.gz")
    cbct = read_volume(sample / "cbct.nii.gz")
    assert labels.data.shape == cbct.data.shape and labels.geometry == cbct.geometry
    assert sorted(np.unique(labels.data).tolist()) == list(range(len(found) + 1))
    true_labels = read_volume(sample / "teeth_labels.nii.gz").data
    assert binary_dice(labels.data, true_labels) > 0.85
    assert instance_scores(labels.data, true_labels)["f1"] > 0.85


def test_output_matches_the_contract_and_the_meshes(cli_run):
    rows = json.loads((cli_run / "teeth.json").read_text())
    jsonschema.validate(rows, json.loads(SCHEMA.read_text()))
    plys = sorted((cli_run / "teeth").glob("*.ply"))
    assert len(plys) == len(rows)
    labels = read_volume(cli_run / "teeth_labels.nii.gz")
    vox = float(np.prod(labels.geometry.spacing))
    for r in rows:  # volumes and centroids agree with the label map (physical LPS mm)
        idx = np.argwhere(labels.data == r["label"])
        assert r["volume_mm3"] == pytest.approx(len(idx) * vox, rel=1e-3)
        c = labels.geometry.index_to_physical(idx.mean(axis=0)[::-1])
        assert np.allclose(c, r["centroid_mm"], atol=0.01)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate([{"label": 0, "volume_mm3": 1.0, "centroid_mm": [0, 0]}], json.loads(SCHEMA.read_text()))


def test_layers_for_the_gui():
    ph = dental.generate(1)
    res = kintsugi.run("dental.segment_teeth", image=ph.cbct, mesh_step=2)
    kinds = [layer.kind for layer in res.layers]
    n = res.summary["teeth"]
    assert kinds.count("labels") == 1 and kinds.count("mesh") == n and kinds.count("table") == 1
    label_map = res.layers[0]
    assert set(label_map.labels) == set(range(1, n + 1))
    assert all(i.name.startswith("tooth") for i in label_map.labels.values())
    assert abs(n - len(ph.truth)) <= 1


def test_non_dental_volume_reports_few_or_no_teeth(tmp_path):
    make_sample("spine", tmp_path, seed=0)
    res = kintsugi.run("dental.segment_teeth", image=str(tmp_path / "ct.nii.gz"), meshes=False)
    assert res.summary["teeth"] <= 2


def test_tiny_volume_gives_a_clear_message(tmp_path):
    with pytest.raises(ValueError, match="too small to hold a tooth"):
        kintsugi.run("dental.segment_teeth", image=Volume(name="tiny", data=np.zeros((4, 4, 4), np.int16)))
    kintsugi_exe = Path(sys.executable).with_name("kintsugi")
    from kintsugi.io import write_volume

    path = write_volume(Volume(name="tiny", data=np.zeros((4, 4, 4), np.int16)), tmp_path / "tiny.nii.gz")
    proc = subprocess.run([str(kintsugi_exe), "run", "dental.segment_teeth", "--image", str(path), "--output",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "too small" in proc.stderr and "Traceback" not in proc.stderr


def test_huge_extent_gives_a_clear_message():
    vol = Volume(name="huge", data=np.zeros((40, 40, 40), np.int16), geometry=Geometry((12.0, 12.0, 12.0)))
    with pytest.raises(ValueError, match="crop it to the jaws"):
        kintsugi.run("dental.segment_teeth", image=vol)


def test_fine_grid_is_downsampled_and_labels_come_back_on_it():
    """A 0.2 mm grid (the phantom upsampled: 13 M voxels) is reduced to 0.6 mm and the labels come back at 0.2 mm."""
    ph = dental.generate(3)
    fine = ndi.zoom(ph.cbct.data, 2, order=1, grid_mode=True, mode="nearest")
    truth = ndi.zoom(ph.labels.data, 2, order=0, grid_mode=True, mode="nearest")
    g = ph.cbct.geometry
    origin = np.asarray(g.origin) - 0.25 * np.asarray(g.spacing)  # voxel centres of a 2x finer grid
    vol = Volume(name="fine", data=fine, geometry=Geometry(tuple(s / 2 for s in g.spacing), tuple(origin)))
    res = kintsugi.run("dental.segment_teeth", image=vol, meshes=False)
    labels = res.layers[0].data
    assert labels.shape == fine.shape
    assert binary_dice(labels, truth) > 0.85
    assert abs(res.summary["teeth"] - len(ph.truth)) <= 1


def test_oddly_oriented_volume_gives_the_same_teeth():
    ph = dental.generate(4)
    g = ph.cbct.geometry
    # store the array as (x, z, y) with flipped axes: index axes point along -y, +z, -x
    data = np.ascontiguousarray(np.transpose(ph.cbct.data, (2, 0, 1))[::-1, :, ::-1])
    truth = np.ascontiguousarray(np.transpose(ph.labels.data, (2, 0, 1))[::-1, :, ::-1])
    nx, ny = data.shape[0], data.shape[2]
    direction = np.array([[0.0, 0, -1], [-1, 0, 0], [0, 1, 0]])  # columns: index x, y, z
    sx, sy, sz = g.spacing
    origin = g.index_to_physical(np.array([nx - 1, ny - 1, 0], float))
    geo = Geometry((sy, sz, sx), tuple(origin), direction)
    # same physical point for a voxel in both grids
    corner = g.index_to_physical(np.array([nx - 1.0, ny - 1, 0]))
    assert np.allclose(geo.index_to_physical(np.array([0.0, 0, 0])), corner)
    res = kintsugi.run("dental.segment_teeth", image=Volume(name="odd", data=data, geometry=geo), meshes=False)
    assert abs(res.summary["teeth"] - len(ph.truth)) <= 1
    assert binary_dice(res.layers[0].data, truth) > 0.85
    rows = res.files["teeth.json"]
    true_c = np.array([t["centroid_mm"] for t in ph.truth])
    for r in rows:  # centroids in physical mm land on true teeth
        assert np.min(np.linalg.norm(true_c - np.array(r["centroid_mm"]), axis=1)) < 2.0

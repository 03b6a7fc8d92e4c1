"""spine.height_loss on generated phantoms: contract, accuracy against the phantom's truth, bad input, CLI."""

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kintsugi.core import Geometry, LabelMap, Mesh, Table, Volume
from kintsugi.plugins import run_task, write_result
from kintsugi.samples.spine import generate

SCHEMA = Path(__file__).resolve().parents[2].parent / "shared" / "contracts" / "vertebrae.schema.json"
SECTIONS = ("anterior", "middle", "posterior")


@pytest.fixture(scope="module")
def phantom():
    return generate(seed=0)


@pytest.fixture(scope="module")
def result(phantom):
    return run_task("spine.height_loss", labels=phantom.labels, image=phantom.ct)


def _records(res):
    return res.files["vertebrae.json"]["vertebrae"]


def test_output_files_follow_the_contract(result, tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    paths = {p.name for p in write_result(result, tmp_path)}
    assert {"vertebrae.json", "height_loss_maps.npz", "report.html", "L1_height_loss.png"} <= paths
    doc = json.loads((tmp_path / "vertebrae.json").read_text())
    if SCHEMA.exists():
        jsonschema.validate(doc, json.loads(SCHEMA.read_text()))
    assert [r["level"] for r in doc["vertebrae"]] == ["T11", "T12", "L1", "L2", "L3", "L4"]
    for r in doc["vertebrae"]:
        assert all(0.0 <= r["height_loss"][k] <= 1.0 for k in (*SECTIONS, "overall"))
        assert (tmp_path / f"{r['level']}_height_loss.png").stat().st_size > 1000
    img = Image.open(tmp_path / "L1_height_loss.png")
    assert img.size[0] > 300 and img.size[1] > 200
    maps = np.load(tmp_path / "height_loss_maps.npz")
    assert maps["L1_height_mm"].shape == maps["L1_reference_mm"].shape == maps["L1_loss"].shape
    html = (tmp_path / "report.html").read_text()
    assert "Genant" in html and html.count("data:image/png;base64") == 6


def test_layers_for_the_gui(result):
    tables = [x for x in result.layers if isinstance(x, Table)]
    assert len(tables) == 1 and tables[0].n_rows == 6
    assert {"level", "genant_grade", "loss_anterior_pct", "x_mm"} <= set(tables[0].columns)
    recs = {r["level"]: r for r in result.files["vertebrae.json"]["vertebrae"]}
    for row in tables[0].records():
        rec = recs[row["level"]]
        assert row["morphology"] == ("borderline " if rec["borderline"] else "") + rec["morphology"]
    meshes = [x for x in result.layers if isinstance(x, Mesh)]
    assert len(meshes) == 6
    for m in meshes:
        assert m.scalars["height_loss"].shape == (m.n_vertices,)
    # A body's surface sits where the phantom put the body (physical mm).
    truth = {t["level"]: t for t in generate(seed=0).truth["vertebrae"]}
    for m in meshes:
        centre = m.vertices.mean(axis=0)
        assert np.linalg.norm(centre - truth[m.metadata["level"]]["centroid_mm"]) < 4.0


def test_matches_the_phantom_truth(phantom, result):
    truth = {t["level"]: t for t in phantom.truth["vertebrae"]}
    errors, grades = [], []
    for r in _records(result):
        t = truth[r["level"]]
        errors += [abs(r["signed_height_loss"][k] - t["height_loss"][k]) for k in SECTIONS]
        grades.append(r["genant_grade"] == t["genant_grade"])
        if t["genant_grade"] > 0:
            assert r["morphology"] == t["morphology"], r["level"]
        if t["deformation"] == "normal":  # healthy bodies: measured heights are the truth's, to a fraction of a mm
            assert all(abs(r["heights_mm"][k] - t["heights_mm"][k]) < 0.8 for k in SECTIONS)
    assert np.mean(errors) < 0.05
    assert np.mean(grades) >= 5 / 6


def test_oblique_anisotropic_grid_gives_the_same_heights(phantom, result):
    ob = generate(seed=0, spacing=(0.7, 0.9, 2.0), oblique_deg=30.0)
    res = run_task("spine.height_loss", labels=ob.labels, meshes=False)
    for a, b in zip(_records(result), _records(res), strict=True):
        assert a["level"] == b["level"]
        for k in SECTIONS:
            assert abs(a["heights_mm"][k] - b["heights_mm"][k]) < 1.0
            assert abs(a["height_loss"][k] - b["height_loss"][k]) < 0.04


def test_totalsegmentator_numbering_and_the_learned_reference(phantom):
    verse_to_ts = {18: 33, 19: 32, 20: 31, 21: 30, 22: 29, 23: 28}
    data = np.zeros_like(phantom.labels.data, dtype=np.uint8)
    for v, t in verse_to_ts.items():
        data[phantom.labels.data == v] = t
    ts = LabelMap(data=data, geometry=phantom.labels.geometry, name="ts")
    res = run_task("spine.height_loss", labels=ts, reference="learned", meshes=False)
    recs = _records(res)
    assert res.files["vertebrae.json"]["numbering"] == "totalseg"
    assert [r["level"] for r in recs] == ["T11", "T12", "L1", "L2", "L3", "L4"]
    assert all(r["reference"]["method"] == "learned" for r in recs)
    truth = {t["level"]: t for t in phantom.truth["vertebrae"]}
    err = [abs(r["signed_height_loss"][k] - truth[r["level"]]["height_loss"][k]) for r in recs for k in SECTIONS]
    assert np.mean(err) < 0.08


@pytest.fixture(scope="module")
def small():
    return generate(seed=5, levels=("L1", "L2", "L3"), fractures={"L3": ("wedge", 0.3)}, spacing=(1.2, 1.2, 1.2))


def test_empty_and_unknown_labels_are_one_line_errors(small):
    empty = LabelMap(data=np.zeros((20, 20, 20), np.uint8), name="empty")
    with pytest.raises(ValueError, match="empty"):
        run_task("spine.height_loss", labels=empty)
    odd = LabelMap(data=(small.labels.data > 0).astype(np.uint8) * 100, geometry=small.labels.geometry)
    with pytest.raises(ValueError, match="unknown numbering"):
        run_task("spine.height_loss", labels=odd)
    c1 = LabelMap(data=(small.labels.data > 0).astype(np.uint8), geometry=small.labels.geometry)
    with pytest.raises(ValueError, match="no measurable vertebra"):
        run_task("spine.height_loss", labels=c1, scheme="verse")


def test_one_vertebra_uses_population_norms_flagged(small):
    one = LabelMap(data=np.where(small.labels.data == 21, 21, 0).astype(np.uint8), geometry=small.labels.geometry)
    res = run_task("spine.height_loss", labels=one, meshes=False)
    (r,) = _records(res)
    assert r["level"] == "L2" and r["reference"]["flagged"] and r["reference"]["method"] == "population norms"
    assert 20 < r["heights_mm"]["middle"] < 32 and r["genant_grade"] == 0


def test_ct_on_another_grid_is_sampled_and_a_disjoint_ct_is_refused(small):
    ct = small.ct
    coarse = Volume(data=ct.data[::2, ::2, ::2].copy(), modality="CT", unit="HU",
                    geometry=Geometry(tuple(2 * s for s in ct.geometry.spacing), ct.geometry.origin,
                                      ct.geometry.direction))
    res = run_task("spine.height_loss", labels=small.labels, image=coarse, meshes=False)
    assert "different grid" in res.files["vertebrae.json"]["notes"]["CT"]
    assert all(100 < r["body_ct_median_hu"] < 400 for r in _records(res))
    far = Volume(data=ct.data, geometry=Geometry(ct.geometry.spacing, (5000.0, 0.0, 0.0), ct.geometry.direction))
    with pytest.raises(ValueError, match="do not overlap"):
        run_task("spine.height_loss", labels=small.labels, image=far)


def test_cli_runs_and_explains_itself(small, tmp_path):
    from kintsugi.io import write_volume

    labels = write_volume(small.labels, tmp_path / "vertebrae.nii.gz")
    exe = [str(Path(sys.executable).parent / "kintsugi")]
    helptext = subprocess.run([*exe, "run", "spine.height_loss", "--help"], capture_output=True, text=True)
    assert helptext.returncode == 0 and "--labels" in helptext.stdout and "--scheme" in helptext.stdout
    out = tmp_path / "out"
    done = subprocess.run([*exe, "run", "spine.height_loss", "--labels", str(labels), "--scheme", "verse",
                           "--output", str(out), "--quiet"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "vertebrae.json").read_text())["vertebrae"][0]["level"] == "L1"
    bad = subprocess.run([*exe, "run", "spine.height_loss", "--labels", str(labels), "--scheme", "totalseg",
                          "--output", str(tmp_path / "bad")], capture_output=True, text=True)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr and "no vertebra labels" in bad.stderr


def test_figure_is_an_image(result):
    png = result.files["L1_height_loss.png"]
    assert Image.open(io.BytesIO(png)).mode == "RGB"


def test_a_body_cut_by_the_volume_edge_is_not_measured(small):
    """A scan ending inside a body would make it look compressed: that level is skipped with a reason."""
    data, geo = small.labels.data, small.labels.geometry
    zs = np.nonzero((data == 20).any(axis=(1, 2)))[0]  # L1, the top level (index axis 0 is z)
    z_l2 = np.nonzero((data == 21).any(axis=(1, 2)))[0]
    top_is_high = zs.mean() > z_l2.mean()
    truth = {t["level"]: t for t in small.truth["vertebrae"]}
    centre_k = geo.physical_to_index(np.array(truth["L1"]["centroid_mm"], float))[2]
    step = 10.0 / geo.spacing[2]  # 10 mm from the body's centre: its top mm are cut off, most of L1 stays
    cut = int(round(centre_k + step if top_is_high else centre_k - step))
    if top_is_high:
        part, origin_idx = data[: cut + 1], (0, 0, 0)
    else:
        part, origin_idx = data[cut:], (0, 0, cut)
    origin = geo.index_to_physical(np.array(origin_idx, float))
    cropped = LabelMap(data=np.ascontiguousarray(part), geometry=Geometry(geo.spacing, tuple(origin), geo.direction))
    res = run_task("spine.height_loss", labels=cropped, meshes=False)
    assert [r["level"] for r in _records(res)] == ["L2", "L3"]
    assert "cuts through its body" in res.files["vertebrae.json"]["notes"]["L1 (20)"]
    whole = run_task("spine.height_loss", labels=small.labels, meshes=False)
    assert [r["level"] for r in _records(whole)] == ["L1", "L2", "L3"]

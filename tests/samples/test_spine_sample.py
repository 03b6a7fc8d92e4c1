"""The spine phantom is training data and default data of the height-loss task, so its truth must
agree with its own voxels: these tests re-measure the labels independently of the generator."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from kintsugi.core import LabelMap, Volume
from kintsugi.io import read_json, read_volume
from kintsugi.samples import make_sample, spine

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO.parent / "shared" / "contracts" / "vertebrae.schema.json"


@pytest.fixture(scope="module")
def phantom() -> spine.SpinePhantom:
    return spine.generate(seed=0)


@pytest.fixture(scope="module")
def oblique() -> spine.SpinePhantom:
    return spine.generate(seed=0, oblique_deg=20.0)


def _entries(ph: spine.SpinePhantom) -> dict[str, dict]:
    return {v["level"]: v for v in ph.truth["vertebrae"]}


def _local_points(labels: LabelMap, entry: dict) -> np.ndarray:
    """Physical centres of the label's voxels in the vertebra's (left, anterior, superior) frame."""
    idx = np.argwhere(labels.data == entry["label"])[:, ::-1]  # numpy (z, y, x) -> ITK (x, y, z)
    pts = labels.geometry.index_to_physical(idx)
    axes = np.array([entry["axes"]["left"], entry["axes"]["anterior"], entry["axes"]["superior"]]).T
    return (pts - np.asarray(entry["body_center_mm"])) @ axes


def _voxel_section_heights(labels: LabelMap, entry: dict) -> dict[str, float]:
    """Mean body height per AP third, from voxel counts alone.

    Over the central 40 % left-right slab and an AP interval, the mean column height is the voxel
    count times the voxel volume over the interval's area; 3 mm next to the walls are left out so
    the estimate does not depend on the exact outline. Needs only the label and the body's frame.
    """
    loc = _local_points(labels, entry)
    size = entry["body_size_mm"]
    half_w, half_d = size["width"] / 2, size["depth"] / 2
    u, v, w = loc.T
    in_slab = (np.abs(u) <= 0.4 * half_w) & (np.abs(w) <= size["height"] / 2 + 3.0)
    voxel_volume = float(np.prod(labels.geometry.spacing))
    edges = {
        "posterior": (-half_d + 3.0, -half_d / 3),
        "middle": (-half_d / 3, half_d / 3),
        "anterior": (half_d / 3, half_d - 3.0),
    }
    out = {}
    for name, (v0, v1) in edges.items():
        count = np.count_nonzero(in_slab & (v >= v0) & (v < v1))
        out[name] = count * voxel_volume / (0.8 * half_w * (v1 - v0))
    return out


def test_make_writes_readable_files(tmp_path: Path) -> None:
    paths = make_sample("spine", tmp_path, seed=0)
    assert sorted(p.name for p in paths) == ["ct.nii.gz", "truth.json", "vertebrae.nii.gz"]
    assert all(p.exists() and p.stat().st_size > 0 for p in paths)
    assert sum(p.stat().st_size for p in paths) < 10 * 2**20
    ct = read_volume(tmp_path / "ct.nii.gz")
    labels = read_volume(tmp_path / "vertebrae.nii.gz")
    assert isinstance(ct, Volume) and ct.modality == "CT" and ct.unit == "HU"
    assert ct.data.dtype == np.int16
    assert isinstance(labels, LabelMap)
    assert ct.geometry == labels.geometry and ct.shape == labels.shape
    truth = read_json(tmp_path / "truth.json")
    assert truth["numbering"] == "VerSe" and truth["seed"] == 0
    assert sorted(labels.present_labels()) == sorted(v["label"] for v in truth["vertebrae"])


def test_truth_validates_against_contract(phantom: spine.SpinePhantom) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    if not SCHEMA.exists():
        pytest.skip(f"{SCHEMA} is not there")
    truth = json.loads(json.dumps(phantom.truth))  # exactly what truth.json holds
    jsonschema.validate(truth, json.loads(SCHEMA.read_text()))


def test_deterministic_by_seed() -> None:
    kw = {"levels": ("L1", "L2", "L3")}
    a, b, c = spine.generate(seed=5, **kw), spine.generate(seed=5, **kw), spine.generate(seed=6, **kw)
    assert np.array_equal(a.ct.data, b.ct.data)
    assert np.array_equal(a.labels.data, b.labels.data)
    assert a.ct.geometry == b.ct.geometry
    assert a.truth == b.truth
    assert a.truth["vertebrae"] != c.truth["vertebrae"]


def test_default_fractures_cover_each_morphology_and_grade(phantom: spine.SpinePhantom) -> None:
    entries = phantom.truth["vertebrae"]
    assert [v["level"] for v in entries] == ["T11", "T12", "L1", "L2", "L3", "L4"]
    assert [v["label"] for v in entries] == [18, 19, 20, 21, 22, 23]
    broken = [v for v in entries if v["deformation"] != "normal"]
    assert sorted(v["morphology"] for v in broken) == ["biconcave", "crush", "wedge"]
    assert sorted(v["genant_grade"] for v in broken) == [1, 2, 3]
    for v in entries:
        assert v["genant_grade"] == spine.genant_grade(v["severity"])
        if v["deformation"] == "normal":
            assert v["genant_grade"] == 0 and v["morphology"] == "normal"
            assert v["heights_mm"] == v["reference_heights_mm"]
        else:
            affected = {"wedge": "anterior", "biconcave": "middle"}.get(v["morphology"], "posterior")
            assert v["height_loss"][affected] == pytest.approx(v["severity"], abs=1e-3)
    for seed in (1, 2, 3):  # the choice itself is the seed's, the guarantees are not
        rng_truth = spine.generate(seed=seed, levels=("T12", "L1", "L2", "L3"), noise_hu=0).truth
        grades = sorted(v["genant_grade"] for v in rng_truth["vertebrae"])
        assert grades == [0, 1, 2, 3]


def test_spine_phantom_truth_matches_its_labels(phantom: spine.SpinePhantom) -> None:
    labels = phantom.labels
    present = set(labels.present_labels())
    for level, v in _entries(phantom).items():
        assert v["label"] in present
        assert labels.labels[v["label"]].name == level
        assert spine.VERSE_LABELS[level] == v["label"]

        loc = _local_points(labels, v)
        idx = np.argwhere(labels.data == v["label"])[:, ::-1]
        whole = labels.geometry.index_to_physical(idx).mean(axis=0)
        assert np.linalg.norm(whole - v["vertebra_centroid_mm"]) < 0.5
        # The body: label voxels in front of the posterior wall (pedicle roots add a little).
        depth = v["body_size_mm"]["depth"]
        body = loc[loc[:, 1] >= -depth / 2 - 0.06 * depth]
        axes = np.array([v["axes"]["left"], v["axes"]["anterior"], v["axes"]["superior"]]).T
        body_centroid = body.mean(axis=0) @ axes.T + np.asarray(v["body_center_mm"])
        assert np.linalg.norm(body_centroid - v["centroid_mm"]) < 1.5, level

        measured = _voxel_section_heights(labels, v)
        for section in ("anterior", "middle", "posterior"):
            assert measured[section] == pytest.approx(v["heights_mm"][section], abs=1.5), (level, section)
            loss = 1.0 - measured[section] / v["reference_heights_mm"][section]
            assert loss == pytest.approx(v["height_loss"][section], abs=0.07), (level, section)
        loss = {s: 1.0 - measured[s] / v["reference_heights_mm"][s] for s in measured}
        if v["morphology"] == "wedge":
            assert loss["anterior"] > loss["middle"] > loss["posterior"]
            assert loss["anterior"] - loss["posterior"] > 0.1
        elif v["morphology"] == "biconcave":
            assert loss["middle"] > loss["anterior"] + 0.05 and loss["middle"] > loss["posterior"] + 0.05
        elif v["morphology"] == "crush":
            assert min(loss.values()) > 0.3 * v["severity"] and loss["posterior"] > 0.15
        else:
            assert max(abs(x) for x in loss.values()) < 0.06


def test_labels_line_up_with_the_ct(phantom: spine.SpinePhantom) -> None:
    ct, lab = phantom.ct.data, phantom.labels.data
    for label in phantom.labels.present_labels():
        inside = lab == label
        assert ct[inside].mean() > 120, label
    bone = lab > 0
    ring = ndimage.binary_dilation(bone, iterations=4) & ~ndimage.binary_dilation(bone, iterations=2)
    assert ct[ring].mean() < 150  # just outside the labels: soft tissue, not bone
    corners = [ct[:, :4, :4], ct[:, :4, -4:], ct[:, -4:, :4], ct[:, -4:, -4:]]
    assert all(c.mean() < -900 for c in corners)  # outside the body outline: air
    assert ct.min() >= -1024 and (ct > 500).any()


def test_oblique_grid_keeps_anatomy_and_truth(phantom: spine.SpinePhantom, oblique: spine.SpinePhantom) -> None:
    g = oblique.ct.geometry
    assert g.is_oblique() and not np.allclose(g.direction, np.eye(3))
    assert np.allclose(phantom.ct.geometry.direction, np.eye(3))
    straight, tilted = _entries(phantom), _entries(oblique)
    for level, v in straight.items():
        w = tilted[level]
        for key in ("heights_mm", "reference_heights_mm"):
            for section, h in v[key].items():
                assert w[key][section] == pytest.approx(h, abs=1.0)
        assert w["genant_grade"] == v["genant_grade"]
        # The voxels themselves must agree in physical mm, not just the stored numbers; an endplate
        # parallel to the axial grid quantises to whole 1 mm slices, hence 1.5 mm.
        a = _voxel_section_heights(phantom.labels, v)
        b = _voxel_section_heights(oblique.labels, w)
        for section in a:
            assert b[section] == pytest.approx(a[section], abs=1.5), (level, section)
        assert np.linalg.norm(np.subtract(w["vertebra_centroid_mm"], v["vertebra_centroid_mm"])) < 1.0


def test_explicit_fractures_and_bad_input() -> None:
    ph = spine.generate(seed=2, levels=["L2", "T12", "L1"], fractures={"L1": ("wedge", 0.3)}, noise_hu=0)
    e = _entries(ph)
    assert list(e) == ["T12", "L1", "L2"]
    assert e["L1"]["morphology"] == "wedge" and e["L1"]["genant_grade"] == 2
    assert e["L1"]["height_loss"]["anterior"] == pytest.approx(0.3, abs=1e-3)
    assert e["T12"]["genant_grade"] == 0 and e["L2"]["genant_grade"] == 0
    with pytest.raises(ValueError):
        spine.generate(levels=("T11", "L1"))  # not contiguous
    with pytest.raises(ValueError):
        spine.generate(levels=("L1", "L2"), fractures={"L1": ("burst", 0.3)})
    with pytest.raises(ValueError):
        spine.generate(levels=("L1", "L2"), fractures={"L1": ("wedge", 0.9)})
    with pytest.raises(ValueError):
        spine.generate(levels=("L1", "L2"), fractures={"L3": ("wedge", 0.3)})

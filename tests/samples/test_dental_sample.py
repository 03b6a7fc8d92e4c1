"""The dental CBCT phantom: files, truth against the shared contract, one connected label per tooth,
touching neighbours, teeth brighter than bone, metal bright enough to streak, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

from kintsugi.io import read_volume
from kintsugi.samples import dental

SCHEMA = Path(__file__).resolve().parents[2].parent / "shared" / "contracts" / "teeth.schema.json"


@pytest.fixture(scope="module")
def phantom() -> dental.DentalPhantom:
    return dental.generate(seed=0)


def test_module_contract() -> None:
    assert dental.NAME == "dental"
    assert dental.TITLE == "Dental CBCT phantom"
    assert dental.DESCRIPTION


def test_default_volume_is_small() -> None:
    # Generation time is measured in bench/ (samples benchmark), not asserted here.
    ph = dental.generate(seed=3)
    nz, ny, nx = ph.cbct.shape
    assert nx < 160 and ny < 160 and nz < 120
    assert ph.cbct.data.dtype == np.int16 and ph.cbct.modality == "CBCT"
    assert ph.labels.geometry == ph.cbct.geometry and ph.labels.shape == ph.cbct.shape


def test_make_writes_readable_files(tmp_path: Path) -> None:
    paths = dental.make(tmp_path, seed=0)
    assert {p.name for p in paths} == {"cbct.nii.gz", "teeth_labels.nii.gz", "teeth.json"}
    cbct = read_volume(tmp_path / "cbct.nii.gz", as_labels=False)
    labels = read_volume(tmp_path / "teeth_labels.nii.gz", as_labels=True)
    assert cbct.shape == labels.shape
    assert cbct.data.dtype == np.int16
    truth = json.loads((tmp_path / "teeth.json").read_text())
    assert sorted(labels.present_labels()) == [t["label"] for t in truth]


def test_truth_matches_the_contract(phantom: dental.DentalPhantom) -> None:
    if not SCHEMA.exists():
        pytest.skip(f"{SCHEMA} is not there")
    jsonschema = pytest.importorskip("jsonschema")
    truth = json.loads(json.dumps(phantom.truth))  # exactly what the JSON file holds
    jsonschema.validate(truth, json.loads(SCHEMA.read_text()))


def test_labels_are_consecutive_and_named(phantom: dental.DentalPhantom) -> None:
    present = phantom.labels.present_labels()
    assert present == list(range(1, len(phantom.truth) + 1))
    fdis = [t["fdi"] for t in phantom.truth]
    assert len(set(fdis)) == len(fdis)
    assert all(30 < f < 49 and 1 <= f % 10 <= 8 for f in fdis)
    assert 1 <= len(phantom.missing) <= 2 and not set(phantom.missing) & set(fdis)
    assert len(fdis) + len(phantom.missing) == 16
    for t in phantom.truth:
        assert phantom.labels.labels[t["label"]].name == f"tooth {t['fdi']}"


def test_each_tooth_is_one_connected_piece(phantom: dental.DentalPhantom) -> None:
    lab = phantom.labels.data
    for k, sl in enumerate(ndi.find_objects(lab), start=1):
        _, n = ndi.label(lab[sl] == k)  # 6-connectivity
        assert n == 1, f"label {k} has {n} pieces"


def test_neighbouring_teeth_touch(phantom: dental.DentalPhantom) -> None:
    lab = phantom.labels.data
    pairs = set()
    for axis in range(3):
        a = np.moveaxis(lab, axis, 0)
        lo, hi = a[:-1], a[1:]
        touching = (lo > 0) & (hi > 0) & (lo != hi)
        pairs |= {tuple(sorted(p)) for p in zip(lo[touching].tolist(), hi[touching].tolist(), strict=True)}
    assert pairs, "no two teeth touch"
    assert all(abs(a - b) == 1 for a, b in pairs)  # only neighbours along the arch
    assert len(pairs) >= len(phantom.truth) // 2


def test_teeth_are_brighter_than_the_bone_around_them(phantom: dental.DentalPhantom) -> None:
    img = phantom.cbct.data.astype(float)
    teeth = phantom.labels.data > 0
    codes = dental.TISSUES
    bone = np.isin(phantom.tissues, [codes["cancellous bone"], codes["cortical bone"], codes["lamina dura"]])
    near = ndi.binary_dilation(teeth, iterations=8) & bone  # within ~3 mm
    assert near.sum() > 1000
    assert img[teeth].mean() > img[near].mean() + 500
    enamel = phantom.tissues == codes["enamel"]
    dentin = phantom.tissues == codes["dentin"]
    assert img[enamel].mean() > img[dentin].mean()


def test_metal_is_very_bright(phantom: dental.DentalPhantom) -> None:
    metal = phantom.tissues == dental.TISSUES["metal"]
    assert metal.any()
    assert int(phantom.cbct.data[metal].max()) > 2500
    assert np.all(phantom.labels.data[metal] > 0)  # fillings belong to their tooth


def test_deterministic_by_seed(phantom: dental.DentalPhantom) -> None:
    again = dental.generate(seed=0)
    assert np.array_equal(again.cbct.data, phantom.cbct.data)
    assert np.array_equal(again.labels.data, phantom.labels.data)
    assert again.truth == phantom.truth
    other = dental.generate(seed=1)
    assert other.cbct.shape != phantom.cbct.shape or not np.array_equal(other.cbct.data, phantom.cbct.data)


def test_centroids_and_volumes_match_the_voxels(phantom: dental.DentalPhantom) -> None:
    lab = phantom.labels.data
    geom = phantom.labels.geometry
    voxel = float(np.prod(geom.spacing))
    for t in phantom.truth:
        zyx = np.argwhere(lab == t["label"])
        centroid = geom.index_to_physical(zyx.mean(axis=0)[::-1])
        assert np.allclose(centroid, t["centroid_mm"], atol=0.01)
        assert t["volume_mm3"] == pytest.approx(len(zyx) * voxel, rel=1e-4)
        assert 50 < t["volume_mm3"] < 1500  # incisors ~200 mm3, molars ~800 mm3


def test_both_jaws() -> None:
    ph = dental.generate(seed=2, jaws=("upper", "lower"), spacing=(0.8, 0.8, 0.8))
    quadrants = {t["fdi"] // 10 for t in ph.truth}
    assert quadrants == {1, 2, 3, 4}
    assert [t["fdi"] for t in ph.truth][0] // 10 == 1  # upper right first

"""Saving and opening workspaces: exact round trip, atomic saves, one-line errors on bad input."""

from __future__ import annotations

import gzip
import json
import os
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from kintsugi.core import LabelMap, Mesh, Scene, Volume
from kintsugi.io import KintsugiIOError
from kintsugi.workspace import (
    FORMAT_NAME,
    FORMAT_VERSION,
    WorkspaceError,
    looks_like_workspace,
    open_workspace,
    read_manifest,
    save_workspace,
)
from kintsugi.workspace import format as wsformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ws_scenes import assert_same_layers, build_scene  # noqa: E402

VIEW = {"layout": "2x2", "camera": {"position": [1.5, -2.0, 3.25], "zoom": 1.0}, "window_level": [40, 400]}


@pytest.fixture
def scene() -> Scene:
    return build_scene()


@pytest.mark.parametrize("name", ["study", "study.kintsugi.zip", "plain.zip"])
def test_round_trip_gives_back_every_layer(scene, tmp_path, name):
    path = save_workspace(scene, tmp_path / name, extra=VIEW)
    assert path == tmp_path / name
    assert path.is_dir() == (not name.endswith(".zip"))
    assert looks_like_workspace(path)
    layers, extra = open_workspace(path)
    assert_same_layers(scene.layers, layers)
    assert extra == VIEW
    # the opened layers are ordinary layers: a new scene takes them
    Scene().extend(layers)


def test_manifest_names_format_and_standard_files(scene, tmp_path):
    path = save_workspace(scene, tmp_path / "ws")
    doc = read_manifest(path)
    assert (doc["format"], doc["version"]) == (FORMAT_NAME, FORMAT_VERSION)
    assert doc["kintsugi_version"] and doc["created"]
    assert [e["type"] for e in doc["layers"]] == [
        "volume", "labels", "image", "image", "mesh", "points", "fragments", "table"]
    files = sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())
    assert files == sorted([
        "workspace.json", "data/000-ct.nii.gz", "data/001-vertebrae.nii.gz", "data/002-photo.png",
        "data/003-radiograph.png", "data/004-skull.npz", "data/005-scan.npz", "data/006-vase/000-a.npz",
        "data/006-vase/001-b.npz", "data/007-heights.json"])
    assert doc["layers"][6]["items"][0]["pose"] == scene["vase"]["a"].pose.tolist()
    assert doc["layers"][0]["geometry"] == scene["ct"].geometry.to_dict()
    # the data files open in other tools as they are
    from kintsugi.io import read_image, read_volume

    assert np.array_equal(read_volume(path / "data/001-vertebrae.nii.gz").data, scene["vertebrae"].data)
    assert np.array_equal(read_image(path / "data/002-photo.png").data, scene["photo"].data)


def test_zip_opens_the_same_and_is_a_plain_zip(scene, tmp_path):
    path = save_workspace(scene, tmp_path / "s.kintsugi.zip")
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist()[0] == "workspace.json"
        assert zf.testzip() is None


def test_other_image_dtypes_keep_their_values(tmp_path):
    from kintsugi.core import Image2D

    rng = np.random.default_rng(1)
    images = [
        Image2D(name="rgb16", data=rng.integers(0, 65536, (5, 6, 3)).astype(np.uint16)),
        Image2D(name="rgba", data=rng.integers(0, 256, (5, 6, 4)).astype(np.uint8)),
        Image2D(name="grey", data=rng.integers(0, 256, (5, 6)).astype(np.uint8)),
        Image2D(name="float", data=rng.random((5, 6)).astype(np.float32)),
        Image2D(name="signed", data=rng.integers(-500, 500, (5, 6)).astype(np.int16)),
    ]
    layers, _ = open_workspace(save_workspace(images, tmp_path / "imgs"))
    assert_same_layers(images, layers)


def test_volume_dtypes_are_kept(tmp_path):
    geometry_layers = [
        Volume(name=str(dt), data=(np.arange(24).reshape(2, 3, 4) - 7).astype(dt))
        for dt in (np.uint8, np.int32, np.float32, np.float64, np.float16)
    ]
    geometry_layers.append(LabelMap(name="big", data=np.array([[[0, -3], [70000, 2]]], np.int64)))
    layers, _ = open_workspace(save_workspace(geometry_layers, tmp_path / "v"))
    assert_same_layers(geometry_layers, layers)


def test_saving_over_a_workspace_replaces_it(scene, tmp_path):
    path = save_workspace(scene, tmp_path / "ws")
    scene.remove("ct")
    scene["vertebrae"].set(visible=False)
    save_workspace(scene, path)
    layers, _ = open_workspace(path)
    assert [x.name for x in layers] == [x.name for x in scene]
    assert not layers[0].visible
    assert not (path / "data/000-ct.nii.gz").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ws"]  # no temporary siblings left


@pytest.mark.parametrize("name", ["ws", "ws.zip"])
def test_a_save_that_fails_midway_leaves_the_old_workspace(scene, tmp_path, monkeypatch, name):
    path = save_workspace(scene, tmp_path / name, extra={"v": 1})
    before = sorted(p.name for p in tmp_path.iterdir())
    calls = []
    original = wsformat._write_grid

    def failing(data, geometry, dest):
        calls.append(dest)
        if len(calls) == 2:  # the volume is written, the label map fails
            raise OSError(28, "No space left on device")
        original(data, geometry, dest)

    monkeypatch.setattr(wsformat, "_write_grid", failing)
    edited = build_scene()
    edited["vertebrae"].data[:] = 0
    edited.remove("photo")
    with pytest.raises(WorkspaceError) as err:
        save_workspace(edited, path, extra={"v": 2})
    msg = str(err.value)
    assert "\n" not in msg and "001-vertebrae.nii.gz" in msg and "No space left" in msg
    assert len(calls) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    layers, extra = open_workspace(path)
    assert_same_layers(scene.layers, layers)
    assert extra == {"v": 1}


def test_a_folder_that_is_not_a_workspace_is_never_overwritten(scene, tmp_path):
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.tex").write_text("...")
    with pytest.raises(WorkspaceError, match="not overwriting"):
        save_workspace(scene, precious)
    assert (precious / "chapter1.tex").read_text() == "..."
    (tmp_path / "notes.zip").write_bytes(b"PK\x05\x06" + bytes(18))  # an empty but valid zip
    with pytest.raises(WorkspaceError, match="not a Kintsugi workspace"):
        save_workspace(scene, tmp_path / "notes.zip")


def test_an_interrupted_replace_falls_back_to_the_old_copy(scene, tmp_path):
    path = save_workspace(scene, tmp_path / "ws")
    os.rename(path, tmp_path / ".ws.old-99999999-abcd")  # killed between the two renames
    layers, _ = open_workspace(path)
    assert [x.name for x in layers] == [x.name for x in scene]


# ------------------------------------------------------------------------------------ bad input


def _one_line_error(path: Path, *needles: str) -> str:
    with pytest.raises(WorkspaceError) as err:
        open_workspace(path)
    assert isinstance(err.value, KintsugiIOError)
    msg = str(err.value)
    assert "\n" not in msg
    for needle in needles:
        assert needle in msg, msg
    return msg


@pytest.fixture
def saved(scene, tmp_path) -> Path:
    return save_workspace(scene, tmp_path / "ws")


def test_missing_manifest(saved):
    (saved / "workspace.json").unlink()
    _one_line_error(saved, "workspace.json", "missing")


def test_bad_json(saved):
    (saved / "workspace.json").write_text('{"format": "kintsugi-workspace", "version": 1,')
    _one_line_error(saved, "workspace.json", "invalid JSON")


def test_unknown_version(saved):
    doc = json.loads((saved / "workspace.json").read_text())
    doc["version"] = 99
    (saved / "workspace.json").write_text(json.dumps(doc))
    _one_line_error(saved, "workspace.json", "version 99")
    doc["version"] = "one"
    (saved / "workspace.json").write_text(json.dumps(doc))
    _one_line_error(saved, "workspace.json", "version")


def test_not_a_workspace_manifest(saved):
    (saved / "workspace.json").write_text('{"hello": 1}')
    _one_line_error(saved, "workspace.json", "not a Kintsugi workspace")


def test_missing_data_file(saved):
    (saved / "data/001-vertebrae.nii.gz").unlink()
    _one_line_error(saved, "data/001-vertebrae.nii.gz", "missing")
    save_workspace(build_scene(), saved)
    (saved / "data/006-vase/001-b.npz").unlink()
    _one_line_error(saved, "data/006-vase/001-b.npz", "missing")


def test_truncated_nifti(saved):
    f = saved / "data/000-ct.nii.gz"
    raw = f.read_bytes()
    f.write_bytes(raw[: len(raw) // 2])
    _one_line_error(saved, "data/000-ct.nii.gz", "truncated")
    assert gzip.decompress(raw)  # the original was fine


def test_corrupt_npz_and_table(saved):
    (saved / "data/004-skull.npz").write_bytes(b"PK\x03\x04 not really")
    _one_line_error(saved, "data/004-skull.npz")
    save_workspace(build_scene(), saved)
    (saved / "data/007-heights.json").write_text("{")
    _one_line_error(saved, "data/007-heights.json", "not a valid table")


def test_a_data_file_with_the_wrong_shape(saved, tmp_path):
    other = save_workspace([Volume(name="ct", data=np.zeros((2, 2, 2), np.int16))], tmp_path / "other")
    os.replace(other / "data/000-ct.nii.gz", saved / "data/000-ct.nii.gz")
    _one_line_error(saved, "data/000-ct.nii.gz", "shape")


def test_a_manifest_cannot_point_outside(saved):
    doc = json.loads((saved / "workspace.json").read_text())
    doc["layers"][0]["files"]["data"] = "../../etc/passwd"
    (saved / "workspace.json").write_text(json.dumps(doc))
    _one_line_error(saved, "unsafe")


def test_truncated_and_missing_zip(scene, tmp_path):
    path = save_workspace(scene, tmp_path / "ws.zip")
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    _one_line_error(path, "ws.zip", "truncated or corrupt")
    _one_line_error(tmp_path / "nothing.zip", "nothing.zip", "no such workspace")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as zf:
        zf.writestr("readme.txt", "hi")
    _one_line_error(tmp_path / "other.zip", "workspace.json")


# ------------------------------------------------------------------------------------- metadata


def test_metadata_that_is_not_json_is_dropped_never_pickled(tmp_path):
    class Opaque:
        pass

    layer = Mesh(name="m", vertices=np.eye(3), faces=[[0, 1, 2]], metadata={
        "kept": {"n": np.int64(3), "x": np.float32(0.5), "arr": np.arange(3), "path": Path("/a/b"), "nan": np.nan},
        "object": Opaque(),
        "nested": {"fn": print, "ok": True},
        "listed": [1, Opaque()],
        3: "int key",
    }, scalars={"objects": np.array([Opaque(), 1, "x"], dtype=object), "fine": np.ones(3)})
    path = save_workspace([layer], tmp_path / "ws")
    (back,), _ = open_workspace(path)
    assert back.metadata["kept"]["n"] == 3 and back.metadata["kept"]["arr"] == [0, 1, 2]
    assert back.metadata["kept"]["path"] == "/a/b" and np.isnan(back.metadata["kept"]["nan"])
    assert back.metadata["nested"] == {"ok": True}
    assert set(back.metadata) == {"kept", "nested"}
    assert list(back.scalars) == ["fine"]
    notes = " ".join(read_manifest(path)["notes"])
    assert "'object'" in notes and "'fn'" in notes and "'listed'" in notes and "objects" in notes
    for f in path.rglob("*"):
        if f.is_file():
            raw = f.read_bytes()
            if f.suffix == ".npz":
                with zipfile.ZipFile(f) as zf:
                    raw = b"".join(zf.read(n) for n in zf.namelist())
                    assert all(n.endswith(".npy") for n in zf.namelist())
            for marker in (b"\x80\x04\x95", b"\x80\x05\x95", b"\x80\x03", b"builtins", b"'descr': '|O'"):
                assert marker not in raw, f"{f} looks pickled"

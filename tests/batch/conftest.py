"""Batch test fixtures: tiny NIfTI volumes, and a test-only plugin (crash, slow, weights) on KINTSUGI_PLUGIN_PATH."""

from __future__ import annotations

import hashlib
import os
import textwrap
from pathlib import Path

import numpy as np
import pytest

from kintsugi.core import Geometry, Volume
from kintsugi.io import write_volume

CRASH_VALUE = -666.0


def write_ct(path: Path, seed: int, value: float | None = None) -> Path:
    """A 10^3 float CT-like volume (opens as a Volume, not a label map) with a bright cube."""
    rng = np.random.default_rng(seed)
    data = rng.normal(0, 5, (10, 10, 10)).astype(np.float32)
    data[3:7, 3:7, 2:2 + 2 + seed % 4] += 600
    if value is not None:
        data[:] = value
    write_volume(Volume(name=path.name, data=data, geometry=Geometry((1.0, 1.0, 2.0), (0, 0, 0))), path)
    return path


def make_cohort(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [write_ct(folder / f"ct_{i:02d}.nii.gz", i) for i in range(n)]


TASKS = '''
import os
import time

import numpy as np

from kintsugi.core import Volume


def crash(volume: Volume) -> dict:
    """Kill the worker process outright when the volume is all -666 (as a segfault would)."""
    if float(volume.data.max()) == -666.0:
        os._exit(7)
    return {"mean": float(volume.data.mean())}


def slow(volume: Volume, seconds: float = 1.0) -> dict:
    time.sleep(seconds)
    return {"voxels": int(volume.data.size)}


def model(volume: Volume, *, weights, device) -> dict:
    """Reports which process ran it and which tensors object it got: the same object = loaded once."""
    from kintsugi.batch import work

    tensors = weights.load("net", device)
    return {"pid": os.getpid(), "tensors": id(tensors), "prepared": work.PREPARED_LOADS,
            "w": float(tensors["w"].sum()) + float(np.asarray(volume.data).mean()) * 0}
'''


@pytest.fixture(scope="session")
def batch_plugin_dir(tmp_path_factory) -> Path:
    """A plugin folder holding ``kintsugi_batchtest`` (tasks batchtest.crash / slow / model)."""
    from safetensors.numpy import save_file

    root = tmp_path_factory.mktemp("batch-plugins")
    pkg = root / "kintsugi_batchtest"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "tasks.py").write_text(TASKS)
    save_file({"w": np.ones(4, np.float32)}, str(pkg / "net.safetensors"))
    digest = hashlib.sha256((pkg / "net.safetensors").read_bytes()).hexdigest()
    (pkg / "kintsugi.toml").write_text(textwrap.dedent(f"""
        name = "kintsugi-batchtest"
        title = "Batch tests"
        version = "0.0.1"
        [[tasks]]
        id = "batchtest.crash"
        function = "kintsugi_batchtest.tasks:crash"
        [[tasks]]
        id = "batchtest.slow"
        function = "kintsugi_batchtest.tasks:slow"
        [[tasks]]
        id = "batchtest.model"
        function = "kintsugi_batchtest.tasks:model"
        weights = ["net"]
        [weights.net]
        file = "net.safetensors"
        sha256 = "{digest}"
        """))
    return root


@pytest.fixture(scope="module")
def plugin_env(batch_plugin_dir):
    """KINTSUGI_PLUGIN_PATH for this module (workers started now inherit it), restored afterwards.

    Batch finds tasks by the current KINTSUGI_PLUGIN_PATH (kintsugi.batch.plan.find_task), so the
    application-wide registry is left alone.
    """
    old = os.environ.get("KINTSUGI_PLUGIN_PATH")
    os.environ["KINTSUGI_PLUGIN_PATH"] = str(batch_plugin_dir)
    yield batch_plugin_dir
    if old is None:
        os.environ.pop("KINTSUGI_PLUGIN_PATH", None)
    else:
        os.environ["KINTSUGI_PLUGIN_PATH"] = old

"""``kintsugi plugins new NAME DIR``: a small, working plugin to start from.

It has everything a real plugin has -- pyproject with the entry point, manifest, one typed task, one
test -- so the author edits instead of assembling.
"""

from __future__ import annotations

import re
from pathlib import Path

PYPROJECT = '''[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "kintsugi-{slug}"
version = "0.1.0"
description = "A Kintsugi plugin: {title}"
requires-python = ">=3.10"
dependencies = ["kintsugi-studio", "scipy"]

# This line is what makes Kintsugi find the plugin.
[project.entry-points."kintsugi.plugins"]
{slug_id} = "{package}"

[tool.setuptools]
packages = ["{package}"]

[tool.setuptools.package-data]
{package} = ["kintsugi.toml"]
'''

MANIFEST = '''name = "kintsugi-{slug}"
title = "{title}"
license = "BSD-3-Clause"
description = "Describe what your plugin does and for whom."
references = []

[[tasks]]
id = "{slug_id}.smooth"
title = "Smooth a volume"
description = "Gaussian smoothing with a width in millimetres, so the result does not depend on voxel size."
function = "{package}.tasks:smooth"
device = "cpu"
inputs = [{{ name = "volume", type = "Volume", help = "any scalar volume" }}]
outputs = [{{ name = "smoothed", type = "Volume", help = "smoothed.nii.gz" }}]

# Model weights go here, e.g.
# [weights.model]
# file = "weights/model.safetensors"
# sha256 = "..."      # sha256sum of the file; Kintsugi refuses a file that does not match
'''

TASKS = '''"""The plugin's tasks: plain typed functions. Kintsugi builds the GUI form and the CLI options from
the signature, runs the function in a background worker, and turns the result into layers and files."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from scipy import ndimage

from kintsugi.core import Volume
from kintsugi.plugins import NO_PROGRESS, Param, Progress, TaskResult


def smooth(volume: Volume,
           sigma_mm: Annotated[float, Param(min=0.0, max=50.0, help="Gaussian width in millimetres")] = 1.0,
           *, progress: Progress = NO_PROGRESS) -> TaskResult:
    """Smooth ``volume`` with a Gaussian of ``sigma_mm`` millimetres."""
    progress(0.0, "smoothing")  # reporting progress is also where a cancel request stops the task
    sigma_voxels = [sigma_mm / s for s in volume.geometry.spacing[::-1]]  # data is (z, y, x)
    data = ndimage.gaussian_filter(volume.data.astype(np.float32), sigma_voxels)
    out = Volume(name=f"{{volume.name}} smoothed", data=data, geometry=volume.geometry,
                 modality=volume.modality, unit=volume.unit)
    progress(1.0, "done")
    return TaskResult(layers=[out], files={{"smoothed.nii.gz": out}}, summary={{"sigma_mm": sigma_mm}})
'''

TEST = '''import numpy as np

import kintsugi
from kintsugi.core import Geometry, Volume


def test_smooth_spreads_a_point_by_the_asked_width(tmp_path):
    data = np.zeros((21, 21, 21), np.float32)
    data[10, 10, 10] = 1000
    vol = Volume(data=data, geometry=Geometry((0.5, 0.5, 2.0)))
    result = kintsugi.run("{slug_id}.smooth", volume=vol, sigma_mm=2.0, output=tmp_path)
    out = result.layers[0].data
    assert abs(out.sum() - 1000) < 1
    assert out[10, 10, 10] < 1000 and out[10, 10, 14] > 0  # spread 2 mm = 4 voxels along x
    assert (tmp_path / "smoothed.nii.gz").exists()
'''

README = '''# kintsugi-{slug}

A Kintsugi plugin. Install it next to Kintsugi and it appears in `kintsugi plugins`, in the GUI's
Tasks dock, and on the command line:

```bash
pip install -e .
kintsugi run {slug_id}.smooth --volume ct.nii.gz --sigma-mm 1.5 --output out/
python -m pytest tests
```

Edit `{package}/tasks.py` (the code) and `{package}/kintsugi.toml` (the manifest).
'''


def new_plugin(name: str, directory: str | Path) -> Path:
    slug = re.sub(r"[^a-z0-9]+", "-", name.strip().lower()).strip("-")
    if not slug or not slug[0].isalpha():
        raise ValueError(f"plugin name {name!r} must start with a letter (letters, digits and dashes)")
    slug_id = slug.replace("-", "_")
    package = f"kintsugi_{slug_id}"
    folder = Path(directory)
    if folder.exists() and any(folder.iterdir()):
        raise FileExistsError(f"{folder} exists and is not empty")
    fields = {"slug": slug, "slug_id": slug_id, "package": package, "title": name.strip()}
    files = {
        "pyproject.toml": PYPROJECT,
        "README.md": README,
        f"{package}/__init__.py": '"""{title}: a Kintsugi plugin."""\n',
        f"{package}/kintsugi.toml": MANIFEST, f"{package}/tasks.py": TASKS, "tests/test_tasks.py": TEST,
    }
    for rel, template in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(**fields), encoding="utf-8")
    return folder

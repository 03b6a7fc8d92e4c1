"""Synthetic sample data, deterministic by seed: the app's default data, the tests' data and the
training data of the built-in models.

Each sample module exposes ``NAME``, ``TITLE``, ``DESCRIPTION``, ``generate(seed=0, **params)``
(in memory, with ground truth) and ``make(out_dir, seed=0) -> list[Path]`` (writes standard files).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

_MODULES = {
    "fragments": "kintsugi.samples.fragments",
    "spine": "kintsugi.samples.spine",
    "crack": "kintsugi.samples.crack",
    "dental": "kintsugi.samples.dental",
}


@dataclass(frozen=True)
class SampleInfo:
    name: str
    title: str
    description: str
    task: str = ""  # the task this sample demonstrates (the GUI shows its form when the sample opens)


def _module(name: str) -> ModuleType:
    if name not in _MODULES:
        raise KeyError(f"unknown sample {name!r}; choose one of: {', '.join(_MODULES)}")
    return importlib.import_module(_MODULES[name])


def _read_info(name: str) -> SampleInfo:
    """NAME/TITLE/DESCRIPTION read from the module's source without importing it: listing samples (the
    GUI's Samples menu at start-up) must not pay for the generators' scientific imports."""
    import ast
    import importlib.util

    spec = importlib.util.find_spec(_MODULES[name])
    if spec is None or not spec.origin:
        raise ImportError(f"sample module {_MODULES[name]} not found")
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    values: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            key = node.targets[0].id
            if key in ("NAME", "TITLE", "DESCRIPTION", "TASK"):
                values[key] = ast.literal_eval(node.value)
    return SampleInfo(values.get("NAME", name), values.get("TITLE", name), values.get("DESCRIPTION", ""),
                      values.get("TASK", ""))


def list_samples() -> list[SampleInfo]:
    """All samples; a broken one is listed with its error as description."""
    out = []
    for name in _MODULES:
        try:
            out.append(_read_info(name))
        except Exception as e:  # one broken generator must not hide the others
            out.append(SampleInfo(name, name, f"unavailable: {type(e).__name__}: {e}"))
    return out


def sample_names() -> list[str]:
    return list(_MODULES)


def make_sample(name: str, out_dir: str | Path, seed: int = 0) -> list[Path]:
    """Write sample ``name`` into ``out_dir`` (created if needed); returns the files written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return _module(name).make(out, seed=seed)

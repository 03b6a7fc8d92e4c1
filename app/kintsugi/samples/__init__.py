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


def _module(name: str) -> ModuleType:
    if name not in _MODULES:
        raise KeyError(f"unknown sample {name!r}; choose one of: {', '.join(_MODULES)}")
    return importlib.import_module(_MODULES[name])


def list_samples() -> list[SampleInfo]:
    """All samples whose generator imports; a broken one is listed with its error as description."""
    out = []
    for name in _MODULES:
        try:
            mod = _module(name)
        except Exception as e:  # one broken generator must not hide the others
            out.append(SampleInfo(name, name, f"unavailable: {type(e).__name__}: {e}"))
            continue
        out.append(SampleInfo(mod.NAME, mod.TITLE, mod.DESCRIPTION))
    return out


def sample_names() -> list[str]:
    return list(_MODULES)


def make_sample(name: str, out_dir: str | Path, seed: int = 0) -> list[Path]:
    """Write sample ``name`` into ``out_dir`` (created if needed); returns the files written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return _module(name).make(out, seed=seed)

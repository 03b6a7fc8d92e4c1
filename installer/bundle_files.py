"""Which built-in plugin files go into the bundle: shared by kintsugi.spec and tests/installer.

Generic on purpose: every package ``plugins/kintsugi_*/`` that has an ``__init__.py`` and a
``kintsugi.toml`` is a built-in plugin, and every file in it that is not Python source (the manifest,
``weights/*.safetensors``, JSON schemas, icons) is bundled next to its modules, at the same relative path.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP_DIRS = {"__pycache__", "tests", ".pytest_cache", ".ruff_cache", ".ipynb_checkpoints"}
SKIP_SUFFIXES = {".py", ".pyc", ".pyo", ".pyi"}


def plugin_packages(root: Path = ROOT) -> list[str]:
    return sorted(p.name for p in (root / "plugins").glob("kintsugi_*")
                  if (p / "__init__.py").is_file() and (p / "kintsugi.toml").is_file())


def plugin_datas(pkg: str, root: Path = ROOT) -> list[tuple[str, str]]:
    """``(source file, destination folder in the bundle)`` for every non-Python file of a plugin package."""
    base = root / "plugins" / pkg
    out = []
    for f in sorted(base.rglob("*")):
        rel = f.relative_to(base)
        if not f.is_file() or f.suffix in SKIP_SUFFIXES:
            continue
        if any(part in SKIP_DIRS or part.startswith(".") for part in rel.parts):
            continue
        out.append((str(f), str(Path(pkg) / rel.parent)))
    return out


def no_tests(module: str) -> bool:
    """Filter for collect_submodules: leave test packages (which import pytest) out of the bundle."""
    return not any(p in ("_tests", "tests", "testing", "_testsupport", "conftest") for p in module.split("."))

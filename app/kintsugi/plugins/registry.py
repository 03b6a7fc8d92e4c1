"""Finding plugins: the ``kintsugi.plugins`` entry point group, plus plugin folders.

Built-in plugins register exactly like third-party ones (an entry point naming their package). A
frozen desktop bundle cannot see pip-installed entry points, so plugin folders are searched too:
``KINTSUGI_PLUGIN_PATH`` (os.pathsep-separated) and the user's plugins folder, each holding packages
that carry a ``kintsugi.toml``. A plugin that fails to load is recorded with its reason and skipped.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path

from kintsugi.plugins.manifest import MANIFEST_NAME, ManifestError, PluginManifest, TaskInfo, load_manifest

GROUP = "kintsugi.plugins"


def user_plugin_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return Path(base) / "kintsugi" / "plugins"


def plugin_dirs() -> list[Path]:
    dirs = [Path(p) for p in os.environ.get("KINTSUGI_PLUGIN_PATH", "").split(os.pathsep) if p]
    dirs.append(user_plugin_dir())
    return dirs


@dataclass
class FailedPlugin:
    source: str
    reason: str


@dataclass
class Registry:
    plugins: dict[str, PluginManifest] = field(default_factory=dict)
    failed: list[FailedPlugin] = field(default_factory=list)
    tasks: dict[str, TaskInfo] = field(default_factory=dict)

    def add(self, manifest: PluginManifest) -> None:
        if manifest.name in self.plugins:
            raise ManifestError(f"a plugin named '{manifest.name}' is already loaded "
                                f"(from {self.plugins[manifest.name].source})")
        clash = [t.id for t in manifest.tasks if t.id in self.tasks]
        if clash:
            raise ManifestError(f"task id(s) {', '.join(clash)} already provided by "
                                f"'{self.tasks[clash[0]].plugin.name}'")
        self.plugins[manifest.name] = manifest
        for t in manifest.tasks:
            self.tasks[t.id] = t

    def add_manifest(self, path: Path, package: str = "", version: str = "0.0.0") -> PluginManifest | None:
        try:
            manifest = load_manifest(path, package, version)
            self.add(manifest)
            return manifest
        except (ManifestError, OSError, ValueError) as e:  # ValueError: a manifest that is not UTF-8 text
            self.failed.append(FailedPlugin(str(path), str(e)))
            return None

    def task(self, task_id: str) -> TaskInfo:
        if task_id not in self.tasks:
            hint = ""
            close = [t for t in self.tasks if t.split(".")[0] == task_id.split(".")[0]]
            if close:
                hint = f"; did you mean {', '.join(sorted(close))}?"
            raise KeyError(f"no task '{task_id}'{hint} (see 'kintsugi plugins')")
        return self.tasks[task_id]

    def check(self) -> None:
        """Import every task function and read its signature; a broken plugin moves to ``failed``."""
        for name, manifest in list(self.plugins.items()):
            try:
                for t in manifest.tasks:
                    _ = t.signature
            except (Exception, SystemExit) as e:  # noqa: BLE001 - any import error of a plugin is its own failure
                self.failed.append(FailedPlugin(str(manifest.source or name), f"{type(e).__name__}: {e}"))
                del self.plugins[name]
                for t in manifest.tasks:
                    self.tasks.pop(t.id, None)


def _package_manifest(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ManifestError(f"entry point names '{package}', which is not an importable package")
    for location in spec.submodule_search_locations:
        candidate = Path(location) / MANIFEST_NAME
        if candidate.is_file():
            return candidate
    raise ManifestError(f"package '{package}' has no {MANIFEST_NAME}")


def discover(check: bool = True) -> Registry:
    """Load every plugin's manifest; with ``check`` also import task functions to validate signatures."""
    reg = Registry()
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        source = f"entry point '{ep.name}' ({ep.value})"
        try:
            path = _package_manifest(ep.value.split(":")[0])
            version = ep.dist.version if ep.dist is not None else "0.0.0"
            reg.add(load_manifest(path, ep.value, version))
        except Exception as e:  # noqa: BLE001
            reg.failed.append(FailedPlugin(source, str(e)))
    explicit = {Path(p) for p in os.environ.get("KINTSUGI_PLUGIN_PATH", "").split(os.pathsep) if p}
    for folder in plugin_dirs():
        if not folder.is_dir():
            if folder in explicit:  # a typo in KINTSUGI_PLUGIN_PATH; a missing user folder is normal
                reg.failed.append(FailedPlugin(str(folder), "plugin folder not found (KINTSUGI_PLUGIN_PATH)"))
            continue
        if str(folder) not in sys.path:
            sys.path.append(str(folder))
        for pkg in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
            manifest = pkg / MANIFEST_NAME
            if not manifest.is_file():
                reg.failed.append(FailedPlugin(str(pkg), f"no {MANIFEST_NAME} in this plugin folder"))
                continue
            reg.add_manifest(manifest, pkg.name)
    if check:
        reg.check()
    return reg


_REGISTRY: Registry | None = None


def get_registry(refresh: bool = False) -> Registry:
    global _REGISTRY
    if _REGISTRY is None or refresh:
        _REGISTRY = discover()
    return _REGISTRY

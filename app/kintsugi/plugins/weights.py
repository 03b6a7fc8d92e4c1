"""Model weights: safetensors files named in a plugin's manifest, checked against their sha256.

Weights never come from the network. A checksum mismatch is an error, not a warning: a model that
silently runs on different weights gives numbers nobody can reproduce. A user may point a task at other
weights (``--weights name=PATH``); those are recorded with their own checksum and not compared.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class WeightsError(Exception):
    """Weights missing, corrupt or not the ones the manifest names."""


def sha256_of(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass
class WeightsFile:
    """One weights file: where it is, what checksum it must have (None for user-supplied files)."""

    name: str
    path: Path
    sha256: str | None = None
    user_supplied: bool = False
    _verified: str | None = field(default=None, repr=False)

    def verify(self) -> str:
        """Check the file exists and matches the manifest; returns its sha256."""
        if self._verified:
            return self._verified
        if not self.path.is_file():
            raise WeightsError(f"weights '{self.name}': file not found: {self.path}")
        digest = sha256_of(self.path)
        if self.sha256 and not self.user_supplied and digest != self.sha256.lower():
            raise WeightsError(
                f"weights '{self.name}': checksum mismatch for {self.path} "
                f"(manifest {self.sha256[:12]}…, file {digest[:12]}…); reinstall the plugin or pass other weights"
            )
        self._verified = digest
        return digest

    def load(self, device: str = "cpu") -> dict[str, Any]:
        """Tensors by name (torch), without pickle."""
        self.verify()
        try:
            from safetensors.torch import load_file
        except ImportError as e:  # pragma: no cover - safetensors is a dependency
            raise WeightsError(f"weights '{self.name}': safetensors is not installed ({e})") from None
        try:
            return load_file(str(self.path), device=device)
        except Exception as e:
            raise WeightsError(f"weights '{self.name}': cannot read {self.path}: {e}") from None


class Weights:
    """The weights a task may use, by name; loaded lazily and cached for the life of the process.

    Workers keep their process warm between jobs, so a model's tensors are read once per worker.
    """

    _cache: dict[tuple[str, str, str], dict[str, Any]] = {}

    def __init__(self, files: dict[str, WeightsFile] | None = None) -> None:
        self.files = dict(files or {})

    def __contains__(self, name: str) -> bool:
        return name in self.files

    def names(self) -> list[str]:
        return list(self.files)

    def path(self, name: str) -> Path:
        return self._file(name).path

    def _file(self, name: str) -> WeightsFile:
        if name not in self.files:
            known = ", ".join(self.files) or "none"
            raise WeightsError(f"no weights named '{name}' (this task has: {known})")
        return self.files[name]

    def load(self, name: str, device: str = "cpu") -> dict[str, Any]:
        f = self._file(name)
        digest = f.verify()
        key = (str(f.path), digest, device)
        if key not in Weights._cache:
            Weights._cache[key] = f.load(device)
        return Weights._cache[key]

    def checksums(self) -> dict[str, str]:
        """sha256 of every file, for provenance."""
        return {name: f.verify() for name, f in self.files.items()}

    def to_spec(self) -> dict[str, dict[str, Any]]:
        return {n: {"path": str(f.path), "sha256": f.sha256, "user_supplied": f.user_supplied}
                for n, f in self.files.items()}

    @classmethod
    def from_spec(cls, spec: dict[str, dict[str, Any]] | None) -> Weights:
        return cls({n: WeightsFile(n, Path(d["path"]), d.get("sha256"), bool(d.get("user_supplied")))
                    for n, d in (spec or {}).items()})


NO_WEIGHTS = Weights()

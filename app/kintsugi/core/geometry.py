"""Physical geometry of voxel grids, following ITK's conventions.

Arrays are stored in numpy order ``(z, y, x)`` -- what SimpleITK's ``GetArrayFromImage`` returns --
while ``spacing``, ``origin`` and ``direction`` are in ITK order ``(x, y, z)`` in LPS millimetres.
Keeping exactly ITK's convention means a volume round-trips through SimpleITK, DICOM and NIfTI
without any axis juggling, and every algorithm can ask ``index_to_physical`` instead of guessing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

_ORIENT_LETTERS = {0: ("R", "L"), 1: ("A", "P"), 2: ("I", "S")}


def _as_direction(direction: object, ndim: int) -> np.ndarray:
    d = np.asarray(direction, dtype=float)
    if d.size != ndim * ndim:
        raise ValueError(f"direction must have {ndim * ndim} entries, got {d.size}")
    d = d.reshape(ndim, ndim)
    if not np.all(np.isfinite(d)):
        raise ValueError("direction contains non-finite values")
    # A direction matrix must be a rotation or reflection; tolerate the rounding real headers carry.
    if not np.allclose(d.T @ d, np.eye(ndim), atol=1e-3):
        raise ValueError("direction is not orthonormal")
    return d


@dataclass(frozen=True)
class Geometry:
    """Where a voxel grid sits in patient/world space (LPS, mm).

    ``direction`` columns are the physical directions of the x, y, z index axes, as in ITK.
    """

    spacing: tuple[float, ...] = (1.0, 1.0, 1.0)
    origin: tuple[float, ...] = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))

    def __post_init__(self) -> None:
        spacing = tuple(float(s) for s in self.spacing)
        ndim = len(spacing)
        if ndim not in (2, 3):
            raise ValueError(f"geometry must be 2D or 3D, got {ndim} spacing values")
        if not all(np.isfinite(s) and s > 0 for s in spacing):
            raise ValueError(f"spacing must be positive and finite, got {spacing}")
        origin = tuple(float(o) for o in self.origin)
        if len(origin) != ndim or not all(np.isfinite(origin)):
            raise ValueError(f"origin must be {ndim} finite numbers, got {origin}")
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "origin", origin)
        object.__setattr__(self, "direction", _as_direction(self.direction, ndim))

    @property
    def ndim(self) -> int:
        return len(self.spacing)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Geometry):
            return NotImplemented
        return (
            self.ndim == other.ndim
            and np.allclose(self.spacing, other.spacing, rtol=1e-6, atol=1e-9)
            and np.allclose(self.origin, other.origin, rtol=1e-6, atol=1e-6)
            and np.allclose(self.direction, other.direction, atol=1e-6)
        )

    def __hash__(self) -> int:  # frozen dataclass with an ndarray field needs an explicit hash
        return hash((self.spacing, self.origin, self.direction.round(6).tobytes()))

    def affine(self) -> np.ndarray:
        """4x4 (or 3x3 for 2D) matrix mapping ITK-order index ``(i, j, k, 1)`` to physical LPS."""
        n = self.ndim
        a = np.eye(n + 1)
        a[:n, :n] = self.direction @ np.diag(self.spacing)
        a[:n, n] = self.origin
        return a

    def array_affine(self) -> np.ndarray:
        """Affine from numpy-order index ``(k, j, i, 1)`` to physical ``(x, y, z)`` LPS."""
        n = self.ndim
        a = self.affine()
        perm = np.eye(n + 1)
        perm[:n, :n] = np.eye(n)[::-1]
        return a @ perm

    def index_to_physical(self, index_xyz: np.ndarray) -> np.ndarray:
        """ITK-order continuous indices ``(..., ndim)`` to physical points."""
        idx = np.asarray(index_xyz, dtype=float)
        return idx @ (self.direction @ np.diag(self.spacing)).T + np.asarray(self.origin)

    def physical_to_index(self, points: np.ndarray) -> np.ndarray:
        """Physical points ``(..., ndim)`` to continuous ITK-order indices."""
        p = np.asarray(points, dtype=float) - np.asarray(self.origin)
        m = np.linalg.inv(self.direction @ np.diag(self.spacing))
        return p @ m.T

    def orientation_code(self) -> str:
        """Three-letter code of where each index axis points, e.g. ``LPS`` for a standard axial CT.

        Each letter is the patient direction the axis *increases towards* (ITK/DICOM convention,
        so an identity direction reads ``LPS``); oblique axes take the dominant component.
        """
        if self.ndim != 3:
            return ""
        letters = []
        for col in self.direction.T:
            axis = int(np.argmax(np.abs(col)))
            letters.append(_ORIENT_LETTERS[axis][1] if col[axis] > 0 else _ORIENT_LETTERS[axis][0])
        return "".join(letters)

    def is_oblique(self, tol: float = 1e-3) -> bool:
        return bool(np.any((np.abs(self.direction) > tol) & (np.abs(self.direction) < 1 - tol)))

    def to_dict(self) -> dict:
        return {
            "spacing": list(self.spacing),
            "origin": list(self.origin),
            "direction": self.direction.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Geometry:
        return cls(tuple(d["spacing"]), tuple(d["origin"]), np.asarray(d["direction"], dtype=float))

    def physical_extent(self, shape_zyx: tuple[int, ...]) -> np.ndarray:
        """Corner points of a grid of this geometry, physical coordinates ``(2**ndim, ndim)``."""
        sizes = list(shape_zyx)[::-1]
        corners = np.array(np.meshgrid(*[[0, s - 1] for s in sizes], indexing="ij")).reshape(self.ndim, -1).T
        return self.index_to_physical(corners)

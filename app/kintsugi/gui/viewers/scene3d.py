"""Meshes, point clouds and fragments in a pyvistaqt interactor, each piece in its own colour."""

from __future__ import annotations

import numpy as np
import pyvista as pv
from pyvistaqt import QtInteractor
from qtpy.QtWidgets import QVBoxLayout, QWidget

from kintsugi.core import Fragments, Layer, Mesh, PointCloud
from kintsugi.core.layers import palette_color


def to_polydata(geom: Mesh | PointCloud, pose: np.ndarray | None = None) -> pv.PolyData:
    pts = geom.vertices if isinstance(geom, Mesh) else geom.points
    if pose is not None:
        pts = pts @ pose[:3, :3].T + pose[:3, 3]
    if isinstance(geom, Mesh) and geom.n_faces:
        faces = np.hstack([np.full((geom.n_faces, 1), 3), geom.faces]).ravel()
        return pv.PolyData(pts, faces)
    return pv.PolyData(pts)


class Scene3DView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        # No auto-update timer: pyvistaqt's default re-renders 5 times a second forever, which with
        # software OpenGL (remote desktops, Xvfb) starves the UI; we render after each change instead.
        self.plotter = QtInteractor(self, auto_update=False)
        self.plotter.set_background("#1e1f24", top="#3a3d46")
        self.plotter.add_axes()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plotter.interactor)
        self._actors: dict[int, list] = {}
        self._n_pieces = 0

    def supports(self, layer: Layer) -> bool:
        return isinstance(layer, Mesh | PointCloud | Fragments)

    def add(self, layer: Layer) -> None:
        actors = []
        if isinstance(layer, Fragments):
            for frag in layer:
                actors.append(self._add_geometry(frag.geometry, frag.pose, palette_color(self._n_pieces)))
                self._n_pieces += 1
        elif isinstance(layer, Mesh | PointCloud):
            actors.append(self._add_geometry(layer, None, layer.color or palette_color(self._n_pieces)))
            self._n_pieces += 1
        for a in actors:
            a.SetVisibility(layer.visible)
        self._actors[id(layer)] = actors
        self.plotter.reset_camera()

    def _add_geometry(self, geom: Mesh | PointCloud, pose: np.ndarray | None, color) -> object:
        poly = to_polydata(geom, pose)
        rgb = tuple(c / 255.0 for c in color)
        if isinstance(geom, Mesh) and geom.n_faces:
            return self.plotter.add_mesh(poly, color=rgb, smooth_shading=True, specular=0.3, render=False)
        return self.plotter.add_mesh(poly, color=rgb, point_size=3, render_points_as_spheres=True, render=False)

    def remove(self, layer: Layer) -> None:
        for a in self._actors.pop(id(layer), []):
            self.plotter.remove_actor(a, render=False)
        self.plotter.render()

    def update(self, layer: Layer, what: str) -> None:  # type: ignore[override]
        if what in ("visible", "opacity"):
            for a in self._actors.get(id(layer), []):
                a.SetVisibility(layer.visible)
                a.GetProperty().SetOpacity(layer.opacity)
            self.plotter.render()
        elif what in ("pose", "data", "color", "vertices", "points"):
            self.remove(layer)
            self.add(layer)

    def close_viewer(self) -> None:
        self.plotter.close()

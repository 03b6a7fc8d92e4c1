"""Meshes, point clouds, fragments and label-map surfaces in a pyvistaqt interactor.

Each piece gets its own colour; a mesh with per-vertex scalars is coloured by them with a colour bar;
label maps appear as smoothed surfaces (VTK SurfaceNets) in their label colours, in physical mm.
Picking a piece selects its layer, so the Layers dock and the 3D view always agree.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyvista as pv
from pyvistaqt import QtInteractor
from qtpy.QtWidgets import QVBoxLayout, QWidget

from kintsugi.core import Fragments, LabelMap, Layer, Mesh, PointCloud
from kintsugi.core.layers import palette_color
from kintsugi.gui.viewers.kinds import shown_in_3d

# Camera directions in LPS (x to the patient's left, y to the back, z up): (view vector, view-up).
STANDARD_VIEWS = {
    "anterior": ((0, -1, 0), (0, 0, 1)), "posterior": ((0, 1, 0), (0, 0, 1)),
    "left": ((1, 0, 0), (0, 0, 1)), "right": ((-1, 0, 0), (0, 0, 1)),
    "superior": ((0, 0, 1), (0, -1, 0)), "inferior": ((0, 0, -1), (0, -1, 0)),
}


def to_polydata(geom: Mesh | PointCloud, pose: np.ndarray | None = None) -> pv.PolyData:
    pts = geom.vertices if isinstance(geom, Mesh) else geom.points
    if pose is not None:
        pts = pts @ pose[:3, :3].T + pose[:3, 3]
    if isinstance(geom, Mesh) and geom.n_faces:
        faces = np.hstack([np.full((geom.n_faces, 1), 3), geom.faces]).ravel()
        poly = pv.PolyData(pts, faces)
    else:
        poly = pv.PolyData(pts)
    for name, values in geom.scalars.items():
        poly.point_data[name] = np.asarray(values)
    return poly


# Colour bars sit inside the right edge with room for their labels, even in a narrow pane.
BAR_PLACE = {"position_x": 0.76, "position_y": 0.1, "width": 0.05, "height": 0.6, "title_font_size": 14,
             "label_font_size": 12}


def label_surfaces(layer: LabelMap) -> pv.PolyData:
    """Smoothed external surfaces of every label, with an RGB cell array in the label colours."""
    g = layer.geometry
    img = pv.ImageData(dimensions=layer.size_xyz, spacing=g.spacing, origin=g.origin, direction_matrix=g.direction)
    img.point_data["labels"] = np.ascontiguousarray(layer.data).ravel()  # (z, y, x) C order = VTK x-fastest
    surf = img.contour_labels(smoothing=True, smoothing_iterations=16)
    if surf.n_cells:
        owners = np.asarray(surf.cell_data["boundary_labels"])
        owners = (owners if owners.ndim == 1 else owners[:, 0]).astype(int)  # external: [label, background]
        lut = {v: info.color for v, info in layer.labels.items()}
        surf.cell_data["rgb"] = np.array([lut.get(v, (200, 200, 200)) for v in owners], dtype=np.uint8)
        surf.cell_data["label"] = owners
    return surf


def isosurface(volume, level: float) -> Mesh:
    """The surface where ``volume`` crosses ``level`` (e.g. bone at 300 HU), in physical mm (flying edges)."""
    from kintsugi.core import Volume

    if not isinstance(volume, Volume):
        raise TypeError("an iso-surface needs a Volume")
    g = volume.geometry
    img = pv.ImageData(dimensions=volume.size_xyz, spacing=g.spacing, origin=g.origin, direction_matrix=g.direction)
    img.point_data["values"] = np.ascontiguousarray(volume.data).ravel()
    surf = img.contour([float(level)], scalars="values", method="flying_edges").triangulate()
    if surf.n_cells == 0:
        raise ValueError(f"no voxel of '{volume.name}' reaches {level:g}")
    faces = np.asarray(surf.faces).reshape(-1, 4)[:, 1:]
    return Mesh(name=f"{volume.name} surface {level:g}", vertices=np.asarray(surf.points, float), faces=faces,
                color=(233, 220, 201))


def _common_range(layer: Fragments, scalar: str) -> tuple[float, float] | None:
    """One colour scale for all pieces (robust: 2nd-98th percentile), so colours compare across pieces."""
    values = [np.asarray(f.geometry.scalars[scalar], float) for f in layer if scalar in f.geometry.scalars]
    if not values:
        return None
    v = np.concatenate(values)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return None
    lo, hi = np.percentile(v, [2, 98])
    return float(lo), float(max(hi, lo + 1e-9))


def display_range(geom: Mesh | PointCloud) -> tuple[float, float] | None:
    """The colour range a task asked for (``metadata["clim"]``: e.g. height loss 0-50 %, where the data's
    own extremes would spend half the scale on noise below 0); None lets pyvista use the data range."""
    clim = geom.metadata.get("clim")
    try:
        lo, hi = (float(x) for x in clim)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    return (lo, hi) if np.isfinite(lo) and np.isfinite(hi) and hi > lo else None


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
        self._layer_of_actor: dict[int, Layer] = {}
        self._bars: dict[int, str] = {}
        self._n_pieces = 0
        self._piece_of_actor: dict[int, int] = {}  # actor -> index of its piece in a Fragments layer
        self._color_by: dict[int, str] = {}  # Fragments layer -> name of the per-vertex scalar shown
        self.piece_listeners: list[Callable[[Fragments, int], None]] = []  # told which piece a pick hit
        self.on_pick: Callable[[Layer | None], None] | None = None
        self._picking = False

    def enable_picking(self, callback: Callable[[Layer | None], None]) -> None:
        """Right-click a piece to select its layer (left drag stays rotation, as users expect)."""
        self.on_pick = callback
        if not self._picking:
            self.plotter.track_click_position(self.pick_at_display, side="right", viewport=True)
            self._picking = True

    def pick_at_display(self, pos) -> None:
        """Select the layer whose piece is under display position ``pos`` (pixels), or nothing."""
        import vtk

        picker = vtk.vtkPropPicker()
        picker.Pick(float(pos[0]), float(pos[1]), 0.0, self.plotter.renderer)
        self._picked(picker.GetActor())

    def _picked(self, actor) -> None:
        layer = self._layer_of_actor.get(id(actor)) if actor is not None else None
        if self.on_pick is not None:
            self.on_pick(layer)
        piece = self._piece_of_actor.get(id(actor)) if actor is not None else None
        if isinstance(layer, Fragments) and piece is not None:
            for listener in list(self.piece_listeners):
                listener(layer, piece)

    def supports(self, layer: Layer) -> bool:
        return shown_in_3d(layer)

    def add(self, layer: Layer) -> None:
        actors = []
        if isinstance(layer, Fragments):
            scalar = self._color_by.get(id(layer))
            clim = _common_range(layer, scalar) if scalar else None
            for k, frag in enumerate(layer):
                color = frag.geometry.color or palette_color(self._n_pieces)
                actor = self._add_piece(frag.geometry, color, scalar if clim else None, clim,
                                        scalar if k == 0 and clim else None)
                actor.user_matrix = frag.pose  # moved by its pose, so a pose change needs no new geometry
                self._piece_of_actor[id(actor)] = k
                actors.append(actor)
                self._n_pieces += 1
            if clim:
                self._bars[id(layer)] = scalar
        elif isinstance(layer, Mesh | PointCloud):
            actors.append(self._add_geometry(layer, layer.color or palette_color(self._n_pieces)))
            self._n_pieces += 1
        elif isinstance(layer, LabelMap):
            surf = label_surfaces(layer)
            if surf.n_cells:
                actors.append(self.plotter.add_mesh(surf, scalars="rgb", rgb=True, smooth_shading=True,
                                                    render=False, name=f"labels-{id(layer)}"))
        for a in actors:
            a.SetVisibility(layer.visible)
            a.GetProperty().SetOpacity(layer.opacity)
            self._layer_of_actor[id(a)] = layer
        self._actors[id(layer)] = actors
        self._restyle_label_surfaces()
        self.plotter.reset_camera()

    # Label surfaces fade while a measured mesh is shown (only in 3D; the layer's opacity is untouched).
    LABEL_CONTEXT_OPACITY = 0.2

    def _shows_quantity(self, layer: Layer) -> bool:
        if not layer.visible:
            return False
        if isinstance(layer, Fragments):
            return id(layer) in self._color_by
        return isinstance(layer, Mesh | PointCloud) and bool(layer.scalars)

    def label_surface_opacity(self, layer: LabelMap) -> float:
        """A label map's surfaces enclose what a task measured inside them (a vertebra's body coloured by
        height loss sits inside the vertebra's label surface), so they fade to context while any
        measured mesh is visible; hiding the meshes brings them back."""
        measured = any(self._shows_quantity(other) for key, other in self._layers_in_scene().items()
                       if key != id(layer))
        return layer.opacity * (self.LABEL_CONTEXT_OPACITY if measured else 1.0)

    def _layers_in_scene(self) -> dict[int, Layer]:
        out: dict[int, Layer] = {}
        for actors in self._actors.values():
            for a in actors:
                layer = self._layer_of_actor.get(id(a))
                if layer is not None:
                    out[id(layer)] = layer
        return out

    def _restyle_label_surfaces(self) -> None:
        for layer in self._layers_in_scene().values():
            if isinstance(layer, LabelMap):
                for a in self._actors.get(id(layer), []):
                    a.GetProperty().SetOpacity(self.label_surface_opacity(layer))

    def _add_geometry(self, geom: Mesh | PointCloud, color) -> object:
        poly = to_polydata(geom)
        rgb = tuple(c / 255.0 for c in color)
        if geom.scalars:
            name = next(iter(geom.scalars))
            # One bar per quantity: meshes that show the same value (each vertebra's height loss) share it,
            # and pyvista keeps one colour range across all of them.
            title = name
            self._bars[id(geom)] = title  # geom is the Mesh or PointCloud layer itself
            return self.plotter.add_mesh(poly, scalars=name, cmap="viridis", smooth_shading=True, render=False,
                                         scalar_bar_args=self._bar_args(title), clim=display_range(geom),
                                         point_size=3)
        if isinstance(geom, Mesh) and geom.n_faces:
            return self.plotter.add_mesh(poly, color=rgb, smooth_shading=True, specular=0.3, render=False)
        return self.plotter.add_mesh(poly, color=rgb, point_size=3, render_points_as_spheres=True, render=False)

    def _bar_args(self, title: str) -> dict:
        """A new quantity's bar goes left of the bars already shown, so two never overlap."""
        shown = [t for t in list(self.plotter.scalar_bars.keys()) if t != title]  # not iterable by key
        place = dict(BAR_PLACE, position_x=max(0.02, BAR_PLACE["position_x"] - 0.2 * len(shown)))
        return {"title": title, "vertical": True, "fmt": "%.2f", **place}

    def _add_piece(self, geom: Mesh | PointCloud, color, scalar: str | None, clim, bar_title: str | None) -> object:
        poly = to_polydata(geom, None)
        if scalar is not None and scalar in geom.scalars:
            return self.plotter.add_mesh(poly, scalars=scalar, cmap="coolwarm_r", clim=clim, smooth_shading=True,
                                         render=False, point_size=3, show_scalar_bar=bar_title is not None,
                                         scalar_bar_args=self._bar_args(bar_title or ""))
        rgb = tuple(c / 255.0 for c in color)
        if isinstance(geom, Mesh) and geom.n_faces:
            return self.plotter.add_mesh(poly, color=rgb, smooth_shading=True, specular=0.3, render=False,
                                         scalars=None)
        return self.plotter.add_mesh(poly, color=rgb, point_size=3, render_points_as_spheres=True, render=False,
                                     scalars=None)

    def set_color_by(self, layer: Fragments, scalar: str | None) -> None:
        """Colour every piece of ``layer`` by a per-vertex value (one colour bar), or back to piece colours."""
        if scalar is None:
            self._color_by.pop(id(layer), None)
        else:
            self._color_by[id(layer)] = scalar
        if id(layer) in self._actors:
            camera = self.plotter.camera_position
            self.remove(layer)
            self.add(layer)
            self.plotter.camera_position = camera
            self.plotter.render()

    def highlight_piece(self, layer: Fragments, index: int | None) -> None:
        """Make one piece of a fragment set glow (the one being moved or reviewed)."""
        for a in self._actors.get(id(layer), []):
            a.GetProperty().SetAmbient(0.5 if self._piece_of_actor.get(id(a)) == index else 0.0)
        self.plotter.render()

    def remove(self, layer: Layer) -> None:
        for a in self._actors.pop(id(layer), []):
            self._layer_of_actor.pop(id(a), None)
            self._piece_of_actor.pop(id(a), None)
            self.plotter.remove_actor(a, render=False)
        title = self._bars.pop(id(layer), None)
        if title is not None and title in self.plotter.scalar_bars and title not in self._bars.values():
            self.plotter.remove_scalar_bar(title, render=False)
        self._restyle_label_surfaces()
        self.plotter.render()

    def update(self, layer: Layer, what: str) -> None:  # type: ignore[override]
        if what in ("visible", "opacity"):
            for a in self._actors.get(id(layer), []):
                a.SetVisibility(layer.visible)
                a.GetProperty().SetOpacity(layer.opacity)
            self._restyle_label_surfaces()
            self.plotter.render()
        elif what == "pose" and isinstance(layer, Fragments) and len(self._actors.get(id(layer), [])) == len(layer):
            for a in self._actors[id(layer)]:
                a.user_matrix = layer[self._piece_of_actor[id(a)]].pose
            self.plotter.render()
        elif what in ("pose", "data", "color", "vertices", "points", "labels", "items"):
            self.remove(layer)
            self.add(layer)

    def actors_of(self, layer: Layer) -> list:
        return list(self._actors.get(id(layer), []))

    def highlight(self, layers: list[Layer]) -> None:
        """Make the selected layers' pieces glow a little (ambient light), so a pick is visible."""
        chosen = {id(x) for x in layers}
        for key, actors in self._actors.items():
            for a in actors:
                a.GetProperty().SetAmbient(0.45 if key in chosen else 0.0)
        self.plotter.render()

    def standard_view(self, name: str) -> None:
        if name == "reset":
            self.plotter.reset_camera()
            return
        vector, up = STANDARD_VIEWS[name]
        self.plotter.view_vector(vector, viewup=up)
        self.plotter.reset_camera()

    def close_viewer(self) -> None:
        self.plotter.close()

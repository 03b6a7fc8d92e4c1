"""Slicer-style linked slice panes: axial, sagittal and coronal views of one physical world.

Each pane is its own napari ``ViewerModel`` + ``QtViewer``; every Volume and LabelMap is added to all
three, placed with :func:`napari_affine` so that napari's world is (z, y, x) LPS millimetres in every
pane. A pane differs from the others only in which world axis it slices along (``dims.order``) and in
which way its screen axes run (``camera.orientation2d``):

========  ============  ==========================  =========================================
pane      slices along  screen vertical             screen horizontal
========  ============  ==========================  =========================================
axial     z (S-I)       y, anterior up              x, patient right on the left (radiological)
sagittal  x (R-L)       z, superior up              y, anterior on the left (as in 3D Slicer)
coronal   y (A-P)       z, superior up              x, patient right on the left
========  ============  ==========================  =========================================

The panes share one crosshair point. A click (press and release without dragging) in a pane moves it
to the clicked position, which moves the other two panes' slices; scrolling a pane's own slice
(slider, Ctrl+wheel) moves it along that pane's normal. The crosshair is drawn as a vispy line in each
pane's scene (``qt_viewer.canvas.view.scene``) -- not a napari layer, so it never shows in layer lists,
never changes the world extent and costs one tiny vertex upload when the point moves. While a pane
scrolls, the other panes' lines follow at most every ``CROSSHAIR_LAG_MS`` (one canvas repainted per
slice instead of three); clicks and :meth:`SliceGrid.set_crosshair` redraw at once. Orientation letters
and pane names are Qt labels over the canvases (a napari text overlay is a GL visual redrawn with every
slice).

Window/level: right-button drag (or Ctrl+left drag) in any pane adjusts the window of the top visible
volume in all panes; :meth:`SliceGrid.apply_preset` sets a CT preset (see ``window_level.PRESETS``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from napari.components import ViewerModel
from napari.qt import QtViewer
from qtpy.QtCore import QEvent, Qt, QTimer, Signal
from qtpy.QtWidgets import QFrame, QGridLayout, QLabel, QVBoxLayout, QWidget
from vispy.scene.visuals import Line

from kintsugi.core import LabelMap, Layer, Volume
from kintsugi.gui.viewers import window_level as wl
from kintsugi.gui.viewers.napari_util import (
    initial_contrast,
    label_colormap,
    make_current,
    napari_view,
    prime_gl_queries,
    safe_colormap,
)

# napari world axes: 0 = z (+superior), 1 = y (+posterior), 2 = x (+patient left).
Z, Y, X = 0, 1, 2
AXIS_NAMES = ("z", "y", "x")


@dataclass(frozen=True)
class PaneSpec:
    name: str
    normal: int  # the world axis this pane slices along
    order: tuple[int, int, int]  # napari dims.order: last two are displayed (vertical, horizontal)
    orientation: tuple[str, str]  # napari camera.orientation2d (vertical, horizontal)
    letters: dict[str, str]  # orientation letters at the screen edges
    color: str  # title colour, as 3D Slicer's red/yellow/green slice views


PANE_SPECS: dict[str, PaneSpec] = {
    "axial": PaneSpec("axial", Z, (Z, Y, X), ("down", "right"),
                      {"top": "A", "bottom": "P", "left": "R", "right": "L"}, "#f34a33"),
    "sagittal": PaneSpec("sagittal", X, (X, Z, Y), ("up", "right"),
                         {"top": "S", "bottom": "I", "left": "A", "right": "P"}, "#edd54c"),
    "coronal": PaneSpec("coronal", Y, (Y, Z, X), ("up", "right"),
                        {"top": "S", "bottom": "I", "left": "R", "right": "L"}, "#6eb04b"),
}
# 3D Slicer's "Four-Up" layout: axial top-left, 3D top-right, sagittal bottom-left, coronal bottom-right.
PANE_CELLS: dict[str, tuple[int, int]] = {"axial": (0, 0), "sagittal": (1, 0), "coronal": (1, 1)}
FOURTH_CELL = (0, 1)

_LETTER_STYLE = "color: #ffe680; background: transparent; font-weight: bold; font-size: 13px;"
_TITLE_STYLE = "background: transparent; font-size: 12px;"
_CROSSHAIR_COLOR = (1.0, 0.85, 0.2, 0.75)
_CLICK_PIXELS = 3.0
# While a pane scrolls, the other panes' crosshair lines are redrawn at most this often (ms); 0: every step.
CROSSHAIR_LAG_MS = 50  # a press and release closer than this is a click, not a drag


def _overlay_label(text: str, parent: QWidget, style: str) -> QLabel:
    label = QLabel(text, parent)
    label.setStyleSheet(style)
    label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)  # clicks go to the canvas
    label.show()
    return label


class SlicePane(QWidget):
    """One napari canvas showing the world sliced along one axis."""

    def __init__(self, spec: PaneSpec, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.spec = spec
        self.name = spec.name
        self.model = ViewerModel(title=spec.name)
        self.ensure_dims()
        self.model.scene.camera.orientation2d = spec.orientation
        self.qt_viewer = QtViewer(self.model, show_welcome_screen=False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.qt_viewer)
        self._trim_slider_row()
        # Orientation letters and the pane's name: plain Qt labels over the canvas. (napari text
        # overlays would do too, but each is a GL text visual redrawn with every slice: ~3 ms a pane
        # under software GL, a third of the budget for 30 slices/s.)
        native = self.qt_viewer.canvas.native
        self.letters: dict[str, QLabel] = {}
        for edge, letter in spec.letters.items():
            self.letters[edge] = _overlay_label(letter, native, _LETTER_STYLE)
        self.title = _overlay_label(spec.name.capitalize(), native, f"color: {spec.color}; {_TITLE_STYLE}")
        native.installEventFilter(self)
        self._place_labels()
        self._crosshair = Line(pos=np.zeros((4, 2), np.float32), color=_CROSSHAIR_COLOR, connect="segments",
                               width=1.0, method="gl", parent=self.qt_viewer.canvas.view.scene)
        self._crosshair.order = 1_000_000  # after every layer visual
        self._crosshair.set_gl_state("translucent", depth_test=False)
        self._crosshair.visible = False
        self.crosshair_drawn: tuple[float, float] | None = None  # (vertical, horizontal) world mm of the lines

    def ensure_dims(self) -> None:
        """Three world axes in this pane's order. napari drops to 2 dims when its last layer goes, and a
        3D layer added then would come back in the default order: call before adding a layer."""
        dims = self.model.dims
        if dims.ndim != 3:
            dims.ndim = 3
        if tuple(dims.order) != self.spec.order:
            dims.order = self.spec.order
        if tuple(dims.axis_labels) != AXIS_NAMES:
            dims.axis_labels = AXIS_NAMES
        self._trim_slider_row()

    def _trim_slider_row(self) -> None:
        """The slice slider row keeps the axis name, the slider and the slice number. napari's play button
        and total count need ~60 px more than a pane of a small window has, and a row squeezed below its
        minimum clipped the slice number; scrolling and the slider's own extent say the rest."""
        qt_viewer = getattr(self, "qt_viewer", None)
        if qt_viewer is None:
            return
        for row in qt_viewer.dims.slider_widgets:
            for name in ("play_button", "totslice_label"):
                widget = getattr(row, name, None)
                if widget is not None:
                    widget.setVisible(False)
            for sep in row.findChildren(QFrame, "slice_label_sep"):
                sep.setVisible(False)

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt naming
        if event.type() == QEvent.Type.Resize:
            self._place_labels()
        return False

    def _place_labels(self) -> None:
        native = self.qt_viewer.canvas.native
        w, h = native.width(), native.height()
        m = 4
        for edge, label in self.letters.items():
            label.adjustSize()
            lw, lh = label.width(), label.height()
            x = {"left": m, "right": w - lw - m}.get(edge, (w - lw) // 2)
            y = {"top": m, "bottom": h - lh - m}.get(edge, (h - lh) // 2)
            label.move(x, y)
        self.title.adjustSize()
        self.title.move(m + 2, m)

    @property
    def displayed(self) -> tuple[int, int]:
        """World axes on screen: (vertical, horizontal)."""
        return self.spec.order[1], self.spec.order[2]

    def slice_position(self) -> float:
        """World coordinate (mm) of the shown slice along this pane's normal."""
        return float(self.model.dims.point[self.spec.normal])

    def shows(self, point_zyx: np.ndarray) -> bool:
        """Whether the slice on screen is the one nearest to the point (within half a step; napari's
        slider snaps the slice position to the step grid, so the point need not be on it)."""
        n = self.spec.normal
        step = self.model.dims.range[n].step
        return abs(self.model.dims.point[n] - point_zyx[n]) <= step / 2 + 1e-9

    def draw_crosshair(self, point_zyx: np.ndarray, bounds: np.ndarray | None) -> None:
        """Two lines through the point across the world's extent; ``bounds`` is (3, 2) world (lo, hi)."""
        if bounds is None:
            self._crosshair.visible = False
            self.crosshair_drawn = None
            return
        v, h = self.displayed
        pv, ph = float(point_zyx[v]), float(point_zyx[h])
        # vispy scene coordinates are (horizontal, vertical) world coordinates of the displayed axes.
        pos = np.array([[bounds[h, 0], pv], [bounds[h, 1], pv], [ph, bounds[v, 0]], [ph, bounds[v, 1]]],
                       np.float32)
        self._crosshair.set_data(pos=pos)
        self._crosshair.visible = True
        self.crosshair_drawn = (pv, ph)

    def screenshot(self) -> np.ndarray:
        """The rendered canvas as an RGBA array (rows top to bottom)."""
        return self.qt_viewer.screenshot(flash=False)

    def close_viewer(self) -> None:
        self.qt_viewer.close()


@dataclass(eq=False)
class _Entry:
    layer: Volume | LabelMap
    napari: dict[str, object] = field(default_factory=dict)  # pane name -> napari layer
    value_range: tuple[float, float] = (0.0, 1.0)


class SliceGrid(QWidget):
    """Axial, sagittal and coronal panes with a linked crosshair, in a 2x2 grid whose fourth cell
    takes another widget (the 3D view). Same duck-typed API as ``SliceView``."""

    crosshair_changed = Signal(object)  # (x, y, z) LPS mm
    cursor_info = Signal(dict)  # {"position_mm": (x, y, z), "value": float | None, "label": str | None}
    window_level_changed = Signal(object, float, float)  # volume, width, level

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.panes: dict[str, SlicePane] = {}
        self.grid_layout = QGridLayout(self)
        self.grid_layout.setContentsMargins(0, 0, 0, 0)
        self.grid_layout.setSpacing(2)
        for name, spec in PANE_SPECS.items():
            pane = SlicePane(spec, self)
            pane.setMinimumWidth(160)  # not the slider row's ~300 px: the grid must share the window with a photo
            self.panes[name] = pane
            self.grid_layout.addWidget(pane, *PANE_CELLS[name])
        for i in range(2):
            self.grid_layout.setRowStretch(i, 1)
            self.grid_layout.setColumnStretch(i, 1)
        self._fourth: QWidget | None = None
        self._entries: dict[int, _Entry] = {}
        self._by_napari: dict[int, _Entry] = {}
        self._point = np.zeros(3)  # crosshair, napari world order (z, y, x)
        self._bounds: np.ndarray | None = None  # (3, 2) world extent of all layers, (z, y, x)
        self._syncing = False
        self._zoom_syncing = False
        self._link_zoom = False
        self.crosshair_lag_ms = CROSSHAIR_LAG_MS
        self._dirty_axes: set[int] = set()
        self._redraw_timer = QTimer(self)
        self._redraw_timer.setSingleShot(True)
        self._redraw_timer.timeout.connect(self._flush_crosshair)
        for pane in self.panes.values():
            self._connect(pane)
        prime_gl_queries()

    # -- layout -----------------------------------------------------------------------------------
    @property
    def axial(self) -> SlicePane:
        return self.panes["axial"]

    @property
    def sagittal(self) -> SlicePane:
        return self.panes["sagittal"]

    @property
    def coronal(self) -> SlicePane:
        return self.panes["coronal"]

    @property
    def model(self) -> ViewerModel:
        """The axial pane's napari model (what ``SliceView.model`` was); only user layers are in it."""
        return self.axial.model

    def set_fourth(self, widget: QWidget | None) -> None:
        """Put ``widget`` (the 3D view) in the fourth cell; ``None`` leaves the cell empty. A widget
        that was there before is taken out of the layout and unparented (the caller still owns it)."""
        if self._fourth is widget:
            return
        if self._fourth is not None:
            self.grid_layout.removeWidget(self._fourth)
            self._fourth.setParent(None)
        self._fourth = widget
        if widget is not None:
            self.grid_layout.addWidget(widget, *FOURTH_CELL)
            widget.show()

    @property
    def fourth(self) -> QWidget | None:
        return self._fourth

    # -- view API (as SliceView) ------------------------------------------------------------------
    def supports(self, layer: Layer) -> bool:
        return isinstance(layer, Volume | LabelMap)

    def add(self, layer: Layer) -> None:
        if not self.supports(layer) or id(layer) in self._entries:
            return
        first = not self._entries
        entry = _Entry(layer)
        data, affine = napari_view(layer)
        if isinstance(layer, Volume):
            limits = layer.contrast or initial_contrast(layer.data, layer)
            sample = layer.data.reshape(-1)[:: max(1, layer.data.size // 1_000_000)]
            entry.value_range = (float(sample.min()), float(sample.max())) if sample.size else (0.0, 1.0)
        self._syncing = True
        try:
            for name, pane in self.panes.items():
                make_current(pane.qt_viewer)
                pane.ensure_dims()
                if isinstance(layer, LabelMap):
                    nl = pane.model.add_labels(data, name=layer.name, affine=affine,
                                               colormap=label_colormap(layer), opacity=0.5 * layer.opacity)
                else:
                    nl = pane.model.add_image(data, name=layer.name, affine=affine, contrast_limits=limits,
                                              colormap=safe_colormap(layer.colormap), opacity=layer.opacity)
                nl.visible = layer.visible
                entry.napari[name] = nl
                self._by_napari[id(nl)] = entry
        finally:
            self._syncing = False
        self._entries[id(layer)] = entry
        if isinstance(layer, LabelMap) and getattr(self, "label_editor", None) is not None:
            self.label_editor.attach(layer)
        self._update_bounds()
        if first:
            centre = layer.geometry.index_to_physical((np.array(layer.size_xyz) - 1) / 2.0)
            self.set_crosshair(centre)
            self.reset_views()
            # Panes made a moment ago have not had their final size yet (and on a HiDPI screen their
            # first size is in the wrong pixels): fit again once the layout has settled.
            QTimer.singleShot(0, self.reset_views)
        else:
            self.set_crosshair(self.crosshair_mm)

    def reset_views(self) -> None:
        """Fit every pane to the layers' extent (napari's home button)."""
        for pane in self.panes.values():
            pane.model.reset_view()

    def remove(self, layer: Layer) -> None:
        entry = self._entries.pop(id(layer), None)
        if entry is None:
            return
        self._syncing = True
        try:
            for name, nl in entry.napari.items():
                self._by_napari.pop(id(nl), None)
                pane = self.panes[name]
                make_current(pane.qt_viewer)
                if nl in pane.model.layers:
                    pane.model.layers.remove(nl)
        finally:
            self._syncing = False
        self._update_bounds()
        if self._entries:
            self.set_crosshair(self.crosshair_mm)  # back inside what is left
        else:
            self._redraw_crosshair(range(3))  # hides it

    def update(self, layer: Layer, what: str) -> None:  # type: ignore[override]
        entry = self._entries.get(id(layer))
        if entry is None:
            return
        for name, nl in entry.napari.items():
            make_current(self.panes[name].qt_viewer)
            if what == "visible":
                nl.visible = layer.visible
            elif what == "opacity":
                nl.opacity = 0.5 * layer.opacity if isinstance(layer, LabelMap) else layer.opacity
            elif what == "data":
                nl.data = napari_view(layer)[0]
            elif what == "name":
                nl.name = layer.name
            elif what == "labels" and isinstance(layer, LabelMap):
                nl.colormap = label_colormap(layer)
            elif what == "colormap" and isinstance(layer, Volume):
                nl.colormap = safe_colormap(layer.colormap)
            elif what == "contrast" and isinstance(layer, Volume):
                limits = layer.contrast or initial_contrast(layer.data, layer)
                if tuple(nl.contrast_limits) != tuple(limits):  # a W/L drag has already drawn it
                    nl.contrast_limits = limits

    def close_viewer(self) -> None:
        self._redraw_timer.stop()
        for pane in self.panes.values():
            pane.close_viewer()

    def user_layers(self) -> list[Layer]:
        """The Kintsugi layers shown, bottom to top (helpers such as the crosshair are not layers)."""
        return [self._by_napari[id(nl)].layer for nl in self.axial.model.layers if id(nl) in self._by_napari]

    def sync_order(self, layers: list[Layer]) -> None:
        """Stack napari layers in scene order in every pane (an undone delete returns to its place)."""
        for name, pane in self.panes.items():
            wanted = [self._entries[id(x)].napari[name] for x in layers
                      if id(x) in self._entries and name in self._entries[id(x)].napari]
            for target, nl in enumerate(wanted):
                current = pane.model.layers.index(nl)
                if current != target:
                    pane.model.layers.move(current, target)

    def napari_layers(self, layer: Layer) -> dict[str, object]:
        """The napari layer showing ``layer`` in each pane, by pane name."""
        entry = self._entries.get(id(layer))
        return dict(entry.napari) if entry else {}

    # -- crosshair --------------------------------------------------------------------------------
    @property
    def crosshair_mm(self) -> tuple[float, float, float]:
        """The shared point, (x, y, z) LPS millimetres."""
        z, y, x = self._point
        return float(x), float(y), float(z)

    def set_crosshair(self, point_mm) -> None:
        """Move the shared point to (x, y, z) LPS mm (clipped to the layers' extent); each pane shows
        the slice nearest to it (napari snaps a pane's slice position to its voxel grid, the point
        itself stays where it was put)."""
        new = np.asarray(point_mm, dtype=float)[::-1].copy()
        if self._bounds is not None:
            new = np.clip(new, self._bounds[:, 0], self._bounds[:, 1])
        self._move_point(new, source=None)

    def _move_point(self, new_zyx: np.ndarray, source: str | None) -> None:
        changed = [i for i in range(3) if new_zyx[i] != self._point[i]]
        self._point = new_zyx
        self._syncing = True
        try:
            for name, pane in self.panes.items():
                if name != source and not pane.shows(new_zyx):
                    pane.model.dims.set_point(pane.spec.normal, float(new_zyx[pane.spec.normal]))
        finally:
            self._syncing = False
        if source is None or self.crosshair_lag_ms <= 0:
            self._redraw_crosshair(range(3) if source is None else changed)
        else:
            # Scrolling a pane: the other panes' crosshair lines follow at most every
            # ``crosshair_lag_ms``, so a fast scroll repaints one canvas per slice, not three.
            self._dirty_axes.update(changed)
            if not self._redraw_timer.isActive():
                self._redraw_timer.start(self.crosshair_lag_ms)
        self.crosshair_changed.emit(self.crosshair_mm)

    def _redraw_crosshair(self, axes) -> None:
        axes = set(axes) | self._dirty_axes
        self._dirty_axes = set()
        self._redraw_timer.stop()
        bounds = self._bounds if self._entries else None
        for pane in self.panes.values():
            if bounds is None or axes & set(pane.displayed):
                pane.draw_crosshair(self._point, bounds)

    def _flush_crosshair(self) -> None:
        self._redraw_crosshair(())

    def _update_bounds(self) -> None:
        if not self._entries:
            self._bounds = None
            return
        lo = np.full(3, np.inf)
        hi = np.full(3, -np.inf)
        for entry in self._entries.values():
            nl = next(iter(entry.napari.values()))
            ext = np.asarray(nl.extent.world)  # (2, 3): first and last voxel centres
            half = np.abs(nl.affine.affine_matrix[:3, :3]).sum(axis=1) / 2.0  # half a voxel, world axes
            lo = np.minimum(lo, ext[0] - half)
            hi = np.maximum(hi, ext[1] + half)
        self._bounds = np.stack([lo, hi], axis=1)

    # -- pane events ------------------------------------------------------------------------------
    def _connect(self, pane: SlicePane) -> None:
        pane.model.dims.events.point.connect(lambda _e=None, p=pane: self._on_pane_point(p))
        pane.model.mouse_drag_callbacks.append(self._mouse_drag_callback(pane))
        pane.model.mouse_move_callbacks.append(self._mouse_move_callback)
        pane.model.scene.camera.events.zoom.connect(lambda _e=None, p=pane: self._on_zoom(p))

    def _on_pane_point(self, pane: SlicePane) -> None:
        """A pane's own slice moved (slider, Ctrl+wheel, keyboard): move the point along its normal."""
        if self._syncing or not self._entries:
            return
        n = pane.spec.normal
        value = pane.slice_position()
        if value == self._point[n]:
            return
        new = self._point.copy()
        new[n] = value
        self._move_point(new, source=pane.name)

    @property
    def link_zoom(self) -> bool:
        """When on, zooming one pane gives the others the same camera zoom (turning it on syncs them
        to the axial pane)."""
        return self._link_zoom

    @link_zoom.setter
    def link_zoom(self, on: bool) -> None:
        self._link_zoom = bool(on)
        if self._link_zoom:
            self._on_zoom(self.axial)

    def _on_zoom(self, pane: SlicePane) -> None:
        if not self._link_zoom or self._zoom_syncing:
            return
        self._zoom_syncing = True
        try:
            for other in self.panes.values():
                if other is not pane:
                    other.model.scene.camera.zoom = pane.model.scene.camera.zoom
        finally:
            self._zoom_syncing = False

    def _mouse_drag_callback(self, pane: SlicePane):
        def on_drag(viewer, event):
            wl_drag = event.button == 2 or (event.button == 1 and "Control" in event.modifiers)
            if wl_drag:
                yield from self._window_level_drag(pane, event)
                return
            if event.button != 1:
                return
            press_pos = np.asarray(event.pos, float)
            press_world = np.asarray(event.position, float)
            dragged = False
            yield
            while event.type == "mouse_move":
                if np.hypot(*(np.asarray(event.pos, float) - press_pos)) > _CLICK_PIXELS:
                    dragged = True  # a pan: the camera handles it
                yield
            if not dragged:
                self.set_crosshair(press_world[::-1])

        return on_drag

    def _window_level_drag(self, pane: SlicePane, event):
        volume = self.active_volume()
        camera = pane.model.scene.camera
        pan_before = camera.mouse_pan
        camera.mouse_pan = False  # right-drag would zoom, Ctrl+left would not pan: the drag is ours
        try:
            if volume is None:
                yield
                while event.type == "mouse_move":
                    yield
                return
            width0, level0 = self.window_level(volume)
            lo, hi = self._entries[id(volume)].value_range
            scale = wl.drag_scale(lo, hi)
            press_pos = np.asarray(event.pos, float)
            yield
            while event.type == "mouse_move":
                dx, dy = np.asarray(event.pos, float) - press_pos
                self.set_window_level(volume, *wl.drag_adjust(width0, level0, dx, dy, scale))
                yield
        finally:
            camera.mouse_pan = pan_before

    def _mouse_move_callback(self, viewer, event) -> None:
        if not self._entries or event.position is None or len(event.position) != 3:
            return
        self.cursor_info.emit(self.info_at(np.asarray(event.position, float)[::-1]))

    # -- values under the cursor ------------------------------------------------------------------
    def info_at(self, point_mm) -> dict:
        """Position, top visible volume's voxel value and top visible label name at (x, y, z) mm
        (nearest voxel, no interpolation)."""
        p = np.asarray(point_mm, dtype=float)
        info: dict = {"position_mm": (float(p[0]), float(p[1]), float(p[2])), "value": None, "label": None}
        volume = self.active_volume()
        if volume is not None:
            v = _voxel(volume, p)
            if v is not None:
                info["value"] = v.item()
        labels = self._top_visible(LabelMap)
        if labels is not None:
            v = _voxel(labels, p)
            if v:
                v = int(v)
                info["label"] = labels.labels[v].name if v in labels.labels else str(v)
        return info

    def _top_visible(self, kind: type) -> Volume | LabelMap | None:
        for nl in reversed(self.axial.model.layers):
            entry = self._by_napari.get(id(nl))
            if entry is not None and isinstance(entry.layer, kind) and nl.visible:
                return entry.layer
        return None

    def active_volume(self) -> Volume | None:
        """The volume window/level acts on: the top visible one."""
        return self._top_visible(Volume)

    # -- window / level ---------------------------------------------------------------------------
    def window_level(self, layer: Volume | None = None) -> tuple[float, float]:
        """(width, level) of a volume (default: the top visible one)."""
        entry = self._volume_entry(layer)
        return wl.window_from_limits(*entry.napari["axial"].contrast_limits)

    def set_window_level(self, layer: Volume | None, width: float, level: float) -> None:
        """Set the window of a volume (default: the top visible one) in all three panes."""
        entry = self._volume_entry(layer)
        limits = wl.contrast_limits(width, level)
        for nl in entry.napari.values():
            nl.contrast_limits = limits
        entry.layer.set(contrast=limits)  # the layer holds it too: the Layers dock shows it, workspaces keep it
        self.window_level_changed.emit(entry.layer, float(width), float(level))

    def apply_preset(self, name: str, layer: Volume | None = None) -> None:
        """Apply a window/level preset (``window_level.PRESETS``: bone, soft tissue, lung, brain)."""
        self.set_window_level(layer, *wl.preset(name))

    def _volume_entry(self, layer: Volume | None) -> _Entry:
        if layer is None:
            layer = self.active_volume()
            if layer is None:
                raise ValueError("no visible volume to set the window of")
        entry = self._entries.get(id(layer))
        if entry is None or not isinstance(layer, Volume):
            raise ValueError(f"{getattr(layer, 'name', layer)!r} is not a volume shown in the slice grid")
        return entry


def _voxel(layer: Volume | LabelMap, point_mm: np.ndarray):
    """The voxel of ``layer`` nearest to a physical point, or None outside the grid."""
    ijk = np.rint(layer.geometry.physical_to_index(point_mm)).astype(int)
    i, j, k = ijk
    nz, ny, nx = layer.data.shape
    if 0 <= i < nx and 0 <= j < ny and 0 <= k < nz:
        return layer.data[k, j, i]
    return None

"""Linked axial/sagittal/coronal panes under Xvfb: placement, crosshair, orientation, window/level, cursor."""

import numpy as np
import pytest

from kintsugi.core import Geometry, LabelInfo, LabelMap, Volume

pytestmark = pytest.mark.gui

SPACING = (0.8, 0.9, 2.0)  # x, y, z
ORIGIN = (10.0, 20.0, 30.0)


@pytest.fixture
def grid(qtbot):
    from kintsugi.gui.viewers.slice_grid import SliceGrid

    g = SliceGrid()
    qtbot.addWidget(g)
    g.resize(900, 700)
    g.show()
    qtbot.waitExposed(g)
    yield g
    g.close_viewer()


def _ct_and_labels():
    data = np.full((20, 30, 40), -1000, np.int16)
    data[5:15, 10:20, 10:30] = 300
    data[8, 12, 14] = 1234  # one marked voxel: index (x, y, z) = (14, 12, 8)
    g = Geometry(SPACING, ORIGIN)
    labels = np.zeros(data.shape, np.uint8)
    labels[5:15, 10:20, 10:30] = 7
    return (Volume(name="ct", data=data, geometry=g, modality="CT", unit="HU"),
            LabelMap(name="seg", data=labels, geometry=g, labels={7: LabelInfo("L1", (230, 25, 75))}))


def _quadrants() -> Volume:
    """Brightness = 600 superior half + 300 anterior half + 100 patient-left half (LPS: +y posterior)."""
    nz, ny, nx = 40, 40, 40
    z, y, x = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    data = 600.0 * (z >= nz // 2) + 300.0 * (y < ny // 2) + 100.0 * (x >= nx // 2)
    return Volume(name="quadrants", data=data.astype(np.float32), geometry=Geometry((1.0, 1.0, 1.0)))


def test_volume_and_labels_fill_all_three_panes_with_the_same_extent(grid):
    ct, seg = _ct_and_labels()
    grid.add(ct)
    grid.add(seg)
    expected_lo = np.array(ORIGIN)[::-1]  # napari world is (z, y, x)
    expected_hi = expected_lo + (np.array((20, 30, 40)) - 1) * np.array(SPACING)[::-1]
    for pane in grid.panes.values():
        layers = pane.model.layers
        assert [nl.name for nl in layers] == ["ct", "seg"]  # no helper layers among them
        assert type(layers[1]).__name__ == "Labels"
        for nl in layers:
            assert np.allclose(nl.extent.world, [expected_lo, expected_hi], atol=1e-4)
    assert grid.user_layers() == [ct, seg]
    # The crosshair starts at the volume centre and each pane shows the slice through it.
    centre = ct.geometry.index_to_physical((np.array(ct.size_xyz) - 1) / 2)
    assert np.allclose(grid.crosshair_mm, centre, atol=1.0)
    x, y, z = grid.crosshair_mm
    assert grid.axial.slice_position() == pytest.approx(z, abs=SPACING[2] / 2)
    assert grid.sagittal.slice_position() == pytest.approx(x, abs=SPACING[0] / 2)
    assert grid.coronal.slice_position() == pytest.approx(y, abs=SPACING[1] / 2)
    grid.remove(seg)
    assert all([nl.name for nl in p.model.layers] == ["ct"] for p in grid.panes.values())
    # Emptied and filled again, every pane keeps its orientation (napari resets dims when empty).
    grid.remove(ct)
    assert all(len(p.model.layers) == 0 and p.crosshair_drawn is None for p in grid.panes.values())
    grid.add(ct)
    assert [p.model.dims.order for p in grid.panes.values()] == [(0, 1, 2), (2, 0, 1), (1, 0, 2)]


def test_orientation_letters(grid):
    letters = {name: {edge: label.text() for edge, label in pane.letters.items()} for name, pane in grid.panes.items()}
    assert letters["axial"] == {"top": "A", "bottom": "P", "left": "R", "right": "L"}
    assert letters["sagittal"] == {"top": "S", "bottom": "I", "left": "A", "right": "P"}
    assert letters["coronal"] == {"top": "S", "bottom": "I", "left": "R", "right": "L"}
    right = grid.axial.letters["right"]
    assert right.isVisible() and right.x() > grid.axial.qt_viewer.canvas.native.width() / 2


def test_fourth_cell_takes_a_widget(grid):
    from qtpy.QtWidgets import QLabel

    w = QLabel("3D")
    grid.set_fourth(w)
    assert grid.grid_layout.indexOf(w) >= 0 and grid.fourth is w
    grid.set_fourth(None)
    assert grid.grid_layout.indexOf(w) < 0 and grid.fourth is None


def _canvas_to_world(pane, px, py):
    """World (z, y, x) under canvas pixel (px, py), from the camera model alone (no napari internals)."""
    cam = pane.model.scene.camera
    w, h = pane.qt_viewer.canvas.native.width(), pane.qt_viewer.canvas.native.height()
    v, hz = pane.displayed
    sv = 1 if cam.orientation2d[0] == "down" else -1
    sh = 1 if cam.orientation2d[1] == "right" else -1
    point = np.array(pane.model.dims.point, float)
    point[v] = cam.center[-2] + sv * (py - h / 2) / cam.zoom
    point[hz] = cam.center[-1] + sh * (px - w / 2) / cam.zoom
    return point


def test_click_in_axial_moves_sagittal_and_coronal(grid, qtbot):
    ct, seg = _ct_and_labels()
    grid.add(ct)
    grid.add(seg)
    changed = []
    grid.crosshair_changed.connect(changed.append)
    z_before = grid.axial.slice_position()
    axial = grid.axial

    # 1) Through napari's mouse-callback machinery: a press and release at the same spot.
    target = np.array((z_before, 27.0, 21.0))  # world (z, y, x) in the volume
    _click_through_callbacks(axial, target)
    x, y, z = grid.crosshair_mm
    assert (x, y) == pytest.approx((21.0, 27.0)) and z == pytest.approx(z_before)
    # The panes show the slices nearest to the point (napari snaps to each axis's voxel step).
    assert grid.sagittal.slice_position() == pytest.approx(21.0, abs=SPACING[0] / 2)
    assert grid.coronal.slice_position() == pytest.approx(27.0, abs=SPACING[1] / 2)
    assert grid.axial.slice_position() == pytest.approx(z_before)  # the clicked pane keeps its slice
    assert changed and changed[-1] == pytest.approx((21.0, 27.0, z_before))
    # Every pane draws its crosshair through the point at once: (vertical, horizontal) world mm.
    assert axial.crosshair_drawn == pytest.approx((27.0, 21.0))
    assert grid.sagittal.crosshair_drawn == pytest.approx((z_before, 27.0))
    assert grid.coronal.crosshair_drawn == pytest.approx((z_before, 21.0))
    # The slice shown is the voxel nearest the point: sagittal shows x index round((21 - 10) / 0.8) = 14.
    sag_step = grid.sagittal.model.dims.current_step[2]
    assert sag_step == round((21.0 - ORIGIN[0]) / SPACING[0])

    # 2) A real click on the canvas widget, off-centre.
    from qtpy.QtCore import QPoint, Qt

    native = axial.qt_viewer.canvas.native
    px, py = native.width() // 2 + 25, native.height() // 2 - 15
    expected = _canvas_to_world(axial, px, py)
    qtbot.mouseClick(native, Qt.MouseButton.LeftButton, pos=QPoint(px, py))
    qtbot.waitUntil(lambda: grid.crosshair_mm[0] != pytest.approx(21.0), timeout=3000)
    tol = 1.5 / axial.model.scene.camera.zoom + 1e-6  # a pixel and a half
    x, y, z = grid.crosshair_mm
    assert x == pytest.approx(expected[2], abs=tol) and y == pytest.approx(expected[1], abs=tol)
    assert grid.sagittal.slice_position() == pytest.approx(x, abs=SPACING[0] / 2)
    assert grid.coronal.slice_position() == pytest.approx(y, abs=SPACING[1] / 2)


class _Event:
    """Stand-in for the vispy mouse event napari wraps (the fields our callbacks read)."""

    def __init__(self, type_, pos, position, button=1, modifiers=()):
        self.type, self.pos, self.position, self.button, self.modifiers = type_, pos, position, button, modifiers
        self.is_dragging = type_ == "mouse_move"
        self.handled = False


def _gesture(pane, world_zyx, path, button=1, modifiers=()):
    """Press at path[0], move through path[1:-1], release at path[-1] (canvas pixels), through napari's
    mouse-callback dispatch, as the canvas would (events wrapped read-only)."""
    from napari.utils._proxies import ReadOnlyWrapper
    from napari.utils.interactions import mouse_move_callbacks, mouse_press_callbacks, mouse_release_callbacks

    def wrap(kind, pos):
        return ReadOnlyWrapper(_Event(kind, pos, tuple(world_zyx), button, modifiers), exceptions=("handled",))

    mouse_press_callbacks(pane.model, wrap("mouse_press", path[0]))
    for pos in path[1:-1]:
        mouse_move_callbacks(pane.model, wrap("mouse_move", pos))
    mouse_release_callbacks(pane.model, wrap("mouse_release", path[-1]))


def _click_through_callbacks(pane, world_zyx):
    _gesture(pane, world_zyx, [(100.0, 100.0), (100.0, 100.0)])


def test_scrolling_a_pane_moves_the_point_along_its_normal(grid, qtbot):
    ct, _ = _ct_and_labels()
    grid.add(ct)
    x0, y0, _ = grid.crosshair_mm
    before = {n: p.model.dims.point for n, p in grid.panes.items()}
    grid.axial.model.dims.set_current_step(0, 3)  # what the slider and Ctrl+wheel do
    z = ORIGIN[2] + 3 * SPACING[2]
    assert grid.crosshair_mm == pytest.approx((x0, y0, z))
    assert grid.sagittal.model.dims.point == before["sagittal"]  # others keep their slices
    assert grid.coronal.model.dims.point == before["coronal"]
    # Their crosshair lines follow (throttled while scrolling): sagittal and coronal draw z vertically.
    qtbot.waitUntil(lambda: grid.sagittal.crosshair_drawn == pytest.approx((z, y0)), timeout=2000)
    assert grid.coronal.crosshair_drawn == pytest.approx((z, x0))
    assert grid.axial.crosshair_drawn == pytest.approx((y0, x0))


def test_sagittal_and_coronal_show_superior_up(grid, qtbot):
    vol = _quadrants()
    grid.add(vol)
    grid.set_window_level(vol, 1000, 500)
    for pane in grid.panes.values():
        pane.model.reset_view()
    qtbot.wait(50)

    def halves(pane):
        img = pane.screenshot()[..., :3].mean(axis=2)
        h, w = img.shape
        return img[: h // 2].mean(), img[h // 2:].mean(), img[:, : w // 2].mean(), img[:, w // 2:].mean()

    top, bottom, left, right = halves(grid.sagittal)
    assert top > bottom + 20, "sagittal: superior must be up"
    assert left > right + 10, "sagittal: anterior must be on the left"
    top, bottom, left, right = halves(grid.coronal)
    assert top > bottom + 20, "coronal: superior must be up"
    assert right > left + 3, "coronal: patient left must be on the screen's right"
    top, bottom, left, right = halves(grid.axial)
    assert top > bottom + 10, "axial: anterior must be up"
    assert right > left + 3, "axial: patient left must be on the screen's right"


def test_window_level_presets_and_drag(grid):
    from kintsugi.gui.viewers import window_level as wl

    ct, seg = _ct_and_labels()
    grid.add(ct)
    grid.add(seg)
    assert grid.active_volume() is ct
    grid.apply_preset("bone")
    for nl in grid.napari_layers(ct).values():
        assert tuple(nl.contrast_limits) == pytest.approx((-100, 900))
    assert grid.window_level(ct) == pytest.approx((1000, 400))
    grid.apply_preset("lung", ct)
    assert grid.window_level() == pytest.approx((1500, -600))

    # Right-button drag through napari's callbacks: 40 px right, 20 px down; the crosshair stays.
    point = grid.crosshair_mm
    pane = grid.coronal
    world = tuple(pane.model.dims.point)
    seen = []
    pane.model.scene.camera.events.mouse_pan.connect(lambda e: seen.append(e.value))
    _gesture(pane, world, [(100.0, 100.0), (120.0, 110.0), (140.0, 120.0), (140.0, 120.0)], button=2)
    assert seen == [False, True]  # the camera may not zoom during the drag, and is given back after
    assert pane.model.scene.camera.mouse_pan is True
    scale = wl.drag_scale(-1000, 1234)
    expected = wl.drag_adjust(1500, -600, 40, 20, scale)
    for nl in grid.napari_layers(ct).values():
        assert tuple(nl.contrast_limits) == pytest.approx(wl.contrast_limits(*expected), rel=1e-3)
    assert grid.crosshair_mm == pytest.approx(point)
    # Ctrl+left drag does the same, from the current window.
    _gesture(grid.axial, tuple(grid.axial.model.dims.point), [(0.0, 0.0), (-10.0, 0.0), (-10.0, 0.0)],
             modifiers=("Control",))
    assert grid.window_level(ct) == pytest.approx(wl.drag_adjust(*expected, -10, 0, scale), rel=1e-3)
    assert grid.crosshair_mm == pytest.approx(point)


def test_cursor_info_gives_value_and_label(grid, qtbot):
    ct, seg = _ct_and_labels()
    grid.add(ct)
    grid.add(seg)
    marked = ct.geometry.index_to_physical((14, 12, 8))
    info = grid.info_at(marked)
    assert info == {"position_mm": pytest.approx(tuple(marked)), "value": 1234, "label": "L1"}
    outside = grid.info_at((-500.0, 0.0, 0.0))
    assert outside["value"] is None and outside["label"] is None
    background = grid.info_at(ct.geometry.index_to_physical((1, 1, 1)))
    assert background["value"] == -1000 and background["label"] is None
    seg.visible = False
    grid.update(seg, "visible")
    assert grid.info_at(marked)["label"] is None

    # A real mouse move over the axial canvas emits it (napari throttles moves, so wait for it).
    from qtpy.QtCore import QPoint

    native = grid.axial.qt_viewer.canvas.native
    with qtbot.waitSignal(grid.cursor_info, timeout=3000) as blocker:
        qtbot.mouseMove(native, QPoint(native.width() // 2 + 3, native.height() // 2 + 2))
        qtbot.wait(30)
        qtbot.mouseMove(native, QPoint(native.width() // 2, native.height() // 2))
    got = blocker.args[0]
    assert set(got) == {"position_mm", "value", "label"}
    assert got["position_mm"][2] == pytest.approx(grid.axial.slice_position())


def test_link_zoom(grid):
    ct, _ = _ct_and_labels()
    grid.add(ct)
    grid.axial.model.scene.camera.zoom = 2.0
    grid.link_zoom = True  # turning it on syncs the others to the axial pane
    assert grid.coronal.model.scene.camera.zoom == pytest.approx(2.0)
    grid.axial.model.scene.camera.zoom = 7.5
    assert grid.sagittal.model.scene.camera.zoom == pytest.approx(7.5)
    assert grid.coronal.model.scene.camera.zoom == pytest.approx(7.5)
    grid.link_zoom = False
    grid.coronal.model.scene.camera.zoom = 3.0
    assert grid.axial.model.scene.camera.zoom == pytest.approx(7.5)


def test_a_volume_stored_in_another_axis_order_is_shown_through_a_view(grid):
    """A NIfTI whose array axes run in another order than x, y, z (its direction a permutation) used to give
    napari a singular slice transform in two panes, so they drew nothing. Shown through a transposed
    view, every pane's displayed block is invertible, napari reads the voxel our geometry says lies at
    each point, and a stroke through napari still lands in the layer's own array."""
    from kintsugi.gui.viewers.slice_grid import _voxel

    rng = np.random.default_rng(0)
    data = rng.integers(1, 5, size=(12, 16, 20)).astype(np.uint8)
    g = Geometry((1.0, 1.5, 2.0), (5.0, -3.0, 40.0), direction=[[0, 0, 1], [0, 1, 0], [-1, 0, 0]])
    seg = LabelMap(name="permuted", data=data, geometry=g, labels={})
    grid.add(seg)
    for pane in grid.panes.values():
        nl = pane.model.layers[0]
        shown = list(pane.model.dims.displayed)
        block = nl.affine.affine_matrix[np.ix_(shown, shown)]
        assert abs(np.linalg.det(block)) > 1e-6
        assert np.shares_memory(nl.data, seg.data)
    nl = grid.axial.model.layers[0]
    for idx in ((2, 3, 4), (11, 15, 19), (6, 0, 10)):  # (k, j, i)
        point = g.index_to_physical(np.array(idx[::-1], float))
        view_index = np.rint(nl.world_to_data(point[::-1])).astype(int)
        assert nl.data[tuple(view_index)] == _voxel(seg, point) == data[idx]
    nl.data[0, 0, 0] = 9  # what a brush stroke does
    assert (seg.data == 9).sum() == 1


def test_slice_number_stays_readable_in_a_small_pane(grid, qtbot):
    """Panes of a small window are ~230 px wide: the slider row must fit (it clipped the slice number)."""
    from qtpy.QtCore import QPoint

    ct, _ = _ct_and_labels()
    grid.resize(470, 560)
    grid.add(ct)
    qtbot.wait(50)
    for pane in grid.panes.values():
        rows = [r for r in pane.qt_viewer.dims.slider_widgets if r.isVisible()]
        assert len(rows) == 1  # the axis the pane slices along
        row = rows[0]
        assert not row.play_button.isVisible() and not row.totslice_label.isVisible()
        assert row.minimumSizeHint().width() <= pane.width()
        label = row.curslice_label
        corner = label.mapTo(pane, QPoint(label.width(), label.height()))
        assert label.isVisible() and corner.x() <= pane.width() and corner.y() <= pane.height()
        assert int(label.text()) == round(pane.model.dims.current_step[pane.spec.normal])

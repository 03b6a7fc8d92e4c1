"""The main window under Xvfb: opening data puts layers in the dock and the views; bad input is contained."""

import subprocess
import sys

import numpy as np
import pytest
import trimesh

from kintsugi.core import Geometry, LabelMap, Volume
from kintsugi.io import write_mesh, write_volume

pytestmark = pytest.mark.gui


@pytest.fixture
def ct_and_labels(tmp_path):
    data = np.full((20, 30, 40), -1000, np.int16)
    data[5:15, 10:20, 10:30] = 300
    labels = (data > 0).astype(np.uint8) * 20
    g = Geometry((0.8, 0.9, 2.0), (10, 20, 30))
    return (write_volume(Volume(data=data, geometry=g, modality="CT", unit="HU"), tmp_path / "ct.nii.gz"),
            write_volume(LabelMap(data=labels, geometry=g), tmp_path / "seg.nii.gz"))


def test_canvases_are_made_when_the_first_layer_needs_them(window, ct_and_labels):
    """A fresh window shows its welcome page and has made no napari or VTK canvas: that is its cold start."""
    assert window.views == ()
    assert window.welcome.isVisible()
    window.open_path(ct_and_labels[0])
    assert len(window.views) == 3
    assert not window.welcome.isVisible()
    assert window.slices.isVisible()


def test_volume_and_labels_reach_dock_and_slice_view(window, ct_and_labels):
    for p in ct_and_labels:
        window.open_path(p)
    assert window.layers_panel.list.count() == 2
    napari_layers = window.slices.model.layers
    assert [nl.name for nl in napari_layers] == ["ct", "seg"]
    assert type(napari_layers[1]).__name__ == "Labels"
    # Physical placement: the napari world extent equals the volume's extent in mm.
    extent = napari_layers[0].extent.world
    assert np.allclose(extent[0], (30, 20, 10), atol=1e-6)
    # The label map is also shown as surfaces in 3D, in physical mm.
    assert window.slices.isVisible() and window.view3d.isVisible()
    (actor,) = window.view3d.actors_of(window.scene[1])
    lo, hi = np.array(actor.GetBounds()).reshape(3, 2).T
    assert np.allclose(lo, (10 + 10 * 0.8, 20 + 10 * 0.9, 30 + 5 * 2.0), atol=1.5)
    assert np.allclose(hi, (10 + 29 * 0.8, 20 + 19 * 0.9, 30 + 14 * 2.0), atol=1.5)


def test_unchecking_a_layer_hides_it(window, ct_and_labels, qtbot):
    from qtpy.QtCore import Qt

    window.open_path(ct_and_labels[0])
    item = window.layers_panel.list.item(0)
    item.setCheckState(Qt.CheckState.Unchecked)
    layer = window.scene[0]
    assert layer.visible is False
    assert window.slices.model.layers[0].visible is False


def test_bad_file_is_reported_and_the_window_keeps_working(window, tmp_path, ct_and_labels):
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"\x1f\x8b" + b"garbage" * 10)
    assert window.open_path(bad) == []
    assert "broken.nii.gz" in window.log.toPlainText()
    assert len(window.scene) == 0
    assert window.open_path(ct_and_labels[0])  # still works afterwards


def test_pick_in_3d_selects_the_layer_in_the_dock(window, tmp_path, qtbot):
    from kintsugi.core import Mesh

    ball = trimesh.creation.icosphere(radius=30)
    window.scene.add(Mesh(name="ball", vertices=ball.vertices, faces=ball.faces))
    window.scene.add(Mesh(name="far", vertices=ball.vertices + 500, faces=ball.faces))
    window.view3d.standard_view("anterior")
    window.view3d.plotter.camera.focal_point = (0, 0, 0)
    window.view3d.plotter.render()
    w, h = window.view3d.plotter.window_size
    window.view3d.pick_at_display((w / 2, h / 2))
    assert [x.name for x in window.scene.selection] == ["ball"]
    assert [i.text() for i in window.layers_panel.list.selectedItems()] == ["ball"]
    window.isolate_selection()
    assert not window.scene["far"].visible and window.scene["ball"].visible
    window.undo_action.trigger()
    assert window.scene["far"].visible


def test_fragments_folder_appears_in_3d(window, tmp_path):
    folder = tmp_path / "sherds"
    for i in range(3):
        m = trimesh.creation.icosphere(radius=5 + i)
        m.apply_translation((20 * i, 0, 0))
        from kintsugi.core import Mesh

        write_mesh(Mesh(vertices=m.vertices, faces=m.faces), folder / f"piece_{i}.ply")
    window.open_path(folder)
    assert window.view3d.isVisible()
    assert len(window.view3d._actors[id(window.scene[0])]) == 3


def test_cli_screenshot_shows_the_data(tmp_path, ct_and_labels):
    shot = tmp_path / "shot.png"
    proc = subprocess.run([sys.executable, "-m", "kintsugi.cli.main", "gui", *map(str, ct_and_labels),
                           "--screenshot", str(shot)], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("L"))
    assert img.shape[0] > 400 and img.shape[1] > 600
    assert img.std() > 10  # not a blank window


def test_layers_dock_rename_delete_and_undo(window, ct_and_labels, qtbot):
    window.open_path(ct_and_labels[0])
    window.open_path(ct_and_labels[1])
    panel = window.layers_panel
    ct = window.scene["ct"]
    panel.list.item(0).setText("patient CT")  # what an in-place edit does
    assert ct.name == "patient CT" and window.slices.model.layers[0].name == "patient CT"
    panel.list.setCurrentRow(0)
    panel.opacity.setValue(40)  # a click on the slider: one undoable step
    assert ct.opacity == 0.4 and window.slices.model.layers[0].opacity == 0.4
    panel.delete_selected()
    assert [layer.name for layer in window.scene] == ["seg"]
    assert [nl.name for nl in window.slices.model.layers] == ["seg"]
    window.undo_action.trigger()
    assert window.scene[0] is ct and [nl.name for nl in window.slices.model.layers] == ["patient CT", "seg"]
    window.undo_action.trigger()
    window.undo_action.trigger()
    assert ct.opacity == 1.0 and ct.name == "ct"
    window.redo_action.trigger()
    assert ct.name == "patient CT"
    assert "opened" in window.log.toPlainText()
    assert str(ct_and_labels[1].resolve()) in window.recent_paths()


def test_painting_labels_is_undoable_and_reaches_every_pane(window, ct_and_labels):
    window.open_path(ct_and_labels[0])
    window.open_path(ct_and_labels[1])
    seg = window.scene["seg"]
    before = seg.data.copy()
    seen = []
    seg.changed.connect(seen.append)
    window.label_mode.setCurrentText("paint")
    window.label_value.setValue(5)
    window.brush_size.setValue(3)
    panes = window.slices.napari_layers(seg)
    assert {nl.mode for nl in panes.values()} == {"paint"} and panes["axial"].selected_label == 5
    assert 5 in seg.labels  # a new label gets a name and a colour before it is painted
    rgba = panes["axial"].colormap.map(np.array([5]))[0]
    assert rgba[3] > 0 and np.allclose(rgba[:3], np.array(seg.labels[5].color) / 255, atol=0.02)
    axial = panes["axial"]
    axial.paint((2, 3, 4), 5)  # a stroke in the axial pane, in data coordinates (z, y, x)
    assert seg.data[2, 3, 4] == 5 and (seg.data != before).sum() > 0
    assert "data" in seen  # 3D surfaces and the autosave hear about it
    assert window.history.undo_text() == "paint 'seg'"
    painted = seg.data.copy()
    window.undo_action.trigger()
    assert np.array_equal(seg.data, before)
    window.redo_action.trigger()
    assert np.array_equal(seg.data, painted)
    window.label_mode.setCurrentText("navigate")
    assert {nl.mode for nl in panes.values()} == {"pan_zoom"}


def test_bone_isosurface_of_a_volume_in_mm_and_undoable(window, ct_and_labels):
    import trimesh

    window.open_path(ct_and_labels[0])  # a block at 300 HU in air (-1000 HU)
    mesh = window.add_isosurface(-350.0)  # half-way between them: the surface lies half a voxel out
    assert mesh is not None and mesh in window.scene and window.view3d.actors_of(mesh)
    lo, hi = mesh.bounds()
    # The block spans voxels x 10..29, y 10..19, z 5..14 of a (0.8, 0.9, 2.0) mm grid at (10, 20, 30):
    # the -350 crossing lies half-way to the neighbouring air voxels (linear interpolation).
    assert np.allclose(lo, (10 + 9.5 * 0.8, 20 + 9.5 * 0.9, 30 + 4.5 * 2.0), atol=0.05)
    assert np.allclose(hi, (10 + 29.5 * 0.8, 20 + 19.5 * 0.9, 30 + 14.5 * 2.0), atol=0.05)
    assert trimesh.Trimesh(mesh.vertices, mesh.faces).is_watertight
    window.undo_action.trigger()
    assert mesh not in window.scene
    assert window.add_isosurface(5000.0) is None and "reaches 5000" in window.log.toPlainText()


def test_layers_dock_colormap_and_contrast_reach_the_panes_and_undo(window, ct_and_labels):
    window.open_path(ct_and_labels[0])
    ct = window.scene[0]
    window.layers_panel.list.item(0).setSelected(True)
    panel = window.layers_panel
    assert panel.colormap.isEnabled() and panel.contrast_low.isEnabled()
    panel._set_colormap("viridis")
    nls = [pane.model.layers["ct"] for pane in window.slices.panes.values()]
    assert ct.colormap == "viridis" and all(nl.colormap.name == "viridis" for nl in nls)
    panel.contrast_low.setValue(-200)
    panel.contrast_high.setValue(600)
    panel._contrast_edited()
    assert ct.contrast == (-200, 600)
    assert all(tuple(nl.contrast_limits) == (-200, 600) for nl in nls)
    window.history.undo()
    assert ct.contrast is None and tuple(nls[0].contrast_limits) != (-200, 600)
    window.history.undo()
    assert ct.colormap == "gray" and nls[0].colormap.name == "gray"
    # A preset is the same state: the layer holds it, the dock shows it.
    window.slices.apply_preset("bone")
    assert ct.contrast == (-100.0, 900.0)
    assert panel.contrast_low.value() == -100.0 and panel.contrast_high.value() == 900.0
    # Inverted limits are refused and the boxes go back.
    panel.contrast_low.setValue(1000)
    panel._contrast_edited()
    assert ct.contrast == (-100.0, 900.0) and panel.contrast_low.value() == -100.0


def test_table_dock_shows_a_task_table_and_a_row_click_goes_to_its_centroid(window, ct_and_labels):
    from kintsugi.core import Table

    window.open_path(ct_and_labels[0])
    ct = window.scene[0]
    table = Table.from_records([
        {"label": 9, "volume_mm3": 10.5, "centroid_x": 20.0, "centroid_y": 30.0, "centroid_z": 50.0,
         "layer": "ct", "color": [255, 0, 0]},
        {"label": 10, "volume_mm3": 2.0, "centroid_x": 25.0, "centroid_y": 35.0, "centroid_z": 40.0,
         "layer": "ct", "color": [0, 255, 0]},
    ], name="teeth")
    ct.set(visible=False)
    window.scene.add(table)
    panel = window.table_panel
    assert panel.table is table and panel.grid.rowCount() == 2
    headers = [panel.grid.horizontalHeaderItem(i).text() for i in range(panel.grid.columnCount())]
    assert "color" not in headers and "layer" not in headers and headers[:2] == ["label", "volume_mm3"]
    # Sorting by volume puts row 1 first; clicking it still goes to that row's own centroid.
    panel.grid.sortItems(headers.index("volume_mm3"))
    panel.grid.selectRow(0)
    assert window.slices.crosshair_mm == pytest.approx((25.0, 35.0, 40.0), abs=1e-6)
    assert window.scene.selection == [ct] and ct.visible
    # Rows naming different layers show one at a time (a vertebra's map replaces the previous one).
    from kintsugi.core import Image2D

    maps = [Image2D(name=f"map {i}", data=np.zeros((4, 4), np.uint8), visible=False) for i in range(2)]
    for m in maps:
        window.scene.add(m)
    table.set(columns={**table.columns, "layer": ["map 0", "map 1"]})
    panel.activate_row(1)
    assert maps[1].visible and not maps[0].visible
    panel.activate_row(0)
    assert maps[0].visible and not maps[1].visible and ct.visible
    window.scene.remove(table)
    assert panel.table is None and panel.grid.rowCount() == 0


def test_table_dock_grows_to_show_a_task_table(window, qtbot):
    """The bottom docks start log-sized (a table row or two); a task's table gets room for several rows."""
    from kintsugi.core import Table

    window.resize(1400, 900)
    qtbot.wait(50)
    before = window.table_dock.height()
    window.scene.add(Table.from_records([{"level": f"L{i}", "loss": 0.1 * i} for i in range(6)], name="levels"))
    qtbot.wait(50)
    grid = window.table_panel.grid
    assert window.table_dock.height() > before
    assert window.table_dock.height() <= window.height() // 3 + 1
    assert grid.viewport().height() >= 3 * grid.verticalHeader().defaultSectionSize()


def test_split_and_merge_labels_from_the_window_reach_the_views_and_undo(window, tmp_path):
    z, y, x = np.indices((24, 24, 40))
    a = (z - 12) ** 2 + (y - 12) ** 2 + (x - 11) ** 2 <= 64
    b = (z - 12) ** 2 + (y - 12) ** 2 + (x - 27) ** 2 <= 64
    path = write_volume(LabelMap(data=((a | b) * 2).astype(np.uint8), geometry=Geometry((1.0, 1.0, 1.0))),
                        tmp_path / "teeth.nii.gz")
    window.open_path(path)
    layer = window.scene[0]
    assert window.split_label(2)
    assert layer.present_labels() == [2, 3]
    nl = window.slices.napari_layers(layer)["axial"]
    assert int(nl.data.max()) == 3
    (actor,) = window.view3d.actors_of(layer)
    import pyvista as pv

    surface = pv.wrap(actor.GetMapper().GetInput())
    rgb = surface.point_data["rgb"] if "rgb" in surface.point_data else surface.cell_data["rgb"]
    assert len(np.unique(rgb, axis=0)) == 2  # the surfaces now show two labels in their two colours
    assert window.merge_label(3, 2) and layer.present_labels() == [2]
    window.history.undo()
    window.history.undo()
    assert layer.present_labels() == [2] and 3 not in layer.labels
    assert not window.split_label(7)  # not there: a message, nothing changes
    assert "label 7 is not in" in window.log.toPlainText()


def test_paint_a_mask_on_a_photo_and_undo(window, tmp_path):
    from kintsugi.core import Image2D
    from kintsugi.io import write_image

    photo = np.full((40, 60, 3), 120, np.uint8)
    window.open_path(write_image(Image2D(name="wall", data=photo), tmp_path / "wall.png"))
    mask = window.new_mask()
    assert mask.name == "wall_mask" and mask.data.shape == (40, 60) and window.label_mode.currentText() == "paint"
    nl = window.images.model.layers["wall_mask"]
    assert nl.mode == "paint"
    nl.paint((20, 30), nl.selected_label)  # a stroke as the mouse makes it: napari records it and announces it
    assert mask.data[20, 30] == 255 and set(np.unique(mask.data)) == {0, 255}
    assert window.history.undo_text() == "paint 'wall_mask'"
    window.history.undo()
    assert mask.data.max() == 0 and window.history.undo_text() == "add 'wall_mask'"
    window.history.redo()
    assert mask.data[20, 30] == 255
    assert window.new_mask().name == "wall_2_mask"


def test_export_layer_writes_standard_files_that_open_again(window, ct_and_labels, tmp_path):
    from kintsugi.io import open_path

    window.open_path(ct_and_labels[1])
    seg = window.scene[0]
    out = window.export_layer(seg, tmp_path / "out" / "edited")
    assert out.name == "edited.nii.gz"
    (back,) = open_path(out)
    assert np.array_equal(back.data, seg.data)
    assert window.export_layer(seg, tmp_path / "nope.xyz") is None  # an unknown format: a message, no crash
    assert "cannot export" in window.log.toPlainText()


def test_fragment_poses_move_actors_without_rebuilding_and_contact_colouring(window, tmp_path):
    from kintsugi.core import Fragment, Fragments, Mesh

    pieces = []
    for i in range(2):
        m = trimesh.creation.icosphere(radius=5)
        pieces.append(Fragment(f"p{i}", Mesh(vertices=m.vertices + (20 * i, 0, 0), faces=m.faces,
                                             scalars={"contact_distance": np.full(len(m.vertices), float(i))})))
    layer = Fragments(name="pot", items=pieces)
    window.scene.add(layer)
    view = window.view3d
    actors = view.actors_of(layer)
    pose = np.eye(4)
    pose[:3, 3] = (0, 30, 0)
    layer.set_pose(1, pose)
    assert view.actors_of(layer) == actors  # same actors, moved
    lo, hi = np.array(actors[1].GetBounds()).reshape(3, 2).T
    assert (lo[1] + hi[1]) / 2 == pytest.approx(30, abs=0.5)
    view.set_color_by(layer, "contact_distance")
    assert len(view.plotter.scalar_bars) == 1
    view.set_color_by(layer, None)
    assert len(view.plotter.scalar_bars) == 0
    picked = []
    view.piece_listeners.append(lambda lay, k: picked.append((lay, k)))
    view._picked(view.actors_of(layer)[1])
    assert picked == [(layer, 1)] and window.scene.selection == [layer]


def test_task_masks_and_width_maps_overlay_the_photo(window):
    from kintsugi.core import Image2D

    photo = Image2D(name="wall", data=np.full((30, 40), 90, np.uint8))
    mask = np.zeros((30, 40), np.uint8)
    mask[10:12, 5:35] = 255
    widths = np.zeros((30, 40), np.float32)
    widths[11, 5:35] = 2.0
    for layer in (photo, Image2D(name="wall crack mask", data=mask, modality="mask"),
                  Image2D(name="wall widths", data=widths, modality="width map")):
        window.scene.add(layer)
    layers = window.images.model.layers
    assert type(layers["wall crack mask"]).__name__ == "Labels"  # a task's mask, by modality: paintable
    width = layers["wall widths"]
    assert width.blending == "additive" and width.colormap.name == "inferno" and width.contrast_limits[0] == 0


def test_task_form_prefers_the_photo_to_the_mask_painted_on_it(window):
    from kintsugi.core import Image2D

    photo = Image2D(name="wall", data=np.full((30, 40, 3), 90, np.uint8))
    window.scene.add(photo)
    window.scene.add(Image2D(name="wall_mask", data=np.zeros((30, 40), np.uint8)))
    window.tasks_panel.select_task("crack.segment_layers")
    assert window.tasks_panel.form.form.inputs[0].value() is photo  # the Cracks panel's generated form


def test_label_surfaces_fade_while_a_measured_mesh_is_shown_in_3d(window, ct_and_labels):
    """A vertebra's body coloured by height loss lies inside the vertebra's label surface: the surface
    fades to context in 3D while such a mesh is visible, without touching the layer's own opacity."""
    from qtpy.QtCore import Qt

    from kintsugi.core import Mesh

    window.open_path(ct_and_labels[1])
    labels = window.scene[0]
    view = window.view3d
    (surface,) = view.actors_of(labels)
    assert surface.GetProperty().GetOpacity() == pytest.approx(1.0)
    m = trimesh.creation.icosphere(radius=3)
    body = Mesh(name="body", vertices=m.vertices + (20, 30, 50), faces=m.faces,
                scalars={"height_loss": np.linspace(0, 0.3, len(m.vertices))})
    window.scene.add(body)
    assert surface.GetProperty().GetOpacity() == pytest.approx(view.LABEL_CONTEXT_OPACITY)
    assert labels.opacity == 1.0  # the 2D panes keep their overlay
    window.layers_panel.list.item(1).setCheckState(Qt.CheckState.Unchecked)  # hide the measured mesh
    assert not body.visible
    assert surface.GetProperty().GetOpacity() == pytest.approx(1.0)
    window.layers_panel.list.item(1).setCheckState(Qt.CheckState.Checked)
    assert surface.GetProperty().GetOpacity() == pytest.approx(view.LABEL_CONTEXT_OPACITY)
    window.scene.remove(body)
    assert surface.GetProperty().GetOpacity() == pytest.approx(1.0)


def test_two_quantities_get_two_colour_bars_side_by_side(window):
    from kintsugi.core import Mesh

    m = trimesh.creation.icosphere(radius=3)
    for i, name in enumerate(("height_loss", "thickness")):
        window.scene.add(Mesh(name=name, vertices=m.vertices + (10 * i, 0, 0), faces=m.faces,
                              scalars={name: np.linspace(0, 1, len(m.vertices))}))
    bars = window.view3d.plotter.scalar_bars
    assert set(bars.keys()) == {"height_loss", "thickness"}
    xs = [bars[t].GetPosition()[0] for t in ("height_loss", "thickness")]
    assert abs(xs[0] - xs[1]) > 0.1  # not on top of each other


def test_a_mesh_can_fix_its_colour_range(window):
    """Height loss runs 0-50 % on its colour bar whatever the data's extremes (a column taller than its
    reference reads -100 %, which would otherwise take half the scale)."""
    from kintsugi.core import Mesh

    m = trimesh.creation.icosphere(radius=3)
    values = np.linspace(-1.0, 0.6, len(m.vertices))
    fixed = Mesh(name="fixed", vertices=m.vertices, faces=m.faces, scalars={"height_loss": values},
                 metadata={"clim": [0.0, 0.5]})
    free = Mesh(name="free", vertices=m.vertices + (10, 0, 0), faces=m.faces, scalars={"thickness": values})
    window.scene.add(fixed)
    window.scene.add(free)
    ranges = {layer.name: window.view3d._actors[id(layer)][0].GetMapper().GetScalarRange()
              for layer in (fixed, free)}
    assert ranges["fixed"] == pytest.approx((0.0, 0.5))
    assert ranges["free"] == pytest.approx((-1.0, 0.6))

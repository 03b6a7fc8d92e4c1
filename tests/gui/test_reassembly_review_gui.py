"""The Reassembly panel's review tools on an assembled fragment set, inside the main window."""

import numpy as np
import pytest
import trimesh

from kintsugi.core import Fragment, Fragments, Mesh

pytestmark = pytest.mark.gui


def _assembled() -> Fragments:
    items = []
    for i in range(3):
        m = trimesh.creation.box(extents=(10, 10, 10))
        pose = np.eye(4)
        pose[:3, 3] = (10 * i, 0, 0)
        geom = Mesh(vertices=m.vertices, faces=m.faces,
                    scalars={"contact_distance": np.full(len(m.vertices), float(i))})
        items.append(Fragment(f"p{i}", geom, pose, source=f"/data/p{i}.ply"))
    alt = [{"file": f"p{i}.ply", "transform": np.eye(4).tolist()} for i in range(3)]
    return Fragments(name="pot assembled", items=items,
                     metadata={"reassembly": "poses map file coordinates to the assembled frame",
                               "alternatives": [{"method": "learned-0", "scores": {"score": 0.5}, "fragments": alt}]})


def test_review_tools(window, qtbot, tmp_path):
    from kintsugi.plugins import get_registry
    from kintsugi_reassembly.widgets import ReviewPanel

    task = get_registry().tasks["reassembly.assemble"]
    panel = ReviewPanel(task, window.scene, lambda values, device="auto": None, parent=window.tasks_panel)
    layer = _assembled()
    window.scene.add(layer)
    assert panel.layer() is layer and panel.piece.count() == 3 and panel.alternatives.count() == 2
    assembled = layer.poses()
    panel.toggle.setChecked(True)
    assert all(np.allclose(p, np.eye(4)) for p in layer.poses())
    panel.toggle.setChecked(False)
    assert all(np.allclose(a, b) for a, b in zip(layer.poses(), assembled, strict=True))
    panel.animate()
    qtbot.waitUntil(lambda: not panel._timer.isActive(), timeout=5000)
    assert all(np.allclose(a, b) for a, b in zip(layer.poses(), assembled, strict=True))
    panel.move_piece(1, (0, 5, 0), (0, 0, 0))
    assert np.allclose(layer[1].pose[:3, 3], (10, 5, 0))
    window.history.undo()
    assert np.allclose(layer[1].pose[:3, 3], (10, 0, 0))
    panel.lock_pair(0, 1)
    panel.lock_pair(1, 0)
    assert layer.metadata["locked_pairs"] == [[0, 1]] and "p0–p1" in panel.locks_label.text()
    panel.use_alternative(0)
    assert all(np.allclose(p, np.eye(4)) for p in layer.poses())
    window.history.undo()
    panel.show_contact(True)
    assert len(window.view3d.plotter.scalar_bars) == 1
    out = panel.export_mesh(tmp_path / "pot.ply")
    back = trimesh.load(out, process=False)
    assert len(back.vertices) == 24 and len(np.unique(back.visual.vertex_colors[:, :3], axis=0)) == 3
    window.view3d._picked(window.view3d.actors_of(layer)[2])
    assert panel.piece.currentIndex() == 2


def test_refine_runs_in_a_worker_and_brings_a_refined_assembly(window, qtbot):
    import kintsugi
    from kintsugi.plugins import get_registry
    from kintsugi_reassembly.widgets import ReviewPanel

    window.open_sample("fragments")
    res = kintsugi.run("reassembly.assemble", fragments=window.scene["fragments"], method="geometric")
    for layer in res.layers:
        window.scene.add(layer)
    panel = ReviewPanel(get_registry().tasks["reassembly.assemble"], window.scene, lambda *a, **k: None,
                        parent=window.tasks_panel)
    panel.lock_pair(0, 1)
    panel.refine()
    qtbot.waitUntil(lambda: any(x.name.endswith("refined") for x in window.scene), timeout=120_000)
    refined = window.scene["fragments assembled refined"]
    assert refined.metadata["locked_pairs"] == [[0, 1]] and len(refined) == len(res.layers[0])
    assert panel.assembly.findText(refined.name) >= 0  # the refined set can be reviewed in turn

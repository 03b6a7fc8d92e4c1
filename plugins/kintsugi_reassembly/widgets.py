"""The Reassembly panel: run the assembly, then review it with the expert in the loop.

Built on the generated form (inputs and parameters come from the task as usual) plus review tools that
act on an assembled fragment set: scattered ↔ assembled (animated), alternatives, contact map, moving a
piece by hand (undoable), locking pairs and re-fitting around them, exporting transforms and the mesh.
The logic lives in :mod:`kintsugi_reassembly.review`; this module only wires it to widgets.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from kintsugi.core import Fragments
from kintsugi.gui.panels.tasks import TaskForm, window_attr
from kintsugi_reassembly import review

ANIMATION_STEPS = 24


class ReviewPanel(QWidget):
    def __init__(self, task, scene, submit, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.task, self.scene, self._submit = task, scene, submit
        self._assembled_poses: dict[int, list[np.ndarray]] = {}
        self._timer = QTimer(self)
        self._timer.setInterval(40)
        self._timer.timeout.connect(self._animate_step)
        self._frames: list[list[np.ndarray]] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.form = TaskForm(task, scene, self)
        layout.addWidget(self.form)
        self.run_button = QPushButton("Assemble", self)
        self.run_button.clicked.connect(self.run)
        layout.addWidget(self.run_button)

        box = QGroupBox("Review an assembly", self)
        grid = QGridLayout(box)
        self.assembly = QComboBox(box)
        self.assembly.setToolTip("An assembled fragment set (made by Assemble or Refine)")
        self.assembly.currentIndexChanged.connect(self._on_assembly)
        grid.addWidget(QLabel("assembly"), 0, 0)
        grid.addWidget(self.assembly, 0, 1, 1, 3)
        self.toggle = QPushButton("Show scattered", box)
        self.toggle.setCheckable(True)
        self.toggle.toggled.connect(self.show_scattered)
        self.animate_button = QPushButton("Animate", box)
        self.animate_button.clicked.connect(self.animate)
        grid.addWidget(self.toggle, 1, 0, 1, 2)
        grid.addWidget(self.animate_button, 1, 2, 1, 2)
        self.alternatives = QComboBox(box)
        self.alternatives.setToolTip("Other hypotheses the pipeline scored lower")
        use_alt = QPushButton("Use", box)
        use_alt.clicked.connect(lambda: self.use_alternative(self.alternatives.currentIndex() - 1))
        grid.addWidget(QLabel("alternative"), 2, 0)
        grid.addWidget(self.alternatives, 2, 1, 1, 2)
        grid.addWidget(use_alt, 2, 3)
        self.contact = QCheckBox("Contact map (distance to the nearest other piece)", box)
        self.contact.toggled.connect(self.show_contact)
        grid.addWidget(self.contact, 3, 0, 1, 4)

        self.piece = QComboBox(box)
        self.piece.setToolTip("The piece to move (right-click a piece in 3D to choose it)")
        self.piece.currentIndexChanged.connect(lambda i: self._highlight(i))
        grid.addWidget(QLabel("piece"), 4, 0)
        grid.addWidget(self.piece, 4, 1, 1, 3)
        self.shift = [self._spin(box, -1e4, 1e4, 0.5, " mm") for _ in range(3)]
        self.turn = [self._spin(box, -180, 180, 1.0, "°") for _ in range(3)]
        for i, (label, spins) in enumerate((("move x y z", self.shift), ("turn x y z", self.turn))):
            grid.addWidget(QLabel(label), 5 + i, 0)
            for j, s in enumerate(spins):
                grid.addWidget(s, 5 + i, 1 + j)
        apply_move = QPushButton("Apply move (undoable)", box)
        apply_move.clicked.connect(self._apply_move)
        grid.addWidget(apply_move, 7, 0, 1, 4)

        self.lock_a, self.lock_b = QComboBox(box), QComboBox(box)
        lock = QPushButton("Lock pair", box)
        lock.setToolTip("These two pieces are certainly right: Refine moves them together")
        lock.clicked.connect(lambda: self.lock_pair(self.lock_a.currentIndex(), self.lock_b.currentIndex()))
        row = QHBoxLayout()
        for w in (self.lock_a, self.lock_b, lock):
            row.addWidget(w)
        grid.addWidget(QLabel("lock"), 8, 0)
        grid.addLayout(row, 8, 1, 1, 3)
        self.locks_label = QLabel("no locked pairs", box)
        self.locks_label.setWordWrap(True)
        grid.addWidget(self.locks_label, 9, 0, 1, 4)
        self.refine_button = QPushButton("Refine around the locks", box)
        self.refine_button.clicked.connect(self.refine)
        grid.addWidget(self.refine_button, 10, 0, 1, 4)
        export_t = QPushButton("Export transforms…", box)
        export_t.setToolTip("assembly.json and one MeshLab matrix file per piece")
        export_t.clicked.connect(self._export_transforms_dialog)
        export_m = QPushButton("Export mesh…", box)
        export_m.setToolTip("all pieces in place, coloured by piece (PLY or GLB)")
        export_m.clicked.connect(self._export_mesh_dialog)
        grid.addWidget(export_t, 11, 0, 1, 2)
        grid.addWidget(export_m, 11, 2, 1, 2)
        self.message = QLabel("", box)
        self.message.setWordWrap(True)
        grid.addWidget(self.message, 12, 0, 1, 4)
        layout.addWidget(box)
        self.review_box = box
        for combo in box.findChildren(QComboBox):  # piece names must not widen the dock
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(8)
        scene.layer_added.connect(lambda *_: self._refresh_assemblies())
        scene.layer_removed.connect(lambda *_: self._refresh_assemblies())
        self._listening_to = None
        self._refresh_assemblies()

    # -- plumbing -----------------------------------------------------------------------------------
    @staticmethod
    def _spin(parent, lo: float, hi: float, step: float, suffix: str) -> QDoubleSpinBox:
        s = QDoubleSpinBox(parent)
        s.setRange(lo, hi)
        s.setSingleStep(step)
        s.setSuffix(suffix)
        s.setDecimals(2)
        return s

    def _connect_view(self) -> None:
        """Listen to piece picks in the window's 3D view (made lazily, and only once we are in a window)."""
        view = window_attr(self, "existing_view3d")
        if view is not None and view is not self._listening_to:
            view.piece_listeners.append(self._on_piece_picked)
            self._listening_to = view

    def showEvent(self, event) -> None:  # noqa: N802 - Qt naming
        self._connect_view()
        super().showEvent(event)

    def layer(self) -> Fragments | None:
        key = self.assembly.currentData()
        return next((x for x in self.scene if id(x) == key), None)

    def _refresh_assemblies(self) -> None:
        self._connect_view()
        current = self.assembly.currentData()
        sets = [x for x in self.scene if isinstance(x, Fragments) and "reassembly" in x.metadata]
        self.assembly.blockSignals(True)
        self.assembly.clear()
        for x in sets:
            self.assembly.addItem(x.name, id(x))
        index = self.assembly.findData(current)
        self.assembly.setCurrentIndex(index if index >= 0 else self.assembly.count() - 1)
        self.assembly.blockSignals(False)
        self._on_assembly()

    def _on_assembly(self, *_args) -> None:
        layer = self.layer()
        self.review_box.setEnabled(layer is not None)
        names = [f.name for f in layer] if layer is not None else []
        for combo in (self.piece, self.lock_a, self.lock_b):
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(names)
            combo.blockSignals(False)
        if len(names) > 1:
            self.lock_b.setCurrentIndex(1)
        self.alternatives.clear()
        self.alternatives.addItem("(the chosen assembly)")
        for alt in (layer.metadata.get("alternatives", []) if layer is not None else []):
            score = alt.get("scores", {}).get("score")
            label = str(alt.get("method", "?")) + (f"  score {score:.3f}" if score is not None else "")
            self.alternatives.addItem(label)
        self._show_locks()
        self.toggle.blockSignals(True)
        self.toggle.setChecked(False)
        self.toggle.blockSignals(False)

    def _say(self, text: str) -> None:
        self.message.setText(text)

    # -- running ------------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self._submit(self.form.values(), self.form.device.currentText())
        except Exception as e:  # validation: one line here, nothing queued
            self._say(f"⚠ {e}")

    def refine(self) -> None:
        layer = self.layer()
        submit_task = window_attr(self, "submit_task")
        if layer is None or submit_task is None:
            return
        from kintsugi.plugins import get_registry

        task = get_registry().tasks.get("reassembly.refine")
        if task is None:
            self._say("the reassembly.refine task is not installed")
            return
        try:
            submit_task(task, {"fragments": layer}, "cpu")
        except Exception as e:
            self._say(f"⚠ {e}")
            return
        self._say("refining in the background (Jobs dock); the result arrives as a new layer")

    # -- before / after -----------------------------------------------------------------------------
    def show_scattered(self, scattered: bool) -> None:
        """Scattered = each piece in its own file coordinates, as scanned; assembled = the result's poses."""
        layer = self.layer()
        if layer is None:
            return
        if scattered:
            self._assembled_poses[id(layer)] = layer.poses()
            targets = [np.eye(4) for _ in layer]
        else:
            targets = self._assembled_poses.pop(id(layer), layer.poses())
        for k, pose in enumerate(targets):
            layer[k].pose = pose
        layer.changed.emit("pose")
        self.toggle.setText("Show assembled" if scattered else "Show scattered")

    def animate(self) -> None:
        """Scattered → assembled in about a second."""
        layer = self.layer()
        if layer is None:
            return
        end = self._assembled_poses.pop(id(layer), layer.poses())
        start = [np.eye(4) for _ in layer]
        self._frames = [review.interpolate_poses(start, end, t) for t in np.linspace(0, 1, ANIMATION_STEPS)]
        self.toggle.blockSignals(True)
        self.toggle.setChecked(False)
        self.toggle.setText("Show scattered")
        self.toggle.blockSignals(False)
        self._timer.start()

    def _animate_step(self) -> None:
        layer = self.layer()
        if layer is None or not self._frames:
            self._timer.stop()
            return
        for k, pose in enumerate(self._frames.pop(0)):
            layer[k].pose = pose
        layer.changed.emit("pose")

    # -- alternatives, contact ------------------------------------------------------------------------
    def use_alternative(self, index: int) -> None:
        layer = self.layer()
        alts = layer.metadata.get("alternatives", []) if layer is not None else []
        if not 0 <= index < len(alts):
            return
        by_file = {Path(r["file"]).name: np.array(r["transform"], float) for r in alts[index]["fragments"]}
        poses = [by_file.get(Path(f.source).name if f.source else f.name, f.pose) for f in layer]
        self._set_poses(layer, poses, f"use alternative {alts[index].get('method', index)}")

    def show_contact(self, on: bool) -> None:
        layer, view = self.layer(), window_attr(self, "existing_view3d")
        if layer is not None and view is not None:
            view.set_color_by(layer, "contact_distance" if on else None)

    # -- hand moves and locks ---------------------------------------------------------------------------
    def _on_piece_picked(self, layer: Fragments, index: int) -> None:
        if layer is self.layer():
            self.piece.setCurrentIndex(index)

    def _highlight(self, index: int) -> None:
        layer, view = self.layer(), window_attr(self, "existing_view3d")
        if layer is not None and view is not None and index >= 0:
            view.highlight_piece(layer, index)

    def _apply_move(self) -> None:
        layer = self.layer()
        k = self.piece.currentIndex()
        if layer is None or k < 0:
            return
        self.move_piece(k, tuple(s.value() for s in self.shift), tuple(s.value() for s in self.turn))
        for s in (*self.shift, *self.turn):
            s.setValue(0.0)

    def move_piece(self, index: int, shift_mm, turn_deg) -> None:
        layer = self.layer()
        poses = layer.poses()
        poses[index] = review.nudge(poses[index], shift_mm, turn_deg, review.piece_centre(layer[index]))
        self._set_poses(layer, poses, f"move {layer[index].name}")

    def _set_poses(self, layer: Fragments, poses: list[np.ndarray], text: str) -> None:
        before = layer.poses()

        def put(ps: list[np.ndarray]) -> None:
            for k, p in enumerate(ps):
                layer[k].pose = p
            layer.changed.emit("pose")

        history = window_attr(self, "history")
        if history is None:
            put(poses)
            return
        from kintsugi.core.history import Command

        history.push(Command(text, lambda: put(poses), lambda: put(before)))

    def lock_pair(self, a: int, b: int) -> None:
        layer = self.layer()
        if layer is None or a < 0 or b < 0:
            return
        if a == b:
            self._say("choose two different pieces to lock")
            return
        pairs = [list(p) for p in layer.metadata.get("locked_pairs", [])]
        if sorted((a, b)) not in [sorted(p) for p in pairs]:
            pairs.append([a, b])
        layer.set(metadata={**layer.metadata, "locked_pairs": pairs})
        self._show_locks()

    def _show_locks(self) -> None:
        layer = self.layer()
        pairs = layer.metadata.get("locked_pairs", []) if layer is not None else []
        names = [f.name for f in layer] if layer is not None else []
        self.locks_label.setText("locked: " + ", ".join(f"{names[a]}–{names[b]}" for a, b in pairs)
                                 if pairs else "no locked pairs")

    # -- export ------------------------------------------------------------------------------------
    def _export_transforms_dialog(self) -> None:
        layer = self.layer()
        folder = QFileDialog.getExistingDirectory(self, "Export transforms into a folder") if layer else ""
        if folder:
            written = review.export_transforms(layer, folder)
            self._say(f"wrote {len(written)} files to {folder}")

    def _export_mesh_dialog(self) -> None:
        layer = self.layer()
        if layer is None:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export the assembled mesh", f"{layer.name}.ply",
                                              "PLY (*.ply);;GLB (*.glb)")
        if path:
            self.export_mesh(path)

    def export_mesh(self, path: str | Path) -> Path:
        written = review.write_assembled(self.layer(), path)
        self._say(f"wrote {written}")
        return written

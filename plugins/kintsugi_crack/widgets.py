"""The Cracks panel: segment the photo, then adapt to the site from examples the inspector paints.

The generated form (photo, parameters) plus an "Adapt to this site" box: it lists the photo + mask pairs
open in the window (``examples.find_examples``: masks made with New mask, or task masks corrected with the
brush), and Adapt runs the same task with the checked pairs as few-shot support. Its twin outside the GUI
is ``kintsugi run crack.segment --support IMG:MASK,...`` or ``crack.segment_layers`` with support lists.
"""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from kintsugi.gui.panels.tasks import TaskForm, window_attr
from kintsugi_crack.examples import Example, belongs, find_examples, support_values


class AdaptPanel(QWidget):
    def __init__(self, task, scene, submit, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.task, self.scene, self._submit = task, scene, submit
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.form = TaskForm(task, scene, self)
        layout.addWidget(self.form)
        self.segment_button = QPushButton("Segment", self)
        self.segment_button.setToolTip("Segment and measure the photo with the shipped model (no examples)")
        self.segment_button.clicked.connect(self.segment)
        layout.addWidget(self.segment_button)

        box = QGroupBox("Adapt to this site", self)
        inner = QVBoxLayout(box)
        hint = QLabel("Checked examples (other photos of the site with cracks painted on them) steer the "
                      "model on this photo.", box)
        hint.setWordWrap(True)
        inner.addWidget(hint)
        self.list = QListWidget(box)
        self.list.setMaximumHeight(64)
        inner.addWidget(self.list)
        row = QHBoxLayout()
        self.new_button = QPushButton("New example mask", box)
        self.new_button.setToolTip("An empty mask over the selected photo, ready to paint")
        self.new_button.clicked.connect(self.new_example)
        self.adapt_button = QPushButton("Adapt", box)
        self.adapt_button.setToolTip("Segment this photo with the model's head fitted to the checked examples "
                                     "(seconds; the shipped weights are not changed)")
        self.adapt_button.clicked.connect(self.adapt)
        row.addWidget(self.new_button)
        row.addWidget(self.adapt_button)
        inner.addLayout(row)
        layout.addWidget(box)
        self.message = QLabel("", self)
        self.message.setWordWrap(True)
        layout.addWidget(self.message)
        scene.layer_added.connect(lambda *_: self.refresh())
        scene.layer_removed.connect(lambda *_: self.refresh())
        for w in self.form.inputs:
            if w.spec.name == "image" and hasattr(w, "combo"):  # its own masks stop being examples
                w.combo.currentIndexChanged.connect(lambda *_: self._refresh_list())
            if w.spec.name in ("support_images", "support_masks"):  # the Adapt box below chooses them
                self.form.layout().setRowVisible(w.widget, False)
        for p in self.form.params:
            if p.spec.name == "fine_tune":  # Adapt always fits the head: prototypes alone barely move F1
                self.form.layout().setRowVisible(p.widget, False)
        self.refresh()

    # -- the examples ---------------------------------------------------------------------------------
    def target(self):
        return self.form.values().get("image")

    def refresh(self) -> None:
        """A layer came or went: the form's choices and the examples are read again."""
        self.form.refresh_inputs()
        self._refresh_list()

    def _refresh_list(self) -> None:
        """Re-read the examples, keeping the user's checks by name."""
        unchecked = {self.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.list.count())
                     if self.list.item(i).checkState() != Qt.CheckState.Checked}
        examples = find_examples(self.scene, self.target())
        self.list.clear()
        for ex in examples:
            item = QListWidgetItem(ex.label, self.list)
            item.setToolTip(ex.label)
            item.setData(Qt.ItemDataRole.UserRole, ex.mask.name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Unchecked if ex.mask.name in unchecked else Qt.CheckState.Checked)
        self.adapt_button.setEnabled(bool(examples))

    def checked(self) -> list[Example]:
        names = {self.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.list.count())
                 if self.list.item(i).checkState() == Qt.CheckState.Checked}
        current = find_examples(self.scene, self.target())  # painted since the list was made: fresh counts
        return [ex for ex in current if ex.mask.name in names]

    # -- actions --------------------------------------------------------------------------------------
    def _say(self, text: str) -> None:
        self.message.setText(text)

    def _run(self, values: dict) -> bool:
        try:
            self._submit(values, self.form.device.currentText())
        except Exception as e:  # validation: one line here, nothing queued
            self._say(f"⚠ {e}")
            return False
        return True

    def show_target(self) -> None:
        """Show the photo being analysed, not another photo over it: its result mask lands on it."""
        from kintsugi.core import Image2D

        target = self.target()
        if target is None:
            return
        def own(layer: Image2D) -> bool:  # a mask painted on the target, or a task's map of it ("<photo> crack …")
            return belongs(layer, target) or (layer.data.shape[:2] == target.data.shape[:2]
                                              and layer.name.startswith(target.name + " "))

        for layer in self.scene:  # other photos and their masks go; the target's own masks and maps stay
            if isinstance(layer, Image2D) and layer is not target and not own(layer) and layer.visible:
                layer.set(visible=False)
        if not target.visible:
            target.set(visible=True)

    def segment(self) -> None:
        values = {k: v for k, v in self.form.values().items()
                  if k not in ("support_images", "support_masks", "fine_tune")}
        if self._run(values):
            self.show_target()
            self._say("segmenting in the background (Jobs dock)")

    def adapt(self) -> None:
        examples = self.checked()
        if not examples:
            self._say("⚠ check at least one example (a photo with a painted crack mask)")
            return
        empty = [ex.mask.name for ex in examples if ex.crack_pixels == 0]
        if empty:
            self._say(f"⚠ nothing painted yet in {', '.join(empty)}: paint some crack pixels or uncheck it")
            return
        if self._run(self.form.values() | support_values(examples) | {"fine_tune": True}):
            self.show_target()
            self._say(f"adapting to {len(examples)} example(s) in the background (Jobs dock)")

    def new_example(self) -> None:
        new_mask = window_attr(self, "new_mask")
        if new_mask is None:
            self._say("New mask needs the main window")
            return
        if new_mask() is not None:
            self._say("paint the cracks on the new mask (Labels toolbar: paint / erase, undo with Ctrl+Z)")

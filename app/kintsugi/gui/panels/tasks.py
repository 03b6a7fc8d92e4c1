"""The Tasks dock: pick a plugin task, choose its input layers, set parameters, Run / Cancel.

The form is generated from the task's signature; a plugin may name its own widget in the manifest
(``widget = "package.module:Class"``, constructed as ``Class(task, scene, submit)``) when a form is
not enough. Running goes through the job manager, so the window stays responsive.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from kintsugi.core import Scene
from kintsugi.plugins import Registry, TaskInfo

from .forms import InputWidget, ParamWidget, path_row


def window_attr(widget: QWidget, name: str) -> Any:
    """The main window's ``name`` (``history``, ``submit_task``, ``new_mask``, ``existing_view3d``) for a
    plugin panel inside it, found through the panel's parents; None for a bare panel (tests, scripts)."""
    w = widget.parent()
    while w is not None:
        if hasattr(w, name):
            return getattr(w, name)
        w = w.parent()
    return None


class TaskForm(QWidget):
    """The generated form for one task."""

    def __init__(self, task: TaskInfo, scene: Scene, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.task = task
        layout = QFormLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        sig = task.signature
        self.inputs = [InputWidget(spec, scene, self) for spec in sig.inputs]
        for w in self.inputs:
            layout.addRow(w.spec.label or w.spec.name.replace("_", " "), w.widget)
        self.params = [ParamWidget(spec, self) for spec in sig.params]
        for p in self.params:
            widget = path_row(p.widget, self) if p.spec.type is Path else p.widget
            layout.addRow(p.spec.label or p.spec.name.replace("_", " "), widget)
        self.device = QComboBox(self)
        self.device.addItems(["auto", "cpu", "cuda", "mps"])
        self.device.setCurrentText(task.device)
        self.device.setToolTip("auto = cuda, then mps, then cpu; the device used is shown in the Jobs dock")
        layout.addRow("device", self.device)

    def values(self) -> dict:
        out = {w.spec.name: w.value() for w in self.inputs}
        out.update({p.spec.name: p.value() for p in self.params})
        return {k: v for k, v in out.items() if v is not None}

    def refresh_inputs(self) -> None:
        for w in self.inputs:
            w.refresh()


class TasksPanel(QWidget):
    """Task chooser + form + Run/Cancel + progress of the last job started here."""

    def __init__(self, registry: Registry, scene: Scene, submit: Callable[[TaskInfo, dict, str], object],
                 cancel: Callable[[object], None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.registry, self.scene, self._submit, self._cancel = registry, scene, submit, cancel
        self.job = None
        layout = QVBoxLayout(self)
        self.chooser = QComboBox(self)
        self.chooser.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.chooser.setMinimumContentsLength(24)  # long task titles elide instead of widening the dock
        # The scientific plugins first, general tools last: the list reads as "what can I find out".
        manifests = sorted(registry.plugins.values(), key=lambda m: m.name == "kintsugi-tools")
        for manifest in manifests:
            for t in manifest.tasks:
                self.chooser.addItem(f"{manifest.title}: {t.title}", t.id)
        self._user_chose = False
        self.chooser.activated.connect(self._chosen_by_user)
        layout.addWidget(self.chooser)
        self.about = QLabel(self)
        self.about.setWordWrap(True)
        layout.addWidget(self.about)
        self.box = QGroupBox("Inputs and parameters", self)
        self.box_layout = QVBoxLayout(self.box)
        layout.addWidget(self.box)
        buttons = QHBoxLayout()
        self.run_button = QPushButton("Run", self)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setEnabled(False)
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        layout.addLayout(buttons)
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 1000)
        layout.addWidget(self.progress)
        self.status = QLabel("", self)
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        if registry.failed:
            failed = QLabel("Plugins that failed to load:\n" + "\n".join(
                f"• {f.source}: {f.reason}" for f in registry.failed), self)
            failed.setWordWrap(True)
            failed.setStyleSheet("color: #c0392b;")
            layout.addWidget(failed)
        layout.addStretch(1)
        self.form: QWidget | None = None
        self.chooser.currentIndexChanged.connect(self._show_task)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        scene.layer_added.connect(lambda layer, _i: self._suggest_for(layer))
        scene.layer_added.connect(lambda *_: self._refresh_inputs())
        scene.layer_removed.connect(lambda *_: self._refresh_inputs())
        if self.chooser.count():
            self._show_task()
        else:
            self.about.setText("No plugins are installed. See docs/plugin-authoring.md.")
            self.run_button.setEnabled(False)

    @property
    def task(self) -> TaskInfo | None:
        tid = self.chooser.currentData()
        return self.registry.tasks.get(tid) if tid else None

    def select_task(self, task_id: str) -> None:
        index = self.chooser.findData(task_id)
        if index < 0:
            raise KeyError(task_id)
        self.chooser.setCurrentIndex(index)

    def _chosen_by_user(self, _index: int) -> None:
        self._user_chose = True

    def suggest_task(self, task_id: str) -> None:
        """Show this task's form unless the user has picked one (an opened sample names its task)."""
        index = self.chooser.findData(task_id)
        if not self._user_chose and index >= 0:
            self.chooser.setCurrentIndex(index)

    def _suggest_for(self, layer) -> None:
        """Until the user picks a task, show the first one whose first input takes the layer just opened.

        Uses the manifests' declared inputs only: suggesting must not import plugin code (or torch).
        """
        if self._user_chose or getattr(layer, "provenance", None) is not None:
            return  # a task's own result must not switch the form away from that task
        kind = type(layer).__name__
        modality = str(getattr(layer, "modality", "") or "").upper()
        best = None
        for i in range(self.chooser.count()):
            task = self.registry.tasks.get(self.chooser.itemData(i))
            declared = list(task.declared_inputs.values()) if task is not None else []
            if not declared or declared[0].get("type") != kind:
                continue
            wanted = str(declared[0].get("modality") or "").upper()
            if wanted and modality and wanted == modality:
                best = i
                break
            if best is None:
                best = i
        if best is not None and best != self.chooser.currentIndex():
            self.chooser.setCurrentIndex(best)

    def _show_task(self) -> None:
        task = self.task
        if task is None:
            return
        if self.form is not None:
            self.form.setParent(None)
            self.form.deleteLater()
        self.about.setText(f"<b>{task.title}</b> — {task.description}<br><small>{task.plugin.name} "
                           f"{task.plugin.version} · {task.id}</small>")
        if task.widget:
            module, _, name = task.widget.partition(":")
            cls = getattr(importlib.import_module(module), name)
            self.form = cls(task, self.scene, lambda values, device="auto": self._start(task, values, device))
            self.run_button.setVisible(False)  # the plugin's panel has its own run button(s)
        else:
            self.form = TaskForm(task, self.scene, self.box)
            self.run_button.setVisible(True)
        self.box_layout.addWidget(self.form)

    def _refresh_inputs(self) -> None:
        if isinstance(self.form, TaskForm):
            self.form.refresh_inputs()

    def run(self) -> None:
        if not isinstance(self.form, TaskForm) or self.task is None:
            return
        self._start(self.task, self.form.values(), self.form.device.currentText())

    def _start(self, task: TaskInfo, values: dict, device: str) -> None:
        try:
            self.job = self._submit(task, values, device)
        except Exception as e:  # a validation error is shown here, in one line, and nothing is queued
            self.status.setText(f"⚠ {e}")
            self.status.setStyleSheet("color: #c0392b;")
            return
        self.status.setStyleSheet("")
        self.status.setText("queued")
        self.progress.setValue(0)
        self.cancel_button.setEnabled(True)

    def cancel(self) -> None:
        if self.job is not None:
            self._cancel(self.job)

    def on_job_changed(self, job) -> None:
        if job is not self.job:
            return
        self.progress.setValue(int(job.fraction * 1000))
        state = str(job.state)
        if job.done:
            self.cancel_button.setEnabled(False)
            text = {"done": f"done in {job.duration_s:.1f} s on {job.device}",
                    "failed": f"failed: {job.error}", "cancelled": "cancelled"}[state]
            self.status.setStyleSheet("color: #c0392b;" if state == "failed" else "")
            self.status.setText(text)
        else:
            self.status.setText(f"{state}: {job.message}" + (f" ({job.device})" if job.device else ""))

"""The main window: docks, menus and the two views; it owns no domain logic.

Everything it does goes through the same public API the CLI uses (``kintsugi.io.open_path``,
``kintsugi.samples.make_sample``), so each menu action has a headless twin.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from qtpy.QtCore import Qt, Signal
from qtpy.QtGui import QAction, QKeySequence
from qtpy.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPlainTextEdit,
    QSplitter,
    QWidget,
)

from kintsugi import __version__
from kintsugi.core import Layer, Scene
from kintsugi.core.history import UndoStack
from kintsugi.gui.panels.layers import LayersPanel
from kintsugi.gui.viewers.kinds import shown_in_3d, shown_in_image_pane, shown_in_slices
from kintsugi.io import KintsugiIOError, open_path
from kintsugi.samples import list_samples

WELCOME = ("<h2>Kintsugi</h2><p>Open a scan, a photo or a folder of fragments with <b>File ▸ Open</b> (Ctrl+O),"
           " drop files here, or make one from <b>File ▸ Samples</b>.</p>"
           "<p>Volumes appear in linked axial, sagittal and coronal panes with the 3D view beside them; "
           "meshes and fragments in 3D; photos and radiographs in a 2D pane.</p>")


class MainWindow(QMainWindow):
    _autosave_failed = Signal(str)

    def __init__(self, interactive: bool = True) -> None:
        super().__init__()
        self.interactive = interactive
        self.setWindowTitle(f"Kintsugi {__version__}")
        self.resize(1400, 860)
        self.scene = Scene()
        self.history = UndoStack()
        self.setAcceptDrops(True)
        self._build_views()
        self._build_docks()
        self._build_menus()
        self._build_toolbar()
        self._build_label_tools()
        self.scene.layer_added.connect(self._on_layer_added)
        self.scene.layer_removed.connect(self._on_layer_removed)
        self.scene.layer_changed.connect(self._on_layer_changed)
        self.scene.selection_changed.connect(self._on_selection_changed)
        self.statusBar().showMessage("Ready. Open a file (Ctrl+O) or a sample (File ▸ Samples).")
        self._start_autosave()

    # -- construction -------------------------------------------------------------------------
    def _build_views(self) -> None:
        # The canvases (three napari panes, a VTK view, the image pane) and the libraries behind them cost
        # about two seconds to import and create, so the window starts with a welcome page and makes them
        # when the first layer that needs them arrives (or a layout asks for them).
        self._slices = self._images = self._view3d = None
        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.welcome = QLabel(WELCOME, self)
        self.welcome.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.welcome.setWordWrap(True)
        self.welcome.setObjectName("welcome")
        self.splitter.addWidget(self.welcome)
        self.setCentralWidget(self.splitter)

    def _ensure_views(self) -> None:
        if self._slices is not None:
            return
        from kintsugi.gui.viewers.label_editing import LabelEditor
        from kintsugi.gui.viewers.scene3d import Scene3DView
        from kintsugi.gui.viewers.slice_grid import SliceGrid
        from kintsugi.gui.viewers.slices import SliceView

        self.statusBar().showMessage("Preparing the views…")
        # Slicer's four-up: axial, sagittal, coronal linked panes with the 3D view in the fourth cell;
        # photos and radiographs get their own pane (their pixels are not patient millimetres).
        slices = SliceGrid(self)  # first: its GL queries must run before VTK owns a context
        images = SliceView(self, images=True)
        view3d = Scene3DView(self)
        slices.set_fourth(view3d)
        slices.label_editor = LabelEditor(slices, self.history)
        images.history = self.history
        slices.cursor_info.connect(self._show_cursor_info)
        view3d.enable_picking(self._on_pick)
        self._slices, self._images, self._view3d = slices, images, view3d
        for view in self.views:
            model = getattr(view, "model", None)
            if model is not None:
                model.theme = getattr(self, "theme", "dark")
        self.welcome.hide()
        self.splitter.addWidget(slices)
        self.splitter.addWidget(images)
        self._refresh_panes()
        self.statusBar().clearMessage()

    @property
    def slices(self):
        """The four-up slice grid (made on first use)."""
        self._ensure_views()
        return self._slices

    @property
    def images(self):
        """The 2D image pane (made on first use)."""
        self._ensure_views()
        return self._images

    @property
    def view3d(self):
        """The 3D view, in the slice grid's fourth cell (made on first use)."""
        self._ensure_views()
        return self._view3d

    @property
    def existing_view3d(self):
        """The 3D view if it has been made, else None: for panels that follow it without forcing it into being."""
        return self._view3d

    @property
    def views(self) -> tuple:
        """The views made so far: asking does not make them."""
        return tuple(v for v in (self._view3d, self._slices, self._images) if v is not None)

    def _build_docks(self) -> None:
        from kintsugi.gui.panels.jobs import JobsPanel
        from kintsugi.gui.panels.tasks import TasksPanel
        from kintsugi.plugins import get_registry

        self.layers_panel = LayersPanel(self.scene, self.history, self)
        self._dock("Layers", self.layers_panel, Qt.DockWidgetArea.LeftDockWidgetArea).setMaximumWidth(320)
        self.registry = get_registry()
        self.tasks_panel = TasksPanel(self.registry, self.scene, self.submit_task, self.cancel_job, self)
        from qtpy.QtWidgets import QScrollArea

        scroll = QScrollArea(self)  # a plugin's own panel may be taller than the screen
        scroll.setWidget(self.tasks_panel)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # content fits the width
        self.tasks_dock = self._dock("Tasks", scroll, Qt.DockWidgetArea.RightDockWidgetArea)
        self._tasks_scroll = scroll
        self.tasks_panel.chooser.currentIndexChanged.connect(lambda _i: self._fit_tasks_dock())
        self._fit_tasks_dock()
        self.log = QPlainTextEdit(self)
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(5000)
        self.log_dock = self._dock("Log", self.log, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.jobs_panel = JobsPanel(self.cancel_job, self)
        self.jobs_dock = self._dock("Jobs", self.jobs_panel, Qt.DockWidgetArea.BottomDockWidgetArea)
        from kintsugi.gui.panels.table import TablePanel

        self.table_panel = TablePanel(self.scene, self.go_to, self)
        self.table_dock = self._dock("Table", self.table_panel, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.tabifyDockWidget(self.log_dock, self.jobs_dock)
        self.tabifyDockWidget(self.log_dock, self.table_dock)
        self.log_dock.raise_()
        self.scene.layer_added.connect(self._raise_table_dock)
        for dock in (self.log_dock, self.jobs_dock):
            dock.setMaximumHeight(200)
        self.resizeDocks([self.log_dock], [120], Qt.Orientation.Vertical)
        self._manager = None
        self._bridge = None
        self._prepared: dict = {}

    def _fit_tasks_dock(self) -> None:
        """Wide enough for the task's form (no horizontal scrolling), but never more than a third of the screen."""
        from qtpy.QtCore import QTimer

        def fit() -> None:
            self.tasks_panel.layout().activate()  # the new form's size is known only once laid out
            bar = self._tasks_scroll.verticalScrollBar().sizeHint().width()
            self._tasks_scroll.setMinimumWidth(min(self.tasks_panel.minimumSizeHint().width() + bar + 4, 520))

        fit()
        QTimer.singleShot(0, fit)

    def _raise_table_dock(self, layer: Layer, index: int) -> None:
        from kintsugi.core import Table

        if isinstance(layer, Table):
            self.table_dock.raise_()
            self._fit_table_dock(layer.n_rows)

    TABLE_ROWS_SHOWN = 8

    def _fit_table_dock(self, n_rows: int) -> None:
        """Tall enough to read a task's table (up to 8 rows, e.g. a spine's vertebrae) without scrolling, but
        never more than a third of the window: the log's 120 px showed one row."""
        grid = self.table_panel.grid
        rows = max(1, min(n_rows, self.TABLE_ROWS_SHOWN))
        want = (grid.horizontalHeader().sizeHint().height() + rows * grid.verticalHeader().defaultSectionSize()
                + grid.horizontalScrollBar().sizeHint().height() + self.table_panel.chooser.sizeHint().height() + 40)
        height = min(want, self.height() // 3)
        if self.table_dock.height() < height:
            self.resizeDocks([self.table_dock], [height], Qt.Orientation.Vertical)

    def go_to(self, point_mm: tuple[float, float, float]) -> None:
        """Centre the slice panes on a physical point (LPS mm): what clicking a table row does."""
        if self._slices is not None and self._slices.user_layers():
            self._slices.set_crosshair(point_mm)
            self.statusBar().showMessage("x {:.1f}  y {:.1f}  z {:.1f} mm (LPS)".format(*point_mm), 4000)

    # -- background jobs ------------------------------------------------------------------------
    @property
    def job_manager(self):
        """Started on first use: a window that runs no task starts no worker process."""
        if self._manager is None:
            from kintsugi.gui.jobs_bridge import JobsBridge
            from kintsugi.runtime import JobManager

            self._manager = JobManager()
            self._bridge = JobsBridge(self._manager, self)
            self._bridge.job_changed.connect(self._on_job_changed)
        return self._manager

    def submit_task(self, task, values: dict, device: str = "auto"):
        """Validate here (errors raise at once), then queue in a worker; results arrive as layers."""
        from kintsugi.plugins.execute import PreparedTask

        prepared = PreparedTask(task, values, device)
        job = self.job_manager.submit(prepared.job_spec())
        self._prepared[job.id] = prepared
        self.log_message(f"job {job.id}: {task.id} queued on {prepared.device}")
        self.jobs_dock.raise_()
        return job

    def cancel_job(self, job) -> None:
        if self._manager is not None and not job.done:
            self._manager.cancel(job)
            self.log_message(f"job {job.id}: cancel requested")

    def _on_job_changed(self, job) -> None:
        self.tasks_panel.on_job_changed(job)
        self.jobs_panel.on_job_changed(job)
        if not job.done or job.id not in self._prepared:
            return
        prepared = self._prepared.pop(job.id)
        state = str(job.state)
        if state == "done":
            try:
                result = prepared.finish(job.result, job.device or "cpu", job.duration_s or 0.0)
            except Exception as e:  # a task returning something odd is the task's failure, not ours
                self.report_error(f"{prepared.task.id}: {type(e).__name__}: {e}")
                return
            for layer in result.layers:
                self.scene.add(layer)
            extra = ", ".join(f"{k}={v}" for k, v in result.summary.items())
            self.log_message(f"job {job.id}: {prepared.task.id} done in {job.duration_s:.2f} s on {job.device}; "
                             f"{len(result.layers)} layer(s){'; ' + extra if extra else ''}")
        elif state == "failed":
            self.log_message(f"job {job.id}: {prepared.task.id} failed: {job.error}")
            self.statusBar().showMessage(f"{prepared.task.title} failed: {job.error}", 15000)
        else:
            self.log_message(f"job {job.id}: {prepared.task.id} cancelled")

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(title)
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self._action(file_menu, "&Open file…", self._open_file_dialog, QKeySequence.StandardKey.Open)
        self._action(file_menu, "Open &folder…", self._open_folder_dialog, "Ctrl+Shift+O")
        file_menu.addSeparator()
        self._action(file_menu, "Open &workspace…", self._open_workspace_dialog)
        self._action(file_menu, "&Save workspace…", self._save_workspace_dialog, QKeySequence.StandardKey.Save)
        self.restore_action = self._action(file_menu, "Restore &autosave…", lambda _=False: self.restore_autosave())
        file_menu.addSeparator()
        samples = file_menu.addMenu("&Samples")
        for info in list_samples():
            self._action(samples, info.title, lambda _=False, n=info.name: self.open_sample(n))
        self.recent_menu = file_menu.addMenu("Open &recent")
        self._fill_recent()
        file_menu.addSeparator()
        self.batch_action = self._action(file_menu, "&Batch…", lambda _=False: self.open_batch_dialog())
        self._action(file_menu, "&Export layer…", self._export_dialog, "Ctrl+E")
        self._action(file_menu, "Save &screenshot…", self._screenshot_dialog, "Ctrl+Shift+S")
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        edit = self.menuBar().addMenu("&Edit")
        keys = QKeySequence.StandardKey
        self.undo_action = self._action(edit, "&Undo", lambda: self._undo_redo(undo=True), keys.Undo)
        self.redo_action = self._action(edit, "&Redo", lambda: self._undo_redo(undo=False), keys.Redo)
        edit.addSeparator()
        self._action(edit, "&Delete selected layers", self.layers_panel.delete_selected)
        self.history.changed.connect(self._update_undo_actions)
        self._update_undo_actions()
        view = self.menuBar().addMenu("&View")
        themes = view.addMenu("&Theme")
        for name in ("dark", "light"):
            self._action(themes, name.capitalize(), lambda _=False, n=name: self.set_theme(n))
        self._action(view, "&Isolate selected layers", self.isolate_selection, "Ctrl+I")
        self._action(view, "Show &all layers", self.show_all, "Ctrl+Shift+I")
        view.addSeparator()
        self._action(view, "3D: &bone surface of the volume (300 HU)", lambda _=False: self.add_isosurface(300.0))
        self._action(view, "3D: &reset camera", lambda _=False: self.view3d.standard_view("reset"), "Ctrl+R")
        for i, name in enumerate(("anterior", "posterior", "left", "right", "superior", "inferior"), start=1):
            self._action(view, f"3D: from {name}", lambda _=False, n=name: self.view3d.standard_view(n), f"Ctrl+{i}")
        view.addSeparator()
        from kintsugi.gui.viewers.window_level import PRESETS

        wl = view.addMenu("&Window/level")
        for name, (width, level) in PRESETS.items():
            self._action(wl, f"{name} (W {width:g} / L {level:g})", lambda _=False, n=name: self._apply_preset(n))
        view.addSeparator()
        self._action(view, "Layout: automatic", lambda _=False: self.set_layout(None))
        for name in self._LAYOUTS:
            self._action(view, f"Layout: {name}", lambda _=False, n=name: self.set_layout(n))

    def _build_toolbar(self) -> None:
        bar = self.addToolBar("Main")
        bar.setObjectName("main-toolbar")
        bar.setMovable(False)
        for text, slot in (("Open", self._open_file_dialog), ("Open folder", self._open_folder_dialog),
                           ("Save workspace", self._save_workspace_dialog)):
            action = QAction(text, self)
            action.triggered.connect(slot)
            bar.addAction(action)
        bar.addSeparator()
        bar.addAction(self.undo_action)
        bar.addAction(self.redo_action)
        bar.addSeparator()
        for name in ("3d", "slices", "image", "all"):
            action = QAction({"slices": "2x2"}.get(name, name), self)
            action.setToolTip(f"Layout: {name}")
            action.triggered.connect(lambda _=False, n=name: self.set_layout(n))
            bar.addAction(action)

    def _build_label_tools(self) -> None:
        """Paint / erase / fill for the selected label map (or the top one), in every slice pane."""
        from qtpy.QtWidgets import QComboBox, QLabel, QSpinBox

        bar = self.addToolBar("Label editing")
        bar.setObjectName("label-toolbar")
        bar.addWidget(QLabel(" Labels: ", bar))
        self.label_mode = QComboBox(bar)
        self.label_mode.addItems(["navigate", "paint", "erase", "fill"])
        self.label_value = QSpinBox(bar)
        self.label_value.setRange(1, 65535)
        self.label_value.setPrefix("label ")
        self.brush_size = QSpinBox(bar)
        self.brush_size.setRange(1, 200)
        self.brush_size.setValue(10)
        self.brush_size.setPrefix("brush ")
        for w in (self.label_mode, self.label_value, self.brush_size):
            bar.addWidget(w)
        merge = bar.addAction("Merge into…", self._merge_dialog)
        merge.setToolTip("Give every voxel of the chosen label another label (undoable)")
        split = bar.addAction("Split", lambda: self.split_label(self.label_value.value()))
        new_mask = bar.addAction("New mask", self.new_mask)
        new_mask.setToolTip("An empty mask over the selected photo to paint (e.g. crack examples for adaptation)")
        split.setToolTip("Give the chosen label's separate pieces -- or its two halves at the narrowest waist -- "
                         "their own labels (undoable)")
        self.label_mode.currentTextChanged.connect(lambda _: self.apply_label_tool())
        self.label_value.valueChanged.connect(lambda _: self.apply_label_tool())
        self.brush_size.valueChanged.connect(lambda _: self.apply_label_tool())

    def edited_label_map(self):
        from kintsugi.core import LabelMap

        chosen = [x for x in self.scene.selection if isinstance(x, LabelMap)]
        if chosen:
            return chosen[0]
        maps = [x for x in self.scene if isinstance(x, LabelMap)]
        return maps[-1] if maps else None

    def merge_label(self, source: int, target: int) -> bool:
        """Merge label ``source`` into ``target`` in the edited label map (undoable); False with a message if not."""
        from kintsugi.core.label_ops import merge_labels

        return self._label_op(lambda layer: merge_labels(layer, source, target))

    def split_label(self, value: int) -> bool:
        """Split label ``value`` of the edited label map into its pieces (undoable)."""
        from kintsugi.core.label_ops import split_label

        return self._label_op(lambda layer: split_label(layer, value))

    def _label_op(self, make) -> bool:
        layer = self.edited_label_map()
        if layer is None:
            self.report_error("open or select a label map to edit")
            return False
        try:
            command = make(layer)
        except ValueError as e:
            self.report_error(f"{layer.name}: {e}")
            return False
        self.history.push(command)  # announces labels and data: panes, surfaces and autosave follow
        self.log_message(f"{command.text} in {layer.name}")
        return True

    def _merge_dialog(self) -> None:
        from qtpy.QtWidgets import QInputDialog

        source = self.label_value.value()
        target, ok = QInputDialog.getInt(self, "Merge labels", f"Merge label {source} into label:", 1, 1, 65535)
        if ok:
            self.merge_label(source, target)

    def new_mask(self):
        """An empty paintable mask (``<photo>_mask``) over the selected (or top) photo, undoable."""
        from kintsugi.core import Image2D
        from kintsugi.core.history import add_layer
        from kintsugi.gui.viewers.kinds import is_mask

        photos = [x for x in self.scene.selection if isinstance(x, Image2D) and not is_mask(x)] or \
            [x for x in self.scene if isinstance(x, Image2D) and not is_mask(x)][-1:]
        if not photos:
            self.report_error("open or select a photo to draw a mask on")
            return None
        photo = photos[0]
        import numpy as np

        name, i = f"{photo.name}_mask", 2
        while name in self.scene:  # the name must end in _mask: that is what makes it a paintable overlay
            name, i = f"{photo.name}_{i}_mask", i + 1
        mask = Image2D(name=name, data=np.zeros(photo.data.shape[:2], np.uint8), geometry=photo.geometry,
                       modality="mask")
        self.history.push(add_layer(self.scene, mask))
        self.scene.select([mask])
        self.label_mode.setCurrentText("paint")
        self.apply_label_tool()
        return mask

    def apply_label_tool(self) -> None:
        from kintsugi.gui.viewers.kinds import is_mask

        masks = [x for x in self.scene.selection if is_mask(x)]
        if masks:
            mode = {"navigate": "pan_zoom"}.get(self.label_mode.currentText(), self.label_mode.currentText())
            self.images.set_mask_mode(masks[0], mode, self.brush_size.value())
            return
        layer = self.edited_label_map()
        if layer is None:
            if self.label_mode.currentText() != "navigate":
                self.statusBar().showMessage("open or select a label map to edit", 4000)
            return
        mode = {"navigate": "pan_zoom"}.get(self.label_mode.currentText(), self.label_mode.currentText())
        self.slices.label_editor.set_mode(layer, mode, self.label_value.value(), self.brush_size.value())

    def set_theme(self, name: str) -> None:
        """Dark or light for the window and the slice canvases (3D keeps its dark gradient for contrast)."""
        from qtpy.QtGui import QPalette
        from qtpy.QtWidgets import QApplication

        if name not in ("dark", "light"):
            raise ValueError(f"unknown theme {name!r}; choose dark or light")
        app = QApplication.instance()
        palette = QPalette()
        if name == "dark":
            from qtpy.QtGui import QColor

            roles = QPalette.ColorRole
            colors = {roles.Window: "#2b2d33", roles.WindowText: "#e6e6e6", roles.Base: "#1f2126",
                      roles.AlternateBase: "#2b2d33", roles.Text: "#e6e6e6", roles.Button: "#3a3d46",
                      roles.ButtonText: "#e6e6e6", roles.Highlight: "#3d7ab8", roles.HighlightedText: "#ffffff",
                      roles.ToolTipBase: "#2b2d33", roles.ToolTipText: "#e6e6e6"}
            for role, color in colors.items():
                palette.setColor(role, QColor(color))
        else:
            palette = app.style().standardPalette()
        app.setPalette(palette)
        for view in self.views:
            model = getattr(view, "model", None)
            if model is not None:
                model.theme = name
        self.theme = name

    def _action(self, menu, text: str, slot, shortcut=None) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut) if isinstance(shortcut, str) else shortcut)
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    # -- workspaces, autosave, crash recovery ---------------------------------------------------
    def view_state(self) -> dict:
        return {"layout": getattr(self, "_layout", None)}

    def _start_autosave(self) -> None:
        """Look for an autosave a crashed session left, then start this session's own autosave."""
        from kintsugi.gui.gui_thread import GuiThreadRunner
        from kintsugi.workspace import Autosaver, find_recoverable

        try:
            self.recovery = find_recoverable()
        except Exception as e:  # a broken state folder must not stop the app
            self.recovery = None
            self.log_message(f"could not look for autosaves: {e}")
        self.restore_action.setEnabled(self.recovery is not None)
        if self.recovery is not None:
            self.log_message(f"Kintsugi did not close properly last time: {self.recovery.describe()} "
                             "(File ▸ Restore autosave)")
        self._gui_runner = GuiThreadRunner(self)
        self.autosaver = Autosaver(self.scene, extra_provider=self.view_state, snapshot_runner=self._gui_runner)
        # The autosaver reports from its own thread: hand the message to the GUI thread (never touch
        # widgets from another thread).
        self.autosaver.failed.connect(self._autosave_failed.emit)
        self._autosave_failed.connect(lambda reason: self.log_message(f"autosave failed: {reason}"))

    def offer_recovery(self) -> None:
        """Ask (interactive sessions) whether to restore what a crashed session autosaved."""
        if self.recovery is None or not self.interactive:
            return
        answer = QMessageBox.question(
            self, "Restore your work?",
            f"Kintsugi did not close properly last time.\n\n{self.recovery.describe()}\n\nRestore it?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
        if answer == QMessageBox.StandardButton.Yes:
            self.restore_autosave()

    def restore_autosave(self) -> list[Layer]:
        """Bring back the crashed session's layers (then its autosave is discarded)."""
        from kintsugi.workspace import discard_recoverable, open_workspace

        if self.recovery is None:
            self.report_error("there is no autosave to restore")
            return []
        try:
            layers, extra = open_workspace(self.recovery.path)
        except KintsugiIOError as e:
            self.report_error(f"autosave cannot be restored: {e}")
            return []
        for layer in layers:
            self.scene.add(layer)
        self.log_message(f"restored {len(layers)} layer(s) from the autosave of {self.recovery.saved:%H:%M:%S}")
        discard_recoverable(self.recovery)
        self.recovery = None
        self.restore_action.setEnabled(False)
        if extra.get("layout"):
            self.set_layout(extra["layout"])
        return layers

    def save_workspace(self, path: str | Path) -> Path | None:
        from kintsugi.workspace import save_workspace

        try:
            out = save_workspace(self.scene, path, extra=self.view_state())
        except Exception as e:  # disk full, permission: say so, keep the session
            self.report_error(f"{path}: workspace not saved: {e}")
            return None
        self.log_message(f"workspace saved to {out}")
        self._remember(out)
        return out

    def _save_workspace_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save workspace", "workspace.kintsugi.zip",
                                              "Kintsugi workspace (*.zip);;Folder (*)")
        if path:
            self.save_workspace(path)

    def _open_workspace_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open workspace", "", "Kintsugi workspace (*.zip *.json)")
        if path:
            self.open_path(Path(path).parent if path.endswith("workspace.json") else path)

    # -- undo, recent files, drag and drop ------------------------------------------------------
    def _undo_redo(self, undo: bool) -> None:
        text = self.history.undo() if undo else self.history.redo()
        if text:
            self.statusBar().showMessage(f"{'undid' if undo else 'redid'}: {text}", 4000)

    def _update_undo_actions(self) -> None:
        self.undo_action.setEnabled(self.history.can_undo())
        self.redo_action.setEnabled(self.history.can_redo())
        self.undo_action.setText(f"&Undo {self.history.undo_text()}".strip())
        self.redo_action.setText(f"&Redo {self.history.redo_text()}".strip())

    def _settings(self):
        """User settings (recent files); ``KINTSUGI_CONFIG_DIR`` redirects them (tests, portable installs)."""
        import os

        from qtpy.QtCore import QSettings

        folder = os.environ.get("KINTSUGI_CONFIG_DIR")
        if folder:
            return QSettings(str(Path(folder) / "kintsugi.ini"), QSettings.Format.IniFormat)
        return QSettings("Kintsugi", "Kintsugi")

    def recent_paths(self) -> list[str]:
        value = self._settings().value("recent", []) or []
        return [value] if isinstance(value, str) else [str(v) for v in value]

    def _remember(self, path: str | Path) -> None:
        path = str(Path(path).resolve())
        recent = [path] + [p for p in self.recent_paths() if p != path]
        self._settings().setValue("recent", recent[:10])
        self._fill_recent()

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        paths = self.recent_paths()
        for p in paths:
            self._action(self.recent_menu, p, lambda _=False, q=p: self.open_path(q))
        self.recent_menu.setEnabled(bool(paths))

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt naming
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt naming
        for url in event.mimeData().urls():
            if url.isLocalFile():
                self.open_path(url.toLocalFile())
        event.acceptProposedAction()

    # -- opening data -------------------------------------------------------------------------
    def open_path(self, path: str | Path) -> list[Layer]:
        """Open a file or folder; a bad file is reported in the log and status bar, never raised."""
        try:
            layers = open_path(path)
        except KintsugiIOError as e:
            self.report_error(str(e))
            return []
        except Exception as e:  # a reader bug must not take the window down
            self.report_error(f"{path}: unexpected error: {type(e).__name__}: {e}")
            return []
        for layer in layers:
            self.scene.add(layer)
        self._remember(path)
        self.log_message(f"opened {path} ({len(layers)} layer(s))")
        return layers

    def open_sample(self, name: str, seed: int = 0) -> list[Layer]:
        from kintsugi.gui.app import sample_paths

        try:
            paths = sample_paths(name, seed)
        except Exception as e:
            self.report_error(f"sample {name}: {type(e).__name__}: {e}")
            return []
        layers: list[Layer] = []
        for p in paths:
            layers.extend(self.open_path(p))
        info = next((s for s in list_samples() if s.name == name), None)
        if info is not None and info.task:
            self.tasks_panel.suggest_task(info.task)
        return layers

    def report_error(self, message: str) -> None:
        self.log_message(f"error: {message}")
        self.statusBar().showMessage(message, 15000)
        if self.interactive and self.isVisible():
            box = QMessageBox(QMessageBox.Icon.Warning, "Cannot open", message, QMessageBox.StandardButton.Ok, self)
            box.setModal(False)
            box.show()

    def log_message(self, message: str) -> None:
        self.log.appendPlainText(f"{dt.datetime.now():%H:%M:%S}  {message}")

    def _open_file_dialog(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Open files")
        for f in files:
            self.open_path(f)

    def _open_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open folder (DICOM series, fragments)")
        if folder:
            self.open_path(folder)

    def open_batch_dialog(self):
        """File ▸ Batch…: one task over many files on a Dask cluster (kintsugi.batch); progress in the Jobs dock."""
        from kintsugi.gui.panels.batch import BatchDialog

        if getattr(self, "_batch_dialog", None) is None:
            self._batch_dialog = BatchDialog(self.registry, self.jobs_panel, self.jobs_dock.raise_,
                                             self.log_message, self)
        self._batch_dialog.show()
        self._batch_dialog.raise_()
        return self._batch_dialog

    EXPORT_FILTERS = {
        "volume": "NIfTI (*.nii.gz *.nii);;NRRD (*.nrrd);;MetaImage (*.mha)",
        "labels": "NIfTI (*.nii.gz *.nii);;NRRD (*.nrrd);;MetaImage (*.mha)",
        "image": "PNG (*.png);;TIFF (*.tif *.tiff)",
        "mesh": "PLY (*.ply);;STL (*.stl);;OBJ (*.obj);;GLB (*.glb)",
        "points": "PLY (*.ply)",
        "table": "CSV (*.csv);;JSON (*.json)",
        "fragments": "Folder of PLY pieces + assembly.json (*)",
    }
    EXPORT_SUFFIX = {"volume": ".nii.gz", "labels": ".nii.gz", "image": ".png", "mesh": ".ply", "points": ".ply",
                     "table": ".csv", "fragments": ""}

    def export_layer(self, layer: Layer, path: str | Path) -> Path | None:
        """Write one layer in a standard format chosen by the file name (a fragment set: a folder)."""
        from kintsugi.plugins.result import write_object

        path = Path(path)
        if not path.suffix and layer.kind in self.EXPORT_SUFFIX and layer.kind != "fragments":
            path = path.with_name(path.name + self.EXPORT_SUFFIX[layer.kind])
        try:
            written = write_object(layer, path)
        except (KintsugiIOError, OSError, ValueError) as e:
            self.report_error(f"cannot export {layer.name} to {path}: {e}")
            return None
        self.log_message(f"exported {layer.name} to {written}")
        return written

    def _export_dialog(self) -> None:
        layer = self.scene.selection[0] if self.scene.selection else (self.scene[-1] if len(self.scene) else None)
        if layer is None:
            self.report_error("open or select a layer to export")
            return
        default = f"{layer.name}{self.EXPORT_SUFFIX.get(layer.kind, '')}"
        if layer.kind == "fragments":
            path = QFileDialog.getExistingDirectory(self, f"Export {layer.name} into a folder")
            if path:
                path = str(Path(path) / layer.name)
        else:
            path, _ = QFileDialog.getSaveFileName(self, f"Export {layer.name}", default,
                                                  self.EXPORT_FILTERS.get(layer.kind, ""))
        if path:
            self.export_layer(layer, path)

    def _screenshot_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save screenshot", "kintsugi.png", "PNG (*.png)")
        if path:
            self.save_screenshot(path)

    def save_screenshot(self, path: str | Path) -> Path:
        if self._view3d is not None:
            self._view3d.plotter.render()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.grab().save(str(path))
        self.log_message(f"screenshot saved to {path}")
        return path

    # -- scene -> views -------------------------------------------------------------------------
    def _views_for(self, layer: Layer) -> list:
        """Every view that shows this kind of layer (a label map: slices and its surfaces in 3D)."""
        if not (shown_in_3d(layer) or shown_in_slices(layer) or shown_in_image_pane(layer)):
            return []
        self._ensure_views()
        return [view for view in self.views if view.supports(layer)]

    def _on_layer_added(self, layer: Layer, index: int) -> None:
        for view in self._views_for(layer):
            try:
                view.add(layer)
            except Exception as e:  # a view that cannot show a layer must not lose it from the scene
                self.report_error(f"{layer.name}: cannot be shown in the {type(view).__name__}: {e}")
                continue
            if index < len(self.scene) - 1 and hasattr(view, "sync_order"):
                view.sync_order(list(self.scene))
        self._refresh_panes()

    def _on_layer_removed(self, layer: Layer, index: int) -> None:
        for view in self.views:
            if not view.supports(layer):
                continue
            view.remove(layer)
        self._refresh_panes()

    def _on_layer_changed(self, layer: Layer, what: str) -> None:
        for view in self.views:
            if not view.supports(layer):
                continue
            view.update(layer, what)

    def _on_selection_changed(self, layers: list) -> None:
        if self._view3d is not None:
            self._view3d.highlight(layers)

    def _on_pick(self, layer: Layer | None) -> None:
        self.scene.select([layer] if layer is not None else [])
        if layer is not None:
            self.statusBar().showMessage(f"selected {layer.name}", 4000)

    def add_isosurface(self, level: float = 300.0):
        """Surface of the selected (or top) volume at ``level``, added as an undoable Mesh layer."""
        from kintsugi.core import Volume
        from kintsugi.core.history import add_layer
        from kintsugi.gui.viewers.scene3d import isosurface

        chosen = [x for x in self.scene.selection if isinstance(x, Volume)] or \
            [x for x in self.scene if isinstance(x, Volume)][-1:]
        if not chosen:
            self.report_error("open or select a volume to make its surface")
            return None
        try:
            mesh = isosurface(chosen[0], level)
        except ValueError as e:
            self.report_error(str(e))
            return None
        self.history.push(add_layer(self.scene, mesh))
        self.log_message(f"surface of {chosen[0].name} at {level:g}: {mesh.n_faces} triangles")
        return mesh

    def isolate_selection(self) -> None:
        """Hide every layer but the selected ones (one undoable step)."""
        from kintsugi.core.history import Command

        chosen = {id(x) for x in self.scene.selection}
        if not chosen:
            return
        before = {id(x): x.visible for x in self.scene}
        layers = list(self.scene)

        def apply() -> None:
            for x in layers:
                if x.visible != (id(x) in chosen):
                    x.set(visible=id(x) in chosen)

        def revert() -> None:
            for x in layers:
                if x.visible != before[id(x)]:
                    x.set(visible=before[id(x)])

        self.history.push(Command("isolate selection", apply, revert))

    def show_all(self) -> None:
        from kintsugi.core.history import set_attributes

        for x in self.scene:
            if not x.visible:
                self.history.push(set_attributes(x, f"show '{x.name}'", visible=True))

    _LAYOUTS = {"3d": ("3d",), "slices": ("3d", "slices"), "image": ("image",), "both": ("3d", "slices"),
                "all": ("3d", "slices", "image")}

    def _refresh_panes(self) -> None:
        """Show the panes the layout names, or (no layout chosen) every pane that has something to show."""
        layout = getattr(self, "_layout", None)
        if layout is None:
            if self._slices is None:
                return  # the welcome page until something is opened
            layers = list(self.scene)
            show3d = any(shown_in_3d(x) for x in layers)
            show_slices = any(shown_in_slices(x) for x in layers)
            show_image = any(shown_in_image_pane(x) for x in layers)
            if not (show3d or show_slices or show_image):
                show3d = True
        else:
            wanted = self._LAYOUTS[layout]
            show3d, show_slices, show_image = "3d" in wanted, "slices" in wanted, "image" in wanted
        for pane in self.slices.panes.values():
            pane.setVisible(show_slices)
        self.view3d.setVisible(show3d)
        grid = self.slices.grid_layout
        for i in (0, 1):  # a hidden row/column must not keep its share of the space
            grid.setRowStretch(i, 1)
            grid.setColumnStretch(i, 1)
        if show3d and not show_slices:
            grid.setRowStretch(1, 0)
            grid.setColumnStretch(0, 0)
        was_shown = self.images.isVisible()
        self.slices.setVisible(show3d or show_slices)
        self.images.setVisible(show_image)
        if show_image and (show3d or show_slices) and not was_shown:
            from qtpy.QtCore import QTimer

            QTimer.singleShot(0, self._share_splitter)

    def _share_splitter(self) -> None:
        """Slices and the image pane side by side: the photo or map gets a real share, not a sliver."""
        total = max(self.splitter.width(), 2)
        share = {id(self._slices): total * 3 // 5, id(self._images): total * 2 // 5}
        self.splitter.setSizes([share.get(id(self.splitter.widget(i)), 0) for i in range(self.splitter.count())])
        from qtpy.QtCore import QTimer

        QTimer.singleShot(0, self._images.model.reset_view)  # fit the photo to its new share

    def _show_cursor_info(self, info: dict) -> None:
        x, y, z = info["position_mm"]
        text = f"x {x:.1f}  y {y:.1f}  z {z:.1f} mm (LPS)"
        if info.get("value") is not None:
            text += f"   value {info['value']:.6g}"
        if info.get("label"):
            text += f"   label {info['label']}"
        self.statusBar().showMessage(text)

    def _apply_preset(self, name: str) -> None:
        try:
            self.slices.apply_preset(name)
        except (ValueError, KeyError) as e:
            self.statusBar().showMessage(f"window/level: {e}", 5000)

    def set_layout(self, name: str | None) -> None:
        if name is not None and name not in self._LAYOUTS:
            raise ValueError(f"unknown layout {name!r}; choose one of {', '.join(self._LAYOUTS)}")
        self._layout = name
        if name is not None:
            self._ensure_views()
        self._refresh_panes()

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt naming
        # Qt may deliver close twice (window manager, then a test's teardown); finalizing VTK's render
        # window a second time segfaults, so the shutdown below runs once.
        if getattr(self, "_closed", False):
            super().closeEvent(event)
            return
        self._closed = True
        if getattr(self, "autosaver", None) is not None:
            self.autosaver.stop(clean=True)
        if self._bridge is not None:
            self._bridge.detach()
        if self._manager is not None:
            self._manager.shutdown(wait=False)
        for view in self.views:
            view.close_viewer()
        super().closeEvent(event)

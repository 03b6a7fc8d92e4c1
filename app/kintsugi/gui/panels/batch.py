"""File ▸ Batch…: run one task over many files on a Dask cluster; progress and Cancel in the Jobs dock.

The dialog only collects choices; :func:`kintsugi.batch.run_batch` (Qt-free, the same function behind
``kintsugi batch``) runs in a background thread and reports through a Qt signal, so the window never
waits on a batch. A batch is shown in the Jobs dock as one row (a :class:`BatchJob`, which looks like a
runtime Job to the panel), with done/failed/remaining, an estimate, and Cancel.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from qtpy.QtCore import QObject, Qt, Signal
from qtpy.QtWidgets import (
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from kintsugi.plugins import Registry, TaskInfo

from .forms import ParamWidget, path_row


class BatchJob:
    """One batch as the Jobs dock sees it (the attributes of ``kintsugi.runtime.Job`` it reads)."""

    def __init__(self, title: str, device: str) -> None:
        self.id = f"batch-{uuid.uuid4().hex[:8]}"
        self.title = title
        self.state = "queued"
        self.fraction = 0.0
        self.device = device
        self.duration_s: float | None = None
        self.message = "starting the Dask cluster"
        self.error: str | None = None
        self.traceback: str | None = None
        self.report = None
        self._t0 = time.perf_counter()

    @property
    def done(self) -> bool:
        return self.state in ("done", "failed", "cancelled")


class BatchRunner(QObject):
    """Runs ``run_batch`` in a thread; ``changed`` carries the BatchJob after every update (GUI thread)."""

    changed = Signal(object)

    def __init__(self, task: TaskInfo, inputs: list[str], output: str, values: dict, *, input_param: str | None,
                 workers: int | None, scheduler: str | None, device: str | None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.task, self.inputs, self.output, self.values = task, inputs, output, values
        self.input_param, self.workers, self.scheduler, self.device = input_param, workers, scheduler, device
        where = scheduler or (f"local ×{workers}" if workers else "local")
        self.job = BatchJob(f"Batch: {task.title}", where)
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"kintsugi-{self.job.id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def cancel(self, *_args) -> None:
        if not self.job.done:
            self._cancel.set()
            self.job.message = "cancelling…"
            self.changed.emit(self.job)

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _progress(self, p) -> None:  # noqa: ANN001 - kintsugi.batch.BatchProgress, from the batch thread
        job = self.job
        if p.state == "running":
            job.state = "running"
        job.fraction = p.fraction
        job.duration_s = time.perf_counter() - job._t0
        if p.workers and not self.scheduler:
            job.device = f"local ×{p.workers}"
        text = p.message or p.line()
        if p.dashboard:
            text += f" · {p.dashboard}"
        if not self._cancel.is_set():
            job.message = text
        self.changed.emit(job)

    def _run(self) -> None:
        from kintsugi.batch import BatchCancelled, run_batch

        job = self.job
        try:
            job.report = run_batch(self.task, self.inputs, self.output, self.values, input_param=self.input_param,
                                   workers=self.workers, scheduler=self.scheduler, device=self.device,
                                   progress=self._progress, cancel=self._cancel)
            c = job.report.counts()
            job.state = "done" if c["failed"] == 0 else "failed"
            job.message = (f"{c['done']} done, {c['skipped']} skipped, {c['failed']} failed of {c['total']}; "
                           f"{job.report.csv}")
            if c["failed"]:
                job.error = f"{c['failed']} of {c['total']} inputs failed; see {job.report.csv}"
        except BatchCancelled as e:
            job.state, job.message = "cancelled", str(e)
        except Exception as e:  # noqa: BLE001 - shown in the Jobs dock, the window keeps running
            import traceback

            job.state, job.error, job.traceback = "failed", f"{type(e).__name__}: {e}", traceback.format_exc()
        job.duration_s = time.perf_counter() - job._t0
        if job.state == "done":
            job.fraction = 1.0
        self.changed.emit(job)


class BatchDialog(QDialog):
    """Choose a task, its inputs (files or a glob), parameters and an output folder; Run."""

    def __init__(self, registry: Registry, jobs_panel, show_jobs: Callable[[], None] | None = None,
                 log: Callable[[str], None] | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Batch")
        self.setObjectName("BatchDialog")
        self.registry, self.jobs_panel = registry, jobs_panel
        self._show_jobs, self._log = show_jobs, log
        self.runners: list[BatchRunner] = []
        self.param_widgets: list[ParamWidget] = []
        self.other_inputs: dict[str, QLineEdit] = {}
        layout = QVBoxLayout(self)
        intro = QLabel("Run one task on many files, on a local Dask cluster (or a running scheduler). Each input's "
                       "results go to <i>output/&lt;name&gt;/</i>, with <i>batch.csv</i> and <i>batch.json</i>; "
                       "running it again skips what is done.", self)
        intro.setWordWrap(True)
        layout.addWidget(intro)
        top = QFormLayout()
        self.task_box = QComboBox(self)
        for manifest in registry.plugins.values():
            for t in manifest.tasks:
                try:
                    if t.signature.inputs:
                        self.task_box.addItem(f"{manifest.title}: {t.title}", t.id)
                except Exception:  # noqa: BLE001, S112 - a broken plugin is listed elsewhere, not here
                    continue
        top.addRow("Task", self.task_box)
        self.input_param = QComboBox(self)
        self.input_param.setToolTip("the task input each file feeds")
        top.addRow("Each file is", self.input_param)
        self.inputs_edit = QLineEdit(self)
        self.inputs_edit.setPlaceholderText("a glob (scans/*.nii.gz), paths separated by ';', or @list.txt")
        files_button = QPushButton("Files…", self)
        files_button.clicked.connect(self._choose_files)
        row = QHBoxLayout()
        row.addWidget(self.inputs_edit)
        row.addWidget(files_button)
        top.addRow("Inputs", row)
        self.count_label = QLabel("no inputs yet", self)
        top.addRow("", self.count_label)
        layout.addLayout(top)
        self.params_box = QGroupBox("Parameters", self)
        self.params_form = QFormLayout(self.params_box)
        layout.addWidget(self.params_box)
        run_box = QGroupBox("Output and cluster", self)
        form = QFormLayout(run_box)
        self.output_edit = QLineEdit(self)
        self.output_edit.setPlaceholderText("folder for the results (created if needed)")
        out_button = QPushButton("…", self)
        out_button.setFixedWidth(28)
        out_button.clicked.connect(self._choose_output)
        row = QHBoxLayout()
        row.addWidget(self.output_edit)
        row.addWidget(out_button)
        form.addRow("Output folder", row)
        self.workers = QSpinBox(self)
        self.workers.setRange(0, 256)
        self.workers.setSpecialValueText("auto (sized to this machine)")
        form.addRow("Local workers", self.workers)
        self.scheduler = QLineEdit(self)
        self.scheduler.setPlaceholderText("empty: a local cluster; or tcp://host:8786")
        form.addRow("Dask scheduler", self.scheduler)
        self.device = QComboBox(self)
        self.device.addItems(["task default", "auto", "cpu", "cuda", "mps"])
        form.addRow("Device", self.device)
        layout.addWidget(run_box)
        self.status = QLabel("", self)
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.run_button = QPushButton("Run batch", self)
        self.run_button.setDefault(True)
        self.run_button.clicked.connect(self.run)
        close = QPushButton("Close", self)
        close.clicked.connect(self.hide)
        buttons.addWidget(self.run_button)
        buttons.addWidget(close)
        layout.addLayout(buttons)
        self.task_box.currentIndexChanged.connect(self._show_task)
        self.input_param.currentIndexChanged.connect(self._show_params)
        self.inputs_edit.textChanged.connect(self._count_inputs)
        if self.task_box.count():
            self._show_task()
        else:
            self.run_button.setEnabled(False)
            self.status.setText("No installed task takes a file input.")
        from qtpy.QtWidgets import QApplication

        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.cancel_all)
        self.resize(560, 520)

    # -- the form ------------------------------------------------------------------------------
    @property
    def task(self) -> TaskInfo | None:
        tid = self.task_box.currentData()
        return self.registry.tasks.get(tid) if tid else None

    def select_task(self, task_id: str) -> None:
        index = self.task_box.findData(task_id)
        if index < 0:
            raise KeyError(task_id)
        self.task_box.setCurrentIndex(index)

    def _show_task(self) -> None:
        task = self.task
        if task is None:
            return
        self.input_param.blockSignals(True)
        self.input_param.clear()
        for spec in task.signature.inputs:
            self.input_param.addItem(f"{spec.name} ({spec.type_name})", spec.name)
        self.input_param.blockSignals(False)
        self._show_params()

    def _show_params(self) -> None:
        task = self.task
        if task is None:
            return
        while self.params_form.rowCount():
            self.params_form.removeRow(0)
        self.param_widgets, self.other_inputs = [], {}
        chosen = self.input_param.currentData()
        for spec in task.signature.inputs:
            if spec.name == chosen:
                continue
            line = QLineEdit(self.params_box)
            line.setPlaceholderText(f"{spec.type_name} file, the same for every input"
                                    + (" (optional)" if spec.optional else ""))
            self.other_inputs[spec.name] = line
            self.params_form.addRow(spec.label or spec.name.replace("_", " "), path_row(line, self.params_box))
        for spec in task.signature.params:
            w = ParamWidget(spec, self.params_box)
            self.param_widgets.append(w)
            widget = path_row(w.widget, self.params_box) if spec.type is Path else w.widget
            self.params_form.addRow(spec.label or spec.name.replace("_", " "), widget)
        if not self.params_form.rowCount():
            self.params_form.addRow(QLabel("(this task has no parameters)", self.params_box))

    def input_list(self) -> list[str]:
        text = self.inputs_edit.text().strip()
        return [part.strip() for part in text.split(";") if part.strip()]

    def _count_inputs(self) -> None:
        from kintsugi.batch import BatchError, expand_inputs

        if not self.input_list():
            self.count_label.setText("no inputs yet")
            return
        try:
            n = len(expand_inputs(self.input_list()))
            self.count_label.setText(f"{n} input{'s' if n != 1 else ''}")
        except BatchError as e:
            self.count_label.setText(f"⚠ {e}")

    def _choose_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Choose the inputs")
        if files:
            self.inputs_edit.setText("; ".join([*self.input_list(), *files]))

    def _choose_output(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Output folder")
        if folder:
            self.output_edit.setText(folder)

    def values(self) -> dict:
        out = {w.spec.name: w.value() for w in self.param_widgets}
        out.update({name: line.text().strip() for name, line in self.other_inputs.items() if line.text().strip()})
        return {k: v for k, v in out.items() if v is not None}

    # -- running -------------------------------------------------------------------------------
    def run(self) -> BatchRunner | None:
        """Check the choices here (one line if wrong), then start the batch in the background."""
        from kintsugi.batch.plan import canonical_params, choose_input, expand_inputs

        task = self.task
        try:
            if task is None:
                raise ValueError("choose a task")
            inputs = self.input_list()
            if not inputs:
                raise ValueError("choose the input files (or type a glob)")
            expand_inputs(inputs)
            output = self.output_edit.text().strip()
            if not output:
                raise ValueError("choose an output folder")
            name = choose_input(task, self.input_param.currentData())
            values = self.values()
            canonical_params(task, values, name)
        except ValueError as e:
            self.status.setStyleSheet("color: #c0392b;")
            self.status.setText(f"⚠ {e}")
            return None
        device = None if self.device.currentIndex() == 0 else self.device.currentText()
        runner = BatchRunner(task, inputs, output, values, input_param=name, workers=self.workers.value() or None,
                             scheduler=self.scheduler.text().strip() or None, device=device, parent=self)
        n = len(expand_inputs(inputs))
        runner.job.title = f"Batch: {task.title} ({n} input{'s' if n != 1 else ''})"
        runner.changed.connect(self._on_changed, Qt.ConnectionType.QueuedConnection)
        self.runners.append(runner)
        self._on_changed(runner.job)
        row = self.jobs_panel.row_of(runner.job)
        self.jobs_panel.item(row, 0).setToolTip(f"{runner.job.title}: {', '.join(inputs)} → {output}")
        button = self.jobs_panel.cellWidget(row, self.jobs_panel.columnCount() - 1)
        if isinstance(button, QPushButton):  # the Jobs dock's Cancel stops this batch
            button.clicked.disconnect()
            button.clicked.connect(runner.cancel)
        runner.start()
        self.status.setStyleSheet("")
        self.status.setText(f"running {task.id} on {n} inputs; progress in the Jobs dock")
        if self._log:
            self._log(f"batch {runner.job.id}: {task.id} over {', '.join(inputs)} → {output}")
        if self._show_jobs:
            self._show_jobs()
        return runner

    def _on_changed(self, job: BatchJob) -> None:
        self.jobs_panel.on_job_changed(job)
        if job.done and self._log and not getattr(job, "_logged", False):
            job._logged = True
            self._log(f"batch {job.id}: {job.state}: {job.error or job.message}")

    def cancel_all(self) -> None:
        for runner in self.runners:
            runner.cancel()
        for runner in self.runners:
            runner.wait(30)

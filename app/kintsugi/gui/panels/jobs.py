"""The Jobs dock: every job with its state, progress, device, duration and error; Cancel per job."""

from __future__ import annotations

from collections.abc import Callable

from qtpy.QtWidgets import QHeaderView, QProgressBar, QPushButton, QTableWidget, QTableWidgetItem, QWidget

_COLUMNS = ("Task", "State", "Progress", "Device", "Time", "Message", "")


class JobsPanel(QTableWidget):
    def __init__(self, cancel: Callable[[object], None], parent: QWidget | None = None) -> None:
        super().__init__(0, len(_COLUMNS), parent)
        self._cancel = cancel
        self._rows: dict[str, int] = {}
        self.setHorizontalHeaderLabels(_COLUMNS)
        self.verticalHeader().setVisible(False)
        self.horizontalHeader().setSectionResizeMode(5, QHeaderView.ResizeMode.Stretch)
        self.setColumnWidth(0, 260)  # task titles ("Reassembly: Reassemble fragments") are the longest cell
        self.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)

    def row_of(self, job) -> int:
        if job.id not in self._rows:
            row = self.rowCount()
            self.insertRow(row)
            self._rows[job.id] = row
            self.setItem(row, 0, QTableWidgetItem(job.title))
            bar = QProgressBar(self)
            bar.setRange(0, 1000)
            self.setCellWidget(row, 2, bar)
            button = QPushButton("Cancel", self)
            button.clicked.connect(lambda _=False, j=job: self._cancel(j))
            self.setCellWidget(row, 6, button)
            for col in (1, 3, 4, 5):
                self.setItem(row, col, QTableWidgetItem(""))
        return self._rows[job.id]

    def on_job_changed(self, job) -> None:
        row = self.row_of(job)
        self.item(row, 1).setText(str(job.state))
        self.cellWidget(row, 2).setValue(int(job.fraction * 1000))
        self.item(row, 3).setText(job.device or "")
        self.item(row, 4).setText(f"{job.duration_s:.1f} s" if job.duration_s is not None else "")
        message = job.error if job.error else job.message
        self.item(row, 5).setText(message or "")
        if job.traceback:
            self.item(row, 5).setToolTip(job.traceback)
        if job.done:
            self.cellWidget(row, 6).setEnabled(False)

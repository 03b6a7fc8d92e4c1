"""File ▸ Batch…: the dialog runs a task over files in the background; the Jobs dock shows the batch with
progress, and the results, batch.csv and batch.json land in the output folder."""

from __future__ import annotations

import csv

import pytest

from tests.batch.conftest import make_cohort

pytestmark = pytest.mark.gui


def test_batch_dialog_runs_a_batch_with_progress_in_the_jobs_dock(window, qtbot, tmp_path):
    make_cohort(tmp_path / "scans", 3)
    window.batch_action.trigger()
    dialog = window._batch_dialog
    assert dialog.isVisible()
    dialog.select_task("volume.threshold")
    assert dialog.input_param.currentData() == "volume"
    assert {w.spec.name for w in dialog.param_widgets} == {"level", "largest_only"}
    dialog.inputs_edit.setText(str(tmp_path / "scans" / "*.nii.gz"))
    assert dialog.count_label.text() == "3 inputs"
    assert dialog.run() is None and "output folder" in dialog.status.text()  # checked before anything starts
    dialog.output_edit.setText(str(tmp_path / "out"))
    next(w for w in dialog.param_widgets if w.spec.name == "level").widget.setValue(300.0)
    dialog.workers.setValue(1)
    runner = dialog.run()
    assert runner is not None
    panel = window.jobs_panel
    row = panel.row_of(runner.job)
    assert panel.item(row, 0).text().startswith("Batch: Threshold")
    qtbot.waitUntil(lambda: runner.job.done, timeout=120_000)
    qtbot.waitUntil(lambda: panel.item(row, 1).text() == "done", timeout=5_000)
    assert runner.job.state == "done", runner.job.error
    assert panel.cellWidget(row, 2).value() == 1000
    assert "3 done" in panel.item(row, 5).text()
    assert not panel.cellWidget(row, panel.columnCount() - 1).isEnabled()
    with open(tmp_path / "out" / "batch.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["status"] for r in rows] == ["done"] * 3 and rows[0]["voxels"] == "32"
    assert (tmp_path / "out" / "batch.json").is_file()


def test_cancel_in_the_jobs_dock_stops_the_batch(window, qtbot, tmp_path):
    make_cohort(tmp_path / "scans", 3)
    dialog = window.open_batch_dialog()
    dialog.select_task("volume.threshold")
    dialog.inputs_edit.setText(str(tmp_path / "scans" / "*.nii.gz"))
    dialog.output_edit.setText(str(tmp_path / "out"))
    dialog.workers.setValue(1)
    runner = dialog.run()
    panel = window.jobs_panel
    row = panel.row_of(runner.job)
    panel.cellWidget(row, panel.columnCount() - 1).click()  # Cancel, while the cluster is starting
    qtbot.waitUntil(lambda: runner.job.done, timeout=120_000)
    qtbot.waitUntil(lambda: panel.item(row, 1).text() == "cancelled", timeout=5_000)
    with open(tmp_path / "out" / "batch.csv", newline="") as fh:
        assert {r["status"] for r in csv.DictReader(fh)} <= {"cancelled", "done"}

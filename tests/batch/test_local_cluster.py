"""run_batch on a local Dask cluster (two worker processes, shared by the tests of this module):
results and tables, rerun skips, corrupt and worker-crashing inputs fail alone, weights load once per worker."""

from __future__ import annotations

import csv
import json
from collections import defaultdict

import pytest

from kintsugi.batch import BatchError, run_batch
from kintsugi.batch.run import _start_client

from .conftest import CRASH_VALUE, make_cohort, write_ct


@pytest.fixture(scope="module")
def client(plugin_env):
    client, cluster, _ = _start_client(None, 2, 2)  # exactly what run_batch starts, kept for the module
    yield client
    client.close()
    cluster.close()


def _rows(out):
    with open(out / "batch.csv", newline="") as fh:
        return {r["input"].rsplit("/", 1)[-1]: r for r in csv.DictReader(fh)}


def test_batch_writes_results_tables_and_provenance_then_rerun_skips(tmp_path, client):
    files = make_cohort(tmp_path / "scans", 4)
    (tmp_path / "scans" / "bad.nii.gz").write_text("this is not a NIfTI file\n")
    out = tmp_path / "out"
    seen = []
    report = run_batch("volume.threshold", str(tmp_path / "scans" / "*.nii.gz"), out, client=client, level=300,
                       progress=lambda p: seen.append((p.finished, p.remaining, p.failed)))
    assert report.counts() == {"total": 5, "done": 4, "skipped": 0, "failed": 1, "remaining": 0}
    assert seen[-1] == (5, 0, 1)
    rows = _rows(out)
    assert [rows[f.name]["status"] for f in files] == ["done"] * 4
    assert int(rows["ct_00.nii.gz"]["voxels"]) == 4 * 4 * 2 and float(rows["ct_00.nii.gz"]["volume_mm3"]) == 64.0
    bad = rows["bad.nii.gz"]
    assert bad["status"] == "failed" and "NIfTI" in bad["error"] and bad["voxels"] == ""
    for f in files:
        stem = f.name[: -len(".nii.gz")]
        assert (out / stem / "mask.nii.gz").is_file()
        prov = json.loads((out / stem / "provenance.json").read_text())
        assert prov["provenance"]["task"] == "volume.threshold" and prov["provenance"]["parameters"]["level"] == 300
    ledger = json.loads((out / "batch.json").read_text())
    assert ledger["task"] == "volume.threshold" and ledger["params"] == {"level": 300.0, "largest_only": False}
    assert ledger["plugin"] == "kintsugi-tools" and ledger["plugin_version"] and ledger["kintsugi_version"]
    assert all(len(item["sha256"]) == 64 for item in ledger["items"]) and ledger["counts"]["done"] == 4

    # Rerun: the done inputs are skipped (no cluster needed), the failed one is tried again.
    mtime = (out / "ct_00" / "mask.nii.gz").stat().st_mtime_ns
    write_ct(tmp_path / "scans" / "bad.nii.gz", 9)  # repaired
    again = run_batch("volume.threshold", str(tmp_path / "scans" / "*.nii.gz"), out, client=client, level=300.0)
    assert again.counts() == {"total": 5, "done": 1, "skipped": 4, "failed": 0, "remaining": 0}
    assert (out / "ct_00" / "mask.nii.gz").stat().st_mtime_ns == mtime
    assert _rows(out)["bad.nii.gz"]["status"] == "done" and _rows(out)["bad.nii.gz"]["error"] == ""
    # An input whose content changed is done again; the others still skip.
    write_ct(files[1], 5)
    third = run_batch("volume.threshold", [str(f) for f in files] + [str(tmp_path / "scans" / "bad.nii.gz")], out,
                      client=client, level=300)
    assert (third.progress.done, third.progress.skipped) == (1, 4)
    # Other parameters into the same folder would mix two batches: refused, nothing overwritten.
    with pytest.raises(BatchError, match="other params"):
        run_batch("volume.threshold", [str(files[0])], out, client=client, level=500)


def test_an_input_that_kills_its_worker_fails_alone(tmp_path, client):
    make_cohort(tmp_path / "scans", 3)
    write_ct(tmp_path / "scans" / "ct_crash.nii.gz", 0, value=CRASH_VALUE)
    out = tmp_path / "out"
    report = run_batch("batchtest.crash", str(tmp_path / "scans" / "*.nii.gz"), out, client=client)
    rows = _rows(out)
    assert report.progress.done == 3 and report.progress.failed == 1
    assert rows["ct_crash.nii.gz"]["status"] == "failed"
    assert "worker process died" in rows["ct_crash.nii.gz"]["error"]
    assert all(rows[f"ct_0{i}.nii.gz"]["status"] == "done" for i in range(3))


def test_workers_prepare_a_task_and_load_its_weights_once(tmp_path, client):
    make_cohort(tmp_path / "scans", 8)
    report = run_batch("batchtest.model", str(tmp_path / "scans" / "*.nii.gz"), tmp_path / "out", client=client)
    assert report.ok
    by_pid = defaultdict(set)
    prepared = defaultdict(set)
    for row in report.rows:
        by_pid[row["summary"]["pid"]].add(row["summary"]["tensors"])
        prepared[row["summary"]["pid"]].add(row["summary"]["prepared"])
    assert len(by_pid) >= 1 and sum(len(v) for v in by_pid.values()) >= 1
    assert all(len(ids) == 1 for ids in by_pid.values()), by_pid  # one tensors object per worker process
    assert all(len(p) == 1 for p in prepared.values()), prepared  # prepared once, not per input

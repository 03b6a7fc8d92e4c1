"""Planning a batch, without a cluster: inputs from globs and lists, parameters, keys, stems."""

from __future__ import annotations

import pytest

from kintsugi.batch.plan import BatchError, expand_inputs, make_plan, stem_of
from kintsugi.plugins import TaskInputError, get_registry

from .conftest import make_cohort


def test_inputs_from_glob_list_and_list_file(tmp_path):
    files = make_cohort(tmp_path / "scans", 3)
    assert expand_inputs(str(tmp_path / "scans" / "*.nii.gz")) == files
    listing = tmp_path / "cohort.txt"
    listing.write_text("# cohort\nscans/ct_02.nii.gz\n\nscans/ct_00.nii.gz\n")
    assert expand_inputs(f"@{listing}") == [files[2], files[0]]
    assert expand_inputs([str(listing), str(files[0]), str(files[1])]) == [files[2], files[0], files[1]]
    with pytest.raises(BatchError, match="no file matches"):
        expand_inputs(str(tmp_path / "*.nrrd"))
    with pytest.raises(BatchError, match="does not exist"):
        expand_inputs(str(tmp_path / "missing.nii.gz"))


def test_plan_validates_parameters_and_keys_follow_content_and_params(tmp_path):
    files = make_cohort(tmp_path / "scans", 2)
    task = get_registry().task("volume.threshold")
    plan = make_plan(task, [str(f) for f in files], tmp_path / "out", {"level": "250"})
    assert plan.input_param == "volume" and plan.params == {"level": 250.0, "largest_only": False}
    assert [it.stem for it in plan.items] == ["ct_00", "ct_01"]
    same = make_plan(task, [str(f) for f in files], tmp_path / "out", {"level": 250.0, "largest_only": "no"})
    assert [it.key for it in same.items] == [it.key for it in plan.items]  # canonical: defaults, conversion
    other = make_plan(task, [str(f) for f in files], tmp_path / "out", {"level": 251})
    assert not {it.key for it in other.items} & {it.key for it in plan.items}
    with pytest.raises(TaskInputError, match="no input or parameter 'colour'"):
        make_plan(task, [str(files[0])], tmp_path / "out", {"colour": "red"})
    with pytest.raises(BatchError, match="no input 'labels'"):
        make_plan(task, [str(files[0])], tmp_path / "out", {}, input_param="labels")
    with pytest.raises(BatchError, match="comes from the batch inputs"):
        make_plan(task, [str(files[0])], tmp_path / "out", {"volume": str(files[1])})


def test_stems_are_unique(tmp_path):
    a = make_cohort(tmp_path / "a", 1)[0]
    b = make_cohort(tmp_path / "b", 1)[0]
    assert stem_of(a) == "ct_00"
    task = get_registry().task("volume.threshold")
    stems = [it.stem for it in make_plan(task, [str(a), str(b)], tmp_path / "out").items]
    assert stems[0] == "ct_00" and stems[1].startswith("ct_00-") and len(set(stems)) == 2


def test_progress_line_and_terminal_bar():
    import io

    from kintsugi.batch import BatchProgress
    from kintsugi.cli.batch_cmd import BatchBar

    p = BatchProgress(total=10, skipped=2, done=3, failed=1, state="running", dashboard="http://127.0.0.1:8787/status")
    p.running_since = p.started - 4.0  # 4 inputs ran in 4 s: 4 left, about 4 s
    assert p.line().startswith("6/10 · 5 done (2 already done) · 1 failed · 4 left · ETA ")

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Tty()
    BatchBar(True, tty)(p)
    text = tty.getvalue()
    assert "dashboard: http://127.0.0.1:8787/status\n" in text and "\r[#################..........." in text
    log = io.StringIO()
    bar = BatchBar(True, log)
    p.last = {"status": "failed", "input": "x.nii.gz", "error": "corrupt"}
    bar(p)
    assert log.getvalue().endswith("[6/10] failed x.nii.gz: corrupt\n")


def test_unchanged_files_are_not_hashed_again(tmp_path):
    from kintsugi.batch.plan import content_hash

    f = make_cohort(tmp_path, 1)[0]
    memo: dict = {}
    digest = content_hash(f, memo)
    memo[str(f.resolve())]["sha256"] = "remembered"
    assert content_hash(f, memo) == "remembered"  # same size and mtime: the recorded hash is used
    f.write_bytes(f.read_bytes() + b"\0")
    assert content_hash(f, memo) not in ("remembered", digest)

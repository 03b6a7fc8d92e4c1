"""An input blamed for a worker's death is tried once more alone: an innocent neighbour then succeeds.

Dask counts every input queued on a dying worker as suspect, so an innocent input that twice shared a
worker with a crashing one comes back ``KilledWorker`` as well (seen in CI). A scripted client makes
that happen on purpose."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from distributed.scheduler import KilledWorker

from kintsugi.batch.run import BatchProgress, _submit_and_collect


class _Future:
    def __init__(self, row: dict | None, error: BaseException | None) -> None:
        self._row, self._error = row, error
        self.status = "error" if error else "finished"

    def done(self) -> bool:
        return True

    def result(self) -> dict:
        if self._error:
            raise self._error
        return self._row

    def exception(self) -> BaseException | None:
        return self._error


class _ScriptedClient:
    """The crashing input always kills its worker; the innocent one is killed with it in the crowd only."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    def submit(self, fn, job, key: str, pure: bool, retries: int) -> _Future:
        self.keys.append(key)
        alone = "alone" in key
        if job["stem"] == "crash" or (job["stem"] == "innocent" and not alone):
            return _Future(None, KilledWorker(key, "tcp://127.0.0.1:1", 1))
        return _Future({"key": job["key"], "input": job["input"], "stem": job["stem"], "status": "done",
                        "error": "", "duration_s": 0.1, "summary": {}}, None)

    def cancel(self, futures, force: bool) -> None:
        pass


class _Ledger:
    def __init__(self) -> None:
        self.rows: dict[str, dict] = {}

    def record(self, row: dict) -> None:
        self.rows[row["stem"]] = row

    def write(self) -> None:
        pass


def test_an_input_killed_beside_a_crashing_one_is_retried_alone(tmp_path: Path) -> None:
    plan = SimpleNamespace(task=SimpleNamespace(id="batchtest.crash"), input_param="image", params={},
                           other_inputs={}, device="cpu", weights={}, output=tmp_path)
    todo = [SimpleNamespace(input=tmp_path / f"{s}.nii.gz", stem=s, key=f"{s}0123456789abcdef")
            for s in ("a", "crash", "innocent", "b")]
    client, ledger, state = _ScriptedClient(), _Ledger(), BatchProgress(total=4)
    assert _submit_and_collect(client, plan, todo, ledger, state, lambda: None, None) == "done"
    assert {s: r["status"] for s, r in ledger.rows.items()} == {
        "a": "done", "b": "done", "innocent": "done", "crash": "failed"}
    assert "worker process died" in ledger.rows["crash"]["error"]
    assert (state.done, state.failed) == (3, 1)
    alone = [k for k in client.keys if "alone" in k]
    assert len(alone) == 2 and len(set(client.keys)) == len(client.keys)  # each retry under a fresh key

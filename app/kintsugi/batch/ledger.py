"""``DIR/batch.json`` (provenance, and what is done) and ``DIR/batch.csv`` (one row per input).

The ledger is rewritten (atomically) after every finished input, so an interrupted batch keeps
everything it finished, and a rerun knows what to skip: an input whose key (content hash + task +
parameters) is recorded as done, and whose output folder is still there.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import platform
from pathlib import Path
from typing import Any

from kintsugi.batch.plan import BatchError, Plan

LEDGER, TABLE = "batch.json", "batch.csv"
FORMAT = "kintsugi-batch/1"


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class Ledger:
    def __init__(self, output: Path, data: dict[str, Any] | None = None) -> None:
        self.output = Path(output)
        self.data = data or {}
        self.rows: dict[str, dict[str, Any]] = {r["key"]: r for r in self.data.get("items", []) if "key" in r}

    @classmethod
    def open(cls, output: str | Path) -> Ledger:
        path = Path(output) / LEDGER
        if not path.is_file():
            return cls(Path(output))
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise BatchError(f"{path} is unreadable ({e}); move it away to start the batch afresh") from None
        if data.get("format") != FORMAT:
            raise BatchError(f"{path} is not a Kintsugi batch ledger")
        return cls(Path(output), data)

    # -- what an earlier run left --------------------------------------------------------------
    def known_stems(self) -> dict[str, str]:
        return {r["input_resolved"]: r["stem"] for r in self.rows.values() if r.get("input_resolved")}

    def hash_memo(self) -> dict[str, dict]:
        return dict(self.data.get("hash_memo", {}))

    def check_same_batch(self, plan: Plan) -> None:
        """One output folder holds one batch: the same task and parameters (inputs may change)."""
        old = self.data.get("config")
        if old is None:
            return
        new = json.loads(json.dumps(plan.config(), default=str))
        if old != new:
            what = [k for k in new if old.get(k) != new.get(k)]
            raise BatchError(f"{self.output} holds a batch of {old.get('task')} with other "
                             f"{', '.join(what)}; choose another --output (nothing was overwritten)")

    def is_done(self, key: str, stem: str) -> bool:
        row = self.rows.get(key)
        return bool(row and row.get("status") == "done" and (self.output / stem / "provenance.json").is_file())

    # -- recording -----------------------------------------------------------------------------
    def start(self, plan: Plan, versions: dict[str, str], cluster: str, todo: set[str]) -> None:
        from kintsugi import __version__

        runs = list(self.data.get("runs", []))
        runs.append({"started": _now(), "cluster": cluster, "host": platform.node()})
        self.plan = plan
        self.data = {
            "format": FORMAT,
            "task": plan.task.id, "task_title": plan.task.title,
            "plugin": plan.task.plugin.name, "plugin_version": plan.task.plugin.version,
            "kintsugi_version": __version__, "versions": versions,
            "input_param": plan.input_param, "params": plan.params, "other_inputs": plan.other_inputs,
            "device": plan.device, "weights": plan.weights, "weights_sha256": plan.weights_sha256,
            "config": json.loads(json.dumps(plan.config(), default=str)),
            "runs": runs, "hash_memo": plan.hash_memo,
        }
        # Keep the rows of this plan's inputs (those to run now start again as pending) and of inputs an
        # earlier run of this batch did that this run does not name; drop rows of superseded file contents.
        keep = {it.key for it in plan.items}
        current = {str(it.input.resolve()) for it in plan.items}
        self.rows = {k: r for k, r in self.rows.items() if k in keep or r.get("input_resolved") not in current}
        for it in plan.items:
            if it.key in todo or it.key not in self.rows:
                self.rows[it.key] = {"key": it.key, "input": str(it.input), "input_resolved": str(it.input.resolve()),
                                     "stem": it.stem, "sha256": it.sha256, "status": "pending", "duration_s": None,
                                     "summary": {}, "error": ""}

    def record(self, row: dict[str, Any]) -> None:
        old = self.rows.get(row["key"], {})
        merged = {**old, **row}
        if row.get("status") == "done":
            merged["error"] = ""
            merged.pop("traceback", None)
            merged["finished"] = _now()
        self.rows[row["key"]] = merged

    def finish(self, state: str) -> None:
        if self.data.get("runs"):
            self.data["runs"][-1].update(finished=_now(), state=state)

    def ordered_rows(self) -> list[dict[str, Any]]:
        order = {it.key: i for i, it in enumerate(self.plan.items)} if hasattr(self, "plan") else {}
        return sorted(self.rows.values(), key=lambda r: order.get(r["key"], len(order)))

    def write(self) -> None:
        from kintsugi.io.jsonio import atomic_write_bytes, dumps

        rows = self.ordered_rows()
        self.data["items"] = rows
        self.data["counts"] = {s: sum(r.get("status") == s for r in rows)
                               for s in ("done", "failed", "pending", "cancelled")}
        self.output.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.output / LEDGER, (dumps(self.data) + "\n").encode("utf-8"))
        atomic_write_bytes(self.output / TABLE, table_csv(rows).encode("utf-8"))


def _flat(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flat(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, list):
        out[prefix] = json.dumps(value) if len(value) > 4 else ";".join(map(str, value))
    else:
        out[prefix] = value


def table_csv(rows: list[dict[str, Any]]) -> str:
    """input, status, duration_s, the summary's numbers (one column each), error, output folder."""
    summaries = []
    keys: list[str] = []
    for r in rows:
        flat: dict[str, Any] = {}
        _flat("", r.get("summary") or {}, flat)
        summaries.append(flat)
        keys.extend(k for k in flat if k not in keys)
    head = ["input", "status", "duration_s", *keys, "error", "output", "sha256"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(head)
    for r, flat in zip(rows, summaries, strict=True):
        duration = r.get("duration_s")
        w.writerow([r.get("input", ""), r.get("status", ""), "" if duration is None else f"{duration:.3f}",
                    *["" if flat.get(k) is None else flat.get(k) for k in keys],
                    (r.get("error") or "").replace("\n", " "), r.get("stem", ""), r.get("sha256", "")])
    return buf.getvalue()

"""``kintsugi batch TASK --inputs GLOB_OR_LIST [--<param> VALUE ...] --output DIR [--scheduler ADDR] [--workers N]``.

The task's options are the ones ``kintsugi run TASK`` has (same parser), plus the batch's own.
"""

from __future__ import annotations

import argparse
import sys
import time

from kintsugi.plugins.manifest import TaskInfo

USAGE = ("usage: kintsugi batch TASK --inputs GLOB_OR_LIST [--<param> VALUE ...] --output DIR "
         "[--scheduler tcp://HOST:8786] [--workers N]; 'kintsugi batch TASK --help' lists a task's options")


def build_batch_parser(task: TaskInfo) -> argparse.ArgumentParser:
    from kintsugi.cli.run_cmd import build_task_parser

    parser = build_task_parser(task)
    parser.prog = f"kintsugi batch {task.id}"
    first = task.signature.inputs[0].name if task.signature.inputs else None
    parser.description = (f"Run {task.id} on every input; results in DIR/<input-stem>/, a table in DIR/batch.csv, "
                          f"provenance in DIR/batch.json. Each input feeds '{first}' unless --input-param says "
                          f"otherwise; the other options are those of 'kintsugi run {task.id}'.")
    group = parser.add_argument_group("batch")
    group.add_argument("--inputs", "-i", nargs="+", required=True, metavar="GLOB_OR_PATH",
                       help="input files or folders: globs (quote them: 'scans/**/*.nii.gz'), paths, or a list "
                            "file (@cohort.txt, or any .txt/.lst file: one path a line)")
    group.add_argument("--input-param", default=None, metavar="NAME",
                       help=f"the task input each path feeds (default: {first})")
    group.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="a running Dask scheduler (tcp://host:8786); default: a local cluster")
    group.add_argument("--workers", type=int, default=None, metavar="N",
                       help="worker processes of the local cluster (default: sized to this machine)")
    group.add_argument("--no-retry-failed", action="store_true",
                       help="on a rerun, leave inputs that failed before as failed (default: retry them)")
    return parser


class BatchBar:
    """A progress line on stderr: a bar, done/failed/remaining and an ETA; one line per input when not a tty."""

    def __init__(self, enabled: bool, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = self.stream.isatty()
        self._last = 0.0
        self._seen = 0
        self._dashboard_shown = False

    def __call__(self, p) -> None:  # noqa: ANN001 - kintsugi.batch.BatchProgress
        if not self.enabled:
            return
        if p.dashboard and not self._dashboard_shown:
            self._dashboard_shown = True
            self._write_line(f"dashboard: {p.dashboard}")
        if not self.tty:
            finished = p.done + p.failed
            if p.last is not None and finished > self._seen:
                self._seen = finished
                row = p.last
                extra = f": {row.get('error')}" if row.get("status") != "done" else ""
                self.stream.write(f"[{p.finished}/{p.total}] {row.get('status')} {row.get('input')}{extra}\n")
                self.stream.flush()
            elif p.state == "starting" and p.message:
                self._write_line(p.message)
            return
        now = time.perf_counter()
        if now - self._last < 0.1 and p.remaining and p.state == "running":
            return
        self._last = now
        width = 28
        filled = int(round(p.fraction * width))
        text = p.message if p.state == "starting" else p.line()
        self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {text[:90]:<90}")
        self.stream.flush()

    def _write_line(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r" + " " * 120 + "\r")
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()


def batch_command(argv: list[str]) -> int:
    from kintsugi.batch import BatchCancelled, BatchError, run_batch
    from kintsugi.batch.plan import find_task
    from kintsugi.cli.errors import CliError
    from kintsugi.cli.run_cmd import task_values
    from kintsugi.plugins import TaskInputError

    if not argv or argv[0].startswith("-"):
        if argv and argv[0] in ("-h", "--help"):
            print(USAGE)
            return 0
        raise CliError(USAGE)
    try:
        task = find_task(argv[0])
    except KeyError as e:
        raise CliError(str(e.args[0])) from None
    try:
        parser = build_batch_parser(task)
    except argparse.ArgumentError as e:
        raise CliError(f"task {task.id} has an option that clashes with the batch options: {e}") from None
    args = parser.parse_args(argv[1:])
    values, overrides = task_values(task, args)
    if args.workers is not None and args.workers < 1:
        raise CliError("--workers must be at least 1")
    bar = BatchBar(not args.quiet)
    try:
        report = run_batch(task, args.inputs, args.output, values, input_param=args.input_param,
                           scheduler=args.scheduler, workers=args.workers, device=args.device,
                           weights=overrides or None, progress=bar, retry_failed=not args.no_retry_failed)
    except (BatchError, TaskInputError) as e:
        bar.close()
        raise CliError(str(e)) from None
    except BatchCancelled as e:
        bar.close()
        print(f"kintsugi batch: {e}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        bar.close()
        print(f"kintsugi batch: interrupted; finished inputs are kept in {args.output} (rerun to continue)",
              file=sys.stderr)
        return 130
    bar.close()
    c = report.counts()
    took = report.progress.elapsed
    print(f"{task.id}: {c['done']} done, {c['skipped']} skipped (done before), {c['failed']} failed, "
          f"of {c['total']} in {took:.1f} s; table: {report.csv}")
    failed = [r for r in report.rows if r.get("status") == "failed"]
    for row in failed[:10]:
        print(f"  failed {row.get('input')}: {row.get('error')}", file=sys.stderr)
    if len(failed) > 10:
        print(f"  ... and {len(failed) - 10} more (see {report.csv})", file=sys.stderr)
    return 0 if not failed else 1

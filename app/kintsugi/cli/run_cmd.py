"""``kintsugi run TASK --<input> PATH ... --<param> VALUE ... --output DIR``: options from the signature."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from kintsugi.plugins.manifest import TaskInfo


def _literal(text: str) -> str:
    """argparse %-formats every help string: a plugin's "7 %" must not be read as a format."""
    return text.replace("%", "%%")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def build_task_parser(task: TaskInfo) -> argparse.ArgumentParser:
    sig = task.signature
    parser = argparse.ArgumentParser(
        prog=f"kintsugi run {task.id}",
        description=f"{task.title} ({task.plugin.name} {task.plugin.version}). {task.description}".strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    inputs = parser.add_argument_group("inputs (files or folders; opened like 'kintsugi info' opens them)")
    for spec in sig.inputs:
        help_text = f"{spec.type_name}{' (' + spec.modality + ')' if spec.modality else ''}"
        help_text += (", optional" if spec.optional else ", required") + (", several allowed" if spec.multiple else "")
        if spec.help:
            help_text += f": {spec.help}"
        flags = [_flag(spec.name)] + ([f"--{spec.name}"] if "_" in spec.name else [])
        inputs.add_argument(*flags, dest=spec.name, metavar="PATH", nargs="+" if spec.multiple else None,
                            help=_literal(help_text))
    params = parser.add_argument_group("parameters")
    for spec in sig.params:
        default = "required" if spec.required else f"default: {spec.to_dict().get('default')!r}"
        help_text = f"{spec.describe_type()}; {default}" + (f". {spec.help}" if spec.help else "")
        flags = [_flag(spec.name)] + ([f"--{spec.name}"] if "_" in spec.name else [])
        params.add_argument(*flags, dest=spec.name, metavar=spec.type_name.upper(), help=_literal(help_text))
    run = parser.add_argument_group("running")
    run.add_argument("--output", "-o", required=True, metavar="DIR", help="folder for the result files")
    run.add_argument("--device", default=None, choices=["auto", "cpu", "cuda", "mps"],
                     help=f"where to run (task default: {task.device}; auto = cuda, then mps, then cpu)")
    run.add_argument("--weights", action="append", default=[], metavar="NAME=PATH",
                     help=f"use other weights (this task's: {', '.join(task.weights) or 'none'})")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


class TerminalProgress:
    """A one-line progress bar on stderr, redrawn at most ten times a second."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self._last = 0.0
        self._t0 = time.perf_counter()

    def __call__(self, fraction: float, message: str) -> None:
        now = time.perf_counter()
        if not self.enabled or (now - self._last < 0.1 and fraction < 1.0):
            return
        self._last = now
        width = 30
        filled = int(round(fraction * width))
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {fraction * 100:5.1f}% "
                         f"{now - self._t0:6.1f}s {message[:60]:<60}")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def task_values(task: TaskInfo, args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, str]]:
    """The task's inputs and parameters given on the command line, and ``--weights NAME=PATH`` overrides."""
    from kintsugi.cli.errors import CliError

    values: dict[str, Any] = {}
    for spec in [*task.signature.inputs, *task.signature.params]:
        value = getattr(args, spec.name)
        if value is not None:
            values[spec.name] = value
    overrides = {}
    for item in args.weights:
        name, sep, path = item.partition("=")
        if not sep:
            raise CliError(f"--weights takes NAME=PATH, got {item!r}")
        overrides[name] = path
    return values, overrides


def run_command(argv: list[str]) -> int:
    from kintsugi.cli.errors import CliError
    from kintsugi.plugins import Progress, TaskInputError, get_registry
    from kintsugi.plugins.execute import run_task
    from kintsugi.plugins.result import write_result

    if not argv or argv[0].startswith("-"):
        raise CliError("usage: kintsugi run TASK [options]; 'kintsugi plugins' lists the tasks")
    registry = get_registry()
    try:
        task = registry.task(argv[0])
    except KeyError as e:
        raise CliError(str(e.args[0])) from None
    args = build_task_parser(task).parse_args(argv[1:])
    values, overrides = task_values(task, args)
    bar = TerminalProgress(not args.quiet)
    t0 = time.perf_counter()
    try:
        result = run_task(task, device=args.device, weights=overrides or None, progress=Progress(bar), **values)
    except TaskInputError as e:
        bar.close()
        raise CliError(str(e)) from None
    except ValueError as e:  # tasks raise ValueError for bad input data: a user error, one line
        bar.close()
        raise CliError(f"{task.id}: {e}") from None
    bar.close()
    written = write_result(result, Path(args.output))
    print(f"{task.id}: done in {time.perf_counter() - t0:.1f} s on {result.provenance.device}; "
          f"{len(written)} file(s) in {args.output}")
    for key, value in result.summary.items():
        print(f"  {key}: {value}")
    return 0

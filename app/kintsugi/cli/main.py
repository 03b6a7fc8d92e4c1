"""Entry point of the ``kintsugi`` command.

Every failure the user can cause (a bad path, a corrupt file) ends as one line on stderr and a
non-zero exit code; a traceback appears only with ``--debug``, because a traceback is a bug report,
not a message.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from kintsugi import __version__
from kintsugi.cli.errors import CliError

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


def _cmd_info(args: argparse.Namespace) -> int:
    from kintsugi.io.describe import describe_path
    from kintsugi.io.errors import KintsugiIOError

    status = EXIT_OK
    reports = []
    for p in args.paths:
        try:
            report = describe_path(p)
        except KintsugiIOError as e:
            print(f"kintsugi info: {e}", file=sys.stderr)
            status = EXIT_ERROR
            continue
        reports.append(report)
        if not args.json:
            print(format_report(report))
    if args.json:
        print(json.dumps(reports if len(args.paths) > 1 else (reports[0] if reports else None), indent=2))
    return status


def format_report(report: dict) -> str:
    lines = [f"{report['path']}"]
    if report.get("note"):
        lines.append(f"  {report['kind']}: {report['note']}")
    for sub in report.get("subfolders", []):
        counts = ", ".join(f"{v} {k}" for k, v in sub.items() if k != "name") or "nothing Kintsugi opens"
        lines.append(f"  {sub['name']}/: {counts}")
    for i, layer in enumerate(report.get("layers", [])):
        if len(report["layers"]) > 1:
            lines.append(f"  [{i + 1}] {layer.get('type')} '{layer.get('name')}'")
        width = max(len(k) for k in layer)
        for key, value in layer.items():
            if len(report["layers"]) > 1 and key in ("type", "name"):
                continue
            lines.append(f"  {'  ' if len(report['layers']) > 1 else ''}{key:<{width}}  {value}")
    return "\n".join(lines)


def _cmd_sample(args: argparse.Namespace) -> int:
    from kintsugi.samples import list_samples, make_sample, sample_names

    if args.sample_cmd == "list":
        for info in list_samples():
            print(f"{info.name:<10} {info.title}: {info.description}")
        return EXIT_OK
    names = sample_names() if args.name == "all" else [args.name]
    for name in names:
        if name not in sample_names():
            raise CliError(f"unknown sample {name!r}; choose one of: {', '.join(sample_names())}, all")
        out = Path(args.dir) / name if args.name == "all" else Path(args.dir)
        files = make_sample(name, out, seed=args.seed)
        print(f"{name}: wrote {len(files)} file(s) to {out}")
    return EXIT_OK


def _cmd_gui(args: argparse.Namespace) -> int:
    try:
        from kintsugi.gui.app import run_gui
    except ImportError as e:  # Qt missing or broken: say so plainly
        raise CliError(f"the GUI cannot start: {e}") from None
    return run_gui(paths=args.paths, samples=args.sample, screenshot=args.screenshot, layout=args.layout)


def _cmd_bench(args: argparse.Namespace) -> int:
    root = Path(__file__).resolve().parents[3]
    if not (root / "bench" / "__init__.py").exists():
        raise CliError("benchmarks live in the source tree (bench/); run from a checkout of Kintsugi")
    sys.path.insert(0, str(root))
    from bench.runner import main as bench_main

    return bench_main(args.bench_args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kintsugi", description="Kintsugi: a workbench for people who study broken things."
    )
    parser.add_argument("--version", action="version", version=f"kintsugi {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("gui", help="start the desktop application (the default command)")
    p.add_argument("paths", nargs="*", help="files or folders to open")
    p.add_argument("--sample", action="append", default=[], metavar="NAME",
                   help="make and open a sample (repeatable; 'all' for every sample)")
    p.add_argument("--screenshot", metavar="FILE", help="save a screenshot of the window and exit")
    p.add_argument("--layout", default=None, help="initial panes: 3d, slices, image, both (3d + slices) or all")
    p.set_defaults(func=_cmd_gui)

    p = sub.add_parser("info", help="print what a file or folder opens as")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("sample", help="list or make the built-in sample data")
    ssub = p.add_subparsers(dest="sample_cmd", required=True)
    ssub.add_parser("list", help="list the samples")
    pm = ssub.add_parser("make", help="write a sample into a folder")
    pm.add_argument("name", help="sample name (see 'kintsugi sample list') or 'all'")
    pm.add_argument("dir", help="output folder (created if needed)")
    pm.add_argument("--seed", type=int, default=0, help="random seed (same seed, same data)")
    p.set_defaults(func=_cmd_sample)

    from kintsugi.cli.plugins_cmd import add_parser as add_plugins_parser

    add_plugins_parser(sub)

    p = sub.add_parser("run", help="run a plugin task: kintsugi run TASK --<input> PATH ... --output DIR",
                       add_help=False)
    p.add_argument("run_args", nargs=argparse.REMAINDER, help="the task id and its options ('--help' lists them)")
    p.set_defaults(func=lambda a: __import__("kintsugi.cli.run_cmd", fromlist=["x"]).run_command(a.run_args))

    p = sub.add_parser("batch", help="run a task over many inputs on a Dask cluster: kintsugi batch TASK "
                       "--inputs GLOB --output DIR", add_help=False)
    p.add_argument("batch_args", nargs=argparse.REMAINDER, help="the task id and its options ('--help' lists them)")
    p.set_defaults(func=lambda a: __import__("kintsugi.cli.batch_cmd", fromlist=["x"]).batch_command(a.batch_args))

    p = sub.add_parser("bench", help="run the benchmarks and update bench/results.md")
    p.add_argument("bench_args", nargs=argparse.REMAINDER, help="arguments for the bench runner")
    p.set_defaults(func=_cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    known = {"gui", "info", "sample", "bench", "plugins", "run", "batch"}
    if not any(a in known for a in argv) and not any(a in ("-h", "--help", "--version") for a in argv):
        argv = [a for a in argv if a == "--debug"] + ["gui"] + [a for a in argv if a != "--debug"]
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CliError as e:
        print(f"kintsugi: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("kintsugi: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        from kintsugi.io.errors import KintsugiIOError
        from kintsugi.plugins.weights import WeightsError

        if args.debug:
            raise
        if isinstance(e, KintsugiIOError | WeightsError):
            print(f"kintsugi: error: {e}", file=sys.stderr)
        else:
            print(f"kintsugi: internal error: {type(e).__name__}: {e} (run with --debug for details)",
                  file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())

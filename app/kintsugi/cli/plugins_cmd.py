"""``kintsugi plugins``: list plugins and tasks (and those that failed), show one, or start a new one."""

from __future__ import annotations

import argparse
import json

PARSER_HELP = "list plugins and their tasks; 'show NAME' for details; 'new NAME DIR' to start a plugin"


def add_parser(sub) -> None:
    p = sub.add_parser("plugins", help=PARSER_HELP)
    psub = p.add_subparsers(dest="plugins_cmd")
    ls = psub.add_parser("list", help="plugins, tasks and failures (the default)")
    ls.add_argument("--json", action="store_true")
    show = psub.add_parser("show", help="a plugin or a task in full (inputs, parameters, outputs, weights)")
    show.add_argument("name", help="plugin name or task id")
    show.add_argument("--json", action="store_true")
    new = psub.add_parser("new", help="write a working plugin package to start from")
    new.add_argument("name", help="plugin name, e.g. 'bone-age' (the package becomes kintsugi_bone_age)")
    new.add_argument("dir", help="folder to create")
    p.set_defaults(func=plugins_command)


def plugins_command(args: argparse.Namespace) -> int:
    from kintsugi.cli.errors import CliError
    from kintsugi.plugins import get_registry

    cmd = args.plugins_cmd or "list"
    if cmd == "new":
        from kintsugi.plugins.scaffold import new_plugin

        try:
            folder = new_plugin(args.name, args.dir)
        except (ValueError, FileExistsError) as e:
            raise CliError(str(e)) from None
        print(f"wrote a plugin in {folder}; install it with: pip install -e {folder}")
        return 0
    reg = get_registry()
    if cmd == "show":
        if args.name in reg.plugins:
            data = reg.plugins[args.name].to_dict()
        elif args.name in reg.tasks:
            data = reg.tasks[args.name].to_dict()
        else:
            raise CliError(f"no plugin or task named '{args.name}'")
        print(json.dumps(data, indent=2, default=str) if args.json else _format(data))
        return 0
    if getattr(args, "json", False):
        print(json.dumps({"plugins": [m.to_dict() for m in reg.plugins.values()],
                          "failed": [f.__dict__ for f in reg.failed]}, indent=2, default=str))
        return 0
    for m in reg.plugins.values():
        print(f"{m.name} {m.version}  ({m.license or 'no licence stated'})  {m.title}")
        for t in m.tasks:
            sig = t.signature
            ins = ", ".join(f"{i.name}:{i.type_name}" for i in sig.inputs)
            print(f"  {t.id:<24} {t.title}  [{ins}]  device={t.device}")
    if reg.failed:
        print("failed to load:")
        for f in reg.failed:
            print(f"  {f.source}: {f.reason}")
    if not reg.plugins and not reg.failed:
        print("no plugins installed")
    return 0


def _format(d: dict) -> str:
    lines = []
    if "tasks" in d:
        lines.append(f"{d['name']} {d['version']} — {d.get('title', '')}")
        for key in ("license", "description"):
            if d.get(key):
                lines.append(f"  {key}: {d[key]}")
        for ref in d.get("references", []):
            lines.append(f"  reference: {ref}")
        for name, w in d.get("weights", {}).items():
            lines.append(f"  weights {name}: {w['file']} (sha256 {str(w['sha256'])[:12]}…)")
        for t in d["tasks"]:
            lines.append("")
            lines.append(_format(t))
        return "\n".join(lines)
    lines.append(f"{d['id']} — {d['title']}  (device {d['device']})")
    if d.get("description"):
        lines.append(f"  {d['description']}")
    for i in d["inputs"]:
        opt = "optional" if i["optional"] else "required"
        lines.append(f"  input  {i['name']}: {i['type']}{' (' + i['modality'] + ')' if i['modality'] else ''}, {opt}"
                     f"{'; ' + i['help'] if i['help'] else ''}")
    for p in d["parameters"]:
        default = f" = {p['default']!r}" if "default" in p else " (required)"
        rng = f" [{p.get('min', '')}, {p.get('max', '')}]" if "min" in p or "max" in p else ""
        choices = f" one of {p['choices']}" if "choices" in p else ""
        lines.append(f"  param  {p['name']}: {p['type']}{default}{rng}{choices}{'; ' + p['help'] if p['help'] else ''}")
    for o in d["outputs"]:
        lines.append(f"  output {o['name']}: {o['type']}{'; ' + o['help'] if o['help'] else ''}")
    return "\n".join(lines)

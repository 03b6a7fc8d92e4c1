"""Smoke test of a built Kintsugi bundle, from the bundle alone, with the network off.

Run through installer/smoke_test.sh (which builds the bundle first when needed). Uses only the standard
library of whatever ``python3`` runs it: the bundle is what is tested, never the source tree or .venv.

Every bundle command runs:
- in a fresh HOME and temporary folder (no user plugins, caches or settings from this machine),
- with a minimal environment (``env -i``: no PYTHONPATH, no virtual environment, PATH=/usr/bin:/bin),
- from a working directory outside the repository,
- with the network off: in a new network namespace (``unshare -n``: no interface but a down loopback)
  when that works (root, or unprivileged user namespaces); otherwise proxies pointing at a closed port
  and HF/torch hub offline variables, and the report says the network was NOT isolated.

Steps: version (cold start timed), bundle self-check (plugins via entry points, task imports, weights
checksums, one task in a spawned worker), plugin list, sample data, one task of each built-in plugin
headless (both tasks of kintsugi-tools), a user plugins folder with a good and broken plugins, and a GUI
screenshot under Xvfb (timed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

SAMPLE_FOR_PLUGIN = {"crack": "crack", "dental": "dental", "spine": "spine", "reassembly": "fragments",
                     "tools": "spine"}

# Known-good arguments for tasks that exist today; any other task is filled generically from its signature.
RECIPES: dict[str, list[str]] = {
    "volume.threshold": ["--volume", "{spine}/ct.nii.gz", "--level", "300", "--largest-only", "true"],
    "labels.meshes": ["--labels", "{spine}/vertebrae.nii.gz"],
    "crack.segment": ["--image", "{crack}/crack_00_lowlight.png"],
    "crack.segment_layers": ["--image", "{crack}/crack_00_lowlight.png"],
    "reassembly.assemble": ["--fragments", "{fragments}"],
    "dental.segment_teeth": ["--image", "{dental}/cbct.nii.gz", "--meshes", "false"],
}
INPUT_FILES = {  # layer type -> file of the plugin's sample (generic fill)
    "Volume": {"spine": "ct.nii.gz", "dental": "cbct.nii.gz"},
    "LabelMap": {"spine": "vertebrae.nii.gz", "dental": "teeth_labels.nii.gz"},
    "Image2D": {"crack": "crack_00_lowlight.png"},
    "Fragments": {"fragments": "."},
    "Mesh": {"fragments": "piece_00.ply"},
}
PATH_PARAMS = {"image": "{crack}/crack_00_lowlight.png", "photo": "{crack}/crack_00_lowlight.png",
               "ct": "{spine}/ct.nii.gz", "volume": "{spine}/ct.nii.gz", "labels": "{spine}/vertebrae.nii.gz",
               "fragments": "{fragments}", "gt": "{fragments}/gt.json",
               "assembly": "{fragments}/gt.json",  # the ground truth as an assembly: perfect scores
               "truth": "{spine}/truth.json"}


class Runner:
    def __init__(self, bundle: Path, work: Path, isolate: str) -> None:
        self.exe = bundle / "kintsugi"
        self.work = work
        self.home = work / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.isolate = isolate
        self.results: list[tuple[str, str, str]] = []

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {"HOME": str(self.home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "TMPDIR": str(self.work / "tmp"),
               "XDG_CACHE_HOME": str(self.home / ".cache"), "XDG_DATA_HOME": str(self.home / ".local/share"),
               "XDG_CONFIG_HOME": str(self.home / ".config"), "QT_QPA_PLATFORM": "offscreen"}
        (self.work / "tmp").mkdir(exist_ok=True)
        if self.isolate != "unshare":
            closed = "http://127.0.0.1:9"
            env.update({"http_proxy": closed, "https_proxy": closed, "HTTP_PROXY": closed, "HTTPS_PROXY": closed,
                        "all_proxy": closed, "ALL_PROXY": closed, "no_proxy": "", "HF_HUB_OFFLINE": "1",
                        "TORCH_HOME": str(self.home / "torch")})
        env.update(extra or {})
        return env

    def wrap(self, argv: list[str]) -> list[str]:
        return (["unshare", "-n"] if self.isolate == "unshare" else []) + argv

    def run(self, name: str, argv: list[str], timeout: float = 900, extra_env: dict[str, str] | None = None,
            expect: int | None = 0) -> subprocess.CompletedProcess | None:
        """Run one bundle command and record it; ``expect=None``: the caller judges and records the result."""
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(self.wrap(argv), capture_output=True, text=True, timeout=timeout,
                                  env=self.env(extra_env), cwd=self.work)
        except subprocess.TimeoutExpired:
            self.record(name, "FAIL", f"timed out after {timeout:.0f} s")
            return None
        dt = time.perf_counter() - t0
        out = (proc.stdout + proc.stderr).strip()
        last = out.splitlines()[-1][:160] if out else ""
        if expect is None:
            print(f"[smoke] .... {name}: {dt:.1f} s, exit {proc.returncode}", flush=True)
            print(textwrap.indent(out[-3000:], "    | "), flush=True)
        else:
            ok = proc.returncode == expect
            self.record(name, "PASS" if ok else "FAIL", f"{dt:.1f} s, exit {proc.returncode}; {last}")
            if not ok:
                print(textwrap.indent(out[-3000:], "    | "), flush=True)
        proc.elapsed = dt  # type: ignore[attr-defined]
        return proc

    def record(self, name: str, status: str, detail: str) -> None:
        self.results.append((name, status, detail))
        print(f"[smoke] {status:<4} {name}: {detail}", flush=True)


def evict(bundle: Path) -> bool:
    """Drop the bundle's files from the page cache (Linux), so the next start reads them from disk: cold."""
    if not hasattr(os, "posix_fadvise"):
        return False
    for f in bundle.rglob("*"):
        if f.is_file() and not f.is_symlink():
            with open(f, "rb") as fh:
                os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    return True


def choose_isolation(requested: str) -> str:
    if requested == "none":
        return "none"
    if shutil.which("unshare"):
        probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
        if probe.returncode == 0:
            return "unshare"
    if requested == "unshare":
        raise SystemExit("smoke_test: 'unshare -n' does not work here (needs root or user namespaces)")
    return "proxy"


def fill_args(task: dict, plugin_key: str, samples: Path) -> list[str] | None:
    dirs = {k: str(samples / k) for k in ("spine", "crack", "dental", "fragments")}
    if task["id"] in RECIPES:
        return [a.format(**dirs) for a in RECIPES[task["id"]]]
    sample = SAMPLE_FOR_PLUGIN.get(plugin_key, "spine")
    args: list[str] = []
    for inp in task["inputs"]:
        files = INPUT_FILES.get(inp["type"], {})
        name = files.get(sample) or next(iter(files.values()), None)
        key = sample if sample in files else next(iter(files), None)
        if name is None or key is None:
            if inp.get("optional"):
                continue
            return None
        args += [f"--{inp['name'].replace('_', '-')}", str(samples / key / name)]
    for p in task["parameters"]:
        if "default" in p:
            continue
        if p["type"] == "Path" and p["name"] in PATH_PARAMS:
            args += [f"--{p['name'].replace('_', '-')}", PATH_PARAMS[p["name"]].format(**dirs)]
        else:
            return None  # a required parameter we cannot guess
    return args


GOOD_PLUGIN_TOML = """\
name = "smoke-good"
title = "Smoke test plugin"
[[tasks]]
id = "smoke.invert"
title = "Invert a volume"
function = "smoke_good.tasks:invert"
"""
GOOD_PLUGIN_PY = """\
from kintsugi.core import Volume

def invert(volume: Volume) -> Volume:
    return Volume(name="inverted", data=-volume.data, geometry=volume.geometry)
"""


def make_user_plugins(folder: Path) -> None:
    """A user plugins folder: one good plugin, and the usual ways a plugin can be broken."""
    def pkg(name: str, toml: str | None, files: dict[str, str]) -> None:
        d = folder / name
        d.mkdir(parents=True)
        if toml is not None:
            (d / "kintsugi.toml").write_text(toml)
        for fname, text in files.items():
            (d / fname).write_text(text)

    pkg("smoke_good", GOOD_PLUGIN_TOML, {"__init__.py": "", "tasks.py": GOOD_PLUGIN_PY})
    pkg("smoke_no_manifest", None, {"__init__.py": ""})
    pkg("smoke_bad_toml", "name = \n", {"__init__.py": ""})
    pkg("smoke_import_error", 'name = "smoke-import-error"\n[[tasks]]\nid = "smoke.broken"\n'
        'function = "smoke_import_error.tasks:f"\n', {"__init__.py": "", "tasks.py": "import not_a_module\n"})
    pkg("smoke_missing_module", 'name = "smoke-missing-module"\n[[tasks]]\nid = "smoke.missing"\n'
        'function = "smoke_missing_module.gone:f"\n', {"__init__.py": ""})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle", type=Path, help="the bundle folder (holding the kintsugi executable)")
    ap.add_argument("--work", type=Path, help="scratch folder (default: a new temporary folder, kept)")
    ap.add_argument("--network", choices=["auto", "unshare", "none"], default="auto",
                    help="auto: unshare -n when it works, else proxy variables; none: leave the network on")
    ap.add_argument("--screenshot", type=Path, help="where to save the GUI screenshot (default: WORK/gui.png)")
    ap.add_argument("--skip", action="append", default=[], metavar="TASK",
                    help="do not run this task (e.g. a plugin whose weights are not trained yet)")
    args = ap.parse_args()

    bundle = args.bundle.resolve()
    if not (bundle / "kintsugi").is_file():
        print(f"smoke_test: no kintsugi executable in {bundle}", file=sys.stderr)
        return 2
    work = (args.work or Path(tempfile.mkdtemp(prefix="kintsugi-smoke-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    isolate = choose_isolation(args.network)
    r = Runner(bundle, work, isolate)
    print(f"[smoke] bundle {bundle}\n[smoke] scratch {work}\n[smoke] network: "
          + {"unshare": "off (unshare -n: a new network namespace without interfaces)",
             "proxy": "NOT isolated (no unshare): proxies point at a closed port, hub downloads off",
             "none": "left on (--network none)"}[isolate], flush=True)
    exe = str(r.exe)

    # 1. version: cold (the bundle's files dropped from the page cache first), then warm
    cold = "cold start" if evict(bundle) else "first start"
    r.run(f"version ({cold})", [exe, "--version"], timeout=300)
    r.run("version (warm start)", [exe, "--version"], timeout=300)
    # 2. self-check from inside the bundle
    p = r.run("bundle self-check", [exe, "--bundle-check"], timeout=600, expect=None)
    if p is not None:
        bad = [ln for ln in p.stdout.splitlines() if ln.startswith("FAIL")]
        skipped = [ln for ln in bad if ln.split(":")[0].removeprefix("FAIL task ").strip() in args.skip]
        for ln in skipped:
            r.record("self-check " + ln.split(":")[0].removeprefix("FAIL ").strip(), "SKIP", "--skip; " + ln)
        ok = "bundle check:" in p.stdout and len(bad) == len(skipped)
        r.record("bundle self-check", "PASS" if ok else "FAIL",
                 "all ok" if not bad else f"{len(bad) - len(skipped)} failed, {len(skipped)} skipped")
    # 3. plugins, through the bundled entry points
    p = r.run("plugins list", [exe, "plugins", "list", "--json"], timeout=300)
    plugins = []
    if p is not None and p.returncode == 0:
        listing = json.loads(p.stdout)
        plugins = listing["plugins"]
        names = ", ".join(f"{m['name']} ({len(m['tasks'])} task(s))" for m in plugins)
        r.record("plugins found", "PASS" if plugins else "FAIL", names or "none")
        for f in listing["failed"]:
            r.record(f"plugin failed to load: {f['source']}", "FAIL", f["reason"])
    # 4. sample data
    samples = work / "samples"
    r.run("sample make all", [exe, "sample", "make", "all", str(samples)], timeout=900)
    # 5. one task of each built-in plugin, headless (every task of kintsugi-tools)
    for m in plugins:
        key = m["name"].removeprefix("kintsugi-")
        ran = skipped = 0
        for t in m["tasks"]:
            if t["id"] in args.skip:
                r.record(f"task {t['id']}", "SKIP", "--skip")
                skipped += 1
                continue
            targs = fill_args(t, key, samples)
            if targs is None:
                continue
            out = work / "out" / t["id"]
            r.run(f"task {t['id']}", [exe, "run", t["id"], *targs, "--device", "cpu", "--quiet",
                                      "--output", str(out)], timeout=1200)
            ran += 1
            if key != "tools":
                break
        if not ran:
            r.record(f"plugin {m['name']}", "SKIP" if skipped else "FAIL",
                     "every task skipped" if skipped else "no task whose inputs the smoke test knows how to fill")
    # 6. a user plugins folder: the good plugin loads and runs, the broken ones are listed and skipped
    user = r.home / ".local/share/kintsugi/plugins"
    make_user_plugins(user)
    p = r.run("user plugins folder: list", [exe, "plugins", "list", "--json"], timeout=300)
    if p is not None and p.returncode == 0:
        listing = json.loads(p.stdout)
        tasks = {t["id"] for m in listing["plugins"] for t in m["tasks"]}
        failed = {Path(f["source"]).name if not f["source"].endswith(".toml") else Path(f["source"]).parent.name
                  for f in listing["failed"]}
        want = {"smoke_no_manifest", "smoke_bad_toml", "smoke_import_error", "smoke_missing_module"}
        ok = "smoke.invert" in tasks and want <= failed and not ({"smoke.broken", "smoke.missing"} & tasks)
        r.record("user plugins folder: good loaded, broken reported", "PASS" if ok else "FAIL",
                 f"failed: {sorted(failed)}; smoke.invert listed: {'smoke.invert' in tasks}")
        if "smoke.invert" in tasks:
            r.run("user plugin task smoke.invert", [exe, "run", "smoke.invert", "--volume",
                                                      str(samples / "spine" / "ct.nii.gz"), "--quiet", "--output",
                                                      str(work / "out" / "smoke.invert")], timeout=300)
    r.run("version with broken user plugins", [exe, "--version"], timeout=300)
    shutil.rmtree(user)
    # 7. GUI screenshot under Xvfb
    shot = (args.screenshot or work / "gui.png").resolve()
    if shutil.which("xvfb-run"):
        gui_env = {"QT_QPA_PLATFORM": "xcb"}
        argv = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", exe, "gui", "--sample", "spine",
                "--screenshot", str(shot)]
        r.run("GUI screenshot (xvfb, --sample spine; first run makes the sample)", argv, timeout=600,
              extra_env=gui_env)
        shot.unlink(missing_ok=True)
        cold = "cold start" if evict(bundle) else "second start"
        p = r.run(f"GUI screenshot ({cold}, sample cached)", argv, timeout=600, extra_env=gui_env)
        if p is not None and p.returncode == 0:
            size = shot.stat().st_size if shot.exists() else 0
            r.record("screenshot file", "PASS" if size > 10_000 else "FAIL", f"{shot} ({size} bytes)")
    else:
        r.record("GUI screenshot", "FAIL", "xvfb-run not found (apt-get install xvfb xauth)")

    failed = [n for n, s, _ in r.results if s == "FAIL"]
    skipped = [n for n, s, _ in r.results if s == "SKIP"]
    print("\n[smoke] summary")
    for name, status, detail in r.results:
        print(f"  {status:<4} {name}: {detail}")
    verdict = f"FAILED: {len(failed)} step(s)" if failed else "PASSED"
    print(f"[smoke] {verdict}{f' ({len(skipped)} skipped)' if skipped else ''}; scratch {work}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

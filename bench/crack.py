"""Crack plugin: accuracy on real and synthetic photos in normal and low light, speed, memory.

Sets (each skipped when its data is absent):
* UAV75 validation part (10 photos, GPL-3.0, read from /work/shared/data/crack, never copied) and the
  12+1 DeepCrack samples (non-commercial licence): validation only, never used to train the weights;
* darkened copies of each (intensity x0.15-0.3, gamma 0.8-1.4, shot and read noise, fixed seed);
* held-out synthetic scenes (seed 7) and the generator's own low-light rendering of the same scenes.

Methods: the classical ridge filter, the network alone, and 1-shot / 5-shot prototypes. The support
examples are ADAPTATION data, not training data: for UAV75 they come from its training part, for
DeepCrack from UAV75's training part too (a different site: cross-site adaptation), for synthetic from
held-out seed 8. Scores pooled over each set: F1 with 2 px tolerance, crack IoU, mIoU (mean of
background and crack IoU, as CrackNex reports).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from bench.results_table import Row, machine, today

DATA = Path(os.environ.get("KINTSUGI_CRACK_DATA", "/work/shared/data/crack"))
NAME = "crack"


def _accuracy(where: str, when: str) -> list[Row]:
    import torch

    from kintsugi_crack import evaluate as ev

    torch.set_num_threads(1)
    sets: dict[str, list] = {}
    supports: dict[str, list] = {}
    uav_train = ev.uav75(DATA / "uav75", "train") if (DATA / "uav75" / "train_img").is_dir() else []
    if (DATA / "uav75" / "val_img").is_dir():
        val = ev.uav75(DATA / "uav75", "val")
        sets |= {"UAV75 val": val, "UAV75 val:darkened": ev.darkened(val, 99)}
        supports["UAV75 val"] = uav_train
    if (DATA / "deepcrack_samples").is_dir():
        dc = ev.deepcrack(DATA / "deepcrack_samples")
        sets |= {"DeepCrack samples": dc, "DeepCrack samples:darkened": ev.darkened(dc, 99)}
        supports["DeepCrack samples"] = uav_train
    normal, low = ev.synthetic_pairs(ev.EVAL_SEED, 16)
    sets |= {"synthetic held-out": normal, "synthetic held-out:generator low light": low,
             "synthetic held-out:darkened": ev.darkened(normal, 99)}
    supports["synthetic held-out"] = ev.synthetic_pairs(ev.SUPPORT_SEED, 8)[0]
    res = ev.run_all(sets, supports, ev.Segmenter(), log=lambda m: print(m, flush=True))
    rows = []
    for name, by_method in res.items():
        label = name.replace(":", ", ")
        for m, s in by_method.items():
            rows.append(Row(NAME, f"{label}, {m}: F1@2px / crack IoU / mIoU",
                            f"{s['f1_2px']:.3f} / {s['iou']:.3f} / {s['miou']:.3f}", "", where, when))
    for name in res:
        if ":" in name:
            base = name.split(":")[0]
            for m in res[name]:
                ratio = res[name][m]["f1_2px"] / max(res[base][m]["f1_2px"], 1e-9)
                rows.append(Row(NAME, f"{name.replace(':', ', ')} vs normal light, {m}: F1 ratio (goal ≥ 0.90)",
                                f"{ratio:.3f}", "", where, when))
    return rows


_TIMING = r"""
import sys, time, resource, json
import numpy as np, torch
torch.set_num_threads(int(sys.argv[3]))
from kintsugi.samples.crack import render_scene
from kintsugi_crack.tasks import analyse, model_tensors
from kintsugi_crack.infer import load_model
side, repeats = int(sys.argv[1]), int(sys.argv[2])
tile, _ = render_scene(np.random.default_rng(1), (512, 512))
img = np.empty((side, side, 3), np.uint8)  # filled in place: no temporary bigger than the photo inflates
for y in range(0, side, 512):              # the peak-RSS baseline below
    for x in range(0, side, 512):
        img[y:y + 512, x:x + 512] = tile[:side - y, :side - x]
net = load_model(model_tensors(None, "cpu"))
def status(key):  # kB from /proc/self/status; ru_maxrss would carry the parent's peak over fork + exec
    try:
        for line in open("/proc/self/status"):
            if line.startswith(key + ":"):
                return float(line.split()[1])
    except OSError:
        pass
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
try:
    open("/proc/self/clear_refs", "w").write("5")  # reset the peak to the current RSS
except OSError:
    pass
base = status("VmRSS")
times, cpu = [], []
for _ in range(repeats):
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    analyse(img, "bench", net, None, "network", 0.5, None, 1024, 10.0, "cpu")
    times.append(time.perf_counter() - t0)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu.append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
peak = status("VmHWM")
print(json.dumps({"times": times, "cpu": cpu, "base_mb": base / 1024, "peak_mb": peak / 1024,
                  "image_mb": img.nbytes / 2**20}))
"""


def _subprocess(side: int, repeats: int, threads: int) -> dict:
    out = subprocess.run([sys.executable, "-c", _TIMING, str(side), str(repeats), str(threads)], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(workdir: Path, repeats: int = 3) -> list[Row]:
    where, when = machine(), today()
    rows = _accuracy(where, when)
    load = os.getloadavg()[0]
    t = _subprocess(2048, repeats, 2)
    med = statistics.median(t["times"])
    print(f"2048x2048: {med:.2f} s (load {load:.1f})", flush=True)
    rows.append(Row(NAME, "2048x2048 photo, network + measurements, 2 threads (goal ≤ 2 s; other jobs shared the "
                          "cores: load average in the value)", f"{med:.2f} (load {load:.1f})", "s", where, when))
    one = _subprocess(2048, repeats, 1)
    cpu = statistics.median(one["cpu"])
    print(f"2048x2048, one thread: CPU {cpu:.2f} s, wall {statistics.median(one['times']):.2f} s", flush=True)
    rows.append(Row(NAME, "2048x2048 photo, one thread: CPU time (user+sys) = wall time on an otherwise idle core",
                    f"{cpu:.2f}", "s", where, when))
    small, big = _subprocess(3000, 1, 2), _subprocess(6000, 1, 2)
    extra_s, extra = small["peak_mb"] - small["base_mb"], big["peak_mb"] - big["base_mb"]
    for side, e, info in ((3000, extra_s, small), (6000, extra, big)):
        rows.append(Row(NAME, f"{side}x{side} photo ({info['image_mb']:.0f} MB RGB): memory above the loaded photo "
                              "(peak RSS growth; 1024 px tiles, measurement in 2048 px tiles)", f"{e:.0f}", "MB",
                        where, when))
    rows.append(Row(NAME, "6000x6000 photo: time (network + measurements)", f"{big['times'][0]:.1f}", "s",
                    where, when))
    slope = (extra - extra_s) * 2**20 / (6000**2 - 3000**2)
    rows.append(Row(NAME, "memory growth per pixel from 3000x3000 to 6000x6000 (mask, width map, crack lists; a "
                          "20000x20000 photo needs about the 3000x3000 figure plus this per extra pixel, not 4 float "
                          "channels = 16 B/px)", f"{slope:.1f}", "B/px", where, when))
    return rows


if __name__ == "__main__":
    for r in run(Path("/tmp"), 1):
        print(r.line())

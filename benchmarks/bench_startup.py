"""Fixed cost, per-photo cost and batch scaling of `skinimg analyze` as a user runs it (issue 25).

    .venv/bin/python benchmarks/bench_startup.py [--photos DIR] [--repeat 3] [--n-batch 120]
                                                 [--batch-size 600x800] [--skip-batch]
                                                 [--maps none[,default,all]] [--resolutions default[,full,MP]]

Every measurement is the real command in a fresh process (``python -m skinimg analyze --maps none``),
so interpreter start, imports, model loading and the pool start-up all count:

* per photo    for each photo P of --photos (JPEG files; default: the real photo in sample_images/real):
               ``analyze --workers 1`` of a folder holding P once (t1) and of a folder holding 6 copies of
               P (t6), interleaved, best of --repeat; per further photo = (t6 - t1) / 5, fixed cost =
               t1 - per photo.  P's own decode (cv2.imread) is timed in this process in the same rounds
               (median); the ratio per photo / decode is the goal of issue 25 (<= 3x, fixed cost <= 0.5 s).
               Each --maps mode (issue 29: default maps <= 5x, all <= 10x) and each --resolutions value
               (``default`` = the default working size, ``full`` = every photo at its own size: the baseline) is
               a row of its own, all of them in the same interleaved rounds.
* imports      the heavy packages (scipy, scikit-learn, scikit-image, matplotlib, dask, pyarrow, torch,
               PIL) that a one-photo ``analyze`` imports, with their cumulative import time
               (``python -X importtime``); each should be there only because the command runs it.
* batch        --n-batch photos of --batch-size (crops of the given photos, or skinimg.phantom renders when
               none are given), ``analyze --workers 1`` versus ``--workers 2``, end to end (process start to
               exit), best of 2; goal: 2 workers >= 1.8x one worker on a 2-core machine.

Real 10-12 MP photos are not shipped (size and licences); docs/benchmarks.md names the CC0 sources used.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("scipy", "sklearn", "skimage", "matplotlib", "dask", "distributed", "pyarrow", "torch", "PIL", "pandas")


def run_analyze(folder: Path, out: Path, workers: int, maps: str = "none", resolution: str = "default",
                ok_codes=(0,)) -> float:
    """Wall time of one ``skinimg analyze`` process (exit code in ``ok_codes`` required)."""
    if out.exists():
        shutil.rmtree(out)
    extra = [] if resolution == "default" else ["--resolution", resolution]
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "skinimg", "analyze", str(folder), "--out", str(out), "--maps", maps,
                           "--workers", str(workers), *extra], capture_output=True, text=True)
    dt = time.perf_counter() - t
    if proc.returncode not in ok_codes:
        raise SystemExit(f"analyze failed on {folder}: {proc.stderr.strip()[-400:]}")
    return dt


def decode_time(path: Path) -> float:
    t = time.perf_counter()
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    dt = time.perf_counter() - t
    assert img is not None, path
    return dt


def per_photo(photos: list[Path], repeat: int, tmp: Path, modes=(("none", "default"),)) -> list[dict]:
    """One row per photo and (maps, resolution) mode; every mode of a photo in the same interleaved rounds."""
    rows = []
    for p in photos:
        one, six = tmp / f"{p.stem}_1", tmp / f"{p.stem}_6"
        one.mkdir()
        six.mkdir()
        shutil.copy(p, one / p.name)
        for k in range(6):
            shutil.copy(p, six / f"{p.stem}_{k}{p.suffix}")
        t1, t6, dec = {m: [] for m in modes}, {m: [] for m in modes}, []
        for _ in range(repeat):  # interleaved rounds: the machine's load drifts
            for m in modes:
                dec.append(decode_time(p))
                t1[m].append(run_analyze(one, tmp / "out", 1, *m))
                t6[m].append(run_analyze(six, tmp / "out", 1, *m))
            dec.append(decode_time(p))
        h, w = cv2.imread(str(p)).shape[:2]
        d = statistics.median(dec)
        for m in modes:
            per = (min(t6[m]) - min(t1[m])) / 5
            rows.append({"photo": p.name, "maps": m[0], "resolution": m[1], "mp": h * w / 1e6, "decode": d,
                         "t1": min(t1[m]), "t6": min(t6[m]), "per": per, "fixed": min(t1[m]) - per,
                         "ratio": per / d})
    return rows


def heavy_imports(photo: Path, tmp: Path) -> list[tuple[str, float]]:
    one = tmp / "imp"
    one.mkdir(exist_ok=True)
    shutil.copy(photo, one / photo.name)
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "skinimg", "analyze", str(one), "--out",
                           str(tmp / "imp_out"), "--no-maps", "--workers", "1"], capture_output=True, text=True)
    found = {}
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|(\s*)(\S+)$", line)
        if not m:
            continue
        name = m.group(3)
        top = name.split(".")[0]
        if top in HEAVY:
            key = name if top == "scipy" and name.count(".") == 1 else top
            found[key] = max(found.get(key, 0.0), int(m.group(1)) / 1e6)
    return sorted(found.items(), key=lambda kv: -kv[1])


def batch_photos(photos: list[Path], n: int, size: tuple[int, int], folder: Path) -> None:
    h, w = size
    rng = np.random.default_rng(0)
    folder.mkdir()
    if photos:
        srcs = [cv2.imread(str(p)) for p in photos]
    else:
        from skinimg.phantom import PhantomSpec, render_phantom  # phantoms when no real photo is given
        srcs = [cv2.cvtColor(render_phantom(PhantomSpec(seed=s, size=(h, w))).image, cv2.COLOR_RGB2BGR)
                for s in range(4)]
    for i in range(n):
        src = srcs[i % len(srcs)]
        scale = max(h / src.shape[0], w / src.shape[1]) * rng.uniform(1.0, 1.6)
        big = cv2.resize(src, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        y = int(rng.integers(0, big.shape[0] - h + 1))
        x = int(rng.integers(0, big.shape[1] - w + 1))
        cv2.imwrite(str(folder / f"b{i:04d}.jpg"), big[y:y + h, x:x + w], [cv2.IMWRITE_JPEG_QUALITY, 92])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=Path, default=REPO / "sample_images" / "real")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--n-batch", type=int, default=120)
    ap.add_argument("--batch-size", default="600x800", help="HxW of the batch photos")
    ap.add_argument("--skip-batch", action="store_true")
    ap.add_argument("--maps", default="none", help="comma-separated --maps modes to time (none, default, all)")
    ap.add_argument("--resolutions", default="default",
                    help="comma-separated --resolution values to time: default (the default working size), full, MP")
    a = ap.parse_args()
    modes = tuple((m, r) for m in a.maps.split(",") for r in a.resolutions.split(","))
    photos = sorted(p for p in a.photos.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
    if not photos:
        raise SystemExit(f"no JPEG in {a.photos}")
    print(f"# bench_startup: {len(photos)} photo(s) from {a.photos}; {os.cpu_count()} CPUs; "
          f"load {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        rows = per_photo(photos, a.repeat, tmp, modes)
        print("\n| photo | MP | --maps | --resolution | decode s | 1-photo run s | 6-photo run s | per further photo s "
              "| x decode | fixed cost s |")
        print("|---|---:|---|---|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['photo']} | {r['mp']:.1f} | {r['maps']} | {r['resolution']} | {r['decode']:.3f} | "
                  f"{r['t1']:.2f} | {r['t6']:.2f} | {r['per']:.3f} | {r['ratio']:.2f} | {r['fixed']:.2f} |")
        goals = {"none": 3, "default": 5, "all": 10}
        for m in modes:
            sel = [r for r in rows if (r["maps"], r["resolution"]) == m]
            print(f"\n--maps {m[0]} --resolution {m[1]}: fixed cost (median over photos) "
                  f"{statistics.median(r['fixed'] for r in sel):.2f} s (goal <= 0.5); per photo / decode: median "
                  f"{statistics.median(r['ratio'] for r in sel):.2f}, worst {max(r['ratio'] for r in sel):.2f} "
                  f"(goal <= {goals.get(m[0], '?')})")
        for m in modes:
            if m[1] != "full" and (m[0], "full") in modes:
                ratios = [rb["per"] / ra["per"] for ra in rows for rb in rows if ra["photo"] == rb["photo"]
                          and (ra["maps"], ra["resolution"]) == m and (rb["maps"], rb["resolution"]) == (m[0], "full")]
                print(f"--maps {m[0]}: --resolution full / --resolution {m[1]} per photo: "
                      f"{', '.join(f'{x:.1f}x' for x in ratios)}")
        print("\n| heavy package imported by a 1-photo analyze | cumulative import s |")
        print("|---|---:|")
        for name, s in heavy_imports(photos[0], tmp):
            print(f"| {name} | {s:.3f} |")
        if not a.skip_batch:
            h, w = (int(v) for v in a.batch_size.lower().split("x"))
            folder = tmp / "batch"
            batch_photos(photos, a.n_batch, (h, w), folder)
            t = {1: [], 2: []}
            for _ in range(2):
                for wk in (1, 2):
                    # exit code 2: a crop without skin is a row of its own, not a failure of the benchmark
                    t[wk].append(run_analyze(folder, tmp / "bout", wk, ok_codes=(0, 2)))
            print(f"\n| batch of {a.n_batch} photos {h}x{w} | end to end s | photos/s |")
            print("|---|---:|---:|")
            for wk in (1, 2):
                print(f"| --workers {wk} | {min(t[wk]):.2f} | {a.n_batch / min(t[wk]):.1f} |")
            print(f"\n2 workers / 1 worker: {min(t[1]) / min(t[2]):.2f}x (goal >= 1.8)")


if __name__ == "__main__":
    main()

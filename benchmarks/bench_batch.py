"""Throughput and memory of `skinimg run` (issue 7).

    .venv/bin/python benchmarks/bench_batch.py [--n-speed 8] [--size 3000x4000] [--mem 10,200] [--mem-size 1200x1600]

* Throughput: --n-speed 12-megapixel JPEGs (a skinimg.phantom phantom rendered at 1/4 size,
  upscaled bicubic, per-image noise, JPEG quality 92) through a pipeline ``[analyze]
  maps = false`` with --workers 1 and 2.  Each run is the real command (``python -m
  skinimg run ...``) in a fresh process; two rates are shown: end to end (command
  start to exit, including interpreter and pool start-up) and steady state (photos
  after the first round of workers divided by the time from that round to the last
  result; the progress lines of the command give the timestamps).  Goal: 2 workers
  >= 1.7x 1 worker (steady state), on a 2-core machine.
* Memory: the same pipeline over 10 and 200 photos (--mem-size, default 2 MP so the
  200-photo run stays short) with 2 workers; peak resident memory of the whole
  process tree (``skinimg run`` and its workers), sampled every 50 ms as the sum of
  VmRSS, and the largest VmHWM of any single process.  Goal: < 20 % difference.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PIPE = '[pipeline]\nname = "bench"\nstages = ["analyze"]\n[analyze]\nmaps = false\n'


def make_photos(folder: Path, n: int, size: tuple[int, int], seed: int = 0) -> list[Path]:
    """n distinct JPEGs of ``size`` (H, W) from one upscaled phantom plus per-photo noise and shift."""
    from skinimg.phantom import PhantomSpec, render_phantom

    folder.mkdir(parents=True, exist_ok=True)
    h, w = size
    base = render_phantom(PhantomSpec(seed=seed, size=(max(64, h // 4), max(64, w // 4)), jpeg_quality=95)).image
    big = cv2.resize(base, (w, h), interpolation=cv2.INTER_CUBIC)
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        img = np.roll(big, (k * 7) % 50, axis=1)
        noise = rng.integers(-3, 4, size=(h, w // 8, 3), dtype=np.int16)
        img = np.clip(img.astype(np.int16) + np.tile(noise, (1, 8, 1))[:, :w], 0, 255).astype(np.uint8)
        p = folder / f"img{k:04d}.jpg"
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
        p.write_bytes(buf.tobytes())
        out.append(p)
    return out


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as fh:
                    todo += [int(c) for c in fh.read().split()]
        except OSError:
            pass
    return pids


def _status_kb(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_cmd(pipe: Path, src: Path, out: Path, workers: int) -> dict:
    """Run `skinimg run`, sample the tree's memory, time the progress lines."""
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    argv = [sys.executable, "-m", "skinimg", "run", str(pipe), str(src), "--out", str(out),
            "--workers", str(workers)]
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu0 = ru0.ru_utime + ru0.ru_stime
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    import threading

    stamps: list[tuple[float, int]] = []

    def read():
        for line in proc.stderr:
            m = re.match(r"skinimg: (\d+)/(\d+) images", line)
            if m:
                stamps.append((time.perf_counter() - t0, int(m.group(1))))

    th = threading.Thread(target=read, daemon=True)
    th.start()
    peak_sum = 0
    hwm: dict[int, int] = {}
    while proc.poll() is None:
        pids = _tree(proc.pid)
        peak_sum = max(peak_sum, sum(_status_kb(p, "VmRSS") for p in pids))
        for p in pids:
            hwm[p] = max(hwm.get(p, 0), _status_kb(p, "VmHWM"))
        time.sleep(0.05)
    th.join()
    wall = time.perf_counter() - t0
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = ru.ru_utime + ru.ru_stime - cpu0
    if proc.returncode not in (0, 2):
        raise SystemExit(f"skinimg run failed ({proc.returncode})")
    return {"wall_s": wall, "cpu_s": cpu, "stamps": stamps, "peak_tree_rss_mb": peak_sum / 1024,
            "max_process_hwm_mb": max(hwm.values()) / 1024 if hwm else 0.0,
            "parent_hwm_mb": hwm.get(proc.pid, 0) / 1024, "sum_hwm_mb": sum(hwm.values()) / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-speed", type=int, default=8)
    ap.add_argument("--size", default="3000x4000")
    ap.add_argument("--mem", default="10,200")
    ap.add_argument("--mem-size", default="1200x1600")
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    mem_size = tuple(int(v) for v in args.mem_size.split("x"))
    print(f"CPUs: {os.cpu_count()}; load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        tmp = Path(tmp)
        pipe = tmp / "bench.toml"
        pipe.write_text(PIPE)
        # the progress lines come every 10 s by default: ask for a line per photo through the environment knob of the progress printer
        os.environ["SKINIMG_PROGRESS_EVERY_S"] = "0"
        src = tmp / "speed"
        make_photos(src, args.n_speed, size)
        mp = size[0] * size[1] / 1e6
        rows = []
        for w in (1, 2):
            r = run_cmd(pipe, src, tmp / f"out-speed-{w}", w)
            st = r["stamps"]
            steady = float("nan")
            if len(st) > w:
                (ta, na), (tb, nb) = st[w - 1], st[-1]
                steady = (nb - na) / (tb - ta) if tb > ta else float("nan")
            rows.append((w, args.n_speed / r["wall_s"], steady, r["wall_s"], r["cpu_s"]))
        print(f"\nThroughput on {args.n_speed} JPEGs of {size[1]}x{size[0]} ({mp:.0f} MP), pipeline [analyze] maps=false")
        print("| workers | end to end (img/s) | steady state (img/s) | wall (s) | CPU (s, all processes) |")
        print("|---|---|---|---|---|")
        for w, e2e, steady, wall, cpu in rows:
            print(f"| {w} | {e2e:.3f} | {steady:.3f} | {wall:.1f} | {cpu:.1f} |")
        print(f"| ratio 2/1 | {rows[1][1] / rows[0][1]:.2f}x | {rows[1][2] / rows[0][2]:.2f}x | | |")

        counts = [int(v) for v in args.mem.split(",")]
        src = tmp / "mem"
        make_photos(src, max(counts), mem_size, seed=1)
        res = []
        for n in counts:
            sub = tmp / f"mem-{n}"
            sub.mkdir()
            for k in range(n):
                os.link(src / f"img{k:04d}.jpg", sub / f"img{k:04d}.jpg")
            r = run_cmd(pipe, sub, tmp / f"out-mem-{n}", 2)
            res.append((n, r))
        print(f"\nPeak memory, 2 workers, JPEGs of {mem_size[1]}x{mem_size[0]}")
        print("| photos | peak tree RSS, sampled sum (MB) | sum of per-process VmHWM (MB) | largest process VmHWM (MB) "
              "| parent VmHWM (MB) | wall (s) |")
        print("|---|---|---|---|---|---|")
        for n, r in res:
            print(f"| {n} | {r['peak_tree_rss_mb']:.0f} | {r['sum_hwm_mb']:.0f} | {r['max_process_hwm_mb']:.0f} | "
                  f"{r['parent_hwm_mb']:.0f} | {r['wall_s']:.1f} |")
        a, b = res[0][1], res[-1][1]
        d = {k: 100 * (b[k] / a[k] - 1) for k in ("peak_tree_rss_mb", "sum_hwm_mb", "max_process_hwm_mb", "parent_hwm_mb")}
        print(f"| difference | {d['peak_tree_rss_mb']:+.1f} % | {d['sum_hwm_mb']:+.1f} % | {d['max_process_hwm_mb']:+.1f} % "
              f"| {d['parent_hwm_mb']:+.1f} % | |")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

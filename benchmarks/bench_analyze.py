"""Speed and memory of `skinimg analyze` on one 12-megapixel JPEG, on one core.

    .venv/bin/python benchmarks/bench_analyze.py [--size 3000x4000] [--repeat 3] [--method model|rules]

A phantom is rendered by skinimg.phantom at a modest size and upscaled (bicubic) to the
target size, then saved as a JPEG (quality 92).  Every measurement runs in a fresh
subprocess pinned to one thread (OMP/OpenBLAS/MKL threads = 1, cv2.setNumThreads(1)):

* decode      skinimg.io.load_image (header check + OpenCV decode + BGR->RGB)
* analyze     segmentation + indices + statistics on the decoded array, maps off
              (skinimg.batch.analyze with maps=False minus the decode)
* rgb2lab     scikit-image rgb2lab on the same decoded array (baseline)
* peak memory peak RSS (VmHWM, reset after the imports) of a process that decodes +
              analyzes, minus its RSS after the imports (so the decoded image and
              all temporaries count), divided by the decoded image's bytes; tracemalloc's peak of the
              analysis step (NumPy allocations only) is shown too.

Goal (issue 4): analyze <= 3x decode time, peak <= 12x decoded bytes.  Times are the
median of --repeat runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, os, resource, statistics, sys, time, tracemalloc
import cv2
cv2.setNumThreads(1)
import numpy as np
from skinimg.io import load_image
from skinimg.batch import AnalyzeParams
from skinimg.indices import measure, load_basis
from skinimg.segment import segment_skin
mode, path, repeat, method = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
def _segment(rgb, method):
    return segment_skin(rgb, method=method)
params = AnalyzeParams()
load_basis()
res = {}
def timed(f, n):
    ts = []
    out = None
    for _ in range(n):
        t = time.perf_counter(); out = f(); ts.append(time.perf_counter() - t)
    return statistics.median(ts), out
if mode == "time":
    from skimage.color import rgb2lab
    res["decode_s"], (rgb, meta) = timed(lambda: load_image(path), repeat)
    res["decoded_bytes"] = int(rgb.nbytes)
    res["shape"] = list(rgb.shape)
    res["segment_s"], seg = timed(lambda: _segment(rgb, method), repeat)
    res["skin_fraction"] = float(np.mean(seg.mask))
    res["indices_stats_s"], _ = timed(lambda: measure(rgb, seg.mask, params=params.indices, return_maps=False), repeat)
    def full():
        s = _segment(rgb, method)
        return measure(rgb, s.mask, params=params.indices, return_maps=False)
    res["analyze_s"], _ = timed(full, repeat)
    res["rgb2lab_s"], _ = timed(lambda: rgb2lab(rgb), repeat)
elif mode == "memory":
    from skimage.color import rgb2lab  # noqa: same imports as the timing run
    def _status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    try:  # reset the peak-RSS mark (Linux >= 4.0), so the imports do not count
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass
    res["rss_before_bytes"] = _status("VmRSS")
    rgb, meta = load_image(path)
    res["decoded_bytes"] = int(rgb.nbytes)
    tracemalloc.start()
    s = _segment(rgb, method)
    row, _ = measure(rgb, s.mask, params=params.indices, return_maps=False)
    res["tracemalloc_peak"] = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
res["segment_method"] = method
if mode == "memory":
    res["peak_rss_bytes"] = _status("VmHWM")
print(json.dumps(res))
"""


def _child(mode: str, path: str, repeat: int, method: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", CHILD, mode, path, str(repeat), method], env=env,
                         capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"benchmark child ({mode}) failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def make_jpeg(path: Path, size: tuple[int, int], seed: int = 0) -> None:
    """Phantom JPEG (no chart) + ``<stem>_mask.png``: :func:`skinimg.train.bench.make_speed_jpeg`."""
    from skinimg.train.bench import make_speed_jpeg

    make_speed_jpeg(path, size, seed=seed, chart=False)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="3000x4000", help="HxW of the JPEG (default 3000x4000 = 12 MP)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--method", default="model", choices=["rules", "model"])
    ap.add_argument("--jpeg", help="use this JPEG instead of rendering a phantom")
    a = ap.parse_args(argv)
    h, w = (int(v) for v in a.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(a.jpeg) if a.jpeg else Path(tmp) / "phantom_12mp.jpg"
        if not a.jpeg:
            make_jpeg(path, (h, w))
        t = _child("time", str(path), a.repeat, a.method)
        mem = _child("memory", str(path), 1, a.method)
    dec = t["decode_s"]
    nbytes = t["decoded_bytes"]
    peak = mem["peak_rss_bytes"] - mem["rss_before_bytes"]
    rows = [
        ("decode (load_image)", dec, 1.0),
        ("segmentation (" + t["segment_method"] + ")", t["segment_s"], t["segment_s"] / dec),
        ("indices + stats (maps off)", t["indices_stats_s"], t["indices_stats_s"] / dec),
        ("analyze = segmentation + indices + stats", t["analyze_s"], t["analyze_s"] / dec),
        ("baseline: skimage rgb2lab", t["rgb2lab_s"], t["rgb2lab_s"] / dec),
    ]
    print(f"image: {t['shape'][0]}x{t['shape'][1]} ({t['shape'][0] * t['shape'][1] / 1e6:.1f} MP), "
          f"skin fraction {t['skin_fraction']:.2f}, decoded {nbytes / 1e6:.1f} MB, one thread, median of {a.repeat}")
    print(f"{'step':<44}{'seconds':>10}{'x decode':>10}")
    for name, s, r in rows:
        print(f"{name:<44}{s:>10.3f}{r:>10.2f}")
    print(f"{'peak RSS above imports (decode + analyze)':<44}{peak / 1e6:>9.0f}M{peak / nbytes:>9.1f}x")
    print(f"{'tracemalloc peak of analyze (NumPy only)':<44}{mem['tracemalloc_peak'] / 1e6:>9.0f}M"
          f"{mem['tracemalloc_peak'] / nbytes:>9.1f}x")
    ok_t = t["analyze_s"] <= 3 * dec
    ok_m = peak <= 12 * nbytes
    print(f"goal analyze <= 3x decode: {'met' if ok_t else 'NOT met'}; peak <= 12x decoded bytes: "
          f"{'met' if ok_m else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

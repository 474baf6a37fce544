"""Speed and memory of `skinimg analyze` on one 12-megapixel JPEG, on one core.

    .venv/bin/python benchmarks/bench_analyze.py [--size 3000x4000] [--repeat 3] [--method model|rules]
                                                 [--jpeg PHOTO] [--resolution default|full|MP]

A phantom is rendered by skinimg.phantom at a modest size and upscaled (bicubic) to the
target size, then saved as a JPEG (quality 92).  Every measurement runs in a fresh
subprocess pinned to one thread (OMP/OpenBLAS/MKL threads = 1, cv2.setNumThreads(1)):

* decode      skinimg.io.load_image (header check + OpenCV decode + BGR->RGB) of the full photo: the reference
* working copy  load_image with the working size of --resolution (AnalyzeParams.work_pixels, as analyze loads;
              ``full``: the full decode again)
* analyze     segmentation + indices + statistics on the working copy, maps off
              (skinimg.batch.analyze with maps=False minus the loading)
* rgb2lab     scikit-image rgb2lab on the same decoded array (baseline)
* maps        writing the maps of the default set (erythema index, haemoglobin, melanin) and of all 8
              indices: float32 TIFF + PNG heatmap each (skinimg.batch.write_maps), one thread
* per photo   what `skinimg analyze --workers 1` spends per further photo with --maps none / default / all:
              skinimg.batch.analyze_paths over --stream copies of the photo (decode included; the maps are
              written on the writer thread while the next copy is measured), divided by the copies
* peak memory peak RSS (VmHWM, reset after the imports) of a process that loads (as analyze does) +
              analyzes, minus its RSS after the imports (so the loaded image and
              all temporaries count), divided by the bytes of the full decoded image; tracemalloc's peak of the
              analysis step (NumPy allocations only) is shown too.

Goals: analyze <= 3x decode time, peak <= 12x decoded bytes (issue 4); per photo with the default maps
<= 5x decode, with all maps <= 10x (issue 29).  Every step is timed once per round, the rounds interleaved
(the decode drifts with the machine's load); times are the medians of --repeat rounds.
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
from skinimg.io import load_image, parse_resolution
from skinimg.batch import AnalyzeParams
from skinimg.indices import measure, load_basis
from skinimg.segment import segment_skin
mode, path, repeat, method, n_stream = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
resolution = sys.argv[6]
def _segment(rgb, method):
    return segment_skin(rgb, method=method)
params = AnalyzeParams() if resolution == "default" else AnalyzeParams(work_pixels=parse_resolution(resolution))
load_basis()
res = {}
def timed(f, n):
    ts = []
    out = None
    for _ in range(n):
        t = time.perf_counter(); out = f(); ts.append(time.perf_counter() - t)
    return statistics.median(ts), out
if mode == "time":
    import shutil, tempfile
    from pathlib import Path
    from skimage.color import rgb2lab
    from skinimg.batch import DEFAULT_MAPS, analyze_paths, write_maps
    from skinimg.indices import INDEX_NAMES
    tmp = Path(tempfile.mkdtemp())
    stream = tmp / "stream"
    stream.mkdir()
    for k in range(n_stream):
        shutil.copy(path, stream / f"copy{k:02d}{Path(path).suffix}")
    full_rgb, meta = load_image(path)
    res["decoded_bytes"] = int(full_rgb.nbytes)
    res["shape"] = list(full_rgb.shape)
    rgb, _ = load_image(path, work_pixels=params.work_pixels)
    res["work_shape"] = list(rgb.shape)
    seg = _segment(rgb, method)
    res["skin_fraction"] = float(np.mean(seg.mask))
    maps_all = measure(rgb, seg.mask, params=params.indices, return_maps=True)[1]
    def full():
        s = _segment(rgb, method)
        return measure(rgb, s.mask, params=params.indices, return_maps=False)
    def per_photo(maps):
        t = time.perf_counter()
        analyze_paths([stream], tmp / "out", params=params, workers=1, maps=maps)
        return (time.perf_counter() - t) / n_stream
    steps = {
        "decode_s": lambda: load_image(path),
        "work_s": lambda: load_image(path, work_pixels=params.work_pixels),
        "segment_s": lambda: _segment(rgb, method),
        "indices_stats_s": lambda: measure(rgb, seg.mask, params=params.indices, return_maps=False),
        "analyze_s": full,
        "write_default_s": lambda: write_maps(tmp / "w", "x", rgb, {n: maps_all[n] for n in DEFAULT_MAPS}, params),
        "write_all_s": lambda: write_maps(tmp / "w", "x", rgb, maps_all, params),
        "rgb2lab_s": lambda: rgb2lab(full_rgb),
    }
    for k in steps:
        res[k] = []
    for m in ("none", "default", "all"):
        res[f"per_photo_{m}_s"] = []
    for r in range(repeat):
        for k, f in steps.items():
            t = time.perf_counter(); f(); res[k].append(time.perf_counter() - t)
        for m in ("none", "default", "all"):
            res[f"per_photo_{m}_s"].append(per_photo(m))
    res["rounds"] = {k: v for k, v in res.items() if k.endswith("_s")}
    for k in list(res["rounds"]):
        res[k] = statistics.median(res[k])
    res["load"] = os.getloadavg()[0]
    shutil.rmtree(tmp, ignore_errors=True)
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
    rgb, meta = load_image(path, work_pixels=params.work_pixels)
    res["decoded_bytes"] = meta.photo_width * meta.photo_height * rgb.itemsize * 3  # the full decoded image
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


def _child(mode: str, path: str, repeat: int, method: str, n_stream: int = 1, resolution: str = "default") -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", CHILD, mode, path, str(repeat), method, str(n_stream), resolution],
                         env=env, capture_output=True, text=True)
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
    ap.add_argument("--jpeg", help="use this JPEG instead of rendering a phantom (e.g. a real photo)")
    ap.add_argument("--stream", type=int, default=4, help="copies of the photo in the per-photo rows (default 4)")
    ap.add_argument("--resolution", default="default",
                    help="analyze's working size: default, full (every photo at its own size) or megapixels")
    a = ap.parse_args(argv)
    h, w = (int(v) for v in a.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(a.jpeg) if a.jpeg else Path(tmp) / "phantom_12mp.jpg"
        if not a.jpeg:
            make_jpeg(path, (h, w))
        t = _child("time", str(path), a.repeat, a.method, a.stream, a.resolution)
        mem = _child("memory", str(path), 1, a.method, 1, a.resolution)
    dec = t["decode_s"]
    nbytes = t["decoded_bytes"]
    peak = mem["peak_rss_bytes"] - mem["rss_before_bytes"]
    rows = [
        ("decode (load_image)", dec, 1.0),
        (f"working copy {t['work_shape'][0]}x{t['work_shape'][1]} (load_image)", t["work_s"], t["work_s"] / dec),
        ("segmentation (" + t["segment_method"] + ")", t["segment_s"], t["segment_s"] / dec),
        ("indices + stats (maps off)", t["indices_stats_s"], t["indices_stats_s"] / dec),
        ("analyze = segmentation + indices + stats", t["analyze_s"], t["analyze_s"] / dec),
        ("working copy + analyze", t["work_s"] + t["analyze_s"], (t["work_s"] + t["analyze_s"]) / dec),
        ("write maps, default set (3 TIFF + 3 PNG)", t["write_default_s"], t["write_default_s"] / dec),
        ("write maps, all (8 TIFF + 8 PNG)", t["write_all_s"], t["write_all_s"] / dec),
        ("per photo, --maps none (decode included)", t["per_photo_none_s"], t["per_photo_none_s"] / dec),
        ("per photo, --maps default", t["per_photo_default_s"], t["per_photo_default_s"] / dec),
        ("per photo, --maps all", t["per_photo_all_s"], t["per_photo_all_s"] / dec),
        ("baseline: skimage rgb2lab", t["rgb2lab_s"], t["rgb2lab_s"] / dec),
    ]
    print(f"image: {t['shape'][0]}x{t['shape'][1]} ({t['shape'][0] * t['shape'][1] / 1e6:.1f} MP), "
          f"skin fraction {t['skin_fraction']:.2f}, decoded {nbytes / 1e6:.1f} MB, one thread, median of {a.repeat} "
          f"interleaved rounds, load average {t['load']:.1f} on {os.cpu_count()} cores")
    print(f"{'step':<44}{'seconds':>10}{'x decode':>10}")
    for name, s, r in rows:
        print(f"{name:<44}{s:>10.3f}{r:>10.2f}")
    print(f"{'peak RSS above imports (load + analyze)':<44}{peak / 1e6:>9.0f}M{peak / nbytes:>9.1f}x")
    print(f"{'tracemalloc peak of analyze (NumPy only)':<44}{mem['tracemalloc_peak'] / 1e6:>9.0f}M"
          f"{mem['tracemalloc_peak'] / nbytes:>9.1f}x")
    ok_t = t["work_s"] + t["analyze_s"] <= 3 * dec
    ok_m = peak <= 12 * nbytes
    print(f"goal working copy + analyze <= 3x decode: {'met' if ok_t else 'NOT met'}; peak <= 12x decoded bytes: "
          f"{'met' if ok_m else 'NOT met'}")
    ok_d, ok_a = t["per_photo_default_s"] <= 5 * dec, t["per_photo_all_s"] <= 10 * dec
    print(f"goal per photo <= 5x decode with the default maps: {'met' if ok_d else 'NOT met'}; "
          f"<= 10x with all maps: {'met' if ok_a else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

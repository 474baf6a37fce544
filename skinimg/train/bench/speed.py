"""The speed suite: per-stage time, throughput and peak memory on one large JPEG (:func:`run_speed`)."""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from ...batch import AnalyzeParams, write_maps
from ...calibrate import calibrate_image
from ...errors import SkinImgError
from ...indices import compute_maps, measure
from ...io import load_image, reduce_image, write_bytes, write_png
from ...phantom import PhantomSpec, render_phantom
from ...segment import segment_skin
from .params import BenchParams

__all__ = ["make_speed_jpeg", "run_speed"]

# ----------------------------------------------------------------------------- speed


def make_speed_jpeg(path: str | os.PathLike, size: tuple[int, int] = (3000, 4000), *, seed: int = 0,
                    quality: int = 92, chart: bool = True) -> np.ndarray:
    """Write a phantom photo (with a ColorChecker unless ``chart=False``) of ``size`` (H, W) as a JPEG.

    Returns the true skin mask, bool (H, W).

    The phantom is rendered at a quarter of the size and upscaled (bicubic), with
    sensor-like noise added at full resolution (an upscaled photo is too smooth for a
    realistic JPEG size and decode time).  The true skin mask (bool, (H, W)) is
    written beside it as ``<stem>_mask.png``.
    """

    h, w = size
    ph = render_phantom(PhantomSpec(melanin=0.12, hemoglobin=0.03, seed=seed, chart=chart,
                                    size=(max(64, h // 4), max(64, w // 4))))
    big = cv2.resize(ph.image, (w, h), interpolation=cv2.INTER_CUBIC)
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, 2.0, big.shape).round().astype(np.int16)
    big = np.clip(big.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(big, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover
        raise SkinImgError("could not encode the benchmark JPEG")
    write_bytes(path, buf.tobytes())
    mask = cv2.resize(ph.mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
    write_png(Path(path).with_name(Path(path).stem + "_mask.png"), mask.astype(np.uint8) * 255)
    return mask


def _peak_rss_bytes() -> int:
    """This process's peak resident memory so far (``getrusage``), in bytes."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if platform.system() == "Darwin" else int(peak) * 1024  # macOS: bytes; Linux: KiB


def _peak_growth(fn) -> tuple[dict, int | None]:
    """``(fn(), bytes)``: ``fn`` run in a forked child of this (warmed-up) process, and how far the child's peak
    resident memory rose above its resident memory at the fork (``getrusage``: a child's peak starts at its size
    when forked, so the caches and imports of the parent count as the start, their transient peaks do not).
    Without ``os.fork`` or the resource module (Windows): ``(fn(), None)``, run here.  ``fn`` returns a
    JSON-serialisable dict."""
    import json

    try:
        import resource  # noqa: F401
    except ImportError:  # pragma: no cover - Windows
        return fn(), None
    if not hasattr(os, "fork"):  # pragma: no cover
        return fn(), None
    rd, wr = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: measure, report through the pipe, leave without any cleanup of the parent's state
        code = 1
        try:
            before = _peak_rss_bytes()
            out = fn()
            os.write(wr, json.dumps({"result": out, "growth": _peak_rss_bytes() - before}).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(wr)
    chunks = []
    while True:
        b = os.read(rd, 1 << 16)
        if not b:
            break
        chunks.append(b)
    os.close(rd)
    _, status = os.waitpid(pid, 0)
    if status != 0 or not chunks:
        raise SkinImgError("the memory measurement of the speed benchmark failed (forked child exited with an error)")
    doc = json.loads(b"".join(chunks))
    return doc["result"], int(doc["growth"])


def _worker_init() -> None:
    cv2.setNumThreads(1)


def _segmenter(method: str):
    """rgb -> skin mask (bool) of :func:`skinimg.segment.segment_skin` with ``method``."""
    return lambda rgb: np.asarray(segment_skin(rgb, method=method).mask, dtype=bool)


def _pipeline(path: str, segment, with_maps: bool = False, out: str | None = None) -> dict:
    """One photo through decode -> calibrate -> segment -> indices (-> maps -> write); stage times.  As
    ``skinimg analyze --calibrate auto``: the chart is looked for in the full photo, which is then reduced to the
    working size (``AnalyzeParams.work_pixels``; counted in ``calibrate``)."""

    t = {}
    t0 = time.perf_counter()
    rgb, _ = load_image(path)
    full_bytes = int(rgb.nbytes)
    t1 = time.perf_counter()
    rgb, _corr = calibrate_image(rgb, mode="auto")
    rgb = reduce_image(rgb, AnalyzeParams().work_pixels)
    t2 = time.perf_counter()
    mask = segment(rgb)
    t3 = time.perf_counter()
    measure(rgb, mask, return_maps=False)
    t4 = time.perf_counter()
    t.update(decode=t1 - t0, calibrate=t2 - t1, segment=t3 - t2, indices=t4 - t3)
    if with_maps:
        maps = compute_maps(rgb, mask)
        t5 = time.perf_counter()
        write_maps(out, Path(path).stem, rgb, maps, AnalyzeParams())
        t6 = time.perf_counter()
        t.update(maps=t5 - t4, write=t6 - t5)
    t["calibration"] = _corr.kind
    t["decoded_bytes"] = full_bytes
    t["skin_fraction"] = float(np.mean(mask))
    return t


def _speed_child(path: str, method: str, repeat: int, out: str) -> dict:
    """Worker (one thread): peak memory of one pipeline run, then stage and baseline timings."""
    from skimage.color import rgb2lab

    segment = _segmenter(method)
    _warm(None)
    res: dict = {"segment_method": method}
    first, growth = _peak_growth(lambda: _pipeline(path, segment))  # after the imports and a warm-up
    res["peak_rss_above_start_bytes"] = growth
    res["decoded_bytes"] = first["decoded_bytes"]
    res["skin_fraction"] = first["skin_fraction"]
    res["calibration"] = first["calibration"]
    runs = [_pipeline(path, segment, with_maps=True, out=out) for _ in range(repeat)]
    res["stages"] = {k: statistics.median(r[k] for r in runs)
                     for k in ("decode", "calibrate", "segment", "indices", "maps", "write")}
    data = np.fromfile(path, dtype=np.uint8)
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        cv2.imdecode(data, cv2.IMREAD_COLOR)
        ts.append(time.perf_counter() - t0)
    res["baseline_cv2_decode"] = statistics.median(ts)
    rgb, _ = load_image(path)
    res["shape"] = list(rgb.shape)
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        rgb2lab(rgb)
        ts.append(time.perf_counter() - t0)
    res["baseline_rgb2lab"] = statistics.median(ts)
    return res


def _warm(_):
    """Fill the per-process caches (imports, basis, inverse tables, chart reference) outside the timing."""
    from skimage import color  # noqa: F401


    rgb = np.zeros((64, 64, 3), np.uint8)
    rgb[...] = (200, 150, 130)
    mask = np.ones((64, 64), bool)
    calibrate_image(rgb, mode="auto")
    measure(rgb, mask, return_maps=False)
    time.sleep(0.3)  # so every worker takes one warm-up job
    return os.getpid()


def _throughput_job(job) -> float:
    path, method = job
    segment = _segmenter(method)
    t0 = time.perf_counter()
    _pipeline(path, segment)
    return time.perf_counter() - t0


def run_speed(params: BenchParams | None = None, *, workdir: str | os.PathLike | None = None,
              method: str = "model", progress: Callable[[str], None] | None = None) -> dict:
    """Speed suite: per-stage time, throughput and peak memory on one large JPEG.

    A phantom JPEG of ``params.speed_size`` (12 MP for ``full``) with a ColorChecker is
    written to a temporary folder (:func:`make_speed_jpeg`).  In a worker process pinned
    to one OpenCV thread: peak RSS of one decode -> calibrate -> segment -> indices run
    (in a forked child of the warmed-up worker, the rise of its ``getrusage`` peak over its size when forked;
    Unix), then the median over
    ``speed_repeat`` runs of each stage (``decode`` = :func:`skinimg.io.load_image`,
    ``calibrate`` = :func:`~skinimg.calibrate.calibrate_image` ``mode="auto"``,
    ``segment``, ``indices`` = :func:`~skinimg.indices.measure` without maps, ``maps`` =
    :func:`~skinimg.indices.compute_maps`, ``write`` = the TIFF + PNG heatmaps analyze
    writes) and of the baselines (``cv2.imdecode`` alone; ``skimage.color.rgb2lab``).
    Throughput: ``speed_images`` copies through decode -> calibrate -> segment ->
    indices with 1 and 2 worker processes (after a warm-up), images per second of wall
    time.  Without ``skinimg.segment`` the true mask replaces segmentation (``segment``
    time ~0) and ``segment_method`` says so.

    Returns
    -------
    dict with ``stages`` (seconds), ``baselines`` (seconds), ``ratios`` (stage /
    ``cv2`` decode), ``throughput`` (``{workers: images/s}``), ``peak_rss_bytes``,
    ``peak_rss_x_decoded``, ``shape``, ``megapixels``, ``segment_method``.
    """
    import multiprocessing
    import shutil
    from concurrent.futures import ProcessPoolExecutor

    p = params or BenchParams()
    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="skinimg-bench-", dir=workdir) as tmp:
        path = Path(tmp) / "speed_phantom.jpg"
        make_speed_jpeg(path, p.speed_size, seed=p.seed)
        (Path(tmp) / "out").mkdir()
        if progress:
            progress("speed: per-stage timings")
        with ProcessPoolExecutor(max_workers=1, mp_context=ctx, initializer=_worker_init) as ex:
            res = ex.submit(_speed_child, str(path), method, p.speed_repeat, str(Path(tmp) / "out")).result()
        copies = []
        for k in range(p.speed_images):
            c = Path(tmp) / f"copy_{k}.jpg"
            shutil.copyfile(path, c)
            copies.append((str(c), method))
        thr = {}
        for nw in p.speed_workers:
            if progress:
                progress(f"speed: throughput with {nw} worker(s)")
            with ProcessPoolExecutor(max_workers=nw, mp_context=ctx, initializer=_worker_init) as ex:
                list(ex.map(_warm, range(nw)))
                t0 = time.perf_counter()
                list(ex.map(_throughput_job, copies, chunksize=1))
                thr[str(nw)] = len(copies) / (time.perf_counter() - t0)
    dec = res["baseline_cv2_decode"]
    base = {"cv2_decode": dec, "skimage_rgb2lab": res["baseline_rgb2lab"]}
    ratios = {k: v / dec for k, v in {**res["stages"], **base}.items()}
    peak = res["peak_rss_above_start_bytes"]
    h, w = res["shape"][:2]
    return {
        "status": "ok",
        "shape": res["shape"],
        "megapixels": h * w / 1e6,
        "segment_method": res["segment_method"],
        "calibration": res["calibration"],
        "skin_fraction": res["skin_fraction"],
        "stages": res["stages"],
        "baselines": base,
        "ratios": ratios,
        "throughput": thr,
        "peak_rss_bytes": peak,
        "peak_rss_x_decoded": (peak / res["decoded_bytes"]) if peak else None,
        "decoded_bytes": res["decoded_bytes"],
        "repeat": p.speed_repeat,
        "cpu_count": os.cpu_count(),
    }

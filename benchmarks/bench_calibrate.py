"""Speed of chart detection and correction on a 12-megapixel photo (``skinimg.calibrate``).

A 4000x3000 photo is built from a textured background and a ColorChecker (reference colours
under a warm cast, exposure 0.8) warped into it with a perspective; the chart covers about a
fifth of the width (patches about 110 px).  Times (median of ``--repeat`` runs) are printed as a
table with the accuracy reached:

    python benchmarks/bench_calibrate.py [--repeat 3] [--size 4000x3000]
"""

from __future__ import annotations

import argparse
import statistics
import time

import cv2
import numpy as np

from skinimg.calibrate import (
    apply_correction,
    calibrate_image,
    chart_correction,
    detect_chart,
    reference_chart,
)
from skinimg.color import linear_to_srgb


def make_photo(width: int, height: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    # textured background at low resolution, upsampled (cheap and smooth)
    bg = cv2.resize(rng.uniform(0.05, 0.5, (height // 16, width // 16, 3)).astype(np.float32), (width, height),
                    interpolation=cv2.INTER_CUBIC)
    # a chart raster: pitch 100 px, patch 87 px, 30 px frame
    _, ref = reference_chart()
    p, s, m = 100, 87, 30
    chart = np.full((4 * p + 2 * m, 6 * p + 2 * m, 3), 0.03, np.float32)
    for k in range(24):
        r, c = divmod(k, 6)
        y0, x0 = m + r * p + (p - s) // 2, m + c * p + (p - s) // 2
        chart[y0 : y0 + s, x0 : x0 + s] = np.clip(ref[k], 0, 1)
    ch, cw = chart.shape[:2]
    src = np.float32([[0, 0], [cw, 0], [cw, ch], [0, ch]])
    x0, y0, w = 0.6 * width, 0.55 * height, 0.22 * width
    hgt = w * ch / cw
    dst = np.float32([[x0, y0], [x0 + w, y0 + 0.03 * hgt], [x0 + 0.98 * w, y0 + 1.02 * hgt], [x0 - 0.02 * w, y0 + hgt]])
    hmat = cv2.getPerspectiveTransform(src, dst)
    warped = cv2.warpPerspective(chart, hmat, (width, height), flags=cv2.INTER_LINEAR)
    alpha = cv2.warpPerspective(np.ones((ch, cw), np.float32), hmat, (width, height), flags=cv2.INTER_LINEAR)
    lin = bg * (1 - alpha[..., None]) + warped * alpha[..., None]
    lin *= np.float32([1.3, 1.0, 0.55]) * np.float32(0.8)
    lin += rng.normal(0, 0.004, lin.shape).astype(np.float32)
    img = np.empty((height, width, 3), np.uint8)
    for y in range(0, height, 500):  # encode in strips (memory)
        img[y : y + 500] = np.rint(linear_to_srgb(np.clip(lin[y : y + 500], 0, 1)) * 255).astype(np.uint8)
    return img, bg


def timed(fn, repeat: int):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--size", default="4000x3000")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    img, bg = make_photo(w, h)
    nochart = np.rint(linear_to_srgb(np.clip(bg[: h, : w], 0, 1)) * 255).astype(np.uint8)
    del bg
    t_det, det = timed(lambda: detect_chart(img), args.repeat)
    assert det.found, det.reason
    corr = chart_correction(det)
    t_apply8, _ = timed(lambda: apply_correction(img, corr), args.repeat)
    img16 = img.astype(np.uint16) * 257
    t_apply16, _ = timed(lambda: apply_correction(img16, corr), max(1, args.repeat // 2))
    del img16
    t_all, _ = timed(lambda: calibrate_image(img), args.repeat)
    t_none, (_, fb) = timed(lambda: calibrate_image(nochart), args.repeat)
    mp = w * h / 1e6
    print(f"calibrate benchmark: {w}x{h} ({mp:.1f} MP), median of {args.repeat}")
    print(f"{'step':<44}{'seconds':>10}")
    print(f"{'detect_chart (chart found)':<44}{t_det:>10.3f}")
    print(f"{'apply_correction uint8 (root-polynomial 2)':<44}{t_apply8:>10.3f}")
    print(f"{'apply_correction uint16':<44}{t_apply16:>10.3f}")
    print(f"{'calibrate_image (detect + fit + apply)':<44}{t_all:>10.3f}")
    print(f"{'calibrate_image, no chart (-> ' + fb.kind + ')':<44}{t_none:>10.3f}")
    print(f"chart: {det.n_detected} of 24 patches seen, CIEDE2000 mean {corr.delta_e_before['mean']:.2f} -> "
          f"{corr.delta_e_after['mean']:.2f}, max {corr.delta_e_before['max']:.2f} -> {corr.delta_e_after['max']:.2f}")


if __name__ == "__main__":
    main()

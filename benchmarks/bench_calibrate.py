"""Chart calibration: speed on a 12 MP photo, detection at any angle, false charts, and fit errors (issue 24).

Four tables, each with its baseline measured in the same run:

1. **speed** of detection, fitting and applying on a 4000x3000 photo (a chart under a warm cast, in perspective);
2. **detection** on rendered photos (:func:`skinimg.phantom.render_chart_photo`: rotation 0-360 degrees, tilt
   0-50 degrees, patches 30-150 px, clutter, 40 % with a shadow across the chart, sRGB / tinted gamma / filmic
   tone curves, JPEG): found and right way round, by tilt, rotation and patch size, and corner errors;
   then **false charts** on chart-free photos (the sample images, phantoms, rendered clutter, other 4x6 colour
   grids);
3. **fit errors** on rendered chart photos with a tinted gamma (1.6-2.6 per channel, black level 3-8 %) or a
   tinted filmic curve and a printed chart (CIELAB errors, sigma 1 per component), and on genuine charts with
   the sRGB curve: CIEDE2000 before, in-sample and leave-one-patch-out (plain means over the used patches), skin
   patches 1-2 separately, for the fit before issue 24 (the root-polynomial always applied: the baseline) and
   for the per-photo choice (``method="auto"``, with its safeguard and warning);
4. the real **CC0 photo** (tests/data/colorchecker_cc0_640.jpg) and the BSD-licensed one, same columns.

    python benchmarks/bench_calibrate.py [--detection 100] [--false 60] [--fit 40] [--no-speed]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from skinimg.calibrate import (CalibrationParams, apply_correction, calibrate_image, chart_correction, detect_chart,
                               reference_chart)
from skinimg.calibrate.select import NEUTRAL_PATCHES, SKIN_PATCHES, evaluate_model
from skinimg.color import delta_e_2000, linear_rgb_to_lab, linear_to_srgb
from skinimg.io import load_image
from skinimg.phantom import CLUTTER_KINDS, PhantomSpec, render_chart_photo, render_clutter_photo, render_phantom

ROOT = Path(__file__).resolve().parents[1]


def make_photo(width: int, height: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A 12 MP photo: textured background and a chart (warm cast, exposure 0.8) warped in with a perspective."""
    rng = np.random.default_rng(seed)
    bg = cv2.resize(rng.uniform(0.05, 0.5, (height // 16, width // 16, 3)).astype(np.float32), (width, height),
                    interpolation=cv2.INTER_CUBIC)
    _, ref = reference_chart()
    p, s, m = 100, 87, 30
    chart = np.full((4 * p + 2 * m, 6 * p + 2 * m, 3), 0.03, np.float32)
    for k in range(24):
        r, c = divmod(k, 6)
        y0, x0 = m + r * p + (p - s) // 2, m + c * p + (p - s) // 2
        chart[y0:y0 + s, x0:x0 + s] = np.clip(ref[k], 0, 1)
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
        img[y:y + 500] = np.rint(linear_to_srgb(np.clip(lin[y:y + 500], 0, 1)) * 255).astype(np.uint8)
    return img, bg


def timed(fn, repeat: int):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def speed(repeat: int, size: str) -> None:
    w, h = (int(v) for v in size.lower().split("x"))
    img, bg = make_photo(w, h)
    nochart = np.rint(linear_to_srgb(np.clip(bg, 0, 1)) * 255).astype(np.uint8)
    del bg
    t_det, det = timed(lambda: detect_chart(img), repeat)
    assert det.found, det.reason
    t_fit, corr = timed(lambda: chart_correction(det), repeat)
    t_fit_rp, corr_rp = timed(lambda: chart_correction(det, params=CalibrationParams(method="finlayson2015")), repeat)
    t_apply8, _ = timed(lambda: apply_correction(img, corr), repeat)
    t_all, _ = timed(lambda: calibrate_image(img), repeat)
    t_none, (_, fb) = timed(lambda: calibrate_image(nochart), repeat)
    print(f"## speed: {w}x{h} ({w * h / 1e6:.1f} MP), median of {repeat}\n")
    print(f"| step | seconds |\n|---|---:|")
    print(f"| detect_chart (chart found) | {t_det:.3f} |")
    print(f"| chart_correction, finlayson2015 with its leave-one-out (baseline model) | {t_fit_rp:.3f} |")
    print(f"| chart_correction, auto (6 models, each with 24 leave-one-out refits) | {t_fit:.3f} |")
    print(f"| apply_correction uint8 ({corr.method}) | {t_apply8:.3f} |")
    print(f"| calibrate_image (detect + fit + apply) | {t_all:.3f} |")
    print(f"| calibrate_image, no chart (-> {fb.kind}) | {t_none:.3f} |\n")


def _row(label, rs):
    n = len(rs)
    ok = [r for r in rs if r["right"]]
    ce = [r["corner"] for r in ok]
    rel = [100 * r["corner"] / r["pitch"] for r in ok]
    wrong = sum(r["found"] and not r["right"] for r in rs)
    return (f"| {label} | {n} | {100 * len(ok) / n:.1f} | {wrong} | {np.median(ce) if ce else float('nan'):.2f} | "
            f"{np.percentile(ce, 95) if ce else float('nan'):.2f} | {max(rel) if rel else float('nan'):.1f} |")


def detection(n: int, seed: int) -> None:
    rows = []
    t0 = time.perf_counter()
    for i in range(n):
        shot = render_chart_photo([seed, i], other_chart=(i % 10 == 9))
        t = time.perf_counter()
        det = detect_chart(shot.image)
        dt = time.perf_counter() - t
        m = shot.meta
        right = bool(det.found and np.abs(det.patch_centres - shot.centres).max() < 0.3 * m["pitch"])
        corner = float(np.hypot(*(det.corners - shot.corners).T).max()) if right else float("nan")
        rows.append(dict(found=det.found, right=right, corner=corner, pitch=m["pitch"], tilt=m["tilt"], rot=m["rot"],
                         size=m["size_px"], shaded=m["shaded"], curve=m["tone"]["curve"], secs=dt))
    print(f"## detection: {n} rendered photos (seed {seed}), {time.perf_counter() - t0:.0f} s, "
          f"detection {np.mean([r['secs'] for r in rows]):.2f} s per photo\n")
    print("| photos | n | found, right way round % | wrong place or orientation | corner error median px | "
          "p95 px | max % of pitch |\n|---|---:|---:|---:|---:|---:|---:|")
    print(_row("all", rows))
    for lo in range(0, 50, 10):
        print(_row(f"tilt {lo}-{lo + 10} deg", [r for r in rows if lo <= r["tilt"] < lo + 10]))
    for lo in range(0, 360, 90):
        print(_row(f"rotation {lo}-{lo + 90} deg", [r for r in rows if lo <= r["rot"] < lo + 90]))
    for lo, hi in ((30, 50), (50, 75), (75, 100), (100, 125), (125, 151)):
        print(_row(f"patch {lo}-{hi} px", [r for r in rows if lo <= r["size"] < hi]))
    print(_row("shadow across the chart", [r for r in rows if r["shaded"]]))
    for c in ("srgb", "gamma", "filmic"):
        print(_row(f"tone curve {c}", [r for r in rows if r["curve"] == c]))
    print()


def false_charts(n: int, seed: int) -> None:
    sets = {"sample images": [load_image(p)[0] for p in sorted((ROOT / "sample_images").rglob("*.jpg"))
                              if "chart" not in p.parts]}
    sets["phantoms without a chart"] = (render_phantom(PhantomSpec(seed=s, size=(720, 960), site=("face", "forearm")[s % 2]))
                                        .image for s in range(max(1, n // 3)))
    sets["rendered clutter"] = (render_clutter_photo([seed, i])[0] for i in range(n))
    sets["other 4x6 colour grids"] = (render_clutter_photo([seed + 1, i], kinds=["fakechart", CLUTTER_KINDS[i % 9]])[0]
                                      for i in range(max(1, n // 3)))
    print("## false charts on chart-free photos\n\n| photos | n | false charts |\n|---|---:|---:|")
    total = [0, 0]
    for name, imgs in sets.items():
        k = found = 0
        for img in imgs:
            k += 1
            found += detect_chart(img).found
        total[0] += k
        total[1] += found
        print(f"| {name} | {k} | {found} |")
    print(f"| all | {total[0]} | {total[1]} |\n")


class _Baseline:
    """The fit before issue 24, as a record like a Correction: ``finlayson2015`` (``linear3x3`` with fewer than 12
    usable patches) always applied, after the same two shortcuts (none / one gain within 1.5), with its own
    leave-one-patch-out errors; no tone curve, no safeguard, no choice."""

    def __init__(self, det, params=None):
        params = params or CalibrationParams()
        use = ~det.clipped
        idx = np.flatnonzero(use)
        m, r = det.patch_rgb[use], reference_chart()[1][use]
        neutral, skin = np.isin(idx, NEUTRAL_PATCHES), np.isin(idx, SKIN_PATCHES)
        w = np.ones(24)
        w[:2] = params.skin_weight
        before = delta_e_2000(linear_rgb_to_lab(np.clip(m, 0, 1).astype(np.float32)),
                              linear_rgb_to_lab(r.astype(np.float32))).astype(np.float64)
        gain = evaluate_model("gain", m, r, neutral=neutral)
        if before.mean() <= params.keep_below:
            self.method, ins, loo = "none", before, before
        elif gain[1].mean() <= params.keep_below:
            self.method, ins, loo = "gain", gain[1], gain[2]
        else:
            self.method = "finlayson2015" if use.sum() >= 12 else "linear3x3"
            _, ins, loo = evaluate_model(self.method, m, r, neutral=neutral, weights=w[use])
        self.patches_used = list(idx + 1)
        self.delta_e_before = {"mean": float(before.mean()), "max": float(before.max())}
        self.delta_e_after = {"mean": float(ins.mean()), "max": float(ins.max())}
        self.delta_e_loo = {"mean": float(loo.mean()), "max": float(loo.max())}
        mean = (lambda v: float(v[skin].mean()) if skin.any() else None)
        self.skin_delta_e = {"before": mean(before), "after": mean(ins), "loo": mean(loo)}
        self.warning = None


def _fit_row(label, corrs):
    def col(f):
        v = [f(c) for c in corrs]
        v = [x for x in v if x is not None]
        return np.mean(v) if v else float("nan")

    worse = sum((c.skin_delta_e["loo"] or 0) > (c.skin_delta_e["before"] or 0) for c in corrs)
    return (f"| {label} | {len(corrs)} | {col(lambda c: c.delta_e_before['mean']):.2f} | "
            f"{col(lambda c: c.delta_e_after['mean']):.2f} | {col(lambda c: c.delta_e_loo['mean']):.2f} | "
            f"{np.percentile([c.delta_e_loo['mean'] for c in corrs], 90):.2f} | {col(lambda c: c.delta_e_loo['max']):.2f} | "
            f"{col(lambda c: c.skin_delta_e['before']):.2f} | {col(lambda c: c.skin_delta_e['after']):.2f} | "
            f"{col(lambda c: c.skin_delta_e['loo']):.2f} | {worse} | {sum(c.warning is not None for c in corrs)} |")


_FIT_HEAD = ("| set, model | photos | before | in-sample | LOO mean | LOO mean p90 | LOO max | skin before | skin in-sample "
             "| skin LOO | skin LOO worse than before | warnings |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")


def fit_errors(n: int, seed: int) -> None:
    print(f"## fit errors (CIEDE2000, plain means over the used patches; {n} photos per set)\n")
    print(_FIT_HEAD)
    auto = CalibrationParams()
    for k, (name, curve, sigma) in enumerate((("printed chart, tinted gamma", "gamma", 1.0),
                                              ("printed chart, tinted filmic", "filmic", 1.0),
                                              ("genuine chart, sRGB", "srgb", 0.0))):
        a, b, models, missed = [], [], {}, 0
        for i in range(n):
            shot = render_chart_photo([seed, k, i], curve=curve, print_sigma=sigma, shaded=False, gradient=0.1)
            det = detect_chart(shot.image)
            if not det.found:
                missed += 1
                continue
            b.append(_Baseline(det))
            a.append(chart_correction(det, params=auto))
            models[a[-1].method] = models.get(a[-1].method, 0) + 1
        print(_fit_row(f"{name}: before issue 24 ({', '.join(sorted(set(c.method for c in b)))})", b))
        print(_fit_row(f"{name}: auto ({', '.join(f'{m} {v}' for m, v in sorted(models.items()))})", a)
              + (f" {missed} not found" if missed else ""))
    print()


def real_photos() -> None:
    print("## real photos\n")
    print(_FIT_HEAD)
    for name in ("colorchecker_cc0_640.jpg", "colorchecker_ccd_img1967.png"):
        rgb, _ = load_image(ROOT / "tests" / "data" / name)
        det = detect_chart(rgb)
        for label, c in (("before issue 24", _Baseline(det)), ("auto", chart_correction(det))):
            print(_fit_row(f"{name}: {label} -> {c.method}, {len(c.patches_used)} patches", [c]))
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--size", default="4000x3000")
    ap.add_argument("--detection", type=int, default=100, help="rendered chart photos for the detection table")
    ap.add_argument("--false", dest="false_n", type=int, default=60, help="rendered chart-free clutter photos")
    ap.add_argument("--fit", type=int, default=40, help="rendered chart photos per fit set")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--no-speed", action="store_true")
    args = ap.parse_args()
    if not args.no_speed:
        speed(args.repeat, args.size)
    if args.detection:
        detection(args.detection, args.seed)
    if args.false_n:
        false_charts(args.false_n, args.seed)
    if args.fit:
        fit_errors(args.fit, args.seed)
    real_photos()


if __name__ == "__main__":
    main()

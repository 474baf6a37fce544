"""Accuracy of the redness / pigmentation indices against phantom ground truth.

    .venv/bin/python benchmarks/chromophore_accuracy.py [--size 240x320]

1. Tone grid: 6 melanin levels (0.01-0.45, ITA about +64 to -50 degrees) x 6 haemoglobin
   levels (0.002-0.1), one face phantom each (default scene: shading, highlights,
   texture, spots, red patches, sensor noise), measured on the true skin mask.
   Spearman rank correlation of each per-image mean with the true per-image mean
   concentration, and cross-talk = mean spread across melanin at fixed haemoglobin /
   mean spread across haemoglobin at fixed melanin (0 = none).
2. Exposure: the same skin rendered with exposure 0.8 and 1.25: relative change of
   the per-image means; "Hb held" keeps the chromophore branch chosen at exposure 1
   (what compare/track do for photos of the same skin, indices.choose_shared_branch),
   "Hb" chooses it per photo.  Over 9 tones x 4 haemoglobin levels.
3. Where the "Hb held" residual comes from: the same exposure pairs measured on the
   phantom's float linear image encoded to float sRGB (no 8-bit quantisation, no noise),
   and the spread of haemoglobin over 6 retakes that differ only in their sensor noise
   (same exposure, ``noise_seed`` 1-6): the floor below which an exposure test cannot
   resolve a change.
4. With a colour chart in the photo (480x640, ``chart=True``) and ``calibrate_image(mode="chart")``
   before the indices: the per-photo branch choice (no branch held) at exposure x0.8 and x1.25.
   An exposure-only chart difference is corrected by one achromatic gain, which makes brightness
   absolute and so settles which chromaticity twin the skin is.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import numpy as np
from scipy.stats import spearmanr

from skinimg import color as colour
from skinimg.calibrate import calibrate_image
from skinimg import indices as I
from skinimg.phantom import PhantomSpec, render_phantom

M = (0.01, 0.08, 0.16, 0.25, 0.35, 0.45)
H = (0.002, 0.01, 0.02, 0.04, 0.07, 0.1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="240x320")
    a = ap.parse_args(argv)
    size = tuple(int(v) for v in a.size.split("x"))
    basis = I.IndexParams()
    ica = I.IndexParams(chromophore_method="ica")
    truth_m, truth_h, rows_b, rows_i = [], [], [], []
    for i, m in enumerate(M):
        for j, h in enumerate(H):
            ph = render_phantom(PhantomSpec(melanin=m, hemoglobin=h, seed=i * 6 + j, size=size))
            truth_m.append(float(np.nanmean(ph.melanin)))
            truth_h.append(float(np.nanmean(ph.hemoglobin)))
            rows_b.append(I.measure(ph.image, ph.mask, params=basis, return_maps=False)[0])
            rows_i.append(I.measure(ph.image, ph.mask, params=ica, return_maps=False)[0])

    def xt(vals):
        x = np.asarray(vals).reshape(6, 6)
        return float(np.mean(np.ptp(x, axis=0)) / np.mean(np.ptp(x, axis=1)))

    print(f"Tone grid, {len(M)}x{len(H)} phantoms at {size[0]}x{size[1]}")
    print(f"{'per-image value':<40}{'rho vs true Hb':>15}{'rho vs true mel':>16}{'cross-talk':>12}")
    for label, rows, key in (
        ("hemoglobin (basis, default)", rows_b, "hemoglobin"),
        ("hemoglobin_median (basis)", rows_b, "hemoglobin_median"),
        ("hemoglobin (ica)", rows_i, "hemoglobin"),
        ("erythema_index", rows_b, "erythema_index"),
        ("a_star", rows_b, "a_star"),
        ("melanin (basis, default)", rows_b, "melanin"),
        ("melanin (ica)", rows_i, "melanin"),
        ("melanin_index", rows_b, "melanin_index"),
        ("ita_deg", rows_b, "ita_deg"),
    ):
        v = [r[key] for r in rows]
        print(f"{label:<40}{spearmanr(v, truth_h)[0]:>15.3f}{spearmanr(v, truth_m)[0]:>16.3f}{xt(v):>12.2f}")
    used = sorted({r["chromophore_method"] for r in rows_i})
    print("ica methods used:", "; ".join(used))

    print("\nExposure gain (relative change of the per-image mean, %)")
    print(f"{'melanin':>8}{'Hb':>7}{'gain':>6}{'EI':>9}{'Hb':>9}{'Hb held':>9}{'mel':>9}{'MI':>9}")
    worst: dict = {}
    for m in (0.01, 0.03, 0.08, 0.15, 0.2, 0.25, 0.3, 0.4, 0.45):
        for k, h in enumerate((0.005, 0.015, 0.03, 0.06)):
            rows = {}
            seed = 5 + k
            for g in (1.0, 0.8, 1.25):
                ph = render_phantom(PhantomSpec(melanin=m, hemoglobin=h, seed=seed, size=size, exposure=g))
                rows[g] = I.measure(ph.image, ph.mask, return_maps=False)[0]
                if g == 1.0:
                    held = I.IndexParams(branch=rows[g]["chromophore_method"].split("(")[-1].split()[0])
                else:
                    rows[("held", g)] = I.measure(ph.image, ph.mask, params=held, return_maps=False)[0]
            for g in (0.8, 1.25):
                ch = [100 * (rows[g][key] / rows[1.0][key] - 1) for key in ("erythema_index", "hemoglobin")]
                ch.append(100 * (rows[("held", g)]["hemoglobin"] / rows[1.0]["hemoglobin"] - 1))
                ch += [100 * (rows[g][key] / rows[1.0][key] - 1) for key in ("melanin", "melanin_index")]
                print(f"{m:>8.2f}{h:>7.3f}{g:>6.2f}" + "".join(f"{c:>+9.2f}" for c in ch))
                band = "light-tan (melanin <= 0.2)" if m <= 0.2 else "brown-dark (melanin >= 0.25)"
                w = worst.setdefault(band, [0.0, 0.0, 0.0, 0])
                w[0] = max(w[0], abs(ch[0]))
                w[1] = max(w[1], abs(ch[1]))
                w[2] = max(w[2], abs(ch[2]))
                w[3] += abs(ch[1]) > 5
    print("\nworst |change| %            EI   Hb (per photo)   Hb (held)   per-photo flips > 5 %")
    for band, (e, hb, hh, n) in worst.items():
        print(f"{band:<28}{e:>6.2f}{hb:>17.2f}{hh:>12.2f}{n:>10d}")

    print("\nHb held, float input (linear image encoded to float sRGB: no quantisation, no noise): worst |change| %")
    for band, ms in (("light-tan (melanin <= 0.2)", (0.01, 0.08, 0.2)), ("brown-dark (melanin >= 0.25)", (0.3, 0.45))):
        worst_f = 0.0
        for m in ms:
            for k, h in enumerate((0.005, 0.015, 0.03, 0.06)):
                vals = {}
                for g in (1.0, 0.8, 1.25):
                    ph = render_phantom(PhantomSpec(melanin=m, hemoglobin=h, seed=5 + k, size=size, exposure=g))
                    rgb = colour.linear_to_srgb(np.clip(ph.linear, 0, 1)).astype(np.float32)
                    if g == 1.0:
                        held = I.IndexParams(branch=I.measure(rgb, ph.mask, return_maps=False)[0]
                                             ["chromophore_method"].split("(")[-1].split()[0])
                    vals[g] = I.measure(rgb, ph.mask, params=held, return_maps=False)[0]["hemoglobin"]
                worst_f = max(worst_f, *(abs(100 * (vals[g] / vals[1.0] - 1)) for g in (0.8, 1.25)))
        print(f"{band:<28}{worst_f:>8.3f}")

    print("\nNoise-only retakes (same exposure, noise_seed 1-6), Hb on the branch of the first: spread %")
    print(f"{'melanin':>8}{'Hb':>7}{'sd %':>8}{'range %':>9}")
    for m, h in ((0.08, 0.03), (0.25, 0.03), (0.45, 0.015), (0.45, 0.06)):
        base = PhantomSpec(melanin=m, hemoglobin=h, seed=8, size=size)
        v, held = [], None
        for s in range(1, 7):
            ph = render_phantom(dataclasses.replace(base, noise_seed=s))
            if held is None:
                held = I.IndexParams(branch=I.measure(ph.image, ph.mask, return_maps=False)[0]
                                     ["chromophore_method"].split("(")[-1].split()[0])
            v.append(I.measure(ph.image, ph.mask, params=held, return_maps=False)[0]["hemoglobin"])
        v = np.asarray(v)
        print(f"{m:>8.2f}{h:>7.3f}{100 * v.std(ddof=1) / v.mean():>8.2f}{100 * np.ptp(v) / v.mean():>9.2f}")

    print("\nWith a chart and calibrate_image(mode='chart'), branch chosen per photo: worst |change| % of haemoglobin")
    print(f"{'band':<30}{'Hb':>8}{'> 1 %':>7}{'swaps':>7}{'calibration methods':>24}")
    for band, ms in (("light-tan (melanin <= 0.2)", (0.01, 0.03, 0.08, 0.15, 0.2)),
                     ("brown-dark (melanin >= 0.25)", (0.25, 0.3, 0.4, 0.45))):
        worst_c, over, swaps, methods = 0.0, 0, 0, set()
        for m in ms:
            for k, h in enumerate((0.005, 0.015, 0.03, 0.06)):
                vals, branches = {}, set()
                for g in (1.0, 0.8, 1.25):
                    ph = render_phantom(PhantomSpec(melanin=m, hemoglobin=h, seed=5 + k, size=(480, 640), exposure=g,
                                                    chart=True))
                    cal, corr = calibrate_image(ph.image, mode="chart")
                    methods.add(corr.method)
                    row = I.measure(cal, ph.mask, return_maps=False)[0]
                    vals[g] = row["hemoglobin"]
                    branches.add(row["chromophore_method"])
                ch = max(abs(100 * (vals[g] / vals[1.0] - 1)) for g in (0.8, 1.25))
                worst_c = max(worst_c, ch)
                over += ch > 1
                swaps += len(branches) > 1
        print(f"{band:<30}{worst_c:>8.2f}{over:>7d}{swaps:>7d}{', '.join(sorted(methods)):>24}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

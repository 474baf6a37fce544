"""Accuracy of the redness / pigmentation indices against phantom ground truth.

    .venv/bin/python benchmarks/chromophore_accuracy.py [--part ensemble|bound|lesions|exposure|phantom|all]
        [--size 240x320] [--jpeg 90] [--members all|held_out|NAME,...] [--json rows.json]

Part ``ensemble`` (the held-out table of docs/indices.md): phantoms of every member of the ensemble
of optical models (:mod:`skinimg.phantom.ensemble`; fit members, held-out members, the stress member)
on 6 tones (ITA 60, 48, 35, 20, -10, -45) x 3 blood levels (0.5, 1, 2 x the member's typical blood),
8-bit JPEG (``--jpeg``), scored by :func:`skinimg.train.chromo_eval.evaluate_member`: the reading of a
-20 % blood change and of a -20 % melanin change (central model, shared twin branch), whether the
model range of the fit members covers -20 %, Spearman with the true blood / melanin, the cross-talk
(Spearman of haemoglobin with the true melanin, beside the truth's own), the change under a pure
exposure of x0.8 / x1.25; the same for the previous default (the phantom model alone, built in this
run) as the baseline; then parts ``bound`` and ``lesions``.

Part ``bound`` (a minute): the best worst-case reading of a -20 % blood change that *any* smooth index of
chromaticity can reach on the held-out members and on all 13 plausible members, per tone
(:func:`skinimg.train.chromo_bound.best_reading`), beside the central model's reading of the same colours,
and each member's ``d ln(OD_blood) / d ln(blood)``.

Part ``lesions``: red papules and pigmented macules of every held-out member rendered into the astronaut
photograph, 5 draws of 8 papules + up to 8 macules each (:func:`skinimg.train.chromo_eval.lesion_summary`).

Part ``exposure`` (about 20 minutes): pure exposure x0.8 / x1.25 on 480 x 640 JPEG (``--jpeg``) phantoms of
every member x 6 tones x 3 scenes (branch shared by the pair), largest change of the per-image haemoglobin,
beside the same pair without JPEG and a retake that differs only in sensor noise (the floor).

Part ``phantom`` (sections 1-4 below) on skinimg's own phantoms:

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
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from skinimg import color as colour
from skinimg.calibrate import calibrate_image
from skinimg import indices as I
from skinimg.phantom import PhantomSpec, render_phantom

M = (0.01, 0.08, 0.16, 0.25, 0.35, 0.45)
H = (0.002, 0.01, 0.02, 0.04, 0.07, 0.1)


def phantom_part(size) -> None:
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


def _baseline_params(tmp: Path) -> I.IndexParams:
    """The previous default: the phantom optical model alone (skinimg.phantom.optics), built in this run."""
    import json

    from skinimg.phantom import skin_linear_rgb
    from skinimg.train.basis import build_chromophore_model

    model = build_chromophore_model(lambda a, b: skin_linear_rgb(a, b, "D65"), melanin_max=0.6, hemoglobin_max=0.3)
    base = I.load_basis()
    path = tmp / "phantom_model_basis.json"
    path.write_text(json.dumps(dataclasses.replace(base, model=model).to_dict()))
    return I.IndexParams(basis_path=str(path))


def _rng(v) -> str:
    return f"{min(v):+6.1f}..{max(v):<+6.1f}" if v else "      --      "


def ensemble_part(size, jpeg, members, json_out=None) -> None:
    import json
    import tempfile

    from skinimg.phantom.ensemble import FIT_MEMBERS, HELD_OUT_MEMBERS, MEMBERS, STRESS_MEMBERS
    from skinimg.train.chromo_eval import TONES, evaluate_member, summarize_member

    names = {"all": FIT_MEMBERS + HELD_OUT_MEMBERS + STRESS_MEMBERS, "held_out": HELD_OUT_MEMBERS}.get(
        members, tuple(members.split(",")))
    with tempfile.TemporaryDirectory() as tmp:
        baseline = _baseline_params(Path(tmp))
        summaries, base_sums, rows_all = [], [], []
        for name in names:
            rows = evaluate_member(name, size=size, jpeg_quality=jpeg)
            rows_all += rows
            summaries.append(summarize_member(rows))
            base_sums.append(summarize_member(evaluate_member(name, size=size, jpeg_quality=jpeg, with_range=False,
                                                              params=baseline)))
            print(f"  {name} done", file=sys.stderr, flush=True)
    if json_out:
        Path(json_out).write_text(json.dumps(rows_all))
    tones = list(TONES)
    head = f"{'member':<14}{'role':<9}" + "".join(f"{t:>16}" for t in tones)
    for title, sums, key in (
        ("Reading of a -20 % blood change, central model (min..max over 3 blood levels), %", summaries, "hemoglobin"),
        ("  baseline: the previous default (phantom model alone)", base_sums, "hemoglobin"),
        ("Erythema index change for the same -20 % blood change, %", summaries, "erythema_index"),
        ("Reading of a -20 % melanin change, central model, %", summaries, "melanin"),
        ("  baseline: the previous default", base_sums, "melanin"),
        ("Exposure x0.8 / x1.25, largest |change| of haemoglobin (shared branch), %", summaries, "exposure"),
    ):
        print(f"\n{title} ({size[0]}x{size[1]}, JPEG {jpeg})\n{head}")
        for s in sums:
            line = f"{s['member']:<14}{s['role']:<9}"
            for t in tones:
                v = s["tones"][t].get(key)
                line += f"{('   max ' + format(max(v), '5.2f')) if key == 'exposure' else _rng(v):>16}"
            print(line)
    print("\nModel range of the fit members: share of cells where [min, max] holds the true -20 % (+-1)")
    print(f"{'member':<14}{'role':<9}{'haemoglobin':>12}{'melanin':>10}   per tone (haemoglobin range, min..max of lo / hi)")
    for s in summaries:
        per = "  ".join(f"{t[:5]} {min(lo for lo, _ in s['tones'][t]['hemoglobin_range']):+.0f}/"
                        f"{max(hi for _, hi in s['tones'][t]['hemoglobin_range']):+.0f}"
                        if s["tones"][t].get("hemoglobin_range") else f"{t[:5]} none" for t in tones)
        print(f"{s['member']:<14}{s['role']:<9}{100 * s['coverage']['hemoglobin']:>11.0f}%"
              f"{100 * s['coverage']['melanin']:>9.0f}%   {per}")
    print("\nRank correlations over the 18 cells (Spearman): haemoglobin with true blood, with true melanin (cross-talk;"
          " the truth's own in brackets), melanin with true melanin")
    for s, b in zip(summaries, base_sums):
        print(f"{s['member']:<14}{s['role']:<9} blood {s['spearman_blood']:5.2f} (baseline {b['spearman_blood']:5.2f})"
              f"  cross-talk {s['crosstalk']:+5.2f} (baseline {b['crosstalk']:+5.2f}; truth {s['truth_crosstalk']:+5.2f})"
              f"  melanin {s['spearman_melanin']:5.2f}")


def bound_part() -> None:
    from skinimg.phantom.ensemble import FIT_MEMBERS, HELD_OUT_MEMBERS, MEMBERS
    from skinimg.train.chromo_bound import best_reading, blood_exponent, central_readings
    from skinimg.train.chromo_eval import TONES
    from skinimg.train.ensemble import tone_melanin

    print("\nHow the blood part of optical density grows with blood, p = d ln(OD_G(b) - OD_G(0)) / d ln b "
          "(typical blood; 0.5 = square root, 1 = Beer-Lambert)")
    print(f"{'member':<14}{'family':<11}" + "".join(f"{t:>13}" for t in TONES))
    for name, m in MEMBERS.items():
        print(f"{name:<14}{m.family:<11}" + "".join(f"{blood_exponent(m, tone_melanin(m, ita), m.typical_blood):>13.2f}"
                                                    for ita in TONES.values()))
    for title, names in (("held-out members", HELD_OUT_MEMBERS), ("all 13 plausible members", FIT_MEMBERS + HELD_OUT_MEMBERS)):
        print(f"\nBest worst-case reading of a -20 % blood change by ANY smooth index of chromaticity, {title}; "
              "the colour of mc_j13's skin (typical blood) at each tone; the central model reads the same colours")
        print(f"{'tone':<14}{'best possible':>16}{'step ratio':>12}{'central':>16}   members outside the colour")
        for tone, ita in TONES.items():
            b = best_reading(names, ita)
            if len(b["readings"]) < 3:  # two members are always read exactly by some index
                print(f"{tone:<14}{'--':>16}{'':>12}{'':>16}   {', '.join(b['outside'])} (too few members share it)")
                continue
            reads = list(central_readings(b["states"]).values())
            print(f"{tone:<14}{b['lo']:>+8.1f}..{b['hi']:<+6.1f}{b['step_ratio']:>12.2f}{min(reads):>+8.1f}..{max(reads):<+6.1f}"
                  f"   {', '.join(b['outside']) or '-'}")


def lesions_part() -> None:
    from skinimg.phantom.ensemble import HELD_OUT_MEMBERS
    from skinimg.train.chromo_eval import lesion_summary

    print("\nLesions on the astronaut photograph (public domain), JPEG 90, 5 draws of 8 papules + up to 8 macules: share "
          "rising inside / median contrast (IQR of the skin around)")
    for member in HELD_OUT_MEMBERS:
        for kind, d in lesion_summary(member).items():
            print(f"  {member:<11}{kind:<8}" + "  ".join(f"{k} {v['rises']:.0%}/{v['median_contrast']:+.2f}"
                                                         for k, v in d.items()))


def exposure_part(jpeg, seeds=(7, 8, 9)) -> None:
    from skinimg.phantom.ensemble import MEMBERS
    from skinimg.train.chromo_eval import TONES
    from skinimg.train.ensemble import tone_melanin

    def change(a, b):
        branch = I.choose_shared_branch([(a.image, a.mask), (b.image, b.mask)])
        p = I.IndexParams(branch=branch)
        ra = I.measure(a.image, a.mask, params=p, return_maps=False)[0]
        rb = I.measure(b.image, b.mask, params=p, return_maps=False)[0]
        return abs(100.0 * (rb["hemoglobin"] / ra["hemoglobin"] - 1.0))

    print(f"\nExposure x0.8 / x1.25, 480 x 640, JPEG {jpeg}, branch shared: largest |change| of haemoglobin over "
          f"{len(seeds)} scenes, % (no JPEG; sensor-noise retake)")
    print(f"{'member':<14}" + "".join(f"{t:>22}" for t in TONES))
    for name, m in MEMBERS.items():
        line = f"{name:<14}"
        for ita in TONES.values():
            ex, raw, floor = [], [], []
            for seed in seeds:
                spec = PhantomSpec(melanin=tone_melanin(m, ita), hemoglobin=m.typical_blood, seed=seed, size=(480, 640),
                                   jpeg_quality=jpeg)
                a = render_phantom(spec, optics=m)
                ex += [change(a, render_phantom(dataclasses.replace(spec, exposure=g), optics=m)) for g in (0.8, 1.25)]
                a0 = render_phantom(dataclasses.replace(spec, jpeg_quality=None), optics=m)
                raw += [change(a0, render_phantom(dataclasses.replace(spec, exposure=g, jpeg_quality=None), optics=m))
                        for g in (0.8, 1.25)]
                floor.append(change(a, render_phantom(dataclasses.replace(spec, noise_seed=seed + 90), optics=m)))
            line += f"{max(ex):>8.2f} ({max(raw):4.2f}; {max(floor):4.2f})"
        print(line, flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=("ensemble", "bound", "lesions", "exposure", "phantom", "all"), default="ensemble")
    ap.add_argument("--size", default="240x320")
    ap.add_argument("--jpeg", type=int, default=90)
    ap.add_argument("--members", default="all")
    ap.add_argument("--json", default=None, help="also write the ensemble rows to this JSON file")
    a = ap.parse_args(argv)
    size = tuple(int(v) for v in a.size.split("x"))
    if a.part in ("ensemble", "all"):
        ensemble_part(size, a.jpeg, a.members, a.json)
    if a.part in ("ensemble", "bound", "all"):
        bound_part()
    if a.part in ("ensemble", "lesions", "all"):
        lesions_part()
    if a.part in ("exposure", "all"):
        exposure_part(a.jpeg)
    if a.part in ("phantom", "all"):
        phantom_part(size)
    return 0


if __name__ == "__main__":
    sys.exit(main())

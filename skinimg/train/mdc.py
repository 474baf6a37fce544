"""Deriving the default minimal detectable changes (``models/mdc.json``) from phantom retakes.

Reproducible: ``python benchmarks/derive_mdc.py`` (about 3 minutes on one core) rewrites
``models/mdc.json`` byte for byte from the same skinimg version.

Retakes: ``--n`` pairs (default 40) of photos of the *same* phantom skin (no true change),
each pair with its own person (seed), skin tone (melanin 0.02-0.16: very light to tan;
the phantoms' mean ITA, shading included, is 30 to -20 degrees), blood (0.01-0.04), site (face / forearm), background, spots
and red patches; the second shot has a new camera pose (shift +-25 px, rotation +-6
degrees, scale 0.94-1.06), exposure x0.8-1.2, shading strength x0.8-1.2 (:data:`SHADING`: how much the
borders darken, as when the light falls from a slightly different angle), new sensor noise and an independently drawn
JPEG quality (none, 95, 90 or 85).  Size 480 x 640.  Each pair goes through the full
comparison pipeline (:func:`skinimg.session.measure_pair`: registration, lighting
normalisation, joint mask, maps) with the phantoms' true skin masks (default), or with
``--masks segmenter`` skinimg's own segmentation.  The committed defaults use the true
masks: with the segmenter the MDCs came out 10-20 % *smaller* (hemoglobin 0.00063 vs
0.00078, erythema_index 0.33 vs 0.40), so the defaults are the conservative choice.

The retakes use the phantoms' own optical model (a fit member of the ensemble of optical models);
``--optics fit`` renders them with the 8 fit members in turn instead.  Measured 2026-12-03: the brightness-based
MDCs barely move (L* 1.11 -> 1.11, ITA 3.1 -> 3.1) but haemoglobin's grows five-fold (0.00024 -> 0.0013),
set by one retake of very red skin (4.8 x typical blood under the papillary-plexus member ``km3_r12``) whose two
shots differ in JPEG quality (95 / 85) and exposure: +13 % on unchanged skin, where JPEG quantisation of
saturated reds changes the chromaticity.  The default keeps the MDCs of the phantoms' model; the held-out
members check them (``docs/comparison.md``).

Comparisons without pixel alignment (``--registration none``, or no step of the registration chain passes):
every retake is also measured with ``registration_mode="none"`` (region statistics of each photo's own
skin, :mod:`skinimg.session.unaligned`) and gives the table ``mdc_unaligned`` and its bands
``mdc_unaligned_by_tone`` by the same formula and band rule; each value is at least the aligned one
(a comparison without alignment is never taken as more precise than one with).

Brown and dark skin: ``--n-dark`` more retakes (default 40) of the same design with melanin
0.16-0.45 (seeds 900+).  All retakes are grouped by the mean ITA of the pair's darker photo into
the bands of :data:`BANDS` (``dark`` <= -30, ``brown`` -30..-10 degrees); each band stores
``max(its own MDC, the default)`` per metric under ``mdc_by_tone``, which ``compare`` applies to
pairs in that band.  The default table ``mdc`` stays the one of the first 40 retakes.

MDC (Weir 2005; Beckerman et al. 2001): with ``d_i = after_i - before_i`` the retake
differences of a metric, ``SEM = RMS(d) / sqrt(2)`` (RMS rather than SD: a systematic
retake bias counts as error) and ``MDC95 = 1.96 * sqrt(2) * SEM``, in the metric's units.
A change smaller than the MDC cannot be told from retake noise with 95 % confidence.

References: Weir, J. P. (2005) J Strength Cond Res 19(1), 231-240,
https://doi.org/10.1519/15184.1 ; Beckerman, H. et al. (2001) Clinical Rehabilitation
15(5), 540-549 (smallest real difference), https://doi.org/10.1191/026921501680425261
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from .. import __version__
from ..io import model_file
from ..phantom import BACKGROUNDS, PhantomSpec, render_phantom
from ..phantom.ensemble import FIT_MEMBERS, MEMBERS, OpticalMember
from ..session import LIGHTING_DEPENDENT, MDC_FORMAT, METRICS, CompareParams, measure_pair
from ..session.stats import MDC_FILE

__all__ = ["BANDS", "SHADING", "retake_specs", "retake_optics", "in_member_units", "crosstalk_specs",
           "blood_crosstalk_specs", "mdc_table", "main"]

JPEG = (None, 95, 90, 85)
#: Shading strength of the second shot of a retake (the first has 1): the light falls on the skin from a slightly
#: different angle (the face or arm turned, the lamp moved), so borders darken more or less.
SHADING = (0.8, 1.2)


#: Melanin range of the second retake set (brown and dark skin; the first covers 0.02-0.16).
DARK_MELANIN = (0.16, 0.45)
#: Tone bands with their own MDC table, (name, upper ITA bound), darkest first: a pair belongs to the first band
#: whose bound its darker photo's mean ITA does not exceed.  The retake spread of haemoglobin grows 1.6 times at
#: ITA -30..-10 and 4 times below -30 (measured on the 80 retakes of both sets, central ensemble model).
BANDS = (("dark", -30.0), ("brown", -10.0))


def retake_specs(i: int, seed: int = 0, size=(480, 640), melanin=(0.02, 0.16)) -> tuple[PhantomSpec, PhantomSpec]:
    """The two shots of retake pair ``i`` (deterministic); ``melanin``: range of the skin's melanin."""
    rng = np.random.default_rng([seed, 6, i])
    base = dict(melanin=float(rng.uniform(*melanin)), hemoglobin=float(rng.uniform(0.01, 0.04)),
                seed=1000 + seed * 100 + i, size=size, site=("face", "forearm")[i % 2],
                background=BACKGROUNDS[i % len(BACKGROUNDS)], spots=int(rng.integers(2, 9)),
                red_patches=int(rng.integers(0, 4)))
    pose = (float(rng.uniform(-25, 25)), float(rng.uniform(-25, 25)), float(rng.uniform(-6, 6)),
            float(rng.uniform(0.94, 1.06)))
    q_a, q_b = (JPEG[int(k)] for k in rng.integers(0, len(JPEG), 2))
    exposure = float(rng.uniform(0.8, 1.2))
    shading = float(rng.uniform(*SHADING))  # drawn last: the earlier draws are those of the retakes before issue 26
    a = PhantomSpec(**base, noise_seed=2 * i + 1, jpeg_quality=q_a)
    b = PhantomSpec(**base, pose=pose, exposure=exposure, shading=shading, noise_seed=2 * i + 2, jpeg_quality=q_b)
    return a, b


def crosstalk_specs(i: int, seed: int = 0, size=(480, 640)) -> tuple[PhantomSpec, PhantomSpec]:
    """Pair ``i`` of the cross-talk set: a retake (as :func:`retake_specs`, other seeds) whose second
    shot also has its melanin scaled by 0.7-1.3 (spots and background together); blood unchanged.  The shading
    is not changed: the coefficient is the leak of a true change into the other chromophore (retake noise,
    shading included, is already in the MDC; a shading change in the denominator's pairs would inflate it)."""
    a, b = retake_specs(i + 500, seed, size)
    rng = np.random.default_rng([seed, 7, i])
    scale = float(rng.choice([rng.uniform(0.7, 0.9), rng.uniform(1.1, 1.3)]))
    return a, replace(b, melanin_scale=scale, shading=1.0)


def blood_crosstalk_specs(i: int, seed: int = 0, size=(480, 640)) -> tuple[PhantomSpec, PhantomSpec]:
    """Pair ``i`` of the reverse cross-talk set: a retake (seeds 600+) whose second shot has its blood scaled
    by 0.7-0.9 or 1.1-1.3; melanin and shading unchanged (see :func:`crosstalk_specs`)."""
    a, b = retake_specs(i + 600, seed, size)
    rng = np.random.default_rng([seed, 8, i])
    scale = float(rng.choice([rng.uniform(0.7, 0.9), rng.uniform(1.1, 1.3)]))
    return a, replace(b, hemoglobin_scale=scale, shading=1.0)


def retake_optics(i: int, optics: str = "phantom") -> OpticalMember | None:
    """The optical model of pair ``i``: None (the phantoms' own model, ``optics="phantom"``, the default) or the
    fit members of the ensemble in turn (``"fit"``)."""
    return MEMBERS[FIT_MEMBERS[i % len(FIT_MEMBERS)]] if optics == "fit" else None


def in_member_units(spec: PhantomSpec, optics: OpticalMember | None) -> PhantomSpec:
    """``spec`` (phantom units) for ``optics``: the same melanin (every member is calibrated to the same tones)
    and the same blood relative to typical skin (the phantoms' model is ``diff_j98``)."""
    if optics is None:
        return spec
    return replace(spec, hemoglobin=spec.hemoglobin * optics.typical_blood / MEMBERS["diff_j98"].typical_blood)


def measure(sa: PhantomSpec, sb: PhantomSpec, params: CompareParams, masks: str, label: str,
            optics: OpticalMember | None = None, unaligned: bool = False) -> dict | tuple[dict, dict]:
    """Render the two shots (with ``optics``, see :func:`in_member_units`) and compare them (true skin masks
    unless ``masks == "segmenter"``); with ``unaligned`` also without pixel alignment (``registration_mode="none"``)
    and return both documents."""
    pa = render_phantom(in_member_units(sa, optics), optics=optics)
    pb = render_phantom(in_member_units(sb, optics), optics=optics)
    truth = masks == "truth"
    kw = dict(before_mask=pa.mask if truth else None, after_mask=pb.mask if truth else None, label=label)
    doc, _ = measure_pair(pa.image, pb.image, params=params, **kw)
    if not unaligned:
        return doc
    doc_u, _ = measure_pair(pa.image, pb.image, params=replace(params, registration_mode="none"), **kw)
    return doc, doc_u


def _pair_record(doc: dict) -> tuple[float, dict, dict]:
    """(ITA of the darker photo, deltas, before values) of a retake, without the lighting-dependent metrics
    when lighting could not be normalised (their verdict is then 'unknown')."""
    normalised = doc["lighting"]["method"] != "none"
    keep = [m for m in METRICS if normalised or m not in LIGHTING_DEPENDENT]
    ita = min(doc["metrics"]["ita_deg"]["before"], doc["metrics"]["ita_deg"]["after"])
    return (float(ita), {m: doc["metrics"][m]["delta"] for m in keep}, {m: doc["metrics"][m]["before"] for m in keep})


def mdc_table(diffs: dict, levels: dict) -> tuple[dict, dict]:
    """MDC95 per metric from retake differences, and the details table."""
    mdc, table = {}, {}
    for m in METRICS:
        d = np.asarray(diffs[m], dtype=np.float64)
        rms = float(np.sqrt(np.mean(d * d)))
        sem = rms / math.sqrt(2.0)
        val = 1.96 * math.sqrt(2.0) * sem
        level = float(np.mean(np.abs(levels[m])))
        mdc[m] = float(f"{val:.4g}")
        table[m] = {"mdc": mdc[m], "n_pairs": int(d.size), "sem": float(f"{sem:.4g}"), "mean_diff": float(f"{d.mean():.4g}"),
                    "max_abs_diff": float(f"{np.abs(d).max():.4g}"), "mean_level": float(f"{level:.4g}"),
                    "mdc_pct_of_mean_level": float(f"{100 * val / level:.3g}") if level > 0 else None}
    return mdc, table


def _crosstalk_ratios(specs, source: str, target: str, floor: float, params: CompareParams, args,
                      label: str) -> np.ndarray:
    """``|delta target| / |delta source|`` of the ``args.n_crosstalk`` pairs of ``specs`` (whose only true change
    is in ``source``), printing each pair; pairs without lighting normalisation or with ``|delta source| <=
    floor`` take no part."""
    ratios = []
    for i in range(args.n_crosstalk):
        sa, sb = specs(i, args.seed)
        doc = measure(sa, sb, params, args.masks, f"{label} {i}", retake_optics(i, args.optics))
        d_src, d_tgt = doc["metrics"][source]["delta"], doc["metrics"][target]["delta"]
        if doc["lighting"]["method"] != "none" and abs(d_src) > floor:
            ratios.append(abs(d_tgt) / abs(d_src))
        scale = sb.melanin_scale if source == "melanin" else sb.hemoglobin_scale
        print(f"{label} {i:2d}: {source} x{scale:.2f}: {source} {d_src:+.5f}, {target} {d_tgt:+.5f}", flush=True)
    return np.asarray(ratios, dtype=np.float64)


def _band_tables(pairs: list, default: dict, floor: list | None = None) -> list[dict]:
    """The tone bands of :data:`BANDS` from retake records ``(ita, deltas, levels)``: each value
    ``max(derived, default[m], floor band value)`` (``floor``: the aligned bands, for the unaligned table)."""
    bands, lower = [], -math.inf
    for k, (band, ita_max) in enumerate(BANDS):
        in_band = [p for p in pairs if lower < p[0] <= ita_max]
        lower = ita_max
        b_diffs = {m: [p[1][m] for p in in_band if m in p[1]] for m in METRICS}
        b_levels = {m: [p[2][m] for p in in_band if m in p[2]] for m in METRICS}
        derived, b_table = mdc_table(b_diffs, b_levels)
        b_mdc = {m: max(derived[m] if math.isfinite(derived[m]) else 0.0, default[m],
                        floor[k]["mdc"][m] if floor else 0.0) for m in METRICS}
        for m in METRICS:
            b_table[m]["mdc_derived"] = b_table[m]["mdc"]
            b_table[m]["mdc"] = b_mdc[m]
        bands.append({"band": band, "ita_deg_max": ita_max, "mdc": b_mdc, "details": b_table,
                      "n_pairs": len(in_band)})
    return bands


def main(argv=None) -> int:
    """``python benchmarks/derive_mdc.py [--n N] [--n-crosstalk N] [--n-dark N] [--seed S] [--out PATH] [--masks ...]``."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=40, help="retake pairs")
    ap.add_argument("--n-crosstalk", type=int, default=20, help="pairs with a true melanin change only")
    ap.add_argument("--n-dark", type=int, default=40, help="retake pairs of brown and dark skin")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=model_file(MDC_FILE))
    ap.add_argument("--masks", choices=("segmenter", "truth"), default="truth",
                    help="skin masks of the retakes: the phantoms' true masks (default; measurement "
                         "variability) or skinimg's segmenter (what a user gets)")
    ap.add_argument("--optics", choices=("phantom", "fit"), default="phantom",
                    help="optical model of the retakes: the phantoms' own (default) or the fit members of the "
                         "ensemble in turn (larger MDCs: see the module docstring)")
    args = ap.parse_args(argv)
    params = CompareParams(calibrate="none", model_range=False)  # the MDC is retake noise; the model range is apart
    diffs = {m: [] for m in METRICS}
    levels = {m: [] for m in METRICS}
    t0 = time.perf_counter()
    skipped = 0
    pairs: list = []  # (ITA of the darker photo, {metric: delta}, {metric: before}) of every retake
    pairs_u: list = []  # the same retakes compared without pixel alignment
    for i in range(args.n):
        sa, sb = retake_specs(i, args.seed)
        doc, doc_u = measure(sa, sb, params, args.masks, f"retake {i}", retake_optics(i, args.optics), unaligned=True)
        pairs_u.append(_pair_record(doc_u))
        normalised = doc["lighting"]["method"] != "none"
        skipped += not normalised
        for m in METRICS:
            if not normalised and m in LIGHTING_DEPENDENT:
                continue  # verdict "unknown" for these in such pairs
            d = doc["metrics"][m]
            diffs[m].append(d["delta"])
            levels[m].append(d["before"])
        pairs.append(_pair_record(doc))
        print(f"retake {i:2d}: mel {sa.melanin:.3f} hb {sa.hemoglobin:.3f} residual "
              f"{doc['registration']['residual_px']:.2f} px, hemoglobin {doc['metrics']['hemoglobin']['delta_pct']:+.2f} %, "
              f"melanin {doc['metrics']['melanin']['delta_pct']:+.2f} %, lighting {doc['lighting']['method']}; unaligned "
              f"hemoglobin {doc_u['metrics']['hemoglobin']['delta_pct']:+.2f} %", flush=True)
    # melanin -> haemoglobin cross-talk: pairs whose only true change is melanin
    ratios = _crosstalk_ratios(crosstalk_specs, "melanin", "hemoglobin", 1e-4, params, args, "cross-talk")
    coef = float(f"{np.percentile(ratios, 95):.3g}") if ratios.size else 0.0
    # haemoglobin -> melanin: pairs whose only true change is blood (the central ensemble model reads part of a
    # blood change of the phantoms' own optics as pigment)
    back = _crosstalk_ratios(blood_crosstalk_specs, "hemoglobin", "melanin", 1e-5, params, args, "blood cross-talk")
    coef_back = float(f"{np.percentile(back, 95):.3g}") if back.size else 0.0
    mdc, table = mdc_table(diffs, levels)
    # brown and dark skin: retakes of the same design, melanin 0.16-0.45
    for i in range(args.n_dark):
        sa, sb = retake_specs(i + 900, args.seed, melanin=DARK_MELANIN)
        doc, doc_u = measure(sa, sb, params, args.masks, f"dark retake {i}", retake_optics(i, args.optics),
                             unaligned=True)
        pairs.append(_pair_record(doc))
        pairs_u.append(_pair_record(doc_u))
        print(f"dark retake {i:2d}: mel {sa.melanin:.3f} hb {sa.hemoglobin:.3f} hemoglobin "
              f"{doc['metrics']['hemoglobin']['delta_pct']:+.2f} %, ita {pairs[-1][0]:+.1f}", flush=True)
    # each band's table: the retakes of both sets whose darker photo falls in the band (the rule compare applies)
    bands = _band_tables(pairs, mdc)
    # without pixel alignment: the first set's retakes give the default table, both sets the bands; never below
    # the aligned values
    u_first = pairs_u[: args.n]
    mdc_u, table_u = mdc_table({m: [p[1][m] for p in u_first if m in p[1]] for m in METRICS},
                               {m: [p[2][m] for p in u_first if m in p[2]] for m in METRICS})
    for m in METRICS:
        table_u[m]["mdc_derived"] = mdc_u[m]
        mdc_u[m] = table_u[m]["mdc"] = max(mdc_u[m], mdc[m]) if math.isfinite(mdc_u[m]) else mdc[m]
    bands_u = _band_tables(pairs_u, mdc_u, floor=bands)
    doc = {
        "format": MDC_FORMAT,
        "mdc": mdc,
        "details": table,
        "mdc_by_tone": bands,
        "mdc_by_tone_rule": "a pair whose darker photo has a mean ITA <= a band's ita_deg_max (the first such band, "
                            "darkest first) uses that band's MDCs, the table 'mdc' otherwise; each band value is "
                            "max(derived from the retakes of both sets that fall in the band, default); "
                            f"second set: {args.n_dark} retakes with melanin {DARK_MELANIN[0]}-{DARK_MELANIN[1]} "
                            "(seeds 900+)",
        "mdc_unaligned": mdc_u,
        "details_unaligned": table_u,
        "mdc_unaligned_by_tone": bands_u,
        "mdc_unaligned_rule": "pairs compared without pixel alignment (registration.ok false: region statistics of "
                              "each photo's own skin) use 'mdc_unaligned' and its bands, derived from the same "
                              "retakes measured with registration_mode='none'; every value is max(derived, the "
                              "aligned value)",
        "crosstalk": {"hemoglobin": {
            "from": "melanin", "coefficient": coef, "n_pairs": int(ratios.size),
            "median_ratio": float(f"{np.median(ratios):.3g}") if ratios.size else None,
            "rule": "hemoglobin verdicts need |delta| > mdc + coefficient * |delta melanin|",
            "pairs": "retakes (as above, seeds 500+) whose second shot has melanin x0.7-0.9 or x1.1-1.3 and the "
                     "same blood; coefficient = 95th percentile of |delta hemoglobin| / |delta melanin|"},
            "melanin": {
            "from": "hemoglobin", "coefficient": coef_back, "n_pairs": int(back.size),
            "median_ratio": float(f"{np.median(back):.3g}") if back.size else None,
            "rule": "melanin verdicts need |delta| > mdc + coefficient * |delta hemoglobin|",
            "pairs": "retakes (as above, seeds 600+) whose second shot has blood x0.7-0.9 or x1.1-1.3 and the "
                     "same melanin; coefficient = 95th percentile of |delta melanin| / |delta hemoglobin|"}},
        "provenance": {
            "script": "benchmarks/derive_mdc.py",
            "arguments": {"n": args.n, "n_dark": args.n_dark, "seed": args.seed, "masks": args.masks,
                          "optics": args.optics},
            "skinimg_version": __version__,
            "formula": "MDC95 = 1.96 * sqrt(2) * SEM, SEM = RMS(after - before) / sqrt(2) over retakes (Weir 2005)",
            "retakes": "skinimg.phantom phantoms, same skin: pose (+-25 px, +-6 deg, x0.94-1.06), exposure x0.8-1.2, "
                       "shading strength x0.8-1.2, "
                       "new noise, JPEG none/95/90/85 drawn independently per shot; melanin 0.02-0.16, "
                       f"hemoglobin 0.01-0.04, 480x640, skin masks: {args.masks}",
            "pipeline": "skinimg.session.measure_pair, calibrate=none, lighting=auto",
            "pairs_without_lighting_reference": skipped,
            "note": "lighting-dependent metrics use only the pairs whose lighting was normalised "
                    "(the others get verdict 'unknown')",
        },
    }
    args.out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    for b in bands:
        for m in METRICS:
            t = b["details"][m]
            print(f"  {b['band']:5s} (ITA <= {b['ita_deg_max']:g}) {m:26s} MDC {t['mdc']:.4g} "
                  f"(derived {t['mdc_derived']:.4g}, {t['n_pairs']} pairs, {t['mdc_pct_of_mean_level']} % of mean level)")
    print(f"wrote {args.out} in {time.perf_counter() - t0:.0f} s")
    print(f"  melanin -> hemoglobin cross-talk allowance: {coef:.3g} x |delta melanin| "
          f"(median ratio {np.median(ratios) if ratios.size else float('nan'):.3g}, {ratios.size} pairs)")
    print(f"  hemoglobin -> melanin cross-talk allowance: {coef_back:.3g} x |delta hemoglobin| "
          f"(median ratio {np.median(back) if back.size else float('nan'):.3g}, {back.size} pairs)")
    for m in METRICS:
        print(f"  {m:26s} MDC {mdc[m]:.4g}  ({table[m]['mdc_pct_of_mean_level']} % of mean level {table[m]['mean_level']:.4g})"
              f"; unaligned {mdc_u[m]:.4g} (derived {table_u[m]['mdc_derived']:.4g})")
    return 0

"""Smallest haemoglobin change that ``skinimg compare`` detects reliably, its accuracy, and unchanged retakes.

``python benchmarks/compare_sensitivity.py [--tone light|dark] [--n 8]`` (about 5 minutes): for true
haemoglobin changes of +-2.5, 5, 7.5, 10, 15, 20, 30 and 40 %, ``--n`` phantom pairs each
(the retake design of ``benchmarks/derive_mdc.py`` with ``--seed 1``, i.e. other people
than those the MDC was derived from: new pose, exposure x0.8-1.2, shading strength x0.8-1.2, new noise,
independent JPEG quality; the after shot with ``hemoglobin_scale`` = 1 + change), compared with the
default MDC (true skin masks).  Prints, per change, the mean and largest absolute error of
``delta_pct`` (percentage points; the phantoms' own optics is a diffusion member of the ensemble, which the
central model reads at about half its relative change), the fraction of pairs with the right verdict
(``worsened`` for increases, ``improved`` for decreases), and how often the true change lies inside
``delta_pct_model_range`` (exactly, and within 2 points).  A change is *reliably detected* when at least
95 % of its pairs get the right verdict.

``--retakes`` instead compares unchanged retakes (the same design, ``--seed 2``) of the phantoms' model and
of the five held-out members of the ensemble of optical models, ``--n`` per member on light to tan and on
brown and dark skin, and prints per index the share within the MDC and the share ``no_change``.

Results and their date: ``docs/comparison.md`` (measured on phantom pairs).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from skinimg.train.mdc import DARK_MELANIN, retake_specs  # noqa: E402
from skinimg.session import CompareParams, compare_arrays  # noqa: E402
from skinimg.phantom import render_phantom  # noqa: E402

CHANGES = (2.5, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 40.0)


def retakes(n: int) -> None:
    """Unchanged retakes of the held-out members of the ensemble (and of the phantoms' own model, other people
    than the MDC's): the retake design of derive_mdc.py (pose, exposure x0.8-1.2, shading strength x0.8-1.2, noise,
    JPEG), ``n`` pairs per member on light to tan skin (ITA 15-58) and ``n`` on brown and dark skin (ITA -45..0)."""
    from skinimg.phantom.ensemble import HELD_OUT_MEMBERS, MEMBERS
    from skinimg.session import METRICS
    from skinimg.train.ensemble import tone_melanin

    params = CompareParams(calibrate="none")
    for tone, itas in (("light to tan", (15.0, 58.0)), ("brown and dark", (-45.0, 0.0))):
        within = {k: [] for k in METRICS}
        same = {k: [] for k in METRICS}
        clean = 0
        for mi, name in enumerate(("diff_j98",) + HELD_OUT_MEMBERS):
            m = MEMBERS[name]
            for i in range(n):
                rng = np.random.default_rng([77, mi, i, itas[0] < 0])
                sa, sb = retake_specs(3000 + 40 * mi + i + (20 if itas[0] < 0 else 0), seed=2)
                ita = float(rng.uniform(*itas))
                blood = float(rng.uniform(0.7, 1.6)) * m.typical_blood
                sa = replace(sa, melanin=tone_melanin(m, ita), hemoglobin=blood)
                sb = replace(sb, melanin=sa.melanin, hemoglobin=blood)  # pose, exposure, shading, noise, JPEG kept
                pa, pb = render_phantom(sa, optics=m), render_phantom(sb, optics=m)
                doc, _ = compare_arrays(pa.image, pb.image, before_mask=pa.mask, after_mask=pb.mask, params=params)
                wrong = []
                for k in METRICS:
                    v = doc["metrics"][k]
                    if v["verdict"] == "unknown":
                        continue  # lighting not normalised: no verdict for the lighting-dependent indices
                    within[k].append(abs(v["delta"]) <= v["mdc"])
                    same[k].append(v["verdict"] == "no_change")
                    if v["verdict"] != "no_change":
                        wrong.append(k)
                clean += not wrong
                print(f"  {name:<11} ITA {ita:+5.1f}: {', '.join(wrong) or 'all no_change'}", file=sys.stderr, flush=True)
        pairs = n * (1 + len(HELD_OUT_MEMBERS))
        print(f"\nUnchanged retakes, {tone} skin, {pairs} pairs (diff_j98 and the held-out members): share within the"
              f" MDC / share no_change (pairs with a verdict); {clean} pairs no_change on every index")
        for k in METRICS:
            print(f"{k:26s} {np.mean(within[k]):6.0%} {np.mean(same[k]):6.0%}   ({len(same[k])} pairs)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=8, help="pairs per change and sign (with --retakes: per member and tone)")
    ap.add_argument("--retakes", action="store_true",
                    help="instead: unchanged retakes of the held-out optical models, per index within MDC / no_change")
    ap.add_argument("--tone", choices=("light", "dark"), default="light",
                    help="light: melanin 0.02-0.16; dark: melanin 0.16-0.45 (ITA mostly below -10: the brown and dark MDCs)")
    args = ap.parse_args(argv)
    if args.retakes:
        retakes(args.n)
        return 0
    melanin = (0.02, 0.16) if args.tone == "light" else DARK_MELANIN
    params = CompareParams(calibrate="none")
    print(f"{'change %':>9} {'mean |err| pp':>13} {'max |err| pp':>13} {'right verdict':>14} {'true in model range':>20}"
          f" {'within 2 pp':>12}")
    smallest = None
    bands: set = set()
    for ch in CHANGES:
        errs, right, covered, near = [], 0, 0, 0
        for sign in (-1, 1):
            true = sign * ch
            for i in range(args.n):
                sa, sb = retake_specs(i + int(ch * 10) * 7, seed=1, melanin=melanin)
                sb = replace(sb, hemoglobin_scale=1 + true / 100)
                pa, pb = render_phantom(sa), render_phantom(sb)
                doc, _ = compare_arrays(pa.image, pb.image, before_mask=pa.mask, after_mask=pb.mask, params=params)
                m = doc["metrics"]["hemoglobin"]
                errs.append(m["delta_pct"] - true)
                lo, hi = m.get("delta_pct_model_range") or (np.nan, np.nan)
                covered += bool(lo <= true <= hi)
                near += bool(lo - 2.0 <= true <= hi + 2.0)
                right += m["verdict"] == ("worsened" if sign > 0 else "improved")
                bands.add(doc["mdc_source"]["tone_band"])
        errs = np.asarray(errs)
        rate = right / (2 * args.n)
        if rate >= 0.95 and smallest is None:
            smallest = ch
        elif rate < 0.95:
            smallest = None
        print(f"{ch:9.1f} {np.abs(errs).mean():13.2f} {np.abs(errs).max():13.2f} {rate:14.0%} {covered / (2 * args.n):20.0%}"
              f" {near / (2 * args.n):12.0%}", flush=True)
    print(f"MDC tone band(s) used: {', '.join(sorted(bands))}")
    print(f"smallest change detected in >= 95 % of pairs (and every larger one): "
          f"{'none' if smallest is None else f'{smallest:g} %'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

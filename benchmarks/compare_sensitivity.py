"""Smallest haemoglobin change that ``skinimg compare`` detects reliably, and its accuracy.

``python benchmarks/compare_sensitivity.py [--n 8]`` (about 5 minutes): for true
haemoglobin changes of +-2.5, 5, 7.5, 10, 15, 20, 30 and 40 %, ``--n`` phantom pairs each
(the retake design of ``benchmarks/derive_mdc.py`` with ``--seed 1``, i.e. other people
than those the MDC was derived from: new pose, exposure x0.8-1.2, new noise, independent
JPEG quality; the after shot with ``hemoglobin_scale`` = 1 + change), compared with the
default MDC (true skin masks).  Prints, per change, the mean and largest error of
``delta_pct`` (percentage points) and the fraction of pairs with the right verdict
(``worsened`` for increases, ``improved`` for decreases).  A change is *reliably detected*
when at least 95 % of its pairs get the right verdict.

Result (skinimg 2026-11-29, default ``--n 8``, i.e. 16 pairs per change; default MDC
hemoglobin = 0.00051, about 2 % of a typical level of 0.027; pairs whose darker photo has ITA
<= -10 use the brown / dark MDCs of ``models/mdc.json``)::

     --tone light (melanin 0.02-0.16)                  --tone dark (melanin 0.16-0.45)
     change %  mean err pp  max |err| pp  right         mean err pp  max |err| pp  right
          2.5         0.14          3.96    38%                0.11          5.04    12%
          5.0         0.17          1.69    75%               -0.08          3.46    31%
          7.5         0.16          4.66   100%                0.75          6.87    62%
         10.0        -0.31          4.02   100%                3.55         16.36    50%
         15.0         0.14          1.73   100%               -0.02          5.32   100%
         20.0        -0.60          3.50   100%                0.80          8.57    88%
         30.0        -0.21          3.61   100%               -0.34         17.03   100%
         40.0        -0.53          4.76   100%                0.93         24.28   100%

The smallest haemoglobin change detected reliably is **7.5 %** on light to tan skin and
**30 %** on brown and dark skin (chromaticity-twin errors; a chart helps there).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from derive_mdc import DARK_MELANIN, retake_specs  # noqa: E402

from skinimg.session import CompareParams, compare_arrays  # noqa: E402
from skinimg.phantom import render_phantom  # noqa: E402

CHANGES = (2.5, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 40.0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=8, help="pairs per change and sign")
    ap.add_argument("--tone", choices=("light", "dark"), default="light",
                    help="light: melanin 0.02-0.16; dark: melanin 0.16-0.45 (ITA mostly below -10: the brown and dark MDCs)")
    args = ap.parse_args(argv)
    melanin = (0.02, 0.16) if args.tone == "light" else DARK_MELANIN
    params = CompareParams(calibrate="none")
    print(f"{'change %':>9} {'mean err pp':>12} {'max |err| pp':>13} {'right verdict':>14}")
    smallest = None
    bands: set = set()
    for ch in CHANGES:
        errs, right = [], 0
        for sign in (-1, 1):
            true = sign * ch
            for i in range(args.n):
                sa, sb = retake_specs(i + int(ch * 10) * 7, seed=1, melanin=melanin)
                sb = replace(sb, hemoglobin_scale=1 + true / 100)
                pa, pb = render_phantom(sa), render_phantom(sb)
                doc, _ = compare_arrays(pa.image, pb.image, before_mask=pa.mask, after_mask=pb.mask, params=params)
                m = doc["metrics"]["hemoglobin"]
                errs.append(m["delta_pct"] - true)
                right += m["verdict"] == ("worsened" if sign > 0 else "improved")
                bands.add(doc["mdc_source"]["tone_band"])
        errs = np.asarray(errs)
        rate = right / (2 * args.n)
        if rate >= 0.95 and smallest is None:
            smallest = ch
        elif rate < 0.95:
            smallest = None
        print(f"{ch:9.1f} {errs.mean():12.2f} {np.abs(errs).max():13.2f} {rate:14.0%}", flush=True)
    print(f"MDC tone band(s) used: {', '.join(sorted(bands))}")
    print(f"smallest change detected in >= 95 % of pairs (and every larger one): "
          f"{'none' if smallest is None else f'{smallest:g} %'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

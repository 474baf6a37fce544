"""How much do the per-image indices move under harmless perturbations?  (Basis of regress's tolerances.)

A regression tolerance must be wider than what changes between two honest runs
(another machine, another libjpeg, another NumPy) and narrower than a real change
of the algorithm.  Runs on one machine are bit-identical, so this script
*simulates* the platform differences and measures how far each column of
``indices.csv`` moves:

``lsb``      every channel of 30 % of the pixels moved by +-1 code value (what a
             different JPEG decoder / IDCT rounding does to the same file);
``reencode`` the photo re-encoded as JPEG quality 95 (a much larger change: the
             same photo re-saved; an upper bound, not a tolerance target);
``mask``     the skin mask eroded by 1 pixel (a segmenter whose boundary moves by
             one pixel, e.g. float differences in a classifier);
``gain``     exposure x 1.01 in linear light (flash energy / auto-exposure jitter).

Images: skinimg phantoms (``skinimg.phantom``) over the tone range, measured on their
true skin mask, so the numbers isolate the indices from segmentation except in the
``mask`` case.

Usage: ``python benchmarks/regress_tolerances.py [--n 12] [--size 480x640]``
Prints, per column, the largest absolute and relative change per perturbation and
the default tolerance of ``skinimg regress`` beside it.
"""

from __future__ import annotations

import argparse
import math

import cv2
import numpy as np

from skinimg.color import linear_to_srgb, srgb_to_linear
from skinimg.indices import DEFAULT_BASIS_PATH, IndexParams, measure
from skinimg.phantom import PhantomSpec, render_phantom
from skinimg.report import DEFAULT_TOLERANCES, tolerance_for


def _photos(n: int, size: tuple[int, int]):
    h, w = size
    rng = np.random.default_rng(0)
    for i in range(n):
        spec = PhantomSpec(melanin=float(rng.uniform(0.01, 0.3)), hemoglobin=float(rng.uniform(0.005, 0.04)),
                           seed=i, size=(h, w), jpeg_quality=92)
        ph = render_phantom(spec)
        yield f"phantom{i}", ph.image, ph.mask


def _lsb(rgb, rng):
    d = rng.integers(-1, 2, rgb.shape, dtype=np.int16) * (rng.random(rgb.shape[:2]) < 0.3)[..., None]
    return np.clip(rgb.astype(np.int16) + d, 0, 255).astype(np.uint8)


def _reencode(rgb, rng):
    ok, buf = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].copy()


def _gain(rgb, rng):
    lin = srgb_to_linear(rgb) * np.float32(1.01)
    return np.clip(np.round(linear_to_srgb(np.clip(lin, 0, 1)) * 255), 0, 255).astype(np.uint8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--size", default="480x640")
    ap.add_argument("--chromophores", choices=("basis", "ica"), default=None,
                    help="default: the calibrated basis (models/chromophore_basis.json)")
    args = ap.parse_args()
    method = args.chromophores or "basis"
    basis_path = None
    params = IndexParams(chromophore_method=method, basis_path=basis_path)
    print(f"chromophore separation: {method}, basis: {basis_path or DEFAULT_BASIS_PATH}")
    h, w = (int(x) for x in args.size.split("x"))
    rng = np.random.default_rng(1)
    kinds = ("lsb", "reencode", "mask", "gain")
    worst = {k: {} for k in kinds}  # kind -> column -> (abs, rel)
    for name, rgb, mask in _photos(args.n, (h, w)):
        base, _ = measure(rgb, mask, return_maps=False, params=params)
        variants = {
            "lsb": measure(_lsb(rgb, rng), mask, return_maps=False, params=params)[0],
            "reencode": measure(_reencode(rgb, rng), mask, return_maps=False, params=params)[0],
            "mask": measure(rgb, cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0, return_maps=False, params=params)[0],
            "gain": measure(_gain(rgb, rng), mask, return_maps=False, params=params)[0],
        }
        for kind, row in variants.items():
            for col, v in row.items():
                b = base.get(col)
                if not isinstance(v, (int, float)) or not isinstance(b, (int, float)):
                    continue
                if not (math.isfinite(v) and math.isfinite(b)):
                    continue
                a = abs(v - b)
                r = a / abs(b) if b else (0.0 if a == 0 else math.inf)
                pa, pr = worst[kind].get(col, (0.0, 0.0))
                worst[kind][col] = (max(pa, a), max(pr, r))
    cols = sorted(set().union(*[worst[k].keys() for k in kinds]))
    head = f"{'column':32s}" + "".join(f"{k + ' abs':>13s}{k + ' rel%':>13s}" for k in kinds) + f"{'tolerance':>12s}"
    print(head)
    print("-" * len(head))
    for c in cols:
        t = tolerance_for(c, DEFAULT_TOLERANCES)
        line = f"{c:32s}"
        for k in kinds:
            a, r = worst[k].get(c, (float("nan"), float("nan")))
            line += f"{a:13.4g}{r * 100:13.3g}"
        print(line + f"{str(t) if t else 'exact':>12s}")


if __name__ == "__main__":
    main()

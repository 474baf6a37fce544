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

Images: skinimg phantoms (``skinimg.synth``) over the tone range when that module
is installed, else simple textured skin-like photos.  The mask is taken once from the
unperturbed photo (``skinimg.segment`` when installed, else a colour rule), so the
numbers isolate the indices from segmentation except in the ``mask`` case.

Usage: ``python benchmarks/regress_tolerances.py [--n 12] [--size 480x640]``
Prints, per column, the largest absolute and relative change per perturbation and
the default tolerance of ``skinimg regress`` beside it.
"""

from __future__ import annotations

import argparse
import importlib.util
import math

import cv2
import numpy as np

from skinimg.colour import linear_to_srgb, srgb_to_linear
from skinimg.indices import DEFAULT_BASIS_PATH, IndexParams, measure
from skinimg.regress import DEFAULT_TOLERANCES, tolerance_for


def _photos(n: int, size: tuple[int, int]):
    h, w = size
    if importlib.util.find_spec("skinimg.synth") is not None:
        from skinimg.synth import PhantomSpec, render_phantom

        rng = np.random.default_rng(0)
        for i in range(n):
            spec = PhantomSpec(melanin=float(rng.uniform(0.01, 0.3)), hemoglobin=float(rng.uniform(0.005, 0.04)),
                               seed=i, size=(h, w), jpeg_quality=92)
            ph = render_phantom(spec)
            yield f"phantom{i}", ph.image, ph.mask
        return
    rng = np.random.default_rng(0)
    tones = [(232, 190, 172), (215, 165, 140), (190, 140, 110), (160, 110, 80), (120, 80, 60), (85, 55, 40)]
    yy, xx = np.mgrid[:h, :w]
    for i in range(n):
        base = np.array(tones[i % len(tones)], np.float32)
        skin = ((yy - h / 2) / (0.42 * h)) ** 2 + ((xx - w / 2) / (0.38 * w)) ** 2 <= 1
        tex = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 3) * 6
        img = np.empty((h, w, 3), np.float32)
        img[:] = (70, 95, 150)
        img[skin] = base
        img += tex[..., None]
        # a red patch and two brown spots
        red = ((yy - h * 0.4) ** 2 + (xx - w * 0.4) ** 2) < (0.1 * h) ** 2
        img[red & skin] *= (1.0, 0.85, 0.88)
        for cy, cx in ((0.6, 0.6), (0.55, 0.3)):
            spot = ((yy - h * cy) ** 2 + (xx - w * cx) ** 2) < (0.03 * h) ** 2
            img[spot & skin] *= (0.75, 0.7, 0.68)
        img += rng.normal(0, 1.5, img.shape).astype(np.float32)
        img8 = np.clip(img, 0, 255).astype(np.uint8)
        ok, buf = cv2.imencode(".jpg", img8[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
        photo = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].copy()
        yield f"photo{i}", photo, skin


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
                    help="default: the calibrated basis when models/chromophore_basis.json exists, else ICA")
    args = ap.parse_args()
    method = args.chromophores or "basis"
    basis_path = None
    if not DEFAULT_BASIS_PATH.is_file():
        # the calibrated basis is not installed yet: a plausible stand-in (re-run once it lands)
        import json
        import tempfile

        from skinimg.indices import ChromophoreBasis

        if importlib.util.find_spec("skinimg.synth") is not None:  # fit one on the phantom optics
            from skinimg.indices import fit_chromophore_basis
            from skinimg.synth import skin_linear_rgb

            g = np.random.default_rng(7)
            mel, hb = g.uniform(0.01, 0.3, 4000).astype(np.float32), g.uniform(0.002, 0.06, 4000).astype(np.float32)
            stand_in = fit_chromophore_basis(mel, hb, skin_linear_rgb(mel, hb),
                                             provenance={"name": "fitted in benchmarks/regress_tolerances.py"})
        else:
            stand_in = ChromophoreBasis((0.9, 1.3, 1.7), (0.35, 1.5, 0.9), (0.1, 0.25, 0.35),
                                        provenance={"name": "stand-in for benchmarks/regress_tolerances.py"})
        basis_path = tempfile.mkstemp(suffix=".json")[1]
        with open(basis_path, "w") as fh:
            json.dump(stand_in.to_dict(), fh)
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

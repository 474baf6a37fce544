"""Fit models/chromophore_basis.json from the phantom optical model (reproducible, deterministic).

    .venv/bin/python benchmarks/fit_basis.py [--out models/chromophore_basis.json] [--check]

What is fitted, from ``skinimg.synth.skin_linear_rgb(melanin, hemoglobin, "D65")`` (the
exact spectral two-layer skin model of the phantoms; flat, fully lit skin):

1. the linear absorbance directions of Tsumura et al. (1999): least squares
   ``OD = offset + melanin a_mel + hemoglobin a_hb`` over typical skin (melanin
   0.01-0.20, hemoglobin 0.005-0.06, 20 x 20 grid) -- the reference directions of the
   per-image ICA method;
2. the non-linear model: the shading-free chromaticity of the model on an 81 x 81
   table (melanin 0-0.6, hemoglobin 0-0.3 square-spaced, the phantom generator's own
   domain) and the cubic start polynomial of the inversion
   (:func:`skinimg.indices.build_chromophore_model`).

``--check`` re-fits and compares with the committed file instead of writing it, and
prints the inversion error on random model colours.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def fit():
    from skinimg import __version__
    from skinimg import indices as I
    from skinimg import synth

    m = np.linspace(0.01, 0.20, 20)
    h = np.linspace(0.005, 0.06, 20)
    mm, hh = np.meshgrid(m, h, indexing="ij")
    lin = synth.skin_linear_rgb(mm, hh, "D65")
    linear = I.fit_chromophore_basis(mm.ravel(), hh.ravel(), lin.reshape(-1, 3))
    model = I.build_chromophore_model(lambda a, b: synth.skin_linear_rgb(a, b, "D65"),
                                      melanin_max=0.6, hemoglobin_max=0.3, n=81)
    prov = {
        "name": "skinimg phantom optical model, D65",
        "script": "benchmarks/fit_basis.py",
        "source": "skinimg.synth.skin_linear_rgb (two-layer spectral skin model, default SkinOptics, D65)",
        "optics_sha256": hashlib.sha256(np.asarray(lin, dtype="<f4").tobytes()).hexdigest(),
        "optics_sha256_of": "skin_linear_rgb on the linear-fit grid, float32 little-endian",
        "skinimg_version": __version__,
        "linear_fit_grid": {"melanin": [0.01, 0.20, 20], "hemoglobin": [0.005, 0.06, 20]},
        "linear_fit_rms_residual_od": linear.provenance["rms_residual_od"],
        "model_table": {"melanin": [0.0, 0.6, 81], "hemoglobin": "0.3 * (j / 80)**2, j = 0..80"},
        "units": "volume fractions of the phantom model: epidermal melanosome fraction, dermal blood fraction",
    }
    return I.ChromophoreBasis(linear.melanin_od, linear.hemoglobin_od, linear.offset_od, provenance=prov, model=model)


def check_inversion(basis, n: int = 20000, seed: int = 0) -> dict:
    """Inversion error on noise-free model colours, in groups of one melanin level (an
    "image"): 40 levels in [0.01, 0.45] x n/40 random haemoglobin values in [0.002, 0.1]."""
    from skinimg import colour, indices as I, synth

    rng = np.random.default_rng(seed)
    em, eh = [], []
    for m0 in np.linspace(0.01, 0.45, 40):
        m = np.full(n // 40, m0)
        h = rng.uniform(0.002, 0.1, n // 40)
        od = colour.optical_density(synth.skin_linear_rgb(m, h, "D65"))
        mel, hb = I.separate_chromophores(od, basis=basis)
        em.append(np.abs(mel - m))
        eh.append(np.abs(hb - h))
    em, eh = np.concatenate(em), np.concatenate(eh)
    return {"melanin_max_abs_err": float(em.max()), "melanin_median_abs_err": float(np.median(em)),
            "melanin_p99_abs_err": float(np.percentile(em, 99)),
            "hemoglobin_max_abs_err": float(eh.max()), "hemoglobin_median_abs_err": float(np.median(eh)),
            "hemoglobin_p99_abs_err": float(np.percentile(eh, 99))}


def _format(d: dict) -> str:
    """Indented JSON with the model table written one melanin row per line (diffable, compact)."""
    table = d["model"].pop("table")
    head = json.dumps(d, indent=1, sort_keys=True)
    rows = ",\n".join("  " + json.dumps(row, separators=(",", ":")) for row in table)
    d["model"]["table"] = table
    marker = '"model": {'
    i = head.index(marker) + len(marker)
    return head[:i] + '\n  "table": [\n' + rows + "\n  ]," + head[i:] + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "models" / "chromophore_basis.json"))
    ap.add_argument("--check", action="store_true", help="compare with the existing file instead of writing")
    a = ap.parse_args(argv)
    from skinimg.io import write_bytes

    basis = fit()
    err = check_inversion(basis)
    d = basis.to_dict()
    d["provenance"]["inversion_check"] = {"n": 20000, "melanin": [0.01, 0.45], "hemoglobin": [0.002, 0.1], **err}
    text = _format(d)
    if a.check:
        same = Path(a.out).read_text(encoding="utf-8") == text
        print(json.dumps(err, indent=1))
        print("committed basis is", "up to date" if same else "STALE (re-run without --check)")
        return 0 if same else 1
    write_bytes(a.out, text.encode("utf-8"))
    os.chmod(a.out, 0o644)
    print(f"wrote {a.out}")
    print(json.dumps(err, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

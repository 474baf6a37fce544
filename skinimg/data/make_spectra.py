"""Generate ``skinimg/data/spectra.json`` (run once; the output is committed).

The phantom generator (:mod:`skinimg.phantom`) integrates reflectance spectra to
colour at run time without importing colour-science.  This script extracts,
once, the tables it needs from colour-science (a test-only dependency) and
resamples them to the wavelength grid of the model, 400-700 nm in 5 nm steps:

* CIE 1931 2 degree standard observer colour matching functions
  (``colour.MSDS_CMFS["CIE 1931 2 Degree Standard Observer"]``);
* relative spectral power distributions of CIE illuminants D65, D50, D75, A,
  FL2 and FL11 (``colour.SDS_ILLUMINANTS``);
* spectral reflectances of the 24 patches of the X-Rite ColorChecker Classic,
  BabelColor average of 30 charts (``colour.SDS_COLOURCHECKERS["BabelColor Average"]``),
  in X-Rite row-major order (dark skin ... black).

Provenance and licence: the CIE tables are CIE data (CIE 015:2018,
https://doi.org/10.25039/TR.015.2018; CIE S 014-1/2); the ColorChecker spectra
are BabelColor's public measurements (Pascale, D. (2006) "RGB coordinates of the
Macbeth ColorChecker", BabelColor); both as distributed by colour-science
(https://www.colour-science.org, BSD-3-Clause licence).

Usage::

    .venv/bin/python skinimg/data/make_spectra.py   # rewrites spectra.json beside this file
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

WAVELENGTHS = np.arange(400, 701, 5)
ILLUMINANTS = ("D65", "D50", "D75", "A", "FL2", "FL11")


def _resample(sd) -> list[float]:
    """Linear interpolation of a colour-science spectral distribution onto WAVELENGTHS."""
    wl = np.asarray(sd.wavelengths, dtype=float)
    values = np.asarray(sd.values, dtype=float)
    if values.ndim == 1:
        return [round(float(v), 7) for v in np.interp(WAVELENGTHS, wl, values)]
    return [[round(float(v), 7) for v in np.interp(WAVELENGTHS, wl, values[:, k])] for k in range(values.shape[1])]


def main() -> None:
    import colour

    cmfs = colour.MSDS_CMFS["CIE 1931 2 Degree Standard Observer"]
    xbar, ybar, zbar = _resample(cmfs)
    checker = colour.SDS_COLOURCHECKERS["BabelColor Average"]
    data = {
        "provenance": (
            "CIE 1931 2-degree CMFs and CIE illuminant SPDs (CIE 015:2018), ColorChecker Classic "
            "spectral reflectances 'BabelColor Average' (Pascale 2006), as distributed by "
            f"colour-science {colour.__version__} (BSD-3-Clause); linearly resampled to 400-700 nm "
            "step 5 nm by skinimg/data/make_spectra.py"
        ),
        "wavelengths_nm": [int(w) for w in WAVELENGTHS],
        "cmf_1931_2deg": {"x": xbar, "y": ybar, "z": zbar},
        "illuminants": {name: _resample(colour.SDS_ILLUMINANTS[name]) for name in ILLUMINANTS},
        "colorchecker_names": list(checker.keys()),
        "colorchecker_reflectance": [_resample(sd) for sd in checker.values()],
    }
    out = Path(__file__).with_name("spectra.json")
    text = "{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in data.items()) + "\n}\n"
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()

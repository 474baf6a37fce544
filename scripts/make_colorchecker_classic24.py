"""Generate ``models/colorchecker_classic24*.json``: ColorChecker Classic reference values.

Run once (needs the test-only dependency colour-science)::

    .venv/bin/python scripts/make_colorchecker_classic24.py

Source: colour-science ``colour.CCS_COLOURCHECKERS["ColorChecker24 - After November 2014"]``
(``colorchecker_classic24.json``, the default) and ``["ColorChecker24 - Before November 2014"]``
(``colorchecker_classic24_before2014.json``): the X-Rite published values for charts made after /
before November 2014, when X-Rite changed the pigments (patch 2 "light skin" moved by about
3 CIEDE2000); CIE xyY under D50, CIE 1931 2-degree observer.  Each patch is converted to XYZ, chromatically adapted from the
chart's D50 white to the sRGB D65 white with the Bradford von Kries transform
(Lam 1985; Luo & Rhodes 1999), converted to linear sRGB with skinimg's IEC 61966-2-1 matrix
(the one ``skinimg.color`` uses everywhere, so ``linear_rgb_to_lab(linear_srgb)`` returns the
stored ``lab_d65`` exactly) and to CIELAB (D65).  Values are not clipped (patch 18 "cyan" is
slightly outside the sRGB gamut: its red channel is negative).

The skinimg runtime reads only the JSON; colour-science is never imported at runtime.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore", message=".*Matplotlib.*")

import colour  # noqa: E402

from skinimg.color import D65_WHITE_XYZ, linear_rgb_to_lab, xyz_to_linear_rgb  # noqa: E402

MODELS = Path(__file__).resolve().parents[1] / "models"
#: output file -> colour-science chart name
CHARTS = {
    "colorchecker_classic24.json": "ColorChecker24 - After November 2014",
    "colorchecker_classic24_before2014.json": "ColorChecker24 - Before November 2014",
}


def make(out: Path, name: str) -> None:
    cc = colour.CCS_COLOURCHECKERS[name]
    names = list(cc.data.keys())
    xyY = np.array(list(cc.data.values()), dtype=np.float64)
    xyz_d50 = colour.xyY_to_XYZ(xyY)
    white_d50 = colour.xy_to_XYZ(cc.illuminant)
    lab_d50 = colour.XYZ_to_Lab(xyz_d50, cc.illuminant)
    xyz_d65 = colour.adaptation.chromatic_adaptation_VonKries(xyz_d50, white_d50, D65_WHITE_XYZ, transform="Bradford")
    lin = xyz_to_linear_rgb(xyz_d65).astype(np.float64)
    lab_d65 = linear_rgb_to_lab(lin).astype(np.float64)
    doc = {
        "name": f"ColorChecker Classic 24 ({name.split(' - ')[1]})",
        "layout": {"rows": int(cc.rows), "columns": int(cc.columns), "order": "row-major, patch 1 'dark skin' top-left, "
                   "patch 19 'white 9.5 (.05 D)' bottom-left when the chart is read upright (logo at the bottom)"},
        "provenance": {
            "source": f"colour-science {colour.__version__} colour.CCS_COLOURCHECKERS[{name!r}] "
            f"(X-Rite, ColorChecker Classic values for charts manufactured {name.split(' - ')[1].lower()})",
            "source_illuminant_xy": [float(v) for v in cc.illuminant],
            "observer": "CIE 1931 2 degree",
            "adaptation": "D50 -> D65 (xy 0.3127, 0.3290), von Kries with the Bradford cone matrix "
            "(colour.adaptation.chromatic_adaptation_VonKries, transform='Bradford')",
            "rgb": "linear sRGB, IEC 61966-2-1 4-decimal XYZ->RGB matrix inverse (skinimg.color.XYZ_TO_SRGB), unclipped",
            "generator": "scripts/make_colorchecker_classic24.py",
        },
        "patches": [
            {
                "index": i + 1,
                "name": n,
                "xyY_d50": [round(float(v), 8) for v in xyY[i]],
                "lab_d50": [round(float(v), 6) for v in lab_d50[i]],
                "xyz_d65": [round(float(v), 8) for v in xyz_d65[i]],
                "linear_srgb_d65": [round(float(v), 8) for v in lin[i]],
                "lab_d65": [round(float(v), 6) for v in lab_d65[i]],
            }
            for i, n in enumerate(names)
        ],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out}")


def main() -> None:
    for fname, name in CHARTS.items():
        make(MODELS / fname, name)


if __name__ == "__main__":
    main()

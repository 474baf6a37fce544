"""A user's own chart values (``--reference FILE``): measured CIELAB or sRGB -> linear sRGB (D65).

The published X-Rite values fit a genuine chart of one production year.  A lab that measured its own
chart with a spectrophotometer, or prints its own chart, gives its 24 values in a small file:

JSON  ``{"illuminant": "D50", "lab": [[L, a, b], ... 24]}``, or ``{"patches": [{"lab": [L, a, b]}, ...]}``,
      or ``{"srgb": [[R, G, B], ... 24]}`` (encoded sRGB, 0-255, or 0-1 when no value exceeds 1)
CSV   a header with ``L,a,b`` (or ``L*,a*,b*``) or ``R,G,B`` columns; an optional ``patch`` column
      (1-24) orders the rows; the illuminant in an ``illuminant`` column (one value) or a
      ``# illuminant: D50`` line

Patches are in chart order (row-major from patch 1 "dark skin", patch 19 "white").  CIELAB is turned
into XYZ under its illuminant (CIE 015:2018, doi:10.25039/TR.015.2018; 2-degree observer), adapted to
D65 with the Bradford transform (von Kries scaling of the Bradford cone responses: Lam, K. M. (1985),
Metamerism and colour constancy, PhD thesis, University of Bradford; the linear form used by ICC and
colour-science's ``chromatic_adaptation_VonKries(transform="Bradford")``), then to linear sRGB (IEC
61966-2-1).  CIELAB without an illuminant is taken as D50, the illuminant of X-Rite's published
values and of spectrophotometer software.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np

from ..color import D65_WHITE_XY, XYZ_TO_SRGB, lab_to_xyz, srgb_to_linear
from ..errors import SkinImgError

__all__ = ["load_reference", "bradford_matrix", "ILLUMINANTS_XY"]

#: CIE 1931 2-degree chromaticities of the illuminants a reference file may name: colour-science 0.4's
#: ``CCS_ILLUMINANTS["CIE 1931 2 Degree Standard Observer"]`` (F2/F7/F11 = its FL2/FL7/FL11); D65 as IEC
#: 61966-2-1; D50 as the X-Rite ColorChecker data (the white of ``models/colorchecker_classic24.json``).
ILLUMINANTS_XY = {
    "A": (0.44758, 0.40745),
    "C": (0.31006, 0.31616),
    "D50": (0.345702914918791, 0.358538596679933),
    "D55": (0.33243, 0.34744),
    "D65": D65_WHITE_XY,
    "D75": (0.29903, 0.31488),
    "E": (1.0 / 3.0, 1.0 / 3.0),
    "F2": (0.3721, 0.3751),
    "F7": (0.3129, 0.3292),
    "F11": (0.3805, 0.3769),
}
#: Bradford cone-response matrix (Lam 1985): XYZ -> "sharpened" RGB.
BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])


def _xyz_white(xy) -> np.ndarray:
    x, y = float(xy[0]), float(xy[1])
    return np.array([x / y, 1.0, (1.0 - x - y) / y])


def bradford_matrix(source_xy, target_xy=D65_WHITE_XY) -> np.ndarray:
    """3x3 matrix adapting CIE XYZ from white ``source_xy`` to ``target_xy`` (Bradford, von Kries form).

    ``M = B^-1 diag(B w_target / B w_source) B`` with ``B`` = :data:`BRADFORD` and ``w`` the whites' XYZ
    (Y = 1).  Applied to row vectors as ``xyz @ M.T``.

    Examples
    --------
    >>> m = bradford_matrix(ILLUMINANTS_XY["D50"])
    >>> np.allclose(m @ _xyz_white(ILLUMINANTS_XY["D50"]), _xyz_white(D65_WHITE_XY))
    True
    """
    ws, wt = BRADFORD @ _xyz_white(source_xy), BRADFORD @ _xyz_white(target_xy)
    return np.linalg.inv(BRADFORD) @ np.diag(wt / ws) @ BRADFORD


def _illuminant(value, label):
    if value is None or (isinstance(value, str) and not value.strip()):
        return "D50", ILLUMINANTS_XY["D50"]
    if isinstance(value, (list, tuple)):
        try:
            x, y = (float(v) for v in value)
        except (TypeError, ValueError):
            x = y = -1.0
        if 0 < x < 1 and 0 < y < 1:
            return f"x,y {x:.4f},{y:.4f}", (x, y)
        raise SkinImgError(f"illuminant {value!r} is not a chromaticity pair [x, y] in (0, 1)", label)
    key = str(value).strip().upper()
    if key in ILLUMINANTS_XY:
        return key, ILLUMINANTS_XY[key]
    raise SkinImgError(f"unknown illuminant {value!r}; use one of {', '.join(ILLUMINANTS_XY)} or [x, y]", label)


def _triples(rows, what: str, label) -> np.ndarray:
    try:
        a = np.array([[float(v) for v in r] for r in rows], dtype=np.float64)
    except (TypeError, ValueError):
        raise SkinImgError(f"{what} values must be numbers, three per patch", label) from None
    if a.ndim != 2 or a.shape != (24, 3):
        got = f"{len(rows)} patches" if a.ndim != 2 or a.shape[1] == 3 else f"{a.shape[0]} patches of {a.shape[1]} values"
        raise SkinImgError(f"expected 24 patches of 3 {what} values, got {got}", label)
    if not np.isfinite(a).all():
        raise SkinImgError(f"{what} values must be finite", label)
    return a


def _from_lab(lab: np.ndarray, illuminant, label) -> tuple[np.ndarray, str]:
    if np.any(lab[:, 0] < 0) or np.any(lab[:, 0] > 100):
        raise SkinImgError("L* must be in [0, 100]", label)
    name, xy = _illuminant(illuminant, label)
    xyz = lab_to_xyz(lab, white=_xyz_white(xy)).astype(np.float64) @ bradford_matrix(xy).T
    how = "CIELAB (D65)" if name == "D65" else f"CIELAB ({name}), Bradford-adapted to D65"
    return xyz @ XYZ_TO_SRGB.T, how


def _from_srgb(rgb: np.ndarray, label) -> tuple[np.ndarray, str]:
    if np.any(rgb < 0) or np.any(rgb > 255):
        raise SkinImgError("sRGB values must be in [0, 255] (or [0, 1])", label)
    scale = 1.0 if rgb.max() <= 1.0 else 255.0
    return srgb_to_linear((rgb / scale).astype(np.float32)).astype(np.float64), f"sRGB ({'0-1' if scale == 1 else '0-255'})"


def _from_json(text: str, label):
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SkinImgError(f"not valid JSON ({exc.msg}, line {exc.lineno})", label) from None
    if not isinstance(doc, dict):
        raise SkinImgError("the JSON must be an object with 'lab' or 'srgb'", label)
    lab, srgb, pts = doc.get("lab"), doc.get("srgb"), doc.get("patches")
    if isinstance(pts, list) and pts and all(isinstance(p, dict) for p in pts):
        if all("lab" in p for p in pts):
            lab = [p["lab"] for p in pts]
        elif all("srgb" in p for p in pts):
            srgb = [p["srgb"] for p in pts]
    if isinstance(lab, list):
        return _from_lab(_triples(lab, "L*a*b*", label), doc.get("illuminant"), label)
    if isinstance(srgb, list):
        return _from_srgb(_triples(srgb, "sRGB", label), label)
    raise SkinImgError("the JSON has neither 'lab' nor 'srgb' values (24 triples)", label)


def _from_csv(text: str, label):
    illuminant, lines = None, []
    for ln in text.splitlines():
        s = ln.strip()
        if s.startswith("#"):
            key, _, val = s[1:].partition(":")
            if key.strip().lower() == "illuminant":
                illuminant = val.strip()
        elif s:
            lines.append(ln)
    rows = list(csv.DictReader(io.StringIO("\n".join(lines))))
    if not rows:
        raise SkinImgError("the CSV has no rows", label)
    cols = {c.strip().lower().rstrip("*"): c for c in rows[0] if c}
    for key in ("patch", "index"):
        if key in cols:
            try:
                order = [int(r[cols[key]]) for r in rows]
            except (TypeError, ValueError):
                order = []
            if sorted(order) != list(range(1, 25)):
                raise SkinImgError(f"column {cols[key]!r} must hold each patch number 1-24 once", label)
            rows = [r for _, r in sorted(zip(order, rows), key=lambda t: t[0])]
            break
    if "illuminant" in cols:
        values = {(r[cols["illuminant"]] or "").strip() for r in rows}
        if len(values) != 1:
            raise SkinImgError("the illuminant column must hold one value", label)
        illuminant = values.pop()
    if {"l", "a", "b"} <= set(cols):
        return _from_lab(_triples([[r[cols[k]] for k in "lab"] for r in rows], "L*a*b*", label), illuminant, label)
    if {"r", "g", "b"} <= set(cols):
        return _from_srgb(_triples([[r[cols[k]] for k in "rgb"] for r in rows], "sRGB", label), label)
    raise SkinImgError("the CSV needs L,a,b or R,G,B columns", label)


def load_reference(path: str | os.PathLike, *, label: str | None = None) -> tuple[np.ndarray, str]:
    """Read a chart reference file (JSON or CSV, see the module notes).

    Parameters
    ----------
    path : path-like
    label : str, optional
        How the file is named in errors and in the description (default: its file name).

    Returns
    -------
    linear : ndarray, float64, shape (24, 3)
        Linear sRGB (D65) of the 24 patches in chart order, unclipped (for
        :attr:`~skinimg.calibrate.CalibrationParams.reference`).
    description : str
        ``"<label>: CIELAB (D50), Bradford-adapted to D65"`` or ``"<label>: sRGB (0-255)"``
        (for :attr:`~skinimg.calibrate.CalibrationParams.reference_source`).

    Raises
    ------
    SkinImgError
        Unreadable file, not 24 patches, values out of range, unknown illuminant.
    """
    path = Path(path)
    label = path.name if label is None else label
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise SkinImgError("not a JSON or CSV text file (not UTF-8 text)", label) from None
    except OSError as exc:
        raise SkinImgError(f"cannot read the reference file ({exc.strerror or exc})", label) from None
    if any(ch in text for ch in "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0e\x0f\x7f"):
        raise SkinImgError("not a JSON or CSV text file (binary content)", label)
    is_json = path.suffix.lower() == ".json" or text.lstrip().startswith("{")
    linear, how = _from_json(text, label) if is_json else _from_csv(text, label)
    return linear, f"{label}: {how}"

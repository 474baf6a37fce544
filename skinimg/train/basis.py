"""Fitting the chromophore basis (``models/chromophore_basis.json``) from the ensemble of optical models.

    python benchmarks/fit_basis.py [--out models/chromophore_basis.json] [--check]

Reproducible and deterministic.  What is fitted, from the **central model** of the ensemble of
optical skin models (:func:`skinimg.train.ensemble.central_linear_rgb`: the mean optical density of
the fit members of :mod:`skinimg.phantom.ensemble`, each at the same melanin and the same blood
relative to its typical skin; flat, fully lit skin, D65):

1. the linear absorbance directions of Tsumura et al. (1999): least squares
   ``OD = offset + melanin a_mel + hemoglobin a_hb`` over typical skin (melanin
   0.01-0.20, blood 0.4-4 x typical, 20 x 20 grid) -- the reference directions of the
   per-image ICA method;
2. the non-linear model: the shading-free chromaticity and brightness of the central model on
   an 81 x 81 table (melanin 0-0.6, blood 0-0.15 square-spaced; typical skin is
   ``CENTRAL_TYPICAL_BLOOD`` = 0.0116) (:func:`build_chromophore_model`);
3. with it, ``benchmarks/fit_basis.py`` writes the precomputed inversion tables
   (:mod:`skinimg.train.chromophore`).

``--check`` re-fits and compares with the committed file instead of writing it, and
prints the inversion error on random model colours.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from .. import __version__
from ..color import OD_FLOOR, optical_density
from ..indices import CHROMA_AXES, ChromophoreBasis, ChromophoreModel, separate_chromophores
from ..indices.basis import BASIS_FILE
from ..io import model_file, write_bytes
from .ensemble import CENTRAL_TYPICAL_BLOOD, central_linear_rgb

__all__ = ["fit_chromophore_basis", "build_chromophore_model", "fit", "check_inversion", "basis_document",
           "format_basis", "same_document", "main"]


def fit_chromophore_basis(melanin: np.ndarray, hemoglobin: np.ndarray, linear_rgb: np.ndarray, *,
                          floor: float = OD_FLOOR, provenance: dict | None = None) -> ChromophoreBasis:
    """Least-squares absorbance directions from samples of known concentration.

    Fits ``OD = offset + melanin * a_mel + hemoglobin * a_hb`` per channel by
    ordinary least squares, with ``OD = -log10(linear_rgb)``.

    Parameters
    ----------
    melanin, hemoglobin : ndarray, shape (N,)
        Known concentrations (e.g. the grid given to ``skinimg.phantom.skin_linear_rgb``).
    linear_rgb : ndarray, shape (N, 3), linear RGB reflectance in (0, 1], R, G, B
    floor : float
        Reflectance floor of the optical density.
    provenance : dict, optional
        Stored with the basis; ``rms_residual_od`` and ``n_samples`` are added.

    Returns
    -------
    ChromophoreBasis
    """
    m = np.asarray(melanin, dtype=np.float64).ravel()
    h = np.asarray(hemoglobin, dtype=np.float64).ravel()
    od = optical_density(np.asarray(linear_rgb, dtype=np.float64).reshape(-1, 3), floor).astype(np.float64)
    if not (len(m) == len(h) == len(od)) or len(m) < 3:
        raise ValueError("melanin, hemoglobin and linear_rgb must have the same length (at least 3)")
    x = np.column_stack([np.ones_like(m), m, h])
    coef, *_ = np.linalg.lstsq(x, od, rcond=None)
    resid = od - x @ coef
    prov = dict(provenance or {})
    prov.update(n_samples=int(len(m)), rms_residual_od=float(np.sqrt(np.mean(resid**2))))
    return ChromophoreBasis(tuple(coef[1]), tuple(coef[2]), tuple(coef[0]), provenance=prov)


def build_chromophore_model(forward, *, melanin_max: float = 0.6, hemoglobin_max: float = 0.3, n: int = 81,
                            floor: float = OD_FLOOR) -> ChromophoreModel:
    """Tabulate ``forward(melanin, hemoglobin) -> linear RGB`` as a :class:`ChromophoreModel`.

    Parameters
    ----------
    forward : callable
        Vectorised ``(melanin, hemoglobin) arrays -> linear RGB (..., 3)``, e.g.
        ``skinimg.phantom.skin_linear_rgb``.
    melanin_max, hemoglobin_max : float
        Table domain.
    n : int
        Nodes per axis (hemoglobin nodes square-spaced).
    """
    u = np.linspace(0.0, 1.0, n)
    uu, tt = np.meshgrid(u, u, indexing="ij")
    lin = np.asarray(forward(uu * melanin_max, tt * tt * hemoglobin_max), dtype=np.float64)
    od = optical_density(lin, floor).astype(np.float64)
    table = np.concatenate([od @ CHROMA_AXES.T, od.mean(axis=-1, keepdims=True)], axis=-1)
    return ChromophoreModel(float(melanin_max), float(hemoglobin_max), table)


def fit() -> ChromophoreBasis:
    """The basis of the central ensemble model: linear directions on typical skin and the 81 x 81 model table."""
    from ..phantom.ensemble import FIT_MEMBERS, MEMBERS

    m = np.linspace(0.01, 0.20, 20)
    h = CENTRAL_TYPICAL_BLOOD * np.linspace(0.4, 4.0, 20)
    mm, hh = np.meshgrid(m, h, indexing="ij")
    lin = central_linear_rgb(mm, hh)
    linear = fit_chromophore_basis(mm.ravel(), hh.ravel(), lin.reshape(-1, 3))
    model = build_chromophore_model(central_linear_rgb, melanin_max=0.6, hemoglobin_max=0.15, n=81)
    prov = {
        "name": "skinimg ensemble central model, D65",
        "script": "benchmarks/fit_basis.py",
        "source": "skinimg.train.ensemble.central_linear_rgb: mean optical density of the fit members of "
                  "skinimg.phantom.ensemble (equal weights), blood relative to each member's typical skin",
        "members": {k: {"family": MEMBERS[k].family, "typical_blood": MEMBERS[k].typical_blood} for k in FIT_MEMBERS},
        "central_typical_blood": CENTRAL_TYPICAL_BLOOD,
        "optics_sha256": hashlib.sha256(np.asarray(lin, dtype="<f4").tobytes()).hexdigest(),
        "optics_sha256_of": "central_linear_rgb on the linear-fit grid, float32 little-endian",
        "skinimg_version": __version__,
        "linear_fit_grid": {"melanin": [0.01, 0.20, 20], "hemoglobin": [float(h[0]), float(h[-1]), 20]},
        "linear_fit_rms_residual_od": linear.provenance["rms_residual_od"],
        "model_table": {"melanin": [0.0, 0.6, 81], "hemoglobin": "0.15 * (j / 80)**2, j = 0..80"},
        "units": "ensemble units: epidermal melanosome volume fraction; dermal blood volume fraction scaled so that "
                 f"typical skin is {CENTRAL_TYPICAL_BLOOD:.4f} (the geometric mean of the fit members' typical blood)",
    }
    return ChromophoreBasis(linear.melanin_od, linear.hemoglobin_od, linear.offset_od, provenance=prov, model=model)


def check_inversion(basis, n: int = 20000, seed: int = 0) -> dict:
    """Inversion error on noise-free colours of the central model, in groups of one melanin level (an
    "image"): 40 levels in [0.01, 0.45] x n/40 random haemoglobin values in [0.002, 0.1]."""
    rng = np.random.default_rng(seed)
    em, eh = [], []
    for m0 in np.linspace(0.01, 0.45, 40):
        m = np.full(n // 40, m0)
        h = rng.uniform(0.002, 0.1, n // 40)
        od = optical_density(central_linear_rgb(m, h))
        mel, hb = separate_chromophores(od, basis=basis)
        em.append(np.abs(mel - m))
        eh.append(np.abs(hb - h))
    em, eh = np.concatenate(em), np.concatenate(eh)
    return {"melanin_max_abs_err": float(em.max()), "melanin_median_abs_err": float(np.median(em)),
            "melanin_p99_abs_err": float(np.percentile(em, 99)),
            "hemoglobin_max_abs_err": float(eh.max()), "hemoglobin_median_abs_err": float(np.median(eh)),
            "hemoglobin_p99_abs_err": float(np.percentile(eh, 99))}


def format_basis(d: dict) -> str:
    """Indented JSON with the model table written one melanin row per line (diffable, compact)."""
    table = d["model"].pop("table")
    head = json.dumps(d, indent=1, sort_keys=True)
    rows = ",\n".join("  " + json.dumps(row, separators=(",", ":")) for row in table)
    d["model"]["table"] = table
    marker = '"model": {'
    i = head.index(marker) + len(marker)
    return head[:i] + '\n  "table": [\n' + rows + "\n  ]," + head[i:] + "\n"


def same_document(a, b, *, rel: float = 1e-9) -> bool:
    """Whether two basis documents (parsed JSON) are equal: the same keys and strings, numbers within ``rel``.

    The last printed digit of a float may differ between NumPy versions (summation order); the file is current
    when every number agrees to ``rel``.
    """
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same_document(a[k], b[k], rel=rel) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(same_document(x, y, rel=rel) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return (isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool)
                and abs(a - b) <= rel * max(abs(a), abs(b)))
    return a == b


def basis_document(basis: ChromophoreBasis) -> dict:
    """The JSON document of ``basis`` with its inversion check (:func:`check_inversion`) in the provenance."""
    d = basis.to_dict()
    d["provenance"]["inversion_check"] = {"n": 20000, "melanin": [0.01, 0.45], "hemoglobin": [0.002, 0.1],
                                          **check_inversion(basis)}
    return d


def main(argv=None) -> int:
    """``python benchmarks/fit_basis.py [--out PATH] [--check]``: write (or check) the basis file and, beside
    the default basis, the precomputed inversion tables (:mod:`skinimg.train.chromophore`)."""
    from .chromophore import check_tables, write_tables

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(model_file(BASIS_FILE)))
    ap.add_argument("--check", action="store_true", help="compare with the existing files instead of writing")
    a = ap.parse_args(argv)
    d = basis_document(fit())
    err = {k: v for k, v in d["provenance"]["inversion_check"].items() if k.endswith("_err")}
    text = format_basis(d)
    default = Path(a.out).resolve() == Path(model_file(BASIS_FILE)).resolve()
    if a.check:
        same = same_document(json.loads(Path(a.out).read_text(encoding="utf-8")), json.loads(text))
        print(json.dumps(err, indent=1))
        print("committed basis is", "up to date" if same else "STALE (re-run without --check)")
        tables = check_tables() if default and same else None
        if tables is not None:
            print("committed inversion tables are", "up to date" if tables else "STALE (re-run without --check)")
        return 0 if same and tables is not False else 1
    write_bytes(a.out, text.encode("utf-8"))
    os.chmod(a.out, 0o644)
    print(f"wrote {a.out}")
    if default:
        from ..indices import clear_basis_cache

        clear_basis_cache()
        for p in write_tables():
            os.chmod(p, 0o644)
            print(f"wrote {p}")
    print(json.dumps(err, indent=1))
    return 0

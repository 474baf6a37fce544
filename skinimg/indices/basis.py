"""The calibrated chromophore basis: absorbance directions and the non-linear skin-colour model it carries.

Stored in ``models/chromophore_basis.json`` (fitted by :mod:`skinimg.train.basis`); found through
:func:`skinimg.io.models_dir` when it is read, so ``$SKINIMG_MODELS`` is honoured.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import SkinImgError
from ..io import model_file

__all__ = ["BASIS_FILE", "BASIS_FORMAT", "DEFAULT_BASIS_PATH", "ChromophoreModel", "ChromophoreBasis", "CHROMA_AXES",
           "load_basis", "basis_digest", "TABLES_FILE", "TABLES_FORMAT", "load_tables", "clear_basis_cache"]

#: File name of the calibrated basis in :func:`skinimg.io.models_dir`.
BASIS_FILE = "chromophore_basis.json"
#: Default location of the calibrated chromophore basis (at import; the loaders look it up when called).
DEFAULT_BASIS_PATH = model_file(BASIS_FILE)
BASIS_FORMAT = "skinimg-chromophore-basis/1"
#: Precomputed inversion tables of the default basis (written by :mod:`skinimg.train.chromophore`).
TABLES_FILE = "chromophore_tables.npz"
TABLES_FORMAT = "skinimg-chromophore-tables/1"

# ----------------------------------------------------------------------------- chromophore basis


@dataclass(frozen=True, eq=False)
class ChromophoreModel:
    """Calibrated forward model of skin colour, inverted per colour (see :func:`separate_chromophores`).

    Attributes
    ----------
    melanin_max, hemoglobin_max : float
        Domain of the table: melanin in [0, melanin_max], hemoglobin in [0, hemoglobin_max].
    table : ndarray, float64, shape (n_m, n_t, 3)
        For skin with melanin ``m_i = melanin_max * i / (n_m - 1)`` and hemoglobin
        ``h_j = hemoglobin_max * (j / (n_t - 1))**2`` (square spacing: finer at low
        blood): its shading-free chromaticity ``(OD @ E1, OD @ E2)`` (:data:`CHROMA_AXES`)
        and its mean OD (brightness, used only to choose between two skins of the same
        chromaticity).
    """

    melanin_max: float
    hemoglobin_max: float
    table: np.ndarray
    #: optional precomputed multi-start roots ``(lo, step, light, dark)`` on the 96 x 96 grid (members' tables)
    inverse: tuple | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        return {
            "melanin_max": float(self.melanin_max),
            "hemoglobin_max": float(self.hemoglobin_max),
            "table": np.round(self.table, 6).tolist(),
        }


#: Orthonormal axes of the plane perpendicular to (1, 1, 1) in OD space: projecting OD on
#: them removes any shift along (1, 1, 1) (shading, exposure gain).
CHROMA_AXES = np.array([[1.0, -1.0, 0.0], [1.0, 1.0, -2.0]]) / np.array([[math.sqrt(2.0)], [math.sqrt(6.0)]])


@dataclass(frozen=True)
class ChromophoreBasis:
    """Absorbance directions of melanin and haemoglobin in optical-density (RGB) space.

    Linear model (Tsumura et al. 1999):
    ``OD = offset + melanin * melanin_od + hemoglobin * hemoglobin_od + s * (1, 1, 1)``.
    A calibrated basis also carries a :class:`ChromophoreModel` (the non-linear
    forward model the linear one approximates), which :func:`separate_chromophores`
    inverts when present.

    Attributes
    ----------
    melanin_od, hemoglobin_od : tuple of 3 floats
        OD (R, G, B) per unit concentration (model volume fraction).
    offset_od : tuple of 3 floats
        OD of chromophore-free skin.
    provenance : dict
        How the basis was obtained (script, data, fit residual, version).
    model : ChromophoreModel or None
    """

    melanin_od: tuple
    hemoglobin_od: tuple
    offset_od: tuple
    provenance: dict = field(default_factory=dict, compare=False)
    model: ChromophoreModel | None = field(default=None, compare=False)

    def to_dict(self) -> dict:
        d = {
            "format": BASIS_FORMAT,
            "melanin_od": [float(v) for v in self.melanin_od],
            "hemoglobin_od": [float(v) for v in self.hemoglobin_od],
            "offset_od": [float(v) for v in self.offset_od],
            "provenance": self.provenance,
        }
        if self.model is not None:
            d["model"] = self.model.to_dict()
        return d

    def unmixing(self) -> tuple[np.ndarray, np.ndarray]:
        """``(W, c0)`` with ``[melanin, hemoglobin] = OD @ W.T - c0``; W is (2, 3), c0 (2,).

        Rows 0-1 of the inverse of ``[a_mel, a_hb, (1,1,1)]``: shading along
        (1, 1, 1) is removed exactly.
        """
        m = np.column_stack([self.melanin_od, self.hemoglobin_od, np.ones(3)]).astype(np.float64)
        if abs(np.linalg.det(m)) < 1e-9:
            raise SkinImgError("chromophore basis is degenerate (directions coplanar with (1,1,1))")
        w = np.linalg.inv(m)[:2]
        return w, w @ np.asarray(self.offset_od, dtype=np.float64)


@lru_cache(maxsize=8)
def _load_basis_cached(path: str) -> ChromophoreBasis:
    p = Path(path)
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SkinImgError("chromophore basis file not found (run benchmarks/fit_basis.py)", path) from None
    except (OSError, ValueError) as exc:
        raise SkinImgError(f"cannot read chromophore basis ({exc})", path) from None
    if d.get("format") != BASIS_FORMAT:
        raise SkinImgError(f"not a chromophore basis file (format {d.get('format')!r}, expected {BASIS_FORMAT})", path)
    try:
        vals = [tuple(float(v) for v in d[k]) for k in ("melanin_od", "hemoglobin_od", "offset_od")]
    except (KeyError, TypeError, ValueError):
        raise SkinImgError("chromophore basis file lacks melanin_od / hemoglobin_od / offset_od", path) from None
    if any(len(v) != 3 or not all(math.isfinite(x) for x in v) for v in vals):
        raise SkinImgError("chromophore basis vectors must be 3 finite numbers", path)
    model = None
    if d.get("model") is not None:
        try:
            md = d["model"]
            table = np.asarray(md["table"], dtype=np.float64)
            model = ChromophoreModel(float(md["melanin_max"]), float(md["hemoglobin_max"]), table)
            ok = table.ndim == 3 and table.shape[2] == 3 and min(table.shape[:2]) >= 4
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok or not np.isfinite(model.table).all():
            raise SkinImgError("chromophore basis has a malformed model table", path)
    return ChromophoreBasis(*vals, provenance=d.get("provenance", {}), model=model)


@lru_cache(maxsize=8)
def _basis_digest_cached(path: str) -> str:
    return hashlib.sha256(json.dumps(_load_basis_cached(path).to_dict(), sort_keys=True).encode()).hexdigest()


def _default(path: str | Path | None) -> str:
    return str(Path(path) if path is not None else model_file(BASIS_FILE))


def basis_digest(path: str | Path | None = None) -> str:
    """SHA-256 of a chromophore basis' content (recorded with the results)."""
    return _basis_digest_cached(_default(path))


def load_basis(path: str | Path | None = None) -> ChromophoreBasis:
    """Load a chromophore basis JSON (default ``models/chromophore_basis.json``); cached."""
    return _load_basis_cached(_default(path))


@lru_cache(maxsize=4)
def _load_tables_cached(path: str, digest: str) -> dict | None:
    p = Path(path)
    if not p.exists():
        return None
    try:
        prov = json.loads(p.with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SkinImgError(f"cannot read the provenance of the chromophore tables ({exc})", p.with_suffix(".json").name) from None
    if prov.get("format") != TABLES_FORMAT:
        raise SkinImgError(f"not chromophore tables (format {prov.get('format')!r}, expected {TABLES_FORMAT})", p.name)
    if prov.get("basis_sha256") != digest:
        raise SkinImgError("chromophore tables were made for another basis (run benchmarks/fit_basis.py)", p.name)
    try:
        with np.load(p, allow_pickle=False) as z:
            out = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise SkinImgError(f"cannot read chromophore tables ({exc})", p.name) from None
    need = ("central_candidates", "central_lo", "central_step", "member_names", "member_forward", "member_inverse")
    if any(k not in out for k in need) or out["central_candidates"].ndim != 3 or out["central_candidates"].shape[2] != 6:
        raise SkinImgError("chromophore tables are malformed", p.name)
    return out


def load_tables(basis_path: str | Path | None = None) -> dict | None:
    """Precomputed inversion tables of the basis at ``basis_path`` (default basis only); cached.

    Returns the arrays of ``models/chromophore_tables.npz`` (see :mod:`skinimg.train.chromophore`), or
    None for another basis or when the file is absent (the library then computes the central table
    itself, with identical results).  Tables made for another basis are an error.
    """
    default = model_file(BASIS_FILE)
    if basis_path is not None and Path(basis_path).resolve() != Path(default).resolve():
        return None
    return _load_tables_cached(str(model_file(TABLES_FILE)), basis_digest(basis_path))


def clear_basis_cache() -> None:
    """Forget loaded bases and tables (after a fitting step rewrote the files in the same process)."""
    _load_basis_cached.cache_clear()
    _basis_digest_cached.cache_clear()
    _load_tables_cached.cache_clear()

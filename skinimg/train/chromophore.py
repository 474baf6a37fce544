"""Precomputed inversion tables of the chromophore separation (``models/chromophore_tables.npz``).

The default chromophore basis (:mod:`skinimg.train.basis`) carries the central ensemble model
(:func:`skinimg.train.ensemble.central_linear_rgb`) as an 81 x 81 forward table.  Inverting it
per colour needs the model's roots on a fine chromaticity grid (:func:`skinimg.indices.chromophores`'s
candidate table, Newton's method from a multi-start grid): about a second of work that never
changes, so it is computed here once and stored, with

* ``central_candidates`` float32 (G, G, 6), ``central_lo``, ``central_step`` (2,): exactly what
  the library would compute for the basis' model (a test checks it within 1e-6);
* per fit member of the ensemble (for the model range of a change, ``delta_pct_model_range``):
  ``member_names``, ``member_typical_blood``, ``member_hemoglobin_max``, ``member_reference_det``
  (the member's conditioning at its typical light skin), the forward table
  ``member_forward`` float32 (K, 81, 81, 3) and the multi-start inverse grid ``member_inverse``
  float16 (K, 96, 96, 4: light u, t, dark u, t) with ``member_inverse_lo`` / ``_step`` (K, 2),
  from which the library refines each colour by three Newton steps.

The provenance JSON beside it (``chromophore_tables.json``) records the basis digest the tables
were derived from (the library refuses tables of another basis), the members and the SHA-256
of the NPZ file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from .. import __version__
from ..indices import ChromophoreBasis, basis_digest, load_basis
from ..indices.basis import BASIS_FILE, TABLES_FILE, TABLES_FORMAT
from ..indices import CANDIDATE_GRID, compute_candidate_table, multistart_roots
from ..io import model_file, write_bytes, write_json
from ..phantom.ensemble import FIT_MEMBERS, MEMBERS
from .basis import build_chromophore_model

__all__ = ["MEMBER_HB_RANGE", "member_model", "build_tables", "write_tables", "check_tables"]

#: Forward tables of the members span blood 0 .. MEMBER_HB_RANGE x typical blood (melanin 0 .. 0.6).
MEMBER_HB_RANGE = 13.0


def member_model(name: str):
    """The :class:`~skinimg.indices.ChromophoreModel` (81 x 81, float32-rounded) of ensemble member ``name``."""
    m = MEMBERS[name]
    model = build_chromophore_model(lambda a, b: m.linear_rgb(a, b), melanin_max=0.6,
                                    hemoglobin_max=MEMBER_HB_RANGE * m.typical_blood, n=81)
    return type(model)(model.melanin_max, model.hemoglobin_max, model.table.astype(np.float32).astype(np.float64))


def build_tables(basis: ChromophoreBasis | None = None, members=FIT_MEMBERS) -> dict:
    """The arrays of ``chromophore_tables.npz`` for ``basis`` (default: the committed basis)."""
    basis = basis if basis is not None else load_basis()
    lo, step, table = compute_candidate_table(basis.model, CANDIDATE_GRID)
    out = {"central_candidates": table, "central_lo": np.asarray(lo, np.float64),
           "central_step": np.asarray(step, np.float64)}
    fwd, inv, ilo, istep, typ, hmax, ref = [], [], [], [], [], [], []
    for name in members:
        model = member_model(name)
        glo, gstep, light, dark = multistart_roots(model)
        ref.append(_reference_det(name, model))
        fwd.append(model.table.astype(np.float32))
        inv.append(np.concatenate([light, dark], axis=-1).astype(np.float16))
        ilo.append(glo)
        istep.append(gstep)
        typ.append(MEMBERS[name].typical_blood)
        hmax.append(model.hemoglobin_max)
    out.update(member_names=np.asarray(members, dtype="U32"), member_typical_blood=np.asarray(typ, np.float64),
               member_hemoglobin_max=np.asarray(hmax, np.float64), member_forward=np.stack(fwd),
               member_inverse=np.stack(inv), member_inverse_lo=np.asarray(ilo, np.float64),
               member_inverse_step=np.asarray(istep, np.float64), member_reference_det=np.asarray(ref, np.float64))
    return out


def _reference_det(name: str, model) -> float:
    """|det| of the member's chromaticity Jacobian (per unit melanin / square-root blood coordinate) at its typical
    light skin (ITA 48 degrees, typical blood): the scale of its conditioning (:mod:`skinimg.indices.ensemble`)."""
    from ..indices import conditioning
    from .ensemble import tone_melanin

    m = MEMBERS[name]
    u = tone_melanin(m, 48.0) / model.melanin_max
    t = np.sqrt(m.typical_blood / model.hemoglobin_max)
    return float(conditioning(model, np.array([u]), np.array([t]))[0])


def _npz_bytes(arrays: dict) -> bytes:
    import io

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def write_tables(out_dir: str | Path | None = None, basis_path: str | Path | None = None) -> tuple[Path, Path]:
    """Write ``chromophore_tables.npz`` and its provenance JSON into ``out_dir`` (default ``models/``)."""
    out_dir = Path(out_dir) if out_dir is not None else model_file(TABLES_FILE).parent
    basis = load_basis(basis_path)
    arrays = build_tables(basis)
    data = _npz_bytes(arrays)
    npz = out_dir / TABLES_FILE
    write_bytes(npz, data)
    prov = {
        "format": TABLES_FORMAT,
        "file": TABLES_FILE,
        "sha256": hashlib.sha256(data).hexdigest(),
        "basis_file": BASIS_FILE,
        "basis_sha256": basis_digest(basis_path),
        "script": "benchmarks/fit_basis.py (skinimg.train.chromophore.write_tables)",
        "skinimg_version": __version__,
        "central_candidates": {"grid": int(arrays["central_candidates"].shape[0]),
                               "what": "light/dark roots (u, t) and model brightness of the basis' model per chromaticity"},
        "members": {str(n): MEMBERS[str(n)].to_dict() for n in arrays["member_names"]},
        "member_tables": {"forward": "81 x 81 (melanin 0..0.6, blood 0..13 x typical, square-spaced)",
                          "inverse": "96 x 96 multi-start Newton roots, float16 (refined by 3 Newton steps at use)"},
    }
    js = npz.with_suffix(".json")
    write_json(js, prov)
    return npz, js


def check_tables(out_dir: str | Path | None = None) -> bool:
    """Whether the committed tables equal a fresh build (arrays within 1e-6, same basis digest)."""
    out_dir = Path(out_dir) if out_dir is not None else model_file(TABLES_FILE).parent
    prov = json.loads((out_dir / TABLES_FILE).with_suffix(".json").read_text(encoding="utf-8"))
    if prov.get("basis_sha256") != basis_digest():
        return False
    fresh = build_tables()
    with np.load(out_dir / TABLES_FILE, allow_pickle=False) as z:
        for k, v in fresh.items():
            a = z[k]
            if a.shape != v.shape:
                return False
            if v.dtype.kind in "fc" and not np.allclose(a.astype(np.float64), v.astype(np.float64), rtol=0, atol=1e-6):
                return False
            if v.dtype.kind not in "fc" and not np.array_equal(a, v):
                return False
    return True

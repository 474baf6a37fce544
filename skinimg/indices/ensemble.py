"""The model range of a chromophore change: every fit member of the ensemble of optical models reads the photos.

The default chromophore basis inverts the *central* model of an ensemble of optical skin models
(:mod:`skinimg.phantom.ensemble`, :mod:`skinimg.train.ensemble`).  How much a change of colour
means in blood or melanin depends on the model (above all on how light travels in the dermis:
a homogeneous dermis reads a given colour change as a larger relative change of blood than a
Beer-Lambert dermis).  :func:`member_values` reads the same skin with each fit member instead:
the spread of a relative change over the members is the model uncertainty of that change
(``delta_pct_model_range`` of :mod:`skinimg.session`).

The members' forward tables and multi-start roots are precomputed in ``models/chromophore_tables.npz``
(:mod:`skinimg.train.chromophore`); each colour is solved by three Newton steps per member, on
the member's own twin branch (chosen from brightness like the central's, shared between the
photos of one comparison), melanin shading-corrected like the central's.  Haemoglobin is in each
member's units divided by its typical blood, times the central typical blood, so all members
read typical skin alike; only relative changes are compared.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from functools import lru_cache

import numpy as np

from ..errors import SkinImgError
from .basis import CHROMA_AXES, TABLES_FILE, ChromophoreModel, load_basis, load_tables
from .chromophores import _branch_from, _model_eval, _solve_candidates
from .kernels import _crop_box, _pad, _pooled_skin_od, _prepare
from .params import IndexParams

__all__ = ["member_names", "member_maps", "shared_member_branches", "conditioning", "CONDITIONING_MIN"]

#: A member reads a photo only where its chromaticity map is at least this well conditioned, relative to its
#: typical light skin (median over the skin of |det| of the Jacobian at its roots): next to its fold, where two
#: skins share a chromaticity, a member's inverse magnifies every colour difference (noise, the other models'
#: cross-talk) into a change of any size.
CONDITIONING_MIN = 0.15


@lru_cache(maxsize=2)
def _members(digest_key: str) -> tuple:
    tables = load_tables()
    if tables is None:
        raise SkinImgError("the model range needs the precomputed member tables (run benchmarks/fit_basis.py)",
                           TABLES_FILE)
    base = load_basis()
    out = []
    central_typical = float(base.provenance.get("central_typical_blood", 1.0))
    for k, name in enumerate(tables["member_names"]):
        hmax = float(tables["member_hemoglobin_max"][k])
        inv = tables["member_inverse"][k].astype(np.float64)
        grid = (tables["member_inverse_lo"][k], tables["member_inverse_step"][k], inv[..., :2], inv[..., 2:])
        model = ChromophoreModel(0.6, hmax, tables["member_forward"][k].astype(np.float64), inverse=grid)
        scale = central_typical / float(tables["member_typical_blood"][k])
        ref = float(tables["member_reference_det"][k]) if "member_reference_det" in tables else 1.0
        out.append((str(name), replace(base, model=model), scale, ref))
    return tuple(out)


def _load():
    return _members(str(id(load_tables())))


def conditioning(model: ChromophoreModel, u: np.ndarray, t: np.ndarray) -> np.ndarray:
    """|det| of ``model``'s chromaticity Jacobian at (u, t) (table coordinates); float64 (N,)."""
    _, du, dt = _model_eval(model.table[..., :2], np.asarray(u, np.float64), np.asarray(t, np.float64))
    return np.abs(du[:, 0] * dt[:, 1] - du[:, 1] * dt[:, 0])


def member_names() -> list[str]:
    """Names of the fit members that read the model range (from ``models/chromophore_tables.npz``)."""
    return [m[0] for m in _load()]


def _skin(rgb, mask, params, basis, branch):
    from .maps import _Skin  # the per-image machinery of the central reading

    return _Skin(rgb, mask, replace(params, branch=branch), basis=basis, direct=True, chromophores_only=True)


def shared_member_branches(images: Sequence[tuple[np.ndarray, np.ndarray]], *,
                           params: IndexParams | None = None) -> dict[str, str]:
    """One twin branch per member for several photos of the same skin (pooled, as
    :func:`skinimg.indices.choose_shared_branch` does for the central model)."""
    params = params or IndexParams()
    out = {}
    prepared = _pooled_skin_od(images, params)
    for name, basis, _, _ in _load():
        if not prepared:
            out[name] = "light"
            continue
        cands = [_solve_candidates(od @ CHROMA_AXES.T, basis.model) for od, _ in prepared]
        pooled = [np.concatenate([c[i] for c in cands]) for i in range(6)]
        bright = np.concatenate([od.mean(axis=1) for od, _ in prepared]).astype(np.float32)
        out[name] = _branch_from(pooled, bright, np.concatenate([w for _, w in prepared]))
    return out


def member_maps(rgb: np.ndarray, mask: np.ndarray, *, params: IndexParams | None = None,
                branches: dict[str, str] | None = None) -> dict[str, dict[str, np.ndarray]]:
    """``hemoglobin`` and ``melanin`` maps of the photo as read by every fit member.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), encoded sRGB uint8 / uint16 / float in [0, 1], R, G, B
    mask : ndarray of bool, shape (H, W)
    params : IndexParams, optional
        Smoothing, shading correction and OD floor as for the central maps.
    branches : dict, optional
        Twin branch per member (:func:`shared_member_branches`); chosen per photo when absent.

    Returns
    -------
    dict member name -> {"hemoglobin": float32 (H, W), "melanin": float32 (H, W), "conditioning_map": float32
    (H, W), "conditioning": float}, maps NaN off skin; haemoglobin in central units (member blood x central
    typical / member typical); ``conditioning_map``: the member's |det| of its chromaticity Jacobian at each
    pixel's roots relative to its typical light skin, ``conditioning`` its median over the skin (below
    :data:`CONDITIONING_MIN` the member cannot resolve a change of that skin: next to its fold).
    """
    params = params or IndexParams()
    rgb, mask = _prepare(rgb, mask)
    box = _crop_box(mask, _pad(params))
    mc = np.ascontiguousarray(mask[box])
    out = {}
    for name, basis, scale, ref in _load():
        sk = _skin(rgb[box], mc, params, basis, (branches or {}).get(name, "auto"))
        cond = _conditioning_pixels(sk, basis.model, ref)
        maps = {"conditioning": float(np.nanmedian(cond)) if cond.size and np.isfinite(cond).any() else float("nan")}
        for key, values in (("hemoglobin", None), ("melanin", None), ("conditioning_map", cond)):
            full = np.full(mask.shape, np.nan, dtype=np.float32)
            crop = np.full(mc.shape, np.nan, dtype=np.float32)
            if sk.n:
                crop[mc] = values if values is not None else (
                    sk.pixels(key) * (np.float32(scale) if key == "hemoglobin" else np.float32(1.0)))
            full[box] = crop
            maps[key] = full
        out[name] = maps
    return out


def _conditioning_pixels(sk, model: ChromophoreModel, ref: float) -> np.ndarray:
    """Per skin pixel (mask order), the member's |det| at its roots relative to ``ref``; float32 (N,)."""
    if not sk.n:
        return np.empty(0, dtype=np.float32)
    ch = sk.chromophores
    u = ch["root_melanin"] / np.float32(model.melanin_max)
    t = np.sqrt(np.clip(ch["hemoglobin"], 0.0, None) / np.float32(model.hemoglobin_max))
    d = (conditioning(model, u, t) / max(ref, 1e-12)).astype(np.float32)
    return d if sk.weights is None else d[sk._pos]

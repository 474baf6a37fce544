"""Melanin and haemoglobin from optical density: inverting the calibrated model, the twin branch, ICA.

See :mod:`skinimg.indices` for the method and its references (Tsumura et al. 1999/2003).
"""

from __future__ import annotations

import math
from dataclasses import replace
from functools import lru_cache

import numpy as np

from ..color import rgb_to_optical_density
from .basis import CHROMA_AXES, ChromophoreBasis, ChromophoreModel, load_basis, load_tables
from .params import _CHUNK

__all__ = ["separate_chromophores", "choose_branch", "estimate_basis_ica", "CANDIDATE_GRID", "compute_candidate_table",
           "multistart_roots"]


def _model_eval(table: np.ndarray, u: np.ndarray, t: np.ndarray, *, jacobian: bool = True):
    """Bilinear interpolation of ``table`` (n, n, k) at (u, t), with its Jacobian.

    Inside [0, 1]^2 the table is interpolated; outside, the border cells are extended
    linearly (so that noise around zero concentration is not clipped into a bias).
    ``jacobian=False`` returns ``(val, None, None)``.  The four corners are gathered by one flat row index
    (``table[i, j]`` is row ``i * n + j`` of the (n * n, k) table): the same values, about a tenth less CPU on
    480 000 points (a fifth without the Jacobian).
    """
    nm, nt = table.shape[:2]
    x = u * (nm - 1)
    y = t * (nt - 1)
    i = np.clip(np.floor(x), 0, nm - 2).astype(np.int64)
    j = np.clip(np.floor(y), 0, nt - 2).astype(np.int64)
    fx = (x - i)[:, None]
    fy = (y - j)[:, None]
    flat = table.reshape(nm * nt, -1)  # a copy for a view of some columns: tables are small (81 x 81)
    k = i * nt
    k += j
    p00, p01 = flat[k], flat[k + 1]
    k += nt
    p10, p11 = flat[k], flat[k + 1]
    a = p00 + (p10 - p00) * fx
    b = p01 + (p11 - p01) * fx
    val = a + (b - a) * fy
    if not jacobian:
        return val, None, None
    du = ((p10 - p00) * (1 - fy) + (p11 - p01) * fy) * (nm - 1)
    dt = (b - a) * (nt - 1)
    return val, du, dt


_U_MIN, _T_MIN = -0.1, -0.3  # linear extrapolation below zero concentration (unbiased noise)


def _newton(table: np.ndarray, p: np.ndarray, u: np.ndarray, t: np.ndarray, iters: int, descent: bool = True):
    """Damped Newton on the chromaticity (first 2 columns of ``table``); returns u, t, residual.

    Where Newton's method does not end at a root (residual above 1e-6), :func:`_descent` is run from the same
    start (unless ``descent`` is false) and the lower residual is kept: beyond the model's gamut (a colour no (u, t) makes, e.g. skin lighter
    than the model's lightest, or past the fold where the twin roots meet) plain Newton wanders to the table's
    edge, while the descent comes to rest at a local least-squares point, the nearest colour the model makes, so
    that the result moves continuously with the colour (a retake does not jump between far-apart readings).
    """
    chroma = table[..., :2]
    u0, t0 = u, t
    for _ in range(iters):
        val, du, dt = _model_eval(chroma, u, t)
        r = p - val
        det = du[:, 0] * dt[:, 1] - du[:, 1] * dt[:, 0]
        det = np.where(np.abs(det) < 1e-12, 1e-12, det)
        su = (dt[:, 1] * r[:, 0] - dt[:, 0] * r[:, 1]) / det
        st = (du[:, 0] * r[:, 1] - du[:, 1] * r[:, 0]) / det
        u = np.clip(u + np.clip(su, -0.1, 0.1), _U_MIN, 1.0)
        t = np.clip(t + np.clip(st, -0.15, 0.15), _T_MIN, 1.0)
    val, _, _ = _model_eval(chroma, u, t, jacobian=False)
    res = np.abs(p - val).max(axis=1)
    far = np.flatnonzero(res > 1e-6) if descent else ()
    if len(far):
        ud, td, rd = _descent(chroma, p[far], u0[far], t0[far], iters)
        take = rd < res[far]
        u, t, res = u.copy(), t.copy(), res.copy()
        u[far[take]], t[far[take]], res[far[take]] = ud[take], td[take], rd[take]
    return u, t, res


def _descent(chroma: np.ndarray, p: np.ndarray, u: np.ndarray, t: np.ndarray, iters: int):
    """Newton's method that keeps a step only where it lowers the squared residual; elsewhere the best of the
    Newton step halved and quartered and a projected gradient step of ``|p - chroma(u, t)|^2`` (Gauss-Newton
    scale, x1, 1/2, 1/4, 1/10) is taken if it lowers the residual, or the point stays (:func:`_newton`)."""
    val, du, dt = _model_eval(chroma, u, t)
    r = p - val
    rn = np.einsum("ij,ij->i", r, r)
    for _ in range(iters):
        det = du[:, 0] * dt[:, 1] - du[:, 1] * dt[:, 0]
        det = np.where(np.abs(det) < 1e-12, 1e-12, det)
        su = (dt[:, 1] * r[:, 0] - dt[:, 0] * r[:, 1]) / det
        st = (du[:, 0] * r[:, 1] - du[:, 1] * r[:, 0]) / det
        new = _trial(chroma, p, np.clip(u + np.clip(su, -0.1, 0.1), _U_MIN, 1.0),
                     np.clip(t + np.clip(st, -0.15, 0.15), _T_MIN, 1.0))
        worse = np.flatnonzero(new[5] > rn)
        if len(worse):
            gu = -np.einsum("ij,ij->i", du[worse], r[worse])  # half the gradient of |r|^2
            gt = -np.einsum("ij,ij->i", dt[worse], r[worse])
            scale = np.einsum("ij,ij->i", du[worse], du[worse]) + np.einsum("ij,ij->i", dt[worse], dt[worse]) + 1e-12
            steps = [(f * np.clip(su[worse], -0.1, 0.1), f * np.clip(st[worse], -0.15, 0.15)) for f in (0.5, 0.25)]
            steps += [(-f * gu / scale, -f * gt / scale) for f in (1.0, 0.5, 0.25, 0.1)]
            for step_u, step_t in steps:
                trial = _trial(chroma, p[worse], np.clip(u[worse] + step_u, _U_MIN, 1.0),
                               np.clip(t[worse] + step_t, _T_MIN, 1.0))
                better = trial[5] < new[5][worse]
                for dst, src in zip(new, trial):
                    dst[worse[better]] = src[better]
            stay = worse[new[5][worse] > rn[worse]]
            for dst, src in zip(new, (u, t, du, dt, r, rn)):
                dst[stay] = src[stay]
        u, t, du, dt, r, rn = new
    return u, t, np.abs(r).max(axis=1)


def _trial(chroma: np.ndarray, p: np.ndarray, u: np.ndarray, t: np.ndarray):
    """``(u, t, du, dt, residual, squared residual)`` of :func:`_descent` at a trial point."""
    val, du, dt = _model_eval(chroma, u, t)
    r = p - val
    return [u, t, du, dt, r, np.einsum("ij,ij->i", r, r)]


def _inverse_grid(model: ChromophoreModel, g: int = 96):
    """Both roots ("light" and "dark" branch) of chroma(u, t) = q on a g x g grid of q.

    Derived deterministically from the forward table (multi-start Newton): returns
    (lo, step, light (g, g, 2), dark (g, g, 2)) with (u, t) per node; where only one
    root exists both are equal; outside the model's gamut, the closest point found.
    A model carrying precomputed roots (``model.inverse``, the ensemble members of
    ``models/chromophore_tables.npz``) returns them.
    """
    if model.inverse is not None and g == model.inverse[2].shape[0]:
        return model.inverse
    return _inverse_grid_computed(model, g)


@lru_cache(maxsize=4)
def _inverse_grid_computed(model: ChromophoreModel, g: int = 96):
    chroma = model.table[..., :2].reshape(-1, 2)
    lo = chroma.min(axis=0) - 0.05 * np.ptp(chroma, axis=0)
    hi = chroma.max(axis=0) + 0.05 * np.ptp(chroma, axis=0)
    step = (hi - lo) / (g - 1)
    qa, qb = np.meshgrid(lo[0] + step[0] * np.arange(g), lo[1] + step[1] * np.arange(g), indexing="ij")
    q = np.column_stack([qa.ravel(), qb.ravel()])
    starts = [(u0, t0) for u0 in (0.02, 0.15, 0.3, 0.5, 0.75, 0.95) for t0 in (0.15, 0.45, 0.8)]
    us, ts, rs = [], [], []
    for u0, t0 in starts:
        u, t, r = _newton(model.table, q, np.full(len(q), u0), np.full(len(q), t0), 30)
        us.append(u)
        ts.append(t)
        rs.append(r)
    us, ts, rs = np.array(us), np.array(ts), np.array(rs)  # (S, N)
    # roots inside the table; where there are none, roots in its linear extension below zero concentration
    # (noise around zero); where there are none either (beyond the gamut), the least-squares point
    roots = rs < 1e-6
    ok = roots & (us >= 0.0) & (ts >= 0.0)
    ok = np.where(ok.any(axis=0), ok, roots)
    best = np.argmin(rs, axis=0)
    cols = np.arange(len(q))
    big = np.where(ok, us, np.inf)
    small = np.where(ok, us, -np.inf)
    il = np.where(ok.any(axis=0), np.argmin(big, axis=0), best)
    idk = np.where(ok.any(axis=0), np.argmax(small, axis=0), best)
    light = np.stack([us[il, cols], ts[il, cols]], axis=-1).reshape(g, g, 2)
    dark = np.stack([us[idk, cols], ts[idk, cols]], axis=-1).reshape(g, g, 2)
    return lo, step, light, dark


def _solve_candidates(p: np.ndarray, model: ChromophoreModel, iters: int = 3):
    """Light- and dark-branch roots (u, t) of chromaticities ``p`` (N, 2) and their model
    brightness, by Newton from :func:`_inverse_grid`: ``(uL, tL, bL, uD, tD, bD)``.  Newton starts from the
    grid's roots interpolated at ``p``; where that ends at no root, Newton alone from each corner of its grid cell
    (the lowest residual is kept: beyond the gamut, the nearest colour the model makes, see :func:`_newton`)."""
    lo, step, light, dark = _inverse_grid(model)
    g = light.shape[0]
    x = np.clip((p - lo) / step, 0.0, g - 1.0)
    i = np.minimum(x[:, 0].astype(np.int64), g - 2)
    j = np.minimum(x[:, 1].astype(np.int64), g - 2)
    fx = (x[:, 0] - i)[:, None]
    fy = (x[:, 1] - j)[:, None]
    out = []
    for grid in (light, dark):
        a = grid[i, j] + (grid[i + 1, j] - grid[i, j]) * fx
        b = grid[i, j + 1] + (grid[i + 1, j + 1] - grid[i, j + 1]) * fx
        ut = a + (b - a) * fy
        u, t, res = _newton(model.table, p, ut[:, 0], ut[:, 1], iters)
        for di, dj in ((0, 0), (1, 0), (0, 1), (1, 1)):  # no root from the interpolated start: the cell's corners
            far = np.flatnonzero(res > 1e-6)
            if not len(far):
                break
            start = grid[i[far] + di, j[far] + dj].astype(np.float64)
            uc, tc, rc = _newton(model.table, p[far], start[:, 0], start[:, 1], iters, descent=False)
            keep = rc < res[far]
            take = far[keep]
            u[take], t[take], res[take] = uc[keep], tc[keep], rc[keep]
        val, _, _ = _model_eval(model.table[..., 2:], u, t, jacobian=False)
        out += [u, t, val[:, 0]]
    return tuple(out)


#: Nodes per axis of the candidate table (a 256 x 256 grid of chromaticity).
CANDIDATE_GRID = 256


@lru_cache(maxsize=4)
def _candidate_table_computed(model: ChromophoreModel, g: int = CANDIDATE_GRID):
    """:func:`_solve_candidates` tabulated on a fine g x g grid of chromaticity (with :func:`_inverse_grid`
    about a second): ``(lo, step, table (g, g, 6) float32)``."""
    lo, step, light, _ = _inverse_grid(model)
    hi = lo + step * (light.shape[0] - 1)
    fstep = (hi - lo) / (g - 1)
    qa, qb = np.meshgrid(lo[0] + fstep[0] * np.arange(g), lo[1] + fstep[1] * np.arange(g), indexing="ij")
    q = np.column_stack([qa.ravel(), qb.ravel()])
    cols = _solve_candidates(q, model, iters=4)
    return lo, fstep, np.stack(cols, axis=-1).reshape(g, g, 6).astype(np.float32)


def compute_candidate_table(model: ChromophoreModel, g: int = CANDIDATE_GRID):
    """Light and dark roots of ``model`` on a g x g chromaticity grid, computed (what
    ``models/chromophore_tables.npz`` stores for the default basis).

    Returns
    -------
    lo, step : ndarray float64 (2,)
        Chromaticity of node (0, 0) and the node spacing.
    table : ndarray float32 (g, g, 6)
        ``uL, tL, bL, uD, tD, bD`` per node: melanin and square-root haemoglobin coordinates
        of the light and dark root and their model brightness (mean OD).
    """
    return _candidate_table_computed(model, g)


def multistart_roots(model: ChromophoreModel, g: int = 96):
    """``(lo, step, light (g, g, 2), dark (g, g, 2))``: both roots (u, t) of ``model`` on a g x g grid
    of chromaticity by multi-start Newton (the start values of every finer solve)."""
    return _inverse_grid(model, g)


@lru_cache(maxsize=4)
def _candidate_table(model: ChromophoreModel):
    """The candidate table of ``model``: for the default basis' model, the precomputed
    ``models/chromophore_tables.npz`` (:func:`skinimg.indices.basis.load_tables`, loaded in
    milliseconds, equal to the computed table); otherwise :func:`_candidate_table_computed`."""
    if model is load_basis().model:
        tables = load_tables()
        if tables is not None:
            return tables["central_lo"], tables["central_step"], tables["central_candidates"]
    return _candidate_table_computed(model)


def _candidates(od: np.ndarray, model: ChromophoreModel, dtype=np.float64):
    """Light- and dark-branch solutions (u, t) of the chromaticity of ``od`` (N, 3) and their
    model brightness: ``(uL, tL, bL, uD, tD, bD)`` (equal where there is one root), (N,) arrays of
    ``dtype`` (float64, or float32: the interpolated float32 values themselves, for callers that store them so).

    Bilinear interpolation in :func:`_candidate_table` (a fine table of the Newton
    solutions of :func:`_solve_candidates`, precomputed for the default basis): a fixed
    handful of float32 array operations per colour, 4x faster than solving per colour.
    The two agree to about 1e-5 (median) in haemoglobin volume fraction; colours next
    to the fold where the two roots meet differ more (tested).
    """
    lo, step, table = _candidate_table(model)
    g = table.shape[0]
    p = od @ CHROMA_AXES.T
    x = np.clip((p - lo) / step, 0.0, g - 1.0)
    i = np.minimum(x[:, 0].astype(np.int64), g - 2)
    j = np.minimum(x[:, 1].astype(np.int64), g - 2)
    fx = (x[:, 0] - i).astype(np.float32)[:, None]
    fy = (x[:, 1] - j).astype(np.float32)[:, None]
    flat = table.reshape(-1, 6)
    k = i * g + j
    p00, p01 = flat[k], flat[k + 1]
    k += g
    p10, p11 = flat[k], flat[k + 1]
    # a = p00 + (p10 - p00) fx, b = p01 + (p11 - p01) fx, v = a + (b - a) fy: the same float32 operations, in place
    p10 -= p00
    p10 *= fx
    p10 += p00
    p11 -= p01
    p11 *= fx
    p11 += p01
    p11 -= p10
    p11 *= fy
    p11 += p10
    v = p11 if dtype == np.float32 else p11.astype(np.float64)
    return tuple(v[:, c] for c in range(6))


#: Twins closer than this in model mean OD are treated as one root.
_TWIN_GAP = 0.02


def _twin_positions(cands, bright: np.ndarray):
    """(pixels with two distinct candidates, their ``r = (b - b_light) / (b_dark - b_light)``), or (None, None)."""
    bL, bD = cands[2], cands[5]
    two = (bD - bL) > _TWIN_GAP
    if not two.any():
        return None, None
    return two, (bright[two] - bL[two]) / (bD[two] - bL[two])


#: A photo is read on the dark branch only when at least this share of its skin has two candidates: skin is one
#: continuous sheet, so a few twin colours (high-blood patches) in skin that is otherwise single-rooted belong to
#: the light sheet.  The share depends on chromaticity only, not on exposure.
_TWIN_SHARE_MIN = 0.2


def _twin_share(cands, weights: np.ndarray | None) -> float:
    two = (cands[5] - cands[2]) > _TWIN_GAP
    if weights is None:
        return float(np.count_nonzero(two)) / max(1, len(two))
    w = np.asarray(weights, dtype=np.float64)
    return float(w[two].sum() / max(w.sum(), 1e-12))


def _branch_from(cands, bright: np.ndarray, weights: np.ndarray | None) -> str:
    two, r = _twin_positions(cands, bright)
    if two is None or _twin_share(cands, weights) < _TWIN_SHARE_MIN:
        return "light"
    if weights is None:
        q = float(np.percentile(r, 10))
    else:
        w = np.asarray(weights, dtype=np.float64)[two]
        order = np.argsort(r)
        cw = np.cumsum(w[order])
        q = float(r[order][min(int(np.searchsorted(cw, 0.1 * cw[-1])), len(r) - 1)])
    return "dark" if q > 0.5 else "light"


def _branch_shifted(cands, bright: np.ndarray, weights: np.ndarray | None, shift: float) -> str:
    """``_branch_from(cands, bright + shift, weights)`` in one pass for integer weights (no sort): with
    weights the 10th percentile is above 0.5 exactly when the pixels with ``r <= 0.5`` weigh less than a
    tenth of all twin pixels."""
    if weights is None:
        return _branch_from(cands, bright + np.float32(shift), None)
    two, r = _twin_positions(cands, bright + np.float32(shift))
    if two is None or _twin_share(cands, weights) < _TWIN_SHARE_MIN:
        return "light"
    w = np.asarray(weights, dtype=np.float64)[two]
    return "dark" if w[r <= 0.5].sum() < 0.1 * w.sum() else "light"


def choose_branch(od: np.ndarray, model: ChromophoreModel, weights: np.ndarray | None = None) -> str:
    """Per-image choice between the two skins that share a chromaticity ("light" or "dark").

    A photo with under a fifth of its skin twin (a property of its chromaticities alone, so of no
    exposure) is read on the light branch: its few twin colours (high-blood patches) belong to the sheet
    of the rest.  Otherwise only pixels with two distinct candidates count.  For each,
    ``r = (b - b_light) /
    (b_dark - b_light)`` places its brightness (mean OD) between the two candidates'
    model brightness (0 = light twin, 1 = dark twin).  Shading only darkens, so the
    least-shaded pixels (the 10th percentile of ``r``, weighted by ``weights``) decide:
    "dark" if it is above 0.5.  A gain shifts ``r`` by ``-log10(gain) / gap`` for every
    pixel at once, so an exposure error can swap the branch of a whole image when the
    twins are close in brightness (brown and dark skin, see the README).
    """
    od = np.asarray(od, dtype=np.float64).reshape(-1, 3)
    return _branch_from(_candidates(od, model), od.mean(axis=1), weights)


def _finish(cands, bright: np.ndarray, model: ChromophoreModel, branch: str, absolute_melanin: bool = True):
    uL, tL, bL, uD, tD, bD = cands
    u, t = (uD, tD) if branch == "dark" else (uL, tL)
    u = u.astype(np.float64)
    t = t.astype(np.float64)
    if absolute_melanin:
        for _ in range(4):
            val, du, _ = _model_eval(model.table[..., 2:], u, t)
            slope = np.where(np.abs(du[:, 0]) < 1e-9, 1e-9, du[:, 0])
            u = np.clip(u + np.clip((bright - val[:, 0]) / slope, -0.1, 0.1), _U_MIN, 1.0)
    return u * model.melanin_max, t * np.abs(t) * model.hemoglobin_max


def _invert_model(od: np.ndarray, model: ChromophoreModel, branch: str = "light",
                  absolute_melanin: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(melanin, hemoglobin) of colours ``od`` (N, 3) by inverting the calibrated model.

    Haemoglobin comes from the chromaticity alone (Newton on the table, starting from
    :func:`_inverse_grid`), on the ``branch`` chosen for the image where two skins
    share a chromaticity: it does not depend on a gain or on shading.  Melanin is then
    the melanin at which the model's brightness (mean OD) at that haemoglobin matches
    the observed one (``absolute_melanin``): robust at dark tones where chromaticity
    hardly changes with melanin, but it assumes the exposure of the model (a white
    reflector at 1) -- like the melanin index, it reads shading as pigment.
    """
    return _finish(_candidates(od, model), od.mean(axis=1), model, branch, absolute_melanin)


def separate_chromophores(od: np.ndarray, *, basis: ChromophoreBasis | None = None, branch: str | None = None,
                          weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Melanin and haemoglobin concentrations from optical density (Tsumura et al. 1999/2003).

    Shading and exposure shift OD along (1, 1, 1); the projection of OD on the plane
    perpendicular to it (the chromaticity, :data:`CHROMA_AXES`) does not see them.
    With a linear basis (no ``model``; e.g. from ICA) the concentrations are the exact
    solution of ``OD = offset + m a_mel + h a_hb + s (1,1,1)`` (shading removed by
    projection along (1, 1, 1)).  A calibrated basis carries the non-linear forward
    model of skin colour (surface reflection and diffuse dermal reflectance make OD
    non-additive, and two skins can share a chromaticity: light skin with more blood
    and darker skin with less); haemoglobin is found from the chromaticity alone
    (:func:`_invert_model`), on the branch chosen once for the whole array
    (:func:`choose_branch`), and melanin from the brightness at that haemoglobin.

    Parameters
    ----------
    od : ndarray, shape (..., 3), float
        Optical density ``-log10(linear RGB)``, channels R, G, B
        (:func:`skinimg.color.rgb_to_optical_density`), normally the skin pixels of one image.
    basis : ChromophoreBasis, optional
        Default :func:`load_basis`.
    branch : {"light", "dark"}, optional
        Force the branch; default :func:`choose_branch` on ``od`` (a fixed-seed subset
        of at most 200 000 rows).
    weights : ndarray, optional
        Pixel count of each row of ``od`` (when rows are distinct colours), for the branch choice.

    Returns
    -------
    melanin, hemoglobin : ndarray, float32, shape (...)
        Concentrations in the basis units (model volume fractions).
    """
    basis = basis if basis is not None else load_basis()
    od = np.asarray(od)
    shape = od.shape[:-1]
    if basis.model is None:
        w, c0 = basis.unmixing()
        c = od.astype(np.float32, copy=False) @ w.T.astype(np.float32) - c0.astype(np.float32)
        return c[..., 0].astype(np.float32, copy=False), c[..., 1].astype(np.float32, copy=False)
    flat = od.reshape(-1, 3)
    if branch is None:
        wts = None if weights is None else np.asarray(weights).reshape(-1)
        if len(flat) > 200_000:
            sel = np.sort(np.random.default_rng(0).choice(len(flat), 200_000, replace=False))
            branch = choose_branch(flat[sel], basis.model, None if wts is None else wts[sel])
        else:
            branch = choose_branch(flat, basis.model, wts)
    mel = np.empty(len(flat), dtype=np.float32)
    hb = np.empty(len(flat), dtype=np.float32)
    for s in range(0, len(flat), _CHUNK):
        m, h = _invert_model(flat[s : s + _CHUNK].astype(np.float64), basis.model, branch)
        mel[s : s + len(m)] = m
        hb[s : s + len(h)] = h
    return mel.reshape(shape), hb.reshape(shape)


def estimate_basis_ica(od: np.ndarray, *, basis: ChromophoreBasis | None = None, random_state: int = 0,
                       max_samples: int = 200_000, max_angle_deg: float = 35.0) -> tuple[ChromophoreBasis, str]:
    """Per-image absorbance directions by FastICA in the shading-free pigment plane.

    The skin pixels' OD is first mapped to ``(melanin, hemoglobin)`` coordinates
    with the reference ``basis`` (which removes shading along (1, 1, 1), as in
    Tsumura et al. 2003); FastICA (scikit-learn, fixed ``random_state``, unit-variance
    whitening) then finds the two independent directions in that plane (Tsumura et
    al. 1999).  Each ICA direction is matched to the closer basis direction, made
    positive, and scaled so that its own basis coordinate is 1 (units are kept).

    Parameters
    ----------
    od : ndarray, shape (N, 3), float, optical density of skin pixels (R, G, B)
    basis : ChromophoreBasis, optional (default :func:`load_basis`)
    random_state : int
    max_samples : int
        At most this many pixels (fixed-seed random subset) are used to fit.
    max_angle_deg : float
        Reject (return the reference basis) if a direction deviates more than this.

    Returns
    -------
    basis : ChromophoreBasis
        Per-image linear basis (concentrations from the linear model, in the units of
        the reference's linear directions); the reference basis itself when ICA was rejected.
    method : str
        ``"ica"`` or ``"basis (ica rejected: <reason>)"``.
    """
    import warnings

    from sklearn.decomposition import FastICA
    from sklearn.exceptions import ConvergenceWarning

    ref = basis if basis is not None else load_basis()
    basis = replace(ref, model=None)  # ICA refines the linear (Tsumura) model
    od = np.asarray(od, dtype=np.float32).reshape(-1, 3)
    if len(od) < 50:
        return ref, "basis (ica rejected: too few skin pixels)"
    rng = np.random.default_rng(random_state)
    if len(od) > max_samples:
        od = od[np.sort(rng.choice(len(od), size=max_samples, replace=False))]
    m, h = separate_chromophores(od, basis=basis)
    x = np.column_stack([m, h]).astype(np.float64)
    if np.any(x.std(axis=0) < 1e-6):
        return ref, "basis (ica rejected: no variation to separate)"
    ica = FastICA(n_components=2, whiten="unit-variance", random_state=random_state, max_iter=500, tol=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        try:
            ica.fit(x)
        except ConvergenceWarning:
            return ref, "basis (ica rejected: did not converge)"
    a = ica.mixing_  # (2, 2): columns = source directions in (melanin, hemoglobin) coordinates
    cols = a / np.linalg.norm(a, axis=0, keepdims=True)
    # order: which column goes with melanin (axis 0)?
    keep = abs(cols[0, 0]) + abs(cols[1, 1]) >= abs(cols[0, 1]) + abs(cols[1, 0])
    d = a if keep else a[:, ::-1]
    d = d / np.diag(d)[None, :]  # each column scaled so that its own coordinate is +1
    angles = np.degrees(np.arctan(np.abs([d[1, 0], d[0, 1]])))
    if not np.all(np.isfinite(d)) or np.max(angles) > max_angle_deg:
        return ref, f"basis (ica rejected: direction {np.max(angles):.0f} deg from basis)"
    # New 3-D directions: a'_k = d[0,k] a_mel + d[1,k] a_hb (offset unchanged).
    am, ah = np.asarray(basis.melanin_od), np.asarray(basis.hemoglobin_od)
    new_m = d[0, 0] * am + d[1, 0] * ah
    new_h = d[0, 1] * am + d[1, 1] * ah
    prov = {"method": "ica", "reference": basis.provenance.get("name", "chromophore_basis"),
            "angles_deg": [float(v) for v in angles], "n_samples": int(len(x))}
    return ChromophoreBasis(tuple(new_m), tuple(new_h), tuple(basis.offset_od), provenance=prov), "ica"


def _chromophores(px: np.ndarray, weights: np.ndarray | None, basis: ChromophoreBasis, floor: float,
                  branch: str = "auto", direct: bool = False):
    """Melanin, haemoglobin and what the shading correction needs, for one image's skin colours (M, 3).

    With a calibrated model the twin candidates are computed once (in chunks), the
    branch is chosen from all of them (:func:`choose_branch`), then each colour is finished.
    The branch check is ``"stable"`` when the same choice is made with every brightness
    shifted as by an exposure of x0.8 and x1.25, ``"exposure_sensitive"`` when one of them
    swaps it (this photo's haemoglobin alone is then ambiguous: compare photos on a shared
    branch, or calibrate), ``"held"`` for a given branch and None without a model.

    Returns
    -------
    dict with float32 (M,) arrays ``melanin``, ``hemoglobin``, ``root_melanin`` (the shading-free
    melanin of the chromaticity root, before the brightness step), ``residual`` (observed minus
    model brightness at the root, OD: exposure + shading) and ``slope`` (d melanin / d brightness at
    the result), and ``branch``, ``check``; without a model ``residual`` and ``slope`` are None.
    ``direct``: solve each colour by Newton's method from the model's multi-start roots
    (:func:`_solve_candidates`) instead of the candidate table (for models used once, the ensemble members).
    """
    n = len(px)
    mel = np.empty(n, dtype=np.float32)
    hb = np.empty(n, dtype=np.float32)
    if basis.model is None:
        for s in range(0, n, _CHUNK):
            od = rgb_to_optical_density(px[s : s + _CHUNK], floor)
            mel[s : s + len(od)], hb[s : s + len(od)] = separate_chromophores(od, basis=basis)
        return {"melanin": mel, "hemoglobin": hb, "root_melanin": mel, "residual": None, "slope": None,
                "branch": None, "check": None}
    cands = [np.empty(n, dtype=np.float32) for _ in range(6)]
    bright = np.empty(n, dtype=np.float32)
    for s in range(0, n, _CHUNK):
        od = rgb_to_optical_density(px[s : s + _CHUNK], floor).astype(np.float64)
        found = (_solve_candidates(od @ CHROMA_AXES.T, basis.model) if direct
                 else _candidates(od, basis.model, np.float32))
        for dst, src in zip(cands, found):
            dst[s : s + len(od)] = src
        bright[s : s + len(od)] = od.mean(axis=1)
    if branch == "auto":
        branch = _branch_from(cands, bright, weights)
        # would a +-25 % exposure change swap it?  (a gain moves every pixel's brightness by -log10(gain))
        shift = np.float32(math.log10(1.25))
        others = {_branch_shifted(cands, bright, weights, -shift), _branch_shifted(cands, bright, weights, shift)}
        check = "stable" if others == {branch} else "exposure_sensitive"
    else:
        check = "held"
    slope = np.empty(n, dtype=np.float32)
    for s in range(0, n, _CHUNK):
        sl = slice(s, min(n, s + _CHUNK))
        m, h = _finish([c[sl] for c in cands], bright[sl].astype(np.float64), basis.model, branch)
        mel[sl], hb[sl] = m, h
        slope[sl] = _melanin_slope(m / basis.model.melanin_max, np.sqrt(np.clip(h, 0, None) / basis.model.hemoglobin_max),
                                   basis.model)
    dark = branch == "dark"
    return {"melanin": mel, "hemoglobin": hb, "branch": branch, "check": check,
            "root_melanin": (cands[3] if dark else cands[0]) * np.float32(basis.model.melanin_max),
            "residual": bright - (cands[5] if dark else cands[2]), "slope": slope}


def _melanin_slope(u: np.ndarray, t: np.ndarray, model: ChromophoreModel) -> np.ndarray:
    """d melanin / d brightness (per OD) of ``model`` at (u, t): how much a brightness offset moves melanin."""
    _, du, _ = _model_eval(model.table[..., 2:], np.asarray(u, np.float64), np.asarray(t, np.float64))
    # at most 1 melanin per OD (typical skin: 0.3-0.5); beyond the table's gamut the slope is not meaningful
    return np.clip(model.melanin_max / np.maximum(du[:, 0], 1e-3), 0.0, 1.0).astype(np.float32)

"""Colour-correction models: polynomial expansions, least-squares fitting, applying a correction.

:func:`fit_correction` fits a matrix from measured to reference linear sRGB on an expansion of the
measured colours (Cheung et al. 2004 polynomials or Finlayson et al. 2015 root-polynomials);
:func:`apply_correction` applies a correction to every pixel (sRGB decode -> tone curve, when the
correction has one -> expansion -> matrix -> clip -> sRGB encode), keeping dtype and shape.  Fitting a
found chart (model choice by leave-one-patch-out error) is :func:`~skinimg.calibrate.chart_correction`
(:mod:`.select`).
See :mod:`skinimg.calibrate` for the references.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np

from ..color import delta_e_2000, linear_to_srgb, srgb_to_linear
from ..io import check_rgb
from .charts import CalibrationParams, Correction, _E, _lab, _parse_term, _stats, _term_name
from .tone import apply_tone_curve

__all__ = ["expansion_terms", "expand", "fit_correction", "apply_correction", "identity_correction"]


# ----------------------------------------------------------------------------- expansions

_C3 = ["R", "G", "B"]
_C_PAIRS = ["R*G", "R*B", "G*B"]
_C_SQ = ["R^2", "G^2", "B^2"]
_C_CUBE = ["R^3", "G^3", "B^3"]
_CHEUNG = {
    3: _C3,
    4: _C3 + ["1"],
    5: _C3 + ["R*G*B", "1"],
    7: _C3 + _C_PAIRS + ["1"],
    8: _C3 + _C_PAIRS + ["R*G*B", "1"],
    10: _C3 + _C_PAIRS + _C_SQ + ["1"],
    11: _C3 + _C_PAIRS + _C_SQ + ["R*G*B", "1"],
    14: _C3 + _C_PAIRS + _C_SQ + ["R*G*B"] + _C_CUBE + ["1"],
    16: _C3 + _C_PAIRS + _C_SQ + ["R*G*B", "R^2*G", "G^2*B", "R*B^2"] + _C_CUBE,
    17: _C3 + _C_PAIRS + _C_SQ + ["R*G*B", "R^2*G", "G^2*B", "R*B^2"] + _C_CUBE + ["1"],
    19: _C3 + _C_PAIRS + _C_SQ + ["R*G*B", "R^2*G", "G^2*B", "R*B^2", "R^2*B", "R*G^2", "G*B^2"] + _C_CUBE,
    20: _C3 + _C_PAIRS + _C_SQ + ["R*G*B", "R^2*G", "G^2*B", "R*B^2", "R^2*B", "R*G^2", "G*B^2"] + _C_CUBE + ["1"],
    22: _C3 + _C_PAIRS + _C_SQ + ["R*G*B", "R^2*G", "G^2*B", "R*B^2", "R^2*B", "R*G^2", "G*B^2"] + _C_CUBE
    + ["R^2*G*B", "R*G^2*B", "R*G*B^2"],
    35: _C3 + _C_PAIRS + _C_SQ + ["R*G*B", "R^2*G", "G^2*B", "R*B^2", "R^2*B", "R*G^2", "G*B^2"] + _C_CUBE
    + ["R^3*G", "R^3*B", "R*G^3", "G^3*B", "R*B^3", "G*B^3", "R^2*G*B", "R*G^2*B", "R*G*B^2",
       "R^2*G^2", "R^2*B^2", "G^2*B^2", "R^4", "G^4", "B^4", "1"],
}

# Finlayson et al. (2015) root-polynomial terms by degree, in colour-science's order
# (polynomial_expansion_Finlayson2015): every monomial of total degree k, then its k-th root.
_F_DEG = {
    1: ["R", "G", "B"],
    2: ["R*G", "G*B", "R*B"],
    3: ["R*G^2", "G*B^2", "R*B^2", "R^2*G", "G^2*B", "R^2*B", "R*G*B"],
    4: ["R^3*G", "R^3*B", "R*G^3", "G^3*B", "R*B^3", "G*B^3", "R^2*G*B", "R*G^2*B", "R*G*B^2"],
}


def expansion_terms(method: str = "finlayson2015", *, degree: int = 2, terms: int = 10) -> list[str]:
    """The expansion term names of a correction method.

    Parameters
    ----------
    method : {"finlayson2015", "cheung2004", "linear3x3"}
    degree : int
        Root-polynomial degree (1-4) for ``finlayson2015``: 3, 6, 13 or 22 terms.
    terms : int
        Number of terms for ``cheung2004`` (3, 4, 5, 7, 8, 10, 11, 14, 16, 17, 19, 20, 22, 35).

    Returns
    -------
    list of str
        ``"R*G"`` is a monomial, ``"(R*G)^(1/2)"`` its square root, ``"1"`` a constant (offset).

    Notes
    -----
    Same terms and order as colour-science's ``matrix_augmented_Cheung2004`` and
    ``polynomial_expansion_Finlayson2015(root_polynomial_expansion=True)``, so the matrices are
    directly comparable (tested).  Cheung et al. 2004, doi:10.1111/j.1478-4408.2004.tb00201.x;
    Finlayson, Mackiewicz & Hurlbert 2015, doi:10.1109/TIP.2015.2405336.
    """
    if method == "linear3x3":
        return list(_C3)
    if method == "cheung2004":
        if terms not in _CHEUNG:
            raise ValueError(f"cheung2004 defines {sorted(_CHEUNG)} terms, not {terms}")
        return list(_CHEUNG[terms])
    if method == "finlayson2015":
        if degree not in _F_DEG:
            raise ValueError(f"finlayson2015 degree must be 1-4, got {degree}")
        out = []
        for k in range(1, degree + 1):
            out += [t if k == 1 else _term_name(_E(t), k) for t in _F_DEG[k]]
        return out
    raise ValueError(f"unknown method {method!r}; expected finlayson2015, cheung2004 or linear3x3")


def expand(linear: np.ndarray, terms: Sequence[str]) -> np.ndarray:
    """Polynomial / root-polynomial expansion of linear RGB.

    Parameters
    ----------
    linear : ndarray, shape (N, 3), float, linear RGB (R, G, B), >= 0 expected
    terms : sequence of str
        Term names from :func:`expansion_terms`.

    Returns
    -------
    ndarray, shape (N, len(terms)), same float dtype as ``linear`` (float32 or float64).
    Roots of negative products are mirrored (sign kept), as colour-science's ``spow``.
    """
    x = np.asarray(linear)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    out = np.empty((x.shape[0], len(terms)), dtype=x.dtype)
    for j, name in enumerate(terms):
        (a, bb, c), root = _parse_term(name)
        v = np.ones_like(r)
        for ch, k in ((r, a), (g, bb), (b, c)):
            if k:
                v = v * (ch if k == 1 else ch**k)
        if root == 2:
            v = np.copysign(np.sqrt(np.abs(v)), v)
        elif root == 3:
            v = np.cbrt(v)
        elif root > 3:
            v = np.copysign(np.abs(v) ** (1.0 / root), v)
        out[:, j] = v
    return out


# ----------------------------------------------------------------------------- fitting


def fit_correction(
    measured_linear: np.ndarray,
    reference_linear: np.ndarray,
    *,
    method: str = "finlayson2015",
    degree: int = 2,
    terms: int = 10,
    weights: np.ndarray | None = None,
) -> Correction:
    """Least-squares colour-correction matrix from measured to reference linear RGB.

    Solves ``min_M sum_i w_i^2 || M x(measured_i) - reference_i ||^2`` with
    :func:`numpy.linalg.lstsq` (minimum-norm solution, like colour-science's Moore-Penrose
    ``least_square_mapping``; ``w_i = 1`` by default, which is exactly colour-science's fit),
    where ``x`` is the expansion of :func:`expansion_terms`.

    Parameters
    ----------
    measured_linear : ndarray, shape (N, 3), float
        Camera colours of the patches, linear RGB in [0, 1] (R, G, B).
    reference_linear : ndarray, shape (N, 3), float
        Target colours, linear sRGB (D65), same order.
    method : {"finlayson2015", "cheung2004", "linear3x3"}
        Finlayson, Mackiewicz & Hurlbert 2015 root-polynomial (doi:10.1109/TIP.2015.2405336),
        Cheung et al. 2004 polynomial (doi:10.1111/j.1478-4408.2004.tb00201.x), or a 3x3 matrix.
    degree, terms : int
        Root-polynomial degree (finlayson2015) / number of polynomial terms (cheung2004).
    weights : ndarray (N,), optional
        Per-patch weights ``w_i`` (> 0).

    Returns
    -------
    Correction
        ``kind="chart"``; ``delta_e_before`` / ``delta_e_after`` are the CIEDE2000 (D65) mean and
        max over the N patches (after = corrected colours clipped to [0, 1], as an image shows
        them); per-patch values in ``patch_delta_e_*``.

    Raises
    ------
    ValueError
        Shapes differ, non-finite values, or fewer patches than terms.
    """
    m = np.asarray(measured_linear, dtype=np.float64)
    ref = np.asarray(reference_linear, dtype=np.float64)
    if m.ndim != 2 or m.shape[1] != 3 or m.shape != ref.shape:
        raise ValueError(f"measured and reference must both be (N, 3), got {m.shape} and {ref.shape}")
    if not (np.isfinite(m).all() and np.isfinite(ref).all()):
        raise ValueError("measured and reference colours must be finite")
    names = expansion_terms(method, degree=degree, terms=terms)
    if m.shape[0] < len(names):
        raise ValueError(f"{method} with {len(names)} terms needs at least {len(names)} patches, got {m.shape[0]}")
    x = expand(m, names)
    if weights is None:
        sol, *_ = np.linalg.lstsq(x, ref, rcond=None)
    else:
        wv = np.asarray(weights, dtype=np.float64).reshape(-1, 1)
        if wv.shape[0] != m.shape[0] or not np.all(wv > 0):
            raise ValueError("weights must be N positive numbers")
        sol, *_ = np.linalg.lstsq(x * wv, ref * wv, rcond=None)
    matrix = sol.T
    pred = np.clip(x @ sol, 0.0, 1.0)
    lab_ref = _lab(ref)
    de_before = delta_e_2000(_lab(m), lab_ref)
    de_after = delta_e_2000(_lab(pred), lab_ref)
    return Correction(
        kind="chart",
        method=method,
        matrix=matrix.tolist(),
        terms=names,
        delta_e_before=_stats(de_before),
        delta_e_after=_stats(de_after),
        patch_delta_e_before=[float(v) for v in de_before],
        patch_delta_e_after=[float(v) for v in de_after],
    )


# ----------------------------------------------------------------------------- applying


@lru_cache(maxsize=None)
def _encode_lut8() -> np.ndarray:
    # 2**16 linear steps; near black one step is 12.92/65535*255 = 0.05 code values.
    lin = np.arange(65536, dtype=np.float64) / 65535.0
    return np.clip(np.rint(linear_to_srgb(lin.astype(np.float32)) * 255.0), 0, 255).astype(np.uint8)


@lru_cache(maxsize=8)
def _decode_tone_lut(bits: int, tone: tuple) -> np.ndarray:
    """(2**bits, 3) float32: sRGB decode then the tone curve, per channel, for integer images."""
    codes = np.arange(2**bits, dtype=np.float64) / (2**bits - 1)
    lin = srgb_to_linear(np.repeat(codes[:, None], 3, axis=1)).astype(np.float64)
    return apply_tone_curve(np.asarray(tone), lin).astype(np.float32)


def _decode(px: np.ndarray, tone) -> np.ndarray:
    """Linear float32 (N, 3) of encoded pixels (N, 3), through the tone curve when there is one."""
    if tone is None:
        return srgb_to_linear(px)
    if px.dtype in (np.uint8, np.uint16):
        lut = _decode_tone_lut(8 if px.dtype == np.uint8 else 16, tuple(map(tuple, np.asarray(tone, dtype=np.float64))))
        return np.stack([lut[px[:, c], c] for c in range(3)], axis=1)
    return apply_tone_curve(tone, srgb_to_linear(px))


def _apply_linear(lin: np.ndarray, matrix: np.ndarray, terms: Sequence[str]) -> np.ndarray:
    if list(terms) == _C3:
        out = lin @ matrix.T.astype(np.float32)
    else:
        out = expand(np.maximum(lin, 0.0), terms) @ matrix.T.astype(np.float32)
    np.clip(out, 0.0, 1.0, out=out)
    return out


def apply_correction(rgb: np.ndarray, correction: Correction, *, chunk_pixels: int = 1 << 20) -> np.ndarray:
    """Apply a :class:`Correction` to every pixel of an sRGB image.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8 [0, 255], uint16 [0, 65535] or float [0, 1]
        Encoded sRGB, channel order R, G, B.
    correction : Correction
    chunk_pixels : int
        Pixels processed at a time (bounds memory: about 40 bytes per pixel per chunk).

    Returns
    -------
    ndarray, same shape and dtype as ``rgb`` (float input gives float32), sRGB-encoded.
    The correction is computed in linear RGB (float32) and clipped to [0, 1] before encoding.
    ``kind="none"`` returns a copy of ``rgb``.
    """
    rgb = check_rgb(rgb)
    if correction.kind == "none":
        return rgb.copy()
    matrix = correction.matrix_array
    terms = list(correction.terms)
    tone = correction.tone
    flat = rgb.reshape(-1, 3)
    is_float = np.issubdtype(rgb.dtype, np.floating)
    out = np.empty(flat.shape, dtype=np.float32 if is_float else rgb.dtype)
    lut8 = _encode_lut8() if rgb.dtype == np.uint8 else None
    for start in range(0, flat.shape[0], chunk_pixels):
        sl = slice(start, start + chunk_pixels)
        lin = _apply_linear(_decode(flat[sl], tone), matrix, terms)
        if lut8 is not None:
            out[sl] = lut8[np.rint(lin * np.float32(65535.0)).astype(np.uint16)]
        elif rgb.dtype == np.uint16:
            out[sl] = np.rint(linear_to_srgb(lin) * np.float32(65535.0)).astype(np.uint16)
        else:
            out[sl] = linear_to_srgb(lin)
    return out.reshape(rgb.shape)


# ----------------------------------------------------------------------------- corrections


def identity_correction(note: str | None = None, *, params: CalibrationParams | None = None) -> Correction:
    """A correction that changes nothing (``kind="none"``)."""
    return Correction(
        kind="none", method="none", matrix=np.eye(3).tolist(), terms=list(_C3),
        notes=[note] if note else [], params=(params or CalibrationParams()).to_dict(),
    )


def _exposure_gain(measured_linear: np.ndarray, reference_linear: np.ndarray) -> tuple[float, np.ndarray]:
    """The one achromatic gain ``k`` (least squares, ``min sum ||k m - r||^2``) mapping the patches to the
    reference, and the patches' CIEDE2000 after it (clipped to [0, 1] like an image)."""
    m = np.asarray(measured_linear, dtype=np.float64)
    r = np.asarray(reference_linear, dtype=np.float64)
    k = float((m * r).sum() / max(float((m * m).sum()), 1e-12))
    return k, delta_e_2000(_lab(np.clip(m * k, 0.0, 1.0)), _lab(r))

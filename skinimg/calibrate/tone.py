"""Per-channel tone curve fitted on the neutral patches of a chart.

A phone photo of a chart is not linear in the light: the camera (or the print, for a printed chart)
adds a tone curve, a black level (flare) and a tint that differs per channel, so the greys of the
chart are neither grey nor on the sRGB curve after decoding.  A matrix cannot undo that (it scales
exactly with exposure and has no offset).  Before the matrix, each channel is linearised with

    x = a * m ** g + o        (a > 0, 0.25 <= g <= 4: monotone increasing)

where ``m`` is the measured channel (sRGB-decoded, linear) and ``x`` the linearised one.  This is the
inverse of "flare offset, then power law": the gain-offset-gamma family of device characterisation
(Berns, R. S. (1996). Methods for characterizing CRT displays. Displays 16(4), 173-182,
doi:10.1016/0141-9382(96)01011-6), here with the offset after the power so that a black level
(flare, a printed black lighter than the reference) is an offset of the linear light.  It is fitted per channel through the unclipped neutral patches
(19-24) to their reference values, minimising the squared difference of cube roots (CIE L* is a cube
root of luminance, so equal lightness steps count equally): for every ``g`` on a geometric grid of 481
values from 0.25 to 4 (steps of 0.58 %), ``(a, o)`` follow in closed form from weighted linear least
squares with the first-order weights ``1 / (3 r^(2/3))`` of the cube-root residual; the ``g`` with the
smallest cube-root error and ``a > 0`` wins.

Arrays: ``measured`` / ``reference`` float (N, 3) linear RGB; the curve is a (3, 3) float64 array, one
row ``(a, g, o)`` per channel R, G, B.
"""

from __future__ import annotations

import numpy as np

__all__ = ["fit_tone_curve", "apply_tone_curve", "TONE_GAMMA_GRID"]

#: The exponents tried (geometric, 0.25-4, 481 values).
TONE_GAMMA_GRID = np.geomspace(0.25, 4.0, 481)


def _fit_channel(m: np.ndarray, r: np.ndarray) -> tuple[float, float, float]:
    m = np.maximum(m, 1e-6)
    w2 = 1.0 / (3.0 * np.cbrt(np.maximum(r, 1e-4)) ** 2) ** 2
    p = m[None, :] ** TONE_GAMMA_GRID[:, None]  # (G, N)
    s_pp, s_p, s_pr = (w2 * p * p).sum(1), (w2 * p).sum(1), (w2 * p * r).sum(1)
    s_1, s_r = w2.sum(), (w2 * r).sum()
    det = s_pp * s_1 - s_p * s_p
    with np.errstate(divide="ignore", invalid="ignore"):
        a = (s_pr * s_1 - s_p * s_r) / det
        o = (s_pp * s_r - s_p * s_pr) / det
        err = ((np.cbrt(a[:, None] * p + o[:, None]) - np.cbrt(r)[None, :]) ** 2).sum(1)
    err[~(a > 0) | ~np.isfinite(err)] = np.inf
    k = int(np.argmin(err))
    if not np.isfinite(err[k]):
        return np.nan, np.nan, np.nan
    return float(a[k]), float(TONE_GAMMA_GRID[k]), float(o[k])


def fit_tone_curve(measured: np.ndarray, reference: np.ndarray) -> np.ndarray | None:
    """Fit ``x = a m^g + o`` per channel through neutral patches.

    Parameters
    ----------
    measured : ndarray, float, shape (N, 3)
        Measured linear RGB of N >= 3 neutral patches (R, G, B), values in (0, 1].
    reference : ndarray, float, shape (N, 3)
        Their reference linear RGB, same order.

    Returns
    -------
    ndarray, float64, shape (3, 3) or None
        Rows ``(a, g, o)`` for R, G and B; None when a channel has no increasing fit (e.g. the
        patches do not get lighter with the reference).

    Examples
    --------
    >>> m = np.array([[0.9, 0.8, 0.7], [0.5, 0.4, 0.35], [0.2, 0.15, 0.1], [0.05, 0.04, 0.03]])
    >>> ref = 0.8 * m ** 1.3 + 0.01
    >>> np.round(fit_tone_curve(m, ref), 2)[:, 1]
    array([1.3, 1.3, 1.3])
    """
    m = np.asarray(measured, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    if m.ndim != 2 or m.shape[1] != 3 or m.shape != r.shape:
        raise ValueError(f"measured and reference must both be (N, 3), got {m.shape} and {r.shape}")
    if m.shape[0] < 3:
        raise ValueError(f"a tone curve needs at least 3 neutral patches, got {m.shape[0]}")
    t = np.array([_fit_channel(m[:, c], r[:, c]) for c in range(3)])
    return t if np.isfinite(t).all() else None


def apply_tone_curve(curve, linear: np.ndarray) -> np.ndarray:
    """Linearise colours with a fitted curve: ``a * max(m, 0) ** g + o`` per channel.

    Parameters
    ----------
    curve : array-like (3, 3)
        Rows ``(a, g, o)`` per channel (:func:`fit_tone_curve`).
    linear : ndarray, float, shape (..., 3)
        Measured linear RGB.

    Returns
    -------
    ndarray, same shape, float64 for float64 input else float32; may be negative below the black
    level or above 1 (clipped later, after the matrix).
    """
    c = np.asarray(curve, dtype=np.float64)
    x = np.asarray(linear)
    dt = np.float64 if x.dtype == np.float64 else np.float32
    out = np.empty(x.shape, dtype=dt)
    for ch in range(3):
        out[..., ch] = c[ch, 0] * np.maximum(x[..., ch], 0).astype(dt) ** dt(c[ch, 1]) + dt(c[ch, 2])
    return out

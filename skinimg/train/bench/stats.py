"""Statistics of the benchmark: rank and linear correlation, cross-talk, test-retest repeatability."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

__all__ = ["pearson", "spearman", "crosstalk", "repeatability_stats"]


# ----------------------------------------------------------------------------- statistics


def _rank(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank (float64)."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="stable")
    xs = x[order]
    ranks = np.empty(x.size, dtype=np.float64)
    i = 0
    while i < x.size:  # runs of ties (over values, not pixels)
        j = i
        while j + 1 < x.size and xs[j + 1] == xs[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def pearson(x, y) -> float:
    """Pearson's product-moment correlation of two 1-D samples; NaN pairs dropped, NaN if undefined."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 3:
        return float("nan")
    dx, dy = x - x.mean(), y - y.mean()
    den = math.sqrt(float(dx @ dx) * float(dy @ dy))
    return float(dx @ dy / den) if den > 0 else float("nan")


def spearman(x, y) -> float:
    """Spearman's rank correlation (Spearman 1904): Pearson on average ranks (ties averaged)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    return pearson(_rank(x[ok]), _rank(y[ok]))


def _within_slope(v: np.ndarray, x: np.ndarray, z: np.ndarray, group: np.ndarray) -> float:
    """Coefficient of ``x`` in ``v = a_group + b x + c z`` (least squares, one intercept per group)."""
    ok = np.isfinite(v) & np.isfinite(x) & np.isfinite(z)
    v, x, z, group = v[ok], x[ok], z[ok], group[ok]
    cols = [v.copy(), x.copy(), z.copy()]
    for g in np.unique(group):
        sel = group == g
        for c in cols:
            c[sel] -= c[sel].mean()
    a = np.stack(cols[1:], axis=1)
    if a.shape[0] < 3 or not np.any(cols[1]):
        return float("nan")
    coef, *_ = np.linalg.lstsq(a, cols[0], rcond=None)
    return float(coef[0])


def _crosstalk_grid(values, true_t, true_o, level_t, level_o) -> dict:
    """:func:`crosstalk` on a grid: slopes within nominal levels (fixed-effects least squares)."""
    v = np.asarray(values, dtype=np.float64)
    true_t = np.asarray(true_t, dtype=np.float64)
    true_o = np.asarray(true_o, dtype=np.float64)
    level_t = np.asarray(level_t, dtype=np.float64)
    level_o = np.asarray(level_o, dtype=np.float64)
    st = _within_slope(v, true_t, true_o, level_o)  # target varies, other held at its level
    so = _within_slope(v, true_o, true_t, level_t)  # other varies, target held at its level
    span_t = float(np.ptp(np.unique(level_t)))
    span_o = float(np.ptp(np.unique(level_o)))
    den = st * span_t
    xt = so * span_o / den if den and math.isfinite(den) else float("nan")
    return {"slope_target": st, "slope_other": so, "span_target": span_t, "span_other": span_o, "crosstalk": xt}


def crosstalk(values, *, target_true, other_true, target_level, other_level) -> dict:
    """Cross-talk of an index: its change with the other chromophore relative to its target.

    Parameters
    ----------
    values : array_like, float, shape (n,)
        Per-image index values (NaN ignored).
    target_true, other_true : array_like, float, shape (n,)
        True per-image means of the target and of the other chromophore.
    target_level, other_level : array_like, float, shape (n,)
        Nominal grid level of each chromophore for every image.

    Returns
    -------
    dict
        ``slope_target``: least-squares slope of the index against ``target_true`` at fixed
        level of the other chromophore (``v = a_level(O) + b_T T + c O``: one intercept per
        level of O, the residual variation of the true O within a level adjusted for);
        ``slope_other``: likewise against ``other_true`` at fixed target level;
        ``span_target``, ``span_other``: ranges of the nominal levels;
        ``crosstalk = slope_other * span_other / (slope_target * span_target)``
        (signed, NaN when the target slope is 0).
    """
    return _crosstalk_grid(values, target_true, other_true, target_level, other_level)


def repeatability_stats(groups: Sequence[Sequence[float]]) -> dict:
    """SEM, MDC95 and CV of repeated measurements of unchanged subjects (Weir 2005).

    Parameters
    ----------
    groups : sequence of sequences of float
        One sequence of retake values per subject (NaN dropped; subjects with fewer
        than 2 finite values are ignored).

    Returns
    -------
    dict
        ``sem``: sqrt of the pooled within-subject variance
        ``sum (k_i - 1) s_i^2 / sum (k_i - 1)``; ``mdc``: ``1.96 * sqrt(2) * sem``;
        ``mdc_pct``: 100 * mdc / |grand mean|; ``cv_pct``: root mean square of the
        subjects' ``100 * s_i / |mean_i|`` (Glüer et al. 1995); ``mean``: grand mean;
        ``n_subjects``, ``n_values``.  All NaN without a usable subject.
    """
    ss = 0.0
    dof = 0
    cvs, allv = [], []
    for g in groups:
        a = np.asarray(g, dtype=np.float64)
        a = a[np.isfinite(a)]
        if a.size < 2:
            continue
        s2 = float(np.var(a, ddof=1))
        ss += s2 * (a.size - 1)
        dof += a.size - 1
        m = float(a.mean())
        cvs.append(100.0 * math.sqrt(s2) / abs(m) if m != 0 else float("nan"))
        allv.append(a)
    nan = float("nan")
    if not dof:
        return {"sem": nan, "mdc": nan, "mdc_pct": nan, "cv_pct": nan, "mean": nan, "n_subjects": 0, "n_values": 0}
    sem = math.sqrt(ss / dof)
    mdc = 1.96 * math.sqrt(2.0) * sem
    grand = float(np.concatenate(allv).mean())
    cv = math.sqrt(float(np.mean(np.square(cvs)))) if cvs else nan
    return {"sem": sem, "mdc": mdc, "mdc_pct": 100.0 * mdc / abs(grand) if grand != 0 else nan, "cv_pct": cv,
            "mean": grand, "n_subjects": len(allv), "n_values": int(sum(a.size for a in allv))}

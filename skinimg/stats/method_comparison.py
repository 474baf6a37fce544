"""Agreement of an index with a reference measurement: pure functions on 1-D arrays.

What papers on skin-colour instruments report, for one index ``x`` (per-image values)
against one reference ``y`` (an instrument reading or a rater's grade on the same skin):

* :func:`correlation` -- Pearson's r or Spearman's rho with a 95 % bootstrap confidence
  interval (BCa, seeded; resampling photos, or subjects when photos are grouped);
* :func:`linear_calibration` -- ``y ~ intercept + slope * x`` (least squares), and
  :func:`calibrated_predictions`, the same fit made without the photo's own subject
  (cross-validated), which puts the index in the reference's units;
* :func:`icc` -- intraclass correlations ICC(1,1), ICC(2,1), ICC(3,1) and their
  k-rater forms, with F-based 95 % intervals, from the two-way ANOVA mean squares
  (Shrout & Fleiss 1979; McGraw & Wong 1996 for the intervals), and :func:`koo_li`
  for the words (Koo & Li 2016);
* :func:`bland_altman` -- bias and 95 % limits of agreement (Bland & Altman 1986);
* :func:`repeatability` -- for repeated photos of unchanged skin: SEM, MDC95 and CV
  (Weir 2005);
* :func:`agreement` -- all of the above for one index x reference pair.

Every function drops pairs with a non-finite value, never raises on too few values
(it returns NaN and says ``n``), and touches no global state (NumPy error state and
warnings are handled locally).

Formulas
--------
Bland-Altman: ``d = x - y``; bias = mean(d); limits = bias -+ 1.96 SD(d) (sample SD).
ICC and repeatability: :mod:`skinimg.stats.reliability`.

References
----------
The ICC and repeatability references (Shrout & Fleiss 1979, McGraw & Wong 1996, Koo & Li 2016,
Weir 2005, Glüer et al. 1995) are in :mod:`skinimg.stats.reliability`.

.. [BlandAltman1986] Bland, J. M. and Altman, D. G. (1986). Statistical methods for assessing
   agreement between two methods of clinical measurement. The Lancet 327(8476), 307-310.
   https://doi.org/10.1016/S0140-6736(86)90837-8
.. [Efron1987] Efron, B. (1987). Better bootstrap confidence intervals. Journal of the American
   Statistical Association 82(397), 171-185. https://doi.org/10.1080/01621459.1987.10478410
"""

from __future__ import annotations

import inspect
import math
import warnings

import numpy as np

from .reliability import _as1d, icc, koo_li, repeatability

__all__ = ["BOOTSTRAP_RESAMPLES", "correlation", "linear_calibration", "calibrated_predictions", "bland_altman",
           "agreement"]

#: Bootstrap resamples of the correlation intervals (BCa).
BOOTSTRAP_RESAMPLES = 2000
_NAN = float("nan")


# ----------------------------------------------------------------------------- helpers


def _groups(groups, n: int) -> np.ndarray:
    """Integer codes 0..G-1 of the group labels (each row its own group when None)."""
    if groups is None:
        return np.arange(n)
    g = np.asarray(groups, dtype=object).reshape(-1)
    if g.size != n:
        raise ValueError(f"groups has {g.size} labels for {n} values")
    _, codes = np.unique(g.astype(str), return_inverse=True)
    return codes.reshape(-1)


def _finite(*arrays, groups=None):
    """The arrays restricted to rows where all are finite, and the group codes of those rows."""
    arrays = [_as1d(a) for a in arrays]
    n = arrays[0].size
    for a in arrays[1:]:
        if a.size != n:
            raise ValueError(f"arrays differ in length: {n} vs {a.size}")
    ok = np.ones(n, dtype=bool)
    for a in arrays:
        ok &= np.isfinite(a)
    codes = _groups(groups, n)[ok]
    _, codes = np.unique(codes, return_inverse=True)  # renumber the groups left
    return [a[ok] for a in arrays], codes.reshape(-1)


def _weighted_pearson(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Pearson's r of (x, y) with row weights w (..., n): the r of the sample with row i repeated w_i times."""
    with np.errstate(invalid="ignore", divide="ignore"):
        sw = w.sum(axis=-1, keepdims=True)
        mx = (w * x).sum(axis=-1, keepdims=True) / sw
        my = (w * y).sum(axis=-1, keepdims=True) / sw
        dx, dy = x - mx, y - my
        sxy = (w * dx * dy).sum(axis=-1)
        sxx = (w * dx * dx).sum(axis=-1)
        syy = (w * dy * dy).sum(axis=-1)
        den = np.sqrt(sxx * syy)
        # a constant resample (all weight on equal values) has no correlation
        tiny = 1e-12 * np.maximum(np.abs(x).max() * np.abs(y).max(), 1e-300)
        return np.where(den > tiny, sxy / den, np.nan)


def _weighted_ranks(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Average ranks (ties averaged) of x in the sample where row i appears w_i times; shape of w."""
    n = x.size
    order = np.argsort(x, kind="stable")
    xs = x[order]
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    sizes = np.diff(np.r_[starts, n])
    ws = w[..., order]
    gw = np.add.reduceat(ws, starts, axis=-1)  # weight of each tie group
    grank = np.cumsum(gw, axis=-1) - gw + (gw + 1.0) / 2.0
    ranks = np.empty(w.shape, dtype=np.float64)
    ranks[..., order] = np.repeat(grank, sizes, axis=-1)
    return ranks


def _weighted_corr(x, y, w, method: str) -> np.ndarray:
    if method == "spearman":
        return _weighted_pearson(_weighted_ranks(x, w), _weighted_ranks(y, w), w)
    return _weighted_pearson(x, y, w)


def _bootstrap_kwargs(seed: int) -> dict:
    from scipy import stats

    rng = np.random.default_rng(seed)
    params = inspect.signature(stats.bootstrap).parameters
    return {"rng": rng} if "rng" in params else {"random_state": rng}


def _bootstrap_ci(x, y, codes, method: str, *, n_resamples: int, confidence: float, seed: int):
    """BCa interval of the correlation, resampling groups (clusters) with replacement.

    A resample of groups gives each row the number of times its group was drawn as a weight,
    so the statistic is the correlation of the expanded sample (exactly), vectorised.
    """
    from scipy import stats

    n_groups = int(codes.max()) + 1 if codes.size else 0
    if n_groups < 4:
        return _NAN, _NAN

    def stat(sample, axis=-1):
        s = np.moveaxis(np.asarray(sample), axis, -1)
        lead = s.shape[:-1]
        s2 = s.reshape(-1, s.shape[-1]).astype(np.int64)
        off = (np.arange(s2.shape[0]) * n_groups)[:, None]
        counts = np.bincount((s2 + off).ravel(), minlength=s2.shape[0] * n_groups).reshape(-1, n_groups)
        w = counts[:, codes].astype(np.float64)
        return _weighted_corr(x, y, w, method).reshape(lead)

    units = np.arange(n_groups)
    for ci_method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # a degenerate BCa: fall back to percentile
            try:
                res = stats.bootstrap((units,), stat, n_resamples=n_resamples, vectorized=True,
                                      confidence_level=confidence, method=ci_method, batch=500,
                                      **_bootstrap_kwargs(seed))
            except (RuntimeWarning, ValueError, FloatingPointError):
                continue
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if math.isfinite(lo) and math.isfinite(hi):
            return lo, hi
    return _NAN, _NAN


# ----------------------------------------------------------------------------- correlation


def correlation(x, y, *, method: str = "pearson", groups=None, n_resamples: int = BOOTSTRAP_RESAMPLES,
                confidence: float = 0.95, seed: int = 0) -> dict:
    """Pearson's r or Spearman's rho with a bootstrap confidence interval.

    Parameters
    ----------
    x, y : array_like, float, shape (n,)
        Paired values (pairs with a non-finite value are dropped).
    method : {"pearson", "spearman"}
        Point estimate from :func:`scipy.stats.pearsonr` / :func:`scipy.stats.spearmanr`
        (average ranks for ties).
    groups : array_like, shape (n,), optional
        Cluster labels (e.g. subject): the bootstrap resamples whole clusters, so
        repeated photos of one person are not counted as independent.  Default: rows.
    n_resamples, confidence, seed
        BCa interval (Efron 1987) from :func:`scipy.stats.bootstrap`, deterministic
        given ``seed``; falls back to the percentile interval when BCa is degenerate.
        ``n_resamples=0``: no interval.

    Returns
    -------
    dict with ``r``, ``lo``, ``hi`` (NaN when undefined: fewer than 3 pairs, a constant
    variable; the interval needs at least 4 clusters) and ``n`` (pairs used).
    """
    from scipy import stats

    if method not in ("pearson", "spearman"):
        raise ValueError(f"unknown correlation method {method!r} (use 'pearson' or 'spearman')")
    (x, y), codes = _finite(x, y, groups=groups)
    n = int(x.size)
    out = {"r": _NAN, "lo": _NAN, "hi": _NAN, "n": n}
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return out
    fn = stats.pearsonr if method == "pearson" else stats.spearmanr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # near-constant input: the value is still defined
        r = float(fn(x, y)[0])
    out["r"] = r
    if n_resamples < 1:
        return out
    out["lo"], out["hi"] = _bootstrap_ci(x, y, codes, method, n_resamples=n_resamples, confidence=confidence,
                                         seed=seed)
    return out


# ----------------------------------------------------------------------------- calibration


def linear_calibration(x, y) -> dict:
    """Least-squares line ``y = intercept + slope * x`` (index ``x`` to reference units ``y``).

    Returns
    -------
    dict with ``slope``, ``intercept``, ``r2``, ``residual_sd`` (sample SD of the residuals,
    n - 2 degrees of freedom) and ``n``; NaN when fewer than 3 pairs or ``x`` is constant.
    From :func:`scipy.stats.linregress`.
    """
    from scipy import stats

    (x, y), _ = _finite(x, y)
    n = int(x.size)
    out = {"slope": _NAN, "intercept": _NAN, "r2": _NAN, "residual_sd": _NAN, "n": n}
    if n < 3 or np.ptp(x) == 0:
        return out
    res = stats.linregress(x, y)
    resid = y - (res.intercept + res.slope * x)
    out.update(slope=float(res.slope), intercept=float(res.intercept), r2=float(res.rvalue) ** 2,
               residual_sd=float(math.sqrt(float(resid @ resid) / (n - 2))))
    return out


def calibrated_predictions(x, y, *, groups=None) -> np.ndarray:
    """Index values in reference units by a line fitted *without* the value's own group.

    For every group (subject, or each row when ``groups`` is None: leave-one-out), the
    least-squares line ``y ~ x`` is fitted on the other groups and applied to the group's
    ``x``.  Agreement statistics on these predictions are not flattered by the fit (an
    in-sample line would give a Bland-Altman bias of exactly 0).

    Returns
    -------
    ndarray, float64, shape (n,): NaN where ``x`` or ``y`` is not finite, or where the
    other groups leave fewer than 3 pairs or a constant ``x``.
    """
    x0, y0 = _as1d(x), _as1d(y)
    n = x0.size
    out = np.full(n, np.nan)
    ok = np.isfinite(x0) & np.isfinite(y0)
    codes = _groups(groups, n)
    xs, ys, cs = x0[ok], y0[ok], codes[ok]
    if xs.size < 4:
        return out
    _, cs = np.unique(cs, return_inverse=True)
    cs = cs.reshape(-1)
    G = int(cs.max()) + 1

    def sums(v):
        return np.bincount(cs, weights=v, minlength=G)

    gn, gx, gy, gxx, gxy = sums(np.ones_like(xs)), sums(xs), sums(ys), sums(xs * xs), sums(xs * ys)
    m = xs.size - gn
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = (xs.sum() - gx) / m
        my = (ys.sum() - gy) / m
        sxx = (xs @ xs - gxx) - m * mx * mx
        sxy = (xs @ ys - gxy) - m * mx * my
        slope = sxy / sxx
        bad = (m < 3) | ~(sxx > 1e-12 * np.maximum(1.0, (xs @ xs - gxx)))
        slope = np.where(bad, np.nan, slope)
        intercept = my - slope * mx
    pred = intercept[cs] + slope[cs] * xs
    out[np.flatnonzero(ok)] = pred
    return out


# ----------------------------------------------------------------------------- Bland-Altman


def bland_altman(x, y, *, multiplier: float = 1.96, confidence: float = 0.95) -> dict:
    """Bias and limits of agreement of two methods on the same subjects (Bland & Altman 1986).

    Parameters
    ----------
    x, y : array_like, float, shape (n,)
        Measurements by the two methods in the same units (here: the calibrated index and
        the reference).  ``d = x - y``.
    multiplier : float
        Limits at ``bias -+ multiplier * SD(d)``; 1.96 for 95 % (Bland & Altman 1999;
        the 1986 paper wrote 2).

    Returns
    -------
    dict with ``bias`` (mean d), ``sd`` (sample SD of d), ``lo``, ``hi`` (limits),
    ``bias_lo``, ``bias_hi`` (t interval of the bias), ``mean`` (mean of the pair means)
    and ``n``; NaN when fewer than 2 pairs.
    """
    from scipy.stats import t as tdist

    (x, y), _ = _finite(x, y)
    n = int(x.size)
    out = {"bias": _NAN, "sd": _NAN, "lo": _NAN, "hi": _NAN, "bias_lo": _NAN, "bias_hi": _NAN, "mean": _NAN, "n": n}
    if n < 2:
        return out
    d = x - y
    bias, sd = float(d.mean()), float(d.std(ddof=1))
    half = float(tdist.ppf(1.0 - (1.0 - confidence) / 2.0, n - 1)) * sd / math.sqrt(n)
    out.update(bias=bias, sd=sd, lo=bias - multiplier * sd, hi=bias + multiplier * sd, bias_lo=bias - half,
               bias_hi=bias + half, mean=float(((x + y) / 2).mean()))
    return out


# ----------------------------------------------------------------------------- one pair


def agreement(index, reference, *, subjects=None, sessions=None, seed: int = 0,
              n_resamples: int = BOOTSTRAP_RESAMPLES) -> dict:
    """Every agreement statistic of one index against one reference.

    Parameters
    ----------
    index, reference : array_like, float, shape (n,)
        Per-photo index value and reference reading (pairs with a non-finite value dropped).
    subjects, sessions : array_like, shape (n,), optional
        Subject and occasion of each photo: bootstrap and cross-validation work on
        subjects; with subjects, :func:`repeatability` of the index (in its own units and
        calibrated) and of the reference.
    seed, n_resamples
        Bootstrap (deterministic given the seed).

    Returns
    -------
    dict with ``n``, ``pearson`` / ``spearman`` (:func:`correlation`), ``calibration``
    (:func:`linear_calibration`, in-sample), ``icc`` (:func:`icc` of reference vs
    cross-validated calibrated index, :func:`calibrated_predictions`), ``icc2_band`` and
    ``icc3_band`` (:func:`koo_li` of the estimate and interval), ``bland_altman``
    (calibrated index - reference) and, with subjects, ``repeatability`` with ``index``,
    ``calibrated`` and ``reference`` entries.
    """
    x, y = _as1d(index), _as1d(reference)
    if x.size != y.size:
        raise ValueError(f"index has {x.size} values, reference {y.size}")
    ok = np.isfinite(x) & np.isfinite(y)
    subj = None if subjects is None else np.asarray(subjects, dtype=object).reshape(-1)[ok]
    sess = None if sessions is None else np.asarray(sessions, dtype=object).reshape(-1)[ok]
    x, y = x[ok], y[ok]
    out: dict = {"n": int(x.size), "n_subjects": int(np.unique(subj.astype(str)).size) if subj is not None
                 else int(x.size)}
    out["pearson"] = correlation(x, y, method="pearson", groups=subj, n_resamples=n_resamples, seed=seed)
    out["spearman"] = correlation(x, y, method="spearman", groups=subj, n_resamples=n_resamples, seed=seed + 1)
    out["calibration"] = linear_calibration(x, y)
    cal = calibrated_predictions(x, y, groups=subj)
    out["icc"] = icc(np.stack([y, cal], axis=1))
    for key in ("icc2", "icc3"):
        words = {koo_li(out["icc"][key]), koo_li(out["icc"][f"{key}_lo"]), koo_li(out["icc"][f"{key}_hi"])}
        lo, hi = koo_li(out["icc"][f"{key}_lo"]), koo_li(out["icc"][f"{key}_hi"])
        out[f"{key}_band"] = koo_li(out["icc"][key]) if len(words) == 1 else f"{lo} to {hi}"
    out["bland_altman"] = bland_altman(cal, y)
    out["calibrated"] = cal.tolist()
    if subj is not None:
        out["repeatability"] = {"index": repeatability(x, subj, sess),
                                "calibrated": repeatability(cal, subj, sess),
                                "reference": repeatability(y, subj, sess)}
    return out

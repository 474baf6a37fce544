"""Reliability of repeated measurements: intraclass correlations and SEM / MDC95 / CV (pure, 1-D arrays).

ANOVA of ``n`` targets (rows) x ``k`` raters (columns), grand mean ``m``:
``MSR = k sum_i (row_i - m)^2 / (n - 1)``, ``MSC = n sum_j (col_j - m)^2 / (k - 1)``,
``MSE = (SST - SSR - SSC) / ((n - 1)(k - 1))``, ``MSW = (SST - SSR) / (n (k - 1))``::

    ICC(1,1) = (MSR - MSW) / (MSR + (k - 1) MSW)
    ICC(2,1) = (MSR - MSE) / (MSR + (k - 1) MSE + k (MSC - MSE) / n)     absolute agreement
    ICC(3,1) = (MSR - MSE) / (MSR + (k - 1) MSE)                          consistency
    ICC(1,k) = (MSR - MSW) / MSR
    ICC(2,k) = (MSR - MSE) / (MSR + (MSC - MSE) / n)
    ICC(3,k) = (MSR - MSE) / MSR

Repeatability (Weir 2005): with a session label common to all subjects (a complete
subjects x sessions table) ``SEM = sqrt(MSE)`` of that two-way ANOVA (Weir's
recommendation: systematic session effects are not counted as noise); otherwise the
pooled within-subject SD ``sqrt(sum (k_i - 1) s_i^2 / sum (k_i - 1))``.
``MDC95 = 1.96 sqrt(2) SEM``.  ``CV`` = root mean square of the subjects'
``100 s_i / |mean_i|`` (Glüer et al. 1995; ratio-scale quantities only).

References
----------
.. [ShroutFleiss1979] Shrout, P. E. and Fleiss, J. L. (1979). Intraclass correlations: uses in
   assessing rater reliability. Psychological Bulletin 86(2), 420-428.
   https://doi.org/10.1037/0033-2909.86.2.420
.. [McGrawWong1996] McGraw, K. O. and Wong, S. P. (1996). Forming inferences about some
   intraclass correlation coefficients. Psychological Methods 1(1), 30-46.
   https://doi.org/10.1037/1082-989X.1.1.30
.. [KooLi2016] Koo, T. K. and Li, M. Y. (2016). A guideline of selecting and reporting
   intraclass correlation coefficients for reliability research. Journal of Chiropractic
   Medicine 15(2), 155-163. https://doi.org/10.1016/j.jcm.2016.02.012
.. [Weir2005] Weir, J. P. (2005). Quantifying test-retest reliability using the intraclass
   correlation coefficient and the SEM. Journal of Strength and Conditioning Research 19(1),
   231-240. https://doi.org/10.1519/15184.1
.. [Gluer1995] Glüer, C. C., Blake, G., Lu, Y., et al. (1995). Accurate assessment of precision
   errors: how to measure the reproducibility of bone densitometry techniques. Osteoporosis
   International 5(4), 262-270. https://doi.org/10.1007/BF01774016
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["KOO_LI_BANDS", "icc", "koo_li", "repeatability"]

#: Koo & Li (2016): ICC below 0.5 poor, 0.5-0.75 moderate, 0.75-0.9 good, above 0.9 excellent.
KOO_LI_BANDS = ((0.5, "poor"), (0.75, "moderate"), (0.9, "good"), (math.inf, "excellent"))
_NAN = float("nan")


def _as1d(v) -> np.ndarray:
    return np.asarray(v, dtype=np.float64).reshape(-1)


def icc(ratings, *, confidence: float = 0.95) -> dict:
    """Intraclass correlations of an n targets x k raters table (Shrout & Fleiss 1979).

    Parameters
    ----------
    ratings : array_like, float, shape (n, k)
        One row per target (photo, subject), one column per rater / method.  Rows with a
        non-finite value are dropped (complete cases).

    Returns
    -------
    dict
        ``icc1``, ``icc2``, ``icc3`` (single rater: ICC(1,1), ICC(2,1) absolute agreement,
        ICC(3,1) consistency), ``icc1k``, ``icc2k``, ``icc3k`` (mean of k raters), each
        single-rater ICC's F-based interval ``icc1_lo`` ... ``icc3_hi`` (McGraw & Wong 1996;
        ICC(2,1) with Satterthwaite's degrees of freedom), the mean squares ``msr``,
        ``msc``, ``mse``, ``msw``, ``n`` and ``k``.  NaN when n < 2 or k < 2.
    """
    from scipy.stats import f as fdist

    a = np.asarray(ratings, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"ratings must be a 2-D (targets x raters) table, got shape {a.shape}")
    a = a[np.isfinite(a).all(axis=1)]
    n, k = a.shape
    keys = ("icc1", "icc2", "icc3", "icc1k", "icc2k", "icc3k", "icc1_lo", "icc1_hi", "icc2_lo", "icc2_hi",
            "icc3_lo", "icc3_hi", "msr", "msc", "mse", "msw")
    out = {key: _NAN for key in keys}
    out.update(n=int(n), k=int(k))
    if n < 2 or k < 2:
        return out
    m = a.mean()
    ssr = k * float(np.sum((a.mean(axis=1) - m) ** 2))
    ssc = n * float(np.sum((a.mean(axis=0) - m) ** 2))
    sst = float(np.sum((a - m) ** 2))
    sse = max(sst - ssr - ssc, 0.0)
    msr, msc = ssr / (n - 1), ssc / (k - 1)
    mse = sse / ((n - 1) * (k - 1))
    msw = max(sst - ssr, 0.0) / (n * (k - 1))
    out.update(msr=msr, msc=msc, mse=mse, msw=msw)

    def ratio(num, den):
        return num / den if den != 0 else _NAN

    i1 = ratio(msr - msw, msr + (k - 1) * msw)
    i2 = ratio(msr - mse, msr + (k - 1) * mse + k * (msc - mse) / n)
    i3 = ratio(msr - mse, msr + (k - 1) * mse)
    out.update(icc1=i1, icc2=i2, icc3=i3, icc1k=ratio(msr - msw, msr), icc2k=ratio(msr - mse, msr + (msc - mse) / n),
               icc3k=ratio(msr - mse, msr))
    q = 1.0 - (1.0 - confidence) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        # ICC(1,1) and ICC(3,1): exact F intervals
        for name, den_ms, df2 in (("icc1", msw, n * (k - 1)), ("icc3", mse, (n - 1) * (k - 1))):
            if den_ms > 0:
                F = msr / den_ms
                fl = F / fdist.ppf(q, n - 1, df2)
                fu = F * fdist.ppf(q, df2, n - 1)
                out[f"{name}_lo"] = (fl - 1) / (fl + k - 1)
                out[f"{name}_hi"] = (fu - 1) / (fu + k - 1)
        # ICC(2,1): approximate F with Satterthwaite's degrees of freedom (McGraw & Wong 1996, case 2A)
        if math.isfinite(i2) and i2 < 1 and mse > 0:
            aa = k * i2 / (n * (1 - i2))
            bb = 1 + k * i2 * (n - 1) / (n * (1 - i2))
            v = (aa * msc + bb * mse) ** 2 / ((aa * msc) ** 2 / (k - 1) + (bb * mse) ** 2 / ((n - 1) * (k - 1)))
            fl = fdist.ppf(q, n - 1, v)
            fu = fdist.ppf(q, v, n - 1)
            c = k * msc + (k * n - k - n) * mse
            out["icc2_lo"] = n * (msr - fl * mse) / (fl * c + n * msr)
            out["icc2_hi"] = n * (fu * msr - mse) / (c + n * fu * msr)
    for key in keys[:12]:
        out[key] = float(out[key])
    return out


def koo_li(value: float) -> str:
    """Koo & Li (2016) reliability words: ``poor`` (< 0.5), ``moderate`` (0.5-0.75), ``good``
    (0.75-0.9), ``excellent`` (> 0.9); ``"n/a"`` for NaN.  Koo & Li judge on the 95 % interval:
    apply it to both ends of the interval and report both words when they differ."""
    if value is None or not math.isfinite(value):
        return "n/a"
    for upper, word in KOO_LI_BANDS:
        if value < upper:
            return word
    return KOO_LI_BANDS[-1][1]  # pragma: no cover



# ----------------------------------------------------------------------------- repeatability


def repeatability(values, subjects, sessions=None) -> dict:
    """SEM, MDC95 and CV of repeated measurements of unchanged subjects (Weir 2005).

    Parameters
    ----------
    values : array_like, float, shape (n,)
        One measurement per photo (non-finite dropped).
    subjects : array_like, shape (n,)
        Subject (skin site) of each photo; subjects with fewer than 2 values are ignored.
    sessions : array_like, shape (n,), optional
        Occasion of each photo (day, trial).  When every subject has exactly one value in
        each of the same >= 2 sessions, the SEM is ``sqrt(MSE)`` of the subjects x
        sessions ANOVA (``model="two-way"``: a shift common to a whole session is not
        noise); otherwise the pooled within-subject SD (``model="one-way"``).

    Returns
    -------
    dict with ``sem``, ``mdc`` (``1.96 sqrt(2) sem``), ``mdc_pct`` (% of the grand mean's
    magnitude), ``cv_pct`` (RMS of the subjects' ``100 s_i / |mean_i|``), ``mean``,
    ``icc`` (ICC(3,1) over sessions for the two-way model, else ICC(1,1)), ``model``,
    ``n_subjects`` and ``n_values``; NaN without a subject with 2 values.
    """
    v = _as1d(values)
    subj = np.asarray(subjects, dtype=object).reshape(-1).astype(str)
    if subj.size != v.size:
        raise ValueError(f"subjects has {subj.size} labels for {v.size} values")
    sess = None if sessions is None else np.asarray(sessions, dtype=object).reshape(-1).astype(str)
    ok = np.isfinite(v)
    v, subj = v[ok], subj[ok]
    sess = None if sess is None else sess[ok]
    nan = _NAN
    out = {"sem": nan, "mdc": nan, "mdc_pct": nan, "cv_pct": nan, "mean": nan, "icc": nan, "model": "one-way",
           "n_subjects": 0, "n_values": 0}
    names, codes = np.unique(subj, return_inverse=True)
    counts = np.bincount(codes, minlength=names.size)
    keep = counts[codes] >= 2
    v, codes, sess = v[keep], codes[keep], (None if sess is None else sess[keep])
    if v.size == 0:
        return out
    _, codes = np.unique(codes, return_inverse=True)
    G = int(codes.max()) + 1
    n_i = np.bincount(codes, minlength=G).astype(np.float64)
    mean_i = np.bincount(codes, weights=v, minlength=G) / n_i
    ss_i = np.bincount(codes, weights=(v - mean_i[codes]) ** 2, minlength=G)
    s2_i = ss_i / (n_i - 1)
    dof = float((n_i - 1).sum())
    sem = math.sqrt(float(ss_i.sum()) / dof)
    table = _complete_table(v, codes, sess, G) if sess is not None else None
    if table is not None and table.shape[0] >= 2:
        r = icc(table)
        sem = math.sqrt(r["mse"])
        out.update(model="two-way", icc=r["icc3"])
    else:
        ratings = _ragged_icc1(v, codes, G, n_i, mean_i, ss_i)
        out["icc"] = ratings
    grand = float(v.mean())
    with np.errstate(invalid="ignore", divide="ignore"):
        cv_i = 100.0 * np.sqrt(s2_i) / np.abs(mean_i)
    cv = math.sqrt(float(np.mean(cv_i ** 2))) if np.all(np.isfinite(cv_i)) else nan
    mdc = 1.96 * math.sqrt(2.0) * sem
    out.update(sem=sem, mdc=mdc, mdc_pct=100.0 * mdc / abs(grand) if grand != 0 else nan, cv_pct=cv, mean=grand,
               n_subjects=G, n_values=int(v.size))
    return out


def _complete_table(v, codes, sess, G) -> np.ndarray | None:
    """Subjects x sessions table when every subject has exactly one value in each session, else None."""
    s_names, s_codes = np.unique(sess, return_inverse=True)
    S = s_names.size
    if S < 2 or v.size != G * S:
        return None
    table = np.full((G, S), np.nan)
    cell = codes * S + s_codes.reshape(-1)
    if np.unique(cell).size != v.size:
        return None
    table.reshape(-1)[cell] = v
    return table


def _ragged_icc1(v, codes, G, n_i, mean_i, ss_i) -> float:
    """One-way ICC(1,1) with unequal group sizes (n0 = (N - sum n_i^2 / N) / (G - 1))."""
    N = float(v.size)
    if G < 2:
        return _NAN
    grand = v.mean()
    msb = float((n_i * (mean_i - grand) ** 2).sum()) / (G - 1)
    msw = float(ss_i.sum()) / (N - G)
    n0 = (N - float((n_i ** 2).sum()) / N) / (G - 1)
    den = msb + (n0 - 1) * msw
    return (msb - msw) / den if den > 0 else _NAN

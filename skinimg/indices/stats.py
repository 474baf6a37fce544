"""Per-image statistics of the skin values: the columns of ``indices.csv`` (:func:`summarize`)."""

from __future__ import annotations

import math

import numpy as np

from ..color import ITA_CATEGORIES, ita_category, ita_index
from .params import _CHUNK, INDEX_NAMES, STATS, IndexParams
from .spots import detect_brown_spots

__all__ = ["summary_columns", "summarize", "summarize_values"]

# ----------------------------------------------------------------------------- statistics


def summary_columns() -> list[str]:
    """Column names of :func:`summarize` rows, in output order."""
    cols = [f"{name}{s}" for name in INDEX_NAMES for s in STATS]
    cols += ["ita_category"] + [f"ita_fraction_{c}" for c in ITA_CATEGORIES]
    cols += ["red_area_fraction", "brown_spot_count", "brown_spot_area_fraction",
             "hemoglobin_variation_pct", "melanin_variation_pct"]
    return cols


def _quantile_ranks(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """0-based ranks below/above the median, p10, p90 and the interpolation weights (numpy "linear")."""
    q = np.array([50.0, 10.0, 90.0]) / 100.0 * (n - 1)
    lo = np.floor(q).astype(np.int64)
    return lo, np.minimum(lo + 1, n - 1), q - lo


def _weighted_order_stats(v: np.ndarray, w: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """Exact order statistics (0-based ``ranks``) of values ``v`` repeated ``w`` times.

    A 4096-bin histogram of the values (monotone binning) locates the bin of each
    rank; only that bin's values are sorted.
    """
    lo, hi = float(v.min()), float(v.max())
    if not hi > lo:
        return np.full(len(ranks), lo)
    nb = 4096
    b = ((v - np.float32(lo)) * np.float32((nb - 1) / (hi - lo))).astype(np.int32)
    np.clip(b, 0, nb - 1, out=b)
    cw = np.cumsum(np.bincount(b, weights=w, minlength=nb))  # float64: exact for counts < 2**53
    out = np.empty(len(ranks))
    for i, k in enumerate(ranks):
        j = int(np.searchsorted(cw, k, side="right"))
        before = cw[j - 1] if j > 0 else 0.0
        sel = b == j
        vs, ws = v[sel], w[sel]
        order = np.argsort(vs, kind="stable")
        idx = int(np.searchsorted(np.cumsum(ws[order]), k - before, side="right"))
        out[i] = vs[order][min(idx, len(vs) - 1)]
    return out


def _basic_stats(v: np.ndarray, w: np.ndarray | None = None) -> tuple[float, float, float, float, float]:
    """mean, median, p10, p90, std (population) of float32 values, optionally with integer weights.

    Percentiles use linear interpolation between order statistics (numpy's default),
    so weighted values (distinct colours x counts) give exactly the statistics of the
    expanded per-pixel array.
    """
    v = np.asarray(v, dtype=np.float32)
    if v.size and not np.isfinite(v).all():
        keep = np.isfinite(v)
        v = v[keep]
        w = None if w is None else w[keep]
    n = v.size if w is None else int(w.sum())
    nan = float("nan")
    if n == 0:
        return nan, nan, nan, nan, nan
    lo, hi, frac = _quantile_ranks(n)
    if w is None:
        mean = float(v.sum(dtype=np.float64) / n)
        var = 0.0
        for s in range(0, n, _CHUNK):
            d = v[s : s + _CHUNK].astype(np.float64) - mean
            var += float(np.dot(d, d))
        var /= n
        ranks = np.unique(np.concatenate([lo, hi]))
        part = np.partition(v, ranks)
        vlo, vhi = part[lo].astype(np.float64), part[hi].astype(np.float64)
    else:
        wf = w.astype(np.float64)
        mean = float(np.dot(wf, v) / n)
        d = v.astype(np.float64) - mean
        var = float(np.dot(wf, d * d)) / n
        ranks = np.concatenate([lo, hi])
        vals = _weighted_order_stats(v, wf, ranks)
        vlo, vhi = vals[:3], vals[3:]
    pct = vlo * (1 - frac) + vhi * frac
    return mean, float(pct[0]), float(pct[1]), float(pct[2]), math.sqrt(max(var, 0.0)) if n > 1 else 0.0


def _restat(row: dict, name: str, values: np.ndarray) -> None:
    """Replace the statistics of ``name`` in ``row`` by those of per-pixel ``values`` (NaN ignored)."""
    for s, v in zip(STATS, _basic_stats(values)):
        row[f"{name}{s}"] = v
    if f"{name}_variation_pct" in row:
        mean, std = row[name], row[f"{name}_std"]
        row[f"{name}_variation_pct"] = 100.0 * std / mean if math.isfinite(mean) and mean > 0 else float("nan")


def summarize_values(values: dict, *, weights: np.ndarray | None = None, melanin_map: np.ndarray | None = None,
                     mask: np.ndarray | None = None, params: IndexParams | None = None) -> dict:
    """Per-image statistics from 1-D skin values (as returned by :func:`skin_values`).

    ``weights`` (optional, integers) repeats each value that many times (values per
    distinct colour).  ``melanin_map`` (H, W) and ``mask`` are needed for the brown
    spots; without them ``brown_spot_count`` and ``brown_spot_area_fraction`` are NaN.
    See :func:`summarize` for the columns.
    """
    p = params or IndexParams()
    row: dict = {}
    for name in INDEX_NAMES:
        for s, v in zip(STATS, _basic_stats(values[name], weights)):
            row[f"{name}{s}"] = v
    ita = np.asarray(values["ita_deg"])
    n = int(weights.sum()) if weights is not None else ita.size
    row["ita_category"] = ita_category(row["ita_deg"])
    counts = np.bincount(ita_index(ita).ravel(), weights=weights, minlength=len(ITA_CATEGORIES) + 1)
    for i, c in enumerate(ITA_CATEGORIES):
        row[f"ita_fraction_{c}"] = float(counts[i] / n) if n else float("nan")
    red = np.asarray(values["hemoglobin"]) > np.float32(p.red_threshold)
    n_red = int(weights[red].sum()) if weights is not None else int(np.count_nonzero(red))
    row["red_area_fraction"] = n_red / n if n else float("nan")
    if melanin_map is not None and mask is not None and n:
        spots = detect_brown_spots(melanin_map, mask, params=p)
        row["brown_spot_count"] = spots.count
        row["brown_spot_area_fraction"] = spots.area_fraction
    else:
        row["brown_spot_count"] = 0 if n == 0 else float("nan")
        row["brown_spot_area_fraction"] = float("nan")
    for name in ("hemoglobin", "melanin"):
        mean, std = row[name], row[f"{name}_std"]
        row[f"{name}_variation_pct"] = 100.0 * std / mean if n and mean > 0 else float("nan")
    return row


def summarize(maps: dict, mask: np.ndarray, *, params: IndexParams | None = None) -> dict:
    """The per-image statistics row from the maps of :func:`compute_maps`.

    Parameters
    ----------
    maps : dict name -> ndarray float32 (H, W), NaN off skin
    mask : ndarray of bool, shape (H, W)
    params : IndexParams, optional

    Returns
    -------
    dict with, for every index ``X`` in :data:`INDEX_NAMES`:

    * ``X`` mean over skin, ``X_median``, ``X_p10``, ``X_p90`` (percentiles with
      linear interpolation), ``X_std`` (population standard deviation);

    and

    * ``ita_category``: class of the mean ITA (:func:`ita_category`), never None
      (``"unknown"`` only without skin);
    * ``ita_fraction_<class>``: fraction of skin pixels in each ITA class;
    * ``red_area_fraction``: fraction of skin with ``hemoglobin > red_threshold``;
    * ``brown_spot_count``, ``brown_spot_area_fraction``: :func:`detect_brown_spots`
      on the ``melanin`` map given (area as a fraction of the skin area; :func:`measure`,
      which analyze runs, uses the shading-free melanin of the chromaticity root on the light branch and the
      shading-corrected melanin on the dark branch);
    * ``hemoglobin_variation_pct``, ``melanin_variation_pct``: uniformity as the Antera
      3D reports it: relative variation = 100 x std / mean over the skin (%, lower is
      more even); the standard deviation itself is ``X_std``.
    """
    mask = np.asarray(mask, dtype=bool)
    values = {name: np.asarray(maps[name])[mask] for name in INDEX_NAMES}
    return summarize_values(values, melanin_map=maps["melanin"], mask=mask, params=params)

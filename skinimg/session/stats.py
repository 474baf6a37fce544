"""Change statistics of a pair and their verdicts against the minimal detectable change (MDC).

:func:`pair_statistics` (block bootstrap over spatial tiles, effect size), :func:`verdict`, and the
MDC table ``models/mdc.json`` (found through :func:`skinimg.io.models_dir` when it is read, so
``$SKINIMG_MODELS`` is honoured; derived by :mod:`skinimg.train.mdc`).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..errors import SkinImgError
from ..indices import INDEX_NAMES
from ..io import model_file

if TYPE_CHECKING:  # pragma: no cover
    from .compare import CompareParams

__all__ = ["METRICS", "DIRECTIONS", "LIGHTING_DEPENDENT", "MDC_FILE", "MDC_FORMAT", "DEFAULT_MDC_PATH", "load_mdc",
           "load_mdc_bands", "load_crosstalk", "pair_statistics", "region_statistics", "verdict"]

#: Metrics of ``comparison.json``, in order.
METRICS = INDEX_NAMES[6:] + INDEX_NAMES[:6] + ("red_area_fraction", "brown_spot_area_fraction")
#: +1: an increase is ``worsened`` (redness, pigmentation); -1: an increase is ``improved`` (lighter skin).
DIRECTIONS = {
    "hemoglobin": 1, "melanin": 1, "erythema_index": 1, "melanin_index": 1, "a_star": 1, "b_star": 1,
    "l_star": -1, "ita_deg": -1, "red_area_fraction": 1, "brown_spot_area_fraction": 1,
}
#: File name of the MDC table in :func:`skinimg.io.models_dir`.
MDC_FILE = "mdc.json"
#: Default MDC table (at import; the loaders look it up when called).
DEFAULT_MDC_PATH = model_file(MDC_FILE)
MDC_FORMAT = "skinimg-mdc/1"
#: Metrics that depend on exposure / colour balance (need a chart or lighting normalisation).
LIGHTING_DEPENDENT = ("melanin", "melanin_index", "l_star", "a_star", "b_star", "ita_deg")


# ----------------------------------------------------------------------------- MDC tables


def _read_mdc_doc(path: str | os.PathLike | None) -> tuple[dict, Path]:
    p = Path(path) if path else model_file(MDC_FILE)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SkinImgError(f"cannot read the MDC table ({exc})", p.name) from None
    if not isinstance(doc, dict) or doc.get("format") != MDC_FORMAT or not isinstance(doc.get("mdc"), dict):
        raise SkinImgError(f"not an MDC table (format {MDC_FORMAT})", p.name)
    return doc, p


def load_crosstalk(path: str | os.PathLike | None = None) -> dict:
    """Cross-talk allowances of the MDC table: ``{metric: (other_metric, coefficient)}``.

    ``models/mdc.json`` holds one, measured by ``benchmarks/derive_mdc.py`` on phantom
    pairs whose only true change is melanin: a haemoglobin change up to
    ``coefficient * |delta melanin|`` can be cross-talk (see :func:`_add_verdicts`).
    """
    return _parse_crosstalk(*_read_mdc_doc(path))


def _parse_crosstalk(doc: dict, p: Path) -> dict:
    out = {}
    entries = doc.get("crosstalk") or {}
    if not isinstance(entries, dict):
        raise SkinImgError("bad cross-talk section in the MDC table (not an object)", p.name)
    for k, v in entries.items():
        try:
            out[str(k)] = (str(v["from"]), float(v["coefficient"]))
        except (TypeError, KeyError, ValueError):
            raise SkinImgError(f"bad cross-talk entry for {k!r}", p.name) from None
    return out


def load_mdc(path: str | os.PathLike | None = None, *, aligned: bool = True) -> dict:
    """The default minimal detectable changes: ``{metric: value}`` (index units).

    Reads ``models/mdc.json`` (format ``skinimg-mdc/1``, written by ``benchmarks/derive_mdc.py``).
    ``aligned=False``: the table of comparisons without pixel alignment (``mdc_unaligned``; the aligned
    table when the file has none).
    """
    return _parse_mdc(*_read_mdc_doc(path), aligned=aligned)


def _parse_mdc(doc: dict, p: Path, aligned: bool = True) -> dict:
    out = {}
    key = "mdc" if aligned or not isinstance(doc.get("mdc_unaligned"), dict) else "mdc_unaligned"
    for k, v in doc[key].items():
        try:
            out[str(k)] = float(v)
        except (TypeError, ValueError):
            raise SkinImgError(f"bad MDC value for {k!r}", p.name) from None
    return out


def load_mdc_bands(path: str | os.PathLike | None = None, *, aligned: bool = True) -> list[tuple[str, float, dict]]:
    """Tone bands with their own MDCs: ``[(band, ita_deg_max, {metric: value}), ...]``, darkest bound first.

    ``models/mdc.json`` has two, ``dark`` (ITA <= -30 degrees) and ``brown`` (-30 < ITA <= -10):
    retakes of such skin spread the chromophore estimates two (brown) to six (dark) times more
    than lighter skin (see ``benchmarks/derive_mdc.py``).  A table without bands gives ``[]``.
    ``aligned=False``: the bands of comparisons without pixel alignment (``mdc_unaligned_by_tone``).
    """
    return _parse_mdc_bands(*_read_mdc_doc(path), aligned=aligned)


def _parse_mdc_bands(doc: dict, p: Path, aligned: bool = True) -> list[tuple[str, float, dict]]:
    out = []
    key = "mdc_by_tone" if aligned or not isinstance(doc.get("mdc_unaligned"), dict) else "mdc_unaligned_by_tone"
    for entry in doc.get(key) or []:
        try:
            out.append((str(entry["band"]), float(entry["ita_deg_max"]),
                        {str(k): float(v) for k, v in entry["mdc"].items()}))
        except (TypeError, KeyError, ValueError, AttributeError):
            raise SkinImgError("bad tone band in the MDC table", p.name) from None
    return sorted(out, key=lambda b: b[1])


# ----------------------------------------------------------------------------- statistics


def _tile_ids(mask: np.ndarray, tile: int) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    nx = (mask.shape[1] + tile - 1) // tile
    return (ys // tile) * nx + xs // tile


def pair_statistics(before: np.ndarray, after: np.ndarray, tiles: np.ndarray, *, n_boot: int = 2000,
                    seed: int = 0) -> dict:
    """Change statistics of one metric from paired pixel values.

    Parameters
    ----------
    before, after : ndarray, float, shape (N,)
        Values of the N joint-mask pixels (same order, no NaN).
    tiles : ndarray of int, shape (N,)
        Tile id of each pixel (block bootstrap unit).
    n_boot, seed : int

    Returns
    -------
    dict with ``before``, ``after`` (means), ``delta``, ``delta_pct`` (None when
    ``|before| < 1e-12``), ``ci95`` ([lo, hi], percentile block bootstrap) and
    ``effect_size`` (Cohen's d with the pooled pixel SD; None when both SDs are 0).
    """
    b = np.asarray(before, dtype=np.float64)
    a = np.asarray(after, dtype=np.float64)
    n, (sb, sa), k = _tile_sums(tiles, b, a)
    counts = _tile_draws(np.random.default_rng(seed), k, n_boot)
    return _change_summary(b, a, (counts @ sa - counts @ sb) / (counts @ n))


def _tile_sums(tiles: np.ndarray, *values: np.ndarray) -> tuple[np.ndarray, list[np.ndarray], int]:
    """Per tile (ids renumbered 0..k-1): pixel count, the sum of each of ``values`` (float64), and k."""
    _, inv = np.unique(tiles, return_inverse=True)
    k = int(inv.max()) + 1
    return (np.bincount(inv, minlength=k).astype(np.float64),
            [np.bincount(inv, weights=v, minlength=k) for v in values], k)


def _tile_draws(rng: np.random.Generator, k: int, n_boot: int) -> np.ndarray:
    """How often each of ``k`` tiles is drawn in each of ``n_boot`` resamples with replacement, float64 (n_boot, k)."""
    return rng.multinomial(k, np.full(k, 1.0 / k), size=n_boot).astype(np.float64)


def _change_summary(b: np.ndarray, a: np.ndarray, boot: np.ndarray) -> dict:
    """The statistics dict of :func:`pair_statistics` from the two samples (float64) and the bootstrap changes."""
    mb, ma = float(b.mean()), float(a.mean())
    delta = ma - mb
    lo, hi = (float(v) for v in np.percentile(boot, [2.5, 97.5]))
    sd = math.sqrt((float(b.var()) + float(a.var())) / 2.0)
    return {
        "before": mb,
        "after": ma,
        "delta": delta,
        "delta_pct": 100.0 * delta / abs(mb) if abs(mb) > 1e-12 else None,
        "ci95": [lo, hi],
        "effect_size": delta / sd if sd > 0 else None,
    }


def region_statistics(before: np.ndarray, after: np.ndarray, tiles_before: np.ndarray, tiles_after: np.ndarray, *,
                      n_boot: int = 2000, seed: int = 0) -> dict:
    """Change statistics of one metric from two *unpaired* samples: each photo's own skin pixels.

    Parameters
    ----------
    before, after : ndarray, float, shape (N,) / (M,)
        Values of BEFORE's and AFTER's skin pixels (no NaN; no pixel correspondence).
    tiles_before, tiles_after : ndarray of int, shape (N,) / (M,)
        Tile id of each pixel in its own photo (block bootstrap unit).
    n_boot, seed : int

    Returns
    -------
    dict with the keys of :func:`pair_statistics`; ``ci95`` is the percentile interval of
    ``mean(after*) - mean(before*)``, the tiles of each photo resampled with replacement independently
    (Kunsch 1989), with one generator seeded ``seed``.
    """
    b = np.asarray(before, dtype=np.float64)
    a = np.asarray(after, dtype=np.float64)
    rng = np.random.default_rng(seed)

    def boot(v: np.ndarray, tiles: np.ndarray) -> np.ndarray:
        n, (s,), k = _tile_sums(tiles, v)
        counts = _tile_draws(rng, k, n_boot)
        return (counts @ s) / (counts @ n)

    return _change_summary(b, a, boot(a, tiles_after) - boot(b, tiles_before))  # AFTER's tiles drawn first


def verdict(name: str, delta: float | None, ci95: Sequence | None, mdc: float | None) -> str:
    """``improved``, ``no_change`` or ``worsened`` for a change ``delta`` of metric ``name``.

    A change counts when ``|delta| > mdc`` and the 95 % CI (when given) excludes 0; its
    sign and :data:`DIRECTIONS` give improved / worsened.  ``"unknown"`` without a delta or MDC.
    """
    if delta is None or mdc is None or not math.isfinite(delta) or not math.isfinite(mdc):
        return "unknown"
    if abs(delta) <= mdc:
        return "no_change"
    if ci95 is not None and ci95[0] is not None and ci95[1] is not None and ci95[0] <= 0.0 <= ci95[1]:
        return "no_change"
    worse = (delta > 0) == (DIRECTIONS.get(name, 1) > 0)
    return "worsened" if worse else "improved"


# ----------------------------------------------------------------------------- pair pipeline

def _add_verdicts(doc: dict, p: CompareParams, area_fraction: float = 1.0) -> dict:
    """``mdc``, ``verdict`` and ``direction`` for every metric of a :func:`~skinimg.session.measure_pair` document
    (in place; returned), and ``mdc_source``: the table's defaults, the tone band of the pair's darker photo,
    the cross-talk allowance and ``p.mdc`` overrides (see :mod:`skinimg.session`, step 8).

    ``area_fraction``: the share of the pair's common skin the metrics were measured on (a region of interest).
    The MDCs are those of the whole skin (retakes of whole faces and forearms); the mean over a fraction ``f`` of
    it varies between retakes about ``1 / sqrt(f)`` times as much (local errors averaged over ``f`` times fewer
    tiles), so every MDC is multiplied by ``1 / sqrt(f)`` (``mdc_source.area_scale``)."""
    mdc_doc = _read_mdc_doc(p.mdc_path)  # read once: defaults, tone bands, cross-talk
    aligned = (doc.get("registration") or {}).get("ok", True) is not False  # unaligned: the MDCs of region statistics
    table = _parse_mdc(*mdc_doc, aligned=aligned)
    # the tone band of the pair: the darker photo's mean ITA (the conservative side)
    itas = [doc["metrics"].get("ita_deg", {}).get(k) for k in ("before", "after")]
    itas = [float(v) for v in itas if v is not None and math.isfinite(v)]
    ita = min(itas) if itas else None
    band = "default"
    if ita is not None:
        for name, ita_max, values in _parse_mdc_bands(*mdc_doc, aligned=aligned):
            if ita <= ita_max:
                table.update(values)
                band = name
                break
    table.update(dict(p.mdc))
    area_scale = 1.0 / math.sqrt(min(1.0, max(float(area_fraction), 1e-6)))
    table = {k: v * area_scale for k, v in table.items()}
    unnormalised = doc["lighting"]["method"] == "none" and p.lighting == "auto"
    crosstalk = _parse_crosstalk(*mdc_doc) if p.crosstalk_allowance else {}
    for name, m in doc["metrics"].items():
        mdc = table.get(name)
        before = m.get("before")
        if mdc is not None and before is not None and m.get("delta_pct") is not None and math.isfinite(before) \
                and abs(before) <= mdc:
            # a percentage of a level a retake cannot tell from zero (melanin of very light skin, ITA near 0 degrees)
            m["delta_pct_note"] = (f"not meaningful: the BEFORE level ({before:.3g}) is within the MDC ({mdc:.3g}) "
                                   "of zero; read the change in units")
        if name in crosstalk and mdc is not None:
            # a change the measured change of the other chromophore could explain is not called
            other, coef = crosstalk[name]
            d_other = doc["metrics"].get(other, {}).get("delta")
            if d_other is not None and math.isfinite(d_other):
                m["mdc_retake"] = mdc
                m["crosstalk_allowance"] = coef * abs(d_other)
                mdc = mdc + m["crosstalk_allowance"]
        m["mdc"] = mdc
        delta, ci = m.get("delta"), m.get("ci95")
        rng = m.get("delta_pct_model_range")
        note = None
        if rng and delta is not None and m.get("delta_pct") and math.isfinite(delta):
            # called only when the change holds under every member of the ensemble of optical models:
            # the change and its CI scaled to the member reading the smallest change (no_change when they disagree
            # on its sign)
            pct = m["delta_pct"]
            agree = all(v * pct > 0 for v in rng)
            scale = min(min(abs(v) for v in rng) / abs(pct), 1.0) if agree else 0.0
            if verdict(name, delta, ci, mdc) != "no_change":  # the central reading alone would call it: say why not
                why = ("under one optical model of the ensemble it is within the MDC" if agree else
                       "the optical models of the ensemble read the opposite sign" if rng[0] * rng[1] > 0 else
                       "the optical models of the ensemble disagree on its sign")
                note = f"not called: {why} (model range {rng[0]:+.1f} to {rng[1]:+.1f} %, central {pct:+.1f} %)"
            delta = delta * scale
            ci = None if ci is None or ci[0] is None else [c * scale for c in ci]
            m["delta_model_min"] = delta
        m["verdict"] = verdict(name, delta, ci, mdc)
        if note and m["verdict"] == "no_change":
            m["verdict_note"] = note
        if unnormalised and name in LIGHTING_DEPENDENT:
            m["verdict"] = "unknown"
            m["verdict_note"] = "lighting could not be normalised (no chart, no stable reference region)"
        m["direction"] = "lower_is_better" if DIRECTIONS.get(name, 1) > 0 else "higher_is_better"
    doc["mdc_source"] = {"table": os.fspath(p.mdc_path) if p.mdc_path else "models/mdc.json",
                         "tone_band": band, "ita_deg": ita, "overrides": dict(p.mdc),
                         "area_fraction": round(float(area_fraction), 6), "area_scale": round(area_scale, 6),
                         "alignment": "aligned" if aligned else ("unaligned" if "mdc_unaligned" in mdc_doc[0]
                                                                 else "unaligned (table has no unaligned MDCs)")}
    return doc

"""Before/after comparison of two photographs of the same skin, and series tracking.

``skinimg compare BEFORE AFTER`` answers "did it change, by how much, and is that more
than photo-to-photo noise?"; ``skinimg track`` runs it over a study.

Pipeline of one pair (:func:`compare_arrays`)
---------------------------------------------
1. **Calibration** (``calibrate``): ``"auto"`` uses the ColorChecker correction of
   :func:`skinimg.calibrate.calibrate_image` when a chart is found in *both* photos (one
   chart only: not used, noted); ``"chart"`` requires a chart in both; ``"none"`` skips it.
2. **Skin masks**: ``skinimg.segment`` (through :func:`skinimg.analyze._segment`) on each
   photo, chart area removed (:func:`skinimg.calibrate.chart_mask`).
3. **Registration** of AFTER onto BEFORE (:mod:`skinimg.register`).  A failed or poor
   registration stops the pair with :class:`~skinimg.errors.SkinImgError`
   ("registration failed: 12 inliers < 30"); misaligned photos are never compared.
4. **Lighting normalisation** (``lighting="auto"``), in linear RGB, when no chart
   correction was applied to both photos: a per-channel gain ``g_c`` multiplies AFTER's
   linear RGB so that a *reference region that did not change* matches BEFORE.
   ``g_c = sum B_c / sum A_c`` over the reference pixels of the registered pair (pixels with
   a 7 x 7 local mean outside 0.1-0.9 linear in either photo excluded, then those whose log ratio
   is more than 3 robust SDs from the median).  When the three gains agree within 4 %
   (:data:`ACHROMATIC_TOLERANCE`) their geometric mean is used for all channels: such
   small differences are estimation noise (JPEG chroma subsampling of a coloured
   backdrop), and a false colour cast would bias the chromaticity-based indices; a
   larger difference is a real change of white balance and is corrected per channel.
   A channel without 2000 usable reference pixels (red of a blue backdrop) gets the
   achromatic gain of the others.
   Reference, first usable of:

   * ``skin_outside_roi``: skin of both photos outside the ROI (when an ROI is given);
   * ``background``: pixels that are skin in neither photo, more than 2 % of the shorter
     side away from skin (the static scene: backdrop, clothing, chart frame).

   A reference is usable with at least 2000 pixels and a spread (1.4826 x MAD of the log
   ratio, every channel) below 0.08; otherwise no gain is applied, a warning says so and
   the verdict of the lighting-dependent metrics (:data:`LIGHTING_DEPENDENT`) is
   ``unknown`` (a dark backdrop, for instance, gives no usable reference).
   The whole skin is deliberately **not** the reference: a per-channel gain on the skin
   itself would cancel the very change being measured (a global fall in blood makes
   the skin less red; matching the skin's mean colour would undo it).
   Indices that are exposure-invariant by construction need no normalisation:
   ``erythema_index`` (log ratio R/G, Dawson 1980) and ``hemoglobin`` (optical-density
   chromaticity, Tsumura 1999) are unchanged by any common gain (shown in
   ``tests/test_compare.py``); ``melanin``, ``melanin_index``, ``l_star``, ``a_star``,
   ``b_star`` and ``ita_deg`` depend on exposure and rely on this step.
5. **Joint mask**: BEFORE pixels that are skin in BEFORE, whose registered AFTER position
   and its bilinear neighbours are skin in AFTER, inside the ROI when given.
6. **Indices**: :func:`skinimg.indices.compute_maps` on each photo in its own frame (no
   resampling of colours); AFTER's maps are resampled bilinearly into BEFORE's frame.
   Both photos use one chromophore branch (:func:`skinimg.indices.choose_shared_branch`
   on their pooled skin colours, reported as ``chromophore_branch``): on brown and dark
   skin two solutions share a chromaticity, and choosing per photo lets an exposure
   change swap them between sessions.  :func:`track` keeps the branch of a series' first
   compared pair for all its other pairs.
7. **Statistics** per metric over the joint mask (:func:`pair_statistics`): ``before`` and
   ``after`` means, ``delta = after - before``, ``delta_pct = 100 delta / |before|``,
   ``ci95``: 95 % percentile interval of ``delta`` by a **block bootstrap over square
   spatial tiles** (pixels are spatially correlated, tiles roughly independent; Kunsch
   1989): tile side ``tile_frac`` (5 %) of BEFORE's shorter side, at least 16 px (24 px on a
   480 x 640 photo, 150 px on 12 MP); ``n_boot`` = 2000 resamples of the tiles with
   replacement, both photos' sums taken from the same tiles (paired), fixed seed 0.
   ``effect_size``: Cohen's d, ``delta / sqrt((sd_before^2 + sd_after^2) / 2)`` with the
   pixel standard deviations over the joint mask (Cohen 1988).
   Area measures: ``red_area_fraction`` (joint skin with ``hemoglobin`` above
   ``IndexParams.red_threshold``) and ``brown_spot_area_fraction``
   (:func:`skinimg.indices.detect_brown_spots` on each melanin map, joint mask).  The
   spot *count* is reported under ``counts`` without a verdict: on unchanged retakes it
   varies by up to 40 % (spots split and merge at the threshold) while the spot area does not.
8. **Verdict** per metric against the minimal detectable change ``mdc`` (index units):
   ``no_change`` when ``|delta| <= mdc`` or the CI contains 0, otherwise ``worsened`` /
   ``improved`` by the metric's direction (:data:`DIRECTIONS`).  Default MDCs: see
   ``models/mdc.json`` (derived by ``benchmarks/derive_mdc.py`` from phantom retakes,
   ``MDC = 1.96 sqrt(2) SEM``, Weir 2005); brown and dark skin (the darker photo's mean ITA
   <= -10 / <= -30 degrees) use the larger MDCs of the table's ``mdc_by_tone`` bands
   (:func:`load_mdc_bands`; ``mdc_source.tone_band`` in the result); override with
   ``mdc={"hemoglobin": 0.002}``.
   ``hemoglobin`` adds a cross-talk allowance, ``coefficient * |delta melanin|`` (the
   table's ``crosstalk``, measured on phantom pairs whose only true change is melanin;
   :func:`load_crosstalk`), so a pigment change is not reported as a change of redness
   (``crosstalk_allowance=False`` turns it off).

Sign convention (:data:`DIRECTIONS`): for ``hemoglobin``, ``erythema_index``,
``a_star``, ``red_area_fraction`` (redness) and ``melanin``, ``melanin_index``,
``b_star``, ``brown_spot_area_fraction`` (pigmentation; b* rises
with tanning, Chardon 1991) a **decrease is improved**; for ``l_star`` and ``ita_deg`` an
**increase is improved** (lighter = less pigment).

References
----------
Kunsch, H. R. (1989). The jackknife and the bootstrap for general stationary observations.
Annals of Statistics 17(3), 1217-1241. https://doi.org/10.1214/aos/1176347265

Cohen, J. (1988). Statistical Power Analysis for the Behavioral Sciences, 2nd ed. Erlbaum.

Weir, J. P. (2005). Quantifying test-retest reliability using the intraclass correlation
coefficient and the SEM. Journal of Strength and Conditioning Research 19(1), 231-240.
https://doi.org/10.1519/15184.1
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from . import __version__
from . import colour
from .errors import SkinImgError
from .heatmap import render_heatmap
from .indices import INDEX_NAMES, IndexParams, choose_shared_branch, compute_maps, detect_brown_spots
from .io import (DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, load_image, read_header, remove_stale_temp_files,
                 safe_output_path, write_csv, write_json, write_png)
from .register import RegistrationParams, register, warp_image, warp_map

__all__ = [
    "METRICS",
    "DIRECTIONS",
    "DEFAULT_MDC_PATH",
    "SERIES_COLUMNS",
    "CompareParams",
    "load_mdc",
    "load_mdc_bands",
    "load_crosstalk",
    "load_roi",
    "pair_statistics",
    "verdict",
    "measure_pair",
    "compare_arrays",
    "compare_files",
    "discover_series",
    "read_manifest",
    "track",
]

log = logging.getLogger("skinimg.compare")

#: Metrics of ``comparison.json``, in order.
METRICS = INDEX_NAMES[6:] + INDEX_NAMES[:6] + ("red_area_fraction", "brown_spot_area_fraction")
#: +1: an increase is ``worsened`` (redness, pigmentation); -1: an increase is ``improved`` (lighter skin).
DIRECTIONS = {
    "hemoglobin": 1, "melanin": 1, "erythema_index": 1, "melanin_index": 1, "a_star": 1, "b_star": 1,
    "l_star": -1, "ita_deg": -1, "red_area_fraction": 1, "brown_spot_area_fraction": 1,
}
DEFAULT_MDC_PATH = Path(__file__).resolve().parent.parent / "models" / "mdc.json"
MDC_FORMAT = "skinimg-mdc/1"

#: Columns of ``series.csv`` (``skinimg track``), one row per patient, site, session, reference and metric.
SERIES_COLUMNS = ("patient", "site", "session", "reference", "reference_session", "index", "before", "after",
                  "delta", "delta_pct", "ci95_lo", "ci95_hi", "effect_size", "mdc", "verdict", "status", "error",
                  "image", "reference_image")

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
#: Metrics that depend on exposure / colour balance (need a chart or lighting normalisation).
LIGHTING_DEPENDENT = ("melanin", "melanin_index", "l_star", "a_star", "b_star", "ita_deg")
#: Per-channel gains agreeing within this relative tolerance are replaced by one achromatic gain.
ACHROMATIC_TOLERANCE = 0.04
_MAP_FILES = ("pair.png", "delta_hemoglobin.png", "delta_melanin.png")


@dataclass(frozen=True)
class CompareParams:
    """Parameters of a comparison (recorded in ``comparison.json``).

    Attributes
    ----------
    segment_method : {"model", "rules"}
        Passed to the skin segmentation.
    second_stage : {"mlp", "net", "both"}
        Second stage of the ``"model"`` segmentation (:attr:`skinimg.analyze.AnalyzeParams.second_stage`): use
        the one the photos were analysed with, so that both commands measure the same skin.
    calibrate : {"auto", "chart", "none"}
        Colour-chart correction (see module docstring).
    lighting : {"auto", "none"}
        Lighting normalisation by a per-channel gain on an unchanged reference region.
    indices : IndexParams
    registration : RegistrationParams
    tile_frac : float
        Bootstrap tile side as a fraction of BEFORE's shorter side (at least ``min_tile_px``).
    min_tile_px : int
    n_boot : int
        Bootstrap resamples.
    seed : int
        Bootstrap seed.
    mdc : tuple of (name, value)
        Overrides of the default MDCs (index units).
    mdc_path : str or None
        MDC table (default ``models/mdc.json``).
    crosstalk_allowance : bool
        Widen the haemoglobin MDC by the melanin cross-talk measured on phantoms
        (``crosstalk`` in the MDC table): ``mdc + coefficient * |delta melanin|``.
    min_joint_pixels : int
        Fewer joint skin pixels: the pair fails ("too little common skin").
    max_pixels : int or None
        Photos declaring more pixels are refused before decoding.
    map_max_side : int
        Longer side of each photo in the PNG maps.
    """

    segment_method: str = "model"
    calibrate: str = "auto"
    lighting: str = "auto"
    indices: IndexParams = field(default_factory=IndexParams)
    registration: RegistrationParams = field(default_factory=RegistrationParams)
    tile_frac: float = 0.05
    min_tile_px: int = 16
    n_boot: int = 2000
    seed: int = 0
    mdc: tuple = ()
    mdc_path: str | None = None
    crosstalk_allowance: bool = True
    min_joint_pixels: int = 500
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    map_max_side: int = 1024
    second_stage: str = "mlp"

    def __post_init__(self):
        if self.calibrate not in ("auto", "chart", "none"):
            raise SkinImgError(f"unknown calibration mode {self.calibrate!r} (use auto, chart or none)")
        if self.lighting not in ("auto", "none"):
            raise SkinImgError(f"unknown lighting normalisation {self.lighting!r} (use auto or none)")
        if self.segment_method not in ("model", "rules"):
            raise SkinImgError(f"unknown segmentation method {self.segment_method!r} (use 'model' or 'rules')")
        from .analyze import SECOND_STAGES

        if self.second_stage not in SECOND_STAGES:
            raise SkinImgError(f"unknown second stage {self.second_stage!r} (use {', '.join(SECOND_STAGES)})")
        mdc = tuple(sorted((str(k), float(v)) for k, v in dict(self.mdc).items()))
        for k, v in mdc:
            if k not in METRICS:
                raise SkinImgError(f"--mdc: unknown index {k!r} (one of {', '.join(METRICS)})")
            if not (math.isfinite(v) and v >= 0):
                raise SkinImgError(f"--mdc: {k} must be a number >= 0, got {v}")
        object.__setattr__(self, "mdc", mdc)
        if not (0 < self.tile_frac <= 1) or self.n_boot < 100:
            raise SkinImgError("tile_frac must be in (0, 1] and n_boot at least 100")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["registration"] = self.registration.to_dict()
        d["mdc"] = dict(self.mdc)
        return d


# ----------------------------------------------------------------------------- MDC, ROI


def _read_mdc_doc(path: str | os.PathLike | None) -> tuple[dict, Path]:
    p = Path(path) if path else DEFAULT_MDC_PATH
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


def load_mdc(path: str | os.PathLike | None = None) -> dict:
    """The default minimal detectable changes: ``{metric: value}`` (index units).

    Reads ``models/mdc.json`` (format ``skinimg-mdc/1``, written by ``benchmarks/derive_mdc.py``).
    """
    return _parse_mdc(*_read_mdc_doc(path))


def _parse_mdc(doc: dict, p: Path) -> dict:
    out = {}
    for k, v in doc["mdc"].items():
        try:
            out[str(k)] = float(v)
        except (TypeError, ValueError):
            raise SkinImgError(f"bad MDC value for {k!r}", p.name) from None
    return out


def load_mdc_bands(path: str | os.PathLike | None = None) -> list[tuple[str, float, dict]]:
    """Tone bands with their own MDCs: ``[(band, ita_deg_max, {metric: value}), ...]``, darkest bound first.

    ``models/mdc.json`` has two, ``dark`` (ITA <= -30 degrees) and ``brown`` (-30 < ITA <= -10):
    retakes of such skin spread the chromophore estimates two (brown) to six (dark) times more
    than lighter skin (see ``benchmarks/derive_mdc.py``).  A table without bands gives ``[]``.
    """
    return _parse_mdc_bands(*_read_mdc_doc(path))


def _parse_mdc_bands(doc: dict, p: Path) -> list[tuple[str, float, dict]]:
    out = []
    for entry in doc.get("mdc_by_tone") or []:
        try:
            out.append((str(entry["band"]), float(entry["ita_deg_max"]),
                        {str(k): float(v) for k, v in entry["mdc"].items()}))
        except (TypeError, KeyError, ValueError, AttributeError):
            raise SkinImgError("bad tone band in the MDC table", p.name) from None
    return sorted(out, key=lambda b: b[1])


def load_roi(path: str | os.PathLike, shape: Sequence[int], *, label: str | None = None) -> np.ndarray:
    """Region of interest in BEFORE's pixels, as a bool mask of ``shape`` (H, W).

    The same files as ``skinimg segment --roi``: a JSON polygon ``[[x, y], ...]`` (or
    ``{"polygon": [...]}``) in BEFORE's pixel coordinates, or a mask image of BEFORE's
    size (non-zero = inside); see :func:`skinimg.segment.load_roi`.
    """
    from .segment import load_roi as _load_roi

    return _load_roi(path, (int(shape[0]), int(shape[1])), label=label)


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
    mb, ma = float(b.mean()), float(a.mean())
    delta = ma - mb
    _, inv = np.unique(tiles, return_inverse=True)
    k = int(inv.max()) + 1
    n = np.bincount(inv, minlength=k).astype(np.float64)
    sb = np.bincount(inv, weights=b, minlength=k)
    sa = np.bincount(inv, weights=a, minlength=k)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(k, np.full(k, 1.0 / k), size=n_boot).astype(np.float64)  # (n_boot, k)
    nn = counts @ n
    boot = (counts @ sa - counts @ sb) / nn
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


def _segment(rgb: np.ndarray, method: str, second_stage: str = "mlp") -> np.ndarray:
    from . import analyze

    try:
        seg = analyze._segment(rgb, method, second_stage=second_stage)
    except ModuleNotFoundError as exc:
        if "segment" not in str(exc):
            raise
        raise SkinImgError("skin segmentation is not available in this installation (skinimg.segment missing); "
                           "pass skin masks instead") from None
    return np.asarray(seg.mask, dtype=bool)


def _calibrate_pair(before: np.ndarray, after: np.ndarray, mode: str, notes: list):
    """(before, after, info, chart corrections or (None, None))."""
    info = {"mode": mode, "before": "none", "after": "none"}
    if mode == "none":
        return before, after, info, (None, None)
    from .calibrate import calibrate_image

    out, corr = [], []
    for which, rgb in (("BEFORE", before), ("AFTER", after)):
        try:
            c_rgb, c = calibrate_image(rgb, mode="chart")
        except SkinImgError as exc:
            if mode == "chart":
                raise SkinImgError(f"{which}: {exc.reason}") from None
            notes.append(f"{which}: {exc.reason}")
            c_rgb, c = None, None
        out.append(c_rgb)
        corr.append(c)
    if corr[0] is not None and corr[1] is not None:
        info.update(before="chart", after="chart",
                    delta_e_after={"before": corr[0].delta_e_after, "after": corr[1].delta_e_after})
        return out[0], out[1], info, (corr[0], corr[1])
    if corr[0] is not None or corr[1] is not None:
        notes.append("a colour chart was found in only one photo: chart correction not used")
    return before, after, info, (corr[0], corr[1])


def _linear_sample(rgb: np.ndarray, mask: np.ndarray, max_n: int = 200_000) -> np.ndarray:
    """Linear RGB float32 (n, 3) of the mask pixels, at most ``max_n`` (regular subsample)."""
    idx = np.flatnonzero(mask.ravel())
    if idx.size > max_n:
        idx = idx[:: int(math.ceil(idx.size / max_n))]
    px = rgb.reshape(-1, 3)[idx]
    return colour.srgb_to_linear(px).astype(np.float32, copy=False)


def _gain_from(ref: np.ndarray, before: np.ndarray, after_w: np.ndarray):
    # selection on 7x7 local means, so that a pixel's own noise does not decide whether it is used
    sel_b = cv2.blur(before, (7, 7))
    sel_a = cv2.blur(after_w, (7, 7))
    return _gain_from_sel(ref, before, after_w, sel_b, sel_a)


def _gain_from_sel(ref, before, after_w, sel_b, sel_a):
    """(gain (3,) with NaN for unusable channels, n, spread) from the reference pixels (gain None if unusable).

    Per channel: pixels whose 7 x 7 local mean is outside [0.1, 0.9] linear in either photo
    are dropped (noise and quantisation of dark values, clipping of bright ones; selecting
    on the local mean, not the pixel, avoids a selection bias from the pixel's noise), then those whose log ratio is
    more than 3 robust SDs from the median (moved objects, edges); the gain is the ratio
    of the sums of the rest (unbiased by texture, unlike a median of ratios).  A channel
    with fewer than 2000 such pixels (e.g. red on a blue backdrop) has no estimate.
    """
    lb, la = _linear_sample(before, ref), _linear_sample(after_w, ref)
    sb, sa = _linear_sample(sel_b, ref), _linear_sample(sel_a, ref)
    gain = np.full(3, np.nan)
    spreads, counts = [], []
    for c in range(3):
        b, a = lb[:, c], la[:, c]
        ok = (sb[:, c] > 0.1) & (sb[:, c] < 0.9) & (sa[:, c] > 0.1) & (sa[:, c] < 0.9) & (b > 0) & (a > 0)
        b, a = b[ok], a[ok]
        if b.size < 2000:
            continue
        lr = np.log(b) - np.log(a)
        med = float(np.median(lr))
        rsd = 1.4826 * float(np.median(np.abs(lr - med)))
        keep = np.abs(lr - med) <= 3.0 * max(rsd, 1e-3)
        if int(keep.sum()) < 2000:
            continue
        gain[c] = float(b[keep].sum(dtype=np.float64) / a[keep].sum(dtype=np.float64))
        spreads.append(rsd)
        counts.append(int(keep.sum()))
    if not counts:
        return None, int(len(lb)), float("nan")
    return gain, min(counts), float(max(spreads))


def _apply_gain(rgb: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """``rgb`` with its linear values multiplied by ``gain`` per channel (same dtype, clipped)."""
    lin = colour.srgb_to_linear(rgb)
    lin *= gain.astype(np.float32)
    np.clip(lin, 0.0, 1.0, out=lin)
    enc = colour.linear_to_srgb(lin)
    del lin
    if rgb.dtype == np.uint8:
        return np.clip(enc * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if rgb.dtype == np.uint16:
        return np.clip(enc * 65535.0 + 0.5, 0, 65535).astype(np.uint16)
    return enc.astype(np.float32)


def _disk(r: int) -> np.ndarray:
    r = max(1, int(r))
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def _lighting(before, after, after_w, mask_b, mask_a_w, valid, roi, exclude, mode, notes):
    """Per-channel gain for AFTER (or None) and the ``lighting`` record."""
    rec = {"method": "none", "gain": [1.0, 1.0, 1.0], "reference_pixels": 0, "spread": None}
    if mode == "none":
        rec["note"] = "disabled"
        return None, rec
    h, w = mask_b.shape
    r = max(2, int(round(0.02 * min(h, w))))
    refs = []
    if roi is not None:
        outside = ~cv2.dilate(roi.view(np.uint8), _disk(r)).astype(bool)
        refs.append(("skin_outside_roi", mask_b & mask_a_w & valid & outside & ~exclude))
    skin_any = cv2.dilate((mask_b | mask_a_w).view(np.uint8), _disk(r)).astype(bool)
    valid_in = cv2.erode(valid.view(np.uint8), _disk(r)).astype(bool)
    refs.append(("background", ~skin_any & valid_in))
    for name, ref in refs:
        gain, n, spread = _gain_from(ref, before, after_w)
        if gain is None:
            notes.append(f"lighting reference {name}: only {n} usable pixels")
            continue
        if not spread < 0.08:
            notes.append(f"lighting reference {name}: inconsistent (spread {spread:.3f} > 0.08)")
            continue
        per_channel = [float(g) if math.isfinite(g) else None for g in gain]
        have = np.isfinite(gain)
        if not have.all() or float(gain[have].max() / gain[have].min()) < 1.0 + ACHROMATIC_TOLERANCE:
            gain = np.full(3, float(np.exp(np.log(gain[have]).mean())))
            kind = "achromatic" if have.all() else "achromatic from " + "".join("RGB"[c] for c in np.flatnonzero(have))
        else:
            kind = "per_channel"
        rec.update(method=f"gain:{name}", gain=[float(g) for g in gain], kind=kind, per_channel_estimate=per_channel,
                   reference_pixels=int(n), spread=spread)
        return gain, rec
    rec["note"] = "no stable unchanged reference: lighting not normalised"
    notes.append("lighting not normalised (no stable reference region): melanin, melanin_index, L*, a*, b* and ITA "
                 "may reflect exposure")
    return None, rec


def measure_pair(before: np.ndarray, after: np.ndarray, *, before_mask: np.ndarray | None = None,
                 after_mask: np.ndarray | None = None, roi: np.ndarray | None = None,
                 params: CompareParams | None = None, label: str | None = None) -> tuple[dict, dict]:
    """Register, normalise and measure a pair; metrics without verdicts.

    Parameters
    ----------
    before, after : ndarray, shape (H, W, 3) / (H', W', 3), encoded sRGB uint8 / uint16 / float [0, 1], R, G, B
    before_mask, after_mask : ndarray of bool, optional
        Skin masks (default: segmentation of each photo).
    roi : ndarray of bool, shape (H, W), optional
        Region of interest in BEFORE's frame.
    params : CompareParams, optional
    label : str, optional
        Names the pair in errors ("before.jpg vs after.jpg").

    Returns
    -------
    doc : dict
        ``registration``, ``calibration``, ``lighting``, ``joint_mask``, ``metrics``
        (each: before, after, delta, delta_pct, ci95, effect_size), ``statistics``, ``warnings``.
    pictures : dict
        ``before`` (BEFORE, calibrated), ``after_registered`` (AFTER in BEFORE's frame,
        normalised), ``joint`` mask, ``delta_hemoglobin`` / ``delta_melanin`` float32 maps.

    Raises
    ------
    SkinImgError
        Registration failed or poor, too little common skin, chart required and missing.
    """
    p = params or CompareParams()
    notes: list[str] = []
    for name, a in (("BEFORE", before), ("AFTER", after)):
        if a.ndim != 3 or a.shape[2] != 3:
            raise SkinImgError(f"{name} must be an RGB image (H, W, 3)", label)
    try:
        before, after, cal, corr = _calibrate_pair(before, after, p.calibrate, notes)
    except SkinImgError as exc:
        raise SkinImgError(exc.reason, label) from None
    mask_b = _segment(before, p.segment_method, p.second_stage) if before_mask is None else np.asarray(before_mask, bool)
    mask_a = _segment(after, p.segment_method, p.second_stage) if after_mask is None else np.asarray(after_mask, bool)
    from .calibrate import chart_mask

    chart_b = chart_mask(before.shape, corr[0]) if corr[0] is not None else np.zeros(mask_b.shape, bool)
    chart_a = chart_mask(after.shape, corr[1]) if corr[1] is not None else np.zeros(mask_a.shape, bool)
    mask_b, mask_a = mask_b & ~chart_b, mask_a & ~chart_a
    if mask_b.shape != before.shape[:2] or mask_a.shape != after.shape[:2]:
        raise SkinImgError("skin mask size differs from its photo", label)
    if roi is not None and roi.shape != mask_b.shape:
        raise SkinImgError("ROI size differs from BEFORE", label)

    reg = register(before, after, before_mask=mask_b, after_mask=mask_a, params=p.registration)
    if not reg.ok:
        raise SkinImgError(f"registration failed: {reg.reason}", label)
    hw = mask_b.shape
    valid = warp_image(np.ones(after.shape[:2], np.uint8), reg, hw, interpolation=cv2.INTER_NEAREST).astype(bool)
    mask_a_w = warp_image(mask_a, reg, hw)
    after_w = warp_image(after, reg, hw)

    if cal["before"] == "chart":
        gain, light = None, {"method": "chart", "gain": [1.0, 1.0, 1.0], "reference_pixels": 0, "spread": None}
    else:
        gain, light = _lighting(before, after, after_w, mask_b, mask_a_w, valid, roi, chart_b, p.lighting, notes)
    if gain is not None:
        after = _apply_gain(after, gain)
        after_w = _apply_gain(after_w, gain)

    # one chromophore branch for both photos (same skin): an exposure or lighting change must
    # not swap the twin solution of brown/dark skin between sessions (indices.choose_shared_branch)
    branch = choose_shared_branch([(before, mask_b), (after, mask_a)], params=p.indices)
    ip = replace(p.indices, branch=branch)
    maps_b = compute_maps(before, mask_b, params=ip)
    maps_a = compute_maps(after, mask_a, params=ip)
    warped = {name: warp_map(maps_a[name], reg, hw) for name in INDEX_NAMES}
    del maps_a
    joint = mask_b & np.isfinite(warped["hemoglobin"]) & np.isfinite(maps_b["hemoglobin"])
    if roi is not None:
        joint &= roi
    n_joint = int(np.count_nonzero(joint))
    if n_joint < p.min_joint_pixels:
        raise SkinImgError(f"too little common skin: {n_joint} joint skin pixels < {p.min_joint_pixels}", label)

    tile = max(p.min_tile_px, int(round(p.tile_frac * min(hw))))
    tiles = _tile_ids(joint, tile)
    metrics: dict = {}
    for name in INDEX_NAMES:
        metrics[name] = pair_statistics(maps_b[name][joint], warped[name][joint], tiles, n_boot=p.n_boot, seed=p.seed)
    thr = np.float32(p.indices.red_threshold)
    metrics["red_area_fraction"] = pair_statistics((maps_b["hemoglobin"][joint] > thr).astype(np.float32),
                                                   (warped["hemoglobin"][joint] > thr).astype(np.float32), tiles,
                                                   n_boot=p.n_boot, seed=p.seed)
    spots_b = detect_brown_spots(maps_b["melanin"], joint, params=p.indices)
    spots_a = detect_brown_spots(warped["melanin"], joint, params=p.indices)
    sp_b = _spot_pixels(spots_b, hw)[joint].astype(np.float32)
    sp_a = _spot_pixels(spots_a, hw)[joint].astype(np.float32)
    metrics["brown_spot_area_fraction"] = pair_statistics(sp_b, sp_a, tiles, n_boot=p.n_boot, seed=p.seed)
    n_b = int(np.count_nonzero(mask_b if roi is None else mask_b & roi))
    doc = {
        "registration": reg.to_dict(),
        "calibration": cal,
        "lighting": light,
        "chromophore_branch": branch,
        "joint_mask": {"pixels": n_joint, "fraction_of_before_skin": n_joint / n_b if n_b else None,
                       "roi": roi is not None},
        "metrics": {name: metrics[name] for name in METRICS},
        "counts": {"brown_spot_count": {"before": int(spots_b.count), "after": int(spots_a.count)}},
        "statistics": {
            "ci95": "percentile block bootstrap over square spatial tiles (paired)",
            "tile_px": tile, "n_tiles": int(len(np.unique(tiles))), "n_boot": p.n_boot, "seed": p.seed,
            "effect_size": "Cohen's d: delta / sqrt((sd_before^2 + sd_after^2) / 2), pixel SDs over the joint mask",
            "delta_pct": "100 * delta / |before|",
        },
        "warnings": notes + list(reg.notes),
    }
    pics = {"before": before, "after_registered": after_w, "joint": joint,
            "delta_hemoglobin": np.where(joint, warped["hemoglobin"] - maps_b["hemoglobin"], np.nan).astype(np.float32),
            "delta_melanin": np.where(joint, warped["melanin"] - maps_b["melanin"], np.nan).astype(np.float32)}
    return doc, pics


def _spot_pixels(spots, shape) -> np.ndarray:
    lab = spots.labels > 0
    if lab.shape != tuple(shape):
        lab = cv2.resize(lab.view(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST).astype(bool)
    return lab


def _add_verdicts(doc: dict, p: CompareParams) -> dict:
    mdc_doc = _read_mdc_doc(p.mdc_path)  # read once: defaults, tone bands, cross-talk
    table = _parse_mdc(*mdc_doc)
    # the tone band of the pair: the darker photo's mean ITA (the conservative side)
    itas = [doc["metrics"].get("ita_deg", {}).get(k) for k in ("before", "after")]
    itas = [float(v) for v in itas if v is not None and math.isfinite(v)]
    ita = min(itas) if itas else None
    band = "default"
    if ita is not None:
        for name, ita_max, values in _parse_mdc_bands(*mdc_doc):
            if ita <= ita_max:
                table.update(values)
                band = name
                break
    table.update(dict(p.mdc))
    unnormalised = doc["lighting"]["method"] == "none" and p.lighting == "auto"
    crosstalk = _parse_crosstalk(*mdc_doc) if p.crosstalk_allowance else {}
    for name, m in doc["metrics"].items():
        mdc = table.get(name)
        if name in crosstalk and mdc is not None:
            # a change the measured change of the other chromophore could explain is not called
            other, coef = crosstalk[name]
            d_other = doc["metrics"].get(other, {}).get("delta")
            if d_other is not None and math.isfinite(d_other):
                m["mdc_retake"] = mdc
                m["crosstalk_allowance"] = coef * abs(d_other)
                mdc = mdc + m["crosstalk_allowance"]
        m["mdc"] = mdc
        m["verdict"] = verdict(name, m.get("delta"), m.get("ci95"), mdc)
        if unnormalised and name in LIGHTING_DEPENDENT:
            m["verdict"] = "unknown"
            m["verdict_note"] = "lighting could not be normalised (no chart, no stable reference region)"
        m["direction"] = "lower_is_better" if DIRECTIONS.get(name, 1) > 0 else "higher_is_better"
    doc["mdc_source"] = {"table": os.fspath(p.mdc_path) if p.mdc_path else "models/mdc.json",
                         "tone_band": band, "ita_deg": ita, "overrides": dict(p.mdc)}
    return doc


def compare_arrays(before: np.ndarray, after: np.ndarray, *, before_mask: np.ndarray | None = None,
                   after_mask: np.ndarray | None = None, roi: np.ndarray | None = None,
                   params: CompareParams | None = None, label: str | None = None) -> tuple[dict, dict]:
    """:func:`measure_pair` plus ``mdc`` and ``verdict`` per metric (see the module docstring).

    Returns ``(doc, pictures)``; ``doc["metrics"][name]`` has ``before``, ``after``,
    ``delta``, ``delta_pct``, ``ci95``, ``effect_size``, ``mdc``, ``verdict``, ``direction``.
    """
    p = params or CompareParams()
    load_mdc(p.mdc_path)  # a missing table fails before any work
    doc, pics = measure_pair(before, after, before_mask=before_mask, after_mask=after_mask, roi=roi, params=p,
                             label=label)
    return _add_verdicts(doc, p), pics


# ----------------------------------------------------------------------------- pictures


def _diverging_lut() -> np.ndarray:
    """Blue - white - red colour map as an OpenCV user LUT (256 x 1 x 3, BGR)."""
    t = np.linspace(-1.0, 1.0, 256)
    r = np.where(t < 0, 1.0 + t * 0.85, 1.0)
    g = 1.0 - np.abs(t) * 0.85
    b = np.where(t > 0, 1.0 - t * 0.85, 1.0)
    lut = np.stack([b, g, r], axis=1)
    return np.clip(lut * 255.0 + 0.5, 0, 255).astype(np.uint8).reshape(256, 1, 3)


def _to_u8(rgb: np.ndarray) -> np.ndarray:
    if rgb.dtype == np.uint8:
        return rgb
    if rgb.dtype == np.uint16:
        return (rgb >> 8).astype(np.uint8)
    return np.clip(rgb.astype(np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _fit(img: np.ndarray, max_side: int, interp=cv2.INTER_AREA) -> np.ndarray:
    h, w = img.shape[:2]
    s = min(1.0, max_side / float(max(h, w)))
    if s < 1.0:
        img = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=interp)
    return img


def _smooth_in(values: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
    v = np.where(mask, np.nan_to_num(values, nan=0.0), 0.0).astype(np.float32)
    m = mask.astype(np.float32)
    num = cv2.GaussianBlur(v, (0, 0), sigma)
    den = cv2.GaussianBlur(m, (0, 0), sigma)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mask & (den > 1e-3), num / np.maximum(den, 1e-6), np.nan).astype(np.float32)


def render_pictures(pics: dict, *, max_side: int = 1024) -> dict[str, np.ndarray]:
    """The PNG pictures of a comparison: ``pair.png`` and the delta maps (RGB uint8 arrays).

    ``pair.png``: BEFORE and the registered, normalised AFTER side by side, joint skin
    outlined.  ``delta_hemoglobin.png`` / ``delta_melanin.png``: ``after - before`` over
    BEFORE (blue = decrease, red = increase, symmetric scale at the 98th percentile of
    ``|delta|``), smoothed inside the joint mask by a Gaussian of 1 % of the shorter side
    (display only; statistics use the unsmoothed maps).
    """
    b = _fit(_to_u8(pics["before"]), max_side)
    a = _fit(_to_u8(pics["after_registered"]), max_side)
    joint = _fit(pics["joint"].view(np.uint8) * 255, max_side, cv2.INTER_NEAREST) > 0
    contours, _ = cv2.findContours(joint.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    th = max(1, int(round(min(b.shape[:2]) / 300)))
    b, a = b.copy(), a.copy()
    for img in (b, a):
        cv2.drawContours(img, contours, -1, (40, 220, 90), th)
    gap = np.full((b.shape[0], max(4, b.shape[1] // 100), 3), 255, np.uint8)
    out = {"pair.png": np.ascontiguousarray(np.concatenate([b, gap, a], axis=1))}
    sigma = max(1.0, 0.01 * min(pics["joint"].shape))
    lut = _diverging_lut()
    for key, title in (("delta_hemoglobin", "hemoglobin change"), ("delta_melanin", "melanin change")):
        d = _smooth_in(pics[key], pics["joint"], sigma)
        fin = np.abs(d[np.isfinite(d)])
        v = float(np.percentile(fin, 98)) if fin.size else 1.0
        v = v if v > 0 else 1.0
        out[f"{key}.png"] = render_heatmap(pics["before"], d, vmin=-v, vmax=v, title=title, colormap=lut,
                                           max_side=max_side)
    return out


# ----------------------------------------------------------------------------- files


def _load(path, label, max_pixels):
    rgb, meta = load_image(path, max_pixels=max_pixels, label=label)
    return rgb, meta


def compare_files(before: str | os.PathLike, after: str | os.PathLike, out: str | os.PathLike | None, *,
                  roi: str | os.PathLike | None = None, params: CompareParams | None = None,
                  before_label: str | None = None, after_label: str | None = None,
                  before_mask: np.ndarray | None = None, after_mask: np.ndarray | None = None) -> dict:
    """Compare two photo files; write ``out/comparison.json`` and the PNG maps.

    Parameters
    ----------
    before, after : path-like
        Photos (BEFORE is the reference frame).
    out : path-like or None
        Output folder (created); None writes nothing.
    roi : path-like, optional
        :func:`load_roi` file (polygon JSON or mask image in BEFORE's pixels).
    params : CompareParams, optional
    before_label, after_label : str, optional
        Names recorded in ``comparison.json`` (default: the paths as given).

    Returns
    -------
    dict
        The ``comparison.json`` document: ``before``, ``after``, ``registration`` (ok, method,
        inliers, residual_px, ...), ``metrics`` (per metric: before, after, delta,
        delta_pct, ci95, effect_size, mdc, verdict), ``lighting``, ``calibration``,
        ``joint_mask``, ``statistics``, ``warnings``, ``params``, ``skinimg_version``, ``maps``.

    Raises
    ------
    SkinImgError
        Unreadable photo or ROI, registration failure, too little common skin, output not writable.
    """
    p = params or CompareParams()
    bl = before_label or os.fspath(before)
    al = after_label or os.fspath(after)
    pair = f"{bl} vs {al}"
    load_mdc(p.mdc_path)
    rgb_b, _ = _load(before, bl, p.max_pixels)
    rgb_a, _ = _load(after, al, p.max_pixels)
    roi_mask = load_roi(roi, rgb_b.shape[:2]) if roi is not None else None
    doc, pics = compare_arrays(rgb_b, rgb_a, before_mask=before_mask, after_mask=after_mask, roi=roi_mask, params=p,
                               label=pair)
    full = {"before": bl, "after": al}
    full.update(doc)
    full["roi"] = os.fspath(roi) if roi is not None else None
    full["params"] = p.to_dict()
    full["skinimg_version"] = __version__
    full["maps"] = list(_MAP_FILES)
    if out is not None:
        out = Path(out)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SkinImgError(f"cannot create output folder ({exc.strerror or exc})", os.fspath(out)) from None
        for name, img in render_pictures(pics, max_side=p.map_max_side).items():
            write_png(out / name, img)
        write_json(out / "comparison.json", full)
    return full


# ----------------------------------------------------------------------------- track


@dataclass
class SessionImage:
    """One photo of a series: ``patient``, ``site``, ``session``, ``path``, ``label`` (relative name), ``roi``."""

    patient: str
    site: str
    session: str
    path: Path
    label: str
    roi: Path | None = None
    capture_time: str | None = None


def _capture_time(path: Path) -> str | None:
    try:
        im, info = read_header(path)
        im.close()
    except SkinImgError:
        return None
    return info.get("capture_time")


def _order_sessions(items: list[SessionImage], notes: list) -> list[SessionImage]:
    """Sessions ordered by ISO date names, else by EXIF capture time, else by name (noted)."""
    if all(_ISO_DATE.match(s.session) for s in items):
        return sorted(items, key=lambda s: s.session)
    for s in items:
        s.capture_time = _capture_time(s.path)
    if all(s.capture_time for s in items):
        return sorted(items, key=lambda s: (s.capture_time, s.session))
    if len(items) > 1:
        notes.append(f"{items[0].patient}/{items[0].site}: sessions are not ISO dates and lack EXIF capture times; "
                     "ordered by name")
    return sorted(items, key=lambda s: s.session)


def discover_series(root: str | os.PathLike, notes: list | None = None) -> dict[tuple[str, str], list[SessionImage]]:
    """Series of ``ROOT/<patient>/<site>/<session>/<image>``, sessions ordered (see :func:`track`).

    A session folder with several photos uses the first in name order (noted).
    """
    notes = [] if notes is None else notes
    root = Path(root)
    if not root.is_dir():
        raise SkinImgError("study folder not found", os.fspath(root))
    series: dict[tuple[str, str], list[SessionImage]] = {}
    for pdir in sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")):
        for sdir in sorted(d for d in pdir.iterdir() if d.is_dir() and not d.name.startswith(".")):
            items = []
            for sess in sorted(d for d in sdir.iterdir() if d.is_dir() and not d.name.startswith(".")):
                imgs = sorted(f for f in sess.iterdir() if f.is_file() and not f.name.startswith(".")
                              and f.suffix.lower() in IMAGE_EXTENSIONS)
                if not imgs:
                    continue
                if len(imgs) > 1:
                    notes.append(f"{pdir.name}/{sdir.name}/{sess.name}: {len(imgs)} photos; using {imgs[0].name}")
                items.append(SessionImage(pdir.name, sdir.name, sess.name, imgs[0],
                                          imgs[0].relative_to(root).as_posix()))
            if items:
                series[(pdir.name, sdir.name)] = _order_sessions(items, notes)
    if not series:
        raise SkinImgError("no <patient>/<site>/<session>/<image> photos found", os.fspath(root))
    return series


def read_manifest(path: str | os.PathLike, root: str | os.PathLike,
                  notes: list | None = None) -> dict[tuple[str, str], list[SessionImage]]:
    """Series from a CSV manifest with columns ``patient,site,session,image[,roi]``.

    ``image`` and ``roi`` are relative to ``root`` (or absolute).  Sessions are ordered as
    in :func:`discover_series`; a session listed twice for one patient/site is an error.
    """
    notes = [] if notes is None else notes
    p, root = Path(path), Path(root)
    try:
        with open(p, newline="", encoding="utf-8-sig") as fh:
            rd = csv.DictReader(fh)
            cols = [c.strip() for c in (rd.fieldnames or [])]
            rows = [{(k or "").strip(): (v or "").strip() for k, v in r.items()} for r in rd]
    except FileNotFoundError:
        raise SkinImgError("manifest not found", os.fspath(p)) from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SkinImgError(f"cannot read manifest ({exc})", os.fspath(p)) from None
    missing = [c for c in ("patient", "site", "session", "image") if c not in cols]
    if missing:
        raise SkinImgError(f"manifest lacks column(s) {', '.join(missing)} (needs patient,site,session,image[,roi])",
                           p.name)
    series: dict[tuple[str, str], list[SessionImage]] = {}
    for i, r in enumerate(rows, start=2):
        if not any(r.values()):
            continue
        if not all(r.get(c) for c in ("patient", "site", "session", "image")):
            raise SkinImgError(f"line {i}: patient, site, session and image are required", p.name)
        for c in ("patient", "site", "session"):
            safe_output_path(".", r[c], what=f"manifest {c} (line {i})")
            if "/" in r[c] or "\\" in r[c] or "__" in r[c]:
                raise SkinImgError(f"line {i}: {c} {r[c]!r} may not contain '/', '\\' or '__'", p.name)
        img = Path(r["image"])
        img = img if img.is_absolute() else root / img
        roi = r.get("roi") or None
        roi_p = None if roi is None else (Path(roi) if Path(roi).is_absolute() else root / roi)
        key = (r["patient"], r["site"])
        if any(s.session == r["session"] for s in series.get(key, [])):
            raise SkinImgError(f"line {i}: session {r['session']!r} listed twice for {key[0]}/{key[1]}", p.name)
        series.setdefault(key, []).append(SessionImage(r["patient"], r["site"], r["session"], img, r["image"], roi_p))
    if not series:
        raise SkinImgError("manifest lists no photos", p.name)
    return {k: _order_sessions(v, notes) for k, v in sorted(series.items())}


def _series_rows(base: dict, doc: dict | None, error: str | None) -> list[dict]:
    if doc is None:
        return [dict(base, index=None, status="error", error=error)]
    rows = []
    for name, m in doc["metrics"].items():
        ci = m.get("ci95") or [None, None]
        rows.append(dict(base, index=name, before=m["before"], after=m["after"], delta=m["delta"],
                         delta_pct=m["delta_pct"], ci95_lo=ci[0], ci95_hi=ci[1], effect_size=m["effect_size"],
                         mdc=m["mdc"], verdict=m["verdict"], status="ok", error=None))
    return rows


def track(root: str | os.PathLike, out: str | os.PathLike, *, manifest: str | os.PathLike | None = None,
          params: CompareParams | None = None, progress=None) -> dict:
    """Compare every patient/site series with its baseline and with the previous session.

    Parameters
    ----------
    root : path-like
        Study folder ``ROOT/<patient>/<site>/<session>/<image>`` (sessions named ``YYYY-MM-DD``,
        otherwise ordered by EXIF capture time), or the folder the manifest's paths are relative to.
    out : path-like
        Output folder: ``series.csv`` (:data:`SERIES_COLUMNS`) and
        ``pairs/<patient>/<site>/<reference>__<session>/comparison.json`` (+ PNG maps).
    manifest : path-like, optional
        CSV ``patient,site,session,image[,roi]`` instead of the folder layout.
    params : CompareParams, optional
    progress : callable, optional
        Called with ``(pair_label, doc_or_None, error_or_None)`` after each pair.

    Returns
    -------
    dict
        ``rows`` (series.csv rows), ``n_pairs``, ``n_failed``, ``failed`` (list of
        ``(pair, reason)``), ``notes``, ``outputs``.
    """
    p = params or CompareParams()
    load_mdc(p.mdc_path)
    notes: list[str] = []
    root = Path(root)
    series = read_manifest(manifest, root, notes) if manifest is not None else discover_series(root, notes)
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SkinImgError(f"cannot create output folder ({exc.strerror or exc})", os.fspath(out)) from None
    remove_stale_temp_files(out)
    rows: list[dict] = []
    failed: list[tuple[str, str]] = []
    n_pairs = 0
    for (patient, site), items in series.items():
        if len(items) < 2:
            notes.append(f"{patient}/{site}: only one session, nothing to compare")
        done: dict[tuple[str, str], tuple[dict | None, str | None]] = {}
        sp = p  # the series' first successful pair fixes its chromophore branch for the others
        for i in range(1, len(items)):
            cur = items[i]
            refs = [("baseline", items[0]), ("previous", items[i - 1])]
            for kind, ref in refs:
                key = (ref.session, cur.session)
                if key not in done:
                    n_pairs += 1
                    label = f"{ref.label} vs {cur.label}"
                    folder = safe_output_path(out, f"pairs/{patient}/{site}/{ref.session}__{cur.session}")
                    try:
                        doc = compare_files(ref.path, cur.path, folder, roi=ref.roi, params=sp,
                                            before_label=ref.label, after_label=cur.label)
                        done[key] = (doc, None)
                        if sp.indices.branch == "auto" and doc.get("chromophore_branch"):
                            sp = replace(sp, indices=replace(sp.indices, branch=doc["chromophore_branch"]))
                    except SkinImgError as exc:
                        reason = exc.reason if exc.path in (None, label) else str(exc)
                        done[key] = (None, reason)
                        failed.append((label, reason))
                    if progress is not None:
                        progress(label, *done[key])
                doc, err = done[key]
                base = {"patient": patient, "site": site, "session": cur.session, "reference": kind,
                        "reference_session": ref.session, "image": cur.label, "reference_image": ref.label}
                rows.extend(_series_rows(base, doc, err))
    outputs = [write_csv(out / "series.csv", rows, SERIES_COLUMNS)]
    meta = {"command": "track", "skinimg_version": __version__, "root": os.fspath(root),
            "manifest": os.fspath(manifest) if manifest is not None else None, "params": p.to_dict(),
            "n_series": len(series), "n_pairs": n_pairs, "n_failed": len(failed),
            "failed": [{"pair": a, "error": b} for a, b in failed], "notes": notes}
    outputs.append(write_json(out / "track.json", meta))
    return {"rows": rows, "n_pairs": n_pairs, "n_failed": len(failed), "failed": failed, "notes": notes,
            "outputs": outputs}

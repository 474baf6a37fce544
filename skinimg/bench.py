"""Research benchmark of the indices against phantom ground truth: ``skinimg bench``.

Skin phantoms (:mod:`skinimg.synth`) know the true melanin and haemoglobin of every
pixel, so the indices of :mod:`skinimg.indices` can be scored against the truth.
Four suites, each a pure function returning a JSON-ready dict (nothing is printed):

``accuracy`` (:func:`run_accuracy`)
    A grid of phantoms varying melanin and haemoglobin independently across the full
    tone range (reference ITA from about +70 to -65 degrees), measured on the **true** skin mask.
    For every index: Spearman rank correlation and Pearson correlation of the
    per-image mean with the true per-image mean haemoglobin and melanin, and the
    cross-talk (:func:`crosstalk`).
``repeatability`` (:func:`run_repeatability`)
    Retakes of unchanged skin (same phantom seed) under exposure +-20 %, white-balance
    shifts (daylight illuminants D50/D65/D75), JPEG quality 70-95, small pose changes
    and sensor noise, each factor alone and all together; per index the within-subject
    standard deviation (SEM), the minimal detectable change
    ``MDC95 = 1.96 * sqrt(2) * SEM`` and the coefficient of variation, without and with
    ColorChecker calibration (:func:`skinimg.calibrate.calibrate_image`, ``mode="chart"``).
``segmentation`` (:func:`run_segmentation`)
    Pixel precision, recall, F1 and IoU of ``skinimg.segment`` on phantom masks (per
    tone class) and optionally on a labelled real set.  Skipped (with a status) when
    ``skinimg.segment`` is not installed.
``speed`` (:func:`run_speed`)
    Per-stage time of the pipeline on a 12-megapixel JPEG, images per second with 1
    and 2 worker processes, peak memory, next to baselines measured in the same run
    (OpenCV JPEG decode alone, scikit-image ``rgb2lab``).

:func:`run_bench` runs the chosen suites; :func:`format_markdown` renders the tables;
:func:`write_outputs` writes ``bench.json``, ``bench.csv`` (:data:`CSV_COLUMNS`) and the
plots.  Everything is deterministic (fixed seeds) except the timings.

Metrics
-------
Spearman's rank correlation (Spearman 1904) and Pearson's product-moment correlation
are computed on per-image means (one value per phantom).

Cross-talk of an index X whose target chromophore is T (haemoglobin for
``erythema_index``, ``a_star`` and ``hemoglobin``; melanin for the others) and whose
other chromophore is O::

    crosstalk = (dX/dO * span(O)) / (dX/dT * span(T))

``dX/dT`` is the least-squares slope of X against the true mean of T at a fixed grid level
of O (model ``X = a_level(O) + b T + c O``: one intercept per level of O, so the slope
comes from the variation within levels, and the small variation of the true O within a
level is adjusted for); ``dX/dO`` likewise with the roles swapped; ``span`` is the range
of the grid's nominal levels.  It is the change of X over the grid's full range
of the *other* chromophore relative to its change over the full range of its own:
0 = no cross-talk, 1 = the other chromophore moves X as much as the target does;
the sign says whether they move X in the same direction.

Repeatability follows Weir (2005): with ``k_i`` retakes of subject ``i`` (sample
standard deviation ``s_i``), ``SEM = sqrt(sum (k_i - 1) s_i^2 / sum (k_i - 1))`` (the
square root of the within-subject mean square of a one-way ANOVA), and the minimal
detectable change at 95 % confidence ``MDC95 = 1.96 * sqrt(2) * SEM``: a change between
two photos smaller than MDC95 cannot be told from retake variation.  The coefficient of
variation is the root mean square of the subjects' ``s_i / |mean_i|`` (Glüer et al.
1995), in %; it is meaningful for ratio-scale indices only (not for ``ita_deg``,
``a_star``, ``b_star`` near 0).

Segmentation: per image, with TP, FP, FN the pixel counts against the true mask,
precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = 2 TP / (2 TP + FP + FN),
IoU (Jaccard index) = TP / (TP + FP + FN); the tables show means over images.

References
----------
.. [Weir2005] Weir, J. P. (2005). Quantifying test-retest reliability using the
   intraclass correlation coefficient and the SEM. Journal of Strength and
   Conditioning Research 19(1), 231-240. https://doi.org/10.1519/15184.1
.. [Gluer1995] Glüer, C. C., Blake, G., Lu, Y., Blunt, B. A., Jergas, M. and Genant, H. K.
   (1995). Accurate assessment of precision errors: how to measure the reproducibility
   of bone densitometry techniques. Osteoporosis International 5(4), 262-270.
   https://doi.org/10.1007/BF01774016
.. [Spearman1904] Spearman, C. (1904). The proof and measurement of association between
   two things. American Journal of Psychology 15(1), 72-101. https://doi.org/10.2307/1412159
.. [Jaccard1912] Jaccard, P. (1912). The distribution of the flora in the alpine zone.
   New Phytologist 11(2), 37-50. https://doi.org/10.1111/j.1469-8137.1912.tb05611.x
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from . import __version__
from . import indices as _indices
from .errors import SkinImgError

__all__ = [
    "SUITES",
    "SIZES",
    "CSV_COLUMNS",
    "TARGETS",
    "BenchParams",
    "bench_params",
    "spearman",
    "pearson",
    "crosstalk",
    "repeatability_stats",
    "mask_metrics",
    "retake_specs",
    "run_accuracy",
    "run_repeatability",
    "run_segmentation",
    "run_speed",
    "run_bench",
    "csv_rows",
    "format_markdown",
    "write_outputs",
    "write_plots",
    "make_speed_jpeg",
]

#: Suites of ``skinimg bench --suite`` ("all" runs them in this order).
SUITES = ("accuracy", "repeatability", "segmentation", "speed")
#: Presets of ``--size``.
SIZES = ("small", "full")
#: Columns of ``bench.csv`` (long format: one metric value per row).
CSV_COLUMNS = ("suite", "table", "item", "condition", "metric", "value", "unit", "n")
#: Target chromophore of every index (the other one is its cross-talk chromophore).
TARGETS = {
    "erythema_index": "hemoglobin",
    "a_star": "hemoglobin",
    "hemoglobin": "hemoglobin",
    "melanin_index": "melanin",
    "l_star": "melanin",
    "b_star": "melanin",
    "ita_deg": "melanin",
    "melanin": "melanin",
}
#: Repeatability factors: what changes between the retakes of one subject.
FACTORS = ("exposure", "white_balance", "jpeg", "pose", "noise", "all")
#: Units of the indices (for bench.csv).
UNITS = {
    "erythema_index": "EI x100", "melanin_index": "MI x100", "l_star": "L*", "a_star": "a*", "b_star": "b*",
    "ita_deg": "deg", "hemoglobin": "volume fraction", "melanin": "volume fraction",
}
_OTHER = {"hemoglobin": "melanin", "melanin": "hemoglobin"}


@dataclass(frozen=True)
class BenchParams:
    """Every setting of one benchmark run (recorded in ``bench.json``).

    Attributes
    ----------
    size : {"small", "full"}
        Preset name (see :func:`bench_params`).
    image_size : (int, int)
        Phantom size (H, W) of the accuracy, repeatability and segmentation suites.
    melanin_levels, hemoglobin_levels : tuple of float
        Accuracy grid (volume fractions); every combination, ``grid_seeds`` phantoms each.
    grid_seeds : int
        Phantoms (different skins) per grid cell.
    subjects : tuple of (melanin, hemoglobin)
        Repeatability subjects (one phantom seed each).
    retakes : int
        Retakes per subject and factor.
    factors : tuple of str
        Repeatability factors (:data:`FACTORS`).
    exposure_range : (float, float)
        Exposure gain of the retakes (uniform).
    jpeg_range : (int, int)
        JPEG quality of the retakes (uniform integers, inclusive).
    illuminants : tuple of str
        White-balance retakes draw one of these (daylight 5000-7500 K by default).
    pose_shift, pose_rotation_deg, pose_scale : float
        Pose retakes: shift up to ``pose_shift`` x width, rotation up to +-deg, scale 1 +- this.
    segmentation_images : int
        Phantoms of the segmentation suite.
    segment_methods : tuple of str
        Methods passed to ``skinimg.segment.segment_skin``.
    speed_size : (int, int)
        Size (H, W) of the speed JPEG (3000 x 4000 = 12 MP).
    speed_repeat : int
        Timings are the median of this many runs.
    speed_images : int
        Images per throughput run (each worker count).
    speed_workers : tuple of int
        Worker counts of the throughput runs.
    seed : int
        Base seed of everything.
    """

    size: str = "small"
    image_size: tuple[int, int] = (240, 320)
    melanin_levels: tuple[float, ...] = (0.005, 0.06, 0.16, 0.3, 0.45)
    hemoglobin_levels: tuple[float, ...] = (0.002, 0.01, 0.025, 0.05, 0.1)
    grid_seeds: int = 1
    subjects: tuple[tuple[float, float], ...] = ((0.02, 0.015), (0.16, 0.03), (0.35, 0.02))
    retakes: int = 5
    factors: tuple[str, ...] = ("all",)
    exposure_range: tuple[float, float] = (0.8, 1.2)
    jpeg_range: tuple[int, int] = (70, 95)
    illuminants: tuple[str, ...] = ("D50", "D65", "D75")
    pose_shift: float = 0.04
    pose_rotation_deg: float = 5.0
    pose_scale: float = 0.05
    segmentation_images: int = 6
    segment_methods: tuple[str, ...] = ("model", "rules")
    speed_size: tuple[int, int] = (720, 960)
    speed_repeat: int = 1
    speed_images: int = 2
    speed_workers: tuple[int, ...] = (1, 2)
    seed: int = 0

    def __post_init__(self):
        if self.size not in SIZES:
            raise SkinImgError(f"unknown benchmark size {self.size!r} (use small or full)")
        bad = [f for f in self.factors if f not in FACTORS]
        if bad:
            raise SkinImgError(f"unknown repeatability factor(s) {', '.join(bad)} (use {', '.join(FACTORS)})")
        if self.retakes < 2 or self.grid_seeds < 1 or self.speed_repeat < 1 or self.speed_images < 1:
            raise SkinImgError("retakes must be >= 2; grid_seeds, speed_repeat and speed_images >= 1")
        if len(self.melanin_levels) < 2 or len(self.hemoglobin_levels) < 2:
            raise SkinImgError("the accuracy grid needs at least 2 melanin and 2 haemoglobin levels")

    def to_dict(self) -> dict:
        return asdict(self)


def bench_params(size: str = "small", **changes) -> BenchParams:
    """The preset of ``--size``; keyword arguments override fields.

    ``small`` (under a minute on 2 cores): 5 x 5 grid at 240 x 320, 3 subjects x 5
    retakes (all factors at once), 6 segmentation phantoms, speed on a 0.7-MP JPEG.
    ``full``: 8 x 8 grid x 2 skins at 480 x 640, 5 subjects x 8 retakes for every
    factor alone and all together, 24 segmentation phantoms, speed on a 12-MP JPEG
    (median of 3), throughput on 6 images.
    """
    if size == "small":
        p = BenchParams()
    elif size == "full":
        p = BenchParams(
            size="full",
            image_size=(480, 640),
            melanin_levels=(0.005, 0.02, 0.05, 0.1, 0.16, 0.24, 0.34, 0.45),
            hemoglobin_levels=(0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1),
            grid_seeds=2,
            subjects=((0.01, 0.01), (0.06, 0.02), (0.16, 0.03), (0.25, 0.015), (0.4, 0.025)),
            retakes=8,
            factors=FACTORS,
            segmentation_images=24,
            speed_size=(3000, 4000),
            speed_repeat=3,
            speed_images=6,
        )
    else:
        raise SkinImgError(f"unknown benchmark size {size!r} (use small or full)")
    return replace(p, **changes) if changes else p


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


def mask_metrics(pred: np.ndarray, truth: np.ndarray) -> dict:
    """Pixel precision, recall, F1 and IoU of a predicted mask against the true mask.

    Parameters
    ----------
    pred, truth : ndarray of bool, shape (H, W)

    Returns
    -------
    dict with ``precision``, ``recall``, ``f1``, ``iou`` (NaN when undefined: e.g.
    precision of an empty prediction) and the counts ``tp``, ``fp``, ``fn``.
    """
    pred = np.asarray(pred, dtype=bool)
    truth = np.asarray(truth, dtype=bool)
    if pred.shape != truth.shape:
        raise ValueError(f"mask shapes differ: {pred.shape} vs {truth.shape}")
    tp = int(np.count_nonzero(pred & truth))
    fp = int(np.count_nonzero(pred & ~truth))
    fn = int(np.count_nonzero(~pred & truth))
    nan = float("nan")
    return {
        "precision": tp / (tp + fp) if tp + fp else nan,
        "recall": tp / (tp + fn) if tp + fn else nan,
        "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else nan,
        "iou": tp / (tp + fp + fn) if tp + fp + fn else nan,
        "tp": tp, "fp": fp, "fn": fn,
    }


# ----------------------------------------------------------------------------- accuracy


def _tone(truth: dict) -> tuple[float, str]:
    ref = truth["skin_reference"]
    return float(ref["ita_deg"]), str(ref["ita_category"])


def run_accuracy(params: BenchParams | None = None, *, progress: Callable[[str], None] | None = None) -> dict:
    """Accuracy suite: index vs true chromophores on a melanin x haemoglobin phantom grid.

    Every phantom (default face scene: shading, highlights, texture, brown spots, red
    patches, sensor noise; ``params.image_size``) is measured by
    :func:`skinimg.indices.measure` on its true skin mask.

    Returns
    -------
    dict
        ``indices``: one dict per index of :data:`skinimg.indices.INDEX_NAMES` with
        ``index``, ``target``, ``spearman_hemoglobin``, ``pearson_hemoglobin``,
        ``spearman_melanin``, ``pearson_melanin``, ``crosstalk`` and the slopes of
        :func:`crosstalk`; ``images``: per-phantom truth (``true_melanin``,
        ``true_hemoglobin``, reference ``ita_deg`` and ``tone``) and measured means;
        ``ita_range``: reference ITA of the lightest and darkest phantoms; ``n_images``.
    """
    from .synth import PhantomSpec, render_phantom

    p = params or BenchParams()
    images = []
    k = 0
    for i, mel in enumerate(p.melanin_levels):
        for j, hb in enumerate(p.hemoglobin_levels):
            for s in range(p.grid_seeds):
                seed = p.seed + 1000 + k
                k += 1
                ph = render_phantom(PhantomSpec(melanin=mel, hemoglobin=hb, seed=seed, size=p.image_size))
                row, _ = _indices.measure(ph.image, ph.mask, return_maps=False)
                ita, tone = _tone(ph.truth)
                rec = {"melanin_level": mel, "hemoglobin_level": hb, "seed": seed,
                       "true_melanin": float(ph.truth["melanin_mean"]),
                       "true_hemoglobin": float(ph.truth["hemoglobin_mean"]),
                       "reference_ita_deg": ita, "tone": tone}
                rec.update({name: float(row[name]) for name in _indices.INDEX_NAMES})
                images.append(rec)
        if progress:
            progress(f"accuracy: melanin level {i + 1}/{len(p.melanin_levels)}")
    col = {key: np.array([r[key] for r in images], dtype=np.float64)
           for key in ("true_melanin", "true_hemoglobin", "melanin_level", "hemoglobin_level")}
    rows = []
    for name in _indices.INDEX_NAMES:
        v = np.array([r[name] for r in images], dtype=np.float64)
        t = TARGETS[name]
        o = _OTHER[t]
        xt = crosstalk(v, target_true=col[f"true_{t}"], other_true=col[f"true_{o}"],
                       target_level=col[f"{t}_level"], other_level=col[f"{o}_level"])
        rows.append({
            "index": name,
            "target": t,
            "spearman_hemoglobin": spearman(v, col["true_hemoglobin"]),
            "pearson_hemoglobin": pearson(v, col["true_hemoglobin"]),
            "spearman_melanin": spearman(v, col["true_melanin"]),
            "pearson_melanin": pearson(v, col["true_melanin"]),
            **xt,
        })
    itas = [r["reference_ita_deg"] for r in images]
    return {"status": "ok", "indices": rows, "images": images, "n_images": len(images),
            "ita_range": [float(max(itas)), float(min(itas))]}


# ----------------------------------------------------------------------------- repeatability


def retake_specs(base, factor: str, n: int, params: BenchParams, seed: int) -> list:
    """``n`` retakes of the skin of ``base`` (a :class:`~skinimg.synth.PhantomSpec`) varying ``factor``.

    Every retake has its own sensor-noise seed (same skin ``seed``).  Factors:
    ``exposure`` (gain uniform in ``params.exposure_range``), ``white_balance`` (an
    illuminant of ``params.illuminants``, cycled), ``jpeg`` (quality uniform in
    ``params.jpeg_range``), ``pose`` (shift, rotation, scale within the ``pose_*`` limits),
    ``noise`` (sensor noise only) and ``all`` (every factor at once).  Deterministic
    from ``seed``.
    """
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 77])
    h, w = base.size
    out = []
    for r in range(n):
        ch = {"noise_seed": int(seed * 1000 + r + 1)}
        if factor in ("exposure", "all"):
            ch["exposure"] = float(rng.uniform(*params.exposure_range))
        if factor in ("white_balance", "all"):
            ch["illuminant"] = params.illuminants[int(rng.integers(len(params.illuminants)))] if factor == "all" \
                else params.illuminants[r % len(params.illuminants)]
        if factor in ("jpeg", "all"):
            ch["jpeg_quality"] = int(rng.integers(params.jpeg_range[0], params.jpeg_range[1] + 1))
        if factor in ("pose", "all"):
            ch["pose"] = (float(rng.uniform(-1, 1) * params.pose_shift * w),
                          float(rng.uniform(-1, 1) * params.pose_shift * w),
                          float(rng.uniform(-1, 1) * params.pose_rotation_deg),
                          float(1.0 + rng.uniform(-1, 1) * params.pose_scale))
        if factor not in FACTORS:
            raise ValueError(f"unknown factor {factor!r}")
        out.append(replace(base, **ch))
    return out


def run_repeatability(params: BenchParams | None = None, *, progress: Callable[[str], None] | None = None) -> dict:
    """Repeatability suite: SEM, MDC95 and CV per index over retakes of unchanged skin.

    Every retake is rendered with a ColorChecker in the frame and measured on its true
    skin mask twice: as photographed (``condition="uncalibrated"``) and after
    :func:`skinimg.calibrate.calibrate_image` (``mode="chart"``; ``"calibrated"``).  A
    retake whose chart is not found is left out of the calibrated condition and counted.

    Returns
    -------
    dict
        ``rows``: one dict per (condition, factor, index) with the fields of
        :func:`repeatability_stats`; ``mdc``: ``{condition: {index: MDC95}}`` of factor
        ``"all"`` (the default minimal detectable change); ``calibration_failures``;
        ``n_retakes``; ``subjects``.
    """
    from .calibrate import calibrate_image
    from .synth import PhantomSpec, render_phantom

    p = params or BenchParams()
    names = _indices.INDEX_NAMES
    values = {(c, f, n): [] for c in ("uncalibrated", "calibrated") for f in p.factors for n in names}
    failures = {f: 0 for f in p.factors}
    for si, (mel, hb) in enumerate(p.subjects):
        seed = p.seed + 2000 + si
        base = PhantomSpec(melanin=mel, hemoglobin=hb, seed=seed, size=p.image_size, chart=True)
        for fi, factor in enumerate(p.factors):
            per = {(c, n): [] for c in ("uncalibrated", "calibrated") for n in names}
            for spec in retake_specs(base, factor, p.retakes, p, seed * 10 + fi):
                ph = render_phantom(spec)
                row, _ = _indices.measure(ph.image, ph.mask, return_maps=False)
                for n in names:
                    per["uncalibrated", n].append(float(row[n]))
                try:
                    cal, _corr = calibrate_image(ph.image, mode="chart")
                except SkinImgError:
                    failures[factor] += 1
                    continue
                row, _ = _indices.measure(cal, ph.mask, return_maps=False)
                for n in names:
                    per["calibrated", n].append(float(row[n]))
            for (c, n), v in per.items():
                values[c, factor, n].append(v)
        if progress:
            progress(f"repeatability: subject {si + 1}/{len(p.subjects)}")
    rows = []
    mdc: dict = {}
    for (c, f, n), groups in values.items():
        st = repeatability_stats(groups)
        rows.append({"condition": c, "factor": f, "index": n, **st})
        if f == "all":
            mdc.setdefault(c, {})[n] = st["mdc"]
    return {"status": "ok", "rows": rows, "mdc": mdc, "calibration_failures": failures,
            "n_retakes": p.retakes, "subjects": [list(s) for s in p.subjects], "factors": list(p.factors)}


# ----------------------------------------------------------------------------- segmentation

SKIPPED_SEGMENT = "skipped (skinimg.segment not installed)"


def _segmenter():
    """``skinimg.analyze._segment`` or None when ``skinimg.segment`` is not importable."""
    from . import analyze

    try:
        analyze._segment(np.zeros((8, 8, 3), np.uint8), "rules")
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == "skinimg.segment" or exc.name.startswith("skinimg.segment")):
            return None
        raise
    except Exception:  # a real segmenter may refuse a tiny black image; it is installed
        pass
    return analyze._segment


def _find_mask(masks_dir: Path, stem_rel: str) -> Path | None:
    for suffix in ("", "_mask"):
        for ext in (".png", ".PNG", ".bmp", ".tif", ".tiff", ".jpg"):
            c = masks_dir / f"{stem_rel}{suffix}{ext}"
            if c.is_file():
                return c
    return None


def _summarise_masks(per_image: list[dict]) -> dict:
    out = {"n_images": len(per_image)}
    for k in ("precision", "recall", "f1", "iou"):
        v = [r[k] for r in per_image if math.isfinite(r[k])]
        out[k] = float(np.mean(v)) if v else float("nan")
    v = [r["iou"] for r in per_image if math.isfinite(r["iou"])]
    out["iou_min"] = float(np.min(v)) if v else float("nan")
    return out


def run_segmentation(params: BenchParams | None = None, *, images: str | os.PathLike | None = None,
                     masks: str | os.PathLike | None = None,
                     progress: Callable[[str], None] | None = None) -> dict:
    """Segmentation suite: pixel precision / recall / F1 / IoU of ``skinimg.segment``.

    Phantoms vary tone (melanin 0.01-0.45), background, site (face / forearm) and
    illuminant, with every distractor (hair, lips, eyes, clothing, cast shadow).  With
    ``images`` and ``masks`` (folders), every image found in ``images`` is also scored
    against the mask ``masks/<relative stem>.png`` (or ``<stem>_mask.png``; > 0 = skin).

    Returns
    -------
    dict
        ``status`` ``"ok"`` or :data:`SKIPPED_SEGMENT`; ``rows``: one dict per
        (dataset, group, method) with mean ``precision``, ``recall``, ``f1``, ``iou``,
        ``iou_min`` and ``n_images`` (group ``"all"`` and one per tone class for the
        phantoms); ``errors``: real images without a usable mask.

    Raises
    ------
    SkinImgError
        ``images`` without ``masks`` (or the reverse), or a folder without images.
    """
    from .io import discover_images, load_image, read_mask
    from .synth import BACKGROUNDS, PhantomSpec, render_phantom

    if (images is None) != (masks is None):
        raise SkinImgError("--images and --masks go together (a folder of photos and a folder of their masks)")
    p = params or BenchParams()
    seg = _segmenter()
    if seg is None:
        return {"status": SKIPPED_SEGMENT, "rows": [], "errors": []}
    mel_levels = (0.01, 0.05, 0.12, 0.2, 0.3, 0.45)
    ills = ("D65", "D50", "A", "F11")
    per: dict = {}
    for k in range(p.segmentation_images):
        spec = PhantomSpec(melanin=mel_levels[k % len(mel_levels)], hemoglobin=(0.01, 0.02, 0.04)[k % 3],
                           seed=p.seed + 3000 + k, size=p.image_size, background=BACKGROUNDS[k % len(BACKGROUNDS)],
                           site="forearm" if k % 4 == 3 else "face", illuminant=ills[(k // 2) % len(ills)],
                           jpeg_quality=90)
        ph = render_phantom(spec)
        _, tone = _tone(ph.truth)
        for method in p.segment_methods:
            m = mask_metrics(np.asarray(seg(ph.image, method).mask, dtype=bool), ph.mask)
            per.setdefault(("phantoms", "all", method), []).append(m)
            per.setdefault(("phantoms", tone, method), []).append(m)
        if progress:
            progress(f"segmentation: phantom {k + 1}/{p.segmentation_images}")
    errors = []
    if images is not None:
        items = discover_images([images])
        if not items:
            raise SkinImgError("no image files found", os.fspath(images))
        for item in items:
            mp = _find_mask(Path(masks), item.stem_rel)
            if mp is None:
                errors.append({"image": item.relpath, "error": "no mask found"})
                continue
            try:
                rgb, _ = load_image(item.path, label=item.relpath)
                truth = read_mask(mp)
                if truth.shape != rgb.shape[:2]:
                    raise SkinImgError(f"mask is {truth.shape[1]}x{truth.shape[0]}, image is "
                                       f"{rgb.shape[1]}x{rgb.shape[0]}", item.relpath)
            except SkinImgError as exc:
                errors.append({"image": item.relpath, "error": exc.reason})
                continue
            for method in p.segment_methods:
                m = mask_metrics(np.asarray(seg(rgb, method).mask, dtype=bool), truth)
                per.setdefault(("real", "all", method), []).append(m)
    # a real photograph with a hand-drawn skin mask (skinimg.synth.ASTRONAUT_SKIN), never used in training
    from skimage import data as _skdata

    from .synth import astronaut_skin_mask

    astro, astro_truth = _skdata.astronaut(), astronaut_skin_mask()
    for method in p.segment_methods:
        m = mask_metrics(np.asarray(seg(astro, method).mask, dtype=bool), astro_truth)
        per.setdefault(("astronaut (hand-labelled)", "all", method), []).append(m)
    rows = [{"dataset": d, "group": g, "method": m, **_summarise_masks(v)} for (d, g, m), v in per.items()]
    return {"status": "ok", "rows": rows, "errors": errors}


# ----------------------------------------------------------------------------- speed


def make_speed_jpeg(path: str | os.PathLike, size: tuple[int, int] = (3000, 4000), *, seed: int = 0,
                    quality: int = 92, chart: bool = True) -> np.ndarray:
    """Write a phantom photo (with a ColorChecker unless ``chart=False``) of ``size`` (H, W) as a JPEG.

    Returns the true skin mask, bool (H, W).

    The phantom is rendered at a quarter of the size and upscaled (bicubic), with
    sensor-like noise added at full resolution (an upscaled photo is too smooth for a
    realistic JPEG size and decode time).  The true skin mask (bool, (H, W)) is
    written beside it as ``<stem>_mask.png``.
    """
    from .io import write_bytes, write_png
    from .synth import PhantomSpec, render_phantom

    h, w = size
    ph = render_phantom(PhantomSpec(melanin=0.12, hemoglobin=0.03, seed=seed, chart=chart,
                                    size=(max(64, h // 4), max(64, w // 4))))
    big = cv2.resize(ph.image, (w, h), interpolation=cv2.INTER_CUBIC)
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, 2.0, big.shape).round().astype(np.int16)
    big = np.clip(big.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(big, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover
        raise SkinImgError("could not encode the benchmark JPEG")
    write_bytes(path, buf.tobytes())
    mask = cv2.resize(ph.mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
    write_png(Path(path).with_name(Path(path).stem + "_mask.png"), mask.astype(np.uint8) * 255)
    return mask


def _status_bytes(key: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:  # reset the peak-RSS mark (Linux >= 4.0)
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _worker_init() -> None:
    cv2.setNumThreads(1)


def _get_segment(method: str, mask_path: str):
    """(callable rgb -> mask, label): the real segmenter, or the true mask when it is missing."""
    seg = _segmenter()
    if seg is not None:
        return (lambda rgb: np.asarray(seg(rgb, method).mask, dtype=bool)), method
    from .io import read_mask

    truth = read_mask(mask_path)
    return (lambda rgb: truth), "true mask (skinimg.segment not installed)"


def _pipeline(path: str, segment, with_maps: bool = False, out: str | None = None) -> dict:
    """One photo through decode -> calibrate -> segment -> indices (-> maps -> write); stage times."""
    from .calibrate import calibrate_image
    from .io import load_image

    t = {}
    t0 = time.perf_counter()
    rgb, _ = load_image(path)
    t1 = time.perf_counter()
    rgb, _corr = calibrate_image(rgb, mode="auto")
    t2 = time.perf_counter()
    mask = segment(rgb)
    t3 = time.perf_counter()
    _indices.measure(rgb, mask, return_maps=False)
    t4 = time.perf_counter()
    t.update(decode=t1 - t0, calibrate=t2 - t1, segment=t3 - t2, indices=t4 - t3)
    if with_maps:
        from .analyze import AnalyzeParams, _write_maps
        from .io import InputImage

        maps = _indices.compute_maps(rgb, mask)
        t5 = time.perf_counter()
        _write_maps(Path(out), InputImage(path=Path(path), relpath=Path(path).name), rgb, maps, AnalyzeParams())
        t6 = time.perf_counter()
        t.update(maps=t5 - t4, write=t6 - t5)
    t["calibration"] = _corr.kind
    t["decoded_bytes"] = int(rgb.nbytes)
    t["skin_fraction"] = float(np.mean(mask))
    return t


def _speed_child(path: str, mask_path: str, method: str, repeat: int, out: str) -> dict:
    """Worker (one thread): peak memory of one pipeline run, then stage and baseline timings."""
    from skimage.color import rgb2lab

    from .io import load_image

    segment, label = _get_segment(method, mask_path)
    _warm(None)
    res: dict = {"segment_method": label}
    reset = _reset_peak()
    before = _status_bytes("VmRSS")
    first = _pipeline(path, segment)
    peak = _status_bytes("VmHWM")
    res["peak_rss_above_start_bytes"] = (peak - before) if (reset and peak and before) else None
    res["decoded_bytes"] = first["decoded_bytes"]
    res["skin_fraction"] = first["skin_fraction"]
    res["calibration"] = first["calibration"]
    runs = [_pipeline(path, segment, with_maps=True, out=out) for _ in range(repeat)]
    res["stages"] = {k: statistics.median(r[k] for r in runs)
                     for k in ("decode", "calibrate", "segment", "indices", "maps", "write")}
    data = np.fromfile(path, dtype=np.uint8)
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        cv2.imdecode(data, cv2.IMREAD_COLOR)
        ts.append(time.perf_counter() - t0)
    res["baseline_cv2_decode"] = statistics.median(ts)
    rgb, _ = load_image(path)
    res["shape"] = list(rgb.shape)
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        rgb2lab(rgb)
        ts.append(time.perf_counter() - t0)
    res["baseline_rgb2lab"] = statistics.median(ts)
    return res


def _warm(_):
    """Fill the per-process caches (imports, basis, inverse tables, chart reference) outside the timing."""
    from skimage import color  # noqa: F401

    from .calibrate import calibrate_image

    rgb = np.zeros((64, 64, 3), np.uint8)
    rgb[...] = (200, 150, 130)
    mask = np.ones((64, 64), bool)
    calibrate_image(rgb, mode="auto")
    _indices.measure(rgb, mask, return_maps=False)
    time.sleep(0.3)  # so every worker takes one warm-up job
    return os.getpid()


def _throughput_job(job) -> float:
    path, mask_path, method = job
    segment, _ = _get_segment(method, mask_path)
    t0 = time.perf_counter()
    _pipeline(path, segment)
    return time.perf_counter() - t0


def run_speed(params: BenchParams | None = None, *, workdir: str | os.PathLike | None = None,
              method: str = "model", progress: Callable[[str], None] | None = None) -> dict:
    """Speed suite: per-stage time, throughput and peak memory on one large JPEG.

    A phantom JPEG of ``params.speed_size`` (12 MP for ``full``) with a ColorChecker is
    written to a temporary folder (:func:`make_speed_jpeg`).  In a worker process pinned
    to one OpenCV thread: peak RSS of one decode -> calibrate -> segment -> indices run
    (VmHWM after resetting it, minus the RSS before; Linux), then the median over
    ``speed_repeat`` runs of each stage (``decode`` = :func:`skinimg.io.load_image`,
    ``calibrate`` = :func:`~skinimg.calibrate.calibrate_image` ``mode="auto"``,
    ``segment``, ``indices`` = :func:`~skinimg.indices.measure` without maps, ``maps`` =
    :func:`~skinimg.indices.compute_maps`, ``write`` = the TIFF + PNG heatmaps analyze
    writes) and of the baselines (``cv2.imdecode`` alone; ``skimage.color.rgb2lab``).
    Throughput: ``speed_images`` copies through decode -> calibrate -> segment ->
    indices with 1 and 2 worker processes (after a warm-up), images per second of wall
    time.  Without ``skinimg.segment`` the true mask replaces segmentation (``segment``
    time ~0) and ``segment_method`` says so.

    Returns
    -------
    dict with ``stages`` (seconds), ``baselines`` (seconds), ``ratios`` (stage /
    ``cv2`` decode), ``throughput`` (``{workers: images/s}``), ``peak_rss_bytes``,
    ``peak_rss_x_decoded``, ``shape``, ``megapixels``, ``segment_method``.
    """
    import multiprocessing
    import shutil
    from concurrent.futures import ProcessPoolExecutor

    p = params or BenchParams()
    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="skinimg-bench-", dir=workdir) as tmp:
        path = Path(tmp) / "speed_phantom.jpg"
        make_speed_jpeg(path, p.speed_size, seed=p.seed)
        mask_path = Path(tmp) / "speed_phantom_mask.png"
        (Path(tmp) / "out").mkdir()
        if progress:
            progress("speed: per-stage timings")
        with ProcessPoolExecutor(max_workers=1, mp_context=ctx, initializer=_worker_init) as ex:
            res = ex.submit(_speed_child, str(path), str(mask_path), method, p.speed_repeat,
                            str(Path(tmp) / "out")).result()
        copies = []
        for k in range(p.speed_images):
            c = Path(tmp) / f"copy_{k}.jpg"
            shutil.copyfile(path, c)
            copies.append((str(c), str(mask_path), method))
        thr = {}
        for nw in p.speed_workers:
            if progress:
                progress(f"speed: throughput with {nw} worker(s)")
            with ProcessPoolExecutor(max_workers=nw, mp_context=ctx, initializer=_worker_init) as ex:
                list(ex.map(_warm, range(nw)))
                t0 = time.perf_counter()
                list(ex.map(_throughput_job, copies, chunksize=1))
                thr[str(nw)] = len(copies) / (time.perf_counter() - t0)
    dec = res["baseline_cv2_decode"]
    base = {"cv2_decode": dec, "skimage_rgb2lab": res["baseline_rgb2lab"]}
    ratios = {k: v / dec for k, v in {**res["stages"], **base}.items()}
    peak = res["peak_rss_above_start_bytes"]
    h, w = res["shape"][:2]
    return {
        "status": "ok",
        "shape": res["shape"],
        "megapixels": h * w / 1e6,
        "segment_method": res["segment_method"],
        "calibration": res["calibration"],
        "skin_fraction": res["skin_fraction"],
        "stages": res["stages"],
        "baselines": base,
        "ratios": ratios,
        "throughput": thr,
        "peak_rss_bytes": peak,
        "peak_rss_x_decoded": (peak / res["decoded_bytes"]) if peak else None,
        "decoded_bytes": res["decoded_bytes"],
        "repeat": p.speed_repeat,
        "cpu_count": os.cpu_count(),
    }


# ----------------------------------------------------------------------------- run + outputs


def machine_info() -> dict:
    """Python, platform, CPU count and library versions (recorded in ``bench.json``)."""
    import skimage

    return {"python": platform.python_version(), "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "numpy": np.__version__, "opencv": cv2.__version__, "scikit_image": skimage.__version__}


def run_bench(suites: Sequence[str] = SUITES, *, params: BenchParams | None = None,
              images: str | os.PathLike | None = None, masks: str | os.PathLike | None = None,
              workdir: str | os.PathLike | None = None,
              progress: Callable[[str], None] | None = None) -> dict:
    """Run the chosen suites (in :data:`SUITES` order) and return every result.

    Returns
    -------
    dict with ``skinimg_version``, ``params`` (:class:`BenchParams`), ``machine``
    (:func:`machine_info`), ``suites`` (list run), ``elapsed_s`` (per suite) and one
    key per suite holding its result dict.
    """
    p = params or BenchParams()
    unknown = [s for s in suites if s not in SUITES]
    if unknown:
        raise SkinImgError(f"unknown suite(s) {', '.join(unknown)} (use {', '.join(SUITES)} or all)")
    res: dict = {"skinimg_version": __version__, "params": p.to_dict(), "machine": machine_info(),
                 "suites": [s for s in SUITES if s in suites], "elapsed_s": {}}
    for s in res["suites"]:
        t0 = time.perf_counter()
        if s == "accuracy":
            res[s] = run_accuracy(p, progress=progress)
        elif s == "repeatability":
            res[s] = run_repeatability(p, progress=progress)
        elif s == "segmentation":
            res[s] = run_segmentation(p, images=images, masks=masks, progress=progress)
        else:
            res[s] = run_speed(p, workdir=workdir, progress=progress)
        res["elapsed_s"][s] = time.perf_counter() - t0
    return res


def csv_rows(res: dict) -> list[dict]:
    """The results as long-format rows of :data:`CSV_COLUMNS` (one metric value per row)."""
    out = []

    def add(suite, table, item, condition, metric, value, unit="", n=None):
        out.append({"suite": suite, "table": table, "item": item, "condition": condition, "metric": metric,
                    "value": value, "unit": unit, "n": n})

    if "accuracy" in res:
        a = res["accuracy"]
        for r in a["indices"]:
            for m in ("spearman_hemoglobin", "pearson_hemoglobin", "spearman_melanin", "pearson_melanin"):
                add("accuracy", "correlation", r["index"], "", m, r[m], "", a["n_images"])
            add("accuracy", "crosstalk", r["index"], f"target={r['target']}", "crosstalk", r["crosstalk"], "ratio",
                a["n_images"])
    if "repeatability" in res:
        for r in res["repeatability"]["rows"]:
            for m, unit in (("sem", UNITS[r["index"]]), ("mdc", UNITS[r["index"]]), ("mdc_pct", "%"),
                            ("cv_pct", "%")):
                add("repeatability", r["factor"], r["index"], r["condition"], m, r[m], unit, r["n_values"])
    if "segmentation" in res:
        sg = res["segmentation"]
        if sg["status"] != "ok":
            add("segmentation", "status", "", "", "status", sg["status"])
        for r in sg["rows"]:
            for m in ("precision", "recall", "f1", "iou", "iou_min"):
                add("segmentation", r["dataset"], r["group"], r["method"], m, r[m], "", r["n_images"])
    if "speed" in res:
        sp = res["speed"]
        for k, v in sp["stages"].items():
            add("speed", "stage", k, sp["segment_method"] if k == "segment" else "", "seconds", v, "s")
            add("speed", "stage", k, "", "x_cv2_decode", sp["ratios"][k], "ratio")
        for k, v in sp["baselines"].items():
            add("speed", "baseline", k, "", "seconds", v, "s")
            add("speed", "baseline", k, "", "x_cv2_decode", sp["ratios"][k], "ratio")
        for k, v in sp["throughput"].items():
            add("speed", "throughput", "decode+calibrate+segment+indices", f"workers={k}", "images_per_s", v,
                "1/s")
        add("speed", "memory", "peak_rss", "", "bytes", sp["peak_rss_bytes"], "B")
        add("speed", "memory", "peak_rss", "", "x_decoded", sp["peak_rss_x_decoded"], "ratio")
    return out


def _f(v, fmt=".3f") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return format(v, fmt)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def format_markdown(res: dict) -> str:
    """Markdown tables of a :func:`run_bench` result (what ``skinimg bench`` prints)."""
    p = res["params"]
    m = res["machine"]
    parts = [f"# skinimg bench ({p['size']}), skinimg {res['skinimg_version']}, Python {m['python']}, "
             f"{m['cpu_count']} CPU(s)"]
    if "accuracy" in res:
        a = res["accuracy"]
        hi, lo = a["ita_range"]
        parts.append(f"## Accuracy: {a['n_images']} phantoms, {len(p['melanin_levels'])} melanin x "
                     f"{len(p['hemoglobin_levels'])} haemoglobin levels x {p['grid_seeds']} skin(s), "
                     f"{p['image_size'][0]}x{p['image_size'][1]}, reference ITA {hi:+.0f} to {lo:+.0f} deg, "
                     "true skin masks")
        rows = [[f"`{r['index']}`", r["target"], _f(r["spearman_hemoglobin"]), _f(r["pearson_hemoglobin"]),
                 _f(r["spearman_melanin"]), _f(r["pearson_melanin"]), _f(r["crosstalk"], "+.3f")]
                for r in a["indices"]]
        parts.append(_table(["index", "target", "Spearman Hb", "Pearson Hb", "Spearman mel", "Pearson mel",
                             "cross-talk"], rows))
        by = {r["index"]: r for r in a["indices"]}
        parts.append(f"Cross-talk = change over the grid's range of the other chromophore / change over the range "
                     f"of the target (0 = none). Melanin cross-talk of the erythema index: "
                     f"{_f(by['erythema_index']['crosstalk'], '+.3f')}; of the separated haemoglobin: "
                     f"{_f(by['hemoglobin']['crosstalk'], '+.3f')}.")
    if "repeatability" in res:
        r = res["repeatability"]
        parts.append(f"## Repeatability: {len(r['subjects'])} subjects x {r['n_retakes']} retakes per factor "
                     "(exposure 0.8-1.2, white balance D50/D65/D75, JPEG 70-95, pose, sensor noise); "
                     "MDC95 = 1.96 sqrt(2) SEM (Weir 2005)")
        idx = {(x["condition"], x["factor"], x["index"]): x for x in r["rows"]}
        rows = []
        for n in _indices.INDEX_NAMES:
            u, c = idx.get(("uncalibrated", "all", n)), idx.get(("calibrated", "all", n))
            if u is None:
                continue
            rows.append([f"`{n}`", _f(u["sem"], ".4g"), _f(u["mdc"], ".4g"), _f(u["mdc_pct"], ".1f"),
                         _f(u["cv_pct"], ".2f"), _f(c["mdc"], ".4g"), _f(c["mdc_pct"], ".1f"), _f(c["cv_pct"], ".2f")])
        if rows:
            parts.append("All factors at once:")
            parts.append(_table(["index", "SEM", "MDC95", "MDC95 %", "CV %", "MDC95 calibrated",
                                 "MDC95 % calibrated", "CV % calibrated"], rows))
        factors = [f for f in r["factors"] if f != "all"]
        if factors:
            for cond in ("uncalibrated", "calibrated"):
                rows = [[f"`{n}`"] + [_f(idx[cond, f, n]["mdc"], ".4g") for f in factors]
                        for n in _indices.INDEX_NAMES]
                parts.append(f"MDC95 by factor, {cond}:")
                parts.append(_table(["index"] + factors, rows))
        fails = sum(r["calibration_failures"].values())
        if fails:
            parts.append(f"Chart not found in {fails} retake(s) (left out of the calibrated condition).")
    if "segmentation" in res:
        sg = res["segmentation"]
        parts.append("## Segmentation")
        if sg["status"] != "ok":
            parts.append(f"segmentation: {sg['status']}")
        else:
            rows = [[r["dataset"], r["group"], r["method"], str(r["n_images"]), _f(r["precision"]), _f(r["recall"]),
                     _f(r["f1"]), _f(r["iou"]), _f(r["iou_min"])] for r in sg["rows"]]
            parts.append(_table(["dataset", "group", "method", "images", "precision", "recall", "F1", "IoU",
                                 "min IoU"], rows))
            if sg["errors"]:
                parts.append(f"{len(sg['errors'])} real image(s) skipped (no usable mask).")
    if "speed" in res:
        sp = res["speed"]
        h, w = sp["shape"][:2]
        parts.append(f"## Speed: {h}x{w} JPEG ({sp['megapixels']:.1f} MP), one thread per process, median of "
                     f"{sp['repeat']}; segmentation: {sp['segment_method']}; calibration: {sp['calibration']}")
        rows = [[k, _f(v), _f(sp["ratios"][k], ".2f")] for k, v in sp["stages"].items()]
        rows += [[f"baseline: {k}", _f(v), _f(sp["ratios"][k], ".2f")] for k, v in sp["baselines"].items()]
        parts.append(_table(["stage", "seconds", "x cv2 decode"], rows))
        thr = ", ".join(f"{k} worker(s): {v:.2f} images/s" for k, v in sp["throughput"].items())
        peak = sp["peak_rss_bytes"]
        parts.append(f"Throughput (decode + calibrate + segment + indices): {thr}. Peak memory of one image: "
                     + (f"{peak / 1e6:.0f} MB ({sp['peak_rss_x_decoded']:.1f} x the decoded image)." if peak
                        else "n/a (needs Linux /proc)."))
    return "\n\n".join(parts) + "\n"


def write_plots(res: dict, out: str | os.PathLike) -> tuple[list[Path], str | None]:
    """``accuracy_scatter.png`` (index vs true chromophore, coloured by tone class) and
    ``repeatability.png`` (MDC95 per index and factor, uncalibrated vs calibrated).

    Returns ``(paths written, note)``; the note says why plots were skipped (no
    matplotlib: ``pip install 'skinimg[report]'``).
    """
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError:
        return [], "plots skipped: matplotlib is not installed (pip install 'skinimg[report]')"
    import io as _io

    from .io import write_bytes

    out = Path(out)
    written = []
    tones = tuple(_indices.ITA_CATEGORIES)  # lightest first
    colours = dict(zip(tones, ("#f1d3b3", "#e0b48c", "#c98e62", "#a66a3f", "#6e4426", "#3b2313")))

    def save(fig, name):
        buf = _io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        plt.close(fig)
        written.append(write_bytes(out / name, buf.getvalue()))

    if "accuracy" in res:
        imgs = res["accuracy"]["images"]
        names = _indices.INDEX_NAMES
        fig, axes = plt.subplots(2, 4, figsize=(15, 7.5))
        for ax, name in zip(axes.ravel(), names):
            t = TARGETS[name]
            for tone in tones:
                sel = [r for r in imgs if r["tone"] == tone]
                if sel:
                    ax.scatter([r[f"true_{t}"] for r in sel], [r[name] for r in sel], s=14, color=colours[tone],
                               edgecolors="k", linewidths=0.3, label=tone.replace("_", " "))
            ax.set_xlabel(f"true {t} (volume fraction)")
            ax.set_title(name, fontsize=10)
        axes[0, 0].legend(fontsize=7, title="tone (reference ITA)", title_fontsize=7)
        fig.suptitle("Index vs phantom truth, per tone class")
        fig.tight_layout()
        save(fig, "accuracy_scatter.png")
    if "repeatability" in res:
        rep = res["repeatability"]
        idx = {(r["condition"], r["factor"], r["index"]): r["mdc"] for r in rep["rows"]}
        factors = list(rep["factors"])
        x = np.arange(len(factors))
        fig, axes = plt.subplots(2, 4, figsize=(15, 7))
        for ax, name in zip(axes.ravel(), _indices.INDEX_NAMES):
            for k, cond in enumerate(("uncalibrated", "calibrated")):
                v = [idx.get((cond, f, name), np.nan) for f in factors]
                ax.bar(x + (k - 0.5) * 0.38, v, width=0.38, label=cond)
            ax.set_xticks(x, [f.replace("white_balance", "WB") for f in factors], rotation=30, ha="right",
                          fontsize=8)
            ax.set_title(f"{name} ({UNITS[name]})", fontsize=10)
        axes[0, 0].set_ylabel("MDC95")
        axes[1, 0].set_ylabel("MDC95")
        axes[0, 0].legend(fontsize=8)
        fig.suptitle("Retake repeatability: MDC95 = 1.96 sqrt(2) SEM per factor, without and with chart calibration")
        fig.tight_layout()
        save(fig, "repeatability.png")
    return written, None


def write_outputs(res: dict, out: str | os.PathLike, *, plots: bool = True) -> dict:
    """Write ``bench.json`` (everything), ``bench.csv`` (:func:`csv_rows`) and the plots under ``out``.

    Returns ``{"outputs": [paths], "note": str or None}``.
    """
    from .io import write_csv, write_json

    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SkinImgError(f"cannot create output folder ({exc.strerror or exc})", os.fspath(out)) from None
    paths = [write_json(out / "bench.json", res), write_csv(out / "bench.csv", csv_rows(res), CSV_COLUMNS)]
    note = None
    if plots:
        more, note = write_plots(res, out)
        paths += more
    return {"outputs": paths, "note": note}

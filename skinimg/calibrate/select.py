"""Correction models of a chart fit, their leave-one-patch-out errors, and the choice between them.

Models (parameters in brackets; all least squares in linear RGB, with the per-patch weights of
:attr:`~skinimg.calibrate.CalibrationParams.skin_weight`):

==================== ========================================================================= ====
``gain``             one achromatic gain ``k m``                                                 1
``linear3x3``        ``M m``                                                                     9
``finlayson2015``    ``M rp2(m)``, root-polynomial degree 2 (Finlayson et al. 2015)              18
``cheung2004``       ``M poly(m)``, Cheung et al. 2004 polynomial (only when asked for)         3n
``tone_grey3x3``     ``M T(m)``, ``T`` the neutral-patch tone curve (:mod:`.tone`), rows of M
                     summing to 1 so greys stay grey after the curve                           9+6
``tone_linear3x3``   ``M T(m)``                                                                9+9
``tone_finlayson2015`` ``M rp2(T(m))``                                                         9+18
==================== ========================================================================= ====

**Leave-one-patch-out (LOO)**: each used patch is predicted by the model fitted on the other used
patches (the tone curve refitted too when the patch is a neutral one), and its CIEDE2000 (Sharma et al.
2005, doi:10.1002/col.20070) to the reference is recorded.  In-sample errors flatter a model with many
parameters (issue 24 reports Cheung's 10-term polynomial reaching a low in-sample error and up to 12 LOO on
seven real phone photos not available to the project); LOO does not.

**Choice** (``method="auto"``): the first model of :data:`PREFERENCE` whose LOO mean is not worse than
the lowest LOO mean by more than one standard error of the paired per-patch differences, nor by more
than 0.1 CIEDE2000 (the
one-standard-error rule, Hastie, Tibshirani and Friedman 2009, The Elements of Statistical Learning,
2nd ed., section 7.10, doi:10.1007/978-0-387-84858-7).  The root-polynomial comes first: it is
exposure invariant and, on the spectral phantoms under tungsten and fluorescent light, gave the
lowest skin error (2.6 vs 3.1-3.4 CIEDE2000 under A) where every model's chart LOO was within noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..color import delta_e_2000
from ..errors import SkinImgError
from .charts import CalibrationParams, ChartDetection, Correction, _lab, _reference_for, _stats, reference_chart
from .fit import _exposure_gain, expand, expansion_terms
from .tone import apply_tone_curve, fit_tone_curve

__all__ = ["MODELS", "AUTO_MODELS", "PREFERENCE", "FittedModel", "fit_model", "evaluate_model", "ModelChoice",
           "choose_model", "chart_correction", "NEUTRAL_PATCHES", "SKIN_PATCHES"]

MODELS = ("gain", "linear3x3", "finlayson2015", "cheung2004", "tone_grey3x3", "tone_linear3x3", "tone_finlayson2015")
#: The models ``method="auto"`` compares.
AUTO_MODELS = ("gain", "linear3x3", "finlayson2015", "tone_grey3x3", "tone_linear3x3", "tone_finlayson2015")
#: Order of preference among models whose LOO errors are within one standard error of the best.
PREFERENCE = ("finlayson2015", "linear3x3", "tone_grey3x3", "tone_linear3x3", "tone_finlayson2015", "gain", "cheung2004")
#: 0-based chart indices of the neutral (19-24) and skin (1 dark skin, 2 light skin) patches.
NEUTRAL_PATCHES = np.arange(18, 24)
SKIN_PATCHES = np.array([0, 1])
#: The greys between white and black (20-23) that the improvement check uses: leaving out the white or the
#: black patch makes any tone curve extrapolate beyond the range it was fitted on, which says nothing about
#: colours inside that range, such as skin.
_INNER_GREYS = np.arange(19, 23)
_C3 = ["R", "G", "B"]
#: A model replaces a preferred one only when its LOO mean is lower by more than this too (CIEDE2000): when
#: every error is tiny, a negligible difference can exceed its standard error.
_MIN_GAIN = 0.1


@dataclass
class FittedModel:
    """A fitted correction: ``linear_out = matrix @ expansion(T(linear_in))``.

    Attributes
    ----------
    name : str
        One of :data:`MODELS`.
    matrix : ndarray (3, len(terms)) float64
    terms : list of str
        Expansion terms (:func:`~skinimg.calibrate.expansion_terms`).
    tone : ndarray (3, 3) float64 or None
        Per-channel tone curve rows ``(a, g, o)`` (:func:`~skinimg.calibrate.tone.fit_tone_curve`).
    """

    name: str
    matrix: np.ndarray
    terms: list
    tone: np.ndarray | None = None

    def predict(self, linear: np.ndarray) -> np.ndarray:
        """Corrected linear RGB (N, 3) float64 of measured linear RGB (N, 3), unclipped."""
        x = np.asarray(linear, dtype=np.float64)
        if self.tone is not None:
            x = apply_tone_curve(self.tone, x)
        if list(self.terms) != _C3:
            x = expand(np.maximum(x, 0.0), self.terms)
        return x @ self.matrix.T


def _lstsq(x: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    if w is not None:
        x, y = x * w[:, None], y * w[:, None]
    sol, *_ = np.linalg.lstsq(x, y, rcond=None)
    return sol.T


def n_terms(name: str, *, degree: int = 2, terms: int = 10) -> int:
    """Expansion terms of a model's matrix (what the number of patches must exceed twice)."""
    if name == "gain":
        return 1
    base = name[5:] if name.startswith("tone_") else name
    if base == "grey3x3":
        return 3
    return len(expansion_terms(base, degree=degree, terms=terms))


def fit_model(name: str, measured: np.ndarray, reference: np.ndarray, *, neutral: np.ndarray,
              weights: np.ndarray | None = None, degree: int = 2, terms: int = 10) -> FittedModel | None:
    """Fit one model of :data:`MODELS`.

    Parameters
    ----------
    measured, reference : ndarray, float, shape (N, 3)
        Measured and reference linear RGB of the used patches.
    neutral : ndarray, bool, shape (N,)
        Which rows are neutral patches (the tone curve is fitted on them; at least 4 needed).
    weights : ndarray (N,), optional
        Per-patch least-squares weights.
    degree, terms : int
        Root-polynomial degree / Cheung terms (``finlayson2015``, ``cheung2004``).

    Returns
    -------
    FittedModel or None
        None when the model cannot be fitted (too few patches or neutral patches, no increasing
        tone curve).
    """
    m = np.asarray(measured, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    w = None if weights is None else np.asarray(weights, dtype=np.float64)
    if name == "gain":
        ww = np.ones(len(m)) if w is None else w**2
        k = float(((m * r).sum(axis=1) * ww).sum() / max(float(((m * m).sum(axis=1) * ww).sum()), 1e-12))
        return FittedModel(name, k * np.eye(3), list(_C3))
    if len(m) < 2 * n_terms(name, degree=degree, terms=terms):
        return None
    tone, x = None, m
    base = name
    if name.startswith("tone_"):
        base = name[5:]
        if int(np.sum(neutral)) < 4:
            return None
        tone = fit_tone_curve(m[neutral], r[neutral])
        if tone is None:
            return None
        x = apply_tone_curve(tone, m)
    if base == "grey3x3":
        # rows sum to one: r_c - x_B = M_cR (x_R - x_B) + M_cG (x_G - x_B)
        z = np.stack([x[:, 0] - x[:, 2], x[:, 1] - x[:, 2]], axis=1)
        mat = np.zeros((3, 3))
        for c in range(3):
            s = _lstsq(z, (r[:, c] - x[:, 2])[:, None], w)[0]
            mat[c] = (s[0], s[1], 1.0 - s[0] - s[1])
        return FittedModel(name, mat, list(_C3), tone)
    names = expansion_terms(base, degree=degree, terms=terms)
    xe = x if names == _C3 else expand(np.maximum(x, 0.0), names)
    return FittedModel(name, _lstsq(xe, r, w), names, tone)


def _delta_e(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    return delta_e_2000(_lab(np.clip(pred, 0.0, 1.0)), _lab(ref)).astype(np.float64)


def evaluate_model(name: str, measured: np.ndarray, reference: np.ndarray, *, neutral: np.ndarray,
                   weights: np.ndarray | None = None, degree: int = 2, terms: int = 10):
    """Fit a model and its leave-one-patch-out refits.

    Returns
    -------
    (FittedModel, in_sample (N,), loo (N,)) or None
        CIEDE2000 per patch of the predictions (clipped to [0, 1] like an image) in-sample and when the
        patch was left out of the fit; None when the model (or one of its refits) cannot be fitted.
    """
    kw = dict(degree=degree, terms=terms)
    full = fit_model(name, measured, reference, neutral=neutral, weights=weights, **kw)
    if full is None:
        return None
    n = len(measured)
    loo = np.empty(n)
    for i in range(n):
        keep = np.arange(n) != i
        mod = fit_model(name, measured[keep], reference[keep], neutral=neutral[keep],
                        weights=None if weights is None else weights[keep], **kw)
        if mod is None:
            return None
        loo[i] = _delta_e(mod.predict(measured[i : i + 1]), reference[i : i + 1])[0]
    return full, _delta_e(full.predict(measured), reference), loo


@dataclass
class ModelChoice:
    """What :func:`choose_model` chose and why (per-patch arrays over the used patches)."""

    name: str
    model: FittedModel | None
    before: np.ndarray
    in_sample: np.ndarray
    loo: np.ndarray
    loo_means: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)


def _preferred(results: dict) -> str:
    best = min(results, key=lambda k: results[k][2].mean())
    for k in PREFERENCE:
        if k not in results:
            continue
        if k == best:
            return k
        d = results[k][2] - results[best][2]
        if d.mean() <= max(d.std(ddof=1) / math.sqrt(len(d)), _MIN_GAIN):
            return k
    return best


def choose_model(measured: np.ndarray, reference: np.ndarray, patch_index: np.ndarray, *, methods=AUTO_MODELS,
                 weights: np.ndarray | None = None, degree: int = 2, terms: int = 10) -> ModelChoice:
    """Fit ``methods``, choose one by leave-one-patch-out error, and apply it only if it helps.

    Parameters
    ----------
    measured, reference : ndarray, float, shape (N, 3)
        Linear RGB of the used (unclipped) patches.
    patch_index : ndarray, int, shape (N,)
        Their 0-based chart indices (neutral patches 18-23, skin patches 0-1).
    methods : sequence of str
        Candidate models (:data:`AUTO_MODELS`, or one model the user asked for).
    weights : ndarray (N,), optional
        Least-squares weights (the fit only; every reported figure is a plain mean).

    Returns
    -------
    ModelChoice
        ``name`` ``"none"`` (no correction) when no candidate makes both the skin patches and the
        neutral patches better under LOO than no correction; then ``notes`` says so.

    Notes
    -----
    The chosen model is the first of :data:`PREFERENCE` within one standard error of the lowest LOO
    mean (paired differences).  It is applied only if its LOO mean over the skin patches (1, 2) and over
    the greys between white and black (20-23) are both below their errors without correction; otherwise
    the next model by LOO mean that passes is used, and if none does, the photo is left as it is.
    """
    m = np.asarray(measured, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    idx = np.asarray(patch_index)
    neutral, skin, greys = np.isin(idx, NEUTRAL_PATCHES), np.isin(idx, SKIN_PATCHES), np.isin(idx, _INNER_GREYS)
    before = _delta_e(m, r)
    results = {}
    for name in methods:
        ev = evaluate_model(name, m, r, neutral=neutral, weights=weights, degree=degree, terms=terms)
        if ev is not None:
            results[name] = ev
    loo_means = {k: float(v[2].mean()) for k, v in results.items()}
    if not results:
        return ModelChoice("none", None, before, before, before, loo_means,
                           [f"{len(m)} usable patches are too few for {', '.join(methods)}: photo left as it is"])
    first = _preferred(results)
    order = [first] + sorted((k for k in results if k != first), key=loo_means.get)

    def helps(k):
        loo = results[k][2]
        return ((not skin.any() or loo[skin].mean() < before[skin].mean())
                and (not greys.any() or loo[greys].mean() < before[greys].mean()))

    notes = []
    for k in order:
        if helps(k):
            if k != first:
                notes.append(f"{first} would make the skin or grey patches worse under leave-one-out; used {k}")
            model, ins, loo = results[k]
            return ModelChoice(k, model, before, ins, loo, loo_means, notes)
    notes.append("no correction makes both the skin and the grey patches better under leave-one-out "
                 f"({first}: skin {results[first][2][skin].mean() if skin.any() else float('nan'):.2f} vs "
                 f"{before[skin].mean() if skin.any() else float('nan'):.2f} uncorrected): photo left as it is")
    return ModelChoice("none", None, before, before, before, loo_means, notes)


# ----------------------------------------------------------------------------- a found chart -> Correction


def _per_patch(values: np.ndarray, use: np.ndarray) -> list:
    out: list = [None] * len(use)
    for k, i in enumerate(np.flatnonzero(use)):
        out[i] = float(values[k])
    return out


def _mean(v: np.ndarray, mask: np.ndarray):
    return float(v[mask].mean()) if mask.any() else None


def _grey_error(model: FittedModel | None, m: np.ndarray, r: np.ndarray, neutral: np.ndarray) -> float:
    """Mean CIELAB chroma distance sqrt(da*^2 + db*^2) of the corrected neutral patches to their references."""
    if not neutral.any():
        return 0.0
    pred = m[neutral] if model is None else model.predict(m[neutral])
    d = _lab(np.clip(pred, 0.0, 1.0))[:, 1:] - _lab(r[neutral])[:, 1:]
    return float(np.hypot(d[:, 0], d[:, 1]).mean())


def _warning(name, after, loo, grey, params) -> str | None:
    tail = ("check the --reference values" if params.reference_source
            else "measured values can be given with --reference")
    if name != "none" and loo > params.warn_loo:
        return (f"chart does not match the reference (mean ΔE00 {after:.1f} after fit, {loo:.1f} leave-one-out): "
                f"printed, faded or another chart? {tail}")
    if name == "none" and after > params.warn_loo:
        return (f"chart does not match the reference (mean ΔE00 {after:.1f}, and no correction helps): "
                f"printed, faded or another chart? {tail}")
    if grey > params.warn_grey:
        return (f"the grey patches stay off-grey after the fit (mean chroma error {grey:.1f}): uneven light, glare "
                f"or a printed chart? {tail}")
    return None


def chart_correction(detection: ChartDetection, *, params: CalibrationParams | None = None) -> Correction:
    """Fit the correction of a found chart (clipped patches excluded), choose the model, check it.

    Parameters
    ----------
    detection : ChartDetection
        With ``found=True``.
    params : CalibrationParams, optional
        ``method`` (``"auto"``: choice by leave-one-patch-out error), ``degree``, ``terms``,
        ``skin_weight`` (fit weights only), ``keep_below``, ``warn_loo``, ``warn_grey``.

    Returns
    -------
    Correction
        ``kind="chart"``; ``method`` the model applied (``"none"`` when the chart already matches or no
        model makes both the skin patches and the greys 20-23 better under leave-one-out; ``"gain"`` when one
        exposure gain suffices); plain-mean CIEDE2000 before, after (in-sample) and leave-one-out, the
        skin and neutral patches separately; per-patch lists with 24 entries (``None`` for excluded
        patches); ``warning`` when the chart does not match its reference.

    Raises
    ------
    SkinImgError
        Fewer than 6 usable (unclipped) patches.
    """
    params = params or CalibrationParams()
    if not detection.found:
        raise ValueError("chart_correction needs a found chart")
    names = reference_chart(params.chart)[0]
    ref = _reference_for(params)
    use = ~np.asarray(detection.clipped, dtype=bool)
    notes = []
    if (~use).any():
        notes.append("excluded clipped patches: " + ", ".join(f"{i + 1} {names[i]}" for i in np.flatnonzero(~use)))
    if use.sum() < 6:
        raise SkinImgError(f"chart found but only {int(use.sum())} patches are not clipped (need 6)")
    idx = np.flatnonzero(use)
    m, r = np.asarray(detection.patch_rgb, dtype=np.float64)[use], ref[use]
    neutral, skin = np.isin(idx, NEUTRAL_PATCHES), np.isin(idx, SKIN_PATCHES)
    w = np.ones(24)
    w[SKIN_PATCHES] = params.skin_weight
    w = None if params.skin_weight == 1.0 else w[use]
    before = _delta_e(m, r)
    gain, de_gain = _exposure_gain(m, r)
    loo_means: dict = {}
    if params.keep_below > 0 and before.mean() <= params.keep_below:
        name, model, ins, loo = "none", None, before, before
        notes.append(f"chart already within {params.keep_below:g} mean CIEDE2000 of its reference "
                     f"({before.mean():.2f}): photo left as it is")
    elif params.keep_below > 0 and de_gain.mean() <= params.keep_below:
        # only the exposure differs: one gain, the same for R, G and B, keeps every chromaticity (and the
        # skin's hue, which a full fit would shift), and makes the photo's brightness absolute
        name, model, ins = "gain", FittedModel("gain", gain * np.eye(3), list(_C3)), np.asarray(de_gain, float)
        loo = evaluate_model("gain", m, r, neutral=neutral)[2]
        notes.append(f"chart within {params.keep_below:g} mean CIEDE2000 of its reference after one exposure gain "
                     f"x{gain:.4f} ({before.mean():.2f} -> {de_gain.mean():.2f}): only that gain applied")
    else:
        methods = AUTO_MODELS if params.method == "auto" else (params.method,)
        kw = dict(weights=w, degree=params.degree, terms=params.terms)
        if params.method != "auto" and fit_model(params.method, m, r, neutral=neutral, **kw) is None:
            notes.append(f"{params.method} cannot be fitted on {len(m)} usable patches ({int(neutral.sum())} neutral): "
                         "used linear3x3")
            methods = ("linear3x3",)
        choice = choose_model(m, r, idx, methods=methods, **kw)
        name, model, ins, loo, loo_means = choice.name, choice.model, choice.in_sample, choice.loo, choice.loo_means
        notes += choice.notes
    grey = _grey_error(model, m, r, neutral)
    warning = _warning(name, float(ins.mean()), float(loo.mean()), grey, params)
    ident = model is None
    corr = Correction(
        kind="chart", method=name,
        matrix=(np.eye(3) if ident else model.matrix).tolist(), terms=list(_C3) if ident else list(model.terms),
        tone=None if ident or model.tone is None else model.tone.tolist(),
        delta_e_before=_stats(before), delta_e_after=_stats(ins), delta_e_loo=_stats(loo),
        patch_delta_e_before=_per_patch(before, use), patch_delta_e_after=_per_patch(ins, use),
        patch_delta_e_loo=_per_patch(loo, use),
        skin_delta_e={"before": _mean(before, skin), "after": _mean(ins, skin), "loo": _mean(loo, skin)},
        neutral_delta_e={"before": _mean(before, neutral), "after": _mean(ins, neutral), "loo": _mean(loo, neutral)},
        models_loo={k: round(v, 4) for k, v in loo_means.items()}, warning=warning,
        patches_used=[int(i) + 1 for i in idx],
        corners=np.asarray(detection.corners, dtype=np.float64).round(3).tolist(),
    )
    if w is not None and name not in ("none", "gain"):
        notes.append(f"fit weights: skin patches 1-2 x{params.skin_weight:g} in the least squares; every reported "
                     "CIEDE2000 is a plain mean over the used patches")
    corr.notes = notes + [f"chart found ({detection.n_detected} of 24 patches seen as quadrilaterals; orientation fit "
                          f"dE00 {detection.score:.2f})"]
    corr.params = params.to_dict()
    return corr

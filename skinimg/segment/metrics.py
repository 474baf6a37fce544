"""Mask agreement: the one mask-metric function (:func:`evaluate_masks`) and the tone summaries built on it.

Empty masks, decided once for every caller (``eval-segment``, the stage agreement of ``--check``, the
benchmarks): a ratio whose denominator is 0 is 1.0 when both masks are empty (perfect agreement) and
0.0 otherwise (an empty prediction of real skin has precision, recall, F1 and IoU 0; a prediction on a
photo without skin has precision 0).  Never NaN, so means over photos count a failed mask as 0.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..color import ita_category, ita_deg, rgb_to_lab
from ..errors import SkinImgError

__all__ = ["evaluate_masks", "metrics_from_counts", "true_skin_tone", "TONE_GROUPS", "tone_group",
           "pooled_tone_metrics"]


def evaluate_masks(pred: np.ndarray, truth: np.ndarray) -> dict:
    """Pixel agreement of a predicted and a true skin mask.

    ``precision = TP / (TP + FP)``, ``recall = TP / (TP + FN)``,
    ``f1 = 2 TP / (2 TP + FP + FN)`` (the Dice coefficient, Dice 1945,
    DOI 10.2307/1932409) and ``iou = TP / (TP + FP + FN)`` (Jaccard 1912).
    A ratio whose denominator is 0 is 1.0 when both masks are empty (perfect
    agreement) and 0.0 otherwise (see the module documentation); never NaN.

    Parameters
    ----------
    pred, truth : ndarray, bool (or 0/non-zero), same shape

    Returns
    -------
    dict with ``precision``, ``recall``, ``f1``, ``iou`` (floats) and the counts
    ``tp``, ``fp``, ``fn``, ``tn`` (ints).
    """
    pred = np.asarray(pred).astype(bool, copy=False)
    truth = np.asarray(truth).astype(bool, copy=False)
    if pred.shape != truth.shape:
        raise SkinImgError(f"masks differ in size: {pred.shape} vs {truth.shape}")
    tp = int(np.count_nonzero(pred & truth))
    fp = int(np.count_nonzero(pred)) - tp
    fn = int(np.count_nonzero(truth)) - tp
    tn = pred.size - tp - fp - fn
    return metrics_from_counts(tp, fp, fn, tn)


def metrics_from_counts(tp: int, fp: int, fn: int, tn: int) -> dict:
    """:func:`evaluate_masks` from pixel counts (true / false positives, false / true negatives), e.g. pooled
    over several photos; the same empty-mask rule."""

    def ratio(a, b):
        return a / b if b else (1.0 if tp + fp + fn == 0 else 0.0)

    return {"precision": ratio(tp, tp + fp), "recall": ratio(tp, tp + fn), "f1": ratio(2 * tp, 2 * tp + fp + fn),
            "iou": ratio(tp, tp + fp + fn), "tp": tp, "fp": fp, "fn": fn, "tn": tn}


def true_skin_tone(rgb: np.ndarray, truth: np.ndarray) -> tuple[float, str]:
    """Skin tone of a labelled photo: the mean ITA of its true skin pixels and the ITA class of that mean.

    ``rgb`` uint8 or uint16 (H, W, 3) sRGB as photographed (no calibration); ``truth`` bool (H, W).  ITA
    ``atan2(L* - 50, b*)`` in degrees (Chardon, Cretois and Hourseau 1991, DOI 10.1111/j.1467-2494.1991.tb00561.x)
    from CIELAB D65, classes of Del Bino and Bernerd 2013 (DOI 10.1111/bjd.12529), as the ``ita_deg`` and
    ``ita_category`` columns of ``skinimg analyze``.  ``(nan, "unknown")`` when the photo has no true skin.
    """
    px = np.asarray(rgb)[np.asarray(truth, dtype=bool)]
    if not px.size:
        return float("nan"), "unknown"
    lab = rgb_to_lab(px)
    ita = float(np.mean(ita_deg(lab[:, 0], lab[:, 2]), dtype=np.float64))
    return ita, ita_category(ita)


#: Tone groups of the phantom test metrics (melanin volume fraction ranges).
TONE_GROUPS = (("very light", 0.0, 0.01), ("light", 0.01, 0.03), ("intermediate", 0.03, 0.07),
               ("tan", 0.07, 0.15), ("brown", 0.15, 0.3), ("dark", 0.3, 1.0))


def tone_group(melanin: float) -> str:
    """The :data:`TONE_GROUPS` name of a melanin volume fraction."""
    return next(g for g, lo, hi in TONE_GROUPS if lo <= melanin < hi)


def pooled_tone_metrics(records: Sequence[tuple[str, int, int, int, int]], *, bootstrap: int = 0,
                        seed: int = 0) -> dict:
    """Per-group mask metrics from per-image counts, pixels pooled within each group.

    Parameters
    ----------
    records : sequence of ``(group, tp, fp, fn, tn)``
        One per image (counts of :func:`evaluate_masks`); groups are reported in :data:`TONE_GROUPS`
        order, then any other names in order of appearance, then ``all``.
    bootstrap : int
        With ``B > 0``, ``f1_ci95`` = the 2.5 and 97.5 percentiles of the pooled F1 over ``B`` resamples of
        the group's images with replacement (percentile bootstrap, Efron and Tibshirani 1993, *An Introduction
        to the Bootstrap*, DOI 10.1201/9780429246593): how far the figure could move with another draw of
        as many photos.  ``all`` resamples within each group (stratified).  ``numpy.random.default_rng(seed)``.

    Returns
    -------
    dict
        ``{group: {n_images, precision, recall, f1, min_image_f1[, f1_ci95]}}``.
    """
    order = [g for g, _, _ in TONE_GROUPS]
    order += [g for g in dict.fromkeys(r[0] for r in records) if g not in order]
    by = {g: np.array([r[1:5] for r in records if r[0] == g], dtype=np.int64).reshape(-1, 4) for g in order}
    by = {g: c for g, c in by.items() if len(c)}
    rng = np.random.default_rng(seed)

    def f1(c):  # c: (..., 4) summed counts
        den = 2 * c[..., 0] + c[..., 1] + c[..., 2]
        return np.where(den > 0, 2 * c[..., 0] / np.maximum(den, 1), 1.0)

    tab: dict = {}
    boot_all = None
    for g, c in by.items():
        mm = metrics_from_counts(*(int(v) for v in c.sum(axis=0)))
        tab[g] = {"n_images": len(c), "precision": mm["precision"], "recall": mm["recall"], "f1": mm["f1"],
                  "min_image_f1": float(f1(c).min())}
        if bootstrap > 0:
            sums = c[rng.integers(0, len(c), size=(bootstrap, len(c)))].sum(axis=1)  # (B, 4)
            lo, hi = np.percentile(f1(sums), [2.5, 97.5])
            tab[g]["f1_ci95"] = [float(lo), float(hi)]
            boot_all = sums if boot_all is None else boot_all + sums
    if by:
        c = np.concatenate(list(by.values()))
        mm = metrics_from_counts(*(int(v) for v in c.sum(axis=0)))
        tab["all"] = {"n_images": len(c), "precision": mm["precision"], "recall": mm["recall"], "f1": mm["f1"],
                      "min_image_f1": float(f1(c).min())}
        if boot_all is not None:
            lo, hi = np.percentile(f1(boot_all), [2.5, 97.5])
            tab["all"]["f1_ci95"] = [float(lo), float(hi)]
    else:
        tab["all"] = {"n_images": 0, "precision": 1.0, "recall": 1.0, "f1": 1.0, "min_image_f1": float("nan")}
    return tab

"""The model range of a comparison: the relative change of ``hemoglobin`` and ``melanin`` read by every fit member
of the ensemble of optical skin models (:mod:`skinimg.indices.ensemble`), for aligned pairs (the same joint pixels
of both photos) and for pairs compared without pixel alignment (each photo's own skin).

A chromophore change is called only when it holds under every member (:func:`skinimg.session.stats._add_verdicts`);
see ``docs/comparison.md`` (the model range) for why and what was measured.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from ..indices import CONDITIONING_MIN, IndexParams, member_maps, shared_member_branches

__all__ = ["MEMBER_LEVEL_MIN", "MEMBER_SKIN_MIN", "member_reads", "add_model_range", "model_span"]

#: A member's reading enters the model range only when its before-level is at least this fraction of the central's.
MEMBER_LEVEL_MIN = 0.25
#: ... and only when it is conditioned on at least this share of the measured skin (per pixel, both photos).
MEMBER_SKIN_MIN = 0.5
_MAPS = ("hemoglobin", "melanin", "conditioning_map")


def member_reads(before: np.ndarray, after: np.ndarray, mask_b: np.ndarray, mask_a: np.ndarray, params: IndexParams,
                 warp: Callable[[np.ndarray], np.ndarray] | None = None) -> dict:
    """``hemoglobin``, ``melanin`` and ``conditioning_map`` of both photos read by every fit member
    (:func:`skinimg.indices.member_maps`, one twin branch per member shared by both photos).

    Parameters
    ----------
    before, after : ndarray, (H, W, 3) / (H', W', 3), encoded sRGB uint8, uint16 or float in [0, 1], R, G, B
    mask_b, mask_a : ndarray of bool, each photo's skin
    params : IndexParams
    warp : callable, optional
        Maps a float32 (H', W') map of AFTER into BEFORE's frame (aligned pairs); None keeps AFTER's own frame.

    Returns
    -------
    dict: ``before`` / ``after`` (member -> maps), ``branches`` (member -> branch), ``conditioning`` (member ->
    the worse of the two photos' median conditioning).
    """
    branches = shared_member_branches([(before, mask_b), (after, mask_a)], params=params)
    mb = member_maps(before, mask_b, params=params, branches=branches)
    ma = member_maps(after, mask_a, params=params, branches=branches)
    cond = {k: min(mb[k]["conditioning"], ma[k]["conditioning"]) for k in mb}
    if warp is not None:
        ma = {k: {n: warp(ma[k][n]) for n in _MAPS} for k in ma}
    return {"before": mb, "after": ma, "branches": branches, "conditioning": cond}


def _readable(cond: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Pixels a member reads: finite, with its conditioning at least :data:`CONDITIONING_MIN` (bool, like
    ``values``)."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(values) & (cond >= CONDITIONING_MIN)


def _conditioning(reads: dict, k: str, sel_b: np.ndarray, sel_a: np.ndarray) -> float:
    """Member ``k``'s conditioning on the measured skin: the smaller of the two photos' medians there."""
    vals = []
    for cond in (reads["before"][k]["conditioning_map"][sel_b], reads["after"][k]["conditioning_map"][sel_a]):
        cond = cond[np.isfinite(cond)]
        vals.append(float(np.median(cond)) if cond.size else float("nan"))
    return min(vals)


def add_model_range(reads: dict, metrics: dict, sel_b: np.ndarray, sel_a: np.ndarray | None = None) -> None:
    """Each member's relative change of ``hemoglobin`` and ``melanin``: ``delta_pct_by_model`` and
    ``delta_pct_model_range`` [min, max] added to ``metrics`` (in place).

    ``sel_b`` (bool, BEFORE's frame) selects the measured pixels; ``sel_a`` None means the pair is aligned
    (``reads["after"]`` in BEFORE's frame, the same pixels, only those finite in both photos), else AFTER's own
    measured pixels (unaligned: the means of each photo's own skin).  A member takes part only where it can read
    that skin: conditioned there (median at least :data:`skinimg.indices.CONDITIONING_MIN`, not next to its fold)
    and reading at least :data:`MEMBER_LEVEL_MIN` of the central level.
    """
    paired = sel_a is None
    sel_a = sel_b if paired else sel_a
    cond = {k: _conditioning(reads, k, sel_b, sel_a) for k in reads["before"]}
    for name in ("hemoglobin", "melanin"):
        by = {}
        central = abs(metrics[name]["before"])
        for k, mb in reads["before"].items():
            if not cond[k] >= CONDITIONING_MIN:  # next to its fold on this skin: cannot resolve a change here
                by[k] = None
                continue
            b, a = mb[name][sel_b], reads["after"][k][name][sel_a]
            # and only the pixels it is conditioned at: past its fold a member's root jumps (on the red patch of a
            # very light phantom km3_r12 read melanin 0.97 and 2-4 times the blood on 13 % of the skin)
            ok_b = _readable(reads["before"][k]["conditioning_map"][sel_b], b)
            ok_a = _readable(reads["after"][k]["conditioning_map"][sel_a], a)
            if paired:
                ok = ok_b & ok_a
                share = (np.count_nonzero(ok) / ok.size,) if ok.size else (0.0,)
                b, a = b[ok], a[ok]
            else:
                share = (np.count_nonzero(ok_b) / max(ok_b.size, 1), np.count_nonzero(ok_a) / max(ok_a.size, 1))
                b, a = b[ok_b], a[ok_a]
            if min(share) < MEMBER_SKIN_MIN:  # too little of this skin it can read: its mean is not this skin's
                by[k] = None
                continue
            mean_b = float(b.mean(dtype=np.float64)) if b.size and a.size else float("nan")
            mean_a = float(a.mean(dtype=np.float64)) if b.size and a.size else float("nan")
            # a member that reads this skin at under a quarter of the central level puts its zero elsewhere: its
            # relative change is not meaningful (it would read a small absolute change as hundreds of percent)
            usable = math.isfinite(mean_b) and abs(mean_b) > max(1e-12, MEMBER_LEVEL_MIN * central)
            by[k] = 100.0 * (mean_a - mean_b) / abs(mean_b) if usable else None
        metrics[name]["delta_pct_model_range"] = model_span([v for v in by.values() if v is not None])
        metrics[name]["delta_pct_by_model"] = by


def model_span(values) -> list[float] | None:
    """``[min, max]`` of the members' relative changes that are readings (None entries: members that cannot
    read this pair); None without any."""
    vals = [float(v) for v in values if v is not None and math.isfinite(v)]
    return [min(vals), max(vals)] if vals else None


def model_range_record(reads: dict) -> dict:
    """The ``model_range`` object of ``comparison.json``."""
    return {"members": list(reads["before"]), "branches": reads["branches"], "conditioning": reads["conditioning"],
            "what": "relative change of hemoglobin and melanin read by each fit member of the ensemble of optical "
                    "skin models (skinimg.indices.ensemble), over the same skin as the central model (each region's "
                    "too); the verdict calls a change only if it holds under all"}

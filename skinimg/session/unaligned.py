"""A comparison without pixel alignment: region statistics of each photo's own skin.

When no step of the registration chain passes its acceptance test (or ``--registration none``), the pair
is still compared, without pretending the pixels correspond (:func:`measure_unaligned`):

* **skin**: each photo's own skin mask (chart area removed), inside its own ROI when one is given:
  ``roi`` / ``regions`` in BEFORE's frame, ``after_roi`` / ``after_regions`` (the same region names) in
  AFTER's.  A region drawn on BEFORE cannot be carried into an unaligned AFTER (no homography to carry it
  by), so it is never used there silently: a single ROI without AFTER's own is an error (the pair is not
  compared), a named region without AFTER's own is an ``error`` entry of ``regions`` (the whole skin is
  still compared).  AFTER's ROI without one for BEFORE is not used (as for aligned pairs);
* **lighting**: :func:`skinimg.session.lighting._lighting_unpaired`, an achromatic gain from the ratio of the
  levels of each photo's own reference region (skin outside the ROIs, else the background), each read from a
  plane fitted to the region at the centroid of the measured skin (the same place of the scene in both photos);
  named regions share the whole skin's normalisation;
* **indices**: :func:`skinimg.indices.compute_maps` on each photo with one shared chromophore branch, as
  for aligned pairs;
* **statistics**: :func:`skinimg.session.stats.region_statistics` (means of each photo's skin, CI from an
  unpaired block bootstrap over each photo's own tiles); the spot and red areas are fractions of each
  photo's own skin;
* **model range**: every fit member of the ensemble of optical models reads both photos (one twin branch per
  member for both) and gives its relative change of the means of each photo's own skin
  (:mod:`skinimg.session.model_range`), as the aligned path does on the joint pixels;
* **verdicts**: against the MDCs of unaligned retakes (``mdc_unaligned`` in ``models/mdc.json``, derived
  by :mod:`skinimg.train.mdc` the same way as the aligned ones, and never below them), scaled for a region
  by ``1 / sqrt(share)`` with the smaller of the two photos' shares of their skin (``joint_mask.area_fraction``).

``registration.ok`` is False, ``registration.method`` is ``"none (region statistics)"`` and a warning names
the reason.  The joint-mask record says which pixels were used (``joint_mask.rule``).
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from ..errors import SkinImgError
from ..indices import INDEX_NAMES, choose_shared_branch, compute_maps, shared_spot_threshold
from .lighting import _apply_gain, _lighting_unpaired
from .model_range import add_model_range, member_reads, model_range_record
from .register import Registration
from .stats import METRICS, _tile_ids, region_statistics

__all__ = ["measure_unaligned", "UNALIGNED_RULE"]

#: ``joint_mask.rule`` of an unaligned comparison.
UNALIGNED_RULE = "unaligned: each photo's own skin (inside its own ROI when given), no pixel correspondence"


def _spot_fraction(spots, mask: np.ndarray) -> np.ndarray:
    lab = spots.labels > 0
    if lab.shape != mask.shape:  # labels on a reduced grid: nearest-neighbour back to the mask's
        lab = cv2.resize(lab.view(np.uint8), (mask.shape[1], mask.shape[0]), interpolation=cv2.INTER_NEAREST) > 0
    return lab[mask].astype(np.float32)


def measure_unaligned(before: np.ndarray, after: np.ndarray, mask_b: np.ndarray, mask_a: np.ndarray, *,
                      reg: Registration, params, calibration: dict, notes: list,
                      roi: np.ndarray | None = None, after_roi: np.ndarray | None = None,
                      regions: dict | None = None, after_regions: dict | None = None,
                      exclude_b: np.ndarray | None = None, exclude_a: np.ndarray | None = None,
                      label: str | None = None) -> tuple[dict, dict]:
    """Measure a pair by region statistics (see the module docstring); metrics without verdicts.

    Parameters
    ----------
    before, after : ndarray, (H, W, 3) / (H', W', 3), encoded sRGB uint8, uint16 or float in [0, 1] (calibrated when
        charts were used), R, G, B
    mask_b, mask_a : ndarray of bool, (H, W) / (H', W')
        Each photo's skin (chart area already removed).
    reg : Registration
        The failed (or skipped) registration, recorded as ``registration``.
    params : CompareParams
    calibration : dict
        The ``calibration`` record of the pair.
    notes : list of str
        Warnings so far (appended to).
    roi, after_roi : ndarray of bool, (H, W) / (H', W'), optional
        One region of interest in each photo's own frame.
    regions, after_regions : dict str -> ndarray of bool, optional
        Named regions in each photo's own frame (``regions`` instead of ``roi``).
    exclude_b, exclude_a : ndarray of bool, optional
        Pixels never used as lighting reference (charts).
    label : str, optional

    Returns
    -------
    (doc, pictures) as :func:`skinimg.session.measure_pair`; ``pictures`` holds ``before``, ``after``,
    each photo's measured skin (``skin_before``, ``skin_after``) and ``regions`` (name -> (BEFORE's, AFTER's)).

    Raises
    ------
    SkinImgError
        ``roi`` without ``after_roi``; too little skin in either photo (inside the ROI).
    """
    p = params
    exclude_b = np.zeros(mask_b.shape, bool) if exclude_b is None else exclude_b
    exclude_a = np.zeros(mask_a.shape, bool) if exclude_a is None else exclude_a
    why = reg.reason or "no alignment"
    if roi is not None and after_roi is None:
        raise SkinImgError(f"not pixel-aligned ({why}) and AFTER has no ROI of its own: BEFORE's ROI cannot be "
                           "carried into AFTER (give AFTER's ROI: --after-roi, or a ROI file for that session)", label)
    if roi is None:
        after_roi = None  # AFTER's ROI alone is not used (nor is it for an aligned pair)
    # the reason last, in parentheses: the same warning of many pairs collapses into one line (skinimg.io.messages)
    notes.insert(0, f"not pixel-aligned: compared by region statistics of each photo's own skin ({why})")
    if calibration.get("before") == "chart":
        gain, light = None, {"method": "chart", "gain": [1.0, 1.0, 1.0], "reference_pixels": 0, "spread": None}
    else:
        gain, light = _lighting_unpaired(before, after, mask_b, mask_a, roi, after_roi, exclude_b, exclude_a,
                                         p.lighting, notes)
    if gain is not None:
        after = _apply_gain(after, gain, precise=True)  # measured at 16 bits (_apply_gain)
    branch = choose_shared_branch([(before, mask_b), (after, mask_a)], params=p.indices)
    ip = replace(p.indices, branch=branch)
    maps_b = compute_maps(before, mask_b, params=ip, spot_map=True)
    maps_a = compute_maps(after, mask_a, params=ip, spot_map=True)
    own_b = mask_b & np.isfinite(maps_b["hemoglobin"])
    own_a = mask_a & np.isfinite(maps_a["hemoglobin"])
    skin_b = own_b & roi if roi is not None else own_b
    skin_a = own_a & after_roi if after_roi is not None else own_a
    for which, m in (("BEFORE", skin_b), ("AFTER", skin_a)):
        n = int(np.count_nonzero(m))
        if n < p.min_joint_pixels:
            raise SkinImgError(f"too little skin in {which}{' inside its ROI' if roi is not None else ''}: {n} "
                               f"pixels < {p.min_joint_pixels}", label)
    tiles = (max(p.min_tile_px, int(round(p.tile_frac * min(mask_b.shape)))),
             max(p.min_tile_px, int(round(p.tile_frac * min(mask_a.shape)))))
    metrics, counts = _region_metrics(maps_b, maps_a, skin_b, skin_a, tiles, p)
    n_b, n_a = int(np.count_nonzero(own_b)), int(np.count_nonzero(own_a))
    doc = {
        "registration": reg.to_dict(),
        "calibration": calibration,
        "lighting": light,
        "chromophore_branch": branch,
        "joint_mask": _joint_record(skin_b, skin_a, n_b, n_a, roi is not None, after_roi is not None),
        "metrics": metrics,
        "counts": counts,
        "statistics": {
            "ci95": "percentile block bootstrap over square spatial tiles, each photo's tiles resampled "
                    "independently (unpaired)",
            "tile_px": list(tiles), "n_boot": p.n_boot, "seed": p.seed,
            "effect_size": "Cohen's d: delta / sqrt((sd_before^2 + sd_after^2) / 2), pixel SDs over each photo's skin",
            "delta_pct": "100 * delta / |before|",
        },
        "warnings": notes + list(reg.notes),
    }
    doc["joint_mask"]["common_skin_pixels"] = None
    pics = {"before": before, "after": after, "skin_before": skin_b, "skin_after": skin_a}
    if regions is not None:
        doc["regions"], pics["regions"] = {}, {}
        for name, region in regions.items():
            rb = own_b & region
            entry = {"pixels": int(np.count_nonzero(region))}
            theirs = (after_regions or {}).get(name)
            if theirs is None:
                entry["error"] = (f"region '{name}' not compared: the pair is not pixel-aligned and AFTER has no "
                                  "region of that name of its own (a region cannot be carried without alignment)")
            else:
                ra = own_a & theirs
                entry["joint_mask"] = _joint_record(rb, ra, n_b, n_a, True, True)
                small = min(int(np.count_nonzero(rb)), int(np.count_nonzero(ra)))
                if small < p.min_joint_pixels:
                    entry["error"] = (f"too little skin in region '{name}': {small} pixels < {p.min_joint_pixels} "
                                      "(in one of the photos)")
                else:
                    entry["metrics"], entry["counts"] = _region_metrics(maps_b, maps_a, rb, ra, tiles, p)
                    pics["regions"][name] = (rb, ra)
            doc["regions"][name] = entry
    if p.model_range:  # each member's change of the means of each photo's own skin (and each region's)
        reads = member_reads(before, after, mask_b, mask_a, p.indices)
        add_model_range(reads, metrics, skin_b, skin_a)
        for name, (rb, ra) in pics.get("regions", {}).items():
            add_model_range(reads, doc["regions"][name]["metrics"], rb, ra)
        doc["model_range"] = model_range_record(reads)
    return doc, pics


def _joint_record(skin_b: np.ndarray, skin_a: np.ndarray, n_b: int, n_a: int, roi: bool, after_roi: bool) -> dict:
    """``joint_mask`` of an unaligned comparison: each photo's measured pixels, and ``area_fraction``, the smaller
    of the two photos' shares of their own skin (the MDC of a region scales by ``1 / sqrt(area_fraction)``)."""
    pb, pa = int(np.count_nonzero(skin_b)), int(np.count_nonzero(skin_a))
    return {"pixels": None, "rule": UNALIGNED_RULE, "before_pixels": pb, "after_pixels": pa, "roi": roi,
            "after_roi": after_roi, "area_fraction": min(pb / n_b if n_b else 0.0, pa / n_a if n_a else 0.0)}


def _region_metrics(maps_b: dict, maps_a: dict, skin_b: np.ndarray, skin_a: np.ndarray, tiles: tuple, p) -> tuple:
    """(metrics, counts) of two unpaired pixel sets: each photo's maps over its own ``skin``."""
    tb, ta = _tile_ids(skin_b, tiles[0]), _tile_ids(skin_a, tiles[1])
    kw = {"n_boot": p.n_boot, "seed": p.seed}
    metrics = {name: region_statistics(maps_b[name][skin_b], maps_a[name][skin_a], tb, ta, **kw)
               for name in INDEX_NAMES}
    thr = np.float32(p.indices.red_threshold)
    metrics["red_area_fraction"] = region_statistics((maps_b["hemoglobin"][skin_b] > thr).astype(np.float32),
                                                     (maps_a["hemoglobin"][skin_a] > thr).astype(np.float32),
                                                     tb, ta, **kw)
    # the field analyze finds spots on (shading-free on the light sheet), with one threshold, as for aligned pairs
    (spots_b, spots_a), _ = shared_spot_threshold([maps_b["spot_melanin"], maps_a["spot_melanin"]], [skin_b, skin_a],
                                                  params=p.indices)
    metrics["brown_spot_area_fraction"] = region_statistics(_spot_fraction(spots_b, skin_b),
                                                            _spot_fraction(spots_a, skin_a), tb, ta, **kw)
    counts = {"brown_spot_count": {"before": int(spots_b.count), "after": int(spots_a.count)}}
    return {name: metrics[name] for name in METRICS}, counts

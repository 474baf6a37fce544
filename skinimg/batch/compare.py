"""Comparing two photo files (``skinimg compare``): :func:`skinimg.session.compare_arrays` plus reading and writing."""

from __future__ import annotations

import os

import numpy as np

from .. import __version__
from ..errors import SkinImgError
from ..io import load_image, make_output_folder, work_size, write_json, write_png
from ..segment import network_record
from ..session import CompareParams, compare_arrays, load_mdc, render_pictures
from .roi import RoiRef, fit_roi

__all__ = ["MAP_FILES", "compare_files"]

#: The PNG pictures of a comparison, written beside ``comparison.json``.
MAP_FILES = ("pair.png", "delta_hemoglobin.png", "delta_melanin.png")


def compare_files(before: str | os.PathLike, after: str | os.PathLike, out: str | os.PathLike | None, *,
                  roi: str | os.PathLike | RoiRef | None = None, params: CompareParams | None = None,
                  before_label: str | None = None, after_label: str | None = None,
                  before_mask: np.ndarray | None = None, after_mask: np.ndarray | None = None,
                  after_roi: str | os.PathLike | RoiRef | None = None) -> dict:
    """Compare two photo files; write ``out/comparison.json`` and the PNG maps.

    Parameters
    ----------
    before, after : path-like
        Photos (BEFORE is the reference frame).
    out : path-like or None
        Output folder (created); None writes nothing.
    roi : path-like or RoiRef, optional
        ROI file (:func:`skinimg.io.read_roi`: polygon JSON, named regions or mask image) in BEFORE's pixels.
        One region: every metric is measured inside it.  Named regions: ``metrics`` over the whole common skin
        and ``regions[name]`` per region (:func:`skinimg.session.measure_pair`).
    after_roi : path-like or RoiRef, optional
        AFTER's own ROI file (AFTER's pixels; the same region names), used only when the pair cannot be
        pixel-aligned: BEFORE's ROI cannot be carried into AFTER then (:func:`skinimg.session.measure_unaligned`).
    params : CompareParams, optional
    before_label, after_label : str, optional
        Names recorded in ``comparison.json`` (default: the paths as given).

    Returns
    -------
    dict
        The ``comparison.json`` document: ``before``, ``after``, ``registration`` (ok, method,
        inliers, residual_px, ...), ``metrics`` (per metric: before, after, delta,
        delta_pct, ci95, effect_size, mdc, verdict), ``lighting``, ``calibration``,
        ``joint_mask``, ``statistics``, ``warnings``, ``roi`` (the file or None), ``roi_source`` (``file``,
        ``propagated`` or ``none``), ``roi_pixels`` (its area in BEFORE's pixels), ``regions`` (named regions),
        ``after_roi`` (AFTER's own ROI file or None), ``params``, ``skinimg_version``, ``maps`` (the PNG files
        written: all of :data:`MAP_FILES` for an aligned pair, ``pair.png`` for one compared without alignment;
        the others are removed from ``out``, so a reused folder holds no delta map of an earlier run).

    Raises
    ------
    SkinImgError
        Unreadable photo or ROI, too little (common) skin, BEFORE's ROI without AFTER's when the pair cannot be
        aligned, output not writable.  A pair that cannot be aligned is compared by region statistics
        (``registration.ok`` False), not refused.
    """
    p = params or CompareParams()
    bl = before_label or os.fspath(before)
    al = after_label or os.fspath(after)
    pair = f"{bl} vs {al}"
    load_mdc(p.mdc_path)
    rgb_b, _ = load_image(before, max_pixels=p.max_pixels, label=bl)
    rgb_a, _ = load_image(after, max_pixels=p.max_pixels, label=al)
    ref = roi if isinstance(roi, RoiRef) or roi is None else RoiRef(roi, os.fspath(roi), "file")
    fitted, regions = fit_roi(ref, rgb_b.shape[:2]) if ref is not None else (None, {})
    named = fitted is not None and fitted.named
    aref = after_roi if isinstance(after_roi, RoiRef) or after_roi is None else RoiRef(after_roi, os.fspath(after_roi),
                                                                                     "file")
    a_fitted, a_regions, a_error = None, {}, None
    if aref is not None and fitted is not None:
        try:  # AFTER's own ROI serves only a pair that cannot be aligned: a broken one must not fail the others
            a_fitted, a_regions = fit_roi(aref, rgb_a.shape[:2])
        except SkinImgError as exc:
            a_error = exc
    a_named = a_fitted is not None and a_fitted.named
    try:
        doc, pics = compare_arrays(rgb_b, rgb_a, before_mask=before_mask, after_mask=after_mask,
                                   roi=regions[""] if fitted is not None and not named else None, params=p, label=pair,
                                   regions=regions if named else None,
                                   after_roi=a_regions[""] if a_fitted is not None and not a_named else None,
                                   after_regions=a_regions if a_named else None)
    except SkinImgError:
        if a_error is not None:  # the pair needed AFTER's own ROI (no alignment): say what is wrong with it
            raise a_error from None
        raise
    if a_error is not None:
        if not doc["registration"]["ok"]:
            raise a_error  # the unaligned comparison needed AFTER's ROI
        doc["warnings"] = list(doc.get("warnings") or []) + [f"AFTER's ROI not used (the pair is aligned): {a_error}"]
    full = {"before": bl, "after": al}
    full.update(doc)
    full["roi"] = ref.label if fitted is not None else None
    full["roi_source"] = ref.source if fitted is not None else "none"
    full["after_roi"] = aref.label if a_fitted is not None else None
    full["roi_pixels"] = int(np.count_nonzero(np.logical_or.reduce(list(regions.values())))) if regions else None
    full["image_sizes"] = {"before": [int(rgb_b.shape[1]), int(rgb_b.shape[0])],
                           "after": [int(rgb_a.shape[1]), int(rgb_a.shape[0])]}
    full["analysis_sizes"] = {k: list(work_size(img.shape[1], img.shape[0], p.work_pixels))
                              for k, img in (("before", rgb_b), ("after", rgb_a))}
    full["params"] = p.to_dict()
    full["skin_network"] = network_record(p.segment_method)
    full["skinimg_version"] = __version__
    full["maps"] = list(MAP_FILES) if doc["registration"]["ok"] else ["pair.png"]
    if out is not None:
        out = make_output_folder(out)
        for name, img in render_pictures(pics, max_side=p.map_max_side).items():
            write_png(out / name, img)
        for name in set(MAP_FILES) - set(full["maps"]):  # an earlier aligned run's delta maps would not match
            (out / name).unlink(missing_ok=True)
        write_json(out / "comparison.json", full)
    return full

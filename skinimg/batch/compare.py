"""Comparing two photo files (``skinimg compare``): :func:`skinimg.session.compare_arrays` plus reading and writing."""

from __future__ import annotations

import os

import numpy as np

from .. import __version__
from ..io import load_image, load_roi, make_output_folder, write_json, write_png
from ..session import CompareParams, compare_arrays, load_mdc, render_pictures

__all__ = ["MAP_FILES", "compare_files"]

#: The PNG pictures of a comparison, written beside ``comparison.json``.
MAP_FILES = ("pair.png", "delta_hemoglobin.png", "delta_melanin.png")


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
        :func:`skinimg.io.load_roi` file (polygon JSON or mask image in BEFORE's pixels).
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
    rgb_b, _ = load_image(before, max_pixels=p.max_pixels, label=bl)
    rgb_a, _ = load_image(after, max_pixels=p.max_pixels, label=al)
    roi_mask = load_roi(roi, rgb_b.shape[:2]) if roi is not None else None
    doc, pics = compare_arrays(rgb_b, rgb_a, before_mask=before_mask, after_mask=after_mask, roi=roi_mask, params=p,
                               label=pair)
    full = {"before": bl, "after": al}
    full.update(doc)
    full["roi"] = os.fspath(roi) if roi is not None else None
    full["params"] = p.to_dict()
    full["skinimg_version"] = __version__
    full["maps"] = list(MAP_FILES)
    if out is not None:
        out = make_output_folder(out)
        for name, img in render_pictures(pics, max_side=p.map_max_side).items():
            write_png(out / name, img)
        write_json(out / "comparison.json", full)
    return full

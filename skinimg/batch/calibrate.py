"""Calibrating photo files (``skinimg calibrate``): one row and two files per photo."""

from __future__ import annotations

import os
from typing import Sequence

from ..calibrate import CalibrationParams, calibrate_image
from ..errors import SkinImgError
from ..io import (DEFAULT_MAX_PIXELS, calibrated_path, calibration_path, load_image, make_output_folder,
                  remove_stale_temp_files,
                  write_csv, write_json, write_png)
from .analyze import _discover

__all__ = ["CSV_COLUMNS", "CSV_TEXT_COLUMNS", "calibrate_file", "calibrate_paths", "correction_row", "correction_message"]

#: Columns of ``calibrate.csv`` (one row per input image).  CIEDE2000 figures are plain (unweighted) means and
#: maxima over the chart patches used: before correction, after it (in-sample) and leave-one-patch-out (each
#: patch predicted by the model fitted without it); ``skin_*`` over patches 1-2, ``neutral_*`` over 19-24.
CSV_COLUMNS = (
    "image", "status", "error", "kind", "method",
    "delta_e_before_mean", "delta_e_before_max", "delta_e_after_mean", "delta_e_after_max",
    "delta_e_loo_mean", "delta_e_loo_max", "skin_delta_e_before", "skin_delta_e_after", "skin_delta_e_loo",
    "neutral_delta_e_loo", "warning",
)
#: The text columns of :data:`CSV_COLUMNS` (the others are numbers).
CSV_TEXT_COLUMNS = ("image", "status", "error", "kind", "method", "warning")


def correction_row(corr) -> dict:
    """The :data:`CSV_COLUMNS` values of a :class:`~skinimg.calibrate.Correction` (``status`` ok)."""
    return {"status": "ok", "error": "", "kind": corr.kind, "method": corr.method,
            "delta_e_before_mean": corr.delta_e_before["mean"], "delta_e_before_max": corr.delta_e_before["max"],
            "delta_e_after_mean": corr.delta_e_after["mean"], "delta_e_after_max": corr.delta_e_after["max"],
            "delta_e_loo_mean": corr.delta_e_loo["mean"], "delta_e_loo_max": corr.delta_e_loo["max"],
            "skin_delta_e_before": corr.skin_delta_e["before"], "skin_delta_e_after": corr.skin_delta_e["after"],
            "skin_delta_e_loo": corr.skin_delta_e["loo"], "neutral_delta_e_loo": corr.neutral_delta_e["loo"],
            "warning": corr.warning or ""}


def correction_message(relpath: str, corr) -> str:
    """The one line ``skinimg calibrate`` prints for a calibrated photo."""
    if corr.kind != "chart":
        return f"{relpath}: no chart found; used {corr.kind}"
    b, a, lo = corr.delta_e_before, corr.delta_e_after, corr.delta_e_loo
    return (f"{relpath}: chart found; CIEDE2000 mean {b['mean']:.2f} -> {a['mean']:.2f} (leave-one-out {lo['mean']:.2f}), "
            f"max {b['max']:.2f} -> {a['max']:.2f} ({corr.method}, {len(corr.patches_used)} patches)")


def calibrate_file(
    path,
    out_dir,
    *,
    relpath: str,
    out_stem: str,
    white: Sequence[int] | None = None,
    require_chart: bool = False,
    params: CalibrationParams | None = None,
    max_pixels: int | None = None,
) -> tuple[dict, str]:
    """Calibrate one photo file and write its corrected image and correction JSON.

    Parameters
    ----------
    path : path-like
        Input photo.
    out_dir : path-like
        Output root: writes ``calibrated/<out_stem>.png`` (same bit depth as the input, no
        metadata) and ``calibration/<out_stem>.json`` (:meth:`Correction.to_dict`).
    relpath : str
        Name of the input in messages and in the ``image`` column.
    out_stem : str
        Relative output name without extension.
    white, require_chart, params
        As :func:`calibrate_image` (``mode="auto"``).
    max_pixels : int, optional
        Passed to :func:`skinimg.io.load_image`.

    Returns
    -------
    row : dict
        The :data:`CSV_COLUMNS` values (``status`` "ok" or "error"; ``error`` the reason).
        A bad photo never raises; an output that cannot be written raises :class:`SkinImgError`.
    message : str
        One line for the user: ``"<image>: chart found; ..."``, ``"<image>: no chart found; used
        gray_world"`` or ``"<image>: <reason>"`` for an error.  A chart-quality warning is in
        ``row["warning"]`` (the command prints it on stderr).
    """
    params = params or CalibrationParams()
    row = {k: None for k in CSV_COLUMNS}
    row["image"] = relpath
    try:
        rgb, _meta = load_image(path, max_pixels=DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels, label=relpath)
        corrected, corr = calibrate_image(rgb, mode="auto", white=white, require_chart=require_chart, params=params)
        corr.image = relpath
        corr.image_size = [int(rgb.shape[1]), int(rgb.shape[0])]
    except SkinImgError as exc:
        row.update(status="error", error=exc.reason)
        return row, f"{relpath}: {exc.reason}"
    # An output that cannot be written (full disk, read-only folder) is not the photo's fault:
    # SkinImgError propagates and stops the run.
    write_png(calibrated_path(out_dir, out_stem), corrected)
    write_json(calibration_path(out_dir, out_stem), corr.to_dict())
    row.update(correction_row(corr))
    return row, correction_message(relpath, corr)


def calibrate_paths(paths: Sequence[str | os.PathLike], out: str | os.PathLike, *, white: Sequence[int] | None = None,
                    require_chart: bool = False, params: CalibrationParams | None = None,
                    max_pixels: int | None = None, progress=None) -> dict:
    """Calibrate every photo under ``paths`` (:func:`calibrate_file`) and write ``out/calibrate.csv``.

    Parameters
    ----------
    paths : sequence of path-like
        Files and folders (:func:`skinimg.io.discover_images`).
    out : path-like
        Output folder: ``calibrated/``, ``calibration/`` and ``calibrate.csv`` (:data:`CSV_COLUMNS`).
    white, require_chart, params, max_pixels
        As :func:`calibrate_file`.
    progress : callable, optional
        Called with ``(row, message)`` after each photo.

    Returns
    -------
    dict
        ``rows`` (in input order), ``n_images``, ``n_error``, ``outputs``.

    Raises
    ------
    SkinImgError
        No image found, an input missing, an output that cannot be written.
    """
    params = params or CalibrationParams()
    items = _discover(paths)
    out = make_output_folder(out)  # and removes the temporary files of a killed run
    rows = []
    for item in items:
        row, message = calibrate_file(item.path, out, relpath=item.relpath, out_stem=item.stem_rel, white=white,
                                      require_chart=require_chart, params=params, max_pixels=max_pixels)
        rows.append(row)
        if progress is not None:
            progress(row, message)
    csv_path = write_csv(out / "calibrate.csv", rows, CSV_COLUMNS)
    remove_stale_temp_files(out)
    return {"rows": rows, "n_images": len(rows), "n_error": sum(r["status"] != "ok" for r in rows),
            "outputs": [csv_path]}

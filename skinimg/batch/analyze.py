"""``skinimg analyze``: per-image composition load -> (calibrate) -> segment -> indices -> row.

:func:`analyze_image` is a pure-ish function of one file (it reads the file and
returns a row and the maps; it writes nothing), so any executor can drive it.
:func:`analyze_paths` discovers images, runs them (optionally in worker
processes), writes the per-image maps and the tables, and returns a summary.

Outputs of :func:`analyze_paths` under ``out``:

``indices.csv``            one row per input image, sorted by ``image`` (:data:`ROW_COLUMNS`); a photo with named
                           ROI regions has its whole-skin row and one row per region (column ``region``)
``results.sqlite``         the same rows, table ``indices``, upserted by ``image`` and ``region``
``indices.parquet``        the same rows, with ``formats`` containing ``"parquet"``
``analyze.json``           parameters, their hash, skinimg version, counts, the maps written
``maps/<stem>_<index>.tif``  float32 map, NaN off skin, for the indices of ``maps`` (:data:`DEFAULT_MAPS` unless
                           asked otherwise, :func:`map_names`)
``maps/<stem>_<index>.png``  heatmap over the dimmed photo with a colour bar

User indices (``indices=``, :mod:`skinimg.indices.user`) add their columns (``NAME``, ``NAME_median``,
``NAME_p10``, ``NAME_p90``, ``NAME_std``) and ``index_errors`` after :data:`ROW_COLUMNS`, and their maps.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .. import __version__
from ..calibrate import calibrate_image, chart_mask
from ..errors import SkinImgError
from ..indices import (UserIndexRunner, basis_digest, load_basis, load_user_indices, measure, row_errors,
                       summary_columns, user_columns)
from ..io import (InputImage, calibration_path, discover_images, load_image, make_output_folder, reason_text,
                  reduce_image, reduce_mask, remove_stale_temp_files, write_json)
from ..segment import SegmentResult, load_model, network_record, segment_skin
from .analyze_params import AnalyzeParams
from .executors import Deferred, map_jobs
from .maps import DEFAULT_MAPS, MAP_SETS, map_names, write_maps
from .roi import ROI_COLUMNS, RoiLookup, RoiRef, fit_roi, roi_columns
from .store import SQLITE_NAME, export_csv, export_parquet, require_parquet, upsert_rows

__all__ = [
    "AnalyzeParams",
    "DEFAULT_MAPS",
    "MAP_SETS",
    "ROW_COLUMNS",
    "ROW_KEY",
    "ROW_TYPES",
    "TABLE",
    "analyze_image",
    "analyze_paths",
    "map_names",
    "photo_status",
    "segment_photo",
    "write_maps",
]

log = logging.getLogger("skinimg.analyze")

#: SQLite table of the rows.
TABLE = "indices"
#: Statuses of a row.
STATUSES = ("ok", "no_skin", "error")

_HEAD = ["image", "status", "error", "width", "height", "bit_depth", "skin_fraction", "skin_pixels",
         "segment_method", "chromophore_method", "chromophore_branch_check", "saturated_fraction", "calibration",
         "calibration_delta_e"]
_TAIL = ["params_hash", "skinimg_version"]
#: The segmentation's flag (``AnalyzeParams.check``; empty otherwise), added last.
_FLAG = ["stage_agreement", "mask_check"]
#: The size of the copy measured (``AnalyzeParams.work_pixels``; ``width``, ``height`` are the photo's own).
_WORK = ["analysis_width", "analysis_height"]
#: Every column of ``indices.csv`` / table ``indices``, in order (the ROI's, :data:`skinimg.batch.ROI_COLUMNS`, last).
ROW_COLUMNS = tuple(_HEAD + summary_columns() + _TAIL + _FLAG + _WORK + list(ROI_COLUMNS))
#: The key of a row: a photo's whole skin has ``region`` "", each named region its name.
ROW_KEY = ("image", "region")
#: SQL type of every column.
ROW_TYPES = {c: "REAL" for c in ROW_COLUMNS}
ROW_TYPES.update({c: "TEXT" for c in ("image", "status", "error", "segment_method", "chromophore_method",
                                      "chromophore_branch_check", "calibration",
                                      "ita_category", "params_hash", "skinimg_version", "mask_check", "roi", "region",
                                      "roi_source")})
ROW_TYPES.update({c: "INTEGER" for c in ("width", "height", "bit_depth", "skin_pixels", "brown_spot_count",
                                         "roi_pixels", "analysis_width", "analysis_height")})

def segment_photo(rgb: np.ndarray, params: AnalyzeParams, *, check: bool = False) -> SegmentResult:
    """The skin mask analyze measures on: :func:`skinimg.segment.segment_skin` with ``params``' segmentation method
    (``check`` only for ``method="model"``).  Also the segment stage of :func:`run_pipeline` and the skin excluded by
    the calibration fallbacks."""
    return segment_skin(rgb, method=params.segment_method, check=check and params.segment_method == "model")


def _calibrate(rgb: np.ndarray, params: AnalyzeParams):
    """Colour calibration between loading and segmentation: ``(rgb, Correction or None)``.

    The gray-world fallback must not look at skin, so the raw photo is segmented
    first and its skin mask is excluded from the fallback's statistics.
    """
    if params.calibration == "none":
        return rgb, None
    raw_skin = np.asarray(segment_photo(rgb, params).mask, dtype=bool)
    return calibrate_image(rgb, mode=params.calibration, white=params.white, skin_mask=raw_skin,
                           params=params.calibrate_params)


def load_working_copy(path, params: AnalyzeParams, *, label=None):
    """:func:`skinimg.io.load_image` as analyze loads a photo: ``(rgb, meta)``, the working copy
    (``params.work_pixels``) straight from the decoder unless the photo is to be calibrated (then in full: the
    chart is looked for at the photo's own resolution, and the caller reduces the corrected photo with
    :func:`skinimg.io.reduce_image`)."""
    work = params.work_pixels if params.calibration == "none" else None
    return load_image(path, max_pixels=params.max_pixels, label=label, work_pixels=work)


def _float_or_nan(v) -> float:
    return float("nan") if v is None else float(v)


def _empty_row(image: str, status: str, error: str | None, params_hash: str) -> dict:
    row = {c: float("nan") for c in ROW_COLUMNS}
    row.update(image=image, status=status, error=error, width=None, height=None, bit_depth=None, mask_check=None,
               analysis_width=None, analysis_height=None,
               skin_pixels=None, brown_spot_count=None, segment_method=None, chromophore_method=None,
               chromophore_branch_check=None,
               calibration=None,
               ita_category="unknown", params_hash=params_hash, skinimg_version=__version__)
    row.update(roi_columns(None))
    return row


def _as_item(item_or_path) -> InputImage:
    if isinstance(item_or_path, InputImage):
        return item_or_path
    p = Path(item_or_path)
    return InputImage(path=p, relpath=p.name)


def _analyze(item: InputImage, params: AnalyzeParams, want_maps: tuple, params_hash: str,
             correction: list | None = None, roi: RoiRef | None = None, user: UserIndexRunner | None = None):
    """(rows, maps or None, rgb or None); SkinImgError becomes a status=error row.

    ``correction``, when a list, receives the colour correction used (for the caller to save); ``roi`` is the
    photo's region of interest (:meth:`RoiLookup.resolve`).
    """
    try:
        rgb, meta = load_working_copy(item.path, params, label=item.relpath)
        rgb, corr = _calibrate(rgb, params)
        rgb = reduce_image(rgb, params.work_pixels)  # a calibrated photo was loaded in full to find its chart
        seg = segment_photo(rgb, params, check=params.check)
    except SkinImgError as exc:
        return [_empty_row(item.relpath, "error", exc.reason, params_hash)], None, None
    mask = np.asarray(seg.mask, dtype=bool)
    if corr is not None:
        corr.image = item.relpath
        if correction is not None:
            correction.append(corr)
        if corr.corners is not None:
            mask = mask & ~reduce_mask(chart_mask((meta.height, meta.width), corr), mask.shape)
    return _measure_rows(item, rgb, meta, mask, seg.method, params, want_maps, params_hash, corr=corr, seg=seg,
                         roi=roi, user=user)


def _measure_rows(item: InputImage, rgb: np.ndarray, meta, mask: np.ndarray, segment_method: str,
                  params: AnalyzeParams, want_maps: tuple, params_hash: str, *, corr=None, seg=None,
                  roi: RoiRef | None = None, user: UserIndexRunner | None = None):
    """:func:`_measure_row` in the photo's region(s) of interest: ``(rows, maps or None, rgb or None)``.

    Without ROI: one row over the skin.  One unnamed region: one row over the skin inside it (its maps).  Named
    regions: the whole skin's row (and maps), then one row per region, in the file's order.  A bad ROI file is
    one ``status=error`` row naming it; a region with no skin inside is an error row for that region.
    """
    try:
        fitted, regions = fit_roi(roi, mask.shape, meta.photo_shape) if roi is not None else (None, {})
    except SkinImgError as exc:
        row = _empty_row(item.relpath, "error", exc.reason, params_hash)
        row.update(roi_columns(roi))
        return [row], None, None
    if fitted is None:
        row, maps, out = _measure_row(item, rgb, meta, mask, segment_method, params, want_maps, params_hash,
                                      corr=corr, seg=seg, user=user)
        return [row], maps, out
    rows, maps, out = [], None, None
    if fitted.named:
        whole, maps, out = _measure_row(item, rgb, meta, mask, segment_method, params, want_maps, params_hash,
                                        corr=corr, seg=seg, user=user)
        rows.append(whole)
    region_maps = () if fitted.named else want_maps  # an unnamed region's maps are the photo's
    for name, region in regions.items():
        inside = mask & region
        row, m, o = _measure_row(item, rgb, meta, inside, segment_method, params, region_maps, params_hash,
                                 corr=corr, seg=seg, user=user)
        if not inside.any():
            row = _empty_row(item.relpath, "error", f"ROI {roi.label}: no skin inside "
                                                    f"{f'region {name!r}' if name else 'the ROI'}", params_hash)
        row.update(roi_columns(roi, name, int(np.count_nonzero(region))))
        rows.append(row)
        if not fitted.named:
            maps, out = m, o
    return rows, maps, out


def _measure_row(item: InputImage, rgb: np.ndarray, meta, mask: np.ndarray, segment_method: str,
                 params: AnalyzeParams, want_maps: tuple, params_hash: str, *, corr=None, seg=None,
                 user: UserIndexRunner | None = None):
    """The analyze step after loading and segmentation (shared with :mod:`skinimg.batch`).

    ``want_maps`` names the maps to return (:func:`map_names`; empty: none).
    ``rgb`` is the (calibrated) photo, ``meta`` its :class:`~skinimg.io.ImageMeta`, ``mask``
    the (H, W) skin mask, ``corr`` the :class:`~skinimg.calibrate.Correction` applied (or None), ``seg`` the
    :class:`~skinimg.segment.SegmentResult` (its ``flag_columns`` fill ``stage_agreement`` and ``mask_check``),
    ``user`` the run's user indices: their columns and ``index_errors`` (a failing one leaves only its own columns
    empty; its reasons also stay under the private key ``_index_errors`` for the run's summary) and map indices'
    maps.  Returns (row, maps or None, rgb or None) like :func:`_analyze`.
    """
    mask = np.asarray(mask, dtype=bool)
    n_skin = int(np.count_nonzero(mask))
    base = {
        "image": item.relpath,
        "width": meta.photo_shape[1],
        "height": meta.photo_shape[0],
        "bit_depth": meta.bit_depth,
        "skin_fraction": n_skin / float(mask.size),
        "skin_pixels": n_skin,
        "segment_method": segment_method,
        "calibration": corr.kind if corr is not None else "none",
        "calibration_delta_e": _float_or_nan(corr.delta_e_after.get("mean") if corr is not None else None),
        "params_hash": params_hash,
        "skinimg_version": __version__,
    }
    flags = seg.flag_columns
    base.update(stage_agreement=_float_or_nan(flags["stage_agreement"]), mask_check=flags["mask_check"])
    base.update(roi_columns(None))
    base.update(analysis_width=int(mask.shape[1]), analysis_height=int(mask.shape[0]))
    if n_skin < params.indices.min_skin_pixels:
        row = _empty_row(item.relpath, "no_skin", f"no skin found ({n_skin} skin pixels)", params_hash)
        row.update(base)
        return row, None, None
    try:
        stats, maps = measure(rgb, mask, params=params.indices, return_maps=tuple(want_maps or ()))
    except SkinImgError as exc:
        return _empty_row(item.relpath, "error", exc.reason, params_hash), None, None
    row = {c: float("nan") for c in ROW_COLUMNS}
    row.update(base)
    row.update(stats)
    row["status"] = "ok"
    row["error"] = None
    if user is not None and user.indices:
        urow, umaps, errs = user.measure(rgb, mask, want_maps=want_maps)
        row.update(urow)
        row["index_errors"], row["_index_errors"] = row_errors(errs), errs
        if maps is not None:
            maps.update(umaps)
    return row, maps, (rgb if want_maps else None)


def analyze_image(item_or_path, *, params: AnalyzeParams | None = None, maps=True) -> tuple[dict, dict | None]:
    """Analyze one photograph: load -> (calibrate) -> segment -> indices -> row.

    Parameters
    ----------
    item_or_path : InputImage or path-like
        An :class:`~skinimg.io.InputImage` (its ``relpath`` names the row) or a path
        (named by its file name).
    params : AnalyzeParams, optional
    maps : bool, str or sequence of str
        Also return these per-pixel maps (:func:`map_names`: True = :data:`DEFAULT_MAPS`, ``"all"``, names).

    Returns
    -------
    row : dict
        Every column of :data:`ROW_COLUMNS`.  ``status`` is ``"ok"``, ``"no_skin"``
        (fewer than ``params.indices.min_skin_pixels`` skin pixels) or ``"error"``
        (unreadable / refused file; ``error`` holds the reason).  Never raises
        :class:`SkinImgError` for a bad file.
    maps : dict name -> float32 (H, W) map, NaN off skin, or None (not requested / not ok)
    """
    params = params or AnalyzeParams()
    rows, m, _ = _analyze(_as_item(item_or_path), params, map_names(maps), params.hash())
    return rows[0], m


class _OutputFailure(Exception):
    """An output could not be written (full disk, read-only folder): fatal for the run, not the photo's fault."""


def _write(fn, *args):
    """Call the writer ``fn(*args)``: a file name too long is this photo's error (:class:`SkinImgError`, a row);
    anything else (full disk, read-only folder) is an :class:`_OutputFailure` that stops the run."""
    try:
        return fn(*args)
    except SkinImgError as exc:
        if getattr(exc, "errno", None) == errno.ENAMETOOLONG:  # this photo's name, not the disk
            raise SkinImgError("cannot write its outputs: file name too long") from None
        raise _OutputFailure(str(exc)) from None


def _internal_error(item: InputImage, exc: BaseException) -> str:
    """The reason of a row for an unexpected exception (a bug or an exotic file must not stop the batch)."""
    log.debug("internal error on %s", item.relpath, exc_info=True)
    reason = reason_text(exc, item.path).replace(os.fspath(Path(item.path).parent), ".")
    return f"internal error: {type(exc).__name__}: {reason}"


def _guarded(item: InputImage, params_hash: str, roi: RoiRef | None, fn, *args):
    """``fn(*args)`` (rows, or a :class:`Deferred` of them); a problem of this photo becomes its error row, an
    :class:`_OutputFailure` stops the run (:class:`SkinImgError`)."""
    try:
        return fn(*args)
    except _OutputFailure as exc:
        raise SkinImgError(str(exc)) from None
    except SkinImgError as exc:
        reason = exc.reason
    except MemoryError:
        reason = "out of memory (try --max-pixels or fewer --workers)"
    except Exception as exc:  # a bug or an exotic file must not stop the batch; the row says what happened
        reason = _internal_error(item, exc)
    row = _empty_row(item.relpath, "error", reason, params_hash)
    row.update(roi_columns(roi))
    return [row]


def photo_status(rows: Sequence[dict]) -> tuple[str, str | None]:
    """A photo's ``(status, error)`` from its rows: the first error, else the first ``no_skin``, else ``ok``."""
    for status in ("error", "no_skin"):
        for r in rows:
            if r["status"] == status:
                return status, r["error"]
    return "ok", None


_RUNNERS: dict = {}


def _user_runner(user_job: tuple, params: AnalyzeParams) -> UserIndexRunner:
    """This process's :class:`~skinimg.indices.UserIndexRunner` of a run (imported once per process and run; it
    remembers the indices that timed out in this process).  ``user_job``: (specs, timeout, run id)."""
    if user_job not in _RUNNERS:
        specs, timeout, _run_id = user_job
        _RUNNERS.clear()
        _RUNNERS[user_job] = UserIndexRunner(load_user_indices(list(specs), reserved=ROW_COLUMNS), timeout=timeout,
                                             params=params.indices)
    return _RUNNERS[user_job]


def _measure_one(item: InputImage, params: AnalyzeParams, out: str, want_maps: tuple, params_hash: str,
                 roi: RoiRef | None, user_job: tuple | None):
    """The rows of one photo, or a :class:`Deferred` of them when its maps are still to write."""
    user = _user_runner(user_job, params) if user_job else None
    corrections: list = []
    rows, maps, rgb = _analyze(item, params, want_maps, params_hash, corrections, roi, user=user)
    if corrections:
        _write(write_json, calibration_path(out, item.stem_rel), corrections[0].to_dict())
    if want_maps and maps is not None:
        maps_job = (out, item.stem_rel, rgb, maps, params)
        return Deferred(lambda: _guarded(item, params_hash, roi, _write_then, rows, maps_job))
    return rows


def _write_then(rows: list[dict], maps_job: tuple) -> list[dict]:
    _write(write_maps, *maps_job)
    return rows


def _run_one(job) -> list[dict] | Deferred:
    """Worker: analyze one image and return its rows (one, or one per ROI region besides the whole skin), with its
    maps still to write (a :class:`Deferred`, written by the executor: at once in a worker process, meanwhile on a
    writer thread in this one).

    A bad input never raises (it is a status=error row); an output that cannot be
    written raises :class:`SkinImgError` (the run stops: disk full, read-only folder).
    """
    item, params, out, want_maps, params_hash, roi, user_job = job
    return _guarded(item, params_hash, roi, _measure_one, item, params, out, want_maps, params_hash, roi, user_job)


def _discover(paths: Sequence[str | os.PathLike], exclude: Sequence[str] = ()) -> list[InputImage]:
    """:func:`skinimg.io.discover_images`; none found is a one-line error naming the inputs."""
    items = discover_images(paths, exclude=exclude)
    if not items:
        raise SkinImgError("no image files found", " ".join(os.fspath(p) for p in paths))
    return items


def analyze_paths(paths: Sequence[str | os.PathLike], out: str | os.PathLike, *, params: AnalyzeParams | None = None,
                  workers: int | None = None, maps=True, formats: Iterable[str] = ("csv",),
                  exclude: Sequence[str] = (), roi: RoiLookup | None = None, indices: Sequence = (),
                  index_timeout: float | None = 60.0) -> dict:
    """Analyze every image under ``paths`` and write the results under ``out``.

    Parameters
    ----------
    paths : sequence of path-like
        Files and folders (scanned recursively, :func:`skinimg.io.discover_images`).
    out : path-like
        Output folder (created).
    params : AnalyzeParams, optional
    workers : int, optional
        Worker processes (default: CPU count); 1 runs in this process.  Output is
        identical whatever the number of workers.
    maps : bool, str or sequence of str
        Which ``maps/<stem>_<index>.tif`` and ``.png`` to write for every ``ok`` image (:func:`map_names`:
        True = :data:`DEFAULT_MAPS`, ``"all"``, ``"none"``, index names).  With one worker they are written on
        a thread while the next photo is measured.
    formats : iterable of {"csv", "parquet"}
        ``indices.csv`` and ``results.sqlite`` are always written; ``"parquet"`` adds
        ``indices.parquet``.
    exclude : sequence of str
        Shell-style patterns of relative names to skip in folders (e.g. ``"truth/*"``),
        see :func:`skinimg.io.discover_images`.
    roi : RoiLookup, optional
        Where each photo's region of interest is found (default: ``<stem>.roi.json`` / ``.roi.png`` beside it,
        :class:`skinimg.batch.RoiLookup`).
    indices : sequence of :class:`~skinimg.indices.UserIndexSpec`
        User indices: their columns and ``index_errors`` follow :data:`ROW_COLUMNS`, map indices get maps.
        Imported here first (a broken one is a :class:`SkinImgError` before any work).  Not part of
        ``params_hash`` (they change no built-in number); listed in ``analyze.json``.
    index_timeout : float or None
        Seconds per user-index call (:class:`~skinimg.indices.UserIndexRunner`).

    Returns
    -------
    dict
        ``rows`` (sorted by image and region), ``n_images``, ``n_ok``, ``n_no_skin``, ``n_error`` (photos, by
        :func:`photo_status`), ``n_rows``, ``outputs`` (paths written), ``params_hash``, ``elapsed_s``,
        ``columns`` (of the tables), ``index_errors`` (per failing user index: ``n_failed``, ``first_image``,
        ``first_error``).

    Raises
    ------
    SkinImgError
        No image found, an input path missing, output not writable, Parquet
        requested without pyarrow, or a missing or unreadable skin model (checked before any image is processed).
    """
    t0 = time.perf_counter()
    params = params or AnalyzeParams()
    want_maps = map_names(maps)
    formats = set(formats)
    unknown = formats - {"csv", "parquet"}
    if unknown:
        raise SkinImgError(f"unknown output format(s) {', '.join(sorted(unknown))} (use csv or parquet)")
    if "parquet" in formats:
        require_parquet()
    if params.segment_method == "model":  # a missing or unreadable network: one line, before any work
        load_model()
    columns, types, user_job, user_labels = list(ROW_COLUMNS), dict(ROW_TYPES), None, []
    if indices:
        import uuid

        loaded = load_user_indices(list(indices), reserved=ROW_COLUMNS)  # a broken import fails before any work
        extra = user_columns([u.name for u in loaded])
        columns += extra + ["index_errors"]
        types.update({c: "REAL" for c in extra}, index_errors="TEXT")
        user_job = (tuple(indices), index_timeout, uuid.uuid4().hex)
        user_labels = [u.spec.label() for u in loaded]
    items = _discover(paths, exclude)
    roi = roi if roi is not None else RoiLookup()
    params_hash = params.hash()  # also loads the basis: a missing basis fails before any work
    out = make_output_folder(out)  # and removes the temporary files of a killed run
    jobs = [(item, params, os.fspath(out), want_maps, params_hash, roi.item(item), user_job) for item in items]
    per_photo = map_jobs(_run_one, jobs, workers)
    rows = [r for photo in per_photo for r in photo]
    for r in rows:
        log.info("%s%s: %s%s", r["image"], f" [{r['region']}]" if r["region"] else "", r["status"],
                 f" ({r['error']})" if r.get("error") else "")
    rows.sort(key=lambda r: (r["image"], r["region"]))
    index_errors: dict = {}
    for r in rows:
        for name, err in (r.pop("_index_errors", None) or {}).items():
            d = index_errors.setdefault(name, {"n_failed": 0, "first_image": r["image"], "first_error": err})
            d["n_failed"] += 1
    outputs = [export_csv(out / "indices.csv", rows, columns)]
    upsert_rows(out / SQLITE_NAME, TABLE, rows, columns, key=ROW_KEY, types=types, replace_by="image")
    outputs.append(out / SQLITE_NAME)
    if "parquet" in formats:
        outputs.append(export_parquet(out / "indices.parquet", rows, columns, types=types))
    statuses = [photo_status(photo)[0] for photo in per_photo]
    counts = {s: statuses.count(s) for s in STATUSES}
    basis = load_basis(params.indices.basis_path)
    meta = {
        "command": "analyze",
        "skinimg_version": __version__,
        "params": params.to_dict(),
        "params_hash": params_hash,
        "chromophore_basis": {
            "path": os.fspath(params.indices.basis_path) if params.indices.basis_path else "models/chromophore_basis.json",
            "sha256": basis_digest(params.indices.basis_path),
            "nonlinear_model": basis.model is not None,
            "provenance": basis.provenance,
        },
        "skin_network": network_record(params.segment_method),
        "inputs": [os.fspath(p) for p in paths],
        "roi": {"files": roi.setting(), "file": None if roi.roi_file is None else os.fspath(roi.roi_file),
                "photos_with_roi": sum(j[5].path is not None for j in jobs)},
        "n_images": len(per_photo),
        "n_rows": len(rows),
        "n_ok": counts["ok"],
        "n_no_skin": counts["no_skin"],
        "n_error": counts["error"],
        "maps": list(want_maps),
        "formats": sorted(formats | {"csv", "sqlite"}),
        "columns": list(columns),
    }
    if indices:
        meta.update(user_indices=user_labels, index_timeout_s=index_timeout, index_errors=index_errors)
    outputs.append(write_json(out / "analyze.json", meta))
    remove_stale_temp_files(out)  # of workers of a killed run that were still dying when this run started
    return {
        "rows": rows,
        "n_images": len(per_photo),
        "n_rows": len(rows),
        "n_ok": counts["ok"],
        "n_no_skin": counts["no_skin"],
        "n_error": counts["error"],
        "n_check": sum(r.get("mask_check") == "check" for r in rows),
        "outputs": [Path(p) for p in outputs],
        "params_hash": params_hash,
        "elapsed_s": time.perf_counter() - t0,
        "columns": list(columns),
        "index_errors": index_errors,
    }

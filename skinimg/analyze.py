"""``skinimg analyze``: per-image composition load -> (calibrate) -> segment -> indices -> row.

:func:`analyze_image` is a pure-ish function of one file (it reads the file and
returns a row and the maps; it writes nothing), so any executor can drive it.
:func:`analyze_paths` discovers images, runs them (optionally in worker
processes), writes the per-image maps and the tables, and returns a summary.

Outputs of :func:`analyze_paths` under ``out``:

``indices.csv``            one row per input image, sorted by ``image`` (:data:`ROW_COLUMNS`)
``results.sqlite``         the same rows, table ``indices``, upserted by ``image``
``indices.parquet``        the same rows, with ``formats`` containing ``"parquet"``
``analyze.json``           parameters, their hash, skinimg version, counts
``maps/<stem>_<index>.tif``  float32 map, NaN off skin (unless ``maps=False``)
``maps/<stem>_<index>.png``  heatmap over the dimmed photo with a colour bar
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np

from . import __version__
from .errors import SkinImgError
from .heatmap import COLORMAPS, heatmap_background, render_heatmap
from .indices import INDEX_NAMES, IndexParams, basis_digest, load_basis, measure, summary_columns
from .io import (DEFAULT_MAX_PIXELS, InputImage, _reason_text, discover_images, load_image, remove_stale_temp_files,
                 write_json, write_png, write_tiff)
from .store import SQLITE_NAME, export_csv, export_parquet, upsert_rows

__all__ = [
    "AnalyzeParams",
    "ROW_COLUMNS",
    "ROW_TYPES",
    "TABLE",
    "analyze_image",
    "analyze_paths",
    "map_paths",
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
#: The segmentation's flag (``AnalyzeParams.check`` or ``second_stage="both"``; empty otherwise), added last.
_FLAG = ["stage_agreement", "mask_check"]
#: Every column of ``indices.csv`` / table ``indices``, in order.
ROW_COLUMNS = tuple(_HEAD + summary_columns() + _TAIL + _FLAG)
#: SQL type of every column.
ROW_TYPES = {c: "REAL" for c in ROW_COLUMNS}
ROW_TYPES.update({c: "TEXT" for c in ("image", "status", "error", "segment_method", "chromophore_method",
                                      "chromophore_branch_check", "calibration",
                                      "ita_category", "params_hash", "skinimg_version", "mask_check")})
ROW_TYPES.update({c: "INTEGER" for c in ("width", "height", "bit_depth", "skin_pixels", "brown_spot_count")})


#: The values of ``skinimg.segment.STAGE2_MODELS`` (not imported: analyze runs without ``skinimg.segment``).
SECOND_STAGES = ("mlp", "net", "both")


@dataclass(frozen=True)
class AnalyzeParams:
    """Parameters of one analyze run (recorded in ``analyze.json``; hashed into ``params_hash``).

    Attributes
    ----------
    segment_method : {"model", "rules"}
        Passed to :func:`skinimg.segment.segment_skin`.
    max_pixels : int or None
        Images declaring more pixels are refused before decoding.
    indices : IndexParams
        Parameters of the indices and area measures.
    calibration : {"none", "auto", "chart"}
        Colour calibration between loading and segmentation
        (:func:`skinimg.calibrate.calibrate_image`): ``"none"`` (default) uses the
        photo as it is; ``"auto"`` corrects with a ColorChecker when one is in the
        frame, otherwise with ``white`` or the gray-world fallback on non-skin pixels;
        ``"chart"`` requires a chart (a photo without one is an error row).  The
        chart's own pixels are always removed from the skin mask, and the
        correction is saved as ``calibration/<stem>.json`` beside the results.
    white : (x, y, w, h) or None
        A white/gray reference region for ``calibration="auto"`` without a chart.
    heatmap_max_side : int
        Longer side of the PNG heatmaps (the TIFF maps are always full resolution).
    second_stage : {"mlp", "net", "both"}
        Second stage of the ``"model"`` segmentation (:attr:`skinimg.segment.SegmentParams.stage2_model`):
        ``"both"`` is the most accurate on held-out phantoms and 10-20 ms slower per 12 MP photo.  Hashed only
        when it is not the default, so the default's ``params_hash`` is unchanged.
    check : bool
        Also run the other second stage and fill the columns ``stage_agreement`` and ``mask_check``
        (``skinimg segment --check``; free with ``second_stage="both"``).  Does not change the mask or the
        numbers, so it is not hashed.
    """

    segment_method: str = "model"
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    indices: IndexParams = field(default_factory=IndexParams)
    calibration: str = "none"
    white: tuple | None = None
    heatmap_max_side: int = 2048
    second_stage: str = "mlp"
    check: bool = False

    def __post_init__(self):
        if self.calibration is None:
            object.__setattr__(self, "calibration", "none")
        if self.calibration not in ("none", "auto", "chart"):
            raise SkinImgError(f"unknown calibration {self.calibration!r} (use 'auto', 'chart' or 'none')")
        if self.white is not None:
            object.__setattr__(self, "white", tuple(int(v) for v in self.white))
        if self.segment_method not in ("model", "rules"):
            raise SkinImgError(f"unknown segmentation method {self.segment_method!r} (use 'model' or 'rules')")
        if self.second_stage not in SECOND_STAGES:
            raise SkinImgError(f"unknown second stage {self.second_stage!r} (use {', '.join(SECOND_STAGES)})")

    def to_dict(self) -> dict:
        return asdict(self)

    def hash(self) -> str:
        """Short SHA-256 of everything that changes the numbers (not output-only settings)."""
        d = self.to_dict()
        d.pop("heatmap_max_side")
        d.pop("max_pixels")
        d.pop("check")
        if d["second_stage"] == "mlp":  # the default: hashes as before the option existed
            d.pop("second_stage")
        h = hashlib.sha256(json.dumps(d, sort_keys=True).encode())
        h.update(self.indices.hash().encode())
        h.update(__version__.encode())
        return h.hexdigest()[:12]


def _segment_skin(rgb: np.ndarray, method: str, second_stage: str = "mlp", check: bool = False):
    """:func:`skinimg.segment.segment_skin`, imported lazily (with the default options, called with ``method``
    alone); also the segment stage of :mod:`skinimg.batch`."""
    from .segment import segment_skin

    if second_stage == "mlp" and not check:
        return segment_skin(rgb, method=method)
    from .segment import SegmentParams

    return segment_skin(rgb, method=method, params=SegmentParams(stage2_model=second_stage), check=check)


def _segment(rgb: np.ndarray, method: str, *, second_stage: str = "mlp", check: bool = False):
    """Skin segmentation of analyze, compare and calibrate's fallback (tests swap this one)."""
    return _segment_skin(rgb, method, second_stage, check)


def _calibrate(rgb: np.ndarray, params: AnalyzeParams):
    """Colour calibration between loading and segmentation: ``(rgb, Correction or None)``.

    The gray-world fallback must not look at skin, so the raw photo is segmented
    first and its skin mask is excluded from the fallback's statistics.
    """
    if params.calibration == "none":
        return rgb, None
    from .calibrate import calibrate_image

    raw_skin = np.asarray(_segment(rgb, params.segment_method, second_stage=params.second_stage).mask, dtype=bool)
    return calibrate_image(rgb, mode=params.calibration, white=params.white, skin_mask=raw_skin)


def _float_or_nan(v) -> float:
    return float("nan") if v is None else float(v)


def _flag_columns(seg) -> dict:
    """``stage_agreement`` and ``mask_check`` of a segmentation result
    (:attr:`skinimg.segment.SegmentResult.flag_columns`); both None for one without them."""
    return getattr(seg, "flag_columns", None) or {"stage_agreement": None, "mask_check": None}


def _empty_row(image: str, status: str, error: str | None, params_hash: str) -> dict:
    row = {c: float("nan") for c in ROW_COLUMNS}
    row.update(image=image, status=status, error=error, width=None, height=None, bit_depth=None, mask_check=None,
               skin_pixels=None, brown_spot_count=None, segment_method=None, chromophore_method=None,
               chromophore_branch_check=None,
               calibration=None,
               ita_category="unknown", params_hash=params_hash, skinimg_version=__version__)
    return row


def _as_item(item_or_path) -> InputImage:
    if isinstance(item_or_path, InputImage):
        return item_or_path
    p = Path(item_or_path)
    return InputImage(path=p, relpath=p.name)


def _analyze(item: InputImage, params: AnalyzeParams, want_maps: bool, params_hash: str, correction: list | None = None):
    """(row, maps or None, rgb or None); SkinImgError becomes a status=error row.

    ``correction``, when a list, receives the colour correction used (for the caller to save).
    """
    try:
        rgb, meta = load_image(item.path, max_pixels=params.max_pixels, label=item.relpath)
        rgb, corr = _calibrate(rgb, params)
        seg = _segment(rgb, params.segment_method, second_stage=params.second_stage,
                       check=params.check and params.segment_method == "model")
    except SkinImgError as exc:
        return _empty_row(item.relpath, "error", exc.reason, params_hash), None, None
    mask = np.asarray(seg.mask, dtype=bool)
    if corr is not None:
        from .calibrate import chart_mask

        corr.image = item.relpath
        if correction is not None:
            correction.append(corr)
        if corr.corners is not None:
            mask = mask & ~chart_mask(mask.shape, corr)
    return _measure_row(item, rgb, meta, mask, str(getattr(seg, "method", params.segment_method)), params,
                        want_maps, params_hash, corr=corr, seg=seg)


def _measure_row(item: InputImage, rgb: np.ndarray, meta, mask: np.ndarray, segment_method: str,
                 params: AnalyzeParams, want_maps: bool, params_hash: str, *, corr=None, seg=None):
    """The analyze step after loading and segmentation (shared with :mod:`skinimg.batch`).

    ``rgb`` is the (calibrated) photo, ``meta`` its :class:`~skinimg.io.ImageMeta`, ``mask``
    the (H, W) skin mask, ``corr`` the :class:`~skinimg.calibrate.Correction` applied (or None), ``seg`` the
    segmentation result (its :func:`_flag_columns` fill ``stage_agreement`` and ``mask_check``).
    Returns (row, maps or None, rgb or None) like :func:`_analyze`.
    """
    mask = np.asarray(mask, dtype=bool)
    n_skin = int(np.count_nonzero(mask))
    base = {
        "image": item.relpath,
        "width": meta.width,
        "height": meta.height,
        "bit_depth": meta.bit_depth,
        "skin_fraction": n_skin / float(mask.size),
        "skin_pixels": n_skin,
        "segment_method": segment_method,
        "calibration": corr.kind if corr is not None else "none",
        "calibration_delta_e": _float_or_nan(corr.delta_e_after.get("mean") if corr is not None else None),
        "params_hash": params_hash,
        "skinimg_version": __version__,
    }
    flags = _flag_columns(seg)
    base.update(stage_agreement=_float_or_nan(flags["stage_agreement"]), mask_check=flags["mask_check"])
    if n_skin < params.indices.min_skin_pixels:
        row = _empty_row(item.relpath, "no_skin", f"no skin found ({n_skin} skin pixels)", params_hash)
        row.update(base)
        return row, None, None
    try:
        stats, maps = measure(rgb, mask, params=params.indices, return_maps=want_maps)
    except SkinImgError as exc:
        return _empty_row(item.relpath, "error", exc.reason, params_hash), None, None
    row = {c: float("nan") for c in ROW_COLUMNS}
    row.update(base)
    row.update(stats)
    row["status"] = "ok"
    row["error"] = None
    return row, maps, (rgb if want_maps else None)


def analyze_image(item_or_path, *, params: AnalyzeParams | None = None, maps: bool = True) -> tuple[dict, dict | None]:
    """Analyze one photograph: load -> (calibrate) -> segment -> indices -> row.

    Parameters
    ----------
    item_or_path : InputImage or path-like
        An :class:`~skinimg.io.InputImage` (its ``relpath`` names the row) or a path
        (named by its file name).
    params : AnalyzeParams, optional
    maps : bool
        Also return the per-pixel maps.

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
    row, m, _ = _analyze(_as_item(item_or_path), params, maps, params.hash())
    return row, m


def map_paths(out: str | os.PathLike, stem_rel: str, name: str) -> tuple[Path, Path]:
    """``(tif, png)`` paths of one map: ``out/maps/<stem_rel>_<name>.tif`` / ``.png``."""
    base = Path(out) / "maps" / f"{stem_rel}_{name}"
    return base.with_suffix(".tif"), base.with_suffix(".png")


def _write_maps(out: Path, item: InputImage, rgb: np.ndarray, maps: dict, params: AnalyzeParams) -> None:
    # photo and skin mask resized once for the 8 heatmaps
    bg = heatmap_background(rgb, np.isfinite(maps[INDEX_NAMES[0]]), max_side=params.heatmap_max_side)
    for name in INDEX_NAMES:
        tif, png = map_paths(out, item.stem_rel, name)
        write_tiff(tif, maps[name])
        overlay = render_heatmap(rgb, maps[name], title=name, colormap=COLORMAPS.get(name, cv2.COLORMAP_VIRIDIS),
                                 max_side=params.heatmap_max_side, background=bg)
        write_png(png, overlay, compression=1)  # a viewing aid: speed over the last 20 % of size


class _OutputFailure(Exception):
    """An output could not be written (full disk, read-only folder): fatal for the run, not the image's fault."""


def _run_one(job) -> dict:
    """Worker: analyze one image, write its maps, return its row.

    A bad input never raises (it is a status=error row); an output that cannot be
    written raises :class:`SkinImgError` (the run stops: disk full, read-only folder).
    """
    item, params, out, want_maps, params_hash = job
    try:
        corrections: list = []
        row, maps, rgb = _analyze(item, params, want_maps, params_hash, corrections)
        if corrections:
            try:
                write_json(Path(out) / "calibration" / f"{item.stem_rel}.json", corrections[0].to_dict())
            except SkinImgError as exc:
                raise _OutputFailure(str(exc)) from None
        if want_maps and maps is not None:
            try:
                _write_maps(Path(out), item, rgb, maps, params)
            except SkinImgError as exc:
                if getattr(exc, "errno", None) == errno.ENAMETOOLONG:  # this image's name, not the disk
                    return _empty_row(item.relpath, "error", "cannot write its outputs: file name too long",
                                      params_hash)
                raise _OutputFailure(str(exc)) from None
        return row
    except _OutputFailure as exc:
        raise SkinImgError(str(exc)) from None
    except SkinImgError as exc:
        return _empty_row(item.relpath, "error", exc.reason, params_hash)
    except MemoryError:
        return _empty_row(item.relpath, "error", "out of memory (try --max-pixels or fewer --workers)", params_hash)
    except Exception as exc:  # a bug or an exotic file must not stop the batch; the row says what happened
        log.debug("internal error on %s", item.relpath, exc_info=True)
        reason = _reason_text(exc, item.path).replace(os.fspath(Path(item.path).parent), ".")
        return _empty_row(item.relpath, "error", f"internal error: {type(exc).__name__}: {reason}", params_hash)


def _init_worker() -> None:
    """Worker processes compute on one core each: OpenCV and the BLAS under NumPy single-threaded.

    Several threads per worker only oversubscribe the cores (measured on 2 cores, 12-MP photos:
    one worker with BLAS threads used 1.6 cores for the same 3.2 photos/s as with one thread,
    and 2 workers reached 1.30x instead of 1.66x the rate of one).
    """
    import cv2

    cv2.setNumThreads(1)
    limit_blas_threads(1)


def limit_blas_threads(n: int):
    """Limit the BLAS/OpenMP thread pools of this process (threadpoolctl, a scikit-learn
    dependency); returns the limiter (``restore_original_limits()``) or None."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - installed with scikit-learn
        return None
    return threadpool_limits(limits=n)


def analyze_paths(paths: Sequence[str | os.PathLike], out: str | os.PathLike, *, params: AnalyzeParams | None = None,
                  workers: int | None = None, maps: bool = True, formats: Iterable[str] = ("csv",),
                  exclude: Sequence[str] = ()) -> dict:
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
    maps : bool
        Write ``maps/<stem>_<index>.tif`` and ``.png`` for every ``ok`` image.
    formats : iterable of {"csv", "parquet"}
        ``indices.csv`` and ``results.sqlite`` are always written; ``"parquet"`` adds
        ``indices.parquet``.
    exclude : sequence of str
        Shell-style patterns of relative names to skip in folders (e.g. ``"truth/*"``),
        see :func:`skinimg.io.discover_images`.

    Returns
    -------
    dict
        ``rows`` (sorted by image), ``n_images``, ``n_ok``, ``n_no_skin``, ``n_error``,
        ``outputs`` (paths written), ``params_hash``, ``elapsed_s``.

    Raises
    ------
    SkinImgError
        No image found, an input path missing, output not writable, Parquet
        requested without pyarrow, or ``check`` with a colour model lacking one of its two
        second stages (checked before any image is processed).
    """
    t0 = time.perf_counter()
    params = params or AnalyzeParams()
    formats = set(formats)
    unknown = formats - {"csv", "parquet"}
    if unknown:
        raise SkinImgError(f"unknown output format(s) {', '.join(sorted(unknown))} (use csv or parquet)")
    if "parquet" in formats:
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise SkinImgError("Parquet export needs pyarrow: pip install 'skinimg[parquet]'") from None
    if params.check and params.segment_method == "model":  # a colour model without both second stages: one line
        from .segment import _require_both_stages, load_model

        _require_both_stages(load_model(), True)
    items = discover_images(paths, exclude=exclude)
    if not items:
        raise SkinImgError("no image files found", " ".join(os.fspath(p) for p in paths))
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SkinImgError(f"cannot create output folder ({exc.strerror or exc})", os.fspath(out)) from None
    params_hash = params.hash()  # also loads the basis: a missing basis fails before any work
    n_stale = remove_stale_temp_files(out)  # left by a killed run; completed outputs are never partial
    if n_stale:
        log.info("removed %d temporary file(s) left by an interrupted run", n_stale)
    jobs = [(item, params, os.fspath(out), maps, params_hash) for item in items]
    n_workers = min(len(jobs), workers or os.cpu_count() or 1)
    if n_workers <= 1:
        blas = limit_blas_threads(1)
        try:
            rows = [_run_one(j) for j in jobs]
        finally:
            if blas is not None:
                blas.restore_original_limits()
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx, initializer=_init_worker) as ex:
            try:
                rows = list(ex.map(_run_one, jobs, chunksize=1))
            except BaseException:  # output not writable (or Ctrl-C): do not process the remaining images
                ex.shutdown(wait=True, cancel_futures=True)
                raise
    for r in rows:
        log.info("%s: %s%s", r["image"], r["status"], f" ({r['error']})" if r.get("error") else "")
    rows.sort(key=lambda r: r["image"])
    outputs = [export_csv(out / "indices.csv", rows, ROW_COLUMNS)]
    upsert_rows(out / SQLITE_NAME, TABLE, rows, ROW_COLUMNS, key="image", types=ROW_TYPES)
    outputs.append(out / SQLITE_NAME)
    if "parquet" in formats:
        outputs.append(export_parquet(out / "indices.parquet", rows, ROW_COLUMNS, types=ROW_TYPES))
    counts = {s: sum(r["status"] == s for r in rows) for s in STATUSES}
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
        "inputs": [os.fspath(p) for p in paths],
        "n_images": len(rows),
        "n_ok": counts["ok"],
        "n_no_skin": counts["no_skin"],
        "n_error": counts["error"],
        "maps": bool(maps),
        "formats": sorted(formats | {"csv", "sqlite"}),
        "columns": list(ROW_COLUMNS),
    }
    outputs.append(write_json(out / "analyze.json", meta))
    remove_stale_temp_files(out)  # of workers of a killed run that were still dying when this run started
    return {
        "rows": rows,
        "n_images": len(rows),
        "n_ok": counts["ok"],
        "n_no_skin": counts["no_skin"],
        "n_error": counts["error"],
        "n_check": sum(r.get("mask_check") == "check" for r in rows),
        "outputs": [Path(p) for p in outputs],
        "params_hash": params_hash,
        "elapsed_s": time.perf_counter() - t0,
    }

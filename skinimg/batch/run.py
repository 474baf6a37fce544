"""Batch engine of ``skinimg run``: a pipeline over many photos, parallel and resumable.

:func:`run_pipeline` streams the photos found under the inputs through the per-image
stages of a :class:`~skinimg.batch.Pipeline` (calibrate -> segment -> analyze, the
same library functions as ``skinimg calibrate`` / ``segment`` / ``analyze``), on a local
process pool or on a ``dask.distributed`` cluster, then runs the per-batch stages
(track, report, regress) once.

Design
------
Streaming
    Photos are discovered as paths (no pixels), hashed and submitted one by one with at
    most ``2 x slots`` jobs in flight; a worker returns only the rows of its photo, so
    the parent's memory does not grow with the batch.
Resumable
    Each photo's result is keyed by the SHA-256 of the file's bytes and :attr:`Plan.job_hash`
    (every option of the per-image stages, the analyze parameter hash, the chromophore
    basis digest and the skinimg version).  Table ``jobs`` of ``results.sqlite`` records the
    key of every finished photo; a rerun skips a photo whose key is unchanged and whose
    status is ``ok`` or ``no_skin`` (an ``error`` is retried).  A changed photo or a changed
    option is recomputed and its rows replaced.
Crash safe
    The parent is the only writer of ``results.sqlite`` (WAL journal) and commits one
    transaction per photo (its row in every stage table and its ``jobs`` record), after
    the worker has written the photo's files (atomic renames).  After ``kill -9`` at any
    moment, a rerun removes the temporary files of the killed processes
    (:func:`skinimg.io.remove_stale_temp_files`), redoes the uncommitted photos and gives
    the same tables, with no partial file and no duplicate row (rows are keyed by image).
Exports
    ``indices.csv`` / ``calibrate.csv`` / ``segment.csv`` (and ``.parquet``) are written from SQLite at the end,
    sorted by image, for the photos of this run's inputs (rows of photos no longer in the inputs are deleted).

Outputs under ``out``
---------------------
``results.sqlite``                tables ``indices``, ``calibrate``, ``segment`` (per stage) and ``jobs``
``indices.csv``                   analyze rows (:data:`skinimg.batch.ROW_COLUMNS`)
``calibrate.csv``, ``segment.csv``  calibrate rows (:data:`skinimg.batch.CSV_COLUMNS`); segment rows
``*.parquet``                     the same tables with ``formats = ["csv", "parquet"]``
``maps/``, ``masks/``, ``calibration/``, ``calibrated/``   per-image files of the stages
``report/``                       the HTML report (report stage)
``run.json``                      the run manifest (:func:`run_pipeline`)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .. import __version__
from ..calibrate import CalibrationParams, calibrate_image, chart_mask, load_reference
from ..errors import SkinImgError
from ..indices import IndexParams, basis_digest
from ..io import (InputImage, calibrated_path, calibration_path, load_image, make_output_folder, mask_path,
                  reduce_image, reduce_mask, remove_stale_temp_files, safe_output_path, write_json, write_png)
from ..report import ReportParams, build_report, parse_tolerance, regress
from ..session import CompareParams
from .analyze import (ROW_COLUMNS, ROW_KEY, ROW_TYPES, AnalyzeParams, _discover, _empty_row, _internal_error,
                      _measure_rows, _OutputFailure, _write, map_names, photo_status, segment_photo, write_maps)
from .calibrate import CSV_COLUMNS, CSV_TEXT_COLUMNS, correction_row
from .executors import Deferred, finish, make_executor, result_of
from .pipeline import Pipeline, check_available, load_pipeline, work_pixels_of
from .roi import RoiLookup, RoiRef, roi_columns
from .segment import SEGMENT_COLUMNS, roi_union
from .store import SQLITE_NAME, ResultStore, export_csv, export_parquet, require_parquet
from .tracking import track

__all__ = ["Plan", "make_plan", "process_image", "run_pipeline", "file_sha256", "JOB_COLUMNS", "TABLES"]

log = logging.getLogger("skinimg.batch")

#: Columns of table ``jobs``: one record per finished photo (the resume key, with the photo's ROI file).
JOB_COLUMNS = ("image", "input_sha256", "job_hash", "status", "error", "roi_key")


#: stage -> (SQLite table, export file stem, columns, SQL types, key)
def _table_spec(stage: str):
    if stage == "analyze":
        return "indices", "indices", ROW_COLUMNS, ROW_TYPES, ROW_KEY
    if stage == "calibrate":
        return "calibrate", "calibrate", CSV_COLUMNS, {c: ("TEXT" if c in CSV_TEXT_COLUMNS else "REAL")
                                                       for c in CSV_COLUMNS}, "image"
    if stage == "segment":
        return "segment", "segment", SEGMENT_COLUMNS, {"image": "TEXT", "status": "TEXT", "error": "TEXT",
                                                       "skin_fraction": "REAL", "method": "TEXT",
                                                       "stage_agreement": "REAL", "mask_check": "TEXT", "roi": "TEXT",
                                                       "roi_source": "TEXT", "roi_pixels": "INTEGER"}, "image"
    raise KeyError(stage)


TABLES = ("calibrate", "segment", "analyze")
_JOB_TYPES = {c: "TEXT" for c in JOB_COLUMNS}


# ----------------------------------------------------------------------------- plan (what a worker needs)

@dataclass(frozen=True)
class Plan:
    """Everything a worker needs to process one photo (picklable, no open files).

    Attributes
    ----------
    stages : tuple of str
        Per-image stages in order (subset of calibrate, segment, analyze).
    options : dict stage -> dict
        Resolved options of those stages (:meth:`Pipeline.resolved`).
    analyze : AnalyzeParams
        Parameters of the analyze step (segment method, max pixels, index parameters).
    row_hash : str
        ``params_hash`` column of the indices rows: :meth:`AnalyzeParams.hash`, combined
        with the calibrate options when the pipeline calibrates.
    job_hash : str
        Hash of every per-image option (the resume key, with the input's SHA-256).
    calibration : CalibrationParams or None
        The calibrate stage's settings (its ``reference`` file read once, here).
    """

    stages: tuple
    options: dict
    analyze: object
    row_hash: str
    job_hash: str
    calibration: object = None

    @property
    def max_pixels(self) -> int | None:
        return self.analyze.max_pixels

    def to_dict(self) -> dict:
        return {"stages": list(self.stages), "options": self.options, "analyze": self.analyze.to_dict(),
                "row_hash": self.row_hash, "job_hash": self.job_hash}


def make_plan(pipeline: Pipeline) -> Plan:
    """The worker plan of a pipeline's per-image stages (loads the chromophore basis once)."""
    stages = pipeline.image_stages()
    opts = {s: dict(pipeline.options[s]) for s in stages}
    a = pipeline.options.get("analyze", {})
    seg_method = opts["segment"]["method"] if "segment" in opts else a.get("method", "model")
    second = opts["segment"]["second_stage"] if "segment" in opts else a.get("second_stage", "mlp")
    check = opts["segment"]["check"] if "segment" in opts else a.get("check", False)
    aparams = AnalyzeParams(segment_method=seg_method, max_pixels=pipeline.max_pixels, second_stage=second,
                            check=bool(check), work_pixels=work_pixels_of(a),
                            indices=IndexParams(chromophore_method=a.get("chromophores", "basis"),
                                                branch=a.get("branch", "auto")))
    ahash = aparams.hash()
    row_hash = ahash
    cparams = None
    if "calibrate" in opts:
        c = opts["calibrate"]
        cparams = CalibrationParams(chart=c["chart"], method=c["method"], fallback=c["fallback"])
        ref_file = c.pop("reference", "")  # hashed by its values (below), not by its file name
        if ref_file:
            values, source = load_reference(ref_file, label=ref_file)
            cparams = replace(cparams, reference=tuple(map(tuple, values)), reference_source=source)
            c["reference_values"] = np.round(values, 8).tolist()
        numeric = {k: v for k, v in c.items() if k != "write_images"}
        row_hash = hashlib.sha256(json.dumps([ahash, numeric], sort_keys=True).encode()).hexdigest()[:12]
    key = {"stages": list(stages), "options": opts, "analyze": aparams.to_dict(), "analyze_hash": ahash,
           "basis": basis_digest(aparams.indices.basis_path) if "analyze" in opts else None,
           "version": __version__}
    job_hash = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Plan(stages=stages, options=opts, analyze=aparams, row_hash=row_hash, job_hash=job_hash, calibration=cparams)


def file_sha256(path: str | os.PathLike, *, chunk: int = 1 << 20) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            b = fh.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()

def _error_row(stage: str, image: str, reason: str, plan: Plan, roi: RoiRef | None = None) -> dict:
    row = {c: None for c in _table_spec(stage)[2]}
    if stage == "analyze":
        row = _empty_row(image, "error", reason, plan.row_hash)
    row.update(image=image, status="error", error=reason)
    row.update({k: v for k, v in roi_columns(roi).items() if k in row})
    return row


def _calibrate_stage(rgb: np.ndarray, item: InputImage, plan: Plan, out: Path, tables: dict):
    """The calibrate stage: (corrected photo, correction, chart pixels to exclude from skin or None)."""
    o = plan.options["calibrate"]
    cparams = plan.calibration
    raw_skin = None
    if not o["require_chart"] and o["fallback"] != "none":  # gray world / white patch must not look at skin
        raw_skin = np.asarray(segment_photo(rgb, plan.analyze).mask, dtype=bool)
    rgb, corr = calibrate_image(rgb, mode="auto", require_chart=o["require_chart"], params=cparams,
                                skin_mask=raw_skin)
    corr.image = item.relpath
    corr.image_size = [int(rgb.shape[1]), int(rgb.shape[0])]
    _write(write_json, calibration_path(out, item.stem_rel), corr.to_dict())
    if o["write_images"]:
        _write(write_png, calibrated_path(out, item.stem_rel), rgb)
    row = {k: None for k in CSV_COLUMNS}
    row.update(image=item.relpath, **correction_row(corr))
    tables["calibrate"] = row
    exclude = chart_mask(rgb.shape, corr) if o["exclude_chart"] and corr.kind == "chart" else None
    return rgb, corr, exclude


def _process(item: InputImage, plan: Plan, out: Path, tables: dict, roi: RoiRef | None, later: list) -> None:
    """The per-image stages; the maps' writing (which sets ``tables["analyze"]``) is appended to ``later``."""
    calibrating = "calibrate" in plan.stages  # the chart is looked for in the full photo, then it is reduced
    rgb, meta = load_image(item.path, max_pixels=plan.max_pixels, label=item.relpath,
                           work_pixels=None if calibrating else plan.analyze.work_pixels)
    exclude = corr = seg = mask = None
    if calibrating:
        rgb, corr, exclude = _calibrate_stage(rgb, item, plan, out, tables)
        rgb = reduce_image(rgb, plan.analyze.work_pixels)
        exclude = None if exclude is None else reduce_mask(exclude, rgb.shape[:2])
    if "segment" in plan.stages or "analyze" in plan.stages:  # the segment stage's options are plan.analyze's
        seg = segment_photo(rgb, plan.analyze, check=plan.analyze.check)
        mask = np.asarray(seg.mask, dtype=bool)
        if exclude is not None:
            mask &= ~exclude
    if "segment" in plan.stages:  # the skin inside the ROI (all of its regions), as `skinimg segment` writes it
        photo = meta.photo_shape
        union, roi_cols = roi_union(roi, mask.shape, photo)
        smask = mask if union is None else mask & union
        if plan.options["segment"]["write_masks"]:  # at the photo's own size, like `skinimg segment`
            _write(write_png, mask_path(out, item.stem_rel), reduce_mask(smask, photo).astype(np.uint8) * 255)
        n = int(np.count_nonzero(smask))
        status = "ok" if n >= plan.analyze.indices.min_skin_pixels else "no_skin"
        tables["segment"] = {"image": item.relpath, "status": status,
                             "error": None if status == "ok" else f"no skin found ({n} skin pixels)",
                             "skin_fraction": n / float(mask.size), "method": seg.method, **seg.flag_columns,
                             **roi_cols}
    if "analyze" in plan.stages:
        want_maps = map_names(plan.options["analyze"]["maps"])
        rows, maps, rgb_out = _measure_rows(item, rgb, meta, mask, seg.method, plan.analyze, want_maps, plan.row_hash,
                                            corr=corr, seg=seg, roi=roi)
        if want_maps and maps is not None:
            def write():
                _write(write_maps, out, item.stem_rel, rgb_out, maps, plan.analyze)
                tables["analyze"] = rows
            later.append(write)
        else:
            tables["analyze"] = rows


def process_image(item: InputImage, plan: Plan, out: str | os.PathLike, roi: RoiRef | None = None) -> dict:
    """Run the per-image stages of ``plan`` on one photo and write its files under ``out``.

    Parameters
    ----------
    item : InputImage
        The photo (``relpath`` names its rows, ``stem_rel`` its files).
    plan : Plan
    out : path-like
        Output root (per-image files: ``calibration/``, ``calibrated/``, ``masks/``, ``maps/``).
    roi : RoiRef, optional
        The photo's region of interest (:meth:`skinimg.batch.RoiLookup.resolve`).

    Returns
    -------
    dict
        ``image``; ``status`` ``"ok"``, ``"no_skin"`` or ``"error"``; ``error`` (reason or None);
        ``tables``: stage -> row (``analyze``: a list of rows, one per ROI region besides the whole skin; every
        per-image stage of the plan has rows; after a failure the remaining stages get ``status=error`` rows
        with the reason).  A bad photo never raises.

    Raises
    ------
    SkinImgError
        When an output cannot be written (full disk, read-only folder): the run stops.
    """
    return finish(_process_job(item, plan, Path(out), roi))


def _guard(item: InputImage, fn) -> str | None:
    """Run ``fn()``: None, or the reason of this photo's failure; an output that cannot be written stops the run."""
    try:
        fn()
    except _OutputFailure as exc:
        raise SkinImgError(str(exc)) from None
    except SkinImgError as exc:
        return exc.reason
    except MemoryError:
        return "out of memory (try a smaller pipeline.max_pixels or fewer --workers)"
    except Exception as exc:  # a bug or an exotic file must not stop the batch; the row says what happened
        return _internal_error(item, exc)
    return None


def _result(item: InputImage, plan: Plan, tables: dict, reason: str | None, roi: RoiRef | None) -> dict:
    if reason is not None:
        for s in plan.stages:
            if s not in tables:
                tables[s] = _error_row(s, item.relpath, reason, plan, roi)
    if isinstance(tables.get("analyze"), dict):
        tables["analyze"] = [tables["analyze"]]
    status, error = photo_status([r for s in plan.stages for r in _rows(tables[s])])
    return {"image": item.relpath, "status": status, "error": error, "tables": tables}


def _rows(rows) -> list:
    return rows if isinstance(rows, list) else [rows]


def _process_job(item: InputImage, plan: Plan, out: Path, roi: RoiRef | None) -> dict | Deferred:
    """:func:`process_image`, with the maps still to write (a :class:`~skinimg.batch.executors.Deferred`)."""
    tables: dict[str, dict] = {}
    later: list = []
    reason = _guard(item, lambda: _process(item, plan, out, tables, roi, later))
    if reason is None and later:
        return Deferred(lambda: _result(item, plan, tables, _guard(item, later[0]), roi))
    return _result(item, plan, tables, reason, roi)


def _run_job(job) -> dict | Deferred:
    item, plan, out, roi = job
    return _process_job(item, plan, Path(out), roi)


# ----------------------------------------------------------------------------- the run

def _versions() -> dict:
    from importlib import metadata

    out = {"python": platform.python_version(), "platform": platform.platform(terse=True)}
    for dist in ("numpy", "opencv-python-headless", "opencv-python", "scikit-image", "scikit-learn", "pillow",
                 "click", "pyarrow", "matplotlib", "dask", "distributed", "tomli"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _outcome(res: dict) -> str:
    return "failed" if res["status"] != "ok" else "processed"

def _check_batch_stages(pipeline: Pipeline) -> None:
    """Problems a batch stage would hit at the end, found before any work."""
    if "regress" in pipeline.stages:
        exp = Path(pipeline.options["regress"]["expected"])
        if not exp.is_file():
            raise SkinImgError("regress: expected file not found (regress.expected is relative to the current "
                               "folder; create it with `skinimg regress --update`)", os.fspath(exp))
    if "report" in pipeline.stages:
        safe_output_path(".", pipeline.options["report"]["out"], what="report.out")
        if pipeline.options["report"]["salt"] is not None and not pipeline.options["report"]["anonymize"]:
            raise SkinImgError("report.salt only makes sense with report.anonymize = true", pipeline.source)
    if "parquet" in pipeline.formats:
        require_parquet(pipeline.source)


def _run_batch_stage(stage: str, pipeline: Pipeline, inputs: Sequence, out: Path,
                     rois: RoiLookup | None = None) -> dict:
    o = pipeline.options[stage]
    root = Path(inputs[0]) if len(inputs) == 1 else None
    if root is not None and not root.is_dir():
        root = root.parent
    if stage == "track":
        if root is None:
            raise SkinImgError("stage 'track' needs one INPUT folder (the study root)")
        if o["root"]:
            root = root / o["root"]
            if rois is not None and rois.roi_dir is not None:  # the mirrored folder mirrors INPUT, not the root
                rois = RoiLookup(rois.files, rois.roi_dir / o["root"], rois.roi_file, rois.propagated)
        manifest = o["manifest"]
        if manifest and not Path(manifest).is_absolute():
            manifest = root / manifest
        # the pairs are segmented as the per-image stages segment (method)
        seg = pipeline.options.get("segment") if "segment" in pipeline.stages else None
        ana = pipeline.options.get("analyze", {})
        params = CompareParams(
            segment_method=(seg or ana).get("method", "model"),
            second_stage=(seg or ana).get("second_stage", "mlp"), registration_mode=o["registration"],
            work_pixels=work_pixels_of(ana))  # analyze's working size
        res = track(root, out, manifest=manifest or None, params=params, rois=rois,
                    propagate_roi=pipeline.roi["propagate"])
        return {"stage": "track", "n_pairs": res["n_pairs"], "n_failed": res["n_failed"],
                "n_unaligned": res["n_unaligned"], "failed": [{"pair": p, "error": e} for p, e in res["failed"]],
                "notes": list(res["notes"]), "warnings": res["warnings"],
                "rois_propagated": sum(r.path is not None for r in res["rois"].values()), "rois": res["rois"]}
    if stage == "report":
        dest = safe_output_path(out, o["out"], what="report.out")
        res = build_report(out, dest, params=ReportParams(title=o["title"], anonymize=o["anonymize"], salt=o["salt"],
                                                          images=None if root is None else os.fspath(root)))
        return {"stage": "report", "index": os.fspath(res["index"]), "warnings": len(res["warnings"])}
    if stage == "regress":
        tol = dict(parse_tolerance(f"{k}={v}") for k, v in o["tolerances"].items())
        res = regress(o["expected"], out, tolerances=tol)
        return {"stage": "regress", "ok": bool(res.ok), "drifts": len(res.drifts), "result": res}
    raise KeyError(stage)  # pragma: no cover


def run_pipeline(pipeline: Pipeline | str | os.PathLike, inputs: Sequence[str | os.PathLike] | str | os.PathLike,
                 out: str | os.PathLike, *, workers: int | None = None, executor: str = "local",
                 scheduler: str | None = None, progress: Callable[[dict], None] | None = None) -> dict:
    """Run a pipeline over every photo under ``inputs``, resumably, writing under ``out``.

    Parameters
    ----------
    pipeline : Pipeline, or a path / shipped name (:func:`skinimg.batch.load_pipeline`)
    inputs : path-like or sequence of path-like
        Files and folders (scanned recursively, :func:`skinimg.io.discover_images`).
    out : path-like
        Output folder (created); an earlier run's results there are reused.
    workers : int, optional
        Local executor: worker processes (default: CPU count; 1 runs in this process).
        Dask without ``scheduler``: workers of the LocalCluster.  Ignored with a scheduler.
    executor : {"local", "dask"}
    scheduler : str, optional
        Address of a running dask scheduler (``tcp://host:8786``); workers must see the
        input and output folders at the same paths.
    progress : callable, optional
        Called with a dict per event: ``{"event": "start", "total": n}``, then
        ``{"event": "image", "image", "outcome": "processed"|"skipped"|"failed", "status",
        "error"}`` per photo, ``{"event": "stage", "stage": name}`` before a batch stage.

    Notes
    -----
    Each photo is measured in its region of interest (``pipeline.roi``, :class:`skinimg.batch.RoiLookup`).
    With ``roi.propagate`` the track stage runs *first*: it carries each series' baseline ROI to the later
    sessions (``rois/<patient>/<site>/<session>.roi.json``), which the per-image stages then measure in.

    Returns
    -------
    dict
        ``n_images``; ``processed`` / ``skipped`` (counts of this run); ``failed``: list of
        ``(image, status, reason)`` of every photo whose result is ``error`` or ``no_skin``
        (computed now or earlier); ``stages``: results of the batch stages (``regress``
        has ``ok`` and the :class:`~skinimg.report.RegressResult`); ``outputs``;
        ``run_json``; ``elapsed_s``.

    Raises
    ------
    SkinImgError
        Invalid pipeline, a stage not available, no photo found, an output not writable,
        a batch stage failing (checked as early as possible, before any photo is processed).
    """
    t0 = time.perf_counter()
    started = _now()
    if not isinstance(pipeline, Pipeline):
        pipeline = load_pipeline(pipeline)
    check_available(pipeline)
    _check_batch_stages(pipeline)
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    inputs = list(inputs)
    items = _discover(inputs, pipeline.exclude)
    out = make_output_folder(out)  # and removes the temporary files of a killed run
    plan = make_plan(pipeline)
    emit = progress or (lambda ev: None)
    specs = {s: _table_spec(s) for s in plan.stages}
    hashes: dict[str, str | None] = {}
    processed = skipped = 0
    rois = RoiLookup.parse(pipeline.roi["files"])
    stage_results: dict[str, dict] = {}
    if pipeline.roi["propagate"]:  # the per-image stages measure inside the ROIs that track propagates
        emit({"event": "stage", "stage": "track"})
        stage_results["track"] = _run_batch_stage("track", pipeline, inputs, out, rois)
        rois = RoiLookup(rois.files, rois.roi_dir, None, stage_results["track"].pop("rois"))
    refs = {item.relpath: rois.item(item) for item in items}
    store = ResultStore(out / SQLITE_NAME)
    try:
        done = {r["image"]: (r["input_sha256"], r["job_hash"], r.get("roi_key")) for r in store.rows("jobs")
                if r["status"] in ("ok", "no_skin")}

        def jobs():
            nonlocal skipped
            for item in items:
                try:
                    sha = file_sha256(item.path)
                except OSError:
                    sha = None  # the worker reports why it cannot be read
                hashes[item.relpath] = sha
                if sha is not None and done.get(item.relpath) == (sha, plan.job_hash, refs[item.relpath].key()):
                    skipped += 1
                    emit({"event": "image", "image": item.relpath, "outcome": "skipped", "status": "done",
                          "error": None})
                    continue
                yield item

        def commit(res: dict) -> None:
            nonlocal processed
            with store.transaction():
                for s, (table, _, cols, types, key) in specs.items():
                    store.upsert(table, _rows(res["tables"][s]), cols, types=types, key=key, replace_by="image")
                store.upsert("jobs", [{"image": res["image"], "input_sha256": hashes.get(res["image"]),
                                       "job_hash": plan.job_hash, "status": res["status"], "error": res["error"],
                                       "roi_key": refs[res["image"]].key()}],
                             JOB_COLUMNS, types=_JOB_TYPES)
            processed += 1
            emit({"event": "image", "image": res["image"], "outcome": _outcome(res), "status": res["status"],
                  "error": res["error"]})

        emit({"event": "start", "total": len(items)})
        ex = make_executor(executor, workers, scheduler, len(items))
        cancel = True
        try:
            limit = getattr(ex, "window", 2 * ex.slots)  # jobs in flight: memory stays flat
            pending: set = set()
            for item in jobs():
                while len(pending) >= limit:
                    finished, pending = ex.wait_any(pending)
                    for f in finished:
                        commit(result_of(f))
                pending.add(ex.submit(_run_job, (item, plan, os.fspath(out), refs[item.relpath])))
            while pending:
                finished, pending = ex.wait_any(pending)
                for f in finished:
                    commit(result_of(f))
            cancel = False
        finally:
            ex.close(cancel=cancel)

        current = {i.relpath for i in items}
        with store.transaction():
            for table, *_ in specs.values():
                store.delete_except(table, "image", current)
            store.delete_except("jobs", "image", current)
        outputs = [out / SQLITE_NAME]
        flagged: set[str] = set()
        for s, (table, stem, cols, types, _) in specs.items():
            rows = sorted(store.rows(table), key=lambda r: (r["image"], r.get("region") or ""))
            flagged.update(r["image"] for r in rows if r.get("mask_check") == "check")
            outputs.append(export_csv(out / f"{stem}.csv", rows, cols))
            if "parquet" in pipeline.formats:
                outputs.append(export_parquet(out / f"{stem}.parquet", rows, cols, types=types))
        job_rows = store.rows("jobs")
    finally:
        store.close()
    failed = [(r["image"], r["status"], r["error"]) for r in job_rows if r["status"] != "ok"]

    error = None
    try:
        for s in pipeline.batch_stages():
            if s in stage_results:  # track, run first to propagate the ROIs
                continue
            emit({"event": "stage", "stage": s})
            stage_results[s] = _run_batch_stage(s, pipeline, inputs, out, rois)
            stage_results[s].pop("rois", None)
    except SkinImgError as exc:
        error = str(exc)
        raise
    finally:
        manifest = {
            "command": "run",
            "skinimg_version": __version__,
            "dependencies": _versions(),
            "pipeline": {"name": pipeline.name, "source": pipeline.source, "sha256": pipeline.sha256,
                         "text": pipeline.text, "resolved": pipeline.resolved()},
            "parameters": {
                "plan": plan.to_dict(),
                "params_hash": plan.row_hash,
                "executor": executor,
                "workers": workers,
                "scheduler": scheduler,
            },
            "inputs": [os.fspath(p) for p in inputs],
            "input_hashes": [{"image": i.relpath, "sha256": hashes.get(i.relpath)} for i in items],
            "start_time": started,
            "end_time": _now(),
            "elapsed_s": round(time.perf_counter() - t0, 3),
            "counts": {"images": len(items), "processed": processed, "skipped": skipped, "failed": len(failed),
                       "mask_check": len(flagged)},
            "failed": [{"image": i, "status": s, "error": e} for i, s, e in failed],
            "mask_check": sorted(flagged),
            "stages": {k: {kk: vv for kk, vv in v.items() if kk != "result" or k != "regress"}
                       for k, v in stage_results.items()},
            "error": error,
        }
        run_json = write_json(out / "run.json", manifest)
        remove_stale_temp_files(out)  # of workers of a killed run that were still dying when this run started
    outputs.append(run_json)
    return {
        "n_images": len(items),
        "processed": processed,
        "skipped": skipped,
        "failed": failed,
        "mask_check": sorted(flagged),
        "stages": stage_results,
        "outputs": outputs,
        "run_json": run_json,
        "plan": plan,
        "elapsed_s": time.perf_counter() - t0,
    }

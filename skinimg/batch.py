"""Batch engine of ``skinimg run``: a pipeline over many photos, parallel and resumable.

:func:`run_pipeline` streams the photos found under the inputs through the per-image
stages of a :class:`~skinimg.pipeline.Pipeline` (calibrate -> segment -> analyze, the
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
    ``indices.csv`` / ``calibrate.csv`` / ``segment.csv`` (and ``.parquet``) are written
    from SQLite at the end, sorted by image, for the photos of this run's inputs (rows of
    photos no longer in the inputs are deleted).

Outputs under ``out``
---------------------
``results.sqlite``                tables ``indices``, ``calibrate``, ``segment`` (per stage) and ``jobs``
``indices.csv``                   analyze rows (:data:`skinimg.analyze.ROW_COLUMNS`)
``calibrate.csv``                 calibrate rows (:data:`skinimg.calibrate.CSV_COLUMNS`)
``segment.csv``                   ``image, status, error, skin_fraction, method, stage_agreement, mask_check``
``*.parquet``                     the same tables with ``formats = ["csv", "parquet"]``
``maps/``, ``masks/``, ``calibration/``, ``calibrated/``   per-image files of the stages
``report/``                       the HTML report (report stage)
``run.json``                      the run manifest (:func:`run_pipeline`)
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import multiprocessing
import os
import platform
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor
from concurrent.futures import wait as _cf_wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from . import __version__
from . import analyze as _analyze
from .errors import SkinImgError
from .io import (InputImage, _reason_text, discover_images, remove_stale_temp_files, safe_output_path, write_json,
                 write_png)
from .pipeline import Pipeline, check_available, load_pipeline
from .store import SQLITE_NAME, ResultStore, export_csv, export_parquet

__all__ = ["Plan", "make_plan", "process_image", "run_pipeline", "file_sha256", "JOB_COLUMNS", "SEGMENT_COLUMNS",
           "TABLES"]

log = logging.getLogger("skinimg.batch")

#: Columns of table ``jobs``: one record per finished photo (the resume key).
JOB_COLUMNS = ("image", "input_sha256", "job_hash", "status", "error")
#: Columns of table ``segment`` / ``segment.csv``.
SEGMENT_COLUMNS = ("image", "status", "error", "skin_fraction", "method", "stage_agreement", "mask_check")


def _calibrate_columns():
    from .calibrate import CSV_COLUMNS

    return CSV_COLUMNS


#: stage -> (SQLite table, export file stem, columns, SQL types)
def _table_spec(stage: str):
    if stage == "analyze":
        return "indices", "indices", _analyze.ROW_COLUMNS, _analyze.ROW_TYPES
    if stage == "calibrate":
        cols = _calibrate_columns()
        return "calibrate", "calibrate", cols, {c: ("TEXT" if c in ("image", "status", "error", "kind", "method")
                                                    else "REAL") for c in cols}
    if stage == "segment":
        return "segment", "segment", SEGMENT_COLUMNS, {"image": "TEXT", "status": "TEXT", "error": "TEXT",
                                                       "skin_fraction": "REAL", "method": "TEXT",
                                                       "stage_agreement": "REAL", "mask_check": "TEXT"}
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
    """

    stages: tuple
    options: dict
    analyze: object
    row_hash: str
    job_hash: str

    @property
    def max_pixels(self) -> int | None:
        return self.analyze.max_pixels

    def to_dict(self) -> dict:
        return {"stages": list(self.stages), "options": self.options, "analyze": self.analyze.to_dict(),
                "row_hash": self.row_hash, "job_hash": self.job_hash}


def make_plan(pipeline: Pipeline) -> Plan:
    """The worker plan of a pipeline's per-image stages (loads the chromophore basis once)."""
    from .indices import IndexParams, basis_digest

    stages = pipeline.image_stages()
    opts = {s: dict(pipeline.options[s]) for s in stages}
    a = pipeline.options.get("analyze", {})
    seg_method = opts["segment"]["method"] if "segment" in opts else a.get("method", "model")
    second = opts["segment"]["second_stage"] if "segment" in opts else a.get("second_stage", "mlp")
    check = opts["segment"]["check"] if "segment" in opts else a.get("check", False)
    aparams = _analyze.AnalyzeParams(segment_method=seg_method, max_pixels=pipeline.max_pixels, second_stage=second,
                                     check=bool(check),
                                     indices=IndexParams(chromophore_method=a.get("chromophores", "basis"),
                                                         branch=a.get("branch", "auto")))
    ahash = aparams.hash()
    row_hash = ahash
    if "calibrate" in opts:
        numeric = {k: v for k, v in opts["calibrate"].items() if k != "write_images"}
        row_hash = hashlib.sha256(json.dumps([ahash, numeric], sort_keys=True).encode()).hexdigest()[:12]
    key = {"stages": list(stages), "options": opts, "analyze": aparams.to_dict(), "analyze_hash": ahash,
           "basis": basis_digest(aparams.indices.basis_path) if "analyze" in opts else None,
           "version": __version__}
    job_hash = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Plan(stages=stages, options=opts, analyze=aparams, row_hash=row_hash, job_hash=job_hash)


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


# ----------------------------------------------------------------------------- one photo (runs in a worker)

class _OutputFailure(Exception):
    """An output could not be written (full disk, read-only folder): fatal for the run."""


def _write(fn, path, data):
    try:
        return fn(path, data)
    except SkinImgError as exc:
        if getattr(exc, "errno", None) == errno.ENAMETOOLONG:  # this photo's name, not the disk
            raise SkinImgError("cannot write its outputs: file name too long") from None
        raise _OutputFailure(str(exc)) from None


def _segment_skin(rgb: np.ndarray, method: str, second_stage: str = "mlp", check: bool = False):
    """The segment stage: :func:`skinimg.segment.segment_skin` (through :func:`skinimg.analyze._segment_skin`)."""
    return _analyze._segment_skin(rgb, method, second_stage, check)


def _error_row(stage: str, image: str, reason: str, plan: Plan) -> dict:
    if stage == "analyze":
        return _analyze._empty_row(image, "error", reason, plan.row_hash)
    _, _, cols, _ = _table_spec(stage)
    row = {c: None for c in cols}
    row.update(image=image, status="error", error=reason)
    return row


def _process(item: InputImage, plan: Plan, out: Path, tables: dict) -> None:
    from .io import load_image

    rgb, meta = load_image(item.path, max_pixels=plan.max_pixels, label=item.relpath)
    exclude = None
    corr = None
    if "calibrate" in plan.stages:
        from .calibrate import CSV_COLUMNS, CalibrationParams, calibrate_image, chart_mask

        o = plan.options["calibrate"]
        cparams = CalibrationParams(chart=o["chart"], method=o["method"], fallback=o["fallback"])
        raw_skin = None
        if not o["require_chart"] and o["fallback"] != "none":  # gray world / white patch must not look at skin
            seg_method = plan.options["segment"]["method"] if "segment" in plan.stages else plan.analyze.segment_method
            raw_skin = np.asarray(_analyze._segment(rgb, seg_method, second_stage=plan.analyze.second_stage).mask,
                                  dtype=bool)
        rgb, corr = calibrate_image(rgb, mode="auto", require_chart=o["require_chart"], params=cparams,
                                    skin_mask=raw_skin)
        corr.image = item.relpath
        corr.image_size = [int(rgb.shape[1]), int(rgb.shape[0])]
        _write(write_json, out / "calibration" / f"{item.stem_rel}.json", corr.to_dict())
        if o["write_images"]:
            _write(write_png, out / "calibrated" / f"{item.stem_rel}.png", rgb)
        row = {k: None for k in CSV_COLUMNS}
        row.update(image=item.relpath, status="ok", error="", kind=corr.kind, method=corr.method,
                   delta_e_before_mean=corr.delta_e_before["mean"], delta_e_before_max=corr.delta_e_before["max"],
                   delta_e_after_mean=corr.delta_e_after["mean"], delta_e_after_max=corr.delta_e_after["max"])
        tables["calibrate"] = row
        if o["exclude_chart"] and corr.kind == "chart":
            exclude = chart_mask(rgb.shape, corr)
    mask = None
    method = plan.analyze.segment_method
    if "segment" in plan.stages:
        o = plan.options["segment"]
        seg = _segment_skin(rgb, o["method"], o["second_stage"], o["check"])
        mask = np.asarray(seg.mask, dtype=bool)
        if exclude is not None:
            mask &= ~exclude
        method = str(getattr(seg, "method", o["method"]))
        if o["write_masks"]:
            _write(write_png, out / "masks" / f"{item.stem_rel}.png", mask.astype(np.uint8) * 255)
        n = int(np.count_nonzero(mask))
        status = "ok" if n >= plan.analyze.indices.min_skin_pixels else "no_skin"
        tables["segment"] = {"image": item.relpath, "status": status,
                             "error": None if status == "ok" else f"no skin found ({n} skin pixels)",
                             "skin_fraction": n / float(mask.size), "method": method, **_analyze._flag_columns(seg)}
    if "analyze" in plan.stages:
        if mask is None:
            seg = _analyze._segment(rgb, plan.analyze.segment_method,  # looked up now: tests swap it
                                    second_stage=plan.analyze.second_stage,
                                    check=plan.analyze.check and plan.analyze.segment_method == "model")
            mask = np.asarray(seg.mask, dtype=bool)
            if exclude is not None:
                mask &= ~exclude
            method = str(getattr(seg, "method", plan.analyze.segment_method))
        want_maps = bool(plan.options["analyze"]["maps"])
        row, maps, rgb_out = _analyze._measure_row(item, rgb, meta, mask, method, plan.analyze, want_maps,
                                                   plan.row_hash, corr=corr, seg=seg)
        if want_maps and maps is not None:
            try:
                _analyze._write_maps(out, item, rgb_out, maps, plan.analyze)
            except SkinImgError as exc:
                if getattr(exc, "errno", None) == errno.ENAMETOOLONG:
                    raise SkinImgError("cannot write its outputs: file name too long") from None
                raise _OutputFailure(str(exc)) from None
        tables["analyze"] = row


def process_image(item: InputImage, plan: Plan, out: str | os.PathLike) -> dict:
    """Run the per-image stages of ``plan`` on one photo and write its files under ``out``.

    Parameters
    ----------
    item : InputImage
        The photo (``relpath`` names its rows, ``stem_rel`` its files).
    plan : Plan
    out : path-like
        Output root (per-image files: ``calibration/``, ``calibrated/``, ``masks/``, ``maps/``).

    Returns
    -------
    dict
        ``image``; ``status`` ``"ok"``, ``"no_skin"`` or ``"error"``; ``error`` (reason or None);
        ``tables``: stage -> row (every per-image stage of the plan has a row; after a failure
        the remaining stages get ``status=error`` rows with the reason).  A bad photo never
        raises.

    Raises
    ------
    SkinImgError
        When an output cannot be written (full disk, read-only folder): the run stops.
    """
    out = Path(out)
    tables: dict[str, dict] = {}
    reason = None
    try:
        _process(item, plan, out, tables)
    except _OutputFailure as exc:
        raise SkinImgError(str(exc)) from None
    except SkinImgError as exc:
        reason = exc.reason
    except MemoryError:
        reason = "out of memory (try a smaller pipeline.max_pixels or fewer --workers)"
    except Exception as exc:  # a bug or an exotic file must not stop the batch; the row says what happened
        log.debug("internal error on %s", item.relpath, exc_info=True)
        text = _reason_text(exc, item.path).replace(os.fspath(Path(item.path).parent), ".")
        reason = f"internal error: {type(exc).__name__}: {text}"
    if reason is not None:
        for s in plan.stages:
            if s not in tables:
                tables[s] = _error_row(s, item.relpath, reason, plan)
    status, error = "ok", None
    for s in plan.stages:
        r = tables[s]
        if r["status"] == "error":
            status, error = "error", r["error"]
            break
        if r["status"] == "no_skin" and status == "ok":
            status, error = "no_skin", r["error"]
    return {"image": item.relpath, "status": status, "error": error, "tables": tables}


def _run_job(job) -> dict:
    item, plan, out = job
    return process_image(item, plan, out)


def _init_worker() -> None:
    """Initializer of every worker (pool process or dask worker): analyze's (OpenCV single-threaded).

    Looked up at call time so that a replaced ``skinimg.analyze._init_worker`` (the test
    harness's stand-in segmenter) reaches the workers too.
    """
    _analyze._init_worker()


# ----------------------------------------------------------------------------- executors

class _InlineExecutor:
    """``--workers 1``: run each job in this process when submitted (OpenCV single-threaded meanwhile)."""

    slots = 1
    window = 1  # the job already ran: commit it before the next one starts

    def __init__(self):
        import cv2

        self._cv2 = cv2
        self._threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        self._blas = _analyze.limit_blas_threads(1)

    def submit(self, fn, arg) -> Future:
        f: Future = Future()
        try:
            f.set_result(fn(arg))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            f.set_exception(exc)
        return f

    def wait_any(self, pending: set) -> tuple[set, set]:
        return set(pending), set()

    def close(self, cancel: bool = False) -> None:
        self._cv2.setNumThreads(self._threads)
        if self._blas is not None:
            self._blas.restore_original_limits()


class _LocalExecutor:
    """A process pool (spawn start method, every worker OpenCV single-threaded)."""

    def __init__(self, workers: int):
        ctx = multiprocessing.get_context("spawn")
        self.slots = workers
        self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_analyze._init_worker)

    def submit(self, fn, arg) -> Future:
        return self.pool.submit(fn, arg)

    def wait_any(self, pending: set) -> tuple[set, set]:
        done, rest = _cf_wait(pending, return_when=FIRST_COMPLETED)
        return done, rest

    def close(self, cancel: bool = False) -> None:
        self.pool.shutdown(wait=True, cancel_futures=cancel)


def _dask_plugin(fn):
    from distributed.diagnostics.plugin import WorkerPlugin

    class SkinimgWorkerInit(WorkerPlugin):
        name = "skinimg-worker-init"

        def __init__(self, init):
            self.init = init

        def setup(self, worker):
            self.init()

    return SkinimgWorkerInit(fn)


class _DaskExecutor:
    """``dask.distributed``: a LocalCluster on loopback, or an existing scheduler."""

    def __init__(self, workers: int | None, scheduler: str | None):
        try:
            import distributed
        except ImportError:
            raise SkinImgError("the dask executor needs dask.distributed: pip install 'skinimg[dask]'") from None
        self._distributed = distributed
        self.cluster = None
        try:
            if scheduler:
                self.client = distributed.Client(scheduler, timeout="20s", set_as_default=False)
            else:
                self.cluster = distributed.LocalCluster(
                    n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
                    host="127.0.0.1", dashboard_address=None, silence_logs=logging.ERROR)
                self.client = distributed.Client(self.cluster, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            if self.cluster is not None:
                self.cluster.close()
            raise SkinImgError(f"cannot connect to the dask scheduler ({exc})", scheduler) from None
        self.client.register_plugin(_dask_plugin(_analyze._init_worker))
        self.slots = max(1, sum(self.client.nthreads().values()))

    def submit(self, fn, arg):
        return self.client.submit(fn, arg, pure=False)

    def wait_any(self, pending: set) -> tuple[set, set]:
        with self.client.as_current():
            res = self._distributed.wait(list(pending), return_when="FIRST_COMPLETED")
        return set(res.done), set(res.not_done)

    def close(self, cancel: bool = False) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _make_executor(executor: str, workers: int | None, scheduler: str | None, n_jobs: int):
    if executor == "dask":
        return _DaskExecutor(workers, scheduler)
    if executor != "local":
        raise SkinImgError(f"unknown executor {executor!r} (use local or dask)")
    if scheduler:
        raise SkinImgError("--scheduler needs --executor dask")
    n = min(max(1, n_jobs), workers or os.cpu_count() or 1)
    return _InlineExecutor() if n <= 1 else _LocalExecutor(n)


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


def _check_segmenter(pipeline: Pipeline) -> None:
    """``analyze`` without a ``segment`` stage segments through skinimg.segment: refuse early when it is missing."""
    import importlib.util
    import sys

    if "analyze" not in pipeline.stages or "segment" in pipeline.stages:
        return
    if getattr(_analyze._segment, "__module__", None) != _analyze.__name__:
        return  # replaced (the test harness's stand-in segmenter)
    if sys.modules.get("skinimg.segment") is None and importlib.util.find_spec("skinimg.segment") is None:
        raise SkinImgError("stage 'analyze' is not available: it needs skin segmentation and module skinimg.segment "
                           "is missing (it is not part of this version of skinimg)", pipeline.source)


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
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise SkinImgError("Parquet export needs pyarrow: pip install 'skinimg[parquet]'",
                               pipeline.source) from None


def _run_batch_stage(stage: str, pipeline: Pipeline, inputs: Sequence, out: Path) -> dict:
    o = pipeline.options[stage]
    root = Path(inputs[0]) if len(inputs) == 1 else None
    if root is not None and not root.is_dir():
        root = root.parent
    if stage == "track":
        from . import compare

        if root is None:
            raise SkinImgError("stage 'track' needs one INPUT folder (the study root)")
        if o["root"]:
            root = root / o["root"]
        manifest = o["manifest"]
        if manifest and not Path(manifest).is_absolute():
            manifest = root / manifest
        # the pairs are segmented as the per-image stages segment (method and second stage)
        seg = pipeline.options.get("segment") if "segment" in pipeline.stages else None
        ana = pipeline.options.get("analyze", {})
        params = compare.CompareParams(
            segment_method=(seg or ana).get("method", "model"),
            second_stage=(seg or ana).get("second_stage", "mlp"))
        res = compare.track(root, out, manifest=manifest or None, params=params)
        return {"stage": "track", "n_pairs": res["n_pairs"], "n_failed": res["n_failed"],
                "failed": [{"pair": p, "error": e} for p, e in res["failed"]], "notes": list(res["notes"])}
    if stage == "report":
        from .report import ReportParams, build_report

        dest = safe_output_path(out, o["out"], what="report.out")
        res = build_report(out, dest, params=ReportParams(title=o["title"], anonymize=o["anonymize"], salt=o["salt"],
                                                          images=None if root is None else os.fspath(root)))
        return {"stage": "report", "index": os.fspath(res["index"]), "warnings": len(res["warnings"])}
    if stage == "regress":
        from .regress import parse_tolerance, regress

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
    pipeline : Pipeline, or a path / shipped name (:func:`skinimg.pipeline.load_pipeline`)
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

    Returns
    -------
    dict
        ``n_images``; ``processed`` / ``skipped`` (counts of this run); ``failed``: list of
        ``(image, status, reason)`` of every photo whose result is ``error`` or ``no_skin``
        (computed now or earlier); ``stages``: results of the batch stages (``regress``
        has ``ok`` and the :class:`~skinimg.regress.RegressResult`); ``outputs``;
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
    _check_segmenter(pipeline)
    _check_batch_stages(pipeline)
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    inputs = list(inputs)
    items = discover_images(inputs, exclude=pipeline.exclude)
    if not items:
        raise SkinImgError("no image files found", " ".join(os.fspath(p) for p in inputs))
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SkinImgError(f"cannot create output folder ({exc.strerror or exc})", os.fspath(out)) from None
    n_stale = remove_stale_temp_files(out)  # of a killed run; completed outputs are never partial
    if n_stale:
        log.info("removed %d temporary file(s) left by an interrupted run", n_stale)
    plan = make_plan(pipeline)
    emit = progress or (lambda ev: None)
    specs = {s: _table_spec(s) for s in plan.stages}
    hashes: dict[str, str | None] = {}
    processed = skipped = 0
    store = ResultStore(out / SQLITE_NAME)
    try:
        done = {r["image"]: (r["input_sha256"], r["job_hash"]) for r in store.rows("jobs")
                if r["status"] in ("ok", "no_skin")}

        def jobs():
            nonlocal skipped
            for item in items:
                try:
                    sha = file_sha256(item.path)
                except OSError:
                    sha = None  # the worker reports why it cannot be read
                hashes[item.relpath] = sha
                if sha is not None and done.get(item.relpath) == (sha, plan.job_hash):
                    skipped += 1
                    emit({"event": "image", "image": item.relpath, "outcome": "skipped", "status": "done",
                          "error": None})
                    continue
                yield item

        def commit(res: dict) -> None:
            nonlocal processed
            with store.transaction():
                for s, (table, _, cols, types) in specs.items():
                    store.upsert(table, [res["tables"][s]], cols, types=types)
                store.upsert("jobs", [{"image": res["image"], "input_sha256": hashes.get(res["image"]),
                                       "job_hash": plan.job_hash, "status": res["status"], "error": res["error"]}],
                             JOB_COLUMNS, types=_JOB_TYPES)
            processed += 1
            emit({"event": "image", "image": res["image"], "outcome": _outcome(res), "status": res["status"],
                  "error": res["error"]})

        emit({"event": "start", "total": len(items)})
        ex = _make_executor(executor, workers, scheduler, len(items))
        cancel = True
        try:
            limit = getattr(ex, "window", 2 * ex.slots)  # jobs in flight: memory stays flat
            pending: set = set()
            for item in jobs():
                while len(pending) >= limit:
                    finished, pending = ex.wait_any(pending)
                    for f in finished:
                        commit(_result_of(f))
                pending.add(ex.submit(_run_job, (item, plan, os.fspath(out))))
            while pending:
                finished, pending = ex.wait_any(pending)
                for f in finished:
                    commit(_result_of(f))
            cancel = False
        finally:
            ex.close(cancel=cancel)

        current = {i.relpath for i in items}
        with store.transaction():
            for table, _, _, _ in specs.values():
                store.delete_except(table, "image", current)
            store.delete_except("jobs", "image", current)
        outputs = [out / SQLITE_NAME]
        flagged: set[str] = set()
        for s, (table, stem, cols, types) in specs.items():
            rows = store.rows(table)
            flagged.update(r["image"] for r in rows if r.get("mask_check") == "check")
            outputs.append(export_csv(out / f"{stem}.csv", rows, cols))
            if "parquet" in pipeline.formats:
                outputs.append(export_parquet(out / f"{stem}.parquet", rows, cols, types=types))
        job_rows = store.rows("jobs")
    finally:
        store.close()
    failed = [(r["image"], r["status"], r["error"]) for r in job_rows if r["status"] != "ok"]

    stage_results: dict[str, dict] = {}
    error = None
    try:
        for s in pipeline.batch_stages():
            emit({"event": "stage", "stage": s})
            stage_results[s] = _run_batch_stage(s, pipeline, inputs, out)
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


def _result_of(f) -> dict:
    """The result of a finished job; a dead worker or a lost dask worker becomes a clear error."""
    try:
        return f.result()
    except SkinImgError:
        raise
    except BrokenProcessPool:
        raise SkinImgError("a worker process died (out of memory? try fewer --workers or a smaller max_pixels); "
                           "rerun the same command to resume") from None
    except Exception as exc:
        if type(exc).__name__ == "KilledWorker":
            raise SkinImgError(f"dask workers died while processing a photo ({exc}); rerun to resume") from None
        raise

"""Files in, files out: the per-file loops of every command and the resumable pipeline engine of ``skinimg run``.

The concept packages (:mod:`skinimg.calibrate`, :mod:`skinimg.segment`, :mod:`skinimg.indices`,
:mod:`skinimg.session`) are pure functions on arrays; this package reads the photos, calls them,
and writes rows, masks, maps and tables.

Modules: ``analyze`` (:class:`AnalyzeParams`, :func:`analyze_image`, :func:`analyze_paths`), ``segment``
(:func:`segment_paths`, :func:`evaluate_folders`), ``calibrate`` (:func:`calibrate_file`,
:func:`calibrate_paths`), ``compare`` (:func:`compare_files`), ``series`` and ``tracking`` (:func:`track`),
``pipeline`` (pipeline files and the stage registry), ``run`` (:func:`run_pipeline`), ``executors``
(process pools, dask), ``store`` (SQLite / CSV / Parquet tables), ``roi`` (:class:`RoiLookup`: each photo's
region of interest, propagated ROI files).
"""

#: Each public name and the module that defines it.  Imported on first use (PEP 562), so a command that runs
#: one loop (``skinimg analyze``) does not import the others' dependencies (reports, registration, pipelines).
_EXPORTS = {
    **dict.fromkeys([
        'DEFAULT_MAPS', 'MAP_SETS', 'ROW_COLUMNS', 'ROW_KEY', 'ROW_TYPES', 'TABLE', 'AnalyzeParams',
        'analyze_image', 'analyze_paths', 'map_names', 'photo_status', 'segment_photo', 'write_maps'],
        'analyze'),
    **dict.fromkeys([
        'CSV_COLUMNS', 'calibrate_file', 'calibrate_paths'],
        'calibrate'),
    **dict.fromkeys([
        'MAP_FILES', 'compare_files'],
        'compare'),
    **dict.fromkeys([
        'init_worker', 'limit_blas_threads', 'make_executor', 'map_jobs'],
        'executors'),
    **dict.fromkeys([
        'BATCH_STAGES', 'IMAGE_STAGES', 'ROI_KEYS', 'STAGES', 'Option', 'Pipeline', 'Stage',
        'check_available', 'load_pipeline', 'packaged_pipelines', 'parse_pipeline', 'resolve_pipeline'],
        'pipeline'),
    **dict.fromkeys([
        'ROI_COLUMNS', 'ROI_FILES', 'ROI_SOURCES', 'RoiLookup', 'RoiRef', 'fit_roi', 'roi_columns',
        'write_propagated'],
        'roi'),
    **dict.fromkeys([
        'JOB_COLUMNS', 'TABLES', 'Plan', 'file_sha256', 'make_plan', 'process_image', 'run_pipeline'],
        'run'),
    **dict.fromkeys([
        'EVAL_COLUMNS', 'EVAL_TONE_COLUMNS', 'SEGMENT_COLUMNS', 'evaluate_folders', 'segment_paths'],
        'segment'),
    **dict.fromkeys([
        'SessionImage', 'discover_series', 'read_manifest'],
        'series'),
    **dict.fromkeys([
        'SQLITE_NAME', 'ResultStore', 'export_csv', 'export_parquet', 'infer_types', 'read_rows',
        'upsert_rows'],
        'store'),
    **dict.fromkeys([
        'SERIES_COLUMNS', 'track'],
        'tracking'),
}

__all__ = [
    "BATCH_STAGES",
    "CSV_COLUMNS",
    "EVAL_COLUMNS",
    "EVAL_TONE_COLUMNS",
    "IMAGE_STAGES",
    "JOB_COLUMNS",
    "MAP_FILES",
    "ROI_COLUMNS",
    "ROI_FILES",
    "ROI_KEYS",
    "ROI_SOURCES",
    "ROW_COLUMNS",
    "ROW_KEY",
    "ROW_TYPES",
    "SEGMENT_COLUMNS",
    "SERIES_COLUMNS",
    "SQLITE_NAME",
    "STAGES",
    "TABLE",
    "TABLES",
    "analyze_image",
    "DEFAULT_MAPS",
    "MAP_SETS",
    "map_names",
    "analyze_paths",
    "AnalyzeParams",
    "calibrate_file",
    "calibrate_paths",
    "check_available",
    "compare_files",
    "discover_series",
    "evaluate_folders",
    "export_csv",
    "export_parquet",
    "file_sha256",
    "fit_roi",
    "infer_types",
    "init_worker",
    "limit_blas_threads",
    "load_pipeline",
    "make_executor",
    "make_plan",
    "map_jobs",
    "Option",
    "packaged_pipelines",
    "parse_pipeline",
    "Pipeline",
    "photo_status",
    "Plan",
    "process_image",
    "read_manifest",
    "read_rows",
    "resolve_pipeline",
    "ResultStore",
    "RoiLookup",
    "RoiRef",
    "roi_columns",
    "run_pipeline",
    "segment_paths",
    "segment_photo",
    "SessionImage",
    "Stage",
    "track",
    "upsert_rows",
    "write_maps",
    "write_propagated",
]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))

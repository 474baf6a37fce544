"""Self-contained offline HTML reports of a results folder: ``skinimg report``.

``build_report(results, out)`` reads what the stages wrote into a results folder
(``indices.csv``, ``maps/``, ``masks/``, ``series.csv``, ``pairs/``,
``comparison.json``, ``analyze.json``, ``run.json``) and writes::

    out/index.html              studies overview: every patient/site, warnings, provenance
    out/summary.html            per-study summary for researchers: index distributions, ITA classes
    out/<series>.html           one page per patient/site: sessions, heatmaps, pairs, trends
    out/img/<series>/*.jpg|png  every picture the pages show (no EXIF; neutral file names)

Pages are plain HTML with inline CSS: no JavaScript, no network, every image a
relative link into ``img/``, so the folder can be zipped, mailed and opened offline.
Everything written is HTML-escaped and every file is written atomically.

Patients and sites come from the study layout ``<patient>/<site>/<session>/<image>``
of the image paths (the last three folders), or from ``series.csv`` when it names
the image.  Patient identifiers appear only as the folder names given; with
``anonymize=True`` they are replaced everywhere (text, titles, alt texts, file
names, provenance) by ``P-xxxxxx``, the first 6 hex digits of
``HMAC-SHA256(salt, name)``: stable for a given salt, unlinkable without it.  Image
file names are replaced the same way (``img-xxxxxx``), since they often carry names.

Plots need matplotlib (optional extra ``skinimg[report]``); without it
:func:`build_report` raises :class:`~skinimg.errors.SkinImgError`.

Modules: ``study`` (reading a results folder), ``figures`` (pictures and plots), ``html``
(the pages, :func:`build_report`), ``regress`` (``skinimg regress``: a fresh run against
committed expected values).
"""

from .figures import heatmap_png, photo_with_outline
from .html import build_report
from .regress import (DEFAULT_TOLERANCES, Drift, RegressResult, Tolerance, collect_verdicts, compare_tables,
                      format_drift_table, parse_tolerance, regress, tolerance_for, update_expected)
from .study import Anonymizer, ReportParams, Study, load_study, study_key

__all__ = [
    "ReportParams",
    "Anonymizer",
    "Study",
    "build_report",
    "load_study",
    "study_key",
    "photo_with_outline",
    "heatmap_png",
    "DEFAULT_TOLERANCES",
    "Tolerance",
    "Drift",
    "RegressResult",
    "parse_tolerance",
    "tolerance_for",
    "compare_tables",
    "collect_verdicts",
    "regress",
    "update_expected",
    "format_drift_table",
]

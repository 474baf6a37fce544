"""Tracking a study (``skinimg track``): every patient/site series compared with its baseline and previous session."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from .. import __version__
from ..errors import SkinImgError
from ..io import make_output_folder, safe_output_path, write_csv, write_json
from ..session import CompareParams, load_mdc
from .compare import compare_files
from .series import discover_series, read_manifest

__all__ = ["SERIES_COLUMNS", "track"]

#: Columns of ``series.csv`` (``skinimg track``), one row per patient, site, session, reference and metric.
SERIES_COLUMNS = ("patient", "site", "session", "reference", "reference_session", "index", "before", "after",
                  "delta", "delta_pct", "ci95_lo", "ci95_hi", "effect_size", "mdc", "verdict", "status", "error",
                  "image", "reference_image")


def _series_rows(base: dict, doc: dict | None, error: str | None) -> list[dict]:
    if doc is None:
        return [dict(base, index=None, status="error", error=error)]
    rows = []
    for name, m in doc["metrics"].items():
        ci = m.get("ci95") or [None, None]
        rows.append(dict(base, index=name, before=m["before"], after=m["after"], delta=m["delta"],
                         delta_pct=m["delta_pct"], ci95_lo=ci[0], ci95_hi=ci[1], effect_size=m["effect_size"],
                         mdc=m["mdc"], verdict=m["verdict"], status="ok", error=None))
    return rows


def track(root: str | os.PathLike, out: str | os.PathLike, *, manifest: str | os.PathLike | None = None,
          params: CompareParams | None = None, progress=None) -> dict:
    """Compare every patient/site series with its baseline and with the previous session.

    Parameters
    ----------
    root : path-like
        Study folder ``ROOT/<patient>/<site>/<session>/<image>`` (sessions named ``YYYY-MM-DD``,
        otherwise ordered by EXIF capture time), or the folder the manifest's paths are relative to.
    out : path-like
        Output folder: ``series.csv`` (:data:`SERIES_COLUMNS`) and
        ``pairs/<patient>/<site>/<reference>__<session>/comparison.json`` (+ PNG maps).
    manifest : path-like, optional
        CSV ``patient,site,session,image[,roi]`` instead of the folder layout.
    params : CompareParams, optional
    progress : callable, optional
        Called with ``(pair_label, doc_or_None, error_or_None)`` after each pair.

    Returns
    -------
    dict
        ``rows`` (series.csv rows), ``n_pairs``, ``n_failed``, ``failed`` (list of
        ``(pair, reason)``), ``notes``, ``outputs``.
    """
    p = params or CompareParams()
    load_mdc(p.mdc_path)
    notes: list[str] = []
    root = Path(root)
    series = read_manifest(manifest, root, notes) if manifest is not None else discover_series(root, notes)
    out = make_output_folder(out)  # and removes the temporary files of a killed run
    rows: list[dict] = []
    failed: list[tuple[str, str]] = []
    n_pairs = 0
    for (patient, site), items in series.items():
        if len(items) < 2:
            notes.append(f"{patient}/{site}: only one session, nothing to compare")
        done: dict[tuple[str, str], tuple[dict | None, str | None]] = {}
        sp = p  # the series' first successful pair fixes its chromophore branch for the others
        for i in range(1, len(items)):
            cur = items[i]
            refs = [("baseline", items[0]), ("previous", items[i - 1])]
            for kind, ref in refs:
                key = (ref.session, cur.session)
                if key not in done:
                    n_pairs += 1
                    label = f"{ref.label} vs {cur.label}"
                    folder = safe_output_path(out, f"pairs/{patient}/{site}/{ref.session}__{cur.session}")
                    try:
                        doc = compare_files(ref.path, cur.path, folder, roi=ref.roi, params=sp,
                                            before_label=ref.label, after_label=cur.label)
                        done[key] = (doc, None)
                        if sp.indices.branch == "auto" and doc.get("chromophore_branch"):
                            sp = replace(sp, indices=replace(sp.indices, branch=doc["chromophore_branch"]))
                    except SkinImgError as exc:
                        reason = exc.reason if exc.path in (None, label) else str(exc)
                        done[key] = (None, reason)
                        failed.append((label, reason))
                    if progress is not None:
                        progress(label, *done[key])
                doc, err = done[key]
                base = {"patient": patient, "site": site, "session": cur.session, "reference": kind,
                        "reference_session": ref.session, "image": cur.label, "reference_image": ref.label}
                rows.extend(_series_rows(base, doc, err))
    outputs = [write_csv(out / "series.csv", rows, SERIES_COLUMNS)]
    meta = {"command": "track", "skinimg_version": __version__, "root": os.fspath(root),
            "manifest": os.fspath(manifest) if manifest is not None else None, "params": p.to_dict(),
            "n_series": len(series), "n_pairs": n_pairs, "n_failed": len(failed),
            "failed": [{"pair": a, "error": b} for a, b in failed], "notes": notes}
    outputs.append(write_json(out / "track.json", meta))
    return {"rows": rows, "n_pairs": n_pairs, "n_failed": len(failed), "failed": failed, "notes": notes,
            "outputs": outputs}

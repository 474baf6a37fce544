"""Tracking a study (``skinimg track``): every patient/site series compared with its baseline and previous session.

Regions of interest: each session's own ROI file (the manifest's ``roi`` column, else :class:`RoiLookup`: beside
the photo or in a mirrored folder) is the ROI of the pairs in which that session is the reference (BEFORE).  With
``propagate_roi`` a series' baseline ROI is carried to every later session without its own file through that
pair's registration (:func:`skinimg.session.propagate_regions`) and written to
``rois/<patient>/<site>/<session>.roi.json`` for a person to check; a session's own file always wins.  When the
pair could not be compared or the region would leave the photo, nothing is propagated: the note says why, and the pairs
that would need that ROI are error rows.  An ECC alignment of the registration chain carries a homography like the
features step and propagates the same way; a pair compared without pixel alignment (``registration.ok`` false)
never propagates.

Pairs that cannot be pixel-aligned (:func:`skinimg.session.register_chain`) are compared by region statistics of
each photo's own skin, inside each photo's own ROI when the BEFORE session has one (AFTER's own file, or the ROI
propagated to it from the baseline); they keep their rows, trends and verdicts, and ``series.csv``'s
``registration`` column says how every pair was aligned.  The pairs' warnings are collected with identical ones
collapsed into one entry with a count (``track.json`` ``warnings``).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import SkinImgError
from ..io import collapse_messages, make_output_folder, pair_warning_source, read_roi, safe_output_path, write_csv, write_json
from ..session import NO_ALIGNMENT, CompareParams, load_mdc, propagate_regions
from .compare import compare_files
from .roi import ROI_COLUMNS, RoiLookup, RoiRef, roi_columns, write_propagated
from .series import SessionImage, discover_series, read_manifest

__all__ = ["SERIES_COLUMNS", "track"]

#: Columns of ``series.csv`` (``skinimg track``), one row per patient, site, session, reference, region and metric;
#: ``registration``: how the pair was aligned (its ``registration.method``; ``"none (region statistics)"`` for a pair
#: compared without pixel alignment, empty for a pair that failed).
SERIES_COLUMNS = ("patient", "site", "session", "reference", "reference_session", "index", "before", "after",
                  "delta", "delta_pct", "ci95_lo", "ci95_hi", "effect_size", "mdc", "verdict", "status", "error",
                  "image", "reference_image") + ROI_COLUMNS + ("delta_pct_model_lo", "delta_pct_model_hi",
                                                              "registration")


def _metric_rows(base: dict, metrics: dict) -> list[dict]:
    rows = []
    for name, m in metrics.items():
        ci = m.get("ci95") or [None, None]
        rng = m.get("delta_pct_model_range") or [None, None]
        rows.append(dict(base, index=name, before=m["before"], after=m["after"], delta=m["delta"],
                         delta_pct=m["delta_pct"], ci95_lo=ci[0], ci95_hi=ci[1], effect_size=m["effect_size"],
                         mdc=m["mdc"], verdict=m["verdict"], status="ok", error=None,
                         delta_pct_model_lo=rng[0], delta_pct_model_hi=rng[1]))
    return rows


def _series_rows(base: dict, doc: dict | None, error: str | None, ref: RoiRef) -> list[dict]:
    """The ``series.csv`` rows of one pair: the whole skin (or the one ROI), then each named region."""
    if doc is None:
        return [dict(base, index=None, status="error", error=error, **roi_columns(ref))]
    base = dict(base, registration=doc["registration"]["method"])
    regions = doc.get("regions")
    cols = roi_columns(None) if regions is not None or not doc.get("roi") else roi_columns(ref, "", doc["roi_pixels"])
    rows = _metric_rows(dict(base, **cols), doc["metrics"])
    for name, entry in (regions or {}).items():
        rbase = dict(base, **roi_columns(ref, name, entry["pixels"]))
        if "error" in entry:
            rows.append(dict(rbase, index=None, status="error", error=entry["error"]))
        else:
            rows.extend(_metric_rows(rbase, entry["metrics"]))
    return rows


def _own_roi(item: SessionImage, root: Path, rois: RoiLookup) -> RoiRef:
    """A session's own ROI: the manifest's ``roi`` column, else the lookup's file (beside / mirrored folder)."""
    if item.roi is not None:
        try:
            label = item.roi.relative_to(root).as_posix()
        except ValueError:
            label = os.fspath(item.roi)
        return RoiRef(item.roi, label, "file")
    ref = rois.resolve(item.path, item.label)
    return ref if ref.source == "file" else RoiRef()


def _propagate(out: Path, patient: str, site: str, base: SessionImage, cur: SessionImage, base_ref: RoiRef,
               doc: dict | None, err: str | None) -> tuple[RoiRef, str]:
    """The baseline's ROI in ``cur``'s frame through the baseline pair's registration: ``(RoiRef, note)``."""
    label = f"rois/{patient}/{site}/{cur.session}"
    what = f"{patient}/{site}/{cur.session}: ROI not propagated from {base.session}"
    if doc is None:
        why = f"{what}: the registration with the baseline failed ({err})"
        return RoiRef(None, label, "propagated", why), why
    reg = doc["registration"]
    if reg.get("method") == NO_ALIGNMENT:
        why = f"{what}: the pair could not be pixel-aligned (compared by region statistics); draw this session's ROI"
        return RoiRef(None, label, "propagated", why), why
    if not reg.get("ok") or reg.get("homography") is None:
        why = f"{what}: registration not trusted ({reg.get('reason') or reg.get('method')})"
        return RoiRef(None, label, "propagated", why), why
    roi = read_roi(base_ref.path, label=base_ref.label)
    w, h = doc["image_sizes"]["after"]
    regions, why = propagate_regions(roi.polygons if roi.kind == "polygon" else None, roi.mask,
                                     np.array(reg["homography"]), (h, w))
    if regions is None:
        why = f"{what}: {why}"
        return RoiRef(None, label, "propagated", why), why
    info = {"from": base_ref.label, "baseline_image": base.label, "baseline_session": base.session,
            "image": cur.label, "session": cur.session, "skinimg_version": __version__,
            "registration": {k: reg.get(k) for k in ("ok", "method", "inliers", "residual_px", "scale",
                                                     "rotation_deg", "homography")}}
    path = write_propagated(out, patient, site, cur.session, roi, regions, (h, w), info)
    return RoiRef(path, path.relative_to(out).as_posix(), "propagated"), ""


def track(root: str | os.PathLike, out: str | os.PathLike, *, manifest: str | os.PathLike | None = None,
          params: CompareParams | None = None, progress=None, rois: RoiLookup | None = None,
          propagate_roi: bool = False) -> dict:
    """Compare every patient/site series with its baseline and with the previous session.

    Parameters
    ----------
    root : path-like
        Study folder ``ROOT/<patient>/<site>/<session>/<image>`` (sessions named ``YYYY-MM-DD``,
        otherwise ordered by EXIF capture time), or the folder the manifest's paths are relative to.
    out : path-like
        Output folder: ``series.csv`` (:data:`SERIES_COLUMNS`),
        ``pairs/<patient>/<site>/<reference>__<session>/comparison.json`` (+ PNG maps) and, with
        ``propagate_roi``, ``rois/<patient>/<site>/<session>.roi.json``.
    manifest : path-like, optional
        CSV ``patient,site,session,image[,roi]`` instead of the folder layout.
    params : CompareParams, optional
    progress : callable, optional
        Called with ``(pair_label, doc_or_None, error_or_None)`` after each pair.
    rois : RoiLookup, optional
        Where the sessions' own ROI files are found (default: beside the photos); the manifest's ``roi`` column
        wins.
    propagate_roi : bool
        Carry each series' baseline ROI to its later sessions (see the module docstring).

    Returns
    -------
    dict
        ``rows`` (series.csv rows), ``n_pairs``, ``n_failed``, ``failed`` (list of
        ``(pair, reason)``), ``notes``, ``outputs``, ``rois`` (photo path -> the propagated
        :class:`RoiRef`, with ``error`` where propagation was refused), ``n_unaligned`` (pairs compared without
        pixel alignment), ``alignment`` (pair label -> ``registration.method``), ``warnings`` (the pairs' warnings,
        identical ones collapsed: ``[{"message", "count", "sources", "unit"}]``, :func:`skinimg.io.collapse_messages`;
        a warning about one photo of a pair counts once per photo, the others once per pair).
    """
    p = params or CompareParams()
    load_mdc(p.mdc_path)
    rois = rois if rois is not None else RoiLookup()
    notes: list[str] = []
    root = Path(root)
    series = read_manifest(manifest, root, notes) if manifest is not None else discover_series(root, notes)
    out = make_output_folder(out)  # and removes the temporary files of a killed run
    rows: list[dict] = []
    failed: list[tuple[str, str]] = []
    propagated: dict[str, RoiRef] = {}
    alignment: dict[str, str] = {}
    warnings: list[tuple[str, str]] = []
    n_pairs = 0
    for (patient, site), items in series.items():
        if len(items) < 2:
            notes.append(f"{patient}/{site}: only one session, nothing to compare")
        refs = {s.session: _own_roi(s, root, rois) for s in items}
        base_ref = refs[items[0].session]
        if propagate_roi and base_ref.path is None and len(items) > 1:
            notes.append(f"{patient}/{site}: the baseline has no ROI file: nothing to propagate")
        done: dict[tuple[str, str], tuple[dict | None, str | None]] = {}
        sp = p  # the series' first successful pair fixes its chromophore branch for the others
        for i in range(1, len(items)):
            cur = items[i]
            for kind, ref in (("baseline", items[0]), ("previous", items[i - 1])):
                key = (ref.session, cur.session)
                if key not in done:
                    n_pairs += 1
                    label = f"{ref.label} vs {cur.label}"
                    folder = safe_output_path(out, f"pairs/{patient}/{site}/{ref.session}__{cur.session}")
                    roi, after_roi = refs[ref.session], refs[cur.session]
                    try:
                        doc = compare_files(ref.path, cur.path, folder, roi=roi if roi.source != "none" else None,
                                            params=sp, before_label=ref.label, after_label=cur.label,
                                            after_roi=after_roi if after_roi.path is not None else None)
                        done[key] = (doc, None)
                        alignment[label] = doc["registration"]["method"]
                        warnings.extend(pair_warning_source(w, label, ref.label, cur.label) for w in doc.get("warnings", []))
                        if sp.indices.branch == "auto" and doc.get("chromophore_branch"):
                            sp = replace(sp, indices=replace(sp.indices, branch=doc["chromophore_branch"]))
                    except SkinImgError as exc:
                        reason = exc.reason if exc.path in (None, label) else str(exc)
                        done[key] = (None, reason)
                        failed.append((label, reason))
                    if progress is not None:
                        progress(label, *done[key])
                    if kind == "baseline" and propagate_roi and base_ref.path is not None \
                            and refs[cur.session].source == "none":
                        refs[cur.session], note = _propagate(out, patient, site, items[0], cur, base_ref, *done[key])
                        propagated[os.fspath(Path(cur.path).resolve())] = refs[cur.session]
                        if note:
                            notes.append(note)
                doc, err = done[key]
                base = {"patient": patient, "site": site, "session": cur.session, "reference": kind,
                        "reference_session": ref.session, "image": cur.label, "reference_image": ref.label}
                rows.extend(_series_rows(base, doc, err, refs[ref.session]))
    outputs = [write_csv(out / "series.csv", rows, SERIES_COLUMNS)]
    collapsed = collapse_messages(warnings)
    n_unaligned = sum(1 for m in alignment.values() if m == NO_ALIGNMENT)
    meta = {"command": "track", "skinimg_version": __version__, "root": os.fspath(root),
            "manifest": os.fspath(manifest) if manifest is not None else None, "params": p.to_dict(),
            "roi": {"files": rois.setting(), "propagate": bool(propagate_roi),
                    "propagated": sorted(r.label for r in propagated.values() if r.path is not None),
                    "not_propagated": sorted(r.error for r in propagated.values() if r.error)},
            "n_series": len(series), "n_pairs": n_pairs, "n_failed": len(failed), "n_unaligned": n_unaligned,
            "failed": [{"pair": a, "error": b} for a, b in failed], "alignment": alignment, "warnings": collapsed,
            "notes": notes}
    outputs.append(write_json(out / "track.json", meta))
    return {"rows": rows, "n_pairs": n_pairs, "n_failed": len(failed), "failed": failed, "notes": notes,
            "outputs": outputs, "rois": propagated, "n_unaligned": n_unaligned, "alignment": alignment,
            "warnings": collapsed}

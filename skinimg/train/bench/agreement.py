"""The agreement suite of ``skinimg bench``: every index against the user's own reference measurements.

Input: a folder of photos (``--images``) and a CSV (``--reference``) with one row per
measured skin site:

========== ==================================================================
``image``  photo, relative to the images folder (or absolute); required
``roi``    optional: the measured region in that photo (polygon JSON or mask
           image, as ``skinimg segment --roi``), relative to the images folder
``subject`` optional: who / which skin site; rows of one subject are repeated
           measurements of unchanged skin (repeatability), and the bootstrap
           and cross-validation resample subjects, not photos
``session`` optional (with ``subject``): the occasion (day, trial) of the row
any other  a reference reading (instrument or rater), numeric; one column per
           instrument or rater, e.g. ``mexameter_ei``, ``chromameter_a``, ``grade``
========== ==================================================================

Each row's skin is segmented (``method``, as ``skinimg analyze``), intersected with its ROI (or
the ROI itself with ``roi_is_skin``), and measured by every built-in index and every user index
(:mod:`skinimg.indices.user`); the per-image mean of each index is compared with each reference
column by :func:`skinimg.stats.agreement`.  Tables and plots: :mod:`.ranking`.

Bad references (each a one-line :class:`SkinImgError` naming the file, or a counted skip):

* no ``image`` column, duplicate or empty header names, ``session`` without ``subject``,
  an unknown column in ``columns``, no numeric reference column: error;
* a column mixing numbers and text (``"mild"``, ``"12,5"``): error naming the column, the
  count and the first line; a column with text only (``notes``): not a reference, listed
  in ``skipped["text_columns"]``; empty cells and ``NA``/``NaN``/``n/a``/``-``: missing
  values, counted per column;
* a row repeated identically: skipped, counted; the same image and ROI with other
  values: error naming both lines;
* an image that is not in the folder, cannot be read, or has no skin in its ROI: skipped,
  counted, listed with the reason; none left: error.
"""

from __future__ import annotations

import csv
import math
import os
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ...batch import AnalyzeParams, segment_photo
from ...batch.analyze import load_working_copy
from ...calibrate import calibrate_image, chart_mask
from ...color import ITA_CATEGORIES
from ...errors import SkinImgError
from ...indices import INDEX_NAMES, IndexParams, UserIndexRunner, choose_shared_branch, measure
from ...io import DEFAULT_MAX_PIXELS, load_roi, reduce_image, reduce_mask
from ...stats import BOOTSTRAP_RESAMPLES, bland_altman, correlation
from ...stats import agreement as agreement_stats
from .ranking import CRITERION, leaderboard

__all__ = ["SPECIAL_COLUMNS", "MISSING_TOKENS", "Reference", "read_reference", "measure_reference", "run_agreement"]

#: Columns of a reference CSV that are not readings.
SPECIAL_COLUMNS = ("image", "roi", "subject", "session")
#: Cells read as a missing reading (case-insensitive, after stripping spaces).
MISSING_TOKENS = ("", "na", "nan", "n/a", "-")


@dataclass
class Reference:
    """A parsed reference CSV.

    Attributes
    ----------
    path : Path
    columns : list of str
        Reference columns (numeric readings), in file order.
    rows : list of dict
        ``image``, ``roi`` (str or None), ``subject``, ``session`` (str or None),
        ``values`` ({column: float, NaN = missing}), ``line`` (1-based line in the file).
    has_subject, has_session : bool
    skipped : dict
        ``duplicate_rows`` (identical rows left out), ``text_columns`` (columns without a
        single number, not used), ``missing_values`` ({column: empty cells}).
    """

    path: Path
    columns: list
    rows: list
    has_subject: bool = False
    has_session: bool = False
    skipped: dict = field(default_factory=dict)


def _number(cell: str):
    """float, None for a missing cell, or the text when it is not a number."""
    t = cell.strip()
    if t.lower() in MISSING_TOKENS:
        return None
    try:
        v = float(t)
    except ValueError:
        return t
    return v if math.isfinite(v) else t


def read_reference(path: str | os.PathLike, *, columns: Sequence[str] | None = None) -> Reference:
    """Read and check a reference CSV (see the module docstring for the rules).

    Parameters
    ----------
    path : path-like
    columns : sequence of str, optional
        Reference columns to use (default: every column with numbers).

    Raises
    ------
    SkinImgError
        One line naming the file (and the line or column) for every fatal problem.
    """
    p = Path(path)
    label = p.name
    try:
        with open(p, newline="", encoding="utf-8-sig") as fh:
            rd = csv.reader(fh)
            table = [row for row in rd]
    except FileNotFoundError:
        raise SkinImgError("reference file not found", os.fspath(p)) from None
    except IsADirectoryError:
        raise SkinImgError("reference is a folder; expected a CSV file", os.fspath(p)) from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SkinImgError(f"cannot read the reference CSV ({exc})", os.fspath(p)) from None
    if not table or not any(c.strip() for c in table[0]):
        raise SkinImgError("reference CSV is empty (expected a header with an image column)", label)
    header = [c.strip() for c in table[0]]
    if "" in header:
        raise SkinImgError(f"reference CSV has an empty column name (column {header.index('') + 1})", label)
    dup = [c for c, k in Counter(header).items() if k > 1]
    if dup:
        raise SkinImgError(f"reference CSV names column {dup[0]!r} twice", label)
    if "image" not in header:
        raise SkinImgError(f"reference CSV has no image column (columns: {', '.join(header)})", label)
    has_subject, has_session = "subject" in header, "session" in header
    if has_session and not has_subject:
        raise SkinImgError("reference CSV has a session column but no subject column (sessions are per subject)",
                           label)
    candidates = [c for c in header if c not in SPECIAL_COLUMNS]
    if columns:
        unknown = [c for c in columns if c not in candidates]
        if unknown:
            raise SkinImgError(f"unknown reference column(s) {', '.join(unknown)} (the file has: "
                               f"{', '.join(candidates) or 'no reading column'})", label)
        candidates = [c for c in candidates if c in columns]
    body = []
    for i, raw in enumerate(table[1:], start=2):
        if not any(c.strip() for c in raw):
            continue
        if len(raw) > len(header) and any(c.strip() for c in raw[len(header):]):
            raise SkinImgError(f"line {i} has {len(raw)} cells but the header has {len(header)}", label)
        body.append((i, {h: (raw[j] if j < len(raw) else "") for j, h in enumerate(header)}))
    if not body:
        raise SkinImgError("reference CSV has a header but no rows", label)
    parsed = {c: [_number(r[c]) for _, r in body] for c in candidates}
    used, text_cols, missing = [], [], {}
    for c in candidates:
        vals = parsed[c]
        texts = [(body[k][0], v) for k, v in enumerate(vals) if isinstance(v, str)]
        nums = sum(isinstance(v, float) for v in vals)
        if texts and (nums or columns):
            line, bad = texts[0]
            raise SkinImgError(f"reference column {c!r} has {len(texts)} non-numeric value(s) (first: line {line}: "
                               f"{bad!r}); use numbers, or leave the cell empty for a missing reading", label)
        if texts or not nums:
            text_cols.append(c)
            continue
        used.append(c)
        missing[c] = sum(v is None for v in vals)
    if not used:
        raise SkinImgError("reference CSV has no numeric reference column"
                           + (f" ({', '.join(text_cols)} hold text)" if text_cols else ""), label)
    rows, seen, n_dup = [], {}, 0
    for k, (line, r) in enumerate(body):
        image = r["image"].strip()
        if not image:
            raise SkinImgError(f"line {line}: the image cell is empty", label)
        roi = r.get("roi", "").strip() or None
        subject = r["subject"].strip() if has_subject else None
        if has_subject and not subject:
            raise SkinImgError(f"line {line}: the subject cell is empty", label)
        session = (r["session"].strip() or None) if has_session else None
        values = {c: (parsed[c][k] if parsed[c][k] is not None else float("nan")) for c in used}
        rec = {"image": image, "roi": roi, "subject": subject, "session": session, "values": values, "line": line}
        key = (image, roi)
        if key in seen:
            first = seen[key]
            same = (first["subject"], first["session"]) == (subject, session) and all(
                (first["values"][c] == values[c]) or (math.isnan(first["values"][c]) and math.isnan(values[c]))
                for c in used)
            if not same:
                where = f"image {image}" + (f" with ROI {roi}" if roi else "")
                raise SkinImgError(f"line {line}: {where} is listed again with other values (first at line "
                                   f"{first['line']}); give each site its own ROI, or remove one row", label)
            n_dup += 1
            continue
        seen[key] = rec
        rows.append(rec)
    return Reference(path=p, columns=used, rows=rows, has_subject=has_subject, has_session=has_session,
                     skipped={"duplicate_rows": n_dup, "text_columns": text_cols, "missing_values": missing})


# ----------------------------------------------------------------------------- measuring


def _resolve(images_dir: Path, rel: str) -> Path:
    p = Path(rel)
    return p if p.is_absolute() else images_dir / p


def measure_reference(ref: Reference, images: str | os.PathLike, *, method: str = "model", roi_is_skin: bool = False,
                      calibration: str = "none", index_params: IndexParams | None = None,
                      user: UserIndexRunner | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                      progress: Callable[[str], None] | None = None) -> tuple[list[dict], dict]:
    """Measure every reference row: built-in indices (per-image mean) and user indices.

    Parameters
    ----------
    ref : Reference
    images : path-like
        Folder the ``image`` and ``roi`` cells are relative to.
    method : {"model", "rules"}
        Skin segmentation (:func:`skinimg.batch.segment_photo`, as ``skinimg analyze``), intersected with
        the row's ROI.
    roi_is_skin : bool
        No segmentation: the ROI is the skin (every row needs one), e.g. phantoms' true masks.
    calibration : {"none", "auto", "chart"}
        Colour calibration before measuring (as ``skinimg analyze --calibrate``); a chart found is
        removed from the skin.
    user : UserIndexRunner, optional

    Returns
    -------
    rows : list of dict
        Per measured row: ``image``, ``roi``, ``subject``, ``session``, ``line``, the
        reference ``values``, ``skin_pixels``, ``ita_category`` (of the mean ITA), ``chromophore_method``
        (the twin branch read), one value per index (built-ins then user indices) and ``index_errors``
        ({name: reason}).  With a ``subject`` column (and ``branch="auto"``), the rows of one subject are
        measured on one twin branch, chosen from all of them (:func:`skinimg.indices.choose_shared_branch`).
    skipped : dict
        ``missing_images``, ``unreadable``, ``no_skin``: lists of ``{"image", "line",
        "reason"}``.
    """
    images_dir = Path(images)
    if roi_is_skin:
        no_roi = [r for r in ref.rows if not r["roi"]]
        if no_roi:
            raise SkinImgError(f"--roi-is-skin needs an roi on every row (line {no_roi[0]['line']} has none)",
                               ref.path.name)
    params = index_params or IndexParams()
    aparams = AnalyzeParams(segment_method=method, calibration=calibration, indices=params)
    skipped: dict = {"missing_images": [], "unreadable": [], "no_skin": []}
    by_image: dict = {}
    for r in ref.rows:
        by_image.setdefault(r["image"], []).append(r)

    def photo(image: str):
        """(rgb, skin mask or None) of ``image``, as analyze prepares it; SkinImgError when unreadable."""
        rgb, meta = load_working_copy(_resolve(images_dir, image), replace(aparams, max_pixels=max_pixels),
                                      label=image)
        full = rgb.shape[:2]
        corr = None
        if calibration != "none":  # as analyze: the fallbacks must not look at skin
            raw = np.asarray(segment_photo(rgb, aparams).mask, dtype=bool)
            rgb, corr = calibrate_image(rgb, mode=calibration, skin_mask=raw)
        rgb = reduce_image(rgb, aparams.work_pixels)  # as analyze: the working size, after the calibration
        skin = None if roi_is_skin else np.asarray(segment_photo(rgb, aparams).mask, dtype=bool)
        if corr is not None and corr.corners is not None:
            chart = reduce_mask(chart_mask(full, corr), rgb.shape[:2])
            skin = ~chart if skin is None else skin & ~chart
        photos[image] = meta.photo_shape
        return rgb, skin

    photos: dict = {}

    def row_mask(rgb, skin, r):
        roi = (load_roi(_resolve(images_dir, r["roi"]), rgb.shape[:2], label=r["roi"], photo_shape=photos[r["image"]])
               if r["roi"] else None)
        return roi if skin is None else (skin if roi is None else skin & roi)

    out = []
    for k, (image, rows) in enumerate(by_image.items()):
        if not _resolve(images_dir, image).is_file():
            skipped["missing_images"] += [{"image": image, "line": r["line"], "reason": "image not found"}
                                          for r in rows]
            continue
        try:
            rgb, skin = photo(image)
        except SkinImgError as exc:
            skipped["unreadable"] += [{"image": image, "line": r["line"], "reason": exc.reason} for r in rows]
            continue
        for r in rows:
            try:
                mask = row_mask(rgb, skin, r)
            except SkinImgError as exc:
                skipped["unreadable"].append({"image": image, "line": r["line"], "reason": f"ROI: {exc.reason}"})
                continue
            n_skin = int(np.count_nonzero(mask))
            if n_skin < params.min_skin_pixels:
                where = "ROI" if r["roi"] else "photo"
                skipped["no_skin"].append({"image": image, "line": r["line"],
                                           "reason": f"no skin in the {where} ({n_skin} skin pixels)"})
                continue
            row, _ = measure(rgb, mask, params=params, return_maps=False)
            rec = {key: r[key] for key in ("image", "roi", "subject", "session", "line")}
            rec.update(values=dict(r["values"]), skin_pixels=n_skin, ita_category=row["ita_category"],
                       chromophore_method=row["chromophore_method"])
            rec.update({n: float(row[n]) for n in INDEX_NAMES})
            rec["index_errors"] = {}
            if user is not None:
                urow, _, errs = user.measure(rgb, mask)
                rec.update({n: urow[n] for n in user.names})
                rec["index_errors"] = errs
            out.append(rec)
        if progress:
            progress(f"agreement: image {k + 1}/{len(by_image)}")
    if ref.has_subject and params.branch == "auto":
        _share_subject_branches(out, photo, row_mask, params)
    return out, skipped


def _share_subject_branches(out: list[dict], photo, row_mask, params: IndexParams) -> None:
    """Measure every subject's rows on one twin branch, chosen from all its rows pooled
    (:func:`skinimg.indices.choose_shared_branch`), as ``compare`` and ``track`` do for photos of the same skin:
    a subject's rows are the same skin, and brown skin photographed twice can otherwise swap its haemoglobin twin
    between the shots.  Rows already read on that branch keep their values; the others are re-measured (in place).
    ``photo(image)`` and ``row_mask(rgb, skin, row)`` prepare a row as the first pass did."""
    by_subject: dict = {}
    for rec in out:
        by_subject.setdefault(rec["subject"], []).append(rec)
    for recs in by_subject.values():
        if len(recs) < 2:
            continue
        loaded = []
        for rec in recs:
            rgb, skin = photo(rec["image"])
            loaded.append((rgb, row_mask(rgb, skin, rec)))
        branch = choose_shared_branch(loaded, params=params)
        shared = replace(params, branch=branch)
        for rec, (rgb, mask) in zip(recs, loaded):
            method = rec["chromophore_method"]
            if "branch)" not in method or method.endswith(f"({branch} branch)"):
                continue  # no twin (nothing to share) or already on the shared branch
            row, _ = measure(rgb, mask, params=shared, return_maps=False)
            rec.update({n: float(row[n]) for n in INDEX_NAMES}, chromophore_method=row["chromophore_method"])


# ----------------------------------------------------------------------------- statistics


def _tone_rows(x, y, cal, tones) -> list[dict]:
    rows = []
    for tone in ITA_CATEGORIES:
        sel = np.array([t == tone for t in tones])
        if not sel.any():
            continue
        ba = bland_altman(cal[sel], y[sel])
        rows.append({"tone": tone, "n": int(sel.sum()),
                     "pearson": correlation(x[sel], y[sel], n_resamples=0)["r"] if sel.sum() >= 3 else math.nan,
                     "ba_bias": ba["bias"], "ba_sd": ba["sd"]})
    return rows


def run_agreement(images: str | os.PathLike, reference: str | os.PathLike, *, columns: Sequence[str] | None = None,
                  rank_by: str | None = None, method: str = "model", roi_is_skin: bool = False,
                  calibration: str = "none", index_params: IndexParams | None = None,
                  user: UserIndexRunner | None = None, seed: int = 0, n_resamples: int = BOOTSTRAP_RESAMPLES,
                  progress: Callable[[str], None] | None = None) -> dict:
    """The agreement suite: read, measure, and compare every index with every reference column.

    Returns
    -------
    dict
        ``status``; ``reference`` (path), ``columns`` (reference columns), ``rank_by``,
        ``criterion``; ``index_names`` (built-ins then user indices); ``method`` (``"roi"`` with
        ``roi_is_skin``);
        ``photos``: the measured rows; ``pairs``: one dict per (index, reference) with
        the :func:`skinimg.stats.agreement` statistics (minus the per-photo
        predictions) and ``tones`` (per ITA class: n, Pearson r, Bland-Altman bias and
        SD of the calibrated index); ``leaderboard`` (:func:`leaderboard`); ``skipped``
        (the reference's and the measuring's skips, with counts); ``index_errors``;
        ``n_rows``, ``n_photos``, ``n_measured``.

    Raises
    ------
    SkinImgError
        A bad reference (:func:`read_reference`), an unknown ``rank_by``, or no row measured.
    """
    ref = read_reference(reference, columns=columns)
    if rank_by is not None and rank_by not in ref.columns:
        raise SkinImgError(f"--rank-by {rank_by}: not a reference column (use one of {', '.join(ref.columns)})",
                           ref.path.name)
    rank_by = rank_by or ref.columns[0]
    rows, skipped_m = measure_reference(ref, images, method=method, roi_is_skin=roi_is_skin, calibration=calibration,
                                        index_params=index_params, user=user, progress=progress)
    skipped = dict(ref.skipped)
    skipped.update(skipped_m)
    skipped["counts"] = {"duplicate_rows": ref.skipped["duplicate_rows"],
                         "missing_images": len(skipped_m["missing_images"]),
                         "unreadable": len(skipped_m["unreadable"]), "no_skin": len(skipped_m["no_skin"])}
    if not rows:
        first = next((v[0] for k, v in skipped_m.items() if v), None)
        why = f" (first: line {first['line']}, {first['image']}: {first['reason']})" if first else ""
        raise SkinImgError(f"no reference row could be measured{why}", ref.path.name)
    names = list(INDEX_NAMES) + (user.names if user else [])
    subj = [r["subject"] for r in rows] if ref.has_subject else None
    sess = [r["session"] or "" for r in rows] if ref.has_session else None
    tones = [r["ita_category"] for r in rows]
    pairs = []
    for col in ref.columns:
        y = np.array([r["values"][col] for r in rows], dtype=np.float64)
        for name in names:
            x = np.array([r[name] for r in rows], dtype=np.float64)
            st = agreement_stats(x, y, subjects=subj, sessions=sess, seed=seed, n_resamples=n_resamples)
            ok = np.isfinite(x) & np.isfinite(y)
            cal = np.full(x.size, np.nan)
            cal[ok] = st.pop("calibrated")
            st["tones"] = _tone_rows(x[ok], y[ok], cal[ok], [t for t, o in zip(tones, ok) if o])
            pairs.append({"index": name, "reference": col, **st, "values": x.tolist(), "calibrated": cal.tolist()})
        if progress:
            progress(f"agreement: statistics against {col}")
    errors: dict = {}
    for r in rows:
        for name, err in r["index_errors"].items():
            d = errors.setdefault(name, {"n_failed": 0, "first_image": r["image"], "first_error": err})
            d["n_failed"] += 1
    res = {"status": "ok", "reference": os.fspath(ref.path), "columns": ref.columns, "rank_by": rank_by,
           "criterion": CRITERION, "index_names": names, "has_subject": ref.has_subject,
           "has_session": ref.has_session, "method": "roi" if roi_is_skin else method, "calibration": calibration,
           "photos": rows,
           "pairs": pairs, "skipped": skipped, "index_errors": errors, "n_rows": len(ref.rows),
           "n_photos": len({r["image"] for r in rows}), "n_measured": len(rows)}
    res["leaderboard"] = leaderboard(res)
    return res

"""Segmenting folders of photos (``skinimg segment``) and scoring segmentation on labelled folders (``eval-segment``)."""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import __version__
from ..color import ITA_CATEGORIES
from ..errors import SkinImgError
from ..io import (DEFAULT_MAX_PIXELS, find_truth_mask, load_image, make_output_folder, mask_path, read_mask,
                  remove_stale_temp_files, write_csv, write_json, write_png)
from ..segment import (SegmentParams, check_method, evaluate_masks, load_model, metrics_from_counts, network_record,
                       segment_skin, true_skin_tone)
from .analyze import _discover
from .executors import map_jobs
from .roi import RoiLookup, fit_roi, roi_columns

__all__ = ["SEGMENT_COLUMNS", "EVAL_COLUMNS", "EVAL_TONE_COLUMNS", "segment_paths", "evaluate_folders"]

#: Columns of ``segment.csv`` (the issue's contract, then ``skinimg segment --check``'s two, empty without it, then
#: the region of interest the mask was restricted to: its file, ``file`` / ``propagated`` / ``none``, its area).
SEGMENT_COLUMNS = ("image", "status", "error", "skin_fraction", "method", "stage_agreement", "mask_check", "roi",
                   "roi_source", "roi_pixels")
#: Columns of the ``eval-segment`` table (``rules_f1``, ``rules_iou``: the rules baseline on the same photo, when
#: computed).
EVAL_COLUMNS = ("image", "status", "error", "precision", "recall", "f1", "iou", "pred_fraction", "true_fraction",
                "pixels", "ita_deg", "tone", "stage_agreement", "mask_check", "rules_f1", "rules_iou")
#: Columns of the per-tone table of :func:`evaluate_folders` (``eval_segment_tones.csv``; ``mean_f1``: mean of the
#: photos' own F1; ``rules_*``: the rules baseline, pooled and mean, when computed).
EVAL_TONE_COLUMNS = ("tone", "n_images", "precision", "recall", "f1", "iou", "worst_f1", "worst_image", "mean_f1",
                     "rules_f1", "rules_iou", "rules_mean_f1")


def roi_union(ref, shape: tuple[int, int], photo_shape: tuple[int, int] | None = None) -> tuple[np.ndarray | None, dict]:
    """The union of a photo's ROI regions (:func:`skinimg.batch.fit_roi`; None without ROI) and the ROI columns of
    ``segment.csv``; ``photo_shape``: the photo's own (H, W) when ``shape`` is a working copy."""
    _, regions = fit_roi(ref, shape, photo_shape) if ref is not None else (None, {})
    union = np.logical_or.reduce(list(regions.values())) if regions else None
    cols = roi_columns(ref, "", None if union is None else int(np.count_nonzero(union)))
    return union, {k: cols[k] for k in ("roi", "roi_source", "roi_pixels")}


def _segment_one(job) -> dict:
    item, out, method, roi_ref, params, max_pixels, check = job
    row = {"image": item.relpath, "status": "error", "error": None, "skin_fraction": None, "method": method,
           "stage_agreement": None, "mask_check": None}
    row.update({k: v for k, v in roi_columns(roi_ref).items() if k != "region"})
    try:
        rgb, _ = load_image(item.path, max_pixels=max_pixels, label=item.relpath)
        roi, cols = roi_union(roi_ref, rgb.shape[:2])
        row.update(cols)
        res = segment_skin(rgb, method=method, roi=roi, params=params, check=check)
    except SkinImgError as exc:
        row["error"] = exc.reason
        return row
    except MemoryError:
        row["error"] = "out of memory (try --max-pixels or fewer --workers)"
        return row
    write_png(mask_path(out, item.stem_rel), res.mask.view(np.uint8) * np.uint8(255))
    row.update(status=res.status, error=None if res.status == "ok" else "no skin found",
               skin_fraction=res.skin_fraction)
    row.update(res.flag_columns)
    return row


def segment_paths(paths: Sequence[str | os.PathLike], out: str | os.PathLike, *, method: str = "model",
                  roi: str | os.PathLike | RoiLookup | None = None, workers: int | None = None,
                  params: SegmentParams | None = None, max_pixels: int = DEFAULT_MAX_PIXELS, check: bool = False) -> dict:
    """Segment every photo under ``paths``; write ``out/masks/<rel>/<stem>.png``, ``out/segment.csv`` and
    ``out/segment.json`` (the parameters, the network's file and SHA-256, the skinimg version, the counts).

    Masks are 8-bit PNGs, 255 = skin, 0 = not, the size of the upright photo.
    ``segment.csv`` has the columns :data:`SEGMENT_COLUMNS`; a file that cannot be
    read (or an ROI that does not fit it) is a ``status="error"`` row with the
    reason and no mask; a photo without skin is ``status="no_skin"`` (an all-zero
    mask is written).  ``check=True`` (``method="model"``): each row also gets ``stage_agreement``
    (:attr:`SegmentResult.agreement`) and ``mask_check`` (``"ok"``, or ``"check"`` below :data:`AGREEMENT_MIN`);
    both are empty otherwise.  ``roi``: one ROI file for every photo, or a :class:`RoiLookup` (default: each
    photo's ``<stem>.roi.json`` / ``.roi.png`` beside it); the mask is the skin inside the union of the ROI's
    regions (columns ``roi``, ``roi_source``, ``roi_pixels``).

    Returns
    -------
    dict
        ``rows`` (sorted by image), ``n_images``, ``n_ok``, ``n_no_skin``, ``n_error``, ``n_check`` (masks flagged
        by ``check``), ``elapsed_s``.

    Raises
    ------
    SkinImgError
        No image found, missing input path, missing ROI file, unreadable model,
        output folder not writable (fatal: the run stops).
    """
    t0 = time.perf_counter()
    check_method(method)
    params = params or SegmentParams()
    items = _discover(paths)
    lookup = roi if isinstance(roi, RoiLookup) else RoiLookup.from_options(roi)
    if method == "model":
        load_model()  # a missing or unreadable model is fatal before any work
    out = make_output_folder(out)  # and removes the temporary files of a killed run
    jobs = [(item, os.fspath(out), method, lookup.item(item), params, max_pixels, check) for item in items]
    rows = map_jobs(_segment_one, jobs, workers)
    rows.sort(key=lambda r: r["image"])
    write_csv(out / "segment.csv", rows, SEGMENT_COLUMNS)
    counts = {s: sum(r["status"] == s for r in rows) for s in ("ok", "no_skin", "error")}
    write_json(out / "segment.json", {
        "command": "segment", "skinimg_version": __version__, "method": method, "params": asdict(params),
        "skin_network": network_record(method),
        "check": bool(check), "inputs": [os.fspath(p) for p in paths], "n_images": len(rows), "n_ok": counts["ok"],
        "n_no_skin": counts["no_skin"], "n_error": counts["error"]})
    remove_stale_temp_files(out)
    return {"rows": rows, "n_images": len(rows), "n_ok": counts["ok"], "n_no_skin": counts["no_skin"],
            "n_error": counts["error"], "n_check": sum(r["mask_check"] == "check" for r in rows),
            "elapsed_s": time.perf_counter() - t0}


def _tone_table(rows: list[dict], counts: dict[str, list[int]], rules_counts: dict[str, list[int]]) -> list[dict]:
    """Pixel-pooled metrics per tone (ITA classes lightest first, then "unknown", then "all") over ok rows."""
    out = []
    for tone in (*ITA_CATEGORIES, "unknown", "all"):
        sel = [r for r in rows if r["status"] == "ok" and (tone == "all" or r["tone"] == tone)]
        if not sel or (tone == "all" and len(out) < 2):  # "all" only beside two or more tones
            continue
        worst = min(sel, key=lambda r: r["f1"])
        m = metrics_from_counts(*counts[tone])
        row = {"tone": tone, "n_images": len(sel), "precision": m["precision"], "recall": m["recall"], "f1": m["f1"],
               "iou": m["iou"], "worst_f1": worst["f1"], "worst_image": worst["image"],
               "mean_f1": float(np.mean([r["f1"] for r in sel])), "rules_f1": None, "rules_iou": None,
               "rules_mean_f1": None}
        if tone in rules_counts:
            mr = metrics_from_counts(*rules_counts[tone])
            row.update(rules_f1=mr["f1"], rules_iou=mr["iou"], rules_mean_f1=float(np.mean([r["rules_f1"] for r in sel])))
        out.append(row)
    return out


def evaluate_folders(images: str | os.PathLike, masks: str | os.PathLike, *, method: str = "model",
                     params: SegmentParams | None = None, pred_masks: str | os.PathLike | None = None,
                     check: bool = False, baseline: bool = True) -> dict:
    """Segment every photo under ``images`` and compare with the true masks under ``masks``.

    The true mask of ``images/<rel>/<stem>.<ext>`` is ``masks/<rel>/<stem>.png`` or
    ``masks/<rel>/<stem>_mask.png`` (the layout of ``skinimg synth`` truth folders; other formats:
    :func:`skinimg.io.find_truth_mask`); non-zero = skin.  With ``pred_masks`` the predictions are read from that folder
    (same naming, e.g. the ``masks/`` of a ``skinimg segment`` run) instead of
    being computed.  ``check=True`` (computed masks of ``method="model"``): each row also gets
    ``stage_agreement`` and ``mask_check`` as ``skinimg segment --check`` writes them, so that the flag can be
    judged against the truth on one's own labelled photos.  ``baseline=True`` (computed masks of
    ``method="model"``): the rules baseline is scored on the same photos beside it (``rules_f1``, ``rules_iou``
    per photo; ``rules_*`` per tone and in ``overall_rules``).

    Returns
    -------
    dict
        ``rows`` (one per image, :data:`EVAL_COLUMNS`; images without a true mask or
        unreadable are ``status="error"``), ``overall`` (pixel-pooled precision,
        recall, f1, iou over all ok images), ``overall_rules`` (the same for the rules baseline, or None),
        ``by_tone`` (the same pooled per skin tone, :data:`EVAL_TONE_COLUMNS`: the ITA class of each photo's true
        skin, :func:`true_skin_tone`; a row ``all`` when there are two tones or more),
        ``mean_f1`` (mean of per-image F1), ``rules_mean_f1``, ``n_images``, ``n_ok``, ``n_error``, ``method``, and ``check``
        (None unless checked: ``n_flagged``, ``mean_f1_flagged``, ``mean_f1_not_flagged``, the latter two None
        when there is no such photo).
    """
    images, masks = Path(images), Path(masks)
    items = [i for i in _discover([images]) if not Path(i.relpath).with_suffix("").name.endswith("_mask")
             or find_truth_mask(masks, i.stem_rel) is not None]
    if not items:
        raise SkinImgError("no image files found", os.fspath(images))
    if not masks.is_dir():
        raise SkinImgError("mask folder not found", os.fspath(masks))
    if method == "model" and pred_masks is None:
        load_model()  # a missing or unreadable model is fatal before any work
    with_rules = baseline and method == "model" and pred_masks is None
    rows, tot, by_tone, rules_tot, rules_by_tone = [], [0, 0, 0, 0], {}, [0, 0, 0, 0], {}
    for item in items:
        row = {c: None for c in EVAL_COLUMNS}
        row["image"] = item.relpath
        try:
            tpath = find_truth_mask(masks, item.stem_rel)
            if tpath is None:
                raise SkinImgError(f"no true mask ({item.stem_rel}.png or {item.stem_rel}_mask.png) in the mask folder")
            truth = read_mask(tpath, label=tpath.relative_to(masks).as_posix())
            rgb = None
            if pred_masks is not None:
                ppath = Path(pred_masks) / f"{item.stem_rel}.png"
                pred = read_mask(ppath, label=f"{item.stem_rel}.png")
                try:  # only for the tone: a photo that cannot be read leaves it "unknown"
                    rgb, _ = load_image(item.path, label=item.relpath)
                except SkinImgError:
                    pass
            else:
                rgb, _ = load_image(item.path, label=item.relpath)
                res = segment_skin(rgb, method=method, params=params, check=check)
                pred = res.mask
                if res.agreement is not None:
                    row.update(stage_agreement=res.agreement, mask_check=res.mask_check)
                rules_pred = segment_skin(rgb, method="rules", params=params).mask if with_rules else None
            if pred.shape != truth.shape:
                raise SkinImgError(f"true mask is {truth.shape[1]}x{truth.shape[0]} pixels, the photo "
                                   f"{pred.shape[1]}x{pred.shape[0]}")
            m = evaluate_masks(pred, truth)
        except SkinImgError as exc:
            row.update(status="error", error=exc.reason)
            rows.append(row)
            continue
        ita, tone = true_skin_tone(rgb, truth) if rgb is not None and rgb.shape[:2] == truth.shape else (
            float("nan"), "unknown")
        for k, key in enumerate(("tp", "fp", "fn", "tn")):
            for c in (tot, by_tone.setdefault(tone, [0, 0, 0, 0]), by_tone.setdefault("all", [0, 0, 0, 0])):
                c[k] += m[key]
        if with_rules and rules_pred is not None and rules_pred.shape == truth.shape:
            mr = evaluate_masks(rules_pred, truth)
            row.update(rules_f1=mr["f1"], rules_iou=mr["iou"])
            for k, key in enumerate(("tp", "fp", "fn", "tn")):
                for c in (rules_tot, rules_by_tone.setdefault(tone, [0, 0, 0, 0]),
                          rules_by_tone.setdefault("all", [0, 0, 0, 0])):
                    c[k] += mr[key]
        row.update(status="ok", error=None, precision=m["precision"], recall=m["recall"], f1=m["f1"], iou=m["iou"],
                   pred_fraction=(m["tp"] + m["fp"]) / truth.size, true_fraction=(m["tp"] + m["fn"]) / truth.size,
                   pixels=int(truth.size), ita_deg=None if math.isnan(ita) else ita, tone=tone)
        rows.append(row)
    ok = [r for r in rows if r["status"] == "ok"]
    overall = dict(metrics_from_counts(*tot)) if ok else None
    checked = None
    if any(r["mask_check"] is not None for r in ok):
        def mean_f1(flag):
            f = [r["f1"] for r in ok if r["mask_check"] == flag]
            return float(np.mean(f)) if f else None

        checked = {"n_flagged": sum(r["mask_check"] == "check" for r in ok), "mean_f1_flagged": mean_f1("check"),
                   "mean_f1_not_flagged": mean_f1("ok")}
    return {
        "rows": rows,
        "overall": overall,
        "overall_rules": dict(metrics_from_counts(*rules_tot)) if ok and with_rules else None,
        "by_tone": _tone_table(rows, by_tone, rules_by_tone if with_rules else {}),
        "mean_f1": float(np.mean([r["f1"] for r in ok])) if ok else None,
        "rules_mean_f1": float(np.mean([r["rules_f1"] for r in ok])) if ok and with_rules else None,
        "n_images": len(rows),
        "n_ok": len(ok),
        "n_error": len(rows) - len(ok),
        "method": "masks" if pred_masks is not None else method,
        "check": checked,
    }

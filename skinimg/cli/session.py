"""``skinimg compare`` (two photos of the same skin) and ``skinimg track`` (every series of a study)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from ..batch import RoiLookup, compare_files, track
from ..io import DEFAULT_WORK_PIXELS, format_collapsed
from ..session import LIGHTING_MODES, NO_ALIGNMENT, REGISTRATION_MODES, CompareParams
from .group import EXIT_PARTIAL, cli, is_quiet
from ..calibrate import CalibrationParams
from .options import (calibrate_option, calibration_params, calibration_settings, echo_json, json_option,
                      max_pixels_option, method_option, no_roi_files_option, out_option, resolution_option,
                      roi_files_options, roi_option, second_stage_option)

log = logging.getLogger("skinimg")


def _parse_mdc(ctx, param, values):
    out = {}
    for v in values or ():
        name, sep, num = v.partition("=")
        try:
            out[name.strip()] = float(num)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise click.BadParameter(f"expected INDEX=VALUE such as hemoglobin=0.002, got {v!r}")
    return out



def _compare_options(f):
    f = click.option("--mdc", "mdc", multiple=True, callback=_parse_mdc, metavar="INDEX=VALUE",
                     help="Override the minimal detectable change of an index (index units), e.g. "
                          "hemoglobin=0.002. Repeatable. Defaults: models/mdc.json, with larger values for "
                          "brown and dark skin (ITA of the darker photo <= -10 / -30 degrees).")(f)
    f = click.option("--crosstalk-allowance/--no-crosstalk-allowance", "crosstalk", default=True, show_default=True,
                     help="Widen the haemoglobin MDC by the melanin cross-talk measured on phantoms "
                          "(coefficient x |melanin change|, models/mdc.json), so a pigment change is not "
                          "called a change of redness.")(f)
    f = calibration_settings(f)
    f = calibrate_option("auto")(f)
    f = click.option("--lighting", type=click.Choice(LIGHTING_MODES), default="auto", show_default=True,
                     help="Without a chart, normalise AFTER's linear RGB to BEFORE on unchanged pixels "
                          "(skin outside the ROI, else the background).")(f)
    f = click.option("--registration", "registration", type=click.Choice(REGISTRATION_MODES), default="auto",
                     show_default=True,
                     help="How AFTER is aligned onto BEFORE: auto = ORB features, then intensity-based ECC from "
                          "several starts (each result checked by an acceptance test meant to reject a different "
                          "site), then no alignment; features / ecc = that step only; none = no pixel alignment. "
                          "Pairs that are not aligned are compared by region statistics of each photo's own skin "
                          "(registration.ok false, a warning).")(f)
    f = second_stage_option(f)
    f = method_option(f)
    f = resolution_option(f)
    return max_pixels_option(f)


def _compare_params(method, calibration, lighting, mdc, max_pixels, crosstalk=True, second_stage="mlp", chart="classic24",
                    correction="auto", reference=None, registration="auto", work_pixels=DEFAULT_WORK_PIXELS):
    cal = None if calibration == "none" else calibration_params(chart, correction, reference)
    return CompareParams(segment_method=method, calibrate=calibration, lighting=lighting, mdc=mdc,
                         max_pixels=max_pixels, crosstalk_allowance=crosstalk, second_stage=second_stage,
                         calibrate_params=None if cal == CalibrationParams() else cal, registration_mode=registration,
                         work_pixels=work_pixels)


def _registration_line(reg: dict) -> str:
    """How the pair was aligned, one line (features: inliers and residual; ECC: its acceptance correlations)."""
    if not reg.get("ok"):
        return f"registration: {NO_ALIGNMENT}: not pixel-aligned, each photo's own skin compared"
    res = reg.get("residual_px")
    checks = reg.get("checks") or {}
    how = f"{reg.get('inliers', 0)} inliers, residual {res:.2f} px" if res is not None else (
        f"correlation {checks.get('cc', float('nan')):.3f}, dark details {checks.get('detail_ncc', float('nan')):.3f}"
        + (", similarity finish" if checks.get("finish") == "similarity" else ""))
    return f"registration: {reg['method']}, {how}"


@cli.command("compare")
@click.argument("before", type=click.Path(path_type=Path))
@click.argument("after", type=click.Path(path_type=Path))
@out_option()
@roi_option("Region of interest in BEFORE's pixels: polygon JSON [[x,y],...], named regions or a mask image. "
            "Default: BEFORE's own <stem>.roi.json / .roi.png beside it.")
@click.option("--after-roi", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="AFTER's own region of interest (AFTER's pixels, the same region names), used only when the pair "
                   "cannot be aligned. Default: AFTER's own <stem>.roi.json / .roi.png beside it.")
@no_roi_files_option
@json_option("comparison.json")
@_compare_options
def compare_cmd(before, after, out, roi, after_roi, no_roi_files, as_json, method, second_stage, calibration, chart,
                correction, reference, lighting, mdc, crosstalk, registration, max_pixels, work_pixels):
    """Compare AFTER with BEFORE (same skin, two sessions).

    Aligns AFTER onto BEFORE (--registration: ORB features, else ECC from
    several starts, each result checked), normalises lighting, and measures
    every index on the skin common to both (inside --roi, else BEFORE's own
    ROI file; named regions are measured each, beside the whole skin). Writes
    OUT/comparison.json (before, after, change, change %, 95 % CI, effect size,
    MDC and verdict improved / no_change / worsened per index; per region under
    regions; how the pair was aligned), OUT/pair.png (registered pair) and
    OUT/delta_hemoglobin.png, OUT/delta_melanin.png (after - before). A pair
    that cannot be aligned is compared without pixel alignment, by region
    statistics of each photo's own skin (inside each photo's own ROI), and says
    so; pixels are paired only through an accepted alignment.
    """
    params = _compare_params(method, calibration, lighting, mdc, max_pixels, crosstalk, second_stage, chart, correction,
                             reference, registration, work_pixels)
    ref = RoiLookup.from_options(roi, None, no_roi_files).resolve(before)
    aref = RoiLookup.from_options(after_roi, None, no_roi_files).resolve(after)
    doc = compare_files(before, after, out, roi=ref if ref.source != "none" else None, params=params,
                        after_roi=aref if aref.source != "none" else None)
    if as_json:
        echo_json(doc)
    elif not is_quiet():
        click.echo(f"{_registration_line(doc['registration'])}; lighting: {doc['lighting']['method']}")
        sections = [("", doc["metrics"])] + [(f"region {n}: ", r.get("metrics") or {})
                                             for n, r in (doc.get("regions") or {}).items()]
        for prefix, metrics in sections:
            for name, m in metrics.items():
                pct = m["delta_pct"]
                rng = m.get("delta_pct_model_range")
                span = f", models {rng[0]:+.1f}..{rng[1]:+.1f} %" if rng else ""
                pct_txt = "" if pct is None else f"{pct:+.1f} %"
                if m.get("delta_pct_note"):
                    pct_txt, span = "% n/a: level near 0", ""
                click.echo(f"{prefix + name:26s} {m['before']:10.4g} -> {m['after']:10.4g}  "
                           f"({pct_txt}{span})  {m['verdict']}")
        for n, r in (doc.get("regions") or {}).items():
            if "error" in r:
                click.echo(f"region {n}: {r['error']}")
    for w in doc.get("warnings", []):
        log.info("%s", w)


@cli.command("track")
@click.argument("root", type=click.Path(file_okay=False, path_type=Path))
@out_option()
@click.option("--manifest", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="CSV with columns patient,site,session,image[,roi] (paths relative to ROOT) instead of "
                   "the folder layout.")
@roi_files_options
@click.option("--propagate-roi", "propagate_roi", is_flag=True, default=False,
              help="Carry each series' baseline ROI to the later sessions without their own ROI file, through the "
                   "registration with the baseline; written to OUT/rois/<patient>/<site>/<session>.roi.json to check.")
@_compare_options
@json_option("the result as one JSON document (the rows of series.csv, pairs, failures, notes)")
def track_cmd(root, out, manifest, roi_dir, no_roi_files, propagate_roi, method, second_stage, calibration, chart,
              correction, reference, lighting, mdc, crosstalk, registration, max_pixels, work_pixels, as_json):
    """Compare every patient/site series in ROOT with its baseline and previous session.

    ROOT is laid out as ROOT/<patient>/<site>/<session>/<image> (sessions named
    YYYY-MM-DD, else ordered by EXIF capture time), or described by --manifest.
    Writes OUT/series.csv (one row per patient, site, session, reference and
    index) and OUT/pairs/<patient>/<site>/<ref>__<session>/comparison.json with
    its maps. A session's own ROI file (<stem>.roi.json / .roi.png beside the
    photo, in --roi-dir, or the manifest's roi column) is the ROI of the pairs
    it is the reference of; named regions give rows per region (column region).
    --propagate-roi carries the baseline's ROI to later sessions; a refused
    propagation is said, never silent. series.csv's registration column says
    how each pair was aligned (pairs that cannot be aligned are compared by
    region statistics and keep their rows). Repeated warnings are printed once
    with a count (a photo in several pairs counts once). A failing pair is an
    error row (and a line on stderr); the others go on; exit code 2 when any
    pair failed.
    """
    quiet = is_quiet()

    def progress(label, doc, err):
        if err is not None:
            click.echo(f"skinimg: {label}: {err}", err=True)
        elif not quiet and not as_json:
            click.echo(f"{label}: ok ({doc['registration']['method']})")

    params = _compare_params(method, calibration, lighting, mdc, max_pixels, crosstalk, second_stage, chart, correction,
                             reference, registration, work_pixels)
    res = track(root, out, manifest=manifest, params=params, progress=progress,
                rois=RoiLookup.from_options(None, roi_dir, no_roi_files), propagate_roi=propagate_roi)
    if as_json:
        echo_json({k: v for k, v in res.items() if k not in ("outputs", "rois")})
    for n in res["notes"]:
        log.info("%s", n)
    for ref in res["rois"].values():
        if ref.error:
            click.echo(f"skinimg: {ref.error}", err=True)
        elif not quiet:
            click.echo(f"skinimg: ROI propagated to {ref.label}: check it", err=True)
    if not quiet:
        for group in res["warnings"]:
            click.echo(f"skinimg: warning: {format_collapsed(group)}", err=True)
        aligned = res["n_pairs"] - res["n_failed"] - res["n_unaligned"]
        click.echo(f"skinimg: {res['n_pairs']} pair(s) compared ({aligned} pixel-aligned, {res['n_unaligned']} by "
                   f"region statistics), {res['n_failed']} failed; results in {out}", err=True)
    if res["n_failed"]:
        sys.exit(EXIT_PARTIAL)

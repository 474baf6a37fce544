"""``skinimg analyze`` (indices of every photo) and ``skinimg calibrate`` (colour correction of every photo)."""

from __future__ import annotations

import sys

import click

from ..batch import CSV_COLUMNS, AnalyzeParams, RoiLookup, analyze_paths, calibrate_paths, map_names
from ..calibrate import FALLBACKS, CalibrationParams
from ..calibrate import METHODS as CORRECTION_METHODS
from ..indices import BRANCHES, CHROMOPHORE_METHODS, IndexParams
from .group import EXIT_PARTIAL, cli, is_quiet
from .options import (calibrate_option, calibration_params, calibration_settings, chart_option, check_needs_model,
                      check_option, correction_help, echo_index_errors, echo_json_lines, flag_note, flags_computed,
                      index_option, json_option, max_pixels_option, method_option, out_option, paths_argument,
                      reference_option, renamed_option, resolution_option, roi_files_options, roi_option,
                      second_stage_option,
                      user_specs, white_option, workers_option)


@cli.command("analyze")
@paths_argument
@out_option()
@workers_option
@click.option("--maps", "maps", default="default", show_default=True, metavar="all|default|none|LIST",
              help="Per-image maps to write (float32 TIFF + PNG heatmap): default = hemoglobin, melanin, "
                   "erythema_index; all = every index; or comma-separated index names.")
@click.option("--no-maps", "no_maps", is_flag=True, help="Do not write the per-image maps (same as --maps none).")
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet"]), default="csv", show_default=True,
              help="Table format besides results.sqlite: indices.csv is always written; parquet adds "
                   "indices.parquet (needs pyarrow).")
@json_option("the rows of indices.csv, one JSON object per line,")
@method_option
@second_stage_option
@check_option
@click.option("--chromophores", type=click.Choice(CHROMOPHORE_METHODS), default="basis", show_default=True,
              help="Haemoglobin/melanin separation: calibrated basis (models/chromophore_basis.json) or per-image ICA.")
@click.option("--branch", type=click.Choice(BRANCHES), default="auto", show_default=True,
              help="Brown/dark skin, where two skins share a colour: choose per photo from brightness (auto), or "
                   "hold one for a series of the same skin (compare/track share one per pair).")
@calibrate_option("none")
@calibration_settings
@white_option("White/gray region (pixels) for --calibrate auto when no chart is found.")
@click.option("--exclude", multiple=True, metavar="PATTERN",
              help="Skip files in folders whose relative name matches this shell pattern (e.g. 'truth/*'); "
                   "repeatable.")
@roi_option("One region of interest for every photo (all of the same size): polygon JSON [[x, y], ...], named "
            "regions {\"regions\": {\"name\": [[x, y], ...]}} or a mask PNG. Default: each photo's own "
            "<stem>.roi.json / .roi.png.")
@roi_files_options
@max_pixels_option
@resolution_option
@index_option
def analyze_cmd(paths, out, workers, maps, no_maps, fmt, as_json, method, second_stage, check, chromophores, branch,
                calibration, chart, correction, reference, white, exclude, roi, roi_dir, no_roi_files, max_pixels,
                work_pixels, user_index, index_timeout):
    """Measure redness and pigmentation indices of every photo in PATHS.

    Writes OUT/indices.csv (one row per image), the same rows in
    OUT/results.sqlite (table indices) and, with --format parquet,
    OUT/indices.parquet; per-image maps of the --maps indices in OUT/maps/
    (float32 TIFF, NaN off skin, and a PNG heatmap); parameters in OUT/analyze.json;
    a photo larger than --resolution megapixels is measured on an
    area-averaged copy of that size (columns analysis_width, analysis_height;
    its maps have that size too; --resolution full keeps every photo's own);
    with --calibrate auto|chart the colour correction of each photo in
    OUT/calibration/<name>.json.
    A photo is measured inside its region of interest: --roi, else its own
    <stem>.roi.json / .roi.png (beside it or in --roi-dir); named regions
    give one row per region (column region) after the whole skin's row;
    columns roi, region, roi_source and roi_pixels say which was used.
    --index NAME=module:function adds your own index as columns NAME,
    NAME_median, NAME_p10, NAME_p90, NAME_std (and its map); one that fails
    on a photo leaves only its own columns empty and says why in the column
    index_errors.
    A bad file or ROI is a row with status=error and the reason; exit code 2
    when any image failed or had no skin, or a user index failed.
    """
    check_needs_model(check, method)
    if no_maps and maps != "default" and map_names(maps):
        raise click.UsageError("give only one of --no-maps and --maps")
    cal = None if calibration == "none" else calibration_params(chart, correction, reference)
    params = AnalyzeParams(segment_method=method, max_pixels=max_pixels, calibration=calibration, white=white,
                           indices=IndexParams(chromophore_method=chromophores, branch=branch),
                           second_stage=second_stage, check=check, work_pixels=work_pixels,
                           calibrate_params=None if cal == CalibrationParams() else cal)
    summary = analyze_paths(paths, out, params=params, workers=workers, maps="none" if no_maps else maps,
                            formats=[fmt], exclude=exclude, roi=RoiLookup.from_options(roi, roi_dir, no_roi_files),
                            indices=user_specs(user_index), index_timeout=index_timeout or None)
    if as_json:
        echo_json_lines(summary["rows"], summary["columns"])
    for row in summary["rows"]:
        if row["status"] != "ok":
            where = f" [{row['region']}]" if row["region"] else ""
            click.echo(f"skinimg: {row['image']}{where}: {row['error']}", err=True)
        elif row.get("mask_check") == "check" and not is_quiet():
            click.echo(f"skinimg: {row['image']}: {flag_note(row)}", err=True)
    n_bad = summary["n_error"] + summary["n_no_skin"] + len(summary["index_errors"])
    echo_index_errors(summary["index_errors"], summary["n_ok"])
    if not is_quiet():
        flagged = f", {summary['n_check']} to check by eye" if flags_computed(method, check, second_stage) else ""
        click.echo(f"skinimg: analyzed {summary['n_images']} image(s): {summary['n_ok']} ok, "
                   f"{summary['n_no_skin']} without skin, {summary['n_error']} failed{flagged}; results in {out}",
                   err=True)
    if n_bad:
        sys.exit(EXIT_PARTIAL)


@cli.command("calibrate")
@paths_argument
@out_option()
@chart_option
@reference_option
@white_option("White/gray region (pixels) used for white balance when no chart is found.")
@click.option("--require-chart", is_flag=True, help="A photo without a chart is an error (status=error).")
@renamed_option("--correction", "--method", "correction", type=click.Choice(CORRECTION_METHODS),
                default="auto", show_default=True, help=correction_help)
@click.option("--fallback", type=click.Choice(FALLBACKS), default="gray_world", show_default=True,
              help="Without a chart and without --white: gray world or brightest non-skin pixels, or none (leave "
                   "the photo as it is).")
@max_pixels_option
@json_option("the rows of calibrate.csv, one JSON object per line,")
def calibrate_cmd(paths, out, chart, reference, white, require_chart, correction, fallback, max_pixels, as_json):
    """Colour-correct photos with the ColorChecker in the frame (or a fallback).

    Writes OUT/calibrated/<name>.png (corrected, same bit depth, no metadata),
    OUT/calibration/<name>.json (matrix, method, residuals, chart corners) and
    OUT/calibrate.csv (one row per image: CIEDE2000 before, after and
    leave-one-out).  A chart that does not match its reference after the fit
    gets a one-line warning on stderr (measured values: --reference).  Without
    a chart: --white region, else --fallback (gray world on non-skin pixels by
    default); one line says which.  Exit code 2 when some files failed.
    """
    def progress(row, message):
        if row["status"] != "ok":
            click.echo(f"skinimg: {message}", err=True)
            return
        if as_json:
            echo_json_lines([row], CSV_COLUMNS)
        else:
            click.echo(message)
        if row.get("warning"):
            click.echo(f"skinimg: {row['image']}: {row['warning']}", err=True)

    params = calibration_params(chart, correction, reference, fallback=fallback)
    res = calibrate_paths(paths, out, white=white, require_chart=require_chart, max_pixels=max_pixels,
                          params=params, progress=progress)
    if res["n_error"]:
        click.echo(f"skinimg: {res['n_error']} of {res['n_images']} file(s) failed", err=True)
        sys.exit(EXIT_PARTIAL)

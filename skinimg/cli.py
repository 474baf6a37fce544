"""The ``skinimg`` command: a thin Click layer over the library.

Only this module imports click.  Each command validates its options, calls one
library function, and formats the result.  A :class:`~skinimg.errors.SkinImgError`
becomes one line on stderr (``skinimg: <file>: <reason>``) and exit code 1.

Exit codes (all commands):

== =========================================================================
0  success (every input processed)
1  fatal error: bad option value, nothing to process, output not writable
2  some inputs failed (the others were processed; see the status column), or
   a usage error detected by Click
== =========================================================================
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from pathlib import Path

import click

# OpenCV's codecs print warnings ("PNG input buffer is incomplete") on stderr for the
# broken files skinimg reports itself in one line; keep them quiet here and in the
# worker processes, which inherit the environment.  A user's own setting wins.
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

from . import __version__
from .errors import SkinImgError

EXIT_OK = 0
EXIT_FATAL = 1
EXIT_PARTIAL = 2

log = logging.getLogger("skinimg")


class SkinImgGroup(click.Group):
    """Click group that prints SkinImgError as one line instead of a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SkinImgError as exc:
            click.echo(f"skinimg: {exc}", err=True)
            ctx.exit(EXIT_FATAL)

    def list_commands(self, ctx):  # keep --help in the order commands were added
        return list(self.commands)


def _setup_logging(verbose: int, quiet: bool) -> None:
    """Messages of skinimg's own loggers go to stderr; decoder libraries stay quiet.

    Pillow logs parse problems of broken files ("More samples per pixel ...") that
    skinimg already reports as one line per file.
    """
    level = logging.ERROR if quiet else (logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("skinimg: %(message)s"))
        log.addHandler(handler)
        log.propagate = False
    log.setLevel(level)
    logging.getLogger("PIL").setLevel(logging.CRITICAL if verbose < 2 else logging.DEBUG)


@click.group(cls=SkinImgGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="skinimg")
@click.option("-v", "--verbose", count=True, help="More messages on stderr (repeat for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """skinimg: objective redness and pigmentation measurements from skin photographs.

    Every command reads photographs (JPEG, PNG, TIFF, BMP, WebP; files or
    folders), never modifies them, and writes its results under --out.
    """
    _setup_logging(verbose, quiet)
    ctx.ensure_object(dict)
    ctx.obj["quiet"] = quiet


# ----------------------------------------------------------------------------- shared options

def out_option(required: bool = True):
    return click.option(
        "--out", "out", type=click.Path(file_okay=False, path_type=Path), required=required,
        help="Output folder (created if missing).",
    )


def max_pixels_option(f):
    return click.option(
        "--max-pixels", type=click.IntRange(min=1), default=80_000_000, show_default=True,
        help="Refuse images with more pixels than this (checked from the header, before decoding).",
    )(f)


def workers_option(f):
    return click.option(
        "--workers", type=click.IntRange(min=1), default=None,
        help="Parallel worker processes (default: number of CPUs).",
    )(f)


def paths_argument(f):
    return click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))(f)


# ----------------------------------------------------------------------------- info

@cli.command("info")
@paths_argument
@max_pixels_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per image to stdout.")
def info_cmd(paths, max_pixels, as_json):
    """Load every image in PATHS and print its size, bit depth and metadata.

    A quick check that a visit folder is readable: each bad file is one line
    naming the file and the reason.  Exit code 2 when some files failed.
    """
    from .io import discover_images, load_image

    items = discover_images(paths)
    if not items:
        raise SkinImgError("no image files found", " ".join(map(str, paths)))
    failed = 0
    for item in items:
        try:
            rgb, meta = load_image(item.path, max_pixels=max_pixels, label=item.relpath)
        except SkinImgError as exc:
            failed += 1
            if as_json:
                click.echo(json.dumps({"image": item.relpath, "status": "error", "error": exc.reason}))
            click.echo(f"skinimg: {exc}", err=True)
            continue
        d = meta.to_dict()
        d["path"] = item.relpath
        if as_json:
            click.echo(json.dumps({"image": item.relpath, "status": "ok", **d}))
        else:
            click.echo(
                f"{item.relpath}: {meta.width}x{meta.height} {meta.bit_depth}-bit {meta.format}"
                + (f", captured {meta.capture_time}" if meta.capture_time else "")
                + (f", {meta.camera_model}" if meta.camera_model else "")
                + (", ICC profile" if meta.has_icc_profile else "")
            )
    if failed:
        click.echo(f"skinimg: {failed} of {len(items)} file(s) failed", err=True)
        sys.exit(EXIT_PARTIAL)


# ----------------------------------------------------------------------------- synth (issue 2)

def _parse_size(ctx, param, value):
    try:
        h, w = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"expected HxW such as 480x640, got {value!r}") from None
    if h < 64 or w < 64 or h * w > 80_000_000:
        raise click.BadParameter(f"each side must be >= 64 and the image at most 80 megapixels, got {value!r}")
    return h, w


@cli.command("synth")
@out_option()
@click.option(
    "--set", "set_name", type=click.Choice(["samples", "ladder", "pairs", "retakes", "grid"]), default="samples",
    show_default=True,
    help="samples: the committed sample_images/ tree; ladder: N skin tones from very light to dark; "
    "pairs: N before/after pairs with a known haemoglobin change and a pose/exposure change; "
    "retakes: N pairs of the same skin with no true change; grid: N x N melanin x haemoglobin levels.",
)
@click.option("--n", "n", type=click.IntRange(min=1, max=200), default=None,
              help="Number of images (ladder, grid side) or pairs (pairs, retakes). Ignored for samples.")
@click.option("--size", default="480x640", show_default=True, callback=_parse_size,
              help="Photo size HEIGHTxWIDTH in pixels.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Base seed; the same seed gives identical files.")
@click.option("--format", "image_format", type=click.Choice(["jpg", "png"]), default="jpg", show_default=True,
              help="Photo file format (JPEG quality 90).")
@click.option("--maps/--no-maps", default=None,
              help="Write float32 melanin/haemoglobin TIFF truth maps (default: yes, except for --set samples).")
@click.pass_context
def synth_cmd(ctx, out, set_name, n, size, seed, image_format, maps):
    """Render skin phantoms with known ground truth into --out.

    Photos go to OUT/<set>/..., truth to OUT/truth/<same path>: <stem>_mask.png
    (255 = skin), <stem>.json (melanin_mean, hemoglobin_mean, spec, pose, chart
    geometry) and, with --maps, <stem>_melanin.tif / <stem>_hemoglobin.tif
    (float32 volume fractions, NaN off skin).  Deterministic: the same options
    give the same files.  `skinimg synth --set samples --out sample_images`
    regenerates the committed sample images.
    """
    from .synth import write_set

    quiet = ctx.obj.get("quiet", False) if ctx.obj else False

    def progress(rec):
        if not quiet:
            click.echo(rec["image"])

    records = write_set(set_name, out, n=n, size=size, seed=seed, image_format=image_format, maps=maps,
                        progress=progress)
    if not quiet:
        click.echo(f"skinimg: wrote {len(records)} image(s) and their truth to {out}", err=True)


# ----------------------------------------------------------------------------- segment (issue 3)

@cli.command("segment")
@paths_argument
@out_option()
@click.option("--method", type=click.Choice(["model", "rules"]), default="model", show_default=True,
              help="model: trained colour lookup table (Jones & Rehg 2002) + clean-up; rules: YCrCb box of "
                   "Chai & Ngan (1999) + the morphological clean-up (a baseline).")
@click.option("--roi", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Restrict to a region: polygon JSON [[x, y], ...] in image pixels, or a mask PNG "
                   "(non-zero = inside, same size as the photos).")
@workers_option
@max_pixels_option
def segment_cmd(paths, out, method, roi, workers, max_pixels):
    """Segment the skin of every photo in PATHS.

    Writes OUT/masks/<relative path>/<stem>.png (8-bit, 255 = skin, 0 = not,
    size of the upright photo) and OUT/segment.csv with the columns image,
    status (ok, no_skin, error), error, skin_fraction (skin pixels / all
    pixels of the photo) and method.  A bad file is an error row with the
    reason; exit code 2 when any file failed.
    """
    from .segment import segment_paths

    summary = segment_paths(paths, out, method=method, roi=roi, workers=workers, max_pixels=max_pixels)
    for row in summary["rows"]:
        if row["status"] == "error":
            click.echo(f"skinimg: {row['image']}: {row['error']}", err=True)
        elif not _analyze_quiet():
            click.echo(f"{row['image']}: {row['status']}, skin {100 * (row['skin_fraction'] or 0):.1f} %")
    if not _analyze_quiet():
        click.echo(f"skinimg: segmented {summary['n_images']} image(s): {summary['n_ok']} ok, "
                   f"{summary['n_no_skin']} without skin, {summary['n_error']} failed; masks in {out}", err=True)
    if summary["n_error"]:
        sys.exit(EXIT_PARTIAL)


@cli.command("train-segmenter")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=Path("models"),
              show_default=True, help="Folder for skin_lut.npz and skin_lut.json.")
@click.option("--uci", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="UCI Skin_NonSkin.txt (default: ../shared/data/uci-skin/ beside the repository).")
def train_segmenter_cmd(out, uci):
    """Rebuild the skin colour model (models/skin_lut.npz + .json) reproducibly.

    Trains on 80 % of the UCI skin pixels (stratified, seed 0) and on pixels of
    200 daylight phantoms of every skin tone; reports balanced accuracy on the held-out
    20 % and mask F1 per tone on 36 held-out phantoms.  The same inputs give
    byte-identical files (the JSON's date comes from $SOURCE_DATE_EPOCH if set).
    """
    from .segment import train_segmenter

    quiet = _analyze_quiet()
    prov = train_segmenter(out, uci=uci, progress=None if quiet else (lambda m: click.echo(f"skinimg: {m}", err=True)))
    m = prov["metrics"]
    click.echo(f"UCI held-out balanced accuracy: model {m['uci_test']['balanced_accuracy']:.4f}, "
               f"rules {m['uci_test_rules']['balanced_accuracy']:.4f}")
    click.echo("phantom held-out F1 by tone:   model   rules")
    for tone, v in m["phantom_test"].items():
        click.echo(f"  {tone:<28s} {v['f1']:.3f}   {m['phantom_test_rules'][tone]['f1']:.3f}")
    click.echo(f"wrote {Path(out) / 'skin_lut.npz'} and {Path(out) / 'skin_lut.json'}")


@cli.command("eval-segment")
@click.option("--images", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Folder of photos.")
@click.option("--masks", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Folder of true masks: <stem>.png or <stem>_mask.png at the photo's relative path (non-zero = skin).")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also write OUT/eval_segment.csv and OUT/eval_segment.json.")
@click.option("--method", type=click.Choice(["model", "rules"]), default="model", show_default=True,
              help="Segmentation method evaluated.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON instead of a table.")
def eval_segment_cmd(images, masks, out, method, as_json):
    """Segment the photos in --images and compare with the true masks in --masks.

    Precision, recall, F1 (Dice) and IoU per image and overall (pixels pooled
    over all images), as a table on stdout (or JSON with --json).  Images
    without a true mask are error rows; exit code 2 when any image failed.
    """
    from .io import dumps_json, write_csv, write_json
    from .segment import EVAL_COLUMNS, evaluate_folders

    res = evaluate_folders(images, masks, method=method)
    if out is not None:
        write_csv(Path(out) / "eval_segment.csv", res["rows"], EVAL_COLUMNS)
        write_json(Path(out) / "eval_segment.json", res)
    if as_json:
        click.echo(dumps_json(res))
    else:
        width = max([len("image"), len("overall (pooled)")] + [len(r["image"]) for r in res["rows"]])
        click.echo(f"{'image':<{width}}  precision  recall     f1    iou")
        for r in res["rows"]:
            if r["status"] == "ok":
                click.echo(f"{r['image']:<{width}}  {r['precision']:9.4f} {r['recall']:7.4f} {r['f1']:6.4f} {r['iou']:6.4f}")
            else:
                click.echo(f"{r['image']:<{width}}  error: {r['error']}")
        o = res["overall"]
        if o is not None:
            click.echo(f"{'overall (pooled)':<{width}}  {o['precision']:9.4f} {o['recall']:7.4f} {o['f1']:6.4f} {o['iou']:6.4f}")
    for r in res["rows"]:
        if r["status"] != "ok":
            click.echo(f"skinimg: {r['image']}: {r['error']}", err=True)
    if res["n_error"]:
        sys.exit(EXIT_PARTIAL)


# ----------------------------------------------------------------------------- analyze (issue 4)

@cli.command("analyze")
@paths_argument
@out_option()
@workers_option
@click.option("--no-maps", "no_maps", is_flag=True, help="Do not write the per-image maps (TIFF + PNG heatmaps).")
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet"]), default="csv", show_default=True,
              help="Table format besides results.sqlite: indices.csv is always written; parquet adds "
                   "indices.parquet (needs pyarrow).")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON to stdout, one object per line.")
@click.option("--method", type=click.Choice(["model", "rules"]), default="model", show_default=True,
              help="Skin segmentation method.")
@click.option("--chromophores", type=click.Choice(["basis", "ica"]), default="basis", show_default=True,
              help="Haemoglobin/melanin separation: calibrated basis (models/chromophore_basis.json) or per-image ICA.")
@max_pixels_option
def analyze_cmd(paths, out, workers, no_maps, fmt, as_json, method, chromophores, max_pixels):
    """Measure redness and pigmentation indices of every photo in PATHS.

    Writes OUT/indices.csv (one row per image), the same rows in
    OUT/results.sqlite (table indices) and, with --format parquet,
    OUT/indices.parquet; per-image maps in OUT/maps/ (float32 TIFF, NaN off
    skin, and a PNG heatmap) unless --no-maps; parameters in OUT/analyze.json.
    A bad file is a row with status=error and the reason; exit code 2 when
    any image failed or had no skin.
    """
    from .analyze import AnalyzeParams, ROW_COLUMNS, analyze_paths
    from .indices import IndexParams
    from .io import dumps_json

    params = AnalyzeParams(segment_method=method, max_pixels=max_pixels,
                           indices=IndexParams(chromophore_method=chromophores))
    summary = analyze_paths(paths, out, params=params, workers=workers, maps=not no_maps, formats=[fmt])
    if as_json:
        for row in summary["rows"]:
            click.echo(dumps_json({c: row.get(c) for c in ROW_COLUMNS}, indent=None))
    for row in summary["rows"]:
        if row["status"] != "ok":
            click.echo(f"skinimg: {row['image']}: {row['error']}", err=True)
    n_bad = summary["n_error"] + summary["n_no_skin"]
    if not _analyze_quiet():
        click.echo(f"skinimg: analyzed {summary['n_images']} image(s): {summary['n_ok']} ok, "
                   f"{summary['n_no_skin']} without skin, {summary['n_error']} failed; results in {out}", err=True)
    if n_bad:
        sys.exit(EXIT_PARTIAL)


def _analyze_quiet() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.find_root().obj and ctx.find_root().obj.get("quiet"))


# ----------------------------------------------------------------------------- calibrate (issue 5)

def _parse_white(ctx, param, value):
    if value is None:
        return None
    try:
        parts = [int(v) for v in value.split(",")]
    except ValueError:
        parts = []
    if len(parts) != 4 or parts[2] < 1 or parts[3] < 1 or parts[0] < 0 or parts[1] < 0:
        raise click.BadParameter(f"expected x,y,w,h (pixels, w and h >= 1), got {value!r}")
    return tuple(parts)


@cli.command("calibrate")
@paths_argument
@out_option()
@click.option("--chart", type=click.Choice(["classic24", "classic24_before2014"]), default="classic24", show_default=True,
              help="ColorChecker Classic (24 patches) reference values: charts made after / before Nov 2014.")
@click.option("--white", callback=_parse_white, metavar="X,Y,W,H", default=None,
              help="White/gray region (pixels) used for white balance when no chart is found.")
@click.option("--require-chart", is_flag=True, help="A photo without a chart is an error (status=error).")
@click.option("--method", type=click.Choice(["finlayson2015", "cheung2004", "linear3x3"]), default="finlayson2015",
              show_default=True, help="Correction: root-polynomial degree 2, polynomial (10 terms) or 3x3 matrix.")
@max_pixels_option
def calibrate_cmd(paths, out, chart, white, require_chart, method, max_pixels):
    """Colour-correct photos with the ColorChecker in the frame (or a fallback).

    Writes OUT/calibrated/<name>.png (corrected, same bit depth, no metadata),
    OUT/calibration/<name>.json (matrix, method, residuals, chart corners) and
    OUT/calibrate.csv (one row per image).  Without a chart: --white region,
    else gray world on non-skin pixels; one line says which.  Exit code 2 when
    some files failed.
    """
    from .calibrate import CSV_COLUMNS, CalibrationParams, calibrate_file
    from .io import discover_images, remove_stale_temp_files, write_csv

    items = discover_images(paths)
    if not items:
        raise SkinImgError("no image files found", " ".join(map(str, paths)))
    remove_stale_temp_files(out)  # left by a killed run
    params = CalibrationParams(chart=chart, method=method)
    rows, failed, stems = [], 0, set()
    for item in items:
        stem, n = item.stem_rel, 1
        while stem in stems:  # a.jpg and a.png in one folder
            n += 1
            stem = f"{item.stem_rel}~{n}"
        stems.add(stem)
        row, message = calibrate_file(item.path, out, relpath=item.relpath, out_stem=stem, white=white,
                                      require_chart=require_chart, params=params, max_pixels=max_pixels)
        rows.append(row)
        if row["status"] == "ok":
            click.echo(message)
        else:
            failed += 1
            click.echo(f"skinimg: {message}", err=True)
    write_csv(Path(out) / "calibrate.csv", rows, CSV_COLUMNS)
    remove_stale_temp_files(out)
    if failed:
        click.echo(f"skinimg: {failed} of {len(items)} file(s) failed", err=True)
        sys.exit(EXIT_PARTIAL)


# ----------------------------------------------------------------------------- compare / track (issue 6)

# ----------------------------------------------------------------------------- run (issue 7)

# ----------------------------------------------------------------------------- report / regress (issue 8)

@cli.command("report")
@click.argument("results", type=click.Path(file_okay=False, path_type=Path))
@out_option()
@click.option("--title", default="skinimg report", show_default=True, help="Title shown on every page.")
@click.option("--anonymize", is_flag=True,
              help="Replace patient folder names and image file names by stable pseudonyms (P-xxxxxx) everywhere.")
@click.option("--salt", default=None,
              help="Key of the pseudonyms (same salt = same pseudonyms across reports); default: random per report.")
@click.option("--images", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of the original photos (default: the inputs recorded in analyze.json / run.json).")
def report_cmd(results, out, title, anonymize, salt, images):
    """Write an offline HTML report of RESULTS (a folder written by analyze/track/run).

    OUT/index.html lists every patient/site with warnings and provenance;
    one page per patient/site shows each session's photo with the skin
    outline, haemoglobin and melanin heatmaps, every compared pair with its
    table of changes and verdicts, and trend plots; OUT/summary.html has the
    study's distributions and ITA classes.  No JavaScript, no network; images
    are in OUT/img/.  Needs matplotlib (pip install 'skinimg[report]').
    """
    from .report import ReportParams, build_report

    if salt is not None and not anonymize:
        raise SkinImgError("--salt only makes sense with --anonymize")
    res = build_report(results, out, params=ReportParams(title=title, anonymize=anonymize, salt=salt,
                                                         images=None if images is None else str(images)))
    click.echo(f"{res['index']}  ({res['series']} patient/site page(s), {len(res['files'])} file(s), "
               f"{len(res['warnings'])} warning(s))")


@cli.command("regress")
@click.option("--expected", "expected", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Expected indices.csv (an expected verdicts.csv beside it is checked too).")
@click.option("--results", "results", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Results folder of a fresh run (indices.csv, series.csv, pairs/).")
@click.option("--tolerance", "tolerances", multiple=True, metavar="INDEX=ABS|REL%",
              help="Override a tolerance, absolute (erythema_index=0.5) or relative (hemoglobin=2%). Repeatable.")
@click.option("--update", is_flag=True,
              help="Rewrite the expected file(s) from the results (prints what changed); exit 0.")
def regress_cmd(expected, results, tolerances, update):
    """Compare a fresh run in RESULTS with committed EXPECTED values.

    Every image and column of indices.csv is compared with a per-index
    tolerance (defaults in the README); missing or extra images and columns,
    status changes and changed comparison verdicts are drift too.  Prints a
    table of what drifted and exits 1 on drift, 0 when everything is within
    tolerance.  With --update the expected file(s) are rewritten atomically
    from the results, after printing what changes.
    """
    from .regress import format_drift_table, parse_tolerance, regress, update_expected

    tol = dict(parse_tolerance(t) for t in tolerances)
    if update and not expected.exists():
        written = update_expected(expected, results)
        for p in written:
            click.echo(f"created {p}")
        return
    res = regress(expected, results, tolerances=tol)
    what = f"{res.images_compared} image(s), {res.values_compared} value(s)"
    if res.verdicts_checked:
        what += f", {res.verdicts_compared} verdict(s)"
    if update:
        changed = regress(expected, results, exact=True).drifts
        if changed:
            click.echo(format_drift_table(changed))
        written = update_expected(expected, results)
        for p in written:
            click.echo(f"updated {p}: {len(changed)} change(s), {len(res.drifts)} of them beyond tolerance")
        return
    if res.drifts:
        click.echo(format_drift_table(res.drifts))
        click.echo(f"skinimg: drift: {len(res.drifts)} difference(s) beyond tolerance ({what} compared)", err=True)
        sys.exit(EXIT_FATAL)
    click.echo(f"ok: {what} within tolerance")


# ----------------------------------------------------------------------------- bench (issue 10)


# ----------------------------------------------------------------------------- docs

README_START = "<!-- cli-reference:start (generated by `make docs` from --help; do not edit by hand) -->"
README_END = "<!-- cli-reference:end -->"


def cli_reference_markdown() -> str:
    """The CLI reference section of the README: every command's ``--help``, in order."""
    parts = []
    with click.Context(cli, info_name="skinimg", terminal_width=100, max_content_width=100, help_option_names=["-h", "--help"]) as ctx:
        parts.append("```text\n" + cli.get_help(ctx) + "\n```\n")
        for name in cli.list_commands(ctx):
            cmd = cli.get_command(ctx, name)
            if cmd is None or cmd.hidden:
                continue
            with click.Context(cmd, info_name=f"skinimg {name}", terminal_width=100, max_content_width=100, help_option_names=["-h", "--help"]) as sub:
                parts.append(f"### `skinimg {name}`\n\n```text\n{cmd.get_help(sub)}\n```\n")
    return "\n".join(parts)


def update_readme(path: str | os.PathLike = "README.md", *, check: bool = False) -> bool:
    """Rewrite the CLI reference between the README markers; with ``check`` only report staleness.

    Returns True when the README was (or would be) changed.
    """
    text = Path(path).read_text(encoding="utf-8")
    if README_START not in text or README_END not in text:
        raise SkinImgError("README has no CLI reference markers", os.fspath(path))
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    new = f"{head}{README_START}\n{cli_reference_markdown()}{README_END}{tail}"
    changed = new != text
    if changed and not check:
        Path(path).write_text(new, encoding="utf-8")
    return changed


def main(argv=None) -> None:
    """Console-script entry point."""
    cli.main(args=argv, prog_name="skinimg")


if __name__ == "__main__":  # pragma: no cover
    main()

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


# ----------------------------------------------------------------------------- segment (issue 3)

_second_stage_option = click.option(
    "--second-stage", "second_stage", type=click.Choice(["mlp", "net", "both"]), default="mlp", show_default=True,
    help="Second stage of --method model: mlp = the per-pixel perceptron (default); net = a small U-Net; both = "
         "the mean of the two's log-odds, the most accurate on held-out phantoms (F1 >= 0.97 on every skin tone; "
         "default 0.961 on dark skin), and it flags masks as --check does at no extra cost, but it is slower (about "
         "0.5-1.3x a 12 MP photo's decode) and worse than mlp on the one real labelled photo (see the README).")


def _check_needs_model(check: bool, method: str) -> None:
    if check and method != "model":
        raise click.UsageError("--check needs --method model (it compares the model's two second stages)")


def _flags_computed(method: str, check: bool, second_stage: str) -> bool:
    """Whether the rows carry stage_agreement / mask_check (--check, or --second-stage both, of the model)."""
    return method == "model" and (check or second_stage == "both")


def _flag_note(row: dict) -> str:
    return f"check the mask (the two stages agree {row['stage_agreement']:.2f})"


@cli.command("segment")
@paths_argument
@out_option()
@click.option("--method", type=click.Choice(["model", "rules"]), default="model", show_default=True,
              help="model: trained colour lookup table (Jones & Rehg 2002) + clean-up; rules: YCrCb box of "
                   "Chai & Ngan (1999) + the morphological clean-up (a baseline).")
@click.option("--roi", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Restrict to a region: polygon JSON [[x, y], ...] in image pixels, or a mask PNG "
                   "(non-zero = inside, same size as the photos).")
@_second_stage_option
@click.option("--check", is_flag=True, default=False,
              help="Also run the other second stage and flag masks on which the two disagree (intersection over "
                   "union < 0.85: mask_check = check); on held-out phantoms 29 of 47 failed masks, 5 of 1 153 good ones. "
                   "About 10-20 ms more per 12 MP photo (implied by --second-stage both).")
@workers_option
@max_pixels_option
def segment_cmd(paths, out, method, roi, second_stage, check, workers, max_pixels):
    """Segment the skin of every photo in PATHS.

    Writes OUT/masks/<relative path>/<stem>.png (8-bit, 255 = skin, 0 = not,
    size of the upright photo) and OUT/segment.csv with the columns image,
    status (ok, no_skin, error), error, skin_fraction (skin pixels / all
    pixels of the photo), method, and with --check or --second-stage both
    stage_agreement (0-1) and mask_check (ok, or check: look at that mask).  A bad file is an error row
    with the reason; exit code 2 when any file failed.
    """
    from .segment import SegmentParams, segment_paths

    _check_needs_model(check, method)
    summary = segment_paths(paths, out, method=method, roi=roi, workers=workers, max_pixels=max_pixels,
                            params=SegmentParams(stage2_model=second_stage), check=check)
    for row in summary["rows"]:
        if row["status"] == "error":
            click.echo(f"skinimg: {row['image']}: {row['error']}", err=True)
        elif not _analyze_quiet():
            flag = ""
            if row["mask_check"] == "check":
                flag = f" - {_flag_note(row)}"
            click.echo(f"{row['image']}: {row['status']}, skin {100 * (row['skin_fraction'] or 0):.1f} %{flag}")
    if not _analyze_quiet():
        checked = f", {summary['n_check']} to check by eye" if _flags_computed(method, check, second_stage) else ""
        click.echo(f"skinimg: segmented {summary['n_images']} image(s): {summary['n_ok']} ok, "
                   f"{summary['n_no_skin']} without skin, {summary['n_error']} failed{checked}; masks in {out}",
                   err=True)
    if summary["n_error"]:
        sys.exit(EXIT_PARTIAL)


@cli.command("train-segmenter")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=Path("models"),
              show_default=True, help="Folder for skin_lut.npz and skin_lut.json.")
@click.option("--uci", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="UCI Skin_NonSkin.txt (default: ../shared/data/uci-skin/ beside the repository).")
@click.option("--net/--no-net", default=True, show_default=True,
              help="Train the convolutional second stage (needs PyTorch: pip install 'skinimg[train]'; about "
                   "90 minutes and 12 GB on 2 cores). --no-net keeps only the per-pixel perceptron (minutes).")
@click.option("--net-phantoms", type=click.IntRange(8), default=3000, show_default=True,
              help="Training phantoms of the convolutional stage (seeds 0 ..).")
@click.option("--workers", type=click.IntRange(1), default=2, show_default=True,
              help="Processes rendering that stage's phantoms (the result does not depend on it).")
def train_segmenter_cmd(out, uci, net, net_phantoms, workers):
    """Rebuild the skin colour model (models/skin_lut.npz + .json) reproducibly.

    Trains on 80 % of the UCI skin pixels (stratified, seed 0) and on pixels of
    200 daylight phantoms of every skin tone, then the second stages (a per-pixel
    perceptron and a small U-Net); reports balanced accuracy on the held-out
    20 % and mask F1 per tone on 36 held-out phantoms.  The same inputs give
    byte-identical files on one machine (the JSON's date comes from $SOURCE_DATE_EPOCH
    if set; PyTorch's results may differ between CPUs).
    """
    from .segment import train_segmenter

    quiet = _analyze_quiet()
    prov = train_segmenter(out, uci=uci, net=net, n_net_phantoms=net_phantoms, workers=workers,
                           progress=None if quiet else (lambda m: click.echo(f"skinimg: {m}", err=True)))
    m = prov["metrics"]
    click.echo(f"UCI held-out balanced accuracy: model {m['uci_test']['balanced_accuracy']:.4f}, "
               f"rules {m['uci_test_rules']['balanced_accuracy']:.4f}")
    net_f1 = m.get("phantom_test_net")
    click.echo("phantom held-out F1 by tone:   model   rules" + ("   U-Net stage" if net_f1 else ""))
    for tone, v in m["phantom_test"].items():
        click.echo(f"  {tone:<28s} {v['f1']:.3f}   {m['phantom_test_rules'][tone]['f1']:.3f}"
                   + (f"   {net_f1[tone]['f1']:.3f}" if net_f1 else ""))
    click.echo(f"wrote {Path(out) / 'skin_lut.npz'} and {Path(out) / 'skin_lut.json'}")


@cli.command("eval-segment")
@click.option("--images", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Folder of photos.")
@click.option("--masks", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Folder of true masks: <stem>.png or <stem>_mask.png at the photo's relative path (non-zero = skin).")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also write OUT/eval_segment.csv, OUT/eval_segment_tones.csv and OUT/eval_segment.json.")
@click.option("--method", type=click.Choice(["model", "rules"]), default="model", show_default=True,
              help="Segmentation method evaluated.")
@_second_stage_option
@click.option("--check", is_flag=True, default=False,
              help="Also give each photo's stage_agreement and mask_check as `segment --check` does, to judge that "
                   "flag against the true masks (--method model).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON instead of a table.")
def eval_segment_cmd(images, masks, out, method, second_stage, check, as_json):
    """Segment the photos in --images and compare with the true masks in --masks.

    Precision, recall, F1 (Dice) and IoU per image, overall (pixels pooled
    over all images) and per skin tone (pooled over the photos whose true
    skin has that ITA class, Del Bino and Bernerd 2013; columns ita_deg and
    tone per image), as a table on stdout (or JSON with --json).  Images
    without a true mask are error rows; exit code 2 when any image failed.
    """
    from .io import dumps_json, write_csv, write_json
    from .segment import EVAL_COLUMNS, EVAL_TONE_COLUMNS, SegmentParams, evaluate_folders

    _check_needs_model(check, method)
    res = evaluate_folders(images, masks, method=method, params=SegmentParams(stage2_model=second_stage), check=check)
    if out is not None:
        write_csv(Path(out) / "eval_segment.csv", res["rows"], EVAL_COLUMNS)
        write_csv(Path(out) / "eval_segment_tones.csv", res["by_tone"], EVAL_TONE_COLUMNS)
        write_json(Path(out) / "eval_segment.json", res)
    if as_json:
        click.echo(dumps_json(res))
    else:
        width = max([len("image"), len("overall (pooled)")] + [len(r["image"]) for r in res["rows"]])
        click.echo(f"{'image':<{width}}  precision  recall     f1    iou")
        for r in res["rows"]:
            if r["status"] == "ok":
                flag = f"  check (stages agree {r['stage_agreement']:.2f})" if r["mask_check"] == "check" else ""
                click.echo(f"{r['image']:<{width}}  {r['precision']:9.4f} {r['recall']:7.4f} {r['f1']:6.4f} "
                           f"{r['iou']:6.4f}{flag}")
            else:
                click.echo(f"{r['image']:<{width}}  error: {r['error']}")
        o = res["overall"]
        if o is not None:
            click.echo(f"{'overall (pooled)':<{width}}  {o['precision']:9.4f} {o['recall']:7.4f} {o['f1']:6.4f} {o['iou']:6.4f}")
        if res["by_tone"]:
            click.echo("\nby skin tone (ITA class of the true skin, Del Bino and Bernerd 2013):")
            click.echo(f"{'tone':<12s}  photos  precision  recall     f1    iou  worst f1 (photo)")
            for t in res["by_tone"]:
                click.echo(f"{t['tone']:<12s}  {t['n_images']:6d}  {t['precision']:9.4f} {t['recall']:7.4f} "
                           f"{t['f1']:6.4f} {t['iou']:6.4f}  {t['worst_f1']:.4f} ({t['worst_image']})")
        c = res["check"]
        if c is not None:
            def fmt(v):
                return "-" if v is None else f"{v:.4f}"

            click.echo(f"\n--check: {c['n_flagged']} of {res['n_ok']} photo(s) flagged; mean F1 of the flagged "
                       f"{fmt(c['mean_f1_flagged'])}, of the others {fmt(c['mean_f1_not_flagged'])}")
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
@_second_stage_option
@click.option("--check", is_flag=True, default=False,
              help="Also run the other second stage and fill the columns stage_agreement and mask_check (check = "
                   "look at that photo's mask before trusting its numbers), as `segment --check` does; free with "
                   "--second-stage both (which fills them anyway).")
@click.option("--chromophores", type=click.Choice(["basis", "ica"]), default="basis", show_default=True,
              help="Haemoglobin/melanin separation: calibrated basis (models/chromophore_basis.json) or per-image ICA.")
@click.option("--branch", type=click.Choice(["auto", "light", "dark"]), default="auto", show_default=True,
              help="Brown/dark skin, where two skins share a colour: choose per photo from brightness (auto), or "
                   "hold one for a series of the same skin (see the README; compare/track share one per pair).")
@click.option("--calibrate", "calibration", type=click.Choice(["auto", "chart", "none"]), default="none",
              show_default=True,
              help="Colour calibration before measuring: auto = ColorChecker if in the frame, else --white or gray "
                   "world on non-skin; chart = a photo without a chart is an error; none = as photographed.")
@click.option("--white", callback=_parse_white, metavar="X,Y,W,H", default=None,
              help="White/gray region (pixels) for --calibrate auto when no chart is found.")
@click.option("--exclude", multiple=True, metavar="PATTERN",
              help="Skip files in folders whose relative name matches this shell pattern (e.g. 'truth/*'); "
                   "repeatable.")
@max_pixels_option
def analyze_cmd(paths, out, workers, no_maps, fmt, as_json, method, second_stage, check, chromophores, branch,
                calibration, white, exclude, max_pixels):
    """Measure redness and pigmentation indices of every photo in PATHS.

    Writes OUT/indices.csv (one row per image), the same rows in
    OUT/results.sqlite (table indices) and, with --format parquet,
    OUT/indices.parquet; per-image maps in OUT/maps/ (float32 TIFF, NaN off
    skin, and a PNG heatmap) unless --no-maps; parameters in OUT/analyze.json;
    with --calibrate auto|chart the colour correction of each photo in
    OUT/calibration/<name>.json.
    A bad file is a row with status=error and the reason; exit code 2 when
    any image failed or had no skin.
    """
    from .analyze import AnalyzeParams, ROW_COLUMNS, analyze_paths
    from .indices import IndexParams
    from .io import dumps_json

    _check_needs_model(check, method)
    params = AnalyzeParams(segment_method=method, max_pixels=max_pixels, calibration=calibration, white=white,
                           indices=IndexParams(chromophore_method=chromophores, branch=branch),
                           second_stage=second_stage, check=check)
    summary = analyze_paths(paths, out, params=params, workers=workers, maps=not no_maps, formats=[fmt],
                            exclude=exclude)
    if as_json:
        for row in summary["rows"]:
            click.echo(dumps_json({c: row.get(c) for c in ROW_COLUMNS}, indent=None))
    for row in summary["rows"]:
        if row["status"] != "ok":
            click.echo(f"skinimg: {row['image']}: {row['error']}", err=True)
        elif row.get("mask_check") == "check" and not _analyze_quiet():
            click.echo(f"skinimg: {row['image']}: {_flag_note(row)}", err=True)
    n_bad = summary["n_error"] + summary["n_no_skin"]
    if not _analyze_quiet():
        flagged = f", {summary['n_check']} to check by eye" if _flags_computed(method, check, second_stage) else ""
        click.echo(f"skinimg: analyzed {summary['n_images']} image(s): {summary['n_ok']} ok, "
                   f"{summary['n_no_skin']} without skin, {summary['n_error']} failed{flagged}; results in {out}",
                   err=True)
    if n_bad:
        sys.exit(EXIT_PARTIAL)


def _analyze_quiet() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.find_root().obj and ctx.find_root().obj.get("quiet"))


# ----------------------------------------------------------------------------- calibrate (issue 5)

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
@click.option("--fallback", type=click.Choice(["gray_world", "white_patch", "none"]), default="gray_world",
              show_default=True,
              help="Without a chart and without --white: gray world or brightest non-skin pixels, or none (leave "
                   "the photo as it is).")
@max_pixels_option
def calibrate_cmd(paths, out, chart, white, require_chart, method, fallback, max_pixels):
    """Colour-correct photos with the ColorChecker in the frame (or a fallback).

    Writes OUT/calibrated/<name>.png (corrected, same bit depth, no metadata),
    OUT/calibration/<name>.json (matrix, method, residuals, chart corners) and
    OUT/calibrate.csv (one row per image).  Without a chart: --white region,
    else --fallback (gray world on non-skin pixels by default); one line says which.  Exit code 2 when
    some files failed.
    """
    from .calibrate import CSV_COLUMNS, CalibrationParams, calibrate_file
    from .io import discover_images, remove_stale_temp_files, write_csv

    items = discover_images(paths)
    if not items:
        raise SkinImgError("no image files found", " ".join(map(str, paths)))
    remove_stale_temp_files(out)  # left by a killed run
    params = CalibrationParams(chart=chart, method=method, fallback=fallback)
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
    f = click.option("--calibrate", type=click.Choice(["auto", "chart", "none"]), default="auto", show_default=True,
                     help="Colour-chart correction: auto = when a chart is in both photos; chart = required.")(f)
    f = click.option("--lighting", type=click.Choice(["auto", "none"]), default="auto", show_default=True,
                     help="Without a chart, normalise AFTER's linear RGB to BEFORE on unchanged pixels "
                          "(skin outside the ROI, else the background).")(f)
    f = _second_stage_option(f)
    f = click.option("--method", type=click.Choice(["model", "rules"]), default="model", show_default=True,
                     help="Skin segmentation method.")(f)
    return max_pixels_option(f)


def _compare_params(method, calibrate, lighting, mdc, max_pixels, crosstalk=True, second_stage="mlp"):
    from .compare import CompareParams

    return CompareParams(segment_method=method, calibrate=calibrate, lighting=lighting, mdc=mdc,
                         max_pixels=max_pixels, crosstalk_allowance=crosstalk, second_stage=second_stage)


@cli.command("compare")
@click.argument("before", type=click.Path(path_type=Path))
@click.argument("after", type=click.Path(path_type=Path))
@out_option()
@click.option("--roi", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Region of interest in BEFORE's pixels: polygon JSON [[x,y],...] or a mask image.")
@click.option("--json", "as_json", is_flag=True, help="Print comparison.json to stdout.")
@_compare_options
def compare_cmd(before, after, out, roi, as_json, method, second_stage, calibrate, lighting, mdc, crosstalk,
                max_pixels):
    """Compare AFTER with BEFORE (same skin, two sessions).

    Registers AFTER onto BEFORE (ORB + RANSAC homography, ECC refinement),
    normalises lighting, and measures every index on the skin common to both
    (inside --roi). Writes OUT/comparison.json (before, after, change, change %,
    95 % CI, effect size, MDC and verdict improved / no_change / worsened per
    index), OUT/pair.png (registered pair) and OUT/delta_hemoglobin.png,
    OUT/delta_melanin.png (after - before). A failed registration is an error
    (exit 1): misaligned photos are never compared.
    """
    from .compare import compare_files
    from .io import dumps_json

    params = _compare_params(method, calibrate, lighting, mdc, max_pixels, crosstalk, second_stage)
    doc = compare_files(before, after, out, roi=roi, params=params)
    if as_json:
        click.echo(dumps_json(doc))
    elif not _analyze_quiet():
        reg = doc["registration"]
        click.echo(f"registration: {reg['method']}, {reg['inliers']} inliers, residual {reg['residual_px']:.2f} px; "
                   f"lighting: {doc['lighting']['method']}")
        for name, m in doc["metrics"].items():
            pct = m["delta_pct"]
            click.echo(f"{name:26s} {m['before']:10.4g} -> {m['after']:10.4g}  "
                       f"({'' if pct is None else f'{pct:+.1f} %'})  {m['verdict']}")
    for w in doc.get("warnings", []):
        log.info("%s", w)


@cli.command("track")
@click.argument("root", type=click.Path(file_okay=False, path_type=Path))
@out_option()
@click.option("--manifest", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="CSV with columns patient,site,session,image[,roi] (paths relative to ROOT) instead of "
                   "the folder layout.")
@_compare_options
def track_cmd(root, out, manifest, method, second_stage, calibrate, lighting, mdc, crosstalk, max_pixels):
    """Compare every patient/site series in ROOT with its baseline and previous session.

    ROOT is laid out as ROOT/<patient>/<site>/<session>/<image> (sessions named
    YYYY-MM-DD, else ordered by EXIF capture time), or described by --manifest.
    Writes OUT/series.csv (one row per patient, site, session, reference and
    index) and OUT/pairs/<patient>/<site>/<ref>__<session>/comparison.json with
    its maps. A failing pair is an error row (and a line on stderr); the others
    go on; exit code 2 when any pair failed.
    """
    from .compare import track

    quiet = _analyze_quiet()

    def progress(label, doc, err):
        if err is not None:
            click.echo(f"skinimg: {label}: {err}", err=True)
        elif not quiet:
            click.echo(f"{label}: ok")

    params = _compare_params(method, calibrate, lighting, mdc, max_pixels, crosstalk, second_stage)
    res = track(root, out, manifest=manifest, params=params,
                progress=progress)
    for n in res["notes"]:
        log.info("%s", n)
    if not quiet:
        click.echo(f"skinimg: {res['n_pairs']} pair(s) compared, {res['n_failed']} failed; results in {out}", err=True)
    if res["n_failed"]:
        sys.exit(EXIT_PARTIAL)


# ----------------------------------------------------------------------------- run (issue 7)

class _RunProgress:
    """Progress of ``skinimg run`` on stderr: a bar (count, rate, ETA) on a terminal, else a line every 10 s."""

    def __init__(self, quiet: bool, tty: bool | None = None, every_s: float | None = None):
        import time

        if every_s is None:  # SKINIMG_PROGRESS_EVERY_S: seconds between plain lines (0: one per photo)
            try:
                every_s = float(os.environ.get("SKINIMG_PROGRESS_EVERY_S", "10"))
            except ValueError:
                every_s = 10.0
        self.quiet, self.every_s, self._time = quiet, every_s, time.monotonic
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.total = self.done = self.processed = self.skipped = self.failed = 0
        self.bar = None
        self.t0 = self.last = self._time()

    def rate(self) -> float:
        dt = self._time() - self.t0
        return self.processed / dt if dt > 0 else 0.0

    def _eta(self) -> str:
        r = self.rate()
        if r <= 0:
            return "--:--:--"
        s = int((self.total - self.done) / r)
        return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"

    def __call__(self, ev: dict) -> None:
        if self.quiet:
            return
        kind = ev["event"]
        if kind == "start":
            self.total = ev["total"]
            self.t0 = self.last = self._time()
            if self.tty:
                self.bar = click.progressbar(length=self.total, label="skinimg run", show_pos=True, show_eta=True,
                                             file=sys.stderr, item_show_func=lambda _: f"{self.rate():.2f} img/s")
                self.bar.__enter__()
            return
        if kind == "stage":
            self.close()
            click.echo(f"skinimg: stage {ev['stage']} ...", err=True)
            return
        self.done += 1
        outcome = ev["outcome"]
        self.skipped += outcome == "skipped"
        self.processed += outcome != "skipped"
        self.failed += outcome == "failed"
        if self.bar is not None:
            self.bar.update(1, ev["image"])
        elif self._time() - self.last >= self.every_s or self.done == self.total:
            self.last = self._time()
            click.echo(f"skinimg: {self.done}/{self.total} images ({self.processed} processed, {self.skipped} "
                       f"skipped, {self.failed} failed), {self.rate():.2f} img/s, ETA {self._eta()}", err=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


@cli.command("run")
@click.argument("pipeline")
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@out_option()
@workers_option
@click.option("--executor", type=click.Choice(["local", "dask"]), default="local", show_default=True,
              help="local: a process pool on this machine; dask: dask.distributed (pip install 'skinimg[dask]').")
@click.option("--scheduler", metavar="ADDRESS", default=None,
              help="Dask scheduler to use (tcp://host:8786); default: a LocalCluster on 127.0.0.1 with --workers "
                   "workers. Workers must see INPUT and --out at the same paths.")
@click.option("--quiet", "run_quiet", is_flag=True, help="No progress and no summary (failures are still listed).")
def run_cmd(pipeline, input_path, out, workers, executor, scheduler, run_quiet):
    """Run PIPELINE (a .toml file or a shipped name: clinic, research, ci) on every photo in INPUT.

    Resumable: a photo already done with the same content and the same
    per-image options is skipped, so rerunning after an interruption (even
    kill -9) finishes the batch; results are in OUT/results.sqlite (one row
    per photo in each stage's table) and exported to OUT/indices.csv (and
    calibrate.csv, segment.csv, .parquet with formats = ["csv", "parquet"]).
    OUT/run.json records versions, the pipeline, parameters and input hashes.
    Exit code 2 when some photos failed or had no skin, 1 when a regress
    stage found drift.
    """
    from .batch import run_pipeline

    if scheduler and executor != "dask":
        raise click.UsageError("--scheduler needs --executor dask")
    quiet = run_quiet or _analyze_quiet()
    prog = _RunProgress(quiet)
    try:
        res = run_pipeline(pipeline, [input_path], out, workers=workers, executor=executor, scheduler=scheduler,
                           progress=prog)
    finally:
        prog.close()
    for image, status, reason in res["failed"]:
        click.echo(f"skinimg: {image}: {reason or status}", err=True)
    if not quiet:
        click.echo(f"skinimg: {res['n_images']} image(s): {res['processed']} processed, {res['skipped']} skipped "
                   f"(already done), {len(res['failed'])} failed; results in {out}", err=True)
        flagged = res.get("mask_check") or []
        if flagged:
            names = ", ".join(flagged[:5]) + (f" and {len(flagged) - 5} more" if len(flagged) > 5 else "")
            click.echo(f"skinimg: {len(flagged)} skin mask(s) to check by eye (mask_check = check): {names}", err=True)
        trk = res["stages"].get("track")
        if trk:
            click.echo(f"skinimg: track: {trk['n_pairs']} pair(s) compared, {trk['n_failed']} failed", err=True)
        rep = res["stages"].get("report")
        if rep:
            click.echo(f"skinimg: report: {rep['index']}", err=True)
    reg = res["stages"].get("regress")
    if reg and not reg["ok"]:
        from .regress import format_drift_table

        click.echo(format_drift_table(reg["result"].drifts))
        click.echo(f"skinimg: drift: {reg['drifts']} difference(s) beyond tolerance", err=True)
        sys.exit(EXIT_FATAL)
    if reg and not quiet:
        click.echo("skinimg: regress: ok, within tolerance", err=True)
    trk = res["stages"].get("track") or {}
    for f in trk.get("failed", []):
        click.echo(f"skinimg: {f['pair']}: {f['error']}", err=True)
    if res["failed"] or trk.get("n_failed"):
        sys.exit(EXIT_PARTIAL)


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

@cli.command("bench")
@click.option("--suite", type=click.Choice(["accuracy", "repeatability", "segmentation", "speed", "all"]),
              default="all", show_default=True, help="Which benchmark to run.")
@out_option(required=False)
@click.option("--size", type=click.Choice(["small", "full"]), default="small", show_default=True,
              help="small: a quick check (under a minute on 2 cores); full: the published tables "
                   "(12-MP speed image, larger phantom grid, every repeatability factor).")
@click.option("--images", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="Folder of labelled real photos for the segmentation suite (needs --masks).")
@click.option("--masks", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="Folder of their skin masks: <relative stem>.png or <stem>_mask.png, > 0 = skin.")
@click.pass_context
def bench_cmd(ctx, suite, out, size, images, masks):
    """Benchmark the indices against phantom ground truth; print Markdown tables.

    accuracy: Spearman/Pearson correlation of every index with the true
    haemoglobin and melanin, and its cross-talk, on a phantom grid from very light to dark skin
    (ITA about +70 to -65 degrees).  repeatability: SEM, MDC95 = 1.96 sqrt(2) SEM and
    CV over retakes of unchanged skin (exposure, white balance, JPEG, pose,
    noise), without and with chart calibration.  segmentation: precision,
    recall, F1, IoU on phantom masks (and --images/--masks).  speed: per-stage
    time on a large JPEG, images/s with 1 and 2 workers, peak memory, next to
    JPEG decode and skimage rgb2lab.  With --out: OUT/bench.json, OUT/bench.csv
    and plots (need matplotlib).  Deterministic except the timings.
    """
    from .bench import SUITES, bench_params, format_markdown, run_bench, write_outputs

    if (images is None) != (masks is None):
        raise click.BadParameter("--images and --masks go together", param_hint="--images/--masks")
    quiet = bool(ctx.find_root().obj and ctx.find_root().obj.get("quiet"))

    def progress(msg):
        if not quiet:
            click.echo(f"skinimg: {msg}", err=True)

    suites = SUITES if suite == "all" else (suite,)
    res = run_bench(suites, params=bench_params(size), images=images, masks=masks, progress=progress)
    click.echo(format_markdown(res), nl=False)
    if out is not None:
        written = write_outputs(res, out)
        if written["note"]:
            click.echo(f"skinimg: {written['note']}", err=True)
        if not quiet:
            click.echo(f"skinimg: wrote {', '.join(p.name for p in written['outputs'])} to {out}", err=True)



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

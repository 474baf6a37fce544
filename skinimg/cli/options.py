"""Options shared by the commands, in one place: each name means one thing in every command.

:data:`OPTION_MEANINGS` lists them (the generated CLI reference, ``docs/cli.md``, shows the table).
Names that meant something else in one command were renamed, the old spelling kept as a hidden,
deprecated alias that still works and prints one line on stderr (:func:`renamed_option`,
:data:`RENAMED`).
"""

from __future__ import annotations

import functools
from pathlib import Path

import click
from click.core import ParameterSource

from ..calibrate import METHODS as CORRECTION_METHODS
from ..calibrate import MODES as CALIBRATION_MODES
from ..calibrate import REFERENCE_CHARTS, CalibrationParams, load_reference
from ..io import DEFAULT_MAX_PIXELS, DEFAULT_WORK_PIXELS, dumps_json, parse_resolution, resolution_text
from ..segment import METHODS, SECOND_STAGES

__all__ = ["OPTION_MEANINGS", "RENAMED", "paths_argument", "out_option", "max_pixels_option", "resolution_option", "workers_option", "json_option", "method_option",
           "second_stage_option", "retired_option", "check_option", "calibrate_option", "white_option", "roi_option", "roi_files_options",
           "no_roi_files_option", "renamed_option", "chart_option", "correction_help", "reference_option",
           "calibration_settings", "calibration_params",
           "echo_json", "echo_json_lines", "check_needs_model", "flags_computed", "flag_note", "index_option",
           "user_specs", "echo_index_errors"]


#: (option, meaning): what each shared name means, in every command that has it.
OPTION_MEANINGS = (
    ("PATHS", "photos: files and folders (folders scanned recursively)"),
    ("--out", "output folder (created if missing)"),
    ("--workers", "parallel worker processes (default: number of CPUs)"),
    ("--max-pixels", "refuse photos with more pixels (read from the header, before decoding)"),
    ("--resolution", "working size of analyze in megapixels: a larger photo is segmented and measured on an "
                     "area-averaged copy of this size, so the indices' spatial scales are the same fraction of the "
                     "frame for every camera; full = every photo at its own size"),
    ("--json", "the results on stdout as JSON instead of text: one object per line for the per-photo commands "
               "(info, synth, segment, analyze, calibrate), one document for the others; messages stay on stderr"),
    ("--method", "skin segmentation method: model or rules"),
    ("--second-stage", "deprecated, no effect (the second stages were retired; accepted so that old scripts run)"),
    ("--check", "also run the network on the mirror image and flag the masks on which the two opinions disagree"),
    ("--calibrate", "colour calibration: auto, chart or none.  The default is none for analyze (its auto falls back "
                    "to a white region or gray world without a chart, which shifts the skin's hue on a coloured "
                    "backdrop, so calibration is asked for) and auto for compare and track (a chart is used only "
                    "when it is in both photos, never a fallback; lighting is normalised otherwise)"),
    ("--white", "white/gray region X,Y,W,H (pixels) for calibration without a chart"),
    ("--roi", "region of interest: polygon JSON [[x, y], ...], named regions {\"regions\": {...}} or a mask image"),
    ("--roi-dir", "folder mirroring the photos' folders that holds their ROI files (<stem>.roi.json / .roi.png), "
                  "instead of beside the photos"),
    ("--no-roi-files", "ignore the photos' own ROI files (by default <stem>.roi.json / .roi.png beside each photo "
                       "restricts it)"),
    ("--registration", "how AFTER is aligned onto BEFORE (compare, track): auto (features, then ECC, then none), "
                       "features, ecc, or none (region statistics of each photo's own skin, no pixel alignment)"),
    ("--images / --masks", "folder of photos / folder of their true skin masks (<stem>.png or <stem>_mask.png)"),
    ("--format", "table format besides results.sqlite: csv or parquet"),
    ("--size", "photo size HEIGHTxWIDTH (synth)"),
    ("--preset", "benchmark preset: small or full (bench)"),
    ("--correction", "colour-correction model of a chart: auto (chosen per photo by leave-one-patch-out error), "
                     "finlayson2015, cheung2004, linear3x3 or a tone-curve model (calibrate, analyze, compare, track)"),
    ("--chart", "reference values of the ColorChecker Classic: charts made after / before Nov 2014"),
    ("--reference", "a file (JSON or CSV) with the 24 patches' measured L*a*b* and illuminant, or sRGB: the user's own "
                    "chart values, used instead of --chart's"),
    ("--image-format", "file format of rendered photos: jpg or png (synth)"),
    ("--index", "your own index NAME=module:function (or file.py:function, or NAME of an installed one), measured "
                "beside the built-ins (analyze, bench; docs/agreement.md)"),
    ("--index-timeout", "seconds one user index may take on one photo (analyze, bench)"),
    ("--seed", "base seed (synth, bench)"),
)
#: (command, old spelling, new spelling): hidden deprecated aliases that still work (one line on stderr).
RENAMED = (
    ("calibrate", "--method", "--correction"),
    ("synth", "--format", "--image-format"),
    ("bench", "--size", "--preset"),
)


def paths_argument(f):
    return click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))(f)


def out_option(required: bool = True, help: str = "Output folder (created if missing)."):
    return click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), required=required, help=help)


def max_pixels_option(f):
    return click.option(
        "--max-pixels", type=click.IntRange(min=1), default=DEFAULT_MAX_PIXELS, show_default=True,
        help="Refuse images with more pixels than this (checked from the header, before decoding).",
    )(f)


class _Resolution(click.ParamType):
    name = "MP|full"

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, int) and not isinstance(value, bool):
            return value
        try:
            return parse_resolution(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def resolution_option(f):
    return click.option(
        "--resolution", "work_pixels", type=_Resolution(), default=resolution_text(DEFAULT_WORK_PIXELS),
        metavar="MP|full",
        show_default=True,
        help="Working size in megapixels: a photo with more pixels is segmented and measured on an area-averaged "
             "copy of this size (its maps too); full = every photo at its own size.",
    )(f)


def workers_option(f):
    return click.option(
        "--workers", type=click.IntRange(min=1), default=None,
        help="Parallel worker processes (default: number of CPUs).",
    )(f)


def json_option(what: str = "the result as one JSON document"):
    """``--json``: print the results on stdout as JSON instead of text; ``what`` says their shape."""
    return click.option("--json", "as_json", is_flag=True, help=f"Print {what} on stdout instead of text.")


method_option = click.option(
    "--method", type=click.Choice(METHODS), default="model", show_default=True,
    help="Skin segmentation: model = a small U-Net trained on real labelled photos (run by OpenCV); rules = YCrCb "
         "box of Chai & Ngan (1999) + a morphological clean-up (a baseline).")


def retired_option(*decls, why: str, **kwargs):
    """A hidden option that is still accepted but has no effect any more: one line on stderr says so (``why``: what
    replaced it) when it is given.  ``decls`` and ``kwargs`` are those of ``click.option``."""

    def note(ctx, param, value):
        if ctx.get_parameter_source(param.name) == ParameterSource.COMMANDLINE:
            flag = next(d for d in decls if d.startswith("--")).split("/")[0]
            click.echo(f"skinimg: {flag} is deprecated and has no effect for `skinimg {ctx.info_name}` ({why}); "
                       "drop it", err=True)
        return value

    return click.option(*decls, hidden=True, callback=note, **kwargs)


second_stage_option = retired_option(
    "--second-stage", "second_stage", type=click.Choice(SECOND_STAGES), default="mlp",
    why="the second stages were replaced by the U-Net",
    help="Deprecated, no effect (the second stages of the former colour-table segmenter).")

check_option = click.option(
    "--check", is_flag=True, default=False,
    help="Also run the network on the mirror image and flag masks on which the two opinions disagree (columns "
         "stage_agreement and mask_check; check = look at that mask before trusting its numbers). Needs --method "
         "model.")


def calibrate_option(default: str):
    """``--calibrate auto|chart|none``.

    The default differs on purpose: ``analyze`` measures a photo as photographed unless asked (``none``), since its
    ``auto`` falls back to a white region or gray world when there is no chart, which shifts the skin's hue on a
    coloured backdrop; ``compare`` and ``track`` correct with a chart only when one is in *both* photos (never a
    fallback) and normalise lighting otherwise, so ``auto`` is safe there.
    """
    helps = {
        "none": "Colour calibration before measuring: auto = ColorChecker if in the frame, else --white or gray world on "
                "non-skin; chart = a photo without a chart is an error; none = as photographed.",
        "auto": "Colour calibration of the pair: auto = with the ColorChecker when one is in both photos (never a "
                "fallback); chart = required in both; none = as photographed.",
    }
    return click.option("--calibrate", "calibration", type=click.Choice(CALIBRATION_MODES), default=default,
                        show_default=True, help=helps[default])


def chart_option(f):
    return click.option("--chart", type=click.Choice(REFERENCE_CHARTS), default="classic24", show_default=True,
                        help="ColorChecker Classic (24 patches) reference values: charts made after / before Nov 2014.")(f)


correction_help = ("Correction model of a chart: auto = chosen per photo by leave-one-patch-out error among gain, "
                   "3x3, root-polynomial and tone-curve models; or one model (a tone_* model first fits a tone curve "
                   "on the grey patches).")


def reference_option(f):
    return click.option("--reference", type=click.Path(dir_okay=False, path_type=Path), default=None,
                        help="Your chart's own values: JSON or CSV of the 24 patches' measured L*a*b* (with the "
                             "illuminant; D50 if not given) or sRGB. Replaces --chart's published values.")(f)


def calibration_settings(f):
    """``--chart``, ``--correction`` and ``--reference``: how a chart in the photo is used (every command that can
    calibrate: ``calibrate`` defines its own ``--chart``/``--correction`` to keep its deprecated ``--method``)."""
    f = reference_option(f)
    f = click.option("--correction", type=click.Choice(CORRECTION_METHODS), default="auto", show_default=True,
                     help=correction_help)(f)
    return chart_option(f)


def calibration_params(chart: str = "classic24", correction: str = "auto", reference=None, **kwargs) -> CalibrationParams:
    """The :class:`~skinimg.calibrate.CalibrationParams` of the shared options (``--reference`` read here: a bad file
    is a one-line error naming it)."""
    if reference is not None:
        values, source = load_reference(reference, label=str(reference))
        kwargs.update(reference=tuple(map(tuple, values)), reference_source=source)
    return CalibrationParams(chart=chart, method=correction, **kwargs)


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


def white_option(help: str):
    return click.option("--white", callback=_parse_white, metavar="X,Y,W,H", default=None, help=help)


def roi_option(help: str):
    return click.option("--roi", type=click.Path(dir_okay=False, path_type=Path), default=None, help=help)


no_roi_files_option = click.option(
    "--no-roi-files", "no_roi_files", is_flag=True, default=False,
    help="Ignore the photos' own ROI files (<stem>.roi.json / .roi.png): measure the whole skin.")


def roi_files_options(f):
    """``--roi-dir DIR`` and ``--no-roi-files``: where each photo's own ROI file is looked for
    (:class:`skinimg.batch.RoiLookup`)."""
    f = no_roi_files_option(f)
    return click.option("--roi-dir", "roi_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                        help="Look for each photo's ROI file (<stem>.roi.json or .roi.png, at the photo's relative "
                             "path) in this folder instead of beside the photo.")(f)


def renamed_option(new: str, old: str, dest: str, **kwargs):
    """Option ``new`` (stored as ``dest``) with ``old`` kept as a hidden, deprecated alias.

    ``old`` still works: its value is used as ``new``'s and one line on stderr says to use ``new``.  Giving both is a
    usage error.  ``kwargs`` are those of ``click.option`` for ``new`` (the alias takes the same ``type``).
    """
    alias = f"_deprecated_{dest}"

    def decorator(f):
        @functools.wraps(f)
        def wrapper(*args, **kw):
            value = kw.pop(alias)
            if value is not None:
                ctx = click.get_current_context()
                if ctx.get_parameter_source(dest) == ParameterSource.COMMANDLINE:
                    raise click.UsageError(f"{old} is the old name of {new}: give only {new}")
                click.echo(f"skinimg: {old} is deprecated for `skinimg {ctx.info_name}`; use {new}", err=True)
                kw[dest] = value
            return f(*args, **kw)

        wrapper = click.option(old, alias, type=kwargs.get("type"), default=None, hidden=True,
                               help=f"Deprecated spelling of {new}.")(wrapper)
        return click.option(new, dest, **kwargs)(wrapper)

    return decorator


def index_option(f):
    """``--index NAME=module:function`` (repeatable) and ``--index-timeout`` (analyze and bench)."""
    f = click.option("--index-timeout", type=click.FloatRange(min=0), default=60.0, show_default=True,
                     help="Seconds one user index may take on one photo (0 = no limit); past it that index is "
                          "skipped for the rest of the run.")(f)
    return click.option("--index", "user_index", multiple=True, metavar="NAME=MODULE:FUNCTION",
                        help="Also measure your own index: a function (rgb, mask) returning a per-pixel map or one "
                             "number, from a module on the Python path or in the current folder, or "
                             "path/to/file.py:function; NAME alone: one installed under the entry-point group "
                             "skinimg.indices. Repeatable. See docs/agreement.md.")(f)


def user_specs(values) -> list:
    """The :class:`~skinimg.indices.UserIndexSpec` of the ``--index`` values (a bad one: one-line error)."""
    from ..indices import parse_index_option

    return [parse_index_option(v) for v in values]


def echo_index_errors(errors: dict, n_images: int | None = None) -> None:
    """One line on stderr per failing user index."""
    from ..indices import format_errors

    for line in format_errors(errors, n_images):
        click.echo(f"skinimg: {line}", err=True)


def echo_json(obj) -> None:
    """One JSON document on stdout (strict JSON: NaN as null)."""
    click.echo(dumps_json(obj))


def echo_json_lines(rows, columns=None) -> None:
    """One JSON object per row and line on stdout (``columns``: the keys, in order; default every key)."""
    for row in rows:
        click.echo(dumps_json(row if columns is None else {c: row.get(c) for c in columns}, indent=None))


def check_needs_model(check: bool, method: str) -> None:
    if check and method != "model":
        raise click.UsageError("--check needs --method model (it compares the network with its mirror-image opinion)")


def flags_computed(method: str, check: bool, second_stage: str = "mlp") -> bool:
    """Whether the rows carry stage_agreement / mask_check (--check of the model; ``second_stage`` is deprecated and
    has no effect)."""
    return method == "model" and check


def flag_note(row: dict) -> str:
    return f"check the mask (the network agrees with its mirror image {row['stage_agreement']:.2f})"

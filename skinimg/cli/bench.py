"""``skinimg bench``: the indices against phantom ground truth or the user's reference readings (the benchmark
lives in :mod:`skinimg.train.bench`)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .group import EXIT_PARTIAL, cli, is_quiet
from .options import (calibrate_option, echo_index_errors, echo_json, index_option, json_option, method_option,
                      out_option, renamed_option, user_specs)


@cli.command("bench")
@click.option("--suite", type=click.Choice(["accuracy", "repeatability", "segmentation", "speed", "agreement", "all"]),
              default="all", show_default=True,
              help="Which benchmark to run (all: the four phantom suites, and agreement when --reference is given).")
@out_option(required=False, help="Also write OUT/bench.json, OUT/bench.csv and plots (folder created if missing); "
                                 "with the agreement suite OUT/leaderboard.csv, .md and .json.")
@renamed_option("--preset", "--size", "preset", type=click.Choice(["small", "full"]), default="small",
                show_default=True,
                help="small: a quick check; full: the published tables (12-MP speed image, larger phantom grid, "
                     "every repeatability factor).")
@click.option("--images", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="Folder of real photos: labelled ones for the segmentation suite (with --masks), or the photos of "
                   "the agreement suite (with --reference).")
@click.option("--masks", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="Folder of their true masks: <relative stem>.png or <stem>_mask.png, > 0 = skin.")
@click.option("--reference", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Agreement suite: CSV with an image column (relative to --images), optional roi, subject and "
                   "session columns, and one numeric column per instrument or rater reading (docs/agreement.md).")
@click.option("--reference-columns", metavar="COL,COL", default=None,
              help="Agreement suite: use only these reference columns (default: every numeric one).")
@click.option("--rank-by", metavar="COL", default=None,
              help="Agreement suite: the reference column that orders the leaderboard (default: the first).")
@method_option
@click.option("--roi-is-skin", is_flag=True, default=False,
              help="Agreement suite: take each row's ROI as the skin, without segmentation (e.g. true masks).")
@calibrate_option("none")
@index_option
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Base seed of the phantoms and of the bootstrap.")
@click.option("--resamples", type=click.IntRange(min=0), default=2000, show_default=True,
              help="Bootstrap resamples of the agreement suite's confidence intervals (0 = none).")
@json_option("the whole result (bench.json) instead of the Markdown tables")
def bench_cmd(suite, out, preset, images, masks, reference, reference_columns, rank_by, method, roi_is_skin,
              calibration, user_index, index_timeout, seed, resamples, as_json):
    """Benchmark the indices against phantom ground truth or your reference readings; print Markdown tables.

    accuracy: Spearman/Pearson correlation of every index with the true
    haemoglobin and melanin, and its cross-talk, on a phantom grid from very light to dark
    skin.  repeatability: SEM, MDC95 = 1.96 sqrt(2) SEM and
    CV over retakes of unchanged skin (exposure, white balance, JPEG, pose,
    noise), without and with chart calibration.  segmentation: precision,
    recall, F1, IoU on phantom masks (and --images/--masks).  speed: per-stage
    time on a large JPEG, images/s with 1 and 2 workers, peak memory, next to
    JPEG decode and skimage rgb2lab.  agreement (--images, --reference):
    every index against every reference column: Pearson and Spearman with
    bootstrap intervals, calibration line, ICC(2,1) and ICC(3,1), Bland-Altman
    bias and limits, and SEM/MDC95/CV with a subject column; a leaderboard.
    --index adds your own indices to the accuracy, repeatability and
    agreement suites.  With --out: OUT/bench.json, OUT/bench.csv and plots
    (need matplotlib).  Deterministic except the timings.  Exit code 2 when
    a user index failed on some photo.
    """
    from ..train.bench import ALL_SUITES, SUITES, bench_params, format_markdown, run_bench, write_outputs  # optional

    if masks is not None and images is None:
        raise click.BadParameter("--masks needs --images", param_hint="--masks")
    if images is not None and masks is None and reference is None:
        raise click.BadParameter("--images needs --masks (segmentation suite) or --reference (agreement suite)",
                                 param_hint="--images")
    if reference is not None and images is None:
        raise click.BadParameter("--reference needs --images (the folder its image column refers to)",
                                 param_hint="--reference")
    if suite == "agreement" and reference is None:
        raise click.BadParameter("the agreement suite needs --images and --reference", param_hint="--suite")
    quiet = is_quiet()

    def progress(msg):
        if not quiet:
            click.echo(f"skinimg: {msg}", err=True)

    suites = (ALL_SUITES if reference is not None else SUITES) if suite == "all" else (suite,)
    cols = [c.strip() for c in reference_columns.split(",") if c.strip()] if reference_columns else None
    params = bench_params(preset, seed=seed, bootstrap_resamples=resamples)
    res = run_bench(suites, params=params, images=images, masks=masks, progress=progress,
                    indices=user_specs(user_index), index_timeout=index_timeout or None, reference=reference,
                    reference_columns=cols, rank_by=rank_by, method=method, roi_is_skin=roi_is_skin,
                    calibration=calibration)
    if as_json:
        echo_json(res)
    else:
        click.echo(format_markdown(res), nl=False)
    if out is not None:
        written = write_outputs(res, out)
        if written["note"]:
            click.echo(f"skinimg: {written['note']}", err=True)
        if not quiet:
            click.echo(f"skinimg: wrote {', '.join(p.name for p in written['outputs'])} to {out}", err=True)
    if res["index_errors"]:
        echo_index_errors(res["index_errors"])
        sys.exit(EXIT_PARTIAL)

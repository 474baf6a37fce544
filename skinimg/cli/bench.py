"""``skinimg bench``: the indices against phantom ground truth (the benchmark lives in :mod:`skinimg.train.bench`)."""

from __future__ import annotations

from pathlib import Path

import click

from .group import cli, is_quiet
from .options import echo_json, json_option, out_option, renamed_option


@cli.command("bench")
@click.option("--suite", type=click.Choice(["accuracy", "repeatability", "segmentation", "speed", "all"]),
              default="all", show_default=True, help="Which benchmark to run.")
@out_option(required=False, help="Also write OUT/bench.json, OUT/bench.csv and plots (folder created if missing).")
@renamed_option("--preset", "--size", "preset", type=click.Choice(["small", "full"]), default="small",
                show_default=True,
                help="small: a quick check; full: the published tables (12-MP speed image, larger phantom grid, "
                     "every repeatability factor).")
@click.option("--images", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="Folder of labelled real photos for the segmentation suite (needs --masks).")
@click.option("--masks", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="Folder of their true masks: <relative stem>.png or <stem>_mask.png, > 0 = skin.")
@json_option("the whole result (bench.json) instead of the Markdown tables")
def bench_cmd(suite, out, preset, images, masks, as_json):
    """Benchmark the indices against phantom ground truth; print Markdown tables.

    accuracy: Spearman/Pearson correlation of every index with the true
    haemoglobin and melanin, and its cross-talk, on a phantom grid from very light to dark
    skin.  repeatability: SEM, MDC95 = 1.96 sqrt(2) SEM and
    CV over retakes of unchanged skin (exposure, white balance, JPEG, pose,
    noise), without and with chart calibration.  segmentation: precision,
    recall, F1, IoU on phantom masks (and --images/--masks).  speed: per-stage
    time on a large JPEG, images/s with 1 and 2 workers, peak memory, next to
    JPEG decode and skimage rgb2lab.  With --out: OUT/bench.json, OUT/bench.csv
    and plots (need matplotlib).  Deterministic except the timings.
    """
    from ..train.bench import SUITES, bench_params, format_markdown, run_bench, write_outputs  # optional layer

    if (images is None) != (masks is None):
        raise click.BadParameter("--images and --masks go together", param_hint="--images/--masks")
    quiet = is_quiet()

    def progress(msg):
        if not quiet:
            click.echo(f"skinimg: {msg}", err=True)

    suites = SUITES if suite == "all" else (suite,)
    res = run_bench(suites, params=bench_params(preset), images=images, masks=masks, progress=progress)
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

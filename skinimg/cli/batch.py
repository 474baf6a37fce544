"""``skinimg run`` (a pipeline over a batch), ``skinimg report`` (HTML) and ``skinimg regress`` (drift check)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from ..batch import run_pipeline
from ..errors import SkinImgError
from ..io import format_collapsed
from ..report import ReportParams, build_report, format_drift_table, parse_tolerance, regress, update_expected
from .group import EXIT_FATAL, EXIT_PARTIAL, cli, is_quiet
from .options import echo_json, json_option, out_option, workers_option

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
@json_option("the run's summary as one JSON document (counts, failures, flagged masks, stages)")
def run_cmd(pipeline, input_path, out, workers, executor, scheduler, run_quiet, as_json):
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
    if scheduler and executor != "dask":
        raise click.UsageError("--scheduler needs --executor dask")
    quiet = run_quiet or is_quiet() or as_json
    prog = _RunProgress(quiet)
    try:
        res = run_pipeline(pipeline, [input_path], out, workers=workers, executor=executor, scheduler=scheduler,
                           progress=prog)
    finally:
        prog.close()
    if as_json:
        echo_json(_run_summary(res))
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
            for group in trk.get("warnings", []):
                click.echo(f"skinimg: track: warning: {format_collapsed(group)}", err=True)
            click.echo(f"skinimg: track: {trk['n_pairs']} pair(s) compared ({trk.get('n_unaligned', 0)} without pixel "
                       f"alignment), {trk['n_failed']} failed", err=True)
        rep = res["stages"].get("report")
        if rep:
            click.echo(f"skinimg: report: {rep['index']}", err=True)
    reg = res["stages"].get("regress")
    if reg and not reg["ok"]:
        if not as_json:
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


@cli.command("report")
@click.argument("results", type=click.Path(file_okay=False, path_type=Path))
@out_option()
@click.option("--title", default="skinimg report", show_default=True, help="Title shown on every page.")
@click.option("--anonymize", is_flag=True,
              help="Replace patient folder names and image file names by stable pseudonyms (P-xxxxxx) everywhere.")
@click.option("--salt", default=None,
              help="Key of the pseudonyms (same salt = same pseudonyms across reports); default: random per report.")
@click.option("--images", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of the photos (default: the inputs recorded in analyze.json / run.json).")
@json_option("the result as one JSON document (index page, pages, files, warnings)")
def report_cmd(results, out, title, anonymize, salt, images, as_json):
    """Write an offline HTML report of RESULTS (a folder written by analyze/track/run).

    OUT/index.html lists every patient/site with warnings and provenance;
    one page per patient/site shows each session's photo with the skin
    outline, haemoglobin and melanin heatmaps, every compared pair with its
    table of changes and verdicts, and trend plots; OUT/summary.html has the
    study's distributions and ITA classes.  No JavaScript, no network; images
    are in OUT/img/.  Needs matplotlib (pip install 'skinimg[report]').
    """
    if salt is not None and not anonymize:
        raise SkinImgError("--salt only makes sense with --anonymize")
    res = build_report(results, out, params=ReportParams(title=title, anonymize=anonymize, salt=salt,
                                                         images=None if images is None else str(images)))
    if as_json:
        echo_json(res)
        return
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
@json_option("the result as one JSON document (what was compared and every drift)")
def regress_cmd(expected, results, tolerances, update, as_json):
    """Compare a fresh run in RESULTS with committed EXPECTED values.

    Every image and column of indices.csv is compared with a per-index
    tolerance (defaults in the README); missing or extra images and columns,
    status changes and changed comparison verdicts are drift too.  Prints a
    table of what drifted and exits 1 on drift, 0 when everything is within
    tolerance.  With --update the expected file(s) are rewritten atomically
    from the results, after printing what changes.
    """
    tol = dict(parse_tolerance(t) for t in tolerances)
    if update and not expected.exists():
        written = update_expected(expected, results)
        if as_json:
            echo_json({"created": written})
        for p in written:
            if not as_json:
                click.echo(f"created {p}")
        return
    res = regress(expected, results, tolerances=tol)
    what = f"{res.images_compared} image(s), {res.values_compared} value(s)"
    if res.verdicts_checked:
        what += f", {res.verdicts_compared} verdict(s)"
    if update:
        changed = regress(expected, results, exact=True).drifts
        if changed and not as_json:
            click.echo(format_drift_table(changed))
        written = update_expected(expected, results)
        if as_json:
            echo_json({"updated": written, "changes": changed, "beyond_tolerance": len(res.drifts)})
            return
        for p in written:
            click.echo(f"updated {p}: {len(changed)} change(s), {len(res.drifts)} of them beyond tolerance")
        return
    if as_json:
        echo_json({"ok": res.ok, "images_compared": res.images_compared, "values_compared": res.values_compared,
                   "verdicts_checked": res.verdicts_checked, "verdicts_compared": res.verdicts_compared,
                   "drifts": res.drifts})
    elif res.drifts:
        click.echo(format_drift_table(res.drifts))
        click.echo(f"skinimg: drift: {len(res.drifts)} difference(s) beyond tolerance ({what} compared)", err=True)
        sys.exit(EXIT_FATAL)
    if not as_json:
        click.echo(f"ok: {what} within tolerance")



def _run_summary(res: dict) -> dict:
    """The JSON summary of a run (``skinimg run --json``): counts, failures, flagged masks, batch stages."""
    stages = {k: {kk: vv for kk, vv in v.items() if kk != "result"} for k, v in res["stages"].items()}
    return {"n_images": res["n_images"], "processed": res["processed"], "skipped": res["skipped"],
            "failed": [{"image": i, "status": s, "error": e} for i, s, e in res["failed"]],
            "mask_check": res.get("mask_check") or [], "stages": stages, "run_json": os.fspath(res["run_json"]),
            "elapsed_s": res["elapsed_s"]}

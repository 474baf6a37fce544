"""``skinimg segment``, ``train-segmenter`` and ``eval-segment``: skin masks, the colour model, its accuracy."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..batch import EVAL_COLUMNS, EVAL_TONE_COLUMNS, SEGMENT_COLUMNS, RoiLookup, evaluate_folders, segment_paths
from ..io import write_csv, write_json
from ..segment import SegmentParams
from .group import EXIT_PARTIAL, cli, is_quiet
from .options import (check_needs_model, check_option, echo_json, echo_json_lines, flag_note, flags_computed,
                      json_option, max_pixels_option, method_option, out_option, paths_argument, roi_files_options,
                      roi_option, second_stage_option, workers_option)


@cli.command("segment")
@paths_argument
@out_option()
@method_option
@roi_option("Restrict every photo to a region: polygon JSON [[x, y], ...] in image pixels (or named regions: their "
            "union), or a mask PNG (non-zero = inside, same size as the photos). Default: each photo's own "
            "<stem>.roi.json / .roi.png.")
@roi_files_options
@second_stage_option
@check_option
@workers_option
@max_pixels_option
@json_option("the rows of segment.csv, one JSON object per line,")
def segment_cmd(paths, out, method, roi, roi_dir, no_roi_files, second_stage, check, workers, max_pixels, as_json):
    """Segment the skin of every photo in PATHS.

    Writes OUT/masks/<relative path>/<stem>.png (8-bit, 255 = skin, 0 = not,
    size of the upright photo) and OUT/segment.csv with the columns image,
    status (ok, no_skin, error), error, skin_fraction (skin pixels / all
    pixels of the photo), method, and with --check or --second-stage both
    stage_agreement (0-1) and mask_check (ok, or check: look at that mask), then roi, roi_source and
    roi_pixels: the region of interest the mask is restricted to (--roi, else the photo's own
    <stem>.roi.json / .roi.png).  A bad file or ROI is an error row with the reason; exit code 2 when
    any file failed.
    """
    check_needs_model(check, method)
    rois = RoiLookup.from_options(roi, roi_dir, no_roi_files)
    summary = segment_paths(paths, out, method=method, roi=rois, workers=workers, max_pixels=max_pixels,
                            params=SegmentParams(stage2_model=second_stage), check=check)
    if as_json:
        echo_json_lines(summary["rows"], SEGMENT_COLUMNS)
    for row in summary["rows"]:
        if row["status"] == "error":
            click.echo(f"skinimg: {row['image']}: {row['error']}", err=True)
        elif not as_json and not is_quiet():
            flag = ""
            if row["mask_check"] == "check":
                flag = f" - {flag_note(row)}"
            click.echo(f"{row['image']}: {row['status']}, skin {100 * (row['skin_fraction'] or 0):.1f} %{flag}")
    if not is_quiet():
        checked = f", {summary['n_check']} to check by eye" if flags_computed(method, check, second_stage) else ""
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
              help="Train the convolutional second stage (needs PyTorch: pip install 'skinimg[train]'; slow: an hour "
                   "or more and many GB of memory). --no-net keeps only the per-pixel perceptron.")
@click.option("--net-phantoms", type=click.IntRange(8), default=3000, show_default=True,
              help="Training phantoms of the convolutional stage (seeds 0 ..).")
@click.option("--workers", type=click.IntRange(1), default=2, show_default=True,
              help="Processes rendering that stage's phantoms (the result does not depend on it).")
@json_option("the provenance written to skin_lut.json (data, split, metrics)")
def train_segmenter_cmd(out, uci, net, net_phantoms, workers, as_json):
    """Rebuild the skin colour model (models/skin_lut.npz + .json) reproducibly.

    Trains on 80 % of the UCI skin pixels (stratified, seed 0) and on pixels of
    200 daylight phantoms of every skin tone, then the second stages (a per-pixel
    perceptron and a small U-Net); reports balanced accuracy on the held-out
    20 % and mask F1 per tone on 36 held-out phantoms.  The same inputs give
    byte-identical files on one machine (the JSON's date comes from $SOURCE_DATE_EPOCH
    if set; PyTorch's results may differ between CPUs).
    """
    from ..train import train_segmenter  # training is optional: loaded only for this command

    quiet = is_quiet()
    prov = train_segmenter(out, uci=uci, net=net, n_net_phantoms=net_phantoms, workers=workers,
                           progress=None if quiet else (lambda m: click.echo(f"skinimg: {m}", err=True)))
    if as_json:
        echo_json(prov)
        return
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
              help="Folder of the photos.")
@click.option("--masks", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Folder of their true masks: <stem>.png or <stem>_mask.png at the photo's relative path "
                   "(non-zero = skin).")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also write OUT/eval_segment.csv, OUT/eval_segment_tones.csv and OUT/eval_segment.json.")
@method_option
@second_stage_option
@check_option
@json_option("the result as one JSON document")
def eval_segment_cmd(images, masks, out, method, second_stage, check, as_json):
    """Segment the photos in --images and compare with the true masks in --masks.

    Precision, recall, F1 (Dice) and IoU per image, overall (pixels pooled
    over all images) and per skin tone (pooled over the photos whose true
    skin has that ITA class, Del Bino and Bernerd 2013; columns ita_deg and
    tone per image), as a table on stdout (or JSON with --json).  Images
    without a true mask are error rows; exit code 2 when any image failed.
    """
    check_needs_model(check, method)
    res = evaluate_folders(images, masks, method=method, params=SegmentParams(stage2_model=second_stage), check=check)
    if out is not None:
        write_csv(Path(out) / "eval_segment.csv", res["rows"], EVAL_COLUMNS)
        write_csv(Path(out) / "eval_segment_tones.csv", res["by_tone"], EVAL_TONE_COLUMNS)
        write_json(Path(out) / "eval_segment.json", res)
    if as_json:
        echo_json(res)
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

"""``skinimg segment``, ``train-segmenter`` and ``eval-segment``: skin masks, the skin network, its accuracy."""

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
                      retired_option, roi_option, second_stage_option, workers_option)


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
    pixels of the photo), method, and with --check stage_agreement (0-1) and
    mask_check (ok, or check: look at that mask), then roi, roi_source and
    roi_pixels: the region of interest the mask is restricted to (--roi, else
    the photo's own <stem>.roi.json / .roi.png).  OUT/segment.json records
    what made the masks (method, parameters, the network's SHA-256, version).
    A bad file or ROI is an error row with the reason; exit code 2 when any
    file failed.
    """
    check_needs_model(check, method)
    rois = RoiLookup.from_options(roi, roi_dir, no_roi_files)
    summary = segment_paths(paths, out, method=method, roi=rois, workers=workers, max_pixels=max_pixels,
                            params=SegmentParams(), check=check)
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
@click.option("--data", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Folder of labelled photos: <dataset>/train/... and <dataset>/val/... (see docs/segmentation.md); "
                   "test_* folders are never read.")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=Path("models"),
              show_default=True, help="Folder for skin_unet.onnx and skin_unet.json.")
@click.option("--uci", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="UCI Skin_NonSkin.txt, colours of the flat scenes (default: ../shared/data/uci-skin/ beside the "
                   "repository, if there).")
@click.option("--sources", default=None, metavar="NAMES",
              help="Comma-separated datasets to train on (default: all); the others are only scored "
                   "(leave-one-dataset-out).")
@click.option("--iters", type=click.IntRange(1), default=1800, show_default=True, help="Training iterations.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of every random choice.")
@click.option("--threads", type=click.IntRange(1), default=2, show_default=True, help="PyTorch threads.")
@click.option("--workers", type=click.IntRange(0), default=1, show_default=True,
              help="Processes preparing the augmented batches.")
@click.option("--splits-cache", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="JSON file keeping the splits between runs on the same photos (finding near duplicates is slow).")
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File of the training state, written at every development score; an interrupted run started "
                   "again with the same file and settings resumes from it.")
@click.option("--eval-every", type=click.IntRange(1), default=300, show_default=True,
              help="Iterations between development scores (and checkpoints).")
@click.option("--stop-after", type=click.IntRange(1), default=None, metavar="N",
              help="Stop after iteration N of the --iters schedule and export (with a --checkpoint at or past N: "
                   "export it without training further).")
@click.option("--background-textures", "p_background", type=click.FloatRange(0, 0.5), default=None, metavar="SHARE",
              help="Share of the real crops whose background is replaced by a skin-coloured texture (wood, straw, "
                   "fabric, paper), kept as not skin (an experiment, off by default).  [default: 0]")
@click.option("--flat-scenes", "p_flat", type=click.FloatRange(0, 0.6), default=None, metavar="SHARE",
              help="Share of the crops that are flat scenes (skin regions on plain backgrounds).  [default: 0.14]")
@click.option("--flat-bands", "p_band", type=click.FloatRange(0, 1), default=None, metavar="SHARE",
              help="Share of the flat scenes' skin regions drawn as bands across the frame (an experiment, off by "
                   "default).  [default: 0]")
@retired_option("--net/--no-net", "net", default=True, why="the network is the whole segmenter now",
                help="Deprecated, no effect (the convolutional second stage of the former colour-table segmenter).")
@retired_option("--net-phantoms", "net_phantoms", type=int, default=3000, why="the network trains on real photos",
                help="Deprecated, no effect (phantoms of the former convolutional second stage).")
@json_option("the provenance written to skin_unet.json (data, splits, metrics)")
def train_segmenter_cmd(data, out, uci, sources, iters, seed, threads, workers, splits_cache, checkpoint, eval_every,
                        stop_after, p_background, p_flat, p_band, net, net_phantoms, as_json):
    """Train the skin network (models/skin_unet.onnx + .json) on real labelled photos.

    Splits the train folders into training and development photos by id
    (consecutive ids are the same person) and near duplicates, drops training
    photos that duplicate a val photo, cleans the labels (lips, specks),
    trains a small U-Net in PyTorch on augmented crops (skin tone, lesions,
    lighting, camera, scale), exports it to ONNX and scores it with OpenCV on
    the development and val photos, per dataset and skin tone, beside the
    rules baseline.  Needs PyTorch: pip install 'skinimg[train]'.
    """
    from ..train import train_segmenter  # training is optional: loaded only for this command

    quiet = is_quiet()
    prov = train_segmenter(data, out, uci=uci, sources=tuple(s for s in sources.split(",") if s) if sources else None,
                           iters=iters, seed=seed, threads=threads, workers=workers, splits_cache=splits_cache,
                           checkpoint=checkpoint, eval_every=eval_every, stop_after=stop_after,
                           **{k: v for k, v in (("p_background", p_background), ("p_flat", p_flat),
                                                ("p_band", p_band)) if v is not None},
                           progress=None if quiet else (lambda m: click.echo(f"skinimg: {m}", err=True)))
    if as_json:
        echo_json(prov)
        return
    for part, groups in prov["metrics"].items():
        click.echo(f"{part}:  photos  mean F1  pooled F1  rules mean F1  rules pooled F1")
        for g, v in groups.items():
            click.echo(f"  {g:<26s} {v['n_photos']:6d}  {v['mean_f1']:7.4f}  {v['pooled_f1']:9.4f}  "
                       f"{v['rules_mean_f1']:13.4f}  {v['rules_pooled_f1']:15.4f}")
    click.echo(f"wrote {Path(out) / 'skin_unet.onnx'} and {Path(out) / 'skin_unet.json'}")


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
    tone per image), with the rules baseline scored on the same photos beside
    the model (columns rules_f1, rules_iou), as a table on stdout (or JSON
    with --json).  Images without a true mask are error rows; exit code 2
    when any image failed.
    """
    check_needs_model(check, method)
    res = evaluate_folders(images, masks, method=method, params=SegmentParams(), check=check)
    if out is not None:
        write_csv(Path(out) / "eval_segment.csv", res["rows"], EVAL_COLUMNS)
        write_csv(Path(out) / "eval_segment_tones.csv", res["by_tone"], EVAL_TONE_COLUMNS)
        write_json(Path(out) / "eval_segment.json", res)
    if as_json:
        echo_json(res)
    else:
        width = max([len("image"), len("overall (pooled)")] + [len(r["image"]) for r in res["rows"]])
        rules = res["overall_rules"] is not None
        click.echo(f"{'image':<{width}}  precision  recall     f1    iou" + ("  rules f1  rules iou" if rules else ""))
        for r in res["rows"]:
            if r["status"] == "ok":
                flag = f"  check (mirror agreement {r['stage_agreement']:.2f})" if r["mask_check"] == "check" else ""
                base = f"  {r['rules_f1']:8.4f} {r['rules_iou']:10.4f}" if r.get("rules_f1") is not None else ""
                click.echo(f"{r['image']:<{width}}  {r['precision']:9.4f} {r['recall']:7.4f} {r['f1']:6.4f} "
                           f"{r['iou']:6.4f}{base}{flag}")
            else:
                click.echo(f"{r['image']:<{width}}  error: {r['error']}")
        o = res["overall"]
        if o is not None:
            ro = res["overall_rules"]
            base = f"  {ro['f1']:8.4f} {ro['iou']:10.4f}" if ro else ""
            click.echo(f"{'overall (pooled)':<{width}}  {o['precision']:9.4f} {o['recall']:7.4f} {o['f1']:6.4f} "
                       f"{o['iou']:6.4f}{base}")
            mean = f"mean of the photos' F1: {res['mean_f1']:.4f}"
            click.echo(mean + (f" (rules {res['rules_mean_f1']:.4f})" if rules else ""))
        if res["by_tone"]:
            click.echo("\nby skin tone (ITA class of the true skin, Del Bino and Bernerd 2013; pooled F1 and IoU, mean F1):")
            click.echo(f"{'tone':<12s}  photos      f1    iou  mean f1" + ("  rules f1  rules iou  rules mean f1" if rules else "")
                       + "  worst f1 (photo)")
            for t in res["by_tone"]:
                base = (f"  {t['rules_f1']:8.4f} {t['rules_iou']:10.4f} {t['rules_mean_f1']:14.4f}"
                        if t.get("rules_f1") is not None else "")
                click.echo(f"{t['tone']:<12s}  {t['n_images']:6d}  {t['f1']:6.4f} {t['iou']:6.4f} {t['mean_f1']:8.4f}"
                           f"{base}  {t['worst_f1']:.4f} ({t['worst_image']})")
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

"""``skinimg info`` (check that photos load) and ``skinimg synth`` (render phantoms)."""

from __future__ import annotations

import json
import sys

import click

from ..errors import SkinImgError
from ..io import discover_images, load_image
from ..phantom import SETS, write_set
from .group import EXIT_PARTIAL, cli, is_quiet
from .options import echo_json_lines, json_option, max_pixels_option, out_option, paths_argument, renamed_option


@cli.command("info")
@paths_argument
@max_pixels_option
@json_option("one JSON object per image and line")
def info_cmd(paths, max_pixels, as_json):
    """Load every image in PATHS and print its size, bit depth and metadata.

    A quick check that a visit folder is readable: each bad file is one line
    naming the file and the reason.  Exit code 2 when some files failed.
    """
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
    "--set", "set_name", type=click.Choice(SETS), default="samples", show_default=True,
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
@renamed_option("--image-format", "--format", "image_format", type=click.Choice(["jpg", "png"]), default="jpg",
                show_default=True, help="Photo file format (JPEG quality 90).")
@click.option("--maps/--no-maps", default=None,
              help="Write float32 melanin/haemoglobin TIFF truth maps (default: yes, except for --set samples).")
@json_option("one JSON object per image and line (its truth file and mean concentrations)")
def synth_cmd(out, set_name, n, size, seed, image_format, maps, as_json):
    """Render skin phantoms with known ground truth into --out.

    Photos go to OUT/<set>/..., truth to OUT/truth/<same path>: <stem>_mask.png
    (255 = skin), <stem>.json (melanin_mean, hemoglobin_mean, spec, pose, chart
    geometry) and, with --maps, <stem>_melanin.tif / <stem>_hemoglobin.tif
    (float32 volume fractions, NaN off skin).  Every set but samples also gets
    OUT/reference.csv (image, its true mask as roi, true_melanin,
    true_hemoglobin; subject and session for retakes) for `skinimg bench
    --suite agreement`.  Deterministic: the same options give the same files.
    `skinimg synth --set samples --out sample_images` regenerates the committed
    sample images.
    """
    quiet = is_quiet()

    def progress(rec):
        if as_json:
            echo_json_lines([rec])
        elif not quiet:
            click.echo(rec["image"])

    records = write_set(set_name, out, n=n, size=size, seed=seed, image_format=image_format, maps=maps,
                        progress=progress)
    if not quiet:
        click.echo(f"skinimg: wrote {len(records)} image(s) and their truth to {out}", err=True)

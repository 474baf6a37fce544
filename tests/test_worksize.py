"""The working size of analyze (``--resolution``): a large photo is measured on an area-averaged copy of a fixed
number of pixels, so its numbers do not depend on the camera's resolution (``docs/images.md#working-size``)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from skinimg.batch import AnalyzeParams, analyze_image, run_pipeline
from skinimg.cli import cli
from skinimg.errors import SkinImgError
from skinimg.io import (DEFAULT_WORK_PIXELS, load_image, parse_resolution, read_roi, reduce_image, reduce_mask,
                        work_size)
from skinimg.io.worksize import reduced_decode_factor

ROOT = Path(__file__).resolve().parents[1]
CHEEK = ROOT / "sample_images" / "patients" / "P001" / "cheek" / "2026-01-15" / "P001_cheek.jpg"


def _upscaled(path: Path, out: Path, height: int, quality: int = 95) -> Path:
    """The sample cheek photo enlarged (bicubic) to ``height`` rows, as a camera of higher resolution would see it."""
    img = cv2.imread(str(CHEEK))
    out.parent.mkdir(parents=True, exist_ok=True)
    w = round(img.shape[1] * height / img.shape[0])
    cv2.imwrite(str(out), cv2.resize(img, (w, height), interpolation=cv2.INTER_CUBIC),
                [cv2.IMWRITE_JPEG_QUALITY, quality])
    return out


def test_work_size_keeps_the_aspect_ratio_and_small_photos():
    assert work_size(640, 480, DEFAULT_WORK_PIXELS) == (640, 480)  # not larger: untouched
    assert work_size(4000, 3000, 750_000) == (1000, 750)
    w, h = work_size(4240, 2796, 750_000)
    assert abs(w * h - 750_000) < 2000 and abs(w / h - 4240 / 2796) < 0.005
    assert work_size(4000, 3000, None) == (4000, 3000)
    # libjpeg rounds the reduced sides up: decode at 1/k only while both sides stay at least the target's
    assert reduced_decode_factor((4000, 3000), (1000, 750)) == 4
    assert reduced_decode_factor((4000, 3000), (1001, 750)) == 2
    assert reduced_decode_factor((2000, 1500), (1000, 750)) == 2
    assert reduced_decode_factor((1200, 900), (1000, 750)) == 1


def test_parse_resolution():
    assert parse_resolution("full") is None and parse_resolution(None) is None
    assert parse_resolution("0.75") == 750_000 and parse_resolution(2) == 2_000_000
    for bad in ("0", "-1", "abc", "nan", True):
        with pytest.raises(ValueError):
            parse_resolution(bad)


def test_reduced_jpeg_decode_matches_area_averaging_of_the_full_decode(tmp_path):
    p = _upscaled(CHEEK, tmp_path / "big.jpg", 2400)  # 3200 x 2400: decoded at 1/2, then area-averaged
    full, mfull = load_image(p)
    small, meta = load_image(p, work_pixels=750_000)
    assert small.shape == (750, 1000, 3) and small.dtype == np.uint8
    assert (meta.width, meta.height, meta.photo_width, meta.photo_height) == (1000, 750, 3200, 2400)
    assert meta.scale == pytest.approx(1000 / 3200) and mfull.scale == 1.0
    ref = cv2.resize(full, (1000, 750), interpolation=cv2.INTER_AREA)
    diff = np.abs(small.astype(np.int16) - ref.astype(np.int16))
    assert diff.mean() < 1.0 and np.percentile(diff, 99) <= 4  # the scaled inverse DCT ~ an area average
    assert np.array_equal(reduce_image(full, 750_000), ref)


def test_working_copy_of_a_rotated_jpeg_and_of_a_16_bit_png(tmp_path):
    img = cv2.imread(str(CHEEK))[..., ::-1]
    big = cv2.resize(img, (1600, 1200), interpolation=cv2.INTER_CUBIC)  # stored landscape
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view: upright portrait
    p = tmp_path / "rot.jpg"
    Image.fromarray(big).save(p, quality=95, exif=exif.tobytes())
    upright, _ = load_image(p)
    small, meta = load_image(p, work_pixels=480_000)
    assert upright.shape[:2] == (1600, 1200) and small.shape[:2] == (800, 600)
    assert (meta.photo_width, meta.photo_height) == (1200, 1600)
    ref = cv2.resize(upright, (600, 800), interpolation=cv2.INTER_AREA)
    assert np.abs(small.astype(np.int16) - ref.astype(np.int16)).mean() < 1.0
    p16 = tmp_path / "deep.png"
    cv2.imwrite(str(p16), (big.astype(np.uint16) * 257)[..., ::-1])
    deep, m16 = load_image(p16, work_pixels=480_000)
    assert deep.dtype == np.uint16 and deep.shape[:2] == (600, 800) and m16.bit_depth == 16
    assert np.array_equal(deep, cv2.resize(big.astype(np.uint16) * 257, (800, 600), interpolation=cv2.INTER_AREA))
    rgba = np.dstack([big, np.full(big.shape[:2], 128, np.uint8)])  # alpha dropped, then reduced
    cv2.imwrite(str(tmp_path / "alpha.png"), rgba[..., [2, 1, 0, 3]])
    flat, ma = load_image(tmp_path / "alpha.png", work_pixels=480_000)
    assert ma.had_alpha and np.array_equal(flat, cv2.resize(big, (800, 600), interpolation=cv2.INTER_AREA))


def test_roi_in_photo_pixels_on_the_working_copy(tmp_path):
    roi = tmp_path / "r.roi.json"
    poly = [[800, 600], [2399, 600], [2399, 1799], [800, 1799]]  # the middle half of a 3200 x 2400 photo
    roi.write_text(json.dumps({"polygon": poly, "image_size": [3200, 2400]}))
    r = read_roi(roi)
    full = r.masks((2400, 3200))[""]
    small = r.masks((750, 1000), photo_shape=(2400, 3200))[""]
    assert full.mean() == pytest.approx(0.25, abs=1e-3) and small.mean() == pytest.approx(0.25, abs=0.003)
    assert (reduce_mask(full, (750, 1000)) != small).mean() < 0.002  # the same region, rasterised small
    with pytest.raises(SkinImgError, match="drawn on a 3200x2400 photo but the photo is 1600x1200"):
        r.masks((750, 1000), photo_shape=(1200, 1600))
    mask_roi = tmp_path / "m.roi.png"
    cv2.imwrite(str(mask_roi), full.astype(np.uint8) * 255)
    m = read_roi(mask_roi).masks((750, 1000), photo_shape=(2400, 3200))[""]
    assert (m != small).mean() < 0.003


KEYS_ABS = {"erythema_index": 0.15, "melanin_index": 0.3, "a_star": 0.1, "l_star": 0.15, "ita_deg": 0.3}
KEYS_REL = {"hemoglobin": 0.01, "melanin": 0.03, "red_area_fraction": 0.03, "hemoglobin_p90": 0.01}


def test_numbers_do_not_depend_on_the_cameras_resolution(tmp_path):
    """The same skin at 2.7 and at 7.7 megapixels: both measured on 1000 x 750, the same numbers."""
    rows = {}
    for h in (1600, 2400):
        p = _upscaled(CHEEK, tmp_path / f"h{h}.jpg", h)
        rows[h], _ = analyze_image(p, params=AnalyzeParams(), maps=False)
        assert rows[h]["status"] == "ok"
        assert (rows[h]["analysis_width"], rows[h]["analysis_height"]) == (1000, 750)
        assert (rows[h]["width"], rows[h]["height"]) == (round(640 * h / 480), h)
    a, b = rows[1600], rows[2400]
    for k, tol in KEYS_ABS.items():
        assert abs(a[k] - b[k]) <= tol, (k, a[k], b[k])
    for k, tol in KEYS_REL.items():
        assert abs(a[k] - b[k]) <= tol * abs(a[k]), (k, a[k], b[k])
    assert abs(a["skin_fraction"] - b["skin_fraction"]) < 0.002
    assert abs(a["brown_spot_count"] - b["brown_spot_count"]) <= 1
    # the photo's own size is measured with --resolution full: every pixel of it
    full, _ = analyze_image(tmp_path / "h1600.jpg", params=AnalyzeParams(work_pixels=None), maps=False)
    assert (full["analysis_width"], full["analysis_height"]) == (2133, 1600) and full["skin_pixels"] > 4 * a["skin_pixels"]
    assert abs(full["erythema_index"] - a["erythema_index"]) < 1.0  # another scale, the same skin


def test_cli_resolution_option_and_maps_of_the_working_size(tmp_path):
    _upscaled(CHEEK, tmp_path / "in" / "big.jpg", 1600)
    r = CliRunner().invoke(cli, ["analyze", str(tmp_path / "in"), "--out", str(tmp_path / "o"), "--workers", "1",
                                 "--maps", "hemoglobin"])
    assert r.exit_code == 0, r.output
    row = next(csv.DictReader(open(tmp_path / "o" / "indices.csv", newline="")))
    assert (row["width"], row["height"], row["analysis_width"], row["analysis_height"]) == ("2133", "1600", "1000",
                                                                                            "750")
    tif = cv2.imread(str(tmp_path / "o" / "maps" / "big_hemoglobin.tif"), cv2.IMREAD_UNCHANGED)
    assert tif.shape == (750, 1000) and tif.dtype == np.float32
    assert json.loads((tmp_path / "o" / "analyze.json").read_text())["params"]["work_pixels"] == 750_000
    r = CliRunner().invoke(cli, ["analyze", str(tmp_path / "in"), "--out", str(tmp_path / "f"), "--workers", "1",
                                 "--no-maps", "--resolution", "full"])
    assert r.exit_code == 0, r.output
    row = next(csv.DictReader(open(tmp_path / "f" / "indices.csv", newline="")))
    assert (row["analysis_width"], row["analysis_height"]) == ("2133", "1600")
    r = CliRunner().invoke(cli, ["analyze", str(tmp_path / "in"), "--out", str(tmp_path / "x"), "--resolution", "0"])
    assert r.exit_code == 2 and "--resolution" in r.output


def test_run_writes_masks_at_the_photos_size_and_scales_rois(tmp_path):
    src = tmp_path / "in"
    _upscaled(CHEEK, src / "big.jpg", 1600)
    (src / "big.roi.json").write_text(json.dumps([[0, 0], [1066, 0], [1066, 1599], [0, 1599]]))  # left half
    pipe = tmp_path / "p.toml"
    pipe.write_text('[pipeline]\nstages = ["segment", "analyze"]\n[analyze]\nmaps = false\nresolution = 0.75\n')
    run_pipeline(pipe, src, tmp_path / "out", workers=1)
    mask = cv2.imread(str(tmp_path / "out" / "masks" / "big.png"), cv2.IMREAD_GRAYSCALE)
    assert mask.shape == (1600, 2133)
    assert not mask[:, 1100:].any() and mask[:, :1000].any()  # the ROI, in the photo's pixels
    row = next(csv.DictReader(open(tmp_path / "out" / "indices.csv", newline="")))
    assert row["status"] == "ok" and row["analysis_width"] == "1000"
    assert int(row["roi_pixels"]) == pytest.approx(1000 * 750 / 2, rel=0.01)
    bad = tmp_path / "bad.toml"
    bad.write_text('[pipeline]\nstages = ["analyze"]\n[analyze]\nresolution = "big"\n')
    with pytest.raises(SkinImgError, match="analyze.resolution"):
        run_pipeline(bad, src, tmp_path / "out2", workers=1)


def test_compare_measures_large_pairs_at_the_working_size(tmp_path):
    """A retake pair enlarged 2.5x reads as the pair at its own size: the same verdicts, close changes."""
    from skinimg.batch import compare_files

    retake = ROOT / "sample_images" / "retake"
    small = compare_files(retake / "R001_a.jpg", retake / "R001_b.jpg", None)
    big = {}
    for k in ("a", "b"):
        img = cv2.imread(str(retake / f"R001_{k}.jpg"))
        cv2.imwrite(str(tmp_path / f"{k}.jpg"), cv2.resize(img, (1600, 1200), interpolation=cv2.INTER_CUBIC),
                    [cv2.IMWRITE_JPEG_QUALITY, 95])
    roi = tmp_path / "a.roi.json"  # the left half of BEFORE, in its own pixels
    roi.write_text(json.dumps([[0, 0], [799, 0], [799, 1199], [0, 1199]]))
    doc = compare_files(tmp_path / "a.jpg", tmp_path / "b.jpg", None)
    assert doc["image_sizes"]["before"] == [1600, 1200] and doc["analysis_sizes"]["before"] == [1000, 750]
    assert doc["params"]["work_pixels"] == DEFAULT_WORK_PIXELS
    assert doc["registration"]["ok"] and small["registration"]["ok"]
    for name, m in small["metrics"].items():
        assert doc["metrics"][name]["verdict"] == m["verdict"], name
    for name in ("hemoglobin", "erythema_index", "a_star", "l_star"):
        assert abs(doc["metrics"][name]["delta_pct"] - small["metrics"][name]["delta_pct"]) < 2.0, name
    # the homography is between the photos' own pixels (what --propagate-roi carries an ROI with): AFTER made
    # from BEFORE with a known rotation and shift
    from skinimg.session import map_points

    big = cv2.imread(str(tmp_path / "a.jpg"))
    m = cv2.getRotationMatrix2D((800, 600), 2.0, 1.0)
    m[:, 2] += (30, -20)
    cv2.imwrite(str(tmp_path / "moved.jpg"), cv2.warpAffine(big, m, (1600, 1200), borderMode=cv2.BORDER_REFLECT),
                [cv2.IMWRITE_JPEG_QUALITY, 95])
    moved = compare_files(tmp_path / "a.jpg", tmp_path / "moved.jpg", None)
    assert moved["registration"]["ok"]
    pts = np.array([[200.0, 150.0], [1400.0, 1050.0], [800.0, 600.0], [1400.0, 150.0]])
    err = map_points(pts, np.array(moved["registration"]["homography"])) - map_points(pts, np.vstack([m, [0, 0, 1]]))
    assert np.abs(err).max() < 3.0  # photo pixels (1 px of the working copy is 1.6 of them)
    with_roi = compare_files(tmp_path / "a.jpg", tmp_path / "b.jpg", None, roi=roi)
    assert with_roi["roi_pixels"] == 800 * 1200  # in BEFORE's own pixels
    joint = with_roi["joint_mask"]["pixels"]  # measured on the working copy, inside the ROI
    assert 0 < joint < 0.8 * doc["joint_mask"]["pixels"]


def test_an_roi_with_maps_on_a_large_photo(tmp_path):
    """An unnamed polygon ROI with the default maps (what the clinic pipeline does): a row and its maps, at the
    working size, inside the ROI (this crashed with 'bool' object is not iterable before)."""
    _upscaled(CHEEK, tmp_path / "in" / "big.jpg", 1600)
    (tmp_path / "in" / "big.roi.json").write_text(json.dumps([[0, 0], [1066, 0], [1066, 1599], [0, 1599]]))
    r = CliRunner().invoke(cli, ["analyze", str(tmp_path / "in"), "--out", str(tmp_path / "o"), "--workers", "1"])
    assert r.exit_code == 0, r.output
    row = next(csv.DictReader(open(tmp_path / "o" / "indices.csv", newline="")))
    assert row["status"] == "ok" and row["roi_source"] == "file"
    hb = cv2.imread(str(tmp_path / "o" / "maps" / "big_hemoglobin.tif"), cv2.IMREAD_UNCHANGED)
    assert hb.shape == (750, 1000) and np.isfinite(hb[:, :480]).any() and not np.isfinite(hb[:, 520:]).any()

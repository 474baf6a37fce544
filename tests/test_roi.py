"""Regions of interest through every stage (issue 27): ROI files, lookup, named regions, propagation, outputs."""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from skinimg import session as C
from skinimg.batch import ROI_COLUMNS, RoiLookup, RoiRef, discover_series, parse_pipeline, run_pipeline, upsert_rows
from skinimg.batch import analyze as A
from skinimg.batch.store import read_rows
from skinimg.cli import cli
from skinimg.errors import SkinImgError
from skinimg.indices import IndexParams, measure
from skinimg.io import discover_images, find_roi, is_roi_file, load_roi, read_roi, write_json, write_png
from skinimg.phantom import PhantomSpec, cheek_patches, patch_in, polygon_mask, render_phantom, render_treated
from skinimg.session import clip_polygon, map_points, polygon_area, propagate_regions

from .harness import stand_in_segment


def _read(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _regions(path, regions: dict, **extra):
    write_json(path, {"regions": {k: np.asarray(v).tolist() for k, v in regions.items()}, **extra})
    return path


# ----------------------------------------------------------------------------- ROI files and their lookup


def test_roi_formats_polygon_named_regions_and_mask(tmp_path):
    square = [[10, 20], [29, 20], [29, 39], [10, 39]]  # pixel centres 10..29 x 20..39: 20 x 20 pixels
    (tmp_path / "a.roi.json").write_text(json.dumps(square))
    (tmp_path / "b.roi.json").write_text(json.dumps({"polygon": square, "note": "drawn by hand"}))
    _regions(tmp_path / "c.roi.json", {"left": square, "right": [[40, 20], [49, 20], [49, 29], [40, 29]]},
             image_size=[60, 50])
    for name in ("a", "b"):
        roi = read_roi(tmp_path / f"{name}.roi.json")
        assert not roi.named and roi.names == ("",)
        m = roi.masks((50, 60))[""]
        assert m.sum() == 400 and m[20, 10] and m[39, 29] and not m[40, 29] and not m[20, 30]
    roi = read_roi(tmp_path / "c.roi.json")
    assert roi.named and roi.names == ("left", "right") and roi.image_size == (60, 50)
    masks = roi.masks((50, 60))
    assert masks["left"].sum() == 400 and masks["right"].sum() == 100 and not (masks["left"] & masks["right"]).any()
    assert load_roi(tmp_path / "c.roi.json", (50, 60)).sum() == 500  # load_roi: the union
    png = tmp_path / "d.roi.png"
    write_png(png, masks["left"].astype(np.uint8) * 255)
    roi = read_roi(png)
    assert roi.kind == "mask" and not roi.named and (roi.masks((50, 60))[""] == masks["left"]).all()


@pytest.mark.parametrize("content, size, reason", [
    ([[10, 10], [70, 10], [40, 30]], (50, 60), "point (70, 10) outside the 60x50 photo"),
    ([[100, 100], [120, 100], [110, 120]], (50, 60), "lies outside the 60x50 photo"),
    ([[1, 2], [3, 4]], (50, 60), "at least 3"),
    ({"regions": {"a": [[1, 2], [3, 4]]}}, (50, 60), "ROI region 'a' must be a JSON list of at least 3"),
    ({"regions": {"bad name": [[1, 1], [9, 1], [9, 9]]}}, (50, 60), "region name 'bad name'"),
    ({"regions": {}}, (50, 60), "at least one region"),
    ({"polygon": [[1, 1], [9, 1], [9, 9]], "colour": "red"}, (50, 60), "unknown key 'colour'"),
    ({"polygon": [[1, 1], [9, 1], [9, 9]], "image_size": [640, 480]}, (50, 60), "drawn on a 640x480 photo"),
])
def test_bad_roi_files_are_one_line_errors_naming_the_file(tmp_path, content, size, reason):
    p = tmp_path / "face.roi.json"
    p.write_text(json.dumps(content))
    with pytest.raises(SkinImgError, match=re.escape(reason)) as e:
        read_roi(p).masks(size)
    assert str(e.value).startswith("face.roi.json: ") and "\n" not in str(e.value)


def test_roi_lookup_beside_mirrored_and_ambiguous(tmp_path):
    photo = tmp_path / "study" / "P1" / "face.jpg"
    photo.parent.mkdir(parents=True)
    photo.write_bytes(b"x")
    assert find_roi(photo) is None
    (photo.parent / "face.roi.json").write_text("[]")
    assert find_roi(photo) == photo.parent / "face.roi.json"
    mirror = tmp_path / "rois" / "P1"
    mirror.mkdir(parents=True)
    (mirror / "face.roi.png").write_bytes(b"x")
    assert find_roi(photo, relpath="P1/face.jpg", roi_dir=tmp_path / "rois") == mirror / "face.roi.png"
    (photo.parent / "face.roi.png").write_bytes(b"x")
    with pytest.raises(SkinImgError, match="two ROI files for one photo"):
        find_roi(photo)
    assert is_roi_file("a.ROI.PNG") and is_roi_file("x/a.roi.json") and not is_roi_file("a.png")
    # the batch lookup: --roi wins, then the photo's own file, then a propagated one, then none
    ref = RoiLookup().resolve(photo, "P1/face.jpg")
    assert ref.source == "file" and ref.error and "two ROI files" in ref.error
    (photo.parent / "face.roi.png").unlink()
    ref = RoiLookup().resolve(photo, "P1/face.jpg")
    assert (ref.path, ref.label, ref.source) == (photo.parent / "face.roi.json", "P1/face.roi.json", "file")
    assert RoiLookup(files="none").resolve(photo, "P1/face.jpg") == RoiRef()
    one = tmp_path / "one.roi.json"
    one.write_text("[]")
    assert RoiLookup.from_options(one).resolve(photo).path == one
    with pytest.raises(SkinImgError, match="ROI file not found"):
        RoiLookup.from_options(tmp_path / "missing.json")


def test_roi_sidecars_are_never_taken_for_photos(tmp_path):
    root = tmp_path / "study"
    for session in ("2026-01-01", "2026-02-01"):
        write_png(root / "P1" / "arm" / session / "arm.png", np.full((40, 40, 3), 150, np.uint8))
    write_png(root / "P1" / "arm" / "2026-01-01" / "arm.roi.png", np.full((40, 40), 255, np.uint8))
    found = [i.relpath for i in discover_images([root])]
    assert found == ["P1/arm/2026-01-01/arm.png", "P1/arm/2026-02-01/arm.png"]
    series = discover_series(root)
    assert [s.path.name for s in series[("P1", "arm")]] == ["arm.png", "arm.png"]


def test_store_key_image_and_region_replaces_a_photos_rows(tmp_path):
    db = tmp_path / "r.sqlite"
    cols = ("image", "status", "region", "v")
    upsert_rows(db, "t", [{"image": "a", "status": "ok", "region": "", "v": 1.0}], cols)  # an older table: key image
    upsert_rows(db, "t", [{"image": "a", "status": "ok", "region": "", "v": 2.0},
                          {"image": "a", "status": "ok", "region": "x", "v": 3.0},
                          {"image": "a", "status": "ok", "region": "y", "v": 4.0}], cols, key=("image", "region"),
                replace_by="image")
    assert [(r["region"], r["v"]) for r in read_rows(db, "t")] == [("", 2.0), ("x", 3.0), ("y", 4.0)]
    upsert_rows(db, "t", [{"image": "a", "status": "ok", "region": "", "v": 5.0},
                          {"image": "a", "status": "ok", "region": "y", "v": 6.0}], cols, key=("image", "region"),
                replace_by="image")  # region x left the ROI file: its row goes
    assert [(r["region"], r["v"]) for r in read_rows(db, "t")] == [("", 5.0), ("y", 6.0)]


# ----------------------------------------------------------------------------- carrying a region to another photo


def test_polygon_mapping_and_clipping_are_exact():
    sq = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], float)
    assert polygon_area(sq) == 100.0
    t = math.radians(30)
    h = np.array([[2 * math.cos(t), -2 * math.sin(t), 5], [2 * math.sin(t), 2 * math.cos(t), -3], [0, 0, 1]])
    mapped = map_points(sq, h)
    assert polygon_area(mapped) == pytest.approx(400.0) and mapped[0] == pytest.approx([5, -3])
    clipped = clip_polygon(np.array([[-5, 2], [5, 2], [5, 8], [-5, 8]], float), 20, 20)  # half left of x = 0
    assert polygon_area(clipped) == pytest.approx(30.0) and clipped[:, 0].min() == 0.0
    assert len(clip_polygon(np.array([[-9, -9], [-5, -9], [-5, -5]], float), 20, 20)) == 0


def test_propagate_regions_maps_polygons_and_masks_and_refuses_leaving_the_photo():
    shift = np.array([[1, 0, 12], [0, 1, -4], [0, 0, 1]], float)
    polys = {"a": np.array([[20, 20], [40, 20], [40, 40], [20, 40]], float)}
    out, why = propagate_regions(polys, None, shift, (100, 100))
    assert why == "" and out["a"] == pytest.approx(polys["a"] + [12, -4])
    far = np.array([[1, 0, 75], [0, 1, 0], [0, 0, 1]], float)  # x 95..115: 4 of its 20 px lie up to x = 99
    out, why = propagate_regions(polys, None, far, (100, 100))
    assert out is None and why == "region 'a' maps largely outside the photo (20% inside)"
    mask = np.zeros((100, 100), bool)
    mask[20:41, 20:41] = True
    m, why = propagate_regions(None, mask, shift, (100, 100))
    assert why == "" and m.sum() == mask.sum() and m[16, 32] and not m[15, 32]


# ----------------------------------------------------------------------------- named regions in a comparison


def test_named_regions_leave_the_whole_skin_alone_and_equal_a_single_roi_each():
    spec = PhantomSpec(melanin=0.06, hemoglobin=0.02, seed=31, size=(300, 400), jpeg_quality=92)
    b = render_phantom(spec)
    treated, control = cheek_patches(b.mask)
    after = PhantomSpec(**{**spec.to_dict(), "pose": (12.0, -8.0, 3.0, 1.03), "noise_seed": 99})
    a = render_treated(after, patch_in(treated, spec, after), hemoglobin_scale=0.7)
    regions = {"treated": polygon_mask(treated, b.mask.shape), "control": polygon_mask(control, b.mask.shape)}
    p = C.CompareParams(calibrate="none", lighting="none")
    kw = dict(before_mask=b.mask, after_mask=a.mask, params=p)
    whole, _ = C.compare_arrays(b.image, a.image, **kw)
    named, pics = C.compare_arrays(b.image, a.image, regions=regions, **kw)
    assert named["metrics"] == whole["metrics"]  # the regions change no whole-skin number
    for name, region in regions.items():
        alone, _ = C.compare_arrays(b.image, a.image, roi=region, **kw)
        got = named["regions"][name]
        assert got["pixels"] == region.sum() and got["joint_mask"]["pixels"] == alone["joint_mask"]["pixels"]
        for k in ("before", "after", "delta", "ci95", "mdc", "verdict", "delta_pct_model_range"):
            assert got["metrics"]["hemoglobin"][k] == alone["metrics"]["hemoglobin"][k], (name, k)
        f = got["joint_mask"]["pixels"] / whole["joint_mask"]["pixels"]
        assert got["mdc_source"]["area_scale"] == pytest.approx(1 / math.sqrt(f), rel=1e-5)
        assert got["metrics"]["hemoglobin"]["mdc_retake"] == pytest.approx(
            whole["metrics"]["hemoglobin"]["mdc_retake"] / math.sqrt(f), rel=1e-6)
        assert (pics["regions"][name] <= region).all()
    t, c = named["regions"]["treated"]["metrics"]["hemoglobin"], named["regions"]["control"]["metrics"]["hemoglobin"]
    # the size of a change is model-bound (docs/indices.md): the true -30 % lies in the region's own model range;
    # the central model reads these phantoms' optics at about half their change
    lo, hi = t["delta_pct_model_range"]
    # (the member of these phantoms' own optics reads about -28 for -30: the truth is the range's edge)
    assert lo - 3 <= -30 <= hi + 3 and lo < t["delta_pct"] < hi < 0 and t["verdict"] == "improved", (lo, hi, t)
    assert t["delta_pct_model_range"] != whole["metrics"]["hemoglobin"]["delta_pct_model_range"]
    assert abs(c["delta_pct"]) < 3 and c["verdict"] == "no_change"
    assert 0.5 * t["delta_pct"] < whole["metrics"]["hemoglobin"]["delta_pct"] < 0  # diluted: under half of it


def _split_face_study(root, size=(300, 400)):
    """S1/face: a baseline with an ROI file (treated + control), an unrelated photo (registration fails), then two
    follow-ups, blood x0.7 in the treated patch.  Returns the true (treated, control) masks per session."""
    base = PhantomSpec(melanin=0.05, hemoglobin=0.02, seed=41, size=size, noise_seed=1, jpeg_quality=95)
    treated, control = cheek_patches(render_phantom(base).mask)
    truth = {}
    poses = {"2026-01-01": None, "2026-02-01": "other", "2026-03-01": (0.1 * size[1], 0.0, 5.0, 1.05),
             "2026-04-01": (-0.05 * size[1], 0.1 * size[0], -4.0, 0.95)}
    for k, (date, pose) in enumerate(poses.items()):
        folder = root / "S1" / "face" / date
        if pose == "other":
            write_png(folder / "S1_face.png", render_phantom(PhantomSpec(seed=77, size=size, site="forearm")).image)
            continue
        spec = base if pose is None else PhantomSpec(**{**base.to_dict(), "pose": pose, "noise_seed": 10 + k})
        t, c = patch_in(treated, base, spec), patch_in(control, base, spec)
        write_png(folder / "S1_face.png", render_treated(spec, t, hemoglobin_scale=1.0 if pose is None else 0.7).image)
        truth[date] = (polygon_mask(t, size), polygon_mask(c, size))
    _regions(root / "S1" / "face" / "2026-01-01" / "S1_face.roi.json", {"treated": treated, "control": control})
    return truth


def test_track_propagates_the_baseline_roi_of_a_split_face_study(tmp_path):
    truth = _split_face_study(tmp_path / "study")
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["track", str(tmp_path / "study"), "--out", str(out), "--propagate-roi"])
    assert r.exit_code == 2, r.output  # the pair whose reference is the unrelated photo fails (its ROI is missing)
    # the unrelated photo cannot be aligned (issue 23: compared by region statistics): nothing is propagated to it
    assert ("S1/face/2026-02-01: ROI not propagated from 2026-01-01: the pair could not be pixel-aligned (compared by "
            "region statistics); draw this session's ROI") in r.stderr
    assert "ROI propagated to rois/S1/face/2026-03-01.roi.json: check it" in r.stderr
    for date in ("2026-03-01", "2026-04-01"):
        roi = read_roi(out / "rois" / "S1" / "face" / f"{date}.roi.json")
        assert roi.named and roi.meta["propagated"]["registration"]["ok"] and roi.image_size == (400, 300)
        got = roi.masks((300, 400))
        for name, true in zip(("treated", "control"), truth[date]):
            assert (got[name] & true).sum() / (got[name] | true).sum() >= 0.9, (date, name)
    assert not (out / "rois" / "S1" / "face" / "2026-02-01.roi.json").exists()
    rows = _read(out / "series.csv")
    header = list(rows[0])  # the ROI columns follow reference_image, then the model range, then registration
    assert header[header.index("reference_image") + 1:] == list(ROI_COLUMNS) + ["delta_pct_model_lo",
                                                                                "delta_pct_model_hi", "registration"]
    hb = {(x["session"], x["reference"], x["region"]): x for x in rows if x["index"] in ("hemoglobin", "")}
    for date in ("2026-03-01", "2026-04-01"):
        t, c, w = (hb[(date, "baseline", k)] for k in ("treated", "control", ""))
        lo, hi = float(t["delta_pct_model_lo"]), float(t["delta_pct_model_hi"])  # model-bound size (docs/indices.md)
        assert lo - 3 <= -30 <= hi + 3 and lo < float(t["delta_pct"]) < hi and t["verdict"] == "improved", t
        assert c["verdict"] == "no_change" and (t["roi_source"], w["roi_source"]) == ("file", "none")
        assert float(t["delta_pct"]) < float(w["delta_pct"]) < 0  # the whole skin dilutes the treated site
        assert int(t["roi_pixels"]) == truth["2026-01-01"][0].sum()
    later = hb[("2026-04-01", "previous", "treated")]  # both treated: the propagated ROI of 2026-03-01 as reference
    assert later["roi_source"] == "propagated" and later["roi"] == "rois/S1/face/2026-03-01.roi.json"
    assert later["verdict"] == "no_change"
    bad = hb[("2026-03-01", "previous", "")]  # its reference has no ROI: an error, never the whole skin silently
    assert bad["status"] == "error" and "ROI not propagated" in bad["error"] and bad["roi_source"] == "propagated"
    # the unaligned pair: the whole skin by region statistics; the regions cannot be carried, so error rows
    other = {k[2]: v for k, v in hb.items() if k[:2] == ("2026-02-01", "baseline")}
    assert other[""]["status"] == "ok" and other[""]["registration"] == "none (region statistics)"
    assert all(other[k]["status"] == "error" and "not pixel-aligned" in other[k]["error"] for k in ("treated", "control"))
    meta = json.loads((out / "track.json").read_text())
    assert meta["roi"]["propagated"] == ["rois/S1/face/2026-03-01.roi.json", "rois/S1/face/2026-04-01.roi.json"]
    doc = json.loads((out / "pairs" / "S1" / "face" / "2026-01-01__2026-03-01" / "comparison.json").read_text())
    assert (doc["roi"], doc["roi_source"]) == ("S1/face/2026-01-01/S1_face.roi.json", "file")
    assert set(doc["regions"]) == {"treated", "control"} and doc["image_sizes"]["after"] == [400, 300]


# ----------------------------------------------------------------------------- analyze, segment: the CLI


@pytest.fixture
def stand_in(monkeypatch):
    monkeypatch.setattr(A, "segment_skin", stand_in_segment)  # what analyze segments with (workers=1)


def _face(h=120, w=160, seed=0):
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), (60, 90, 160), np.uint8)
    yy, xx = np.mgrid[:h, :w]
    skin = ((yy - h / 2) / (0.4 * h)) ** 2 + ((xx - w / 2) / (0.4 * w)) ** 2 <= 1
    img[skin] = np.clip(np.array((205, 150, 125)) + rng.normal(0, 4, (h, w, 1))[skin], 0, 255).astype(np.uint8)
    img[skin & (xx < w / 2)] = np.clip(img[skin & (xx < w / 2)].astype(int) + (12, -6, -6), 0, 255)  # a redder side
    return img


def test_cli_analyze_roi_for_every_photo(stand_in, tmp_path):
    for k in range(2):
        write_png(tmp_path / "in" / f"p{k}.png", _face(seed=k))
    poly = [[40, 30], [79, 30], [79, 89], [40, 89]]  # 40 x 60 pixels
    (tmp_path / "roi.json").write_text(json.dumps(poly))
    r = CliRunner().invoke(cli, ["analyze", str(tmp_path / "in"), "--out", str(tmp_path / "o"), "--roi",
                                 str(tmp_path / "roi.json"), "--workers", "1", "--no-maps"])
    assert r.exit_code == 0, r.output
    rows = _read(tmp_path / "o" / "indices.csv")
    assert list(rows[0])[-4:] == list(ROI_COLUMNS) and len(rows) == 2
    roi = load_roi(tmp_path / "roi.json", (120, 160))
    for k, row in enumerate(rows):
        skin = stand_in_segment(_face(seed=k)).mask & roi
        assert (row["roi"], row["region"], row["roi_source"], row["roi_pixels"]) == (
            str(tmp_path / "roi.json"), "", "file", "2400")
        assert int(row["skin_pixels"]) == skin.sum()
        ref, _ = measure(_face(seed=k), skin, params=IndexParams(), return_maps=False)
        assert float(row["hemoglobin"]) == pytest.approx(ref["hemoglobin"], rel=1e-9)
    meta = json.loads((tmp_path / "o" / "analyze.json").read_text())
    assert meta["roi"]["file"] == str(tmp_path / "roi.json") and meta["roi"]["photos_with_roi"] == 2


def test_cli_analyze_picks_up_roi_files_beside_photos_named_regions_and_masks(stand_in, tmp_path):
    src = tmp_path / "in"
    for name in ("a", "b", "c"):
        write_png(src / "v" / f"{name}.png", _face(seed=ord(name)))
    left, right = [[20, 20], [79, 20], [79, 99], [20, 99]], [[80, 20], [139, 20], [139, 99], [80, 99]]
    _regions(src / "v" / "a.roi.json", {"right_side": right, "left_side": left})
    mask = np.zeros((120, 160), np.uint8)
    mask[30:90, 50:110] = 255
    write_png(src / "v" / "b.roi.png", mask)
    r = CliRunner().invoke(cli, ["analyze", str(src), "--out", str(tmp_path / "o"), "--workers", "1", "--no-maps"])
    assert r.exit_code == 0, r.output
    rows = _read(tmp_path / "o" / "indices.csv")
    assert [(x["image"], x["region"], x["roi_source"]) for x in rows] == [
        ("v/a.png", "", "none"), ("v/a.png", "left_side", "file"), ("v/a.png", "right_side", "file"),
        ("v/b.png", "", "file"), ("v/c.png", "", "none")]  # b.roi.png is b's ROI, not a photo
    by = {(x["image"], x["region"]): x for x in rows}
    img = _face(seed=ord("a"))
    skin = stand_in_segment(img).mask
    whole, _ = measure(img, skin, return_maps=False)
    assert float(by[("v/a.png", "")]["hemoglobin"]) == pytest.approx(whole["hemoglobin"], rel=1e-9)
    for name, poly in (("left_side", left), ("right_side", right)):
        region = polygon_mask(np.array(poly, float), skin.shape)
        ref, _ = measure(img, skin & region, return_maps=False)
        row = by[("v/a.png", name)]
        assert int(row["skin_pixels"]) == (skin & region).sum() and int(row["roi_pixels"]) == 60 * 80
        assert float(row["hemoglobin"]) == pytest.approx(ref["hemoglobin"], rel=1e-9)
        assert row["roi"] == "v/a.roi.json"
    assert float(by[("v/a.png", "left_side")]["erythema_index"]) > float(by[("v/a.png", "right_side")]["erythema_index"])
    assert by[("v/b.png", "")]["roi"] == "v/b.roi.png" and by[("v/b.png", "")]["roi_pixels"] == "3600"
    assert sqlite_rows_by_key(tmp_path / "o" / "results.sqlite") == {(x["image"], x["region"]) for x in rows}
    # a mirrored folder instead of the files beside the photos, and none at all
    _regions(tmp_path / "rois" / "v" / "c.roi.json", {"left_side": left})
    r = CliRunner().invoke(cli, ["analyze", str(src), "--out", str(tmp_path / "o2"), "--workers", "1", "--no-maps",
                                 "--roi-dir", str(tmp_path / "rois")])
    assert [(x["image"], x["region"]) for x in _read(tmp_path / "o2" / "indices.csv")] == [
        ("v/a.png", ""), ("v/b.png", ""), ("v/c.png", ""), ("v/c.png", "left_side")]
    r = CliRunner().invoke(cli, ["analyze", str(src), "--out", str(tmp_path / "o3"), "--workers", "1", "--no-maps",
                                 "--no-roi-files"])
    assert {x["roi_source"] for x in _read(tmp_path / "o3" / "indices.csv")} == {"none"}


def sqlite_rows_by_key(db):
    return {(r["image"], r["region"]) for r in read_rows(db, "indices")}


def test_cli_analyze_bad_rois_are_error_rows_never_tracebacks(stand_in, tmp_path):
    src = tmp_path / "in"
    for name in ("outside", "two_points", "wrong_size", "no_skin", "fine"):
        write_png(src / f"{name}.png", _face())
    (src / "outside.roi.json").write_text(json.dumps([[10, 10], [200, 10], [100, 60]]))
    (src / "two_points.roi.json").write_text(json.dumps([[10, 10], [20, 20]]))
    write_png(src / "wrong_size.roi.png", np.full((60, 80), 255, np.uint8))
    (src / "no_skin.roi.json").write_text(json.dumps([[0, 0], [9, 0], [9, 9], [0, 9]]))  # the blue corner
    _regions(src / "fine.roi.json", {"corner": [[0, 0], [9, 0], [9, 9]], "centre": [[60, 40], [99, 40], [99, 79]]})
    r = CliRunner().invoke(cli, ["analyze", str(src), "--out", str(tmp_path / "o"), "--workers", "1", "--no-maps"])
    assert r.exit_code == 2 and "Traceback" not in r.output
    by = {(x["image"], x["region"]): x for x in _read(tmp_path / "o" / "indices.csv")}
    expected = {
        ("outside.png", ""): "ROI outside.roi.json: ROI polygon has a point (200, 10) outside the 160x120 photo",
        ("two_points.png", ""): "ROI two_points.roi.json: ROI polygon must be a JSON list of at least 3 [x, y]",
        ("wrong_size.png", ""): "ROI wrong_size.roi.png: ROI mask is 80x60 pixels but the photo is 160x120",
        ("no_skin.png", ""): "ROI no_skin.roi.json: no skin inside the ROI",
        ("fine.png", "corner"): "ROI fine.roi.json: no skin inside region 'corner'",
    }
    for key, message in expected.items():
        assert by[key]["status"] == "error" and by[key]["error"].startswith(message), by[key]["error"]
        assert by[key]["roi_source"] == "file"
        line = [x for x in r.stderr.splitlines() if x.startswith(f"skinimg: {key[0]}")]
        assert len(line) == 1 and message in line[0]
    assert by[("fine.png", "")]["status"] == "ok" and by[("fine.png", "centre")]["status"] == "ok"


def test_cli_segment_restricts_masks_to_the_roi_beside(tmp_path):
    write_png(tmp_path / "in" / "face.png", _face())
    _regions(tmp_path / "in" / "face.roi.json", {"a": [[40, 30], [79, 30], [79, 89], [40, 89]]})
    r = CliRunner().invoke(cli, ["segment", str(tmp_path / "in"), "--out", str(tmp_path / "o"), "--method", "rules"])
    assert r.exit_code == 0, r.output
    row = _read(tmp_path / "o" / "segment.csv")[0]
    assert (row["roi"], row["roi_source"], row["roi_pixels"]) == ("face.roi.json", "file", "2400")
    m = cv2.imread(str(tmp_path / "o" / "masks" / "face.png"), cv2.IMREAD_GRAYSCALE) > 0
    assert m.any() and not m[:30].any() and not m[:, :40].any() and not m[90:].any() and not m[:, 80:].any()


# ----------------------------------------------------------------------------- pipelines


def test_pipeline_roi_section():
    head = '[pipeline]\nstages = ["analyze", "track"]\n'
    assert parse_pipeline(head).roi == {"files": "beside", "propagate": False}
    p = parse_pipeline(head + '[roi]\nfiles = "dir:rois"\npropagate = true\n')
    assert p.roi == {"files": "dir:rois", "propagate": True} and p.resolved()["roi"] == p.roi
    for text, reason in (('[roi]\nfiles = "somewhere"\n', "roi.files must be"),
                         ('[roi]\nfiles = true\n', "roi.files must be a string"),
                         ('[roi]\nfile = "beside"\n', "unknown key 'roi.file'")):
        with pytest.raises(SkinImgError, match=reason):
            parse_pipeline(head + text)
    with pytest.raises(SkinImgError, match="roi.propagate carries ROIs along the series of the track stage"):
        parse_pipeline('[pipeline]\nstages = ["analyze"]\n[roi]\npropagate = true\n')


def test_run_resumes_until_an_roi_file_changes(stand_in, tmp_path):
    src = tmp_path / "in"
    write_png(src / "a.png", _face())
    pipe = tmp_path / "p.toml"
    pipe.write_text('[pipeline]\nstages = ["analyze"]\n[analyze]\nmaps = false\n')
    first = run_pipeline(pipe, src, tmp_path / "o", workers=1)
    assert first["processed"] == 1 and run_pipeline(pipe, src, tmp_path / "o", workers=1)["skipped"] == 1
    _regions(src / "a.roi.json", {"x": [[40, 30], [79, 30], [79, 89]], "y": [[80, 30], [119, 30], [119, 89]]})
    assert run_pipeline(pipe, src, tmp_path / "o", workers=1)["processed"] == 1  # a new ROI file: measured again
    assert [x["region"] for x in _read(tmp_path / "o" / "indices.csv")] == ["", "x", "y"]
    _regions(src / "a.roi.json", {"y": [[80, 30], [119, 30], [119, 89]]})
    run_pipeline(pipe, src, tmp_path / "o", workers=1)
    assert [x["region"] for x in _read(tmp_path / "o" / "indices.csv")] == ["", "y"]  # x's row is gone


# ----------------------------------------------------------------------------- the clinic pipeline, the report

SAMPLE = Path(__file__).resolve().parents[1] / "sample_images" / "patients"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def clinic(tmp_path_factory):
    """`skinimg run clinic` on the sample patient P001 (its baseline has the sample ROI file)."""
    tmp = tmp_path_factory.mktemp("clinic")
    shutil.copytree(SAMPLE / "P001", tmp / "study" / "P001")
    r = CliRunner().invoke(cli, ["run", "clinic", str(tmp / "study"), "--out", str(tmp / "out"), "--workers", "1",
                                 "--quiet"])
    assert r.exit_code == 0, r.output
    return tmp / "out"


def test_clinic_pipeline_picks_up_the_sample_roi_and_propagates_it(clinic):
    rows = _read(clinic / "indices.csv")
    got = [(x["image"].split("/")[2], x["region"], x["roi_source"], x["status"]) for x in rows]
    assert got == [("2026-01-15", "", "none", "ok"), ("2026-01-15", "left_cheek", "file", "ok"),
                   ("2026-01-15", "right_cheek", "file", "ok"), ("2026-03-15", "", "none", "ok"),
                   ("2026-03-15", "left_cheek", "propagated", "ok"), ("2026-03-15", "right_cheek", "propagated", "ok")]
    assert rows[1]["roi"] == "P001/cheek/2026-01-15/P001_cheek.roi.json"
    assert rows[4]["roi"] == "rois/P001/cheek/2026-03-15.roi.json" and (clinic / rows[4]["roi"]).is_file()
    series = [x for x in _read(clinic / "series.csv") if x["index"] == "hemoglobin" and x["reference"] == "baseline"]
    # blood x0.7 everywhere; a change is called only when it holds under every optical model of the ensemble: on the
    # very red right cheek (3 x typical blood) the Beer-Lambert member mbll_j13 read the colour change as pigment
    # (+0.5 %) and the region stayed no_change until its colours past that model's gamut were read as the nearest
    # model colour (2026-12-04): now -4.8 % at most, improved like the rest (docs/comparison.md)
    verdicts = {x["region"]: x["verdict"] for x in series}
    assert verdicts == {"": "improved", "left_cheek": "improved", "right_cheek": "improved"}, verdicts
    right = next(x for x in series if x["region"] == "right_cheek")
    assert float(right["delta_pct"]) < -10 and -8 < float(right["delta_pct_model_hi"]) < -2
    run = json.loads((clinic / "run.json").read_text())
    assert run["stages"]["track"]["rois_propagated"] == 1 and run["pipeline"]["resolved"]["roi"]["propagate"]


def test_report_draws_region_outlines_and_trends(clinic):
    report = clinic / "report"
    page = (report / "P001__cheek.html").read_text(encoding="utf-8")
    assert "Trends per region" in page and "regions-trend.png" in page and "Region left_cheek" in page
    assert (report / "img" / "P001__cheek" / "regions-trend.png").is_file()
    photo = cv2.cvtColor(cv2.imread(str(report / "img" / "P001__cheek" / "s01-i01-photo.jpg")), cv2.COLOR_BGR2RGB)
    roi = read_roi(SAMPLE / "P001" / "cheek" / "2026-01-15" / "P001_cheek.roi.json")
    for name, colour in (("left_cheek", (255, 140, 0)), ("right_cheek", (30, 144, 255))):  # name order
        pts = roi.polygons[name]
        mids = (pts + np.roll(pts, -1, axis=0)) / 2  # the middle of every edge lies on the outline
        near = [np.abs(photo[int(round(y)) - 1:int(round(y)) + 2, int(round(x)) - 1:int(round(x)) + 2].astype(int)
                       - colour).sum(axis=2).min() for x, y in mids]
        assert max(near) < 90, (name, near)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")
def test_report_regions_render_in_headless_chromium(clinic, tmp_path):
    shot = tmp_path / "shot.png"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1280,3200",
           "--hide-scrollbars", (clinic / "report" / "P001__cheek.html").resolve().as_uri()]
    subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    assert shot.is_file(), "chromium wrote no screenshot"
    img = cv2.cvtColor(cv2.imread(str(shot)), cv2.COLOR_BGR2RGB).astype(int)
    # the right cheek's colour (dodger blue) is in no other picture of the page: its outlines, legend and trend line
    blue = (np.abs(img - (30, 144, 255)).sum(axis=2) < 60).sum()
    assert blue > 300, blue


def test_cli_analyze_named_regions_with_a_user_index(stand_in, tmp_path):
    """ROIs and user indices together: every region row carries the user index, measured inside that region."""
    write_png(tmp_path / "in" / "p0.png", _face(seed=0))
    regions = {"left": [[20, 30], [59, 30], [59, 89], [20, 89]], "right": [[100, 30], [139, 30], [139, 89], [100, 89]]}
    (tmp_path / "in" / "p0.roi.json").write_text(json.dumps({"regions": regions}))
    user = Path(__file__).with_name("user_indices.py")
    r = CliRunner().invoke(cli, ["analyze", str(tmp_path / "in"), "--out", str(tmp_path / "o"), "--workers", "1",
                                 "--no-maps", "--index", f"astar={user}:a_star"])
    assert r.exit_code == 0, r.output
    rows = _read(tmp_path / "o" / "indices.csv")
    assert [row["region"] for row in rows] == ["", "left", "right"]
    header = list(rows[0])
    assert header.index("roi_pixels") < header.index("astar") and header[-1] == "index_errors"
    for row in rows:
        assert row["a_star"] and float(row["astar"]) == pytest.approx(float(row["a_star"]), abs=1e-6)
    assert rows[1]["astar"] != rows[2]["astar"]

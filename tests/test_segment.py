"""Skin segmentation (issues 3 and 22): the contract of segment_skin, the rules baseline, ROI, metrics, CLI.

The network's accuracy on real photos, plain scenes and lesions: tests/test_skin_net.py.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from dataclasses import asdict, replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from skimage import color as skcolor

from skinimg import batch as SB
from skinimg import segment as S
from skinimg import train as T
from skinimg.segment import filters as SF
from skinimg.cli import cli
from skinimg.errors import SkinImgError
from skinimg.io import load_image, load_roi, read_mask, write_png
from skinimg.phantom import LADDER_TONES, SET_EXPOSURE, PhantomSpec, render_phantom

UCI = next((p for p in T.UCI_CANDIDATES if p.is_file()), None)
_BACKGROUNDS = ("wall", "wood", "cloth", "blue", "dark", "grey")


@pytest.fixture(scope="module")
def ladder():
    """One held-out phantom per tone of the synth ladder (very light ... dark), every distractor on."""
    out = []
    for i, (mel, hb) in enumerate(LADDER_TONES):
        spec = PhantomSpec(melanin=mel, hemoglobin=hb, seed=500_000 + i, size=(240, 320), exposure=SET_EXPOSURE,
                           background=_BACKGROUNDS[i % len(_BACKGROUNDS)])
        out.append(render_phantom(spec))
    return out


def test_rules_mask_matches_chai_ngan_formula():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    r, g, b = (rgb[..., k].astype(np.float64) for k in range(3))
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cr = np.round((r - y) * 0.713 + 128)
    cb = np.round((b - y) * 0.564 + 128)
    ref = (cr >= 133) & (cr <= 173) & (cb >= 77) & (cb <= 127)
    got = S.rules_mask(rgb)
    assert got.dtype == bool and got.shape == (64, 64)
    assert (got != ref).mean() < 0.01  # OpenCV's fixed-point rounding differs on the box edges only
    assert S.rules_mask(np.array([[[224, 172, 150]]], np.uint8))[0, 0]      # a light skin colour
    assert not S.rules_mask(np.array([[[60, 90, 200]]], np.uint8))[0, 0]    # blue


def test_hysteresis_equals_scikit_image():
    from skimage.filters import apply_hysteresis_threshold

    rng = np.random.default_rng(3)
    a = cv2.GaussianBlur(rng.random((90, 120)).astype(np.float32), (0, 0), 2.0)
    for low, high in ((0.45, 0.55), (0.5, 0.52), (0.3, 0.9)):
        np.testing.assert_array_equal(S.hysteresis_threshold(a, low, high), apply_hysteresis_threshold(a, low, high))
    assert not S.hysteresis_threshold(np.zeros((5, 5), np.float32), 0.4, 0.7).any()


# ----------------------------------------------------------------------------- API contract


def test_segment_result_contract(ladder):
    ph = ladder[2]
    res = S.segment_skin(ph.image)
    assert res.mask.dtype == bool and res.mask.shape == ph.mask.shape
    assert res.probability.dtype == np.float32 and res.probability.shape == ph.mask.shape
    assert 0.0 <= res.probability.min() and res.probability.max() <= 1.0
    assert res.skin_fraction == pytest.approx(res.mask.mean()) and res.status == "ok" and res.method == "model"
    with pytest.raises(Exception):
        res.status = "x"  # frozen
    with pytest.raises(SkinImgError):
        S.segment_skin(ph.image, method="magic")
    with pytest.raises(SkinImgError):
        S.segment_skin(ph.image[..., :2])


def test_no_skin_on_blue_image():
    blue = np.zeros((120, 160, 3), np.uint8)
    blue[:] = (40, 60, 200)
    for method in ("model", "rules"):
        res = S.segment_skin(blue, method=method)
        assert res.status == "no_skin" and res.skin_fraction == 0.0 and not res.mask.any()


def test_uint16_equals_uint8(ladder):
    img8 = ladder[1].image
    img16 = img8.astype(np.uint16) * 257
    np.testing.assert_array_equal(S.segment_skin(img16).mask, S.segment_skin(img8).mask)


def test_working_copy_and_guided_upsampling(ladder):
    """Photos larger than work_side are segmented on a reduced copy and brought back to their size; the mask agrees
    with the one at full resolution; smaller photos are used as they are; odd sizes keep their shape."""
    ph = ladder[3]  # 240 x 320
    full = S.segment_skin(ph.image)
    assert full.work_probability.shape == (240, 320)  # long side 320 = work_side: not reduced
    big = cv2.resize(ph.image, (960, 720), interpolation=cv2.INTER_CUBIC)
    up = S.segment_skin(big)
    assert up.mask.shape == (720, 960) and up.probability.shape == (720, 960)
    down = cv2.resize(up.mask.view(np.uint8), (320, 240), interpolation=cv2.INTER_AREA) > 0
    assert S.evaluate_masks(down, full.mask)["f1"] >= 0.95
    small = S.segment_skin(ph.image, params=S.SegmentParams(work_side=160))  # reduced by 2, guided back
    assert small.mask.shape == (240, 320) and S.evaluate_masks(small.mask, full.mask)["f1"] >= 0.9
    plain = S.segment_skin(ph.image, params=S.SegmentParams(work_side=160, guide_side=0))  # bilinear only
    assert plain.mask.shape == (240, 320) and S.evaluate_masks(plain.mask, full.mask)["f1"] >= 0.85
    odd = ph.image[:239, :317]
    assert S.segment_skin(odd, params=S.SegmentParams(work_side=100)).mask.shape == (239, 317)
    # the reduced copy: long side at most work_side, 2 x 2 levels on the way down
    small8, levels = S.reduce_photo(big, 100)
    assert small8.shape == (75, 100, 3) and [lv.shape[:2] for lv in levels] == [(360, 480), (180, 240)]
    assert S.reduce_photo(ph.image, 400)[0] is ph.image


def test_evaluate_masks_analytic():
    pred = np.zeros((10, 10), bool)
    truth = np.zeros((10, 10), bool)
    pred[:5] = True          # 50 predicted
    truth[2:8] = True        # 60 true; overlap rows 2-4 = 30
    m = S.evaluate_masks(pred, truth)
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (30, 20, 30, 20)
    assert m["precision"] == pytest.approx(30 / 50) and m["recall"] == pytest.approx(30 / 60)
    assert m["f1"] == pytest.approx(60 / 110) and m["iou"] == pytest.approx(30 / 80)
    e = S.evaluate_masks(np.zeros((3, 3), bool), np.zeros((3, 3), bool))
    assert e["f1"] == 1.0 and e["iou"] == 1.0


def test_evaluate_masks_empty_masks_are_decided_never_nan():
    """The one mask metric's empty-mask rule: a ratio with denominator 0 is 1.0 when both masks are empty and 0.0
    otherwise; the pooled counts follow the same rule."""
    none, some = np.zeros((4, 4), bool), np.zeros((4, 4), bool)
    some[1:3, 1:3] = True
    both_empty = S.evaluate_masks(none, none)
    assert [both_empty[k] for k in ("precision", "recall", "f1", "iou")] == [1.0, 1.0, 1.0, 1.0]
    missed = S.evaluate_masks(none, some)  # real skin, nothing predicted
    assert [missed[k] for k in ("precision", "recall", "f1", "iou")] == [0.0, 0.0, 0.0, 0.0]
    invented = S.evaluate_masks(some, none)  # skin predicted on a photo without skin
    assert [invented[k] for k in ("precision", "recall", "f1", "iou")] == [0.0, 0.0, 0.0, 0.0]
    assert S.metrics_from_counts(0, 0, 0, 16) == {k: both_empty[k] for k in both_empty}
    with pytest.raises(SkinImgError, match="differ in size"):
        S.evaluate_masks(none, np.zeros((3, 4), bool))


def test_pooled_tone_metrics_pools_pixels_and_bootstraps_over_photos():
    recs = [("dark", 90, 10, 0, 0), ("dark", 40, 0, 20, 0), ("light", 50, 0, 0, 0), ("other", 1, 1, 0, 0)]
    t = S.pooled_tone_metrics(recs)
    assert list(t) == ["light", "dark", "other", "all"]  # TONE_GROUPS order, then unknown names, then all
    assert t["dark"]["f1"] == pytest.approx(2 * 130 / (2 * 130 + 10 + 20))  # pooled, not the mean of 0.947 and 0.8
    assert t["dark"]["min_image_f1"] == pytest.approx(80 / 100) and t["dark"]["n_images"] == 2
    assert t["all"]["f1"] == pytest.approx(2 * 181 / (2 * 181 + 11 + 20)) and "f1_ci95" not in t["all"]
    b = S.pooled_tone_metrics(recs, bootstrap=2000, seed=3)
    assert b == S.pooled_tone_metrics(recs, bootstrap=2000, seed=3)  # deterministic
    assert b["light"]["f1_ci95"] == [1.0, 1.0]  # one perfect photo: no spread
    lo, hi = b["dark"]["f1_ci95"]
    # two photos: the resamples are {A, A}, {A, B}, {B, B}; the interval spans the pure ones
    assert lo == pytest.approx(0.8) and hi == pytest.approx(180 / 190)
    assert b["all"]["f1_ci95"][0] <= t["all"]["f1"] <= b["all"]["f1_ci95"][1]
    assert S.pooled_tone_metrics([])["all"]["n_images"] == 0


def test_error_budget_attributes_every_wrong_pixel():
    truth = np.zeros((20, 20), bool)
    truth[2:18, 2:18] = True
    labels = np.where(truth, 1, 0).astype(np.uint8)
    labels[10, 4:16] = 2  # a one-pixel hair strand across the skin
    truth[10, 4:16] = False
    pred = truth.copy()
    pred[10, 4:10] = True        # 6 strand pixels taken for skin
    pred[11, 12:14] = False      # 2 skin pixels beside the strand missed
    pred[2, 2:7] = False         # 5 edge pixels missed
    pred[5:8, 5:8] = False       # 9 inner pixels missed (all 3 or more pixels from the edge)
    pred[0, 0:3] = True          # 3 background pixels
    b = T.error_budget(pred, truth, labels)
    assert b == {"fn_beside_thin": 2, "fn_edge": 5, "fn_inside": 9, "fp_background_thin": 0, "fp_background": 3,
                 "fp_hair_thin": 6, "fp_hair": 0}
    m = S.evaluate_masks(pred, truth)
    assert sum(v for k, v in b.items() if k.startswith("fn")) == m["fn"]
    assert sum(v for k, v in b.items() if k.startswith("fp")) == m["fp"]
    with pytest.raises(SkinImgError):
        T.error_budget(pred, truth, labels[:5])


# ----------------------------------------------------------------------------- ROI


def test_roi_polygon_and_png(tmp_path, ladder):
    poly = tmp_path / "roi.json"
    poly.write_text(json.dumps([[10, 20], [109, 20], [109, 79], [10, 79]]))
    roi = load_roi(poly, (240, 320))
    assert roi.shape == (240, 320) and roi.sum() == 100 * 60
    assert roi[20, 10] and roi[79, 109] and not roi[80, 109] and not roi[20, 110]
    png = tmp_path / "roi.png"
    write_png(png, roi.astype(np.uint8) * 255)
    np.testing.assert_array_equal(load_roi(png, (240, 320)), roi)

    ph = ladder[0]
    full = S.segment_skin(ph.image)
    ys, xs = np.nonzero(full.mask)
    cy, cx = int(ys.mean()), int(xs.mean())
    site = [[cx - 30, cy - 20], [cx + 30, cy - 20], [cx + 30, cy + 20], [cx - 30, cy + 20]]
    poly.write_text(json.dumps(site))
    roi = load_roi(poly, ph.mask.shape)
    res = S.segment_skin(ph.image, roi=roi)
    assert res.mask.any() and not (res.mask & ~roi).any()
    np.testing.assert_array_equal(res.mask, full.mask & roi)
    assert res.skin_fraction == pytest.approx(res.mask.mean())


@pytest.mark.parametrize("content, reason", [
    ("not json", "not valid JSON"),
    ("[[1, 2], [3, 4]]", "at least 3"),
    ('{"x": 1}', "at least 3"),
    ('[[1, 2], [3, "a"], [5, 6]]', "at least 3"),
    ("[[-50, -50], [-40, -50], [-40, -40]]", "covers no pixel"),
])
def test_bad_roi_is_a_clear_error(tmp_path, content, reason):
    p = tmp_path / "roi.json"
    p.write_text(content)
    with pytest.raises(SkinImgError, match=reason):
        load_roi(p, (50, 60))


def test_roi_png_size_mismatch(tmp_path):
    p = tmp_path / "roi.png"
    write_png(p, np.full((10, 10), 255, np.uint8))
    with pytest.raises(SkinImgError, match="10x10 pixels but the photo is 60x50"):
        load_roi(p, (50, 60))
    with pytest.raises(SkinImgError, match="not found"):
        load_roi(tmp_path / "missing.png", (50, 60))


# ----------------------------------------------------------------------------- CLI


def _read_csv(p):
    with open(p, newline="", encoding="utf-8") as fh:
        rd = csv.DictReader(fh)
        return rd.fieldnames, list(rd)


@pytest.fixture
def photo_tree(tmp_path, ladder):
    root = tmp_path / "in"
    write_png(root / "visit" / "face.png", ladder[2].image)
    cv2.imwrite(str(root / "dark.jpg"), cv2.cvtColor(ladder[5].image, cv2.COLOR_RGB2BGR))
    write_png(root / "blue.png", np.full((60, 80, 3), (40, 60, 200), np.uint8))
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return root


def test_cli_segment_outputs_and_exit_2(photo_tree, tmp_path, ladder):
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["segment", str(photo_tree), "--out", str(out), "--workers", "1"])
    assert r.exit_code == 2, r.output
    cols, rows = _read_csv(out / "segment.csv")
    assert cols == ["image", "status", "error", "skin_fraction", "method", "stage_agreement", "mask_check", "roi",
                    "roi_source", "roi_pixels"]
    by = {x["image"]: x for x in rows}
    assert all(x["stage_agreement"] == "" and x["mask_check"] == "" for x in rows)  # not asked for (--check)
    assert list(by) == ["blue.png", "broken.jpg", "dark.jpg", "visit/face.png"]
    assert by["broken.jpg"]["status"] == "error" and by["broken.jpg"]["error"] and not by["broken.jpg"]["skin_fraction"]
    assert len([l for l in r.stderr.splitlines() if "broken.jpg" in l]) == 1 and "Traceback" not in r.stderr
    assert by["blue.png"]["status"] == "no_skin" and float(by["blue.png"]["skin_fraction"]) == 0.0
    assert by["visit/face.png"]["status"] == "ok" and by["visit/face.png"]["method"] == "model"
    meta = json.loads((out / "segment.json").read_text())  # what made the masks
    assert meta["params"] == asdict(S.SegmentParams()) and meta["method"] == "model"
    assert meta["skin_network"]["sha256"] == S.load_model().sha256
    assert (meta["n_images"], meta["n_ok"], meta["n_no_skin"], meta["n_error"]) == (4, 2, 1, 1)
    m = cv2.imread(str(out / "masks" / "visit" / "face.png"), cv2.IMREAD_UNCHANGED)
    assert m.dtype == np.uint8 and m.shape == (240, 320) and set(np.unique(m)) <= {0, 255}
    lib = S.segment_skin(ladder[2].image)
    np.testing.assert_array_equal(m > 0, lib.mask)
    assert float(by["visit/face.png"]["skin_fraction"]) == pytest.approx(lib.skin_fraction)
    assert (out / "masks" / "dark.png").is_file() and not (out / "masks" / "broken.png").exists()
    assert read_mask(out / "masks" / "blue.png").shape == (60, 80)


def _iou(a, b):
    return np.count_nonzero(a & b) / np.count_nonzero(a | b)


def test_cli_segment_rules_roi_and_workers(photo_tree, tmp_path):
    roi = tmp_path / "roi.json"
    roi.write_text(json.dumps([[100, 60], [220, 60], [220, 180], [100, 180]]))
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["segment", str(photo_tree / "visit"), str(photo_tree / "dark.jpg"), "--out", str(out),
                                 "--method", "rules", "--roi", str(roi), "--workers", "2"])
    assert r.exit_code == 0, r.output
    _, rows = _read_csv(out / "segment.csv")
    assert {x["method"] for x in rows} == {"rules"} and {x["status"] for x in rows} == {"ok"}
    m = read_mask(out / "masks" / "face.png")
    assert m.any() and not m[:60].any() and not m[:, :100].any() and not m[181:].any()
    # an ROI PNG of another size: that image is an error row, exit 2
    bad = tmp_path / "roi.png"
    write_png(bad, np.full((10, 10), 255, np.uint8))
    r = CliRunner().invoke(cli, ["segment", str(photo_tree / "visit"), "--out", str(tmp_path / "o2"), "--roi", str(bad)])
    assert r.exit_code == 2 and "10x10 pixels but the photo is 320x240" in r.stderr


def test_cli_eval_segment(tmp_path, ladder):
    images, masks = tmp_path / "images", tmp_path / "truth"
    for i in (0, 5):
        write_png(images / "set" / f"p{i}.png", ladder[i].image)
        write_png(masks / "set" / f"p{i}_mask.png", ladder[i].mask.astype(np.uint8) * 255)
    write_png(images / "orphan.png", ladder[1].image)  # no true mask
    out = tmp_path / "ev"
    r = CliRunner().invoke(cli, ["eval-segment", "--images", str(images), "--masks", str(masks), "--out", str(out),
                                 "--json"])
    assert r.exit_code == 2, r.output
    res = json.loads(r.stdout)
    by = {x["image"]: x for x in res["rows"]}
    assert by["orphan.png"]["status"] == "error"
    tot = np.zeros(4, int)
    for i in (0, 5):
        m = S.evaluate_masks(S.segment_skin(ladder[i].image).mask, ladder[i].mask)
        assert by[f"set/p{i}.png"]["f1"] == pytest.approx(m["f1"]) and by[f"set/p{i}.png"]["iou"] == pytest.approx(m["iou"])
        tot += [m["tp"], m["fp"], m["fn"], m["tn"]]
    tp, fp, fn, _ = tot
    assert res["overall"]["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert res["overall"]["iou"] == pytest.approx(tp / (tp + fp + fn))
    assert json.loads((out / "eval_segment.json").read_text())["overall"] == res["overall"]
    cols, _ = _read_csv(out / "eval_segment.csv")
    assert cols[:7] == ["image", "status", "error", "precision", "recall", "f1", "iou"]
    assert cols[-6:] == ["ita_deg", "tone", "stage_agreement", "mask_check", "rules_f1", "rules_iou"]
    assert by["set/p0.png"]["stage_agreement"] is None and res["check"] is None  # not asked for
    # the rules baseline beside the model, on the same photos
    rtot = np.zeros(4, int)
    for i in (0, 5):
        mr = S.evaluate_masks(S.segment_skin(ladder[i].image, method="rules").mask, ladder[i].mask)
        assert by[f"set/p{i}.png"]["rules_f1"] == pytest.approx(mr["f1"])
        rtot += [mr["tp"], mr["fp"], mr["fn"], mr["tn"]]
    assert res["overall_rules"]["f1"] == pytest.approx(2 * rtot[0] / (2 * rtot[0] + rtot[1] + rtot[2]))
    assert res["rules_mean_f1"] == pytest.approx(np.mean([by[f"set/p{i}.png"]["rules_f1"] for i in (0, 5)]))
    # per tone: the ITA class of each photo's true skin (checked against scikit-image's CIELAB), pooled
    for i in (0, 5):
        lab = skcolor.rgb2lab(ladder[i].image)[ladder[i].mask]
        ita = float(np.mean(np.degrees(np.arctan2(lab[:, 0] - 50, lab[:, 2]))))
        assert by[f"set/p{i}.png"]["ita_deg"] == pytest.approx(ita, abs=0.05)
    assert by["set/p0.png"]["ita_deg"] > 55 and by["set/p0.png"]["tone"] == "very_light"
    assert by["set/p5.png"]["ita_deg"] <= -30 and by["set/p5.png"]["tone"] == "dark"
    tones = {t["tone"]: t for t in res["by_tone"]}
    assert list(tones) == ["very_light", "dark", "all"]  # lightest first, only tones present, then all of them
    assert tones["all"]["f1"] == pytest.approx(res["overall"]["f1"]) and tones["all"]["n_images"] == 2
    assert tones["all"]["rules_f1"] == pytest.approx(res["overall_rules"]["f1"])
    for i, tone in ((0, "very_light"), (5, "dark")):
        t, row = tones[tone], by[f"set/p{i}.png"]
        assert t["n_images"] == 1 and t["f1"] == pytest.approx(row["f1"]) and t["iou"] == pytest.approx(row["iou"])
        assert t["worst_image"] == f"set/p{i}.png"
    tcols, trows = _read_csv(out / "eval_segment_tones.csv")
    assert tcols == list(SB.EVAL_TONE_COLUMNS) and [x["tone"] for x in trows] == ["very_light", "dark", "all"]
    r = CliRunner().invoke(cli, ["eval-segment", "--images", str(images / "set"), "--masks", str(masks / "set")])
    assert r.exit_code == 0 and "overall (pooled)" in r.stdout and "p0.png" in r.stdout
    assert "by skin tone" in r.stdout and "very_light" in r.stdout and "rules f1" in r.stdout
    # the rules themselves: no baseline beside them
    r = CliRunner().invoke(cli, ["eval-segment", "--images", str(images / "set"), "--masks", str(masks / "set"),
                                 "--method", "rules", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["overall_rules"] is None


def test_true_skin_tone_of_uniform_patches_and_no_skin():
    truth = np.zeros((8, 8), bool)
    truth[2:6, 2:6] = True
    for rgb8 in ((224, 172, 140), (141, 85, 36), (60, 35, 25)):
        img = np.zeros((8, 8, 3), np.uint8)
        img[truth] = rgb8
        img[~truth] = (0, 0, 255)  # off-skin pixels must not count
        lab = skcolor.rgb2lab(np.array([[rgb8]], np.uint8))[0, 0]
        ita = math.degrees(math.atan2(lab[0] - 50, lab[2]))
        got, tone = S.true_skin_tone(img, truth)
        assert got == pytest.approx(ita, abs=0.02)
        bounds = ((55, "very_light"), (41, "light"), (28, "intermediate"), (10, "tan"), (-30, "brown"))
        assert tone == next((name for b, name in bounds if ita > b), "dark")
    got, tone = S.true_skin_tone(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), bool))
    assert math.isnan(got) and tone == "unknown"


def _guided_reference(guide, src, r, eps):
    """He et al. (2013) guided filter, window by window (OpenCV's default border: reflect-101)."""
    def box_mean(a):
        p = np.pad(a.astype(np.float64), r, mode="reflect")  # numpy "reflect" = reflect-101
        out = np.empty(a.shape)
        for i in range(a.shape[0]):
            for j in range(a.shape[1]):
                out[i, j] = p[i:i + 2 * r + 1, j:j + 2 * r + 1].mean()
        return out

    m_i, m_p = box_mean(guide), box_mean(src)
    a = (box_mean(guide * src) - m_i * m_p) / (box_mean(guide * guide) - m_i * m_i + eps)
    b = m_p - a * m_i
    return box_mean(a) * guide + box_mean(b)


def test_guided_filter_matches_the_window_definition_and_keeps_linear_images():
    rng = np.random.default_rng(5)
    guide = rng.random((23, 31)).astype(np.float32)
    src = (0.5 * guide + 0.3 * rng.random((23, 31))).astype(np.float32)
    for r, eps in ((1, 1e-2), (3, 3e-4)):
        np.testing.assert_allclose(S.guided_filter(guide, src, r, eps), _guided_reference(guide, src, r, eps),
                                   atol=2e-5)
    # analytic: a constant stays constant; an image that is a linear function of the guide is reproduced
    np.testing.assert_allclose(S.guided_filter(guide, np.full_like(guide, 0.7), 2, 1e-3), 0.7, atol=1e-6)
    np.testing.assert_allclose(S.guided_filter(guide, 3 * guide - 1, 2, 1e-9), 3 * guide - 1, atol=1e-3)
    # a step edge of the guide survives where a box blur of the same radius would smear it over 2r + 1 pixels
    step = np.zeros((9, 40), np.float32)
    step[:, 20:] = 1
    out = S.guided_filter(step, step * 4 - 2, 3, 1e-4)
    np.testing.assert_allclose(out[:, :20], -2, atol=1e-2)
    np.testing.assert_allclose(out[:, 20:], 2, atol=1e-2)


def test_work_factor_and_block_mean():
    assert [SF._work_factor(n * n * 100, 100) for n in range(1, 14)] == [1, 2, 3, 4, 6, 6, 8, 8, 12, 12, 12, 12, 16]
    assert SF._work_factor(3000 * 4000, 320_000) == 8 and SF._work_factor(480 * 640, 320_000) == 1
    rng = np.random.default_rng(2)
    for k, steps in ((2, 1), (3, 1), (6, 2), (8, 3), (12, 3)):
        a = rng.integers(0, 256, size=(5 * k, 7 * k, 3), dtype=np.uint8)
        exact = a.reshape(5, k, 7, k, 3).mean(axis=(1, 3))
        got = SF._block_mean(a, k)
        assert got.shape == (5, 7, 3) and got.dtype == np.uint8
        err = np.abs(got - exact)
        assert err.max() <= 0.5 * steps and err.mean() < 0.4  # each step rounds to the nearest level
    # a strip one pixel high (1 MP) is not reduced below one row: no crash, a mask of the photo's size
    strip = S.segment_skin(np.full((1, 1_000_000, 3), 180, np.uint8))
    assert strip.mask.shape == (1, 1_000_000) and strip.status in ("ok", "no_skin")


def test_analyze_check_fills_the_flag_columns_without_changing_the_numbers(tmp_path, ladder):
    from skinimg.batch import analyze as A

    write_png(tmp_path / "tan.png", ladder[3].image)
    plain, _ = A.analyze_image(tmp_path / "tan.png", maps=False)
    checked, _ = A.analyze_image(tmp_path / "tan.png", params=A.AnalyzeParams(check=True), maps=False)
    lib = S.segment_skin(ladder[3].image, check=True)
    assert checked["stage_agreement"] == round(lib.agreement, 4) and checked["mask_check"] == lib.mask_check
    assert plain["mask_check"] is None and np.isnan(plain["stage_agreement"])
    for c in A.ROW_COLUMNS:  # the same mask, the same numbers and the same hash
        if c not in ("stage_agreement", "mask_check"):
            assert checked[c] == plain[c] or (isinstance(plain[c], float) and np.isnan(plain[c]) and np.isnan(checked[c])), c
    # the deprecated second stage changes nothing, not even the hash
    both, _ = A.analyze_image(tmp_path / "tan.png", params=A.AnalyzeParams(second_stage="both"), maps=False)
    assert both["skin_pixels"] == plain["skin_pixels"] and both["params_hash"] == plain["params_hash"]
    assert both["mask_check"] is None


def test_cli_analyze_check_names_the_photos_to_look_at(tmp_path, ladder, monkeypatch):
    from skinimg.segment import params as SP

    root = tmp_path / "in"
    write_png(root / "tan.png", ladder[3].image)
    shutil.copy(Path(__file__).resolve().parents[1] / "sample_images" / "real" / "astronaut.jpg", root / "astronaut.jpg")
    ast = load_image(root / "astronaut.jpg")[0]
    a_tan, a_ast = (S.segment_skin(x, check=True).agreement for x in (ladder[3].image, ast))
    assert a_tan != a_ast
    # a threshold between the two: the photo the network sees less consistently is the one flagged
    monkeypatch.setattr(SP, "AGREEMENT_MIN", (a_tan + a_ast) / 2)
    low, high = ("astronaut.jpg", "tan.png") if a_ast < a_tan else ("tan.png", "astronaut.jpg")
    r = CliRunner().invoke(cli, ["analyze", str(root), "--out", str(tmp_path / "out"), "--no-maps", "--check",
                                 "--workers", "1"])
    assert r.exit_code == 0, r.output
    _, rows = _read_csv(tmp_path / "out" / "indices.csv")
    by = {x["image"]: x for x in rows}
    assert by[low]["mask_check"] == "check" and by[high]["mask_check"] == "ok"
    assert f"{low}: check the mask" in r.stderr and "1 to check by eye" in r.stderr
    r = CliRunner().invoke(cli, ["analyze", str(root), "--out", str(tmp_path / "o2"), "--check", "--method", "rules"])
    assert r.exit_code == 2 and "--check needs --method model" in r.output

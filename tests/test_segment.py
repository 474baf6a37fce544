"""Skin segmentation (issue 3): colour model, clean-up, ROI, evaluation, CLI, training."""

from __future__ import annotations

import csv
import json
import math
import shutil
import zipfile
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from skimage import color as skcolor

from skinimg import batch as SB
from skinimg import segment as S
from skinimg import train as T
from skinimg.segment import features as SFe
from skinimg.segment import filters as SF
from skinimg.segment import stage2 as S2
from skinimg.cli import cli
from skinimg.errors import SkinImgError
from skinimg.io import load_image, load_npz, load_roi, read_mask, write_png
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


# ----------------------------------------------------------------------------- accuracy


def test_phantom_f1_every_tone_model_beats_rules(ladder):
    """Mask F1 against the phantoms' true masks (hair strands, lips, eyes, clothing excluded).

    The issue's goal is F1 >= 0.97 for every tone; with the second-stage pixel classifier
    the ladder measures 0.969-0.988 at 240x320 (very light skin with pink clothing is the
    lowest), guarded here so that it cannot silently get worse.
    """
    f1s = []
    for ph in ladder:
        model = S.evaluate_masks(S.segment_skin(ph.image).mask, ph.mask)
        rules = S.evaluate_masks(S.segment_skin(ph.image, method="rules").mask, ph.mask)
        f1s.append(model["f1"])
        assert model["f1"] >= 0.96, (ph.truth["spec"]["melanin"], model)
        assert model["recall"] >= 0.95
        assert model["f1"] > rules["f1"] + 0.05, (model["f1"], rules["f1"])
    assert np.mean(f1s) >= 0.975


def test_provenance_records_held_out_metrics():
    prov = S.load_model().provenance
    m = prov["metrics"]
    assert m["uci_test"]["balanced_accuracy"] >= 0.95
    assert m["phantom_test"]["all"]["f1"] >= 0.95
    assert m["phantom_test"]["all"]["f1"] > m["phantom_test_rules"]["all"]["f1"]
    assert {"uci", "phantoms"} <= set(prov["data"]) and prov["data"]["uci"]["licence"] == "CC BY 4.0"
    assert prov["date"] and prov["data"]["uci"]["split"]["seed"] == 0
    assert prov["format"]["sha256"] == S.load_model().sha256
    # the recorded metrics were measured with today's default clean-up (rerun train-segmenter when it changes)
    assert prov["clean_up_params"] == S.SegmentParams().to_dict()


@pytest.mark.skipif(UCI is None, reason="UCI skin data not available")
def test_uci_held_out_balanced_accuracy_recomputed():
    rgb, skin = T.load_uci(UCI)
    test = T.uci_split(len(rgb), skin, seed=0)
    assert test.sum() == pytest.approx(0.2 * len(rgb), abs=2)
    assert abs(skin[test].mean() - skin.mean()) < 1e-3  # stratified
    idx = np.random.default_rng(1).choice(np.flatnonzero(test), 8000, replace=False)
    model = S.load_model()
    pred = model.predict(rgb[idx][None])[0] >= 0.5
    t = skin[idx]
    ba = 0.5 * (pred[t].mean() + (~pred[~t]).mean())
    assert ba >= 0.95
    assert ba == pytest.approx(S.load_model().provenance["metrics"]["uci_test"]["balanced_accuracy"], abs=0.01)


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


def test_lut_gather_is_the_table():
    model = S.load_model()
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
    q = rgb.astype(np.int64) >> (8 - model.bits)
    idx = (q[..., 0] << (2 * model.bits)) | (q[..., 1] << model.bits) | q[..., 2]
    np.testing.assert_array_equal(model.predict(rgb), model.prob[idx])
    assert model.predict(rgb).dtype == np.float32


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


def test_downscaled_working_copy_keeps_size_and_accuracy(ladder):
    ph = ladder[3]
    full = S.segment_skin(ph.image)
    small = S.segment_skin(ph.image, params=S.SegmentParams(work_pixels=20_000))  # factor 2, 240x320 -> 120x160
    assert small.mask.shape == ph.mask.shape and small.probability.shape == ph.mask.shape
    assert S.evaluate_masks(small.mask, full.mask)["f1"] >= 0.9
    # a size that is not a multiple of the factor: edge rows/columns replicated
    odd = ph.image[:239, :317]
    assert S.segment_skin(odd, params=S.SegmentParams(work_pixels=20_000)).mask.shape == (239, 317)


def test_params_validation():
    with pytest.raises(SkinImgError):
        S.SegmentParams(low=0.8, high=0.5)
    with pytest.raises(SkinImgError):
        S.SegmentParams(work_pixels=10)


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


# ----------------------------------------------------------------------------- model file


def test_model_loads_without_pickle(tmp_path):
    assert S.DEFAULT_MODEL_PATH.stat().st_size < 1_000_000
    arrays = load_npz(S.DEFAULT_MODEL_PATH)
    assert arrays["log_odds"].dtype == np.uint8 and arrays["log_odds"].size == 1 << (3 * int(arrays["bits"][0]))
    bad = tmp_path / "evil.npz"
    np.savez(bad, log_odds=np.array([{"a": 1}], dtype=object), bits=np.array([6]))
    with pytest.raises(SkinImgError, match="pickle"):
        S.load_model(bad)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, log_odds=np.zeros(10, np.uint8), bits=np.array([6]))
    with pytest.raises(SkinImgError, match="wrong table"):
        S.load_model(wrong)


def test_train_segmenter_reproducible(tmp_path, monkeypatch, synthetic_uci):
    """Same inputs -> byte-identical NPZ and JSON (small run on a synthetic UCI-format file)."""
    uci, skin = synthetic_uci(3000)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    kw = dict(uci=uci, n_train_phantoms=3, n_test_phantoms=2, phantom_size=(96, 128), n_stage2_extra=2, net=False)
    p1 = T.train_segmenter(tmp_path / "a", **kw)
    p2 = T.train_segmenter(tmp_path / "b", **kw)
    for name in ("skin_lut.npz", "skin_lut.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert p1 == p2 and p1["date"] == "2023-11-14"
    assert p1["data"]["uci"]["split"]["n_test"] == round(0.2 * skin.sum()) + round(0.2 * (~skin).sum())
    m = S.load_model(tmp_path / "a" / "skin_lut.npz")
    assert m.provenance["format"]["sha256"] == m.sha256
    with zipfile.ZipFile(tmp_path / "a" / "skin_lut.npz") as zf:
        assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in zf.infolist())


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
    m = cv2.imread(str(out / "masks" / "visit" / "face.png"), cv2.IMREAD_UNCHANGED)
    assert m.dtype == np.uint8 and m.shape == (240, 320) and set(np.unique(m)) <= {0, 255}
    lib = S.segment_skin(ladder[2].image)
    np.testing.assert_array_equal(m > 0, lib.mask)
    assert float(by["visit/face.png"]["skin_fraction"]) == pytest.approx(lib.skin_fraction)
    assert (out / "masks" / "dark.png").is_file() and not (out / "masks" / "broken.png").exists()
    assert read_mask(out / "masks" / "blue.png").shape == (60, 80)


def _iou(a, b):
    return np.count_nonzero(a & b) / np.count_nonzero(a | b)


def test_check_agreement_is_the_iou_of_the_two_second_stages(ladder):
    m = S.load_model()
    assert m.stage2 is not None and m.net is not None
    for ph in (ladder[0], ladder[5]):  # 240 x 320: the working image is the photo
        a = S.segment_skin(ph.image).mask
        b = S.segment_skin(ph.image, params=S.SegmentParams(stage2_model="net")).mask
        r = S.segment_skin(ph.image, check=True)
        np.testing.assert_array_equal(r.mask, a)  # checking does not change the mask
        assert r.agreement == pytest.approx(_iou(a, b), abs=1e-12) and r.mask_check == "ok"
        assert 0.85 < r.agreement < 1.0  # two good masks that differ a little
        rn = S.segment_skin(ph.image, check=True, params=S.SegmentParams(stage2_model="net"))
        assert rn.agreement == pytest.approx(r.agreement, abs=1e-12)
        # within an ROI: the IoU of the two masks cut to it
        roi = np.zeros(a.shape, bool)
        roi[60:180, 100:220] = True
        assert S.segment_skin(ph.image, roi=roi, check=True).agreement == pytest.approx(_iou(a & roi, b & roi))
    assert S.segment_skin(ladder[0].image).agreement is None and S.segment_skin(ladder[0].image).mask_check is None
    low = S.SegmentResult(mask=a, skin_fraction=0.1, status="ok", method="model", work_probability=a,
                          agreement=S.AGREEMENT_MIN - 1e-9)
    assert low.mask_check == "check" and replace(low, agreement=S.AGREEMENT_MIN).mask_check == "ok"
    assert S.segment_skin(ladder[0].image, method="rules", check=True).agreement is None
    nothing = S.segment_skin(np.full((60, 80, 3), (40, 60, 200), np.uint8), check=True)
    assert nothing.status == "no_skin" and nothing.agreement == 1.0  # both stages find no skin


def test_both_keeps_a_pixel_when_the_mean_of_the_two_log_odds_says_skin(ladder):
    # A mean of two log-odds is >= 0 wherever both are and < 0 wherever both are not: the ensemble's mask lies
    # between the intersection and the union of the two stages' masks, and takes sides only where they differ.
    for ph in (ladder[1], ladder[4]):
        a = S.segment_skin(ph.image).mask
        b = S.segment_skin(ph.image, params=S.SegmentParams(stage2_model="net")).mask
        r = S.segment_skin(ph.image, params=S.SegmentParams(stage2_model="both"))
        assert not (a & b & ~r.mask).any() and not (r.mask & ~(a | b)).any()
        assert np.count_nonzero(a != b) > 0 and 0 < np.count_nonzero(r.mask & (a != b)) < np.count_nonzero(a != b)
        # the agreement comes with it, without check=True, and equals the one --check reports
        assert r.agreement == pytest.approx(_iou(a, b), abs=1e-12)
        assert r.agreement == pytest.approx(S.segment_skin(ph.image, check=True).agreement, abs=1e-12)
        f1 = [S.evaluate_masks(x, ph.mask)["f1"] for x in (a, b, r.mask)]
        assert f1[2] > min(f1[:2]) - 1e-3 and f1[2] > 0.95


def test_both_rescues_a_dark_phantom_the_perceptron_fails():
    # development phantom 200294 (dark skin, grey hair, wood wall): the per-pixel stage keeps the hair and drops
    # the face (F1 0.28), the U-Net does far better (0.77); their mean recovers much of the face (0.60)
    spec = T.phantom_specs([200294], size=(480, 640))[0]
    from skinimg.phantom import render_phantom

    ph = render_phantom(spec)
    f = {s: S.evaluate_masks(S.segment_skin(ph.image, params=S.SegmentParams(stage2_model=s)).mask, ph.mask)["f1"]
         for s in ("mlp", "net", "both")}
    assert f["mlp"] < 0.4 and f["net"] > 0.7 and f["both"] > f["mlp"] + 0.25
    r = S.segment_skin(ph.image, params=S.SegmentParams(stage2_model="both"))
    assert r.mask_check == "check"  # and the disagreement flags it


def test_both_with_a_model_without_a_network_is_the_perceptron(ladder):
    full = S.load_model()
    no_net = S.SkinModel(bits=full.bits, prob=full.prob, stage2=full.stage2)
    img = ladder[2].image
    r = S.segment_skin(img, model=no_net, params=S.SegmentParams(stage2_model="both"))
    np.testing.assert_array_equal(r.mask, S.segment_skin(img).mask)
    assert r.agreement is None


def test_check_with_a_model_lacking_a_stage_is_a_one_line_error(tmp_path, monkeypatch, ladder):
    # the models folder ($SKINIMG_MODELS) holds a colour model trained without the U-Net (--no-net)
    import shutil

    from skinimg.io import models_dir

    models = tmp_path / "models"
    shutil.copytree(models_dir(), models)
    arrays = {k: v for k, v in load_npz(models / "skin_lut.npz").items() if not k.startswith("net_")}
    np.savez(models / "skin_lut.npz", **arrays)
    monkeypatch.setenv("SKINIMG_MODELS", str(models))
    assert S.load_model().net is None and S.load_model().stage2 is not None
    write_png(tmp_path / "in" / "tan.png", ladder[3].image)
    with pytest.raises(SkinImgError, match="--check needs both"):
        SB.segment_paths([tmp_path / "in"], tmp_path / "out", check=True, workers=1)
    r = CliRunner().invoke(cli, ["segment", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--check",
                                 "--workers", "1"])
    assert r.exit_code != 0 and "--check needs both" in r.output and "Traceback" not in r.output
    assert len([line for line in r.output.splitlines() if line.strip()]) == 1
    write_png(tmp_path / "truth" / "tan_mask.png", ladder[3].mask.astype(np.uint8) * 255)
    with pytest.raises(SkinImgError, match="--check needs both"):
        SB.evaluate_folders(tmp_path / "in", tmp_path / "truth", check=True)
    # without --check the same model segments as before
    assert SB.segment_paths([tmp_path / "in"], tmp_path / "out", workers=1)["n_ok"] == 1
    # analyze --check: the same one-line error before any photo, nothing written
    r = CliRunner().invoke(cli, ["analyze", str(tmp_path / "in"), "--out", str(tmp_path / "a"), "--check",
                                 "--no-maps", "--workers", "1"])
    assert r.exit_code != 0 and "--check needs both" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "a" / "indices.csv").exists()


def test_check_agreement_at_reduced_working_resolution(ladder):
    # a 960 x 1280 photo is segmented on a 480 x 640 working copy: the agreement is the IoU there
    big = cv2.resize(ladder[3].image, (1280, 960), interpolation=cv2.INTER_CUBIC)
    r = S.segment_skin(big, check=True)
    work = SF._block_mean(big, 2)
    a = S.segment_skin(work).mask
    b = S.segment_skin(work, params=S.SegmentParams(stage2_model="net")).mask
    assert r.agreement == pytest.approx(_iou(a, b), abs=1e-12) and r.agreement > 0.85


def test_cli_segment_check_flags_the_real_photo(tmp_path, ladder):
    root = tmp_path / "in"
    root.mkdir()
    write_png(root / "tan.png", ladder[3].image)
    shutil.copy(Path(__file__).resolve().parents[1] / "sample_images" / "real" / "astronaut.jpg", root / "astronaut.jpg")
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["segment", str(root), "--out", str(out), "--check", "--workers", "1"])
    assert r.exit_code == 0, r.output
    _, rows = _read_csv(out / "segment.csv")
    by = {x["image"]: x for x in rows}
    # the phantom's two stages agree; on the real photo (whose mask has F1 0.70) they do not
    assert float(by["tan.png"]["stage_agreement"]) > S.AGREEMENT_MIN and by["tan.png"]["mask_check"] == "ok"
    assert float(by["astronaut.jpg"]["stage_agreement"]) < 0.7 and by["astronaut.jpg"]["mask_check"] == "check"
    assert "astronaut.jpg: ok" in r.output and "check the mask" in r.output and "1 to check by eye" in r.stderr
    r = CliRunner().invoke(cli, ["segment", str(root), "--out", str(out), "--check", "--method", "rules"])
    assert r.exit_code == 2 and "--check needs --method model" in r.output


def test_cli_segment_second_stage_both_flags_without_check(tmp_path, ladder):
    root = tmp_path / "in"
    write_png(root / "tan.png", ladder[3].image)
    shutil.copy(Path(__file__).resolve().parents[1] / "sample_images" / "real" / "astronaut.jpg", root / "astronaut.jpg")
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["segment", str(root), "--out", str(out), "--second-stage", "both", "--workers", "1"])
    assert r.exit_code == 0, r.output
    _, rows = _read_csv(out / "segment.csv")
    by = {x["image"]: x for x in rows}
    lib = S.segment_skin(ladder[3].image, params=S.SegmentParams(stage2_model="both"))
    np.testing.assert_array_equal(read_mask(out / "masks" / "tan.png"), lib.mask)
    assert float(by["tan.png"]["stage_agreement"]) == pytest.approx(lib.agreement, abs=1e-4)
    assert by["tan.png"]["mask_check"] == "ok" and by["astronaut.jpg"]["mask_check"] == "check"
    assert "1 to check by eye" in r.stderr
    # the rules baseline has no second stage: nothing to agree on, and no count printed
    r = CliRunner().invoke(cli, ["segment", str(root), "--out", str(tmp_path / "o2"), "--method", "rules",
                                 "--second-stage", "both", "--workers", "1"])
    assert r.exit_code == 0 and "to check by eye" not in r.stderr


def test_cli_eval_segment_check_judges_the_flag_against_the_truth(tmp_path, ladder):
    images, masks = tmp_path / "images", tmp_path / "truth"
    write_png(images / "tan.png", ladder[3].image)
    write_png(masks / "tan_mask.png", ladder[3].mask.astype(np.uint8) * 255)
    root = Path(__file__).resolve().parents[1] / "sample_images"
    shutil.copy(root / "real" / "astronaut.jpg", images / "astronaut.jpg")
    shutil.copy(root / "truth" / "real" / "astronaut_mask.png", masks / "astronaut_mask.png")
    r = CliRunner().invoke(cli, ["eval-segment", "--images", str(images), "--masks", str(masks), "--check", "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    by = {x["image"]: x for x in res["rows"]}
    for name, rgb in (("tan.png", ladder[3].image), ("astronaut.jpg", None)):
        if rgb is None:
            rgb = load_image(images / name)[0]
        assert by[name]["stage_agreement"] == pytest.approx(S.segment_skin(rgb, check=True).agreement, abs=1e-12)
    assert by["tan.png"]["mask_check"] == "ok" and by["astronaut.jpg"]["mask_check"] == "check"
    assert res["check"] == {"n_flagged": 1, "mean_f1_flagged": pytest.approx(by["astronaut.jpg"]["f1"]),
                            "mean_f1_not_flagged": pytest.approx(by["tan.png"]["f1"])}
    assert by["astronaut.jpg"]["f1"] < 0.8 < by["tan.png"]["f1"]  # the flagged mask is the bad one
    r = CliRunner().invoke(cli, ["eval-segment", "--images", str(images), "--masks", str(masks), "--check"])
    assert r.exit_code == 0 and "check (stages agree" in r.output and "1 of 2 photo(s) flagged" in r.output


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
    assert cols[-4:] == ["ita_deg", "tone", "stage_agreement", "mask_check"]
    assert by["set/p0.png"]["stage_agreement"] is None and res["check"] is None  # not asked for
    # per tone: the ITA class of each photo's true skin (checked against scikit-image's CIELAB), pooled
    for i in (0, 5):
        lab = skcolor.rgb2lab(ladder[i].image)[ladder[i].mask]
        ita = float(np.mean(np.degrees(np.arctan2(lab[:, 0] - 50, lab[:, 2]))))
        assert by[f"set/p{i}.png"]["ita_deg"] == pytest.approx(ita, abs=0.05)
    assert by["set/p0.png"]["ita_deg"] > 55 and by["set/p0.png"]["tone"] == "very_light"
    assert by["set/p5.png"]["ita_deg"] <= -30 and by["set/p5.png"]["tone"] == "dark"
    tones = {t["tone"]: t for t in res["by_tone"]}
    assert list(tones) == ["very_light", "dark"]  # lightest first, only tones present
    for i, tone in ((0, "very_light"), (5, "dark")):
        t, row = tones[tone], by[f"set/p{i}.png"]
        assert t["n_images"] == 1 and t["f1"] == pytest.approx(row["f1"]) and t["iou"] == pytest.approx(row["iou"])
        assert t["worst_image"] == f"set/p{i}.png"
    tcols, trows = _read_csv(out / "eval_segment_tones.csv")
    assert tcols == list(SB.EVAL_TONE_COLUMNS) and [x["tone"] for x in trows] == ["very_light", "dark"]
    r = CliRunner().invoke(cli, ["eval-segment", "--images", str(images / "set"), "--masks", str(masks / "set")])
    assert r.exit_code == 0 and "overall (pooled)" in r.stdout and "p0.png" in r.stdout
    assert "by skin tone" in r.stdout and "very_light" in r.stdout


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


def test_second_stage_features_on_the_region_crop_equal_the_whole_photo():
    """segment_skin computes the second-stage features on the region's bounding box grown by
    _CROP_MARGIN; every feature (the region's fraction of the *photo* included) must equal
    the whole-photo computation, or the trained perceptron sees shifted inputs."""
    ph = render_phantom(PhantomSpec(melanin=0.3, hemoglobin=0.03, seed=11, size=(240, 320)))
    rgb8 = ph.image
    mask = np.zeros(rgb8.shape[:2], bool)
    mask[60:170, 90:220] = ph.mask[60:170, 90:220]
    core = cv2.erode(mask.view(np.uint8), np.ones((9, 9), np.uint8)).view(bool)
    llr = SF._logit(SF._gauss(S.load_model().predict(rgb8), 1.0))
    whole = SFe._pixel_features(rgb8, llr, None, mask, core)
    box = SF._bbox(mask, S2._CROP_MARGIN)
    crop = SFe._pixel_features(np.ascontiguousarray(rgb8[box]), np.ascontiguousarray(llr[box]), None,
                             np.ascontiguousarray(mask[box]), np.ascontiguousarray(core[box]),
                             photo_pixels=mask.size)
    assert whole.shape == crop.shape and whole.shape[1] == len(S.FEATURE_NAMES)
    np.testing.assert_allclose(crop, whole, rtol=1e-5, atol=1e-5)


def test_real_photo_with_hand_drawn_mask_model_beats_rules():
    """The one lawfully usable real photo (NASA portrait in scikit-image, public domain) with the
    developers' hand-drawn skin outline (never trained or tuned on): measured F1 model 0.59, rules
    0.17 (the colour box takes the orange suit and the flag).  Guards against silent regressions."""
    from skimage import data

    from skinimg.phantom import astronaut_skin_mask

    rgb, truth = data.astronaut(), astronaut_skin_mask()
    assert truth.shape == rgb.shape[:2] and 0.02 < truth.mean() < 0.04
    model = S.evaluate_masks(S.segment_skin(rgb).mask, truth)
    rules = S.evaluate_masks(S.segment_skin(rgb, method="rules").mask, truth)
    assert model["f1"] >= 0.5 and rules["f1"] < 0.25 and model["f1"] > rules["f1"] + 0.3, (model, rules)
    # the committed sample mask is the same outline, cropped and downscaled like real/astronaut.jpg
    from pathlib import Path

    sample = read_mask(Path(__file__).resolve().parents[1] / "sample_images" / "truth" / "real" / "astronaut_mask.png")
    np.testing.assert_array_equal(sample, astronaut_skin_mask(sample=True))


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


def test_downscaled_second_stage_matches_full_resolution(ladder):
    """A 480 x 640 photo (307 200 working pixels > stage2_pixels) runs the second stage at half size; its mask
    agrees with the full-resolution second stage and keeps the accuracy; at most stage2_pixels the paths are one."""
    ph = render_phantom(PhantomSpec(melanin=0.2, hemoglobin=0.03, seed=21, size=(480, 640),
                                    distractors=("lips", "eye", "clothing")))
    fast = S.segment_skin(ph.image)
    full = S.segment_skin(ph.image, params=S.SegmentParams(stage2_pixels=0))
    assert S.evaluate_masks(fast.mask, full.mask)["f1"] >= 0.98
    f_fast, f_full = (S.evaluate_masks(m, ph.mask)["f1"] for m in (fast.mask, full.mask))
    assert f_fast >= 0.97 and f_fast >= f_full - 0.01, (f_fast, f_full)
    small = ladder[2]  # 240 x 320 = 76 800 pixels <= stage2_pixels: no downscaling
    np.testing.assert_array_equal(S.segment_skin(small.image).mask,
                                  S.segment_skin(small.image, params=S.SegmentParams(stage2_pixels=0)).mask)
    with pytest.raises(SkinImgError):
        S.SegmentParams(stage2_pixels=100)
    with pytest.raises(SkinImgError):
        S.SegmentParams(guide_eps=0)


def test_second_stage_choices_agree_everywhere():
    from skinimg.batch import analyze as A
    from skinimg.batch import STAGES

    want = set(S.SECOND_STAGES)
    assert set(STAGES["segment"].options["second_stage"].choices) == want
    assert set(STAGES["analyze"].options["second_stage"].choices) == want
    opt = next(p for p in cli.commands["segment"].params if p.name == "second_stage")
    assert set(opt.type.choices) == want
    with pytest.raises(SkinImgError, match="unknown second stage"):
        A.AnalyzeParams(second_stage="cnn")
    # the default hashes as before the option existed (the committed sample baseline's hash, made without it);
    # another second stage changes the hash
    import csv

    with open(Path(__file__).resolve().parents[1] / "sample_images" / "expected" / "indices.csv", newline="") as fh:
        baseline = {row["params_hash"] for row in csv.DictReader(fh)}
    assert baseline == {A.AnalyzeParams().hash()}
    assert A.AnalyzeParams().hash() != A.AnalyzeParams(second_stage="both").hash()


def test_analyze_check_fills_the_flag_columns_without_changing_the_numbers(tmp_path, ladder):
    from skinimg.batch import analyze as A

    write_png(tmp_path / "tan.png", ladder[3].image)
    plain, _ = A.analyze_image(tmp_path / "tan.png", maps=False)
    checked, _ = A.analyze_image(tmp_path / "tan.png", params=A.AnalyzeParams(check=True), maps=False)
    lib = S.segment_skin(ladder[3].image, check=True)
    assert checked["stage_agreement"] == round(lib.agreement, 4) and checked["mask_check"] == "ok"
    assert plain["mask_check"] is None and np.isnan(plain["stage_agreement"])
    for c in A.ROW_COLUMNS:  # the same mask, the same numbers and the same hash
        if c not in ("stage_agreement", "mask_check"):
            assert checked[c] == plain[c] or (isinstance(plain[c], float) and np.isnan(plain[c]) and np.isnan(checked[c])), c
    both, _ = A.analyze_image(tmp_path / "tan.png", params=A.AnalyzeParams(second_stage="both"), maps=False)
    assert both["stage_agreement"] == checked["stage_agreement"]  # free with both
    assert both["skin_pixels"] == int(S.segment_skin(ladder[3].image,
                                                     params=S.SegmentParams(stage2_model="both")).mask.sum())


def test_cli_analyze_check_names_the_photos_to_look_at(tmp_path, ladder):
    root = tmp_path / "in"
    write_png(root / "tan.png", ladder[3].image)
    shutil.copy(Path(__file__).resolve().parents[1] / "sample_images" / "real" / "astronaut.jpg", root / "astronaut.jpg")
    r = CliRunner().invoke(cli, ["analyze", str(root), "--out", str(tmp_path / "out"), "--no-maps", "--check",
                                 "--workers", "1"])
    assert r.exit_code == 0, r.output
    _, rows = _read_csv(tmp_path / "out" / "indices.csv")
    by = {x["image"]: x for x in rows}
    assert by["astronaut.jpg"]["mask_check"] == "check" and by["tan.png"]["mask_check"] == "ok"
    assert "astronaut.jpg: check the mask" in r.stderr and "1 to check by eye" in r.stderr
    r = CliRunner().invoke(cli, ["analyze", str(root), "--out", str(tmp_path / "o2"), "--check", "--method", "rules"])
    assert r.exit_code == 2 and "--check needs --method model" in r.output

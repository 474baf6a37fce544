"""Before/after comparison and series tracking against phantom ground truth (issue 6)."""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner

from skinimg import session as C
from skinimg.batch import SERIES_COLUMNS, compare_files
from skinimg import indices as I
from skinimg.cli import cli
from skinimg.errors import SkinImgError
from skinimg.io import write_png
from skinimg.session import register, warp_image
from skinimg.phantom import PhantomSpec, relative_pose, render_phantom
from skinimg.io import load_roi
from skinimg.session import compare as SC
from skinimg.session.lighting import _apply_gain
from skinimg.session.stats import _add_verdicts

SIZE = (360, 480)
P = C.CompareParams(calibrate="none")


def _spec(**kw):
    base = dict(melanin=0.07, hemoglobin=0.025, seed=21, size=SIZE, site="face", background="wall", jpeg_quality=90)
    base.update(kw)
    return PhantomSpec(**base)


def _pair(before: PhantomSpec, after: PhantomSpec):
    b, a = render_phantom(before), render_phantom(after)
    doc, pics = C.compare_arrays(b.image, a.image, before_mask=b.mask, after_mask=a.mask, params=P)
    return doc, pics, b, a


# ----------------------------------------------------------------------------- registration


def test_registration_recovers_the_true_pose_and_reports_it():
    sb = _spec(site="forearm", background="cloth")
    sa = replace(sb, pose=(14.0, -9.0, 4.0, 1.05), exposure=0.85, noise_seed=5)
    b, a = render_phantom(sb), render_phantom(sa)
    reg = register(b.image, a.image, before_mask=b.mask, after_mask=a.mask)
    assert reg.ok and reg.method.startswith("orb+ransac") and reg.inliers >= 100
    assert 0 < reg.residual_px < 2.0
    truth = np.vstack([relative_pose(sb, sa), [0.0, 0.0, 1.0]])  # BEFORE pixels -> AFTER pixels
    ys, xs = np.nonzero(b.mask)
    pts = np.stack([xs, ys, np.ones_like(xs)]).astype(np.float64)
    p1, p2 = truth @ pts, reg.homography @ pts
    err = np.hypot(p1[0] / p1[2] - p2[0] / p2[2], p1[1] / p1[2] - p2[1] / p2[2])
    assert err.mean() < 0.5 and err.max() < 1.5  # pixels, over the skin
    assert reg.scale == pytest.approx(1.05, abs=0.01) and reg.rotation_deg == pytest.approx(-4.0, abs=0.3)
    # the registered AFTER mask lies on BEFORE's mask
    m = warp_image(a.mask, reg, b.mask.shape)
    assert (m & b.mask).sum() / (m | b.mask).sum() > 0.93


def test_unrelated_photos_are_not_aligned_but_compared_by_region_statistics():
    """Two different people (face vs forearm): no step of the registration chain passes, so the pair is compared
    without pixel alignment and says so (issue 23; it used to stop with 'registration failed')."""
    b = render_phantom(_spec(seed=1))
    a = render_phantom(_spec(seed=2, site="forearm", background="wood"))
    doc, _ = C.compare_arrays(b.image, a.image, before_mask=b.mask, after_mask=a.mask, params=P, label="b.jpg vs a.jpg")
    reg = doc["registration"]
    assert reg["ok"] is False and reg["method"] == "none (region statistics)" and reg["homography"] is None
    assert re.search(r"features: \d+ (feature matches|inliers)[^<]*< 30", reg["reason"])
    assert doc["warnings"][0].startswith("not pixel-aligned: compared by region statistics of each photo's own skin "
                                         "(features: ")
    assert doc["joint_mask"]["pixels"] is None and doc["joint_mask"]["before_pixels"] == int(b.mask.sum())
    assert all(m["verdict"] in ("improved", "no_change", "worsened", "unknown") for m in doc["metrics"].values())


# ----------------------------------------------------------------------------- lighting


def test_log_ratio_and_od_indices_are_exposure_invariant_and_the_gain_restores_the_others():
    sb = _spec(noise=0.0, jpeg_quality=None, spots=3)
    b = render_phantom(sb)
    a = render_phantom(replace(sb, exposure=0.8))
    mb, ma = I.compute_maps(b.image, b.mask), I.compute_maps(a.image, b.mask)
    sel = b.mask & (b.linear.max(axis=2) < 0.95)  # unclipped in both
    for name, tol in (("erythema_index", 0.05), ("hemoglobin", 0.01)):  # log ratio / OD chromaticity
        x, y = np.nanmean(mb[name][sel]), np.nanmean(ma[name][sel])
        assert abs(y / x - 1) < tol, name
    # the melanin index is -100 log10(R): a gain g shifts it by -100 log10(g) (8-bit rounding aside)
    shift = np.nanmean(ma["melanin_index"][sel]) - np.nanmean(mb["melanin_index"][sel])
    assert shift == pytest.approx(-100 * math.log10(0.8), abs=0.15)
    assert abs(np.nanmean(ma["melanin"][sel]) / np.nanmean(mb["melanin"][sel]) - 1) > 0.1  # exposure-dependent
    # the comparison's lighting normalisation recovers the gain from the unchanged background
    doc, _, _, _ = _pair(sb, replace(sb, exposure=0.8, pose=(6.0, 4.0, 2.0, 1.02)))
    assert doc["lighting"]["method"] == "gain:background"
    assert doc["lighting"]["gain"] == pytest.approx([1.25] * 3, rel=0.01)
    for name in ("melanin", "melanin_index", "l_star", "ita_deg", "hemoglobin"):
        assert doc["metrics"][name]["verdict"] == "no_change", name
    assert abs(doc["metrics"]["melanin"]["delta_pct"]) < 2.0


def test_brown_skin_pair_shares_one_chromophore_branch_so_exposure_cannot_flip_it():
    """Brown skin (melanin 0.25) retaken 25 % brighter, lighting normalisation off: chosen per
    photo the haemoglobin twin swaps (x2.5, "worsened"); the pair's shared branch keeps it."""
    sb = _spec(melanin=0.25, hemoglobin=0.02, seed=26, jpeg_quality=None)
    b, a = render_phantom(sb), render_phantom(replace(sb, exposure=1.25))
    p = C.CompareParams(calibrate="none", lighting="none", n_boot=300)
    doc, _ = C.compare_arrays(b.image, a.image, before_mask=b.mask, after_mask=a.mask, params=p)
    assert doc["chromophore_branch"] in ("light", "dark")
    hb = doc["metrics"]["hemoglobin"]
    assert abs(hb["delta_pct"]) < 2.0 and hb["verdict"] == "no_change"
    # the failure it prevents: each photo on its own branch
    r_b, _ = I.measure(b.image, b.mask, return_maps=False)
    r_a, _ = I.measure(a.image, a.mask, return_maps=False)
    assert max(r_a["hemoglobin"], r_b["hemoglobin"]) / min(r_a["hemoglobin"], r_b["hemoglobin"]) > 1.5


def test_apply_gain_matches_a_rendered_exposure_change():
    sb = _spec(noise=0.0, jpeg_quality=None)
    b, a = render_phantom(sb), render_phantom(replace(sb, exposure=0.8))
    fixed = _apply_gain(a.image, np.full(3, 1.25))
    sel = b.mask & (b.linear.max(axis=2) < 0.75)
    assert np.abs(fixed[sel].astype(int) - b.image[sel].astype(int)).max() <= 2


# ----------------------------------------------------------------------------- statistics


def test_pair_statistics_analytic():
    rng = np.random.default_rng(0)
    n = 40_000
    tiles = np.repeat(np.arange(400), n // 400)
    before = rng.normal(10.0, 2.0, n)
    after = before + 1.5 + rng.normal(0, 0.5, n)
    s = C.pair_statistics(before, after, tiles, n_boot=1000, seed=0)
    assert s["delta"] == pytest.approx(after.mean() - before.mean())
    assert s["delta_pct"] == pytest.approx(100 * s["delta"] / before.mean())
    lo, hi = s["ci95"]
    assert lo < 1.5 < hi and hi - lo < 0.05
    sd = math.sqrt((before.var() + after.var()) / 2)
    assert s["effect_size"] == pytest.approx(s["delta"] / sd)
    # spatially correlated noise (one offset per tile) widens the block-bootstrap CI accordingly
    after2 = before + 1.5 + np.repeat(rng.normal(0, 1.0, 400), n // 400)
    lo2, hi2 = C.pair_statistics(before, after2, tiles, n_boot=1000, seed=0)["ci95"]
    assert (hi2 - lo2) == pytest.approx(2 * 1.96 * 1.0 / math.sqrt(400), rel=0.25)
    assert C.pair_statistics(before, after2, tiles, n_boot=1000, seed=0)["ci95"] == [lo2, hi2]  # fixed seed


def test_verdict_directions_and_mdc():
    assert C.verdict("hemoglobin", -0.01, [-0.012, -0.008], 0.002) == "improved"
    assert C.verdict("hemoglobin", 0.01, [0.008, 0.012], 0.002) == "worsened"
    assert C.verdict("hemoglobin", 0.001, [0.0005, 0.0015], 0.002) == "no_change"
    assert C.verdict("hemoglobin", 0.003, [-0.001, 0.007], 0.002) == "no_change"  # CI contains 0
    assert C.verdict("l_star", 2.0, [1.5, 2.5], 1.0) == "improved"  # lighter = less pigment
    assert C.verdict("ita_deg", -5.0, [-6, -4], 2.0) == "worsened"
    assert C.verdict("melanin", None, None, 0.01) == "unknown"
    mdc = C.load_mdc()
    assert set(C.METRICS) <= set(mdc) and all(v > 0 for v in mdc.values())


# ----------------------------------------------------------------------------- ground truth


@pytest.mark.parametrize("scale,pose,exposure,seed", [
    (0.9, (12.0, -8.0, 3.0, 1.04), 0.85, 31),
    (0.8, (-10.0, 6.0, -4.0, 0.96), 1.15, 32),
    (0.7, (8.0, 10.0, 5.0, 1.03), 0.9, 33),
    (0.6, (-14.0, -5.0, -3.0, 0.97), 1.1, 34),
    (1.2, (6.0, -12.0, 2.0, 1.05), 0.8, 35),
    (1.4, (-6.0, 8.0, -5.0, 0.95), 1.2, 36),
])
def test_hemoglobin_change_agrees_with_truth_within_the_model_range(scale, pose, exposure, seed):
    """The phantoms' own optical model is one member of the ensemble (a homogeneous diffusion dermis, which
    reads about 1.8 times the central model's relative change): the true change lies in the pair's
    ``delta_pct_model_range``, the central reading too, and the verdict has the truth's direction."""
    sb = _spec(seed=seed, site=("face", "forearm")[seed % 2], background=("wall", "cloth", "wood")[seed % 3],
               melanin=0.04 + 0.015 * (seed % 5))
    doc, _, b, a = _pair(sb, replace(sb, pose=pose, exposure=exposure, hemoglobin_scale=scale, noise_seed=seed + 100))
    true_pct = 100.0 * (scale - 1.0)
    m = doc["metrics"]["hemoglobin"]
    lo, hi = m["delta_pct_model_range"]
    assert np.sign(m["delta_pct"]) == np.sign(true_pct) == np.sign(lo) == np.sign(hi)
    assert lo - 2.0 <= true_pct <= hi + 2.0, (true_pct, lo, hi)
    assert lo <= m["delta_pct"] <= hi
    assert abs(m["delta_model_min"]) <= abs(m["delta"])
    assert m["ci95"][0] < m["delta"] < m["ci95"][1]
    assert m["verdict"] == ("improved" if scale < 1 else "worsened")
    assert doc["registration"]["ok"] and doc["registration"]["residual_px"] < 2.0


@pytest.mark.parametrize("seed,site,background,shading,optics", [
    (41, "face", "wall", 1.15, None), (42, "forearm", "cloth", 0.85, None), (43, "forearm", "blue", 1.0, None),
    (44, "face", "wall", 0.85, "mc_j13"), (45, "face", "cloth", 1.15, "mbll_j98")])
def test_retakes_without_change_are_no_change_for_every_index(seed, site, background, shading, optics):
    """Unchanged skin retaken with a new pose, exposure x1.1, new noise and the light falling at another angle
    (shading strength x0.85 / x1.15, which moves L* by about 1 and the brightness-based indices with it; the
    MDCs of models/mdc.json are derived on retakes with such changes): no_change for every index.  Under two
    held-out optical models the chromophores, the erythema index, the red area and (under mc_j13) the brown-spot
    area stay no_change too; the brightness-based indices sit at the edge of their 95 % MDC there (b* 1.00 x, ITA 1.02 x
    in these two pairs; 94-100 % no_change over 72 such retakes, docs/comparison.md)."""
    from skinimg.phantom.ensemble import MEMBERS
    from skinimg.train.ensemble import tone_melanin

    member = MEMBERS[optics] if optics else None
    mel = 0.05 + 0.03 * (seed % 3) if member is None else tone_melanin(member, 40.0)
    sb = _spec(seed=seed, site=site, background=background, melanin=mel,
               hemoglobin=0.025 if member is None else 1.5 * member.typical_blood)
    sa = replace(sb, pose=(-9.0, 7.0, -3.0, 1.03), exposure=1.1, shading=shading, noise_seed=seed + 7)
    b, a = render_phantom(sb, optics=member), render_phantom(sa, optics=member)
    doc, _ = C.compare_arrays(b.image, a.image, before_mask=b.mask, after_mask=a.mask, params=P)
    verdicts = {k: m["verdict"] for k, m in doc["metrics"].items()}
    assert set(verdicts) == set(C.METRICS)
    if member is not None:
        verdicts = {k: v for k, v in verdicts.items() if k in ("hemoglobin", "melanin", "erythema_index",
                                                              "red_area_fraction", "brown_spot_area_fraction")}
        if optics == "mbll_j98":
            # its large soft-edged patch (9 % of the skin) reads +15 % of spot area between these shots (the area above
            # a threshold moves 24 % for 0.005 of threshold there; docs/comparison.md): not no_change since the
            # continuous inversion made the patch one solid spot (it was speckled, +5 %, 2026-12-04)
            spots = doc["metrics"].pop("brown_spot_area_fraction")
            del verdicts["brown_spot_area_fraction"]
            assert abs(spots["delta_pct"]) < 20, spots["delta_pct"]
    assert all(v == "no_change" for v in verdicts.values()), verdicts
    if shading != 1.0:  # the shading change is real: with the MDC of retakes without one (0.17), L* would be called
        assert abs(doc["metrics"]["l_star"]["delta"]) > 0.2


def test_a_15_percent_increase_is_worsened_and_mdc_override():
    sb = _spec(seed=51, hemoglobin=0.03)
    sa = replace(sb, pose=(10.0, 5.0, 3.0, 1.03), exposure=0.9, hemoglobin_scale=1.15, noise_seed=9)
    doc, _, _, _ = _pair(sb, sa)
    m = doc["metrics"]["hemoglobin"]
    lo, hi = m["delta_pct_model_range"]
    assert m["verdict"] == "worsened" and lo - 2.0 <= 15.0 <= hi + 2.0 and m["delta_model_min"] > m["mdc"]
    b, a = render_phantom(sb), render_phantom(sa)
    big = replace(P, mdc={"hemoglobin": 1.0})
    doc2, _ = C.compare_arrays(b.image, a.image, before_mask=b.mask, after_mask=a.mask, params=big)
    h2 = doc2["metrics"]["hemoglobin"]
    assert h2["verdict"] == "no_change" and h2["mdc_retake"] == 1.0
    assert h2["mdc"] == pytest.approx(1.0 + h2["crosstalk_allowance"])


def test_melanin_change_widens_the_haemoglobin_mdc_by_the_measured_crosstalk():
    """Pigment fading with unchanged blood (sample P002's situation): the haemoglobin MDC grows by
    coefficient x |delta melanin| (coefficient from models/mdc.json, measured on phantom pairs whose
    only true change is melanin), so the cross-talk is not called a change of redness."""
    coef_from, coef = C.load_crosstalk()["hemoglobin"]
    assert coef_from == "melanin" and 0 < coef < 0.2
    sb = _spec(seed=52, melanin=0.15, spots=8)
    sa = replace(sb, pose=(8.0, -4.0, 2.0, 1.02), melanin_scale=0.75, noise_seed=4)
    b, a = render_phantom(sb), render_phantom(sa)
    doc, _ = C.compare_arrays(b.image, a.image, before_mask=b.mask, after_mask=a.mask, params=P)
    hb, mel = doc["metrics"]["hemoglobin"], doc["metrics"]["melanin"]
    assert mel["verdict"] == "improved" and mel["delta"] < -0.02
    assert hb["crosstalk_allowance"] == pytest.approx(coef * abs(mel["delta"]))
    assert hb["mdc"] == pytest.approx(hb["mdc_retake"] + hb["crosstalk_allowance"])
    assert hb["verdict"] == "no_change"
    off, _ = C.compare_arrays(b.image, a.image, before_mask=b.mask, after_mask=a.mask,
                              params=replace(P, crosstalk_allowance=False))
    band = off["mdc_source"]["tone_band"]
    tables = {"default": C.load_mdc(), **{b: t for b, _, t in C.load_mdc_bands()}}
    assert off["metrics"]["hemoglobin"]["mdc"] == tables[band]["hemoglobin"]
    assert "crosstalk_allowance" not in off["metrics"]["hemoglobin"]


# ----------------------------------------------------------------------------- ROI


def test_roi_polygon_and_mask(tmp_path):
    (tmp_path / "roi.json").write_text(json.dumps([[10, 10], [110, 10], [110, 60], [10, 60]]))
    roi = load_roi(tmp_path / "roi.json", (100, 200))
    assert roi.sum() == 101 * 51 and roi[10, 10] and not roi[5, 5]
    m = np.zeros((100, 200), np.uint8)
    m[20:40, 30:50] = 255
    write_png(tmp_path / "roi.png", m)
    assert (load_roi(tmp_path / "roi.png", (100, 200)) == (m > 0)).all()
    with pytest.raises(SkinImgError, match="ROI mask is 200x100 pixels but the photo is 300x100"):
        load_roi(tmp_path / "roi.png", (100, 300))
    (tmp_path / "bad.json").write_text("[[1, 2]]")
    with pytest.raises(SkinImgError, match="polygon"):
        load_roi(tmp_path / "bad.json", (100, 200))


def test_roi_restricts_the_joint_mask_and_uses_skin_outside_as_lighting_reference():
    sb = _spec(seed=61, site="forearm", background="cloth")
    b = render_phantom(sb)
    a = render_phantom(replace(sb, pose=(5.0, -4.0, 2.0, 1.02), exposure=0.9, noise_seed=3))
    ys, xs = np.nonzero(b.mask)
    roi = np.zeros(b.mask.shape, bool)
    cy, cx = int(ys.mean()), int(xs.mean())
    roi[cy - 40 : cy + 40, cx - 60 : cx + 60] = True
    doc, pics = C.compare_arrays(b.image, a.image, before_mask=b.mask, after_mask=a.mask, roi=roi, params=P)
    assert doc["joint_mask"]["roi"] and 0 < doc["joint_mask"]["pixels"] <= int((roi & b.mask).sum())
    assert not (pics["joint"] & ~roi).any()
    assert doc["lighting"]["method"] == "gain:skin_outside_roi"
    assert doc["lighting"]["gain"][1] == pytest.approx(1 / 0.9, rel=0.015)


# ----------------------------------------------------------------------------- CLI


CONTRACT_METRICS = ("hemoglobin", "melanin", "erythema_index", "melanin_index", "a_star", "ita_deg",
                    "red_area_fraction")


def _forearm(path, seed=71, **kw):
    spec = PhantomSpec(melanin=0.06, hemoglobin=0.025, seed=seed, size=(300, 400), site="forearm", background="blue",
                       jpeg_quality=92, **kw)
    write_png(path, render_phantom(spec).image)
    return path


def test_cli_compare_writes_the_contract(tmp_path):
    b = _forearm(tmp_path / "before.png")
    a = _forearm(tmp_path / "after.png", pose=(8.0, -6.0, 3.0, 1.03), exposure=0.9, hemoglobin_scale=0.7,
                 noise_seed=3)
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["compare", str(b), str(a), "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "comparison.json").read_text())
    assert json.loads(r.stdout) == doc
    assert doc["before"] == str(b) and doc["after"] == str(a)
    from skinimg.segment import SegmentParams, load_model
    assert doc["params"]["segment"]["guide_eps"] == SegmentParams().guide_eps  # what made the masks is on record
    assert doc["skin_network"]["sha256"] == load_model().sha256
    reg = doc["registration"]
    assert reg["ok"] is True and isinstance(reg["method"], str) and isinstance(reg["inliers"], int)
    assert isinstance(reg["residual_px"], float)
    for name in CONTRACT_METRICS:
        m = doc["metrics"][name]
        assert {"before", "after", "delta", "delta_pct", "ci95", "verdict", "mdc", "effect_size"} <= set(m)
        assert len(m["ci95"]) == 2 and m["verdict"] in ("improved", "no_change", "worsened")
    assert doc["metrics"]["hemoglobin"]["verdict"] == "improved"
    lo, hi = doc["metrics"]["hemoglobin"]["delta_pct_model_range"]
    assert lo - 5 <= -30 <= hi + 5  # stand-in masks: looser than true masks
    for f in ("pair.png", "delta_hemoglobin.png", "delta_melanin.png"):
        assert (out / f).stat().st_size > 1000


def test_cli_compare_bad_inputs(tmp_path):
    b = _forearm(tmp_path / "b.png")
    a = _forearm(tmp_path / "a.png", seed=99, pose=(0.0, 0.0, 30.0, 1.0))
    r = CliRunner().invoke(cli, ["compare", str(b), str(a), "--out", str(tmp_path / "o")])  # another arm: compared
    assert r.exit_code == 0 and r.output.startswith("registration: none (region statistics): not pixel-aligned")
    assert json.loads((tmp_path / "o" / "comparison.json").read_text())["maps"] == ["pair.png"]
    r = CliRunner().invoke(cli, ["compare", str(b), str(b), "--out", str(tmp_path / "o"), "--mdc", "hemo=1"])
    assert r.exit_code == 1 and "unknown index 'hemo'" in r.output
    r = CliRunner().invoke(cli, ["compare", str(b), str(b), "--out", str(tmp_path / "o"), "--mdc", "hemoglobin"])
    assert r.exit_code == 2 and "INDEX=VALUE" in r.output


def _read(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_cli_track_layout_and_manifest(tmp_path):
    root = tmp_path / "study"
    for date, hs, pose in (("2026-01-10", 1.0, (0.0, 0.0, 0.0, 1.0)), ("2026-02-10", 0.8, (6.0, -4.0, 2.0, 1.02)),
                           ("2026-03-10", 0.6, (-5.0, 6.0, -3.0, 0.98))):
        _forearm(root / "P1" / "arm" / date / "img.png", hemoglobin_scale=hs, pose=pose, noise_seed=int(hs * 10))
    _forearm(root / "P2" / "arm" / "2026-01-01" / "img.png", seed=5)
    _forearm(root / "P2" / "arm" / "2026-02-01" / "img.png", seed=6, pose=(0.0, 0.0, 25.0, 1.0))  # another arm
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["track", str(root), "--out", str(out)])
    assert r.exit_code == 0, r.output  # the other arm is compared without pixel alignment, not failed
    assert "P2/arm/2026-01-01/img.png vs P2/arm/2026-02-01/img.png: ok (none (region statistics))" in r.output
    rows = _read(out / "series.csv")
    assert tuple(rows[0]) == SERIES_COLUMNS
    p1 = [x for x in rows if x["patient"] == "P1" and x["index"] == "hemoglobin"]
    got = {(x["session"], x["reference"], x["reference_session"]): x for x in p1}
    assert set(got) == {("2026-02-10", "baseline", "2026-01-10"), ("2026-02-10", "previous", "2026-01-10"),
                        ("2026-03-10", "baseline", "2026-01-10"), ("2026-03-10", "previous", "2026-02-10")}
    for key, true_pct in (((("2026-03-10", "baseline", "2026-01-10")), -40), (("2026-03-10", "previous", "2026-02-10"), -25)):
        row = got[key]
        assert float(row["delta_pct_model_lo"]) - 5 <= true_pct <= float(row["delta_pct_model_hi"]) + 5, (key, row)
    assert all(x["verdict"] == "improved" and x["status"] == "ok" for x in p1)
    for x in p1:
        for k in ("before", "after", "delta", "delta_pct", "ci95_lo", "ci95_hi", "effect_size", "mdc"):
            assert math.isfinite(float(x[k])), k
    p2 = [x for x in rows if x["patient"] == "P2"]
    assert {x["reference"] for x in p2} == {"baseline", "previous"}  # one unaligned pair, both references
    assert all(x["status"] == "ok" and x["registration"] == "none (region statistics)" and x["index"] for x in p2)
    assert all(x["registration"].startswith("orb+ransac") for x in p1)
    for name in ("2026-01-10__2026-02-10", "2026-01-10__2026-03-10", "2026-02-10__2026-03-10"):
        doc = json.loads((out / "pairs" / "P1" / "arm" / name / "comparison.json").read_text())
        assert doc["registration"]["ok"] and set(CONTRACT_METRICS) <= set(doc["metrics"])
        assert (out / "pairs" / "P1" / "arm" / name / "pair.png").is_file()
    doc = json.loads((out / "pairs" / "P2" / "arm" / "2026-01-01__2026-02-01" / "comparison.json").read_text())
    assert doc["registration"]["ok"] is False and doc["maps"] == ["pair.png"]

    # the same P1 series from a manifest with non-date session names (ordered as listed by name)
    man = tmp_path / "m.csv"
    man.write_text("patient,site,session,image\n"
                   "P1,arm,v2,P1/arm/2026-02-10/img.png\n"
                   "P1,arm,v1,P1/arm/2026-01-10/img.png\n")
    out2 = tmp_path / "out2"
    r = CliRunner().invoke(cli, ["track", str(root), "--out", str(out2), "--manifest", str(man)])
    assert r.exit_code == 0, r.output
    rows2 = [x for x in _read(out2 / "series.csv") if x["index"] == "hemoglobin"]
    assert {(x["session"], x["reference"], x["reference_session"]) for x in rows2} == {
        ("v2", "baseline", "v1"), ("v2", "previous", "v1")}
    assert (out2 / "pairs" / "P1" / "arm" / "v1__v2" / "comparison.json").is_file()
    bad = tmp_path / "bad.csv"
    bad.write_text("patient,site,image\nP1,arm,x.png\n")
    r = CliRunner().invoke(cli, ["track", str(root), "--out", str(out2), "--manifest", str(bad)])
    assert r.exit_code == 1 and "lacks column(s) session" in r.output


def test_mdc_tone_band_follows_the_darker_photo(tmp_path):
    """A pair whose darker photo has ITA <= the band's bound gets the band's MDCs (retakes of brown and dark
    skin spread the estimates more); lighter pairs keep the default table; --mdc overrides both."""
    table = {"format": C.MDC_FORMAT, "mdc": {"hemoglobin": 0.001, "ita_deg": 0.5},
             "mdc_by_tone": [{"band": "brown_dark", "ita_deg_max": 10.0, "mdc": {"hemoglobin": 0.004}}]}
    path = tmp_path / "mdc.json"
    path.write_text(json.dumps(table))
    assert C.load_mdc_bands(path) == [("brown_dark", 10.0, {"hemoglobin": 0.004})]

    def doc(ita_before, ita_after, delta=0.002):
        return {"lighting": {"method": "gain:chart"},
                "metrics": {"hemoglobin": {"delta": delta, "ci95": [delta / 2, 2 * delta], "before": 0.03},
                            "ita_deg": {"delta": ita_after - ita_before, "ci95": None, "before": ita_before,
                                        "after": ita_after}}}

    params = replace(P, mdc_path=path, crosstalk_allowance=False)
    light = _add_verdicts(doc(25.0, 30.0), params)
    assert light["mdc_source"]["tone_band"] == "default" and light["mdc_source"]["ita_deg"] == 25.0
    assert light["metrics"]["hemoglobin"]["mdc"] == 0.001 and light["metrics"]["hemoglobin"]["verdict"] == "worsened"
    dark = _add_verdicts(doc(25.0, 9.0), params)  # the after photo is the darker one: conservative
    assert dark["mdc_source"]["tone_band"] == "brown_dark"
    assert dark["metrics"]["hemoglobin"]["mdc"] == 0.004 and dark["metrics"]["hemoglobin"]["verdict"] == "no_change"
    assert dark["metrics"]["ita_deg"]["mdc"] == 0.5  # metrics without a band value keep the default
    over = _add_verdicts(doc(-20.0, -18.0), replace(params, mdc=(("hemoglobin", 0.0015),)))
    assert over["metrics"]["hemoglobin"]["mdc"] == 0.0015 and over["metrics"]["hemoglobin"]["verdict"] == "worsened"
    # a table without bands (format 1 as before) still works
    path.write_text(json.dumps({"format": C.MDC_FORMAT, "mdc": {"hemoglobin": 0.001}}))
    assert C.load_mdc_bands(path) == []
    assert _add_verdicts(doc(-20.0, -18.0), params)["mdc_source"]["tone_band"] == "default"


@pytest.mark.parametrize("seed", [61, 62])
def test_dark_skin_retake_is_no_change_with_the_brown_dark_mdcs(seed):
    """Retakes of dark skin (melanin 0.31-0.32, new pose, exposure x0.9, new noise): the haemoglobin
    estimate moves by 1.6-4.5 %, which the light-skin MDC (0.00051) called improved / worsened; the
    brown / dark bands of models/mdc.json (ITA <= -10 / -30, derived from the retakes in them) keep the pair
    at no_change."""
    sb = _spec(seed=seed, melanin=0.3 + 0.01 * (seed % 10), site=("face", "forearm")[seed % 2])
    sa = replace(sb, pose=(9.0, -6.0, 3.0, 1.03), exposure=0.9, noise_seed=seed + 7)
    doc, _, _, _ = _pair(sb, sa)
    assert doc["mdc_source"]["tone_band"] in ("brown", "dark") and doc["mdc_source"]["ita_deg"] <= -10
    hb = doc["metrics"]["hemoglobin"]
    assert hb["mdc_retake"] > C.load_mdc()["hemoglobin"]  # the band's MDC, larger than the light-skin table's
    for name in ("hemoglobin", "erythema_index", "red_area_fraction", "melanin"):
        assert doc["metrics"][name]["verdict"] == "no_change", (name, doc["metrics"][name])


def test_malformed_mdc_sections_are_one_line_errors(tmp_path):
    path = tmp_path / "mdc.json"
    for extra in ({"crosstalk": "x"}, {"crosstalk": {"hemoglobin": {"from": "melanin"}}},
                  {"mdc_by_tone": [{"band": "dark"}]}, {"mdc_by_tone": [{"band": "dark", "ita_deg_max": -30,
                                                                          "mdc": {"hemoglobin": "high"}}]}):
        path.write_text(json.dumps({"format": C.MDC_FORMAT, "mdc": {"hemoglobin": 0.001}, **extra}))
        with pytest.raises(SkinImgError) as exc:
            C.load_crosstalk(path) if "crosstalk" in extra else C.load_mdc_bands(path)
        assert exc.value.path == "mdc.json"


def test_deprecated_second_stage_is_recorded_and_changes_nothing(monkeypatch, tmp_path):
    # the second stages were retired (issue 22): compare accepts second_stage, records it, segments as always
    seen, masks = [], []
    real = SC.segment_skin

    def spy(rgb, *, method, **kw):
        seen.append((method, kw.get("params")))
        r = real(rgb, method=method, **kw)
        masks.append(r.mask)
        return r

    monkeypatch.setattr(SC, "segment_skin", spy)  # what compare segments the two photos with
    b, a = render_phantom(_spec()), render_phantom(_spec(hemoglobin=0.03))
    C.compare_arrays(b.image, a.image, params=C.CompareParams(calibrate="none", second_stage="both"))
    C.compare_arrays(b.image, a.image, params=C.CompareParams(calibrate="none"))
    assert seen == [("model", None)] * 4
    np.testing.assert_array_equal(masks[0], masks[2])
    np.testing.assert_array_equal(masks[1], masks[3])
    write_png(tmp_path / "b.png", b.image)
    write_png(tmp_path / "a.png", a.image)
    doc = compare_files(tmp_path / "b.png", tmp_path / "a.png", tmp_path / "cmp",
                        params=C.CompareParams(calibrate="none", second_stage="both"))
    saved = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    assert saved["params"]["second_stage"] == doc["params"]["second_stage"] == "both"
    with pytest.raises(SkinImgError, match="unknown second stage"):
        C.CompareParams(second_stage="cnn")


def test_a_broken_after_roi_does_not_fail_an_aligned_pair(tmp_path):
    """AFTER's own ROI serves only a pair that cannot be aligned: on an aligned pair a broken one is reported as a
    warning; when the pair falls back to region statistics, which need it, it is the one-line error."""
    sb = _spec(site="forearm", background="cloth")
    b, a = render_phantom(sb), render_phantom(replace(sb, pose=(6.0, -4.0, 2.0, 1.02), noise_seed=3))
    write_png(tmp_path / "b.png", b.image)
    write_png(tmp_path / "a.png", a.image)
    h, w = b.image.shape[:2]
    (tmp_path / "b.roi.json").write_text(json.dumps([[w // 4, h // 4], [3 * w // 4, h // 4], [3 * w // 4, 3 * h // 4],
                                                     [w // 4, 3 * h // 4]]))
    (tmp_path / "a.roi.json").write_text("{not json")
    params = C.CompareParams(calibrate="none")
    doc = compare_files(tmp_path / "b.png", tmp_path / "a.png", tmp_path / "cmp", roi=tmp_path / "b.roi.json",
                        after_roi=tmp_path / "a.roi.json", params=params)
    assert doc["registration"]["ok"] and doc["after_roi"] is None
    assert any(m.startswith("AFTER's ROI not used") and "a.roi.json" in m for m in doc["warnings"])
    with pytest.raises(SkinImgError, match="a.roi.json"):
        compare_files(tmp_path / "b.png", tmp_path / "a.png", tmp_path / "cmp2", roi=tmp_path / "b.roi.json",
                      after_roi=tmp_path / "a.roi.json", params=replace(params, registration_mode="none"))
    # the same folder reused for the pair compared without alignment: no delta map of the aligned run is left
    assert (tmp_path / "cmp" / "delta_hemoglobin.png").is_file()
    doc = compare_files(tmp_path / "b.png", tmp_path / "a.png", tmp_path / "cmp",
                        params=replace(params, registration_mode="none"))
    assert doc["maps"] == ["pair.png"] and sorted(p.name for p in (tmp_path / "cmp").glob("*.png")) == ["pair.png"]

"""Tests of the phantom generator (skinimg.synth): optics, colour, geometry, truth, files."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from skinimg import color as C
from skinimg.color import ita_category
from skinimg.io import load_image, read_mask
from skinimg.phantom import (
    ILLUMINANTS,
    LABELS,
    LADDER_TONES,
    PhantomSpec,
    illuminant_white,
    ita_degrees,
    plan_set,
    relative_pose,
    render_chart_patches,
    render_phantom,
    skin_linear_rgb,
    write_phantom,
    write_set,
)

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "sample_images"
SMALL = (240, 320)


def _lab(mel, hb, illuminant="D65"):
    return C.linear_rgb_to_lab(skin_linear_rgb(mel, hb, illuminant))


@pytest.fixture(scope="module")
def base():
    return render_phantom(PhantomSpec(melanin=0.08, hemoglobin=0.02, seed=7, spots=5, red_patches=2))


# ----------------------------------------------------------------------------- optical model


def test_tone_ladder_spans_ita_categories():
    lab = C.linear_rgb_to_lab(skin_linear_rgb([m for m, _ in LADDER_TONES], [h for _, h in LADDER_TONES]))
    ita = ita_degrees(lab)
    assert ita[0] > 58 and ita[-1] < -42, ita
    assert np.all(np.diff(ita) < 0), "ITA must fall monotonically along the ladder"
    assert [ita_category(float(v)) for v in ita] == ["very_light", "light", "intermediate", "tan", "brown", "dark"]
    assert lab[0, 0] > 70 and lab[-1, 0] < 35, lab[:, 0]
    assert np.all((lab[:, 1] > 5) & (lab[:, 1] < 20)), lab[:, 1]
    assert np.all((lab[:, 2] > 8) & (lab[:, 2] < 35)), lab[:, 2]


def test_ladder_photos_measure_in_their_category():
    for m, h in LADDER_TONES:
        spec = PhantomSpec(melanin=m, hemoglobin=h, seed=3, size=SMALL, noise=0.0, exposure=1.2)
        ph = render_phantom(spec)
        med = np.median(C.rgb_to_lab(ph.image)[ph.mask], axis=0)
        assert ita_category(float(ita_degrees(med))) == ph.truth["skin_reference"]["ita_category"]


def test_hemoglobin_reddens_and_lowers_green_more_than_red():
    lo, hi = skin_linear_rgb(0.05, 0.005), skin_linear_rgb(0.05, 0.05)
    assert _lab(0.05, 0.05)[1] > _lab(0.05, 0.005)[1] + 5
    ratio = hi / lo
    assert ratio[1] < 0.75 * ratio[0]  # green falls much more than red (haemoglobin Q bands)


def test_melanin_lowers_lightness_and_raises_density():
    mel = np.array([0.01, 0.05, 0.1, 0.2, 0.4])
    lab = _lab(mel, np.full(5, 0.015))
    assert np.all(np.diff(lab[:, 0]) < -2)
    od = C.optical_density(skin_linear_rgb(mel, 0.015))
    assert np.all(np.diff(od, axis=0) > 0)  # every channel darkens
    assert (od[-1, 2] - od[0, 2]) > (od[-1, 0] - od[0, 0])  # melanin absorbs blue more than red


def test_skin_linear_rgb_is_vectorised_and_table_matches():
    mel = np.random.default_rng(0).uniform(0, 0.6, (7, 9))
    hb = np.random.default_rng(1).uniform(0, 0.3, (7, 9))
    rgb = skin_linear_rgb(mel, hb)
    assert rgb.shape == (7, 9, 3) and rgb.dtype == np.float32
    assert skin_linear_rgb(mel[0, 0], hb[0, 0]).shape == (3,)
    np.testing.assert_allclose(skin_linear_rgb(mel[0, 0], hb[0, 0]), rgb[0, 0], rtol=1e-6)
    from skinimg.phantom import DEFAULT_OPTICS
    from skinimg.phantom.optics import _table_lookup

    tab = _table_lookup(mel.astype(np.float32), hb.astype(np.float32), "D65", DEFAULT_OPTICS)
    assert np.max(np.abs(tab - rgb)) < 2e-4


def test_illuminants_white_and_warm_cast():
    np.testing.assert_allclose(illuminant_white("D65"), 1.0, atol=5e-3)
    for name in ("A", "tungsten"):
        w = illuminant_white(name)
        assert w[0] / w[2] > 1.2
    patches_a = render_chart_patches("A")
    assert patches_a[18, 0] / patches_a[18, 2] > 1.2  # white patch under tungsten
    assert illuminant_white("D75")[2] > illuminant_white("D75")[0]  # cool
    f11 = illuminant_white("F11")
    assert np.all(np.isfinite(f11)) and set(ILLUMINANTS) >= {"D65", "A", "F11", "D75", "cool"}


def test_chart_patches_match_colour_science():
    colour = pytest.importorskip("colour")
    cmfs = colour.MSDS_CMFS["CIE 1931 2 Degree Standard Observer"]
    ill = colour.SDS_ILLUMINANTS["D65"]
    with warnings.catch_warnings():  # colour-science notes that it aligns 380-730 nm spectra to the CMFs
        warnings.simplefilter("ignore")
        ref = np.array([
            colour.XYZ_to_Lab(colour.sd_to_XYZ(sd, cmfs, ill) / 100.0, [0.3127, 0.3290])
            for sd in colour.SDS_COLOURCHECKERS["BabelColor Average"].values()
        ])
    mine = C.linear_rgb_to_lab(render_chart_patches("D65"))
    de = C.delta_e_2000(mine, ref)
    assert de.shape == (24,) and de.max() < 3.0, de


# ----------------------------------------------------------------------------- rendering and truth


def test_same_spec_gives_identical_output(base):
    again = render_phantom(PhantomSpec(melanin=0.08, hemoglobin=0.02, seed=7, spots=5, red_patches=2))
    assert again.image.tobytes() == base.image.tobytes()
    np.testing.assert_array_equal(again.melanin, base.melanin)  # NaNs compare equal here
    assert again.truth == base.truth
    other = render_phantom(PhantomSpec(melanin=0.08, hemoglobin=0.02, seed=8, spots=5, red_patches=2))
    assert other.image.tobytes() != base.image.tobytes()


def test_shapes_dtypes_and_nan_off_skin(base):
    h, w = 480, 640
    assert base.image.shape == (h, w, 3) and base.image.dtype == np.uint8
    assert base.mask.shape == (h, w) and base.mask.dtype == bool
    for m in (base.melanin, base.hemoglobin):
        assert m.shape == (h, w) and m.dtype == np.float32
        assert np.all(np.isnan(m[~base.mask])) and np.all(np.isfinite(m[base.mask]))
    np.testing.assert_array_equal(base.mask, base.labels == LABELS["skin"])
    assert 0.08 < base.mask.mean() < 0.6
    for name in ("hair", "lips", "eye", "clothing"):
        assert (base.labels == LABELS[name]).sum() > 100, name
    t = base.truth
    assert t["melanin_mean"] == pytest.approx(float(np.nanmean(base.melanin)))
    assert t["hemoglobin_mean"] == pytest.approx(float(np.nanmean(base.hemoglobin)))
    assert 0.06 < t["melanin_mean"] < 0.12 and 0.015 < t["hemoglobin_mean"] < 0.04
    assert len(t["spots"]) == 5 and len(t["red_patches"]) == 2
    json.dumps(t)  # serialisable


def test_spots_and_patches_are_local_maxima(base):
    for key, arr in (("spots", base.melanin), ("red_patches", base.hemoglobin)):
        med = np.nanmedian(arr)
        for s in base.truth[key]:
            x, y = int(round(s["x"])), int(round(s["y"]))
            if 0 <= y < arr.shape[0] and 0 <= x < arr.shape[1] and base.mask[y, x]:
                assert arr[y, x] > 1.5 * med, (key, s)


def test_retake_has_the_same_truth_under_pose_undo(base):
    spec_a = PhantomSpec(melanin=0.08, hemoglobin=0.02, seed=7, spots=5, red_patches=2)
    spec_b = PhantomSpec(melanin=0.08, hemoglobin=0.02, seed=7, spots=5, red_patches=2, pose=(22.0, -14.0, 6.0, 1.07),
                         exposure=0.8, noise_seed=99, jpeg_quality=85)
    b = render_phantom(spec_b)
    m = relative_pose(spec_a, spec_b)
    flags = dict(dsize=(640, 480), flags=cv2.WARP_INVERSE_MAP | cv2.INTER_NEAREST, borderValue=0)
    mask_back = cv2.warpAffine(b.mask.astype(np.uint8), m, **flags).astype(bool)
    iou = (mask_back & base.mask).sum() / (mask_back | base.mask).sum()
    assert iou > 0.9
    mel_b = np.nan_to_num(b.melanin, nan=0.0)
    back = cv2.warpAffine(mel_b, m, dsize=(640, 480), flags=cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR)
    inner = cv2.erode((mask_back & base.mask).astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    rel = np.abs(back[inner] - base.melanin[inner]) / base.melanin[inner]
    assert inner.sum() > 10000 and np.median(rel) < 0.02, np.median(rel)
    # the photos differ (pose, exposure, noise, JPEG) but the truth does not change
    assert abs(b.truth["melanin_mean"] / base.truth["melanin_mean"] - 1) < 0.05
    same_pose = render_phantom(PhantomSpec(melanin=0.08, hemoglobin=0.02, seed=7, spots=5, red_patches=2, exposure=0.6,
                                           noise_seed=3))
    np.testing.assert_array_equal(same_pose.melanin, base.melanin)
    np.testing.assert_array_equal(same_pose.hemoglobin, base.hemoglobin)
    assert same_pose.image.tobytes() != base.image.tobytes()


def test_treatment_scales_truth_means(base):
    more_blood = render_phantom(PhantomSpec(melanin=0.08, hemoglobin=0.02, seed=7, spots=5, red_patches=2, hemoglobin_scale=1.3))
    assert more_blood.truth["hemoglobin_mean"] / base.truth["hemoglobin_mean"] == pytest.approx(1.3, rel=1e-4)
    assert more_blood.truth["melanin_mean"] == pytest.approx(base.truth["melanin_mean"], rel=1e-6)
    lab0 = np.median(C.rgb_to_lab(base.image)[base.mask], axis=0)
    lab1 = np.median(C.rgb_to_lab(more_blood.image)[more_blood.mask], axis=0)
    assert lab1[1] > lab0[1] + 1.0  # redder
    less_pigment = render_phantom(PhantomSpec(melanin=0.08, hemoglobin=0.02, seed=7, spots=5, red_patches=2, melanin_scale=0.75))
    assert less_pigment.truth["melanin_mean"] / base.truth["melanin_mean"] == pytest.approx(0.75, rel=1e-4)


def test_exposure_is_a_linear_gain_before_clipping():
    kw = dict(melanin=0.1, hemoglobin=0.02, seed=2, size=SMALL, noise=0.0)
    one = render_phantom(PhantomSpec(**kw, exposure=1.0))
    half = render_phantom(PhantomSpec(**kw, exposure=0.5))
    np.testing.assert_allclose(one.linear, 2.0 * half.linear, rtol=1e-6, atol=1e-7)
    lin1, lin05 = C.srgb_to_linear(one.image), C.srgb_to_linear(half.image)
    ok = one.mask & (one.linear.max(axis=2) < 0.95)
    assert lin1[ok].mean() / lin05[ok].mean() == pytest.approx(2.0, rel=0.01)


def test_noise_is_signal_dependent_and_seeded():
    kw = dict(melanin=0.1, hemoglobin=0.02, seed=2, size=SMALL, blur=0.0, distractors=())
    clean = render_phantom(PhantomSpec(**kw, noise=0.0))
    n1 = render_phantom(PhantomSpec(**kw, noise=0.03, noise_seed=1))
    n1b = render_phantom(PhantomSpec(**kw, noise=0.03, noise_seed=1))
    n2 = render_phantom(PhantomSpec(**kw, noise=0.03, noise_seed=2))
    assert n1.image.tobytes() == n1b.image.tobytes() and n1.image.tobytes() != n2.image.tobytes()
    diff = C.srgb_to_linear(n1.image)[..., 1] - C.srgb_to_linear(clean.image)[..., 1]
    x = clean.linear[..., 1]
    dark, bright = (x > 0.02) & (x < 0.1), (x > 0.3) & (x < 0.6)
    assert diff[bright].std() > 1.5 * diff[dark].std()  # Poisson part grows with the signal
    assert abs(diff[bright].mean()) < 0.005


def test_chart_geometry_in_truth():
    spec = PhantomSpec(melanin=0.08, hemoglobin=0.015, seed=5, chart=True, illuminant="A", exposure=0.55, noise=0.0,
                       pose=(8.0, -5.0, 3.0, 1.02))
    ph = render_phantom(spec)
    chart = ph.truth["chart"]
    corners = np.array(chart["corners"])
    centres = np.array(chart["patch_centres"])
    assert corners.shape == (4, 2) and centres.shape == (24, 2)
    assert len(chart["patch_names"]) == 24 and chart["patch_names"][0] == "dark skin"
    assert cv2.pointPolygonTest(corners.astype(np.float32), tuple(map(float, centres[0])), False) > 0
    lin = C.srgb_to_linear(ph.image)
    expect = np.array(chart["patch_linear_rgb"])
    for (x, y), e in zip(centres, expect):
        got = lin[int(round(y)) - 2 : int(round(y)) + 3, int(round(x)) - 2 : int(round(x)) + 3].reshape(-1, 3).mean(axis=0)
        np.testing.assert_allclose(got, np.clip(e, 0, 1), atol=0.02)
    assert not ph.mask[(ph.labels == LABELS["chart"])].any()
    assert ph.mask.sum() > 10000


def test_enough_texture_for_feature_registration():
    spec_a = PhantomSpec(melanin=0.1, hemoglobin=0.02, seed=4)
    spec_b = PhantomSpec(melanin=0.1, hemoglobin=0.02, seed=4, pose=(25.0, -15.0, 7.0, 1.08), exposure=0.8, noise_seed=8)
    a, b = render_phantom(spec_a), render_phantom(spec_b)
    orb = cv2.ORB_create(3000)
    ka, da = orb.detectAndCompute(cv2.cvtColor(a.image, cv2.COLOR_RGB2GRAY), None)
    kb, db = orb.detectAndCompute(cv2.cvtColor(b.image, cv2.COLOR_RGB2GRAY), None)
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(da, db)
    pa = np.float32([ka[x.queryIdx].pt for x in matches])
    pb = np.float32([kb[x.trainIdx].pt for x in matches])
    m = relative_pose(spec_a, spec_b)
    correct = np.linalg.norm(pa @ m[:, :2].T + m[:, 2] - pb, axis=1) < 3
    on_skin = a.mask[pa[:, 1].astype(int), pa[:, 0].astype(int)]
    assert correct.sum() >= 200 and (correct & on_skin).sum() >= 60, (correct.sum(), (correct & on_skin).sum())


def test_forearm_and_backgrounds_render():
    for bg in ("wall", "wood", "cloth", "dark", "blue", "grey"):
        ph = render_phantom(PhantomSpec(site="forearm", background=bg, seed=1, size=(96, 128), illuminant="F11"))
        assert ph.mask.any() and ph.image.shape == (96, 128, 3)
    bare = render_phantom(PhantomSpec(seed=1, size=SMALL, distractors=()))
    assert set(np.unique(bare.labels)) <= {LABELS["background"], LABELS["skin"]}


@pytest.mark.parametrize("bad", [dict(illuminant="X"), dict(background="sky"), dict(distractors=("hat",)),
                                 dict(size=(10, 10)), dict(melanin=0.9), dict(pose=(0, 0, 0, 0)), dict(exposure=0)])
def test_invalid_spec_is_refused(bad):
    with pytest.raises(ValueError):
        PhantomSpec(**bad)


def test_spec_round_trips_through_json(base):
    spec = PhantomSpec.from_dict(json.loads(json.dumps(base.truth["spec"])))
    assert spec == PhantomSpec(melanin=0.08, hemoglobin=0.02, seed=7, spots=5, red_patches=2)


# ----------------------------------------------------------------------------- files


def test_written_files_round_trip(tmp_path, base):
    png = write_phantom(base, tmp_path, "ph", image_format="png")
    rgb, meta = load_image(png["image"])
    np.testing.assert_array_equal(rgb, base.image)
    np.testing.assert_array_equal(read_mask(png["mask"]), base.mask)
    for key, arr in (("melanin", base.melanin), ("hemoglobin", base.hemoglobin)):
        back = cv2.imread(str(png[key]), cv2.IMREAD_UNCHANGED)
        assert back.dtype == np.float32
        np.testing.assert_array_equal(back, arr)
    doc = json.loads(png["json"].read_text())
    assert doc["melanin_mean"] == pytest.approx(base.truth["melanin_mean"])
    assert doc["files"]["mask"] == "ph_mask.png"
    jpg = write_phantom(base, tmp_path / "photos", "ph", image_format="jpg", truth_dir=tmp_path / "truth", maps=False)
    rgb, meta = load_image(jpg["image"])
    assert meta.format == "JPEG" and np.abs(rgb.astype(int) - base.image).mean() < 3
    assert sorted(p.name for p in (tmp_path / "photos").iterdir()) == ["ph.jpg"]
    assert not (tmp_path / "truth" / "ph_melanin.tif").exists()


def test_sample_images_are_small_and_complete():
    files = [p for p in SAMPLES.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 5_000_000
    photos = [p for p in files if p.suffix == ".jpg" and "truth" not in p.relative_to(SAMPLES).parts]
    assert len(photos) >= 15 and (SAMPLES / "real" / "astronaut.jpg") in photos
    for p in photos:
        rel = p.relative_to(SAMPLES)
        if rel.parts[0] == "real":
            continue
        assert (SAMPLES / "truth" / rel.parent / f"{p.stem}_mask.png").is_file(), rel
        assert (SAMPLES / "truth" / rel.parent / f"{p.stem}.json").is_file(), rel
    assert (SAMPLES / "README.md").is_file()


def test_samples_regenerate_from_the_generator(tmp_path):
    records = write_set("samples", tmp_path)
    for rec in records:
        new, _ = load_image(tmp_path / rec["image"])
        old, _ = load_image(SAMPLES / rec["image"])
        assert new.shape == old.shape and np.abs(new.astype(int) - old).mean() < 0.5, rec["image"]
        if rec["truth"]:
            a = json.loads((tmp_path / rec["truth"]).read_text())
            b = json.loads((SAMPLES / rec["truth"]).read_text())
            assert a["melanin_mean"] == pytest.approx(b["melanin_mean"], rel=1e-5)
            assert a["hemoglobin_mean"] == pytest.approx(b["hemoglobin_mean"], rel=1e-5)
            assert a["spec"] == b["spec"]


def test_sample_treatment_effects_are_as_documented():
    def truth(rel):
        return json.loads((SAMPLES / "truth" / rel).read_text())

    p1a = truth("patients/P001/cheek/2026-01-15/P001_cheek.json")
    p1b = truth("patients/P001/cheek/2026-03-15/P001_cheek.json")
    assert p1b["hemoglobin_mean"] / p1a["hemoglobin_mean"] == pytest.approx(0.7, abs=0.02)
    p2 = [truth(f"patients/P002/forearm/{d}/P002_forearm.json") for d in ("2026-01-10", "2026-02-10", "2026-03-10")]
    assert p2[1]["melanin_mean"] / p2[0]["melanin_mean"] == pytest.approx(0.85, abs=0.02)
    assert p2[2]["melanin_mean"] / p2[0]["melanin_mean"] == pytest.approx(0.75, abs=0.02)
    ra, rb = truth("retake/R001_a.json"), truth("retake/R001_b.json")
    assert rb["melanin_mean"] == pytest.approx(ra["melanin_mean"], rel=0.03)
    assert truth("chart/chart_tungsten.json")["illuminant"] == "A"


def test_plan_sets():
    assert len(plan_set("ladder", n=4)) == 4
    assert len(plan_set("grid", n=3)) == 9
    pairs = plan_set("pairs", n=2)
    assert len(pairs) == 4 and pairs[0].spec.seed == pairs[1].spec.seed and pairs[0].spec.pose != pairs[1].spec.pose
    assert pairs[1].spec.hemoglobin_scale != 1.0
    ret = plan_set("retakes", n=2)
    assert all(p.spec.hemoglobin_scale == 1.0 and p.spec.melanin_scale == 1.0 for p in ret)
    with pytest.raises(ValueError):
        plan_set("nope")


def test_cli_synth(tmp_path):
    from click.testing import CliRunner

    from skinimg.cli import cli

    res = CliRunner().invoke(cli, ["synth", "--set", "grid", "--n", "2", "--size", "96x128", "--format", "png",
                                   "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert len(list((tmp_path / "grid").glob("*.png"))) == 4
    assert len(list((tmp_path / "truth" / "grid").glob("*_melanin.tif"))) == 4
    bad = CliRunner().invoke(cli, ["synth", "--size", "12", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "HxW" in bad.output

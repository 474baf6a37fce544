"""Colour calibration: reference values, least squares vs colour-science, chart detection
(drawn charts, a real photo, synthetic phantoms), fallbacks, JSON round trip, CLI."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from skinimg.batch import CSV_COLUMNS
from skinimg.calibrate import (
    CalibrationParams,
    ChartDetection,
    Correction,
    apply_correction,
    calibrate_image,
    chart_correction,
    chart_mask,
    detect_chart,
    expand,
    expansion_terms,
    fit_correction,
    gray_world_correction,
    reference_chart,
    white_patch_correction,
    white_region_correction,
)
from skinimg.cli import cli
from skinimg.color import delta_e_2000, linear_rgb_to_lab, linear_to_srgb, rgb_to_lab, srgb_to_linear
from skinimg.errors import SkinImgError
from skinimg.io import dumps_json, load_image, write_png

warnings.filterwarnings("ignore", message=".*Matplotlib.*")

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / "tests" / "data" / "colorchecker_cc0_640.jpg"
GRID = np.array([[-0.5, -0.5], [5.5, -0.5], [5.5, 3.5], [-0.5, 3.5]])


# ----------------------------------------------------------------------------- helpers


def draw_chart(
    size=(360, 480),
    *,
    corners=None,
    cast=(1.0, 1.0, 1.0),
    exposure=1.0,
    mirror=False,
    noise=0.0,
    seed=0,
    dtype=np.uint8,
    patch=0.86,
):
    """An sRGB photo of a ColorChecker drawn exactly (inverse mapping, 3x3 supersampling).

    ``corners`` (4, 2): image positions of the patch-grid corners next to patches 1, 6, 24, 19.
    Reference colours are multiplied by ``cast * exposure`` in linear RGB (a diagonal cast, so
    a 3x3 correction can undo it exactly).  Returns (image, corners).
    """
    rng = np.random.default_rng(seed)
    h, w = size
    if corners is None:
        corners = np.array([[100.0, 90.0], [380.0, 80.0], [390.0, 270.0], [95.0, 265.0]])
    corners = np.asarray(corners, dtype=np.float64)
    src = GRID.copy()
    if mirror:  # a mirrored photo: patch 1 appears where patch 6 would be
        src = src[[1, 0, 3, 2]]
    hmat = cv2.getPerspectiveTransform(src.astype(np.float32), corners.astype(np.float32))
    hinv = np.linalg.inv(hmat)
    _, ref = reference_chart()
    colours = np.clip(ref, 0, 1)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    acc = np.zeros((h, w, 3))
    bg = 0.05 + 0.5 * cv2.GaussianBlur(rng.random((h, w, 3)), (0, 0), 5)
    for oy in (-1 / 3, 0, 1 / 3):
        for ox in (-1 / 3, 0, 1 / 3):
            p = np.stack([xs + ox, ys + oy, np.ones_like(xs)], axis=-1) @ hinv.T
            u, v = p[..., 0] / p[..., 2], p[..., 1] / p[..., 2]
            col, row = np.rint(u), np.rint(v)
            inside_patch = (np.abs(u - col) < patch / 2) & (np.abs(v - row) < patch / 2)
            on_grid = (col >= 0) & (col <= 5) & (row >= 0) & (row <= 3)
            on_board = (u > -0.8) & (u < 5.8) & (v > -0.8) & (v < 3.8)
            k = np.clip(row, 0, 3).astype(int) * 6 + np.clip(col, 0, 5).astype(int)
            c = np.where((inside_patch & on_grid)[..., None], colours[k], 0.03)
            acc += np.where(on_board[..., None], c, bg)
    lin = acc / 9.0 * np.asarray(cast) * exposure
    if noise:
        lin = lin + rng.normal(0.0, noise, lin.shape)
    lin = np.clip(lin, 0, 1).astype(np.float32)
    if dtype == np.uint16:
        return np.rint(linear_to_srgb(lin) * 65535).astype(np.uint16), corners
    return np.rint(linear_to_srgb(lin) * 255).astype(np.uint8), corners


def chart_delta_e(rgb, det):
    """Mean/max CIEDE2000 of the patch colours re-measured in ``rgb`` at ``det``'s geometry."""
    redet = ChartDetection(found=True, corners=det.corners, homography=det.homography)
    from skinimg.calibrate.detect import _sample_cells  # the detector's own sampler

    meas, clipped = _sample_cells(rgb, det.homography, 0.2, CalibrationParams())
    _, ref = reference_chart()
    de = delta_e_2000(linear_rgb_to_lab(meas.astype(np.float32)), linear_rgb_to_lab(ref.astype(np.float32)))
    return de, clipped, redet


@pytest.fixture(scope="module")
def colour():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import colour as c
    return c


# ----------------------------------------------------------------------------- reference values


def test_reference_matches_colour_science(colour):
    names, lin = reference_chart()
    cc = colour.CCS_COLOURCHECKERS["ColorChecker24 - After November 2014"]
    assert names == tuple(cc.data.keys())
    xyz50 = colour.xyY_to_XYZ(np.array(list(cc.data.values())))
    xyz65 = colour.adaptation.chromatic_adaptation_VonKries(
        xyz50, colour.xy_to_XYZ(cc.illuminant), colour.xy_to_XYZ(np.array([0.3127, 0.3290])), transform="Bradford"
    )
    lab_cs = colour.XYZ_to_Lab(xyz65, np.array([0.3127, 0.3290]))
    np.testing.assert_allclose(linear_rgb_to_lab(lin.astype(np.float32)), lab_cs, atol=2e-3)
    # the neutral row is neutral under D65 and its luminance decreases
    lab = linear_rgb_to_lab(lin[18:].astype(np.float32))
    assert np.all(np.abs(lab[:, 1:]) < 3.0) and np.all(np.diff(lab[:, 0]) < 0)


def test_runtime_does_not_import_colour_science():
    code = "import sys, skinimg.calibrate as c; c.reference_chart(); assert 'colour' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# ----------------------------------------------------------------------------- least squares vs colour-science


@pytest.mark.parametrize(
    "method, kw, cs_kw",
    [
        ("linear3x3", {}, {"method": "Cheung 2004", "terms": 3}),
        ("cheung2004", {"terms": 7}, {"method": "Cheung 2004", "terms": 7}),
        ("cheung2004", {"terms": 10}, {"method": "Cheung 2004", "terms": 10}),
        ("cheung2004", {"terms": 19}, {"method": "Cheung 2004", "terms": 19}),
        ("finlayson2015", {"degree": 1}, {"method": "Finlayson 2015", "degree": 1}),
        ("finlayson2015", {"degree": 2}, {"method": "Finlayson 2015", "degree": 2}),
        ("finlayson2015", {"degree": 3}, {"method": "Finlayson 2015", "degree": 3}),
    ],
)
def test_fit_matches_colour_science(colour, method, kw, cs_kw):
    rng = np.random.default_rng(7)
    _, ref = reference_chart()
    mix = np.array([[0.9, 0.2, 0.05], [0.1, 0.8, 0.1], [0.02, 0.15, 0.6]])
    measured = np.clip(ref, 0.001, 1) @ mix.T * 0.8 + rng.normal(0, 0.004, ref.shape)
    measured = np.clip(measured, 0.001, 1)
    corr = fit_correction(measured, ref, method=method, **kw)
    m_cs = colour.characterisation.matrix_colour_correction(measured, ref, **cs_kw)
    np.testing.assert_allclose(corr.matrix_array, m_cs, rtol=1e-6, atol=1e-7)
    rgb = rng.random((50, 3)) * 0.9 + 0.01
    ours = np.clip(expand(rgb, corr.terms) @ corr.matrix_array.T, 0, 1)
    theirs = np.clip(colour.colour_correction(rgb, measured, ref, **cs_kw), 0, 1)
    np.testing.assert_allclose(ours, theirs, atol=1e-9)
    # the Correction's own statistics agree with a direct CIEDE2000 of the fitted colours
    fitted = np.clip(colour.colour_correction(measured, measured, ref, **cs_kw), 0, 1)
    de = delta_e_2000(linear_rgb_to_lab(fitted.astype(np.float32)), linear_rgb_to_lab(ref.astype(np.float32)))
    assert corr.delta_e_after["mean"] == pytest.approx(de.mean(), abs=1e-3)
    assert corr.delta_e_after["mean"] < corr.delta_e_before["mean"]


def test_expansions_match_colour_science(colour):
    x = np.random.default_rng(3).random((20, 3))
    from colour.characterisation import matrix_augmented_Cheung2004, polynomial_expansion_Finlayson2015

    for terms in (3, 4, 5, 7, 8, 10, 11, 14, 16, 17, 19, 20, 22, 35):
        np.testing.assert_allclose(expand(x, expansion_terms("cheung2004", terms=terms)), matrix_augmented_Cheung2004(x, terms), rtol=1e-12)
    for degree in (1, 2, 3, 4):
        np.testing.assert_allclose(
            expand(x, expansion_terms("finlayson2015", degree=degree)), polynomial_expansion_Finlayson2015(x, degree), rtol=1e-12
        )


def test_linear_fit_inverts_a_known_matrix_and_root_polynomial_is_exposure_invariant():
    _, ref = reference_chart()
    ref = np.clip(ref, 0.001, 1)
    a = np.array([[0.7, 0.25, 0.05], [0.1, 0.85, 0.05], [0.05, 0.2, 0.5]])
    measured = ref @ a.T
    corr = fit_correction(measured, ref, method="linear3x3")
    np.testing.assert_allclose(corr.matrix_array, np.linalg.inv(a), atol=1e-9)
    assert corr.delta_e_after["max"] < 1e-4
    rp = fit_correction(measured, ref, method="finlayson2015", degree=2)
    x = np.random.default_rng(0).random((10, 3)) * 0.4 + 0.05
    y1 = expand(x, rp.terms) @ rp.matrix_array.T
    y2 = expand(2.0 * x, rp.terms) @ rp.matrix_array.T
    np.testing.assert_allclose(y2, 2.0 * y1, rtol=1e-12)  # Finlayson 2015: degree-1 homogeneous
    with pytest.raises(ValueError):
        fit_correction(measured[:5], ref[:5], method="finlayson2015", degree=2)  # 6 terms, 5 patches


# ----------------------------------------------------------------------------- apply / JSON


def test_apply_keeps_dtype_and_identity_is_identity(rgb8):
    ident = Correction(kind="chart", method="linear3x3", matrix=np.eye(3).tolist(), terms=["R", "G", "B"])
    out = apply_correction(rgb8, ident)
    assert out.dtype == np.uint8 and out.shape == rgb8.shape
    assert np.abs(out.astype(int) - rgb8).max() == 0
    rgb16 = rgb8.astype(np.uint16) * 257
    out16 = apply_correction(rgb16, ident)
    assert out16.dtype == np.uint16 and np.abs(out16.astype(int) - rgb16).max() <= 1
    outf = apply_correction(rgb8.astype(np.float32) / 255, ident)
    assert outf.dtype == np.float32 and np.abs(outf - rgb8 / 255).max() < 1e-5
    # a gain of 2 in linear RGB, clipped at 1
    double = Correction(kind="chart", method="linear3x3", matrix=(2 * np.eye(3)).tolist(), terms=["R", "G", "B"])
    out = apply_correction(rgb8, double)
    expect = np.rint(linear_to_srgb(np.clip(2 * srgb_to_linear(rgb8), 0, 1)) * 255)
    assert np.abs(out.astype(int) - expect).max() <= 1


def test_correction_json_round_trip():
    img, _ = draw_chart(cast=(1.3, 1.0, 0.6))
    corrected, corr = calibrate_image(img)
    corr.image = "visit/a.png"
    text = dumps_json(corr.to_dict())
    back = Correction.from_dict(json.loads(text))
    assert back == corr
    assert np.array_equal(apply_correction(img, back), corrected)
    with pytest.raises(ValueError):
        Correction.from_dict({**json.loads(text), "surprise": 1})
    with pytest.raises(ValueError):
        Correction.from_dict({**json.loads(text), "terms": ["R", "G"]})  # matrix has 6 columns


# ----------------------------------------------------------------------------- detection on drawn charts


@pytest.mark.parametrize(
    "corners, mirror",
    [
        (None, False),
        (np.array([[390.0, 270.0], [95.0, 265.0], [100.0, 90.0], [380.0, 80.0]]), False),  # 180 degrees
        (np.array([[330.0, 40.0], [340.0, 330.0], [150.0, 320.0], [145.0, 50.0]]), False),  # 90 degrees
        (np.array([[120.0, 60.0], [420.0, 150.0], [380.0, 320.0], [60.0, 210.0]]), False),  # rotated ~20 degrees
        (np.array([[80.0, 60.0], [400.0, 95.0], [400.0, 255.0], [80.0, 300.0]]), False),  # perspective
        (None, True),  # mirrored photo
        (np.array([[200.0, 150.0], [320.0, 150.0], [320.0, 230.0], [200.0, 230.0]]), False),  # small: 20 px patches
    ],
)
def test_detect_drawn_chart_geometry_and_orientation(corners, mirror):
    img, truth = draw_chart(corners=corners, cast=(1.25, 1.0, 0.55), exposure=0.9, mirror=mirror, noise=0.003)
    det = detect_chart(img)
    assert det.found, det.reason
    pitch = np.linalg.norm(truth[1] - truth[0]) / 6
    expect = truth[[1, 0, 3, 2]] if mirror else truth
    assert np.abs(det.corners - expect).max() < max(1.5, 0.06 * pitch)
    corr = chart_correction(det)
    assert corr.delta_e_before["mean"] > 8
    # the model chosen by leave-one-patch-out error (a diagonal cast: a 3x3 or the root-polynomial)
    assert corr.delta_e_after["mean"] < 1.0 and corr.kind == "chart" and corr.method in ("linear3x3", "finlayson2015")
    assert corr.delta_e_loo["mean"] < 1.0 and corr.warning is None
    mask = chart_mask(img.shape, det)
    inside = np.rint(det.patch_centres).astype(int)
    assert mask[inside[:, 1], inside[:, 0]].all()
    assert not mask[0, 0] and not mask[-1, -1]
    assert mask.sum() > cv2.contourArea(truth.astype(np.float32))  # grid plus frame


def test_detect_16bit_and_corrected_image_measures_close_to_reference():
    img, truth = draw_chart(cast=(0.8, 1.0, 1.35), exposure=0.7, dtype=np.uint16, noise=0.002)
    corrected, corr = calibrate_image(img)
    assert corrected.dtype == np.uint16 and corrected.shape == img.shape
    det = detect_chart(img)
    de, clipped, _ = chart_delta_e(corrected, det)
    assert de[~clipped].mean() < 1.0
    assert corr.delta_e_after["mean"] == pytest.approx(de[~clipped].mean(), abs=0.5)


def test_no_chart_is_not_found_and_falls_back():
    rng = np.random.default_rng(1)
    img = (cv2.GaussianBlur(rng.random((240, 320, 3)), (0, 0), 3) * 255).astype(np.uint8)
    # a regular grid of gray squares (tiles) must not be taken for a chart
    tiles = np.full((240, 320, 3), 40, np.uint8)
    for r in range(4):
        for c in range(6):
            tiles[20 + 50 * r : 60 + 50 * r, 20 + 50 * c : 60 + 50 * c] = 120 + 10 * ((r + c) % 2)
    for im in (img, tiles):
        det = detect_chart(im)
        assert not det.found and det.reason
        out, corr = calibrate_image(im)
        assert corr.kind in ("gray_world", "none") and corr.notes[0].startswith("no chart found")
        with pytest.raises(SkinImgError, match="no chart found"):
            calibrate_image(im, require_chart=True)
        with pytest.raises(SkinImgError, match="no chart found"):
            calibrate_image(im, mode="chart")
    out, corr = calibrate_image(img, mode="none")
    assert corr.kind == "none" and np.array_equal(out, img)
    assert not chart_mask(img.shape, corr).any()


def test_gray_world_and_white_region_remove_a_cast():
    rng = np.random.default_rng(2)
    gray = rng.uniform(0.05, 0.6, (120, 160, 1)) * np.ones(3)  # a neutral scene
    cast = np.array([1.3, 1.0, 0.6])
    img = np.rint(linear_to_srgb((gray * cast).astype(np.float32)) * 255).astype(np.uint8)
    corr = gray_world_correction(img, skin_mask=np.zeros(img.shape[:2], bool))
    gains = np.diag(corr.matrix_array)
    np.testing.assert_allclose(gains / gains[1], 1 / cast, rtol=0.01)
    out = srgb_to_linear(apply_correction(img, corr)).reshape(-1, 3).mean(axis=0)
    assert np.ptp(out) / out.mean() < 0.02
    wp = white_patch_correction(img, skin_mask=np.zeros(img.shape[:2], bool))
    np.testing.assert_allclose(np.diag(wp.matrix_array) / np.diag(wp.matrix_array)[1], 1 / cast, rtol=0.02)
    # a user gray card
    card = white_region_correction(img, (10, 20, 30, 30))
    patch = srgb_to_linear(apply_correction(img, card)[20:50, 10:40]).reshape(-1, 3)
    med = np.median(patch, axis=0)
    assert np.ptp(med) / med.mean() < 0.01 and card.white_region == [10, 20, 30, 30]
    # luminance of the region is kept (von Kries gains normalised to Y)
    y = lambda v: 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2]  # noqa: E731
    src = np.median(srgb_to_linear(img[20:50, 10:40]).reshape(-1, 3), axis=0)
    assert y(med) == pytest.approx(y(src), rel=0.01)
    _, c2 = calibrate_image(img, white=(10, 20, 30, 30))
    assert c2.kind == "white_patch" and c2.notes[0].startswith("no chart found")
    with pytest.raises(SkinImgError, match="not inside"):
        white_region_correction(img, (150, 100, 30, 30))


def test_gray_world_ignores_skin_pixels():
    rng = np.random.default_rng(4)
    img = np.rint(linear_to_srgb(np.full((100, 100, 3), 0.3, np.float32)) * 255).astype(np.uint8)
    skin = np.zeros((100, 100), bool)
    skin[:, :70] = True
    img[skin] = (200, 140, 120)  # a skin colour filling most of the frame
    img = np.clip(img.astype(int) + rng.integers(-2, 3, img.shape), 0, 255).astype(np.uint8)
    with_mask = np.diag(gray_world_correction(img, skin_mask=skin).matrix_array)
    assert np.abs(with_mask - 1).max() < 0.02  # background is neutral: no change
    rule = np.diag(gray_world_correction(img).matrix_array)  # Chai & Ngan rule finds the skin
    assert np.abs(rule - 1).max() < 0.02


# ----------------------------------------------------------------------------- real photograph


def test_real_colorchecker_photo():
    rgb, _ = load_image(REAL)
    det = detect_chart(rgb)
    assert det.found, det.reason
    # hand-checked patch centres (tests/data/README.md)
    hand = np.array([[66.3, 73.2], [575.0, 72.1], [64.6, 375.7], [576.3, 374.8]])
    assert np.abs(det.patch_centres[[0, 5, 18, 23]] - hand).max() < 2.0
    # grid corners extrapolated by half a pitch from the hand-checked corner patches
    p1, p6, p19, p24 = hand
    hand_corners = np.array([
        p1 - (p6 - p1) / 10 - (p19 - p1) / 6,
        p6 + (p6 - p1) / 10 - (p24 - p6) / 6,
        p24 + (p24 - p19) / 10 + (p24 - p6) / 6,
        p19 - (p24 - p19) / 10 + (p19 - p1) / 6,
    ])
    assert np.abs(det.corners - hand_corners).max() < 3.0
    corrected, corr = calibrate_image(rgb)
    assert corr.kind == "chart"
    used = np.array(corr.patches_used) - 1
    assert {1, 19, 20} & set(corr.patches_used) == {1}  # light skin and the clipped whites are excluded
    assert corr.delta_e_after["mean"] < 0.5 * corr.delta_e_before["mean"]
    # 9 unclipped patches: too few for the root-polynomial and the tone models (2 patches per term, 4 greys), so
    # a 3x3; leave-one-out is far above the in-sample error on this edited photo, and the warning says so
    assert corr.method == "linear3x3" and set(corr.models_loo) == {"gain", "linear3x3"}
    assert corr.delta_e_loo["mean"] > corr.delta_e_after["mean"] + 1.0
    assert corr.warning.startswith("chart does not match the reference") and corr.delta_e_loo["mean"] > 4.0
    de_before, _, _ = chart_delta_e(rgb, det)
    de_after, _, _ = chart_delta_e(corrected, det)
    assert de_after[used].mean() < 0.5 * de_before[used].mean()


# ----------------------------------------------------------------------------- synthetic phantoms


# The phantom's chart is rendered from BabelColor-average reflectance spectra (charts made before
# November 2014), not from X-Rite's post-2014 values; like a lab that measured its own chart, the
# calibrator is given that chart's D65 colours as ``reference``.  Casts and exposures: the skin and
# the chart's light patches must not clip (tungsten A has a red/green ratio of 2.2 and clips the
# skin's red channel from exposure 1.0; F11 clips the orange/yellow/white patches at 1.3).
SYNTH_CASES = [("A", 0.5), ("A", 0.7), ("D75", 0.7), ("D75", 1.3), ("F11", 0.7), ("F11", 1.0)]


@pytest.fixture(scope="module")
def synth():
    return pytest.importorskip("skinimg.phantom")


@pytest.fixture(scope="module")
def skin_d65(synth):
    ph = synth.render_phantom(synth.PhantomSpec(seed=3, chart=True, illuminant="D65"))
    return ph


@pytest.mark.parametrize("illuminant, exposure", SYNTH_CASES)
def test_synthetic_phantom_chart_and_skin(synth, skin_d65, illuminant, exposure):
    spec = synth.PhantomSpec(seed=3, chart=True, illuminant=illuminant, exposure=exposure)
    ph = synth.render_phantom(spec)
    reference = tuple(map(tuple, synth.render_chart_patches("D65").astype(float)))
    params = CalibrationParams(reference=reference)
    det = detect_chart(ph.image, params=params)
    assert det.found, det.reason
    assert np.abs(det.patch_centres - np.array(ph.truth["chart"]["patch_centres"])).max() < 1.5
    corrected, corr = calibrate_image(ph.image, params=params)
    assert corr.kind == "chart" and corr.method in corr.models_loo and corr.warning is None
    # chart re-measured in the corrected image, on the patches used (clipped ones cannot be fixed)
    from skinimg.calibrate.detect import _sample_cells

    meas, _ = _sample_cells(corrected, det.homography, 0.2, params)
    used = np.array(corr.patches_used) - 1
    ref = np.asarray(reference)
    de_chart = delta_e_2000(linear_rgb_to_lab(meas[used].astype(np.float32)), linear_rgb_to_lab(ref[used].astype(np.float32)))
    assert de_chart.mean() <= 2.0
    assert len(used) >= 16
    # skin: mean colour over the true skin (minus the chart and clipped pixels) vs the D65 photo
    cmask = chart_mask(ph.image.shape, corr)
    assert not (cmask & ph.mask).any()
    assert (cmask & (ph.labels == synth.LABELS["chart"])).sum() > 0.97 * (ph.labels == synth.LABELS["chart"]).sum()
    m = ph.mask & skin_d65.mask & ~(ph.image >= 250).any(axis=2)
    target = linear_rgb_to_lab(srgb_to_linear(skin_d65.image)[m].mean(axis=0))
    raw = delta_e_2000(linear_rgb_to_lab(srgb_to_linear(ph.image)[m].mean(axis=0)), target)
    fixed = delta_e_2000(linear_rgb_to_lab(srgb_to_linear(corrected)[m].mean(axis=0)), target)
    assert raw > 4.0  # the cast / exposure change was real
    assert fixed <= 3.0, (raw, fixed)


# ----------------------------------------------------------------------------- CLI


def test_cli_calibrate(tmp_path):
    src = tmp_path / "in"
    (src / "visit").mkdir(parents=True)
    img, _ = draw_chart(cast=(1.3, 1.0, 0.6))
    write_png(src / "visit" / "chart.png", img)
    img16, _ = draw_chart(cast=(0.8, 1.0, 1.2), dtype=np.uint16)
    write_png(src / "chart16.png", img16)
    rng = np.random.default_rng(0)
    write_png(src / "nochart.png", (cv2.GaussianBlur(rng.random((120, 160, 3)), (0, 0), 3) * 255).astype(np.uint8))
    (src / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["calibrate", str(src), "--out", str(out)], prog_name="skinimg")
    assert r.exit_code == 2, r.output
    lines = r.stdout.strip().splitlines()
    assert "nochart.png: no chart found; used gray_world" in lines
    assert sum(1 for ln in lines if ln.startswith("nochart.png")) == 1
    assert any(ln.startswith("visit/chart.png: chart found; CIEDE2000 mean") for ln in lines)
    assert "skinimg: broken.jpg:" in r.stderr
    with open(out / "calibrate.csv", newline="") as fh:
        rows = {row["image"]: row for row in csv.DictReader(fh)}
    assert list(rows["nochart.png"].keys()) == list(CSV_COLUMNS)
    assert rows["broken.jpg"]["status"] == "error" and rows["broken.jpg"]["error"]
    assert rows["visit/chart.png"]["kind"] == "chart" and rows["visit/chart.png"]["method"] == "finlayson2015"
    assert float(rows["visit/chart.png"]["delta_e_after_mean"]) < 1.0 < float(rows["visit/chart.png"]["delta_e_before_mean"])
    assert rows["nochart.png"]["kind"] == "gray_world" and rows["nochart.png"]["delta_e_after_mean"] == ""
    out_img, meta = load_image(out / "calibrated" / "visit" / "chart.png")
    assert meta.bit_depth == 8 and out_img.shape == img.shape
    assert load_image(out / "calibrated" / "chart16.png")[1].bit_depth == 16
    saved = Correction.from_dict(json.loads((out / "calibration" / "visit" / "chart.json").read_text()))
    assert saved.kind == "chart" and saved.image == "visit/chart.png" and len(saved.corners) == 4
    assert np.array_equal(apply_correction(img, saved), out_img)
    assert not (out / "calibrated" / "broken.png").exists()

    r = CliRunner().invoke(cli, ["calibrate", str(src / "nochart.png"), "--out", str(out), "--require-chart"], prog_name="skinimg")
    assert r.exit_code == 2 and "nochart.png: no chart found" in r.stderr
    r = CliRunner().invoke(cli, ["calibrate", str(src / "nochart.png"), "--out", str(out), "--white", "1,2,3"], prog_name="skinimg")
    assert r.exit_code == 2 and "x,y,w,h" in r.output
    r = CliRunner().invoke(
        cli, ["calibrate", str(src / "nochart.png"), "--out", str(out / "w"), "--white", "10,10,20,20", "--method", "linear3x3"],
        prog_name="skinimg",
    )
    assert r.exit_code == 0 and r.stdout.strip() == "nochart.png: no chart found; used white_patch"


def test_fallback_none_leaves_the_photo_and_says_so(rgb8):
    out, corr = calibrate_image(rgb8, params=CalibrationParams(fallback="none"))
    assert np.array_equal(out, rgb8) and out is not rgb8
    assert corr.kind == "none" and corr.notes[0].startswith("no chart found") and "left as it is" in corr.notes[0]


def test_exposure_gain_is_exact_for_a_scaled_chart():
    from skinimg.calibrate.fit import _exposure_gain

    rng = np.random.default_rng(1)
    r = rng.uniform(0.03, 0.8, size=(24, 3))
    k, de = _exposure_gain(r / 1.25, r)
    assert k == pytest.approx(1.25) and de.max() < 1e-6
    k, de = _exposure_gain(r * np.array([1.0, 0.8, 0.6]), r)  # a colour cast is not a gain
    assert de.mean() > 3


def test_exposure_only_chart_gets_one_gain_and_dark_skin_haemoglobin_holds(synth):
    """The reference light at another exposure: calibrate applies only an achromatic gain (a full fit shifted the
    skin's hue: haemoglobin moved by 30-237 % between x0.8 and x1.25 on brown and dark phantoms), so chromaticity
    is kept and brightness becomes absolute, and even the per-photo chromophore branch of dark skin holds."""
    from skinimg import indices as I

    hb, branch = {}, set()
    for g in (0.8, 1.0, 1.25):
        ph = synth.render_phantom(synth.PhantomSpec(melanin=0.3, hemoglobin=0.06, seed=8, size=(480, 640),
                                                    exposure=g, chart=True))
        corrected, corr = calibrate_image(ph.image, mode="chart")
        if g != 1.0:
            assert corr.method == "gain", corr.notes
            k = np.asarray(corr.matrix)
            assert np.allclose(k, k[0, 0] * np.eye(3)) and k[0, 0] == pytest.approx(1 / g, rel=0.03)
        row = I.measure(corrected, ph.mask, return_maps=False)[0]
        hb[g] = row["hemoglobin"]
        branch.add(row["chromophore_method"])
    assert len(branch) == 1
    for g in (0.8, 1.25):
        assert abs(hb[g] / hb[1.0] - 1) < 0.015, hb

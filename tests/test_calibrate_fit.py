"""Tone curve + matrix fitting, leave-one-patch-out errors, the model choice and its safeguards, the chart-quality
warning, and ``--reference`` files (issue 24)."""

from __future__ import annotations

import csv
import json
import re
import warnings

import numpy as np
import pytest
from click.testing import CliRunner

from skinimg.calibrate import (CalibrationParams, ChartDetection, Correction, apply_correction, chart_correction,
                               choose_model, fit_tone_curve, apply_tone_curve, load_reference, reference_chart)
from skinimg.calibrate.reference import ILLUMINANTS_XY, bradford_matrix
from skinimg.calibrate.select import evaluate_model, fit_model
from skinimg.cli import cli
from skinimg.color import delta_e_2000, linear_rgb_to_lab, linear_to_srgb, srgb_to_linear
from skinimg.errors import SkinImgError
from skinimg.io import write_png
from skinimg.phantom import render_chart_photo, tone_encode

REF = reference_chart()[1]


@pytest.fixture(scope="module")
def colour():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import colour as c
    return c


def printed_patches(seed: int, *, gamma=(2.4, 1.7, 2.1), black=(0.08, 0.05, 0.07), sigma=1.0, crosstalk=0.12):
    """Measured linear RGB (24, 3) of a printed chart photographed with a tinted tone curve: per-patch CIELAB print
    errors (``sigma``), positive sensor cross-talk, a linear black level then a per-channel gamma, 8-bit."""
    from skinimg.color import lab_to_linear_rgb

    rng = np.random.default_rng(seed)
    lab = linear_rgb_to_lab(np.clip(REF, 0, None).astype(np.float32)) + rng.normal(0, sigma, (24, 3)).astype(np.float32)
    printed = np.clip(lab_to_linear_rgb(lab), 0, 1).astype(np.float64)
    m = np.eye(3) + crosstalk * (1 - np.eye(3))
    cam = printed @ (m / m.sum(axis=1, keepdims=True)).T * 0.85
    enc = tone_encode(cam, {"curve": "gamma", "gamma": list(gamma), "black": list(black)})
    return srgb_to_linear(np.rint(enc * 255).astype(np.uint8)).astype(np.float64)


def detection_of(patch_rgb) -> ChartDetection:
    corners = np.array([[0.0, 0.0], [60.0, 0.0], [60.0, 40.0], [0.0, 40.0]])
    return ChartDetection(found=True, corners=corners, patch_rgb=np.asarray(patch_rgb, float),
                          clipped=np.zeros(24, bool), score=1.0, n_detected=24)


# ----------------------------------------------------------------------------- tone curve


def test_tone_curve_recovers_a_known_curve_and_is_monotone():
    rng = np.random.default_rng(0)
    true = np.array([[0.9, 1.35, -0.012], [1.1, 0.8, 0.004], [0.75, 2.1, -0.03]])  # (a, g, o) per channel
    ref = REF[18:24]
    # the measured greys that this curve maps onto the reference: m = ((r - o) / a) ** (1 / g)
    m = ((ref - true[:, 2]) / true[:, 0]) ** (1 / true[:, 1])
    fit = fit_tone_curve(m, ref)
    np.testing.assert_allclose(fit[:, 1], true[:, 1], rtol=0.006)  # the exponent grid steps by 0.58 %
    np.testing.assert_allclose(apply_tone_curve(fit, m), ref, rtol=0.01, atol=5e-4)
    x = np.sort(rng.random((200, 3)), axis=0)
    assert np.all(np.diff(apply_tone_curve(fit, x), axis=0) >= 0)
    # a "ramp" that gets darker as the reference gets lighter has no increasing fit
    assert fit_tone_curve(m[::-1], ref) is None
    with pytest.raises(ValueError):
        fit_tone_curve(m[:2], ref[:2])


def test_tone_model_fits_a_printed_chart_with_a_tinted_tone_curve():
    """The issue's case: printed greys neither grey nor on the sRGB curve (B/G rising to black, black far too light).
    A tone model brings leave-one-out under 3; the root-polynomial alone (today's model) cannot."""
    m = printed_patches(3)
    lab = linear_rgb_to_lab(m[18:24].astype(np.float32))
    assert lab[-1, 0] > 28  # black reads far too light (reference L* 20.6)
    assert m[23, 2] / m[23, 1] > 1.1 * m[18, 2] / m[18, 1]  # B/G rises from white to black
    corr = chart_correction(detection_of(m))
    assert corr.method.startswith("tone_"), corr.models_loo
    assert corr.delta_e_before["mean"] > 8
    assert corr.delta_e_loo["mean"] <= 3.0
    assert corr.delta_e_after["mean"] <= corr.delta_e_loo["mean"]
    assert corr.models_loo["finlayson2015"] > 2 * corr.delta_e_loo["mean"]
    assert corr.skin_delta_e["loo"] < corr.skin_delta_e["before"] and corr.warning is None
    assert len(corr.tone) == 3 and corr.terms == ["R", "G", "B"]


def test_leave_one_out_is_a_refit_without_the_patch():
    m = printed_patches(5)
    neutral = np.zeros(24, bool)
    neutral[18:] = True
    model, ins, loo = evaluate_model("linear3x3", m, REF, neutral=neutral)
    for i in (0, 7, 23):  # an independent refit with numpy alone
        keep = np.arange(24) != i
        mat, *_ = np.linalg.lstsq(m[keep], REF[keep], rcond=None)
        pred = np.clip(m[i] @ mat, 0, 1)
        de = delta_e_2000(linear_rgb_to_lab(pred.astype(np.float32)), linear_rgb_to_lab(REF[i].astype(np.float32)))
        assert loo[i] == pytest.approx(float(de), abs=1e-3)
    assert loo.mean() > ins.mean()
    # the tone models refit the curve when a neutral patch is left out: its LOO error differs from in-sample
    _, ins_t, loo_t = evaluate_model("tone_linear3x3", m, REF, neutral=neutral)
    assert loo_t[23] > ins_t[23]


def test_grey_preserving_matrix_keeps_greys_grey():
    m = printed_patches(7)
    neutral = np.zeros(24, bool)
    neutral[18:] = True
    model = fit_model("tone_grey3x3", m, REF, neutral=neutral)
    np.testing.assert_allclose(model.matrix.sum(axis=1), 1.0, atol=1e-12)
    grey = np.full((1, 3), 0.3)
    np.testing.assert_allclose(model.matrix @ grey[0], grey[0], atol=1e-12)


# ----------------------------------------------------------------------------- choice and safeguards


def test_choice_prefers_the_root_polynomial_when_models_tie():
    """An exact diagonal cast: every model fits (LOO errors within 0.1 of each other), so the preferred one is kept;
    a tinted tone curve makes the tone models win by far more than a standard error."""
    ref = np.clip(REF, 0.001, 1)
    m = ref * np.array([1.3, 1.0, 0.6]) * 0.7
    ch = choose_model(m, ref, np.arange(24))
    assert ch.name == "finlayson2015" and ch.loo.mean() < 0.1, ch.loo_means
    assert max(ch.loo_means[k] for k in ("linear3x3", "tone_linear3x3")) < 0.1
    tinted = choose_model(printed_patches(2), REF, np.arange(24))
    assert tinted.name.startswith("tone_") and tinted.loo_means["finlayson2015"] > tinted.loo.mean() + 1.0
    # reported figures are plain means, whatever the fit weights
    w = np.ones(24)
    w[:2] = 4
    chw = choose_model(m, REF, np.arange(24), weights=w)
    assert chw.loo.mean() == pytest.approx(float(np.mean(chw.loo)))


def test_no_correction_when_every_model_makes_skin_worse():
    """A chart whose skin and grey patches already match but whose other patches are another chart's: every fit
    would move the skin patches away under leave-one-out, so the photo is left as it is, with a warning."""
    rng = np.random.default_rng(1)
    m = REF.copy()
    m[2:18] = rng.uniform(0.02, 0.6, (16, 3))
    corr = chart_correction(detection_of(np.clip(m, 0.001, 1)), params=CalibrationParams(keep_below=0))
    assert corr.method == "none" and np.allclose(corr.matrix, np.eye(3)) and corr.tone is None
    assert any("left as it is" in n for n in corr.notes)
    assert corr.warning and corr.warning.startswith("chart does not match the reference")
    assert "--reference" in corr.warning


def test_chart_quality_warning_on_a_badly_printed_chart():
    m = printed_patches(11, sigma=6.0)
    corr = chart_correction(detection_of(m))
    assert corr.delta_e_loo["mean"] > CalibrationParams().warn_loo
    assert corr.warning.startswith(f"chart does not match the reference (mean ΔE00 {corr.delta_e_after['mean']:.1f} after fit")
    good = chart_correction(detection_of(printed_patches(11, sigma=0.5)))
    assert good.warning is None


def test_explicit_model_is_used_and_reported():
    m = printed_patches(13)
    for method in ("finlayson2015", "tone_finlayson2015", "cheung2004"):
        corr = chart_correction(detection_of(m), params=CalibrationParams(method=method))
        assert corr.method == method and list(corr.models_loo) == [method]
        assert corr.delta_e_loo["mean"] >= corr.delta_e_after["mean"]


# ----------------------------------------------------------------------------- applying a tone model


def test_apply_tone_correction_matches_the_formula_for_every_dtype():
    m = printed_patches(17)
    corr = chart_correction(detection_of(m), params=CalibrationParams(method="tone_linear3x3"))
    rng = np.random.default_rng(2)
    img8 = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    tone, mat = np.array(corr.tone), np.array(corr.matrix)
    lin = srgb_to_linear(img8).astype(np.float64)
    x = tone[:, 0] * lin ** tone[:, 1] + tone[:, 2]
    expect = linear_to_srgb(np.clip(x @ mat.T, 0, 1).astype(np.float32))
    out8 = apply_correction(img8, corr)
    assert np.abs(out8.astype(int) - np.rint(expect * 255)).max() <= 1
    outf = apply_correction(img8.astype(np.float32) / 255, corr)
    assert outf.dtype == np.float32 and np.abs(outf - expect).max() < 2e-4
    out16 = apply_correction(img8.astype(np.uint16) * 257, corr)
    assert np.abs(out16.astype(float) / 65535 - expect).max() < 2e-4
    back = Correction.from_dict(json.loads(json.dumps(corr.to_dict())))
    assert back == corr and np.array_equal(apply_correction(img8, back), out8)


def test_version_1_correction_files_are_still_read():
    old = {"kind": "chart", "method": "linear3x3", "matrix": np.eye(3).tolist(), "terms": ["R", "G", "B"],
           "schema": "skinimg.calibration/1"}
    c = Correction.from_dict(old)
    assert c.tone is None and c.schema == "skinimg.calibration/2"
    with pytest.raises(ValueError):
        Correction.from_dict({**old, "tone": [[1, -1, 0]] * 3})


# ----------------------------------------------------------------------------- --reference files


def _lab_d50():
    from skinimg.io import model_file, read_json_object

    doc = read_json_object(model_file("colorchecker_classic24.json"))
    return [p["lab_d50"] for p in doc["patches"]]


def test_reference_json_and_csv_give_the_published_values(tmp_path):
    lab = _lab_d50()
    (tmp_path / "ref.json").write_text(json.dumps({"illuminant": "D50", "lab": lab}))
    lin, how = load_reference(tmp_path / "ref.json")
    np.testing.assert_allclose(lin, REF, atol=1e-6)
    assert how == "ref.json: CIELAB (D50), Bradford-adapted to D65"
    order = np.random.default_rng(0).permutation(24)
    rows = "\n".join(f"{i + 1},{lab[i][0]},{lab[i][1]},{lab[i][2]}" for i in order)
    (tmp_path / "ref.csv").write_text(f"# illuminant: D50\npatch,L*,a*,b*\n{rows}\n")
    np.testing.assert_allclose(load_reference(tmp_path / "ref.csv")[0], REF, atol=1e-6)
    # sRGB values, 0-255 and patch objects
    srgb = np.rint(linear_to_srgb(np.clip(REF, 0, 1).astype(np.float32)) * 255)
    (tmp_path / "srgb.json").write_text(json.dumps({"patches": [{"srgb": v} for v in srgb.tolist()]}))
    lin2, how2 = load_reference(tmp_path / "srgb.json")
    assert how2.endswith("sRGB (0-255)") and np.abs(lin2 - np.clip(REF, 0, 1)).max() < 0.01


def test_bradford_adaptation_matches_colour_science(colour):
    xyz = np.array([[0.3, 0.4, 0.2], [0.05, 0.04, 0.1]])
    d65 = colour.xy_to_XYZ(np.array([0.3127, 0.3290]))
    for name in ("A", "D50", "F11", "C"):
        ours = xyz @ bradford_matrix(ILLUMINANTS_XY[name]).T
        cs = colour.adaptation.chromatic_adaptation_VonKries(xyz, colour.xy_to_XYZ(np.array(ILLUMINANTS_XY[name])), d65,
                                                             transform="Bradford")
        np.testing.assert_allclose(ours, cs, rtol=1e-9)
    for name, xy in ILLUMINANTS_XY.items():
        if name not in ("D50", "D65"):
            key = {"F2": "FL2", "F7": "FL7", "F11": "FL11"}.get(name, name)
            np.testing.assert_allclose(xy, colour.CCS_ILLUMINANTS["CIE 1931 2 Degree Standard Observer"][key], atol=1e-9)


@pytest.mark.parametrize("content, reason", [
    ('{"lab": [[50, 0, 0]]}', "expected 24 patches of 3 L*a*b* values, got 1 patches"),
    ('{"lab": ' + json.dumps([[50, 0]] * 24) + "}", "got 24 patches of 2 values"),
    ('{"illuminant": "D93", "lab": ' + json.dumps([[50, 0, 0]] * 24) + "}", "unknown illuminant 'D93'"),
    ('{"lab": ' + json.dumps([[150, 0, 0]] * 24) + "}", "L* must be in [0, 100]"),
    ("patch,L,a,b\n1,50,0,0\n", "must hold each patch number 1-24 once"),
    ("x,y\n1,2\n", "needs L,a,b or R,G,B columns"),
    ("{not json", "not valid JSON"),
])
def test_bad_reference_file_is_one_line_error(tmp_path, content, reason):
    p = tmp_path / ("bad.json" if content.startswith("{") else "bad.csv")
    p.write_text(content)
    with pytest.raises(SkinImgError, match=re.escape(reason)) as exc:
        load_reference(p)
    assert "\n" not in str(exc.value) and str(exc.value).startswith(p.name)


@pytest.mark.parametrize("content, reason", [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a JSON or CSV text file (not UTF-8 text)"),
    (b"\x00\x01\x02", "not a JSON or CSV text file (binary content)"),
])
def test_binary_reference_file_is_named_as_such(tmp_path, content, reason):
    """A binary file given as --reference (a photo, a spreadsheet) is not reported as a CSV without rows."""
    p = tmp_path / "chart.xlsx"
    p.write_bytes(content)
    with pytest.raises(SkinImgError, match=re.escape(reason)) as exc:
        load_reference(p)
    assert "\n" not in str(exc.value) and str(exc.value).startswith(p.name)


def test_cli_reference_and_new_columns(tmp_path):
    """A chart printed with other colours: with the published values it warns; with its own measured values given
    by --reference the fit is good, and the file is recorded."""
    shot = render_chart_photo(21, size_px=60, rot=30, tilt=20, curve="srgb", illuminant="D65", shaded=False,
                              print_sigma=5.0, gradient=0.0, clutter=0, long_side=1280)
    write_png(tmp_path / "in" / "chart.png", shot.image)
    lab = linear_rgb_to_lab(shot.colours)
    (tmp_path / "mine.csv").write_text("# illuminant: D65\nL,a,b\n" + "\n".join(",".join(f"{v:.3f}" for v in row) for row in lab))
    r0 = CliRunner().invoke(cli, ["calibrate", str(tmp_path / "in"), "--out", str(tmp_path / "a")])
    assert r0.exit_code == 0, r0.output
    assert "skinimg: chart.png: chart does not match the reference" in r0.stderr
    r1 = CliRunner().invoke(cli, ["calibrate", str(tmp_path / "in"), "--out", str(tmp_path / "b"),
                                  "--reference", str(tmp_path / "mine.csv")])
    assert r1.exit_code == 0 and "does not match" not in r1.stderr, r1.output
    with open(tmp_path / "b" / "calibrate.csv", newline="") as fh:
        row = next(csv.DictReader(fh))
    old = ["image", "status", "error", "kind", "method", "delta_e_before_mean", "delta_e_before_max",
           "delta_e_after_mean", "delta_e_after_max"]
    assert list(row)[:9] == old  # new columns are added after the old ones
    assert float(row["delta_e_loo_mean"]) < 2.0 <= float(row["delta_e_before_mean"])
    assert float(row["delta_e_after_mean"]) <= float(row["delta_e_loo_mean"]) and row["warning"] == ""
    assert float(row["skin_delta_e_loo"]) < float(row["skin_delta_e_before"])
    saved = json.loads((tmp_path / "b" / "calibration" / "chart.json").read_text())
    assert saved["params"]["reference_source"] == f"{tmp_path / 'mine.csv'}: CIELAB (D65)"
    assert saved["delta_e_loo"]["mean"] == pytest.approx(float(row["delta_e_loo_mean"]))
    bad = CliRunner().invoke(cli, ["calibrate", str(tmp_path / "in"), "--out", str(tmp_path / "c"), "--reference",
                                   str(tmp_path / "missing.json")])
    assert bad.exit_code != 0 and "missing.json" in bad.output


def test_reference_reaches_analyze_and_pipelines(tmp_path, monkeypatch):
    """The same calibration settings everywhere: analyze takes --chart/--correction/--reference, a pipeline's
    calibrate stage takes reference (read once, hashed by its values, a bad file named)."""
    from skinimg.batch import make_plan, parse_pipeline

    (tmp_path / "ref.json").write_text(json.dumps({"illuminant": "D50", "lab": _lab_d50()}))
    shot = render_chart_photo(23, size_px=50, rot=200, tilt=30, curve="srgb", illuminant="A", shaded=False,
                              gradient=0.0, clutter=0, long_side=1024)
    write_png(tmp_path / "in" / "c.png", shot.image)
    r = CliRunner().invoke(cli, ["analyze", str(tmp_path / "in"), "--out", str(tmp_path / "a"), "--calibrate", "chart",
                                 "--reference", str(tmp_path / "ref.json"), "--correction", "tone_linear3x3", "--no-maps"])
    assert r.exit_code in (0, 2), r.output  # 2: a chart-only photo may have no skin
    saved = json.loads((tmp_path / "a" / "calibration" / "c.json").read_text())
    assert saved["method"] in ("tone_linear3x3", "none") and saved["params"]["method"] == "tone_linear3x3"
    assert saved["params"]["reference_source"].endswith("CIELAB (D50), Bradford-adapted to D65")
    np.testing.assert_allclose(saved["params"]["reference"], REF, atol=1e-6)
    monkeypatch.chdir(tmp_path)
    base = '[pipeline]\nstages = ["calibrate", "analyze"]\n'
    plain = make_plan(parse_pipeline(base))
    with_ref = make_plan(parse_pipeline(base + '[calibrate]\nreference = "ref.json"\n'))
    assert plain.calibration.reference is None and with_ref.calibration.reference_source.startswith("ref.json: CIELAB")
    np.testing.assert_allclose(with_ref.calibration.reference, REF, atol=1e-6)
    assert with_ref.row_hash != plain.row_hash and with_ref.job_hash != plain.job_hash
    with pytest.raises(SkinImgError, match="missing.json"):
        make_plan(parse_pipeline(base + '[calibrate]\nreference = "missing.json"\n'))

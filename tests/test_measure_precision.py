"""Readings free of the pipeline's own 8-bit rounding, and ensemble members read only where they are conditioned.

Uniform skin (the smooth phantoms of ``skinimg.phantom.smooth``) rounds the same way at every pixel, so a
rounding to 8 bits that the pipeline adds (the gained AFTER of ``compare``, the smoothed skin of every reading)
biases the mean instead of averaging out.  See ``docs/comparison.md`` (precision of a reading).
"""

from __future__ import annotations

import numpy as np
import pytest

from skinimg import indices as I
from skinimg.indices import kernels as IK
from skinimg.phantom import smooth_pairs
from skinimg.session import CompareParams, compare_arrays
from skinimg.session.lighting import _apply_gain
from skinimg.session.model_range import MEMBER_SKIN_MIN, add_model_range

GAINS = (0.900, 0.910, 0.915, 0.924, 0.940)


@pytest.fixture(scope="module")
def tan_retake():
    """Development pair s3039: tan skin, an unchanged retake (exposure x1.08, JPEG 85 / 90)."""
    pair = smooth_pairs(40, 3000)[39]
    assert pair.tone == "tan" and pair.true_change_pct == 0.0
    ib, mb, ia, ma, _ = pair.render()
    return ib, mb, ia, ma


def _hb_mean(rgb, mask):
    return float(np.nanmean(I.compute_maps(rgb, mask)["hemoglobin"][mask]))


def test_unit_centroids_are_the_mean_colour_of_each_codes_pixels(tan_retake):
    _, _, rgb, mask = tan_retake
    params = I.IndexParams()
    codes, top, linear = IK._smooth_skin(rgb, mask, params, precise=True)
    np.testing.assert_array_equal(codes, IK._smooth_skin(rgb, mask, params)[0])  # the same codes as before
    units, weights, pos = IK._skin_colours(codes, mask)
    cen = IK._unit_centroids(units, weights, pos, linear)
    # reference: the mean linear value of each unit's pixels, by a plain per-unit loop over a few units
    from skinimg.color import linear_to_srgb

    for u in np.linspace(0, len(units) - 1, 25).astype(int):
        ref = linear_to_srgb(linear[pos == u].astype(np.float64).mean(axis=0) / 65535.0)
        # (up to the 16-bit rounding of the code's own linear value: the centroid keeps the code's exact colour)
        np.testing.assert_allclose(cen[u], ref, atol=4e-5)
        assert np.all(np.abs(cen[u] * 255.0 - units[u]) <= 0.5 + 1e-6)  # within the code's rounding interval
    # nothing averaged (no smoothing): every unit reads at its own code exactly
    flat = I.IndexParams(smoothing_sigma=0)
    codes0, _, lin0 = IK._smooth_skin(rgb, mask, flat, precise=True)
    u0, w0, p0 = IK._skin_colours(codes0, mask)
    np.testing.assert_allclose(IK._unit_centroids(u0, w0, p0, lin0) * 255.0, u0, atol=1e-3)


def test_a_gain_does_not_move_haemoglobin_through_8_bit_rounding(tan_retake):
    """``compare`` multiplies AFTER by its lighting gain; kept at 16 bits, gains 1 % apart read the same haemoglobin
    (re-rounded to 8 bits they read +0.8 to +5.4 % apart on this pair's uniform skin)."""
    _, _, rgb, mask = tan_retake
    precise = [_hb_mean(_apply_gain(rgb, np.full(3, g, np.float32), precise=True), mask) for g in GAINS]
    rounded = [_hb_mean(_apply_gain(rgb, np.full(3, g, np.float32)), mask) for g in GAINS]
    spread = lambda v: (max(v) - min(v)) / np.mean(v)  # noqa: E731
    assert spread(precise) < 0.001, precise
    assert spread(rounded) > 0.01, rounded  # what the 16-bit gain removes (this pair, these gains)
    assert _apply_gain(rgb, np.ones(3, np.float32), precise=True).dtype == np.uint16


def test_a_16_bit_photo_reads_as_its_pixels_do(tan_retake):
    """16-bit photos are grouped into distinct 8-bit codes read at their pixels' mean colour: the mean equals the
    per-pixel (float) reading to first order."""
    _, _, rgb, mask = tan_retake
    img16 = _apply_gain(rgb, np.full(3, 0.93, np.float32), precise=True)
    as_float = img16.astype(np.float32) / 65535.0
    m16 = I.compute_maps(img16, mask)
    mf = I.compute_maps(as_float, mask)
    for name, tol in (("hemoglobin", 2e-3), ("melanin", 2e-3), ("erythema_index", 2e-3), ("l_star", 1e-4)):
        a, b = np.nanmean(m16[name][mask]), np.nanmean(mf[name][mask])
        assert abs(a - b) <= tol * abs(b), (name, a, b)


def _reads(cond_b, cond_a, hb_b, hb_a):
    maps = lambda hb, cond: {"hemoglobin": hb, "melanin": np.full_like(hb, 0.3), "conditioning_map": cond}  # noqa
    return {"before": {"good": maps(hb_b, np.ones_like(hb_b)), "odd": maps(hb_b, cond_b)},
            "after": {"good": maps(hb_a, np.ones_like(hb_a)), "odd": maps(hb_a, cond_a)}}


def test_a_member_reads_only_the_pixels_it_is_conditioned_at():
    rng = np.random.default_rng(0)
    n = 10_000
    hb_b = (0.015 + 0.001 * rng.standard_normal(n)).astype(np.float32)
    hb_a = hb_b * np.float32(0.85)  # -15 %
    cond = np.ones(n, np.float32)
    fold = rng.random(n) < 0.13  # past the member's fold in AFTER: its root jumps to 3x the blood there
    cond_a = np.where(fold, np.float32(0.003), cond)
    hb_a_odd = np.where(fold, hb_a * 3, hb_a)
    reads = _reads(cond, cond_a, hb_b, hb_a)
    reads["after"]["odd"]["hemoglobin"] = hb_a_odd
    metrics = {"hemoglobin": {"before": float(hb_b.mean())}, "melanin": {"before": 0.3}}
    sel = np.ones(n, bool)
    add_model_range(reads, metrics, sel)
    by = metrics["hemoglobin"]["delta_pct_by_model"]
    assert by["good"] == pytest.approx(-15.0, abs=1e-3)
    # the whole skin's mean would read +11 %: the conditioned pixels alone read the change
    assert by["odd"] == pytest.approx(-15.0, abs=0.05)
    # unaligned reading (each photo's own pixels): the same
    add_model_range(reads, metrics, sel, sel)
    assert metrics["hemoglobin"]["delta_pct_by_model"]["odd"] == pytest.approx(-15.0, abs=0.3)
    # conditioned on under MEMBER_SKIN_MIN of the skin: the member takes no part
    reads["after"]["odd"]["conditioning_map"] = np.where(rng.random(n) < 1.0 - MEMBER_SKIN_MIN + 0.05,
                                                         np.float32(0.003), cond)
    add_model_range(reads, metrics, sel)
    assert metrics["hemoglobin"]["delta_pct_by_model"]["odd"] is None
    assert metrics["hemoglobin"]["delta_pct_model_range"] == [pytest.approx(-15.0, abs=1e-3)] * 2


def test_very_light_pair_every_member_reads_the_decrease():
    """Development pair s130 (very light, -15 % blood): the member ``km3_r12`` read +10 % over its whole mask
    (13 % of the skin past its fold); over the skin it is conditioned at it reads a decrease like every member."""
    pair = smooth_pairs(31, 100)[30]
    assert pair.tone == "very_light" and pair.true_change_pct == -15.0
    ib, mb, ia, ma, _ = pair.render()
    doc, _ = compare_arrays(ib, ia, before_mask=mb, after_mask=ma, params=CompareParams(calibrate="none"))
    m = doc["metrics"]["hemoglobin"]
    lo, hi = m["delta_pct_model_range"]
    assert hi < 0, m["delta_pct_by_model"]
    assert m["verdict"] == "improved"


def test_a_16_bit_highlight_is_clipped_as_at_8_bits(tan_retake):
    """Grouped into 8-bit codes, a 16-bit photo counts as clipped exactly the skin with a channel at 65535: a channel
    at 65534 is not clipped (it would round to code 255)."""
    _, _, rgb, mask = tan_retake
    img16 = rgb.astype(np.uint16) * 257
    ys, xs = np.nonzero(mask)
    y0, x0 = int(np.median(ys)), int(np.median(xs))
    img16[y0 - 10:y0 + 10, x0 - 15:x0 + 15, 0] = 65535  # a highlight: red channel clipped
    img16[y0 + 12:y0 + 22, x0 - 15:x0 + 15] = 65534  # nearly white, not clipped
    clipped = mask & (img16 >= 65535).any(axis=2)
    row, maps = I.measure(img16, mask)
    assert row["saturated_fraction"] == pytest.approx(np.count_nonzero(clipped) / np.count_nonzero(mask), abs=1e-12)
    assert np.isnan(maps["hemoglobin"][clipped]).all()
    near_white = mask.copy()
    near_white[:] = False
    near_white[y0 + 12:y0 + 22, x0 - 15:x0 + 15] = True
    assert np.isfinite(maps["hemoglobin"][near_white & mask]).all()


@pytest.mark.parametrize("rng, why", [([-30.0, 9.6], "disagree on its sign"),
                                      ([8.5, 30.5], "read the opposite sign"),
                                      ([-20.0, -0.8], "within the MDC")])
def test_a_change_the_models_do_not_all_read_says_why_it_is_not_called(rng, why):
    """The central reading alone would call these (-20 %, CI off 0, beyond the MDC); the ensemble does not, and the
    verdict says why (``verdict_note``)."""
    from dataclasses import replace

    from skinimg.session.stats import _add_verdicts

    def doc(model_range):
        hb = {"before": 0.02, "after": 0.016, "delta": -0.004, "delta_pct": -20.0, "ci95": [-0.0045, -0.0035],
              "delta_pct_model_range": model_range}
        return {"lighting": {"method": "gain:chart"}, "metrics": {"hemoglobin": hb}}

    params = replace(CompareParams(), crosstalk_allowance=False, mdc=(("hemoglobin", 0.0005),))
    m = _add_verdicts(doc(rng), params)["metrics"]["hemoglobin"]
    assert m["verdict"] == "no_change"
    assert m["verdict_note"].startswith("not called: ") and why in m["verdict_note"], m["verdict_note"]
    assert f"{rng[0]:+.1f} to {rng[1]:+.1f} %" in m["verdict_note"]
    called = _add_verdicts(doc([-30.0, -12.0]), params)["metrics"]["hemoglobin"]  # every model reads a decrease
    assert called["verdict"] == "improved" and "verdict_note" not in called
    assert "verdict_note" not in _add_verdicts(doc(None), params)["metrics"]["hemoglobin"]


def test_a_percentage_of_a_level_within_the_mdc_of_zero_is_marked_not_meaningful():
    """The melanin of a light forearm reads about 0 (-0.0024 -> +0.0048: "+301 %"); |before| is within its MDC, so
    ``delta_pct_note`` says the percentage means nothing, while the verdict and the numbers stay as they were.  A level
    just beyond the MDC, and haemoglobin at a typical level, get no note."""
    from dataclasses import replace

    from skinimg.session.stats import _add_verdicts

    def doc(mel_before):
        mel = {"before": mel_before, "after": mel_before + 0.0071, "delta": 0.0071,
               "delta_pct": 100 * 0.0071 / abs(mel_before), "ci95": [0.0070, 0.0072]}
        hb = {"before": 0.0165, "after": 0.0126, "delta": -0.0039, "delta_pct": -23.7, "ci95": [-0.0040, -0.0038]}
        return {"lighting": {"method": "gain:chart"}, "metrics": {"melanin": mel, "hemoglobin": hb}}

    params = replace(CompareParams(), crosstalk_allowance=False, mdc=(("melanin", 0.0103), ("hemoglobin", 0.0002)))
    out = _add_verdicts(doc(-0.0024), params)["metrics"]
    mel, hb = out["melanin"], out["hemoglobin"]
    assert mel["delta_pct"] == pytest.approx(295.833, abs=1e-3)  # still written: a public column
    assert mel["delta_pct_note"].startswith("not meaningful: the BEFORE level (-0.0024) is within the MDC (0.0103)")
    assert mel["verdict"] == "no_change" and hb["verdict"] == "improved" and "delta_pct_note" not in hb
    assert "delta_pct_note" not in _add_verdicts(doc(0.0104), params)["metrics"]["melanin"]
    area = params.mdc + (("red_area_fraction", 0.0017),)  # a zero area has no percentage at all: nothing to mark
    zero = {"before": 0.0, "after": 0.0, "delta": 0.0, "delta_pct": None, "ci95": [0.0, 0.0]}
    d = {"lighting": {"method": "gain:chart"}, "metrics": {"red_area_fraction": zero}}
    assert "delta_pct_note" not in _add_verdicts(d, replace(params, mdc=area))["metrics"]["red_area_fraction"]

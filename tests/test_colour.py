"""The colour core against colour-science (test-only reference) and analytic values."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from skinimg import color as C

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import colour as cs  # colour-science


def _edge_colours():
    prim = np.array(
        [[0, 0, 0], [1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1], [1, 0, 1], [0.5, 0.5, 0.5],
         [0.04045, 0.04045, 0.04045], [0.0031308, 0.5, 0.999]],
        dtype=np.float64,
    )
    return prim


def test_srgb_decode_matches_colour_science_float(rng):
    x = np.concatenate([_edge_colours().ravel(), rng.random(5000)])
    ours = C.srgb_to_linear(x.astype(np.float32))
    ref = cs.cctf_decoding(x, function="sRGB")
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, atol=2e-7, rtol=2e-6)


@pytest.mark.parametrize("dtype,maxv", [(np.uint8, 255), (np.uint16, 65535)])
def test_srgb_decode_lut_is_exact_for_integers(dtype, maxv):
    codes = np.arange(maxv + 1, dtype=dtype)
    ours = C.srgb_to_linear(codes)
    ref = cs.cctf_decoding(codes / maxv, function="sRGB")
    np.testing.assert_allclose(ours, ref, atol=1e-7, rtol=1e-6)
    assert ours[0] == 0.0 and ours[-1] == 1.0


def test_srgb_round_trip_and_encoding_reference(rng):
    lin = rng.random((100, 3)).astype(np.float32)
    enc = C.linear_to_srgb(lin)
    np.testing.assert_allclose(enc, cs.cctf_encoding(lin.astype(np.float64), function="sRGB"), atol=2e-6)
    np.testing.assert_allclose(C.srgb_to_linear(enc), lin, atol=2e-6)
    codes = np.arange(256, dtype=np.uint8)
    assert np.array_equal(C.linear_to_srgb_uint8(C.srgb_to_linear(codes)), codes)


def _cs_lab_from_srgb(x01):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cs.XYZ_to_Lab(cs.sRGB_to_XYZ(x01))


@pytest.mark.parametrize("dtype,maxv", [(np.uint8, 255), (np.uint16, 65535), (np.float32, 1.0)])
def test_rgb_to_lab_matches_colour_science(rng, dtype, maxv):
    """Random and edge colours, 8-bit, 16-bit and float input: within 1e-3 in Lab."""
    edge = _edge_colours()
    if dtype == np.float32:
        x = np.concatenate([edge, rng.random((4000, 3))]).astype(np.float32)
        x01 = x.astype(np.float64)
    else:
        x = np.concatenate([np.rint(edge * maxv), rng.integers(0, maxv + 1, size=(4000, 3))]).astype(dtype)
        x01 = x / maxv
    ours = C.rgb_to_lab(x)
    ref = _cs_lab_from_srgb(x01)
    assert ours.dtype == np.float32 and ours.shape == x.shape
    np.testing.assert_allclose(ours, ref, atol=1e-3)


def test_lab_known_values():
    lab = C.rgb_to_lab(np.array([[0, 0, 0], [255, 255, 255]], dtype=np.uint8))
    np.testing.assert_allclose(lab[0], [0, 0, 0], atol=1e-4)
    # The IEC matrix maps white to (0.9505, 1, 1.089), a hair off the D65 white: a*, b* ~ 1e-2.
    np.testing.assert_allclose(lab[1], [100.0, 0.0077, 0.0035], atol=2e-3)


def test_lab_nd_input_same_as_flat(rng):
    x = rng.integers(0, 256, size=(4, 5, 6, 3), dtype=np.uint8)
    np.testing.assert_array_equal(C.rgb_to_lab(x).reshape(-1, 3), C.rgb_to_lab(x.reshape(-1, 3)))


def test_lab_xyz_round_trip(rng):
    lab = np.stack([rng.uniform(1, 99, 500), rng.uniform(-60, 60, 500), rng.uniform(-60, 60, 500)], -1)
    back = C.xyz_to_lab(C.lab_to_xyz(lab))
    np.testing.assert_allclose(back, lab, atol=2e-3)
    lin = rng.random((500, 3))
    np.testing.assert_allclose(C.lab_to_linear_rgb(C.linear_rgb_to_lab(lin)), lin, atol=1e-4)


def test_xyz_to_lab_matches_colour_science(rng):
    xyz = rng.random((1000, 3)) * [0.95, 1.0, 1.09]
    np.testing.assert_allclose(C.xyz_to_lab(xyz), cs.XYZ_to_Lab(xyz), atol=1e-3)


def test_optical_density():
    od = C.optical_density(np.array([1.0, 0.1, 0.01, 0.0, -0.5]))
    np.testing.assert_allclose(od, [0.0, 1.0, 2.0, 4.0, 4.0], atol=1e-6)
    codes = np.arange(256, dtype=np.uint8)
    np.testing.assert_allclose(C.rgb_to_optical_density(codes), C.optical_density(C.srgb_to_linear(codes)), atol=1e-6)
    codes16 = np.array([0, 1, 1000, 65535], dtype=np.uint16)
    np.testing.assert_allclose(C.rgb_to_optical_density(codes16), C.optical_density(C.srgb_to_linear(codes16)), atol=1e-6)


def test_optical_density_gain_is_additive(rng):
    """A linear exposure gain g adds -log10(g) to every channel's OD (the basis of shading removal)."""
    lin = rng.uniform(0.05, 0.9, (100, 3))
    d = C.optical_density(lin * 0.5) - C.optical_density(lin)
    np.testing.assert_allclose(d, np.log10(2.0), atol=1e-5)


def test_nan_and_inf_do_not_raise():
    x = np.array([[np.nan, 0.5, np.inf]], dtype=np.float32)
    with np.errstate(invalid="ignore"):
        lab = C.linear_rgb_to_lab(x)
    assert lab.shape == (1, 3)


# Sharma, Wu and Dalal (2005), Table 1: a few of the published test pairs.
SHARMA_PAIRS = [
    ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
    ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
    ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
    ((50.0, 2.5, 0.0), (50.0, 3.1736, 0.5854), 1.0000),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ((22.7233, 20.0904, -46.6940), (23.0331, 14.9730, -42.5619), 2.0373),
]


@pytest.mark.parametrize("lab1,lab2,expected", SHARMA_PAIRS)
def test_delta_e_2000_sharma_pairs(lab1, lab2, expected):
    assert C.delta_e_2000(np.array(lab1), np.array(lab2)) == pytest.approx(expected, abs=1e-4)
    # symmetric
    assert C.delta_e_2000(np.array(lab2), np.array(lab1)) == pytest.approx(expected, abs=1e-4)


def test_delta_e_2000_matches_colour_science(rng):
    lab1 = np.stack([rng.uniform(0, 100, 2000), rng.uniform(-80, 80, 2000), rng.uniform(-80, 80, 2000)], -1)
    lab2 = lab1 + rng.normal(0, 8, lab1.shape)
    np.testing.assert_allclose(C.delta_e_2000(lab1, lab2), cs.delta_E(lab1, lab2, method="CIE 2000"), atol=1e-6)
    assert np.all(C.delta_e_2000(lab1, lab1) == 0)


def test_to_float_gate():
    assert C.to_float(np.array([255], np.uint8))[0] == 1.0
    assert C.to_float(np.array([65535], np.uint16))[0] == 1.0
    with pytest.raises(TypeError, match="int32"):
        C.to_float(np.array([1], np.int32))

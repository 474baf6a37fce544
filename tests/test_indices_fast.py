"""The faster per-photo paths of the indices (issue 25) give the same numbers as the straightforward code.

Each fast path is compared bit for bit with a plain reference implementation (the code it replaced) on random
inputs and on real-looking ones: a phantom photograph (skin texture, shading, JPEG-like noise) and the real photo
``sample_images/real/astronaut.jpg`` with the project's own skin mask.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from skinimg import phantom as synth
from skinimg.color import linear16_luts
from skinimg.indices import IndexParams, basis as IB, chromophores as IC, kernels as IK, maps as IM
from skinimg.io import load_image
from skinimg.segment import segment_skin
from skinimg.indices.spots import _blur_ratio, _blurred_parts

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def astronaut():
    rgb, _ = load_image(ROOT / "sample_images" / "real" / "astronaut.jpg")
    return rgb, segment_skin(rgb).mask


@pytest.fixture(scope="module")
def phantom():
    ph = synth.render_phantom(synth.PhantomSpec(melanin=0.1, hemoglobin=0.02, seed=5, size=(240, 320), spots=3))
    return ph.image, ph.mask


# ----------------------------------------------------------------------------- kernels


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_unclipped_skin_equals_the_three_comparisons(dtype, rng):
    top = np.iinfo(dtype).max if np.dtype(dtype).kind == "u" else 1.0
    rgb = rng.integers(0, 4, size=(37, 53, 3)).astype(np.float64) / 3.0 * top  # many channels at the top
    rgb = rgb.astype(dtype)
    mask = rng.random((37, 53)) < 0.6
    expect = mask & ~IK._clipped(rgb, top)
    np.testing.assert_array_equal(IK._unclipped_skin(rgb, mask, top), expect)
    view = rgb[::2, 1::2]  # a non-contiguous crop
    np.testing.assert_array_equal(IK._unclipped_skin(view, mask[::2, 1::2], top),
                                  mask[::2, 1::2] & ~IK._clipped(view, top))
    assert IK._unclipped_skin(rgb, mask, top).dtype == bool


@pytest.mark.parametrize("shape", [(5,), (1, 1, 3), (7, 3), (301, 257, 3), (2, 200_001)])
def test_lookup16_equals_numpy_indexing(shape, rng):
    _, to_u8 = linear16_luts()
    codes = rng.integers(0, 65536, size=shape, dtype=np.uint16)
    np.testing.assert_array_equal(IK._lookup16(to_u8, codes), to_u8[codes])


def _smooth_reference(rgb, mask, sigma):
    """_smooth_inside on uint8 as it was: the full index array of NumPy's lookup."""
    import cv2

    b = IK._box_width(sigma)
    m8 = mask.view(np.uint8)
    den = IK._box(m8, b, normalize=False, ddepth=cv2.CV_16U)
    edge = np.flatnonzero(mask & (den < np.uint16(b * b)))
    scale = np.float32(b * b) / den.reshape(-1)[edge].astype(np.float32)
    to_lin, to_u8 = linear16_luts()
    masked = np.zeros_like(rgb)
    cv2.copyTo(rgb, m8, masked)
    num = IK._box(cv2.LUT(masked, to_lin), b)
    flat = num.reshape(-1, 3)
    flat[edge] = np.clip(np.rint(flat[edge] * scale[:, None]), 0, 65535).astype(np.uint16)
    out = rgb.copy()
    cv2.copyTo(to_u8[num], m8, out)
    return out


def test_smoothing_equals_the_reference_on_real_photos(astronaut, phantom):
    for rgb, mask in (astronaut, phantom):
        rgb = np.ascontiguousarray(rgb)
        ok = mask & ~IK._clipped(rgb, 255)
        np.testing.assert_array_equal(IK._smooth_inside(rgb, ok, 2.0), _smooth_reference(rgb, ok, 2.0))


# ----------------------------------------------------------------------------- chromophore model


def _lerp(p, q, f):
    return p + (q - p) * f


def _model_eval_reference(table, u, t):
    """Point by point in Python floats: the bilinear value of the (n, n, k) table and its two derivatives."""
    nm, nt, k = table.shape
    out = np.empty((3, len(u), k))
    for n, (x, y) in enumerate(zip(u * (nm - 1), t * (nt - 1))):
        i, j = min(max(math.floor(x), 0), nm - 2), min(max(math.floor(y), 0), nt - 2)
        fx, fy = x - i, y - j
        a, b = _lerp(table[i, j], table[i + 1, j], fx), _lerp(table[i, j + 1], table[i + 1, j + 1], fx)
        out[0, n] = _lerp(a, b, fy)
        out[1, n] = ((table[i + 1, j] - table[i, j]) * (1 - fy) + (table[i + 1, j + 1] - table[i, j + 1]) * fy) * (nm - 1)
        out[2, n] = (b - a) * (nt - 1)
    return out


def test_model_eval_equals_the_reference(rng):
    model = IB.load_basis().model
    tables = [model.table, model.table[..., :2], model.table[..., 2:], rng.random((9, 13, 4))]
    u = np.concatenate([rng.uniform(-0.2, 1.2, 3000), [0.0, 1.0, -0.1]])
    t = np.concatenate([rng.uniform(-0.4, 1.2, 3000), [1.0, 0.0, -0.3]])
    for table in tables:
        ref = _model_eval_reference(table, u, t)
        got = IC._model_eval(table, u, t)
        for r, g in zip(ref, got):
            np.testing.assert_array_equal(g, r)
        np.testing.assert_array_equal(IC._model_eval(table, u, t, jacobian=False)[0], ref[0])


# ----------------------------------------------------------------------------- shading correction and maps


def _shading_reference(sk, ch, sat, params):
    """_Skin._shading_corrected as it was (zero-filled field and weight, copies at every step)."""
    res = np.where(sat, np.float32(0.0), ch["residual"])
    ok = ~(sat if sk.weights is None else sat[sk._pos])
    field = np.zeros(sk.mask.shape, dtype=np.float32)
    field[sk.mask] = res if sk.weights is None else res[sk._pos]
    weight = np.zeros(sk.mask.shape, dtype=np.float32)
    weight[sk.mask] = ok
    sigma = params.shading_sigma * np.sqrt(max(1.0, float(np.count_nonzero(ok))))
    low = _blur_ratio(*_blurred_parts(field, weight, sigma), sk.mask.shape)[sk.mask]
    level = np.nanpercentile(low[ok], params.shading_percentile) if ok.any() else 0.0
    shade = np.clip(np.nan_to_num(low - np.float32(level), nan=0.0), 0.0, None).astype(np.float32)
    mel = sk.values["melanin"] if sk.weights is None else sk.values["melanin"][sk._pos]
    slope = ch["slope"] if sk.weights is None else ch["slope"][sk._pos]
    return (mel - shade * slope).astype(np.float32)


def _cases(astronaut, phantom):
    rgb, mask = astronaut
    yield "astronaut", rgb, mask
    prgb, pmask = phantom
    yield "phantom", prgb, pmask
    dim = (prgb.astype(np.float32) * 0.9).astype(np.uint8)  # no channel at 255: no clipped skin
    yield "phantom, nothing clipped", dim, pmask
    hot = prgb.copy()
    hot[100:120, 150:190] = 255  # a highlight on the skin: clipped colours
    yield "phantom with a highlight", hot, pmask
    yield "phantom as float", prgb.astype(np.float32) / 255.0, pmask
    yield "phantom as 16 bit", prgb.astype(np.uint16) * 257, pmask


@pytest.mark.parametrize("branch", ["auto", "dark"])
def test_shading_correction_equals_the_reference(astronaut, phantom, branch):
    params = IndexParams(branch=branch)
    for name, rgb, mask in _cases(astronaut, phantom):
        sk = IM._Skin(rgb, mask, params)
        smoothed, top, _ = IK._smooth_skin(rgb, mask, params, precise=True)  # the codes _Skin groups by
        units = IK._skin_colours(smoothed, mask)[0]
        sat = (units >= top).any(axis=1)
        key = "dark_spot_melanin" if sk.chromophores["branch"] == "dark" else "melanin"
        np.testing.assert_array_equal(sk.pixel_values[key], _shading_reference(sk, sk.chromophores, sat, params),
                                      err_msg=name)


def test_maps_scattered_into_the_frame_equal_the_embedded_crop(phantom):
    rgb, mask = phantom
    big = np.zeros((300, 400, 3), np.uint8)
    big[30:270, 50:370] = rgb
    frame_mask = np.zeros((300, 400), bool)
    frame_mask[30:270, 50:370] = mask
    params = IndexParams()
    box = IK._crop_box(frame_mask, IK._pad(params))
    sk = IM._Skin(big[box], np.ascontiguousarray(frame_mask[box]), params)
    maps = IM.compute_maps(big, frame_mask, spot_map=True)
    for name in maps:
        crop = IM._scatter(sk.spot_field() if name == "spot_melanin" else sk.pixels(name), sk.mask)
        expect = np.full(frame_mask.shape, np.nan, np.float32)
        expect[box] = crop
        np.testing.assert_array_equal(maps[name], expect, err_msg=name)
    row, measured = IM.measure(big, frame_mask, return_maps=True)
    for name, m in measured.items():
        np.testing.assert_array_equal(m, maps[name], err_msg=name)


def _candidates_reference(od, model):
    """The candidate interpolation as it was (new arrays at every step, float64 result)."""
    lo, step, table = IC._candidate_table(model)
    g = table.shape[0]
    x = np.clip((od @ IB.CHROMA_AXES.T - lo) / step, 0.0, g - 1.0)
    i = np.minimum(x[:, 0].astype(np.int64), g - 2)
    j = np.minimum(x[:, 1].astype(np.int64), g - 2)
    fx = (x[:, 0] - i).astype(np.float32)[:, None]
    fy = (x[:, 1] - j).astype(np.float32)[:, None]
    p00, p10, p01, p11 = table[i, j], table[i + 1, j], table[i, j + 1], table[i + 1, j + 1]
    a = p00 + (p10 - p00) * fx
    b = p01 + (p11 - p01) * fx
    return (a + (b - a) * fy).astype(np.float64)


def test_candidates_equal_the_reference(rng, astronaut):
    model = IB.load_basis().model
    rgb, mask = astronaut
    skin = rgb[mask].astype(np.float64) / 255.0
    od = np.concatenate([-np.log10(np.clip(skin, 1e-4, 1.0)), rng.uniform(0.0, 2.5, (20_000, 3))])  # + off-gamut
    ref = _candidates_reference(od, model)
    for dtype in (np.float64, np.float32):
        got = IC._candidates(od, model, dtype)
        assert all(c.dtype == dtype for c in got)
        np.testing.assert_array_equal(np.stack(got, axis=1), ref.astype(dtype))

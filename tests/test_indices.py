"""Indices: analytic values, references (colour-science), exposure invariance, chromophore
separation on phantoms, ITA classes, spots and statistics."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

from skinimg import color as C
from skinimg import indices as I
from skinimg.indices import chromophores as IC
from skinimg.indices import kernels as IK
from skinimg.train import basis as TB
from skinimg.errors import SkinImgError

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import colour as cs  # colour-science (test-only reference)

# An arbitrary, non-degenerate basis for tests that do not depend on the calibrated one.
TEST_BASIS = I.ChromophoreBasis((0.9, 1.3, 1.7), (0.35, 1.5, 0.9), (0.1, 0.25, 0.35), provenance={"name": "test"})


@pytest.fixture
def test_basis_path(tmp_path):
    p = tmp_path / "basis.json"
    p.write_text(json.dumps(TEST_BASIS.to_dict()))
    return str(p)


def _encode(lin):
    return C.linear_to_srgb(np.asarray(lin, dtype=np.float32))


# ----------------------------------------------------------------------------- EI / MI


def test_erythema_and_melanin_index_analytic_values():
    lin = np.array([[0.5, 0.25, 0.1], [0.2, 0.2, 0.2], [0.04, 0.4, 0.4], [1.0, 1.0, 1.0]], dtype=np.float64)
    enc = _encode(lin)
    ei = I.erythema_index(enc)
    mi = I.melanin_index(enc)
    np.testing.assert_allclose(ei, 100 * np.log10(lin[:, 0] / lin[:, 1]), atol=2e-3)
    np.testing.assert_allclose(mi, 100 * np.log10(1 / lin[:, 0]), atol=2e-3)
    assert ei.dtype == np.float32 and mi.dtype == np.float32
    assert ei[0] == pytest.approx(100 * math.log10(2), abs=2e-3)  # 30.103
    assert ei[1] == pytest.approx(0.0, abs=1e-3) and ei[2] == pytest.approx(-100.0, abs=2e-3)


def test_indices_on_uint8_use_the_exact_decoding():
    rgb = np.array([[[200, 150, 120], [0, 10, 255]]], dtype=np.uint8)
    dec = lambda c: (c / 255 / 12.92) if c / 255 <= 0.04045 else ((c / 255 + 0.055) / 1.055) ** 2.4  # noqa: E731
    ei = I.erythema_index(rgb)
    assert ei[0, 0] == pytest.approx(100 * math.log10(dec(200) / dec(150)), abs=1e-3)
    # R = 0 is floored at 1e-4: MI = 400 at most.
    assert I.melanin_index(rgb)[0, 1] == pytest.approx(400.0, abs=1e-3)


def test_erythema_index_exposure_invariant_on_float_input(rng):
    lin = rng.uniform(0.05, 0.6, size=(50, 3))
    for gain in (0.5, 1.5):
        np.testing.assert_allclose(I.erythema_index(_encode(lin * gain)), I.erythema_index(_encode(lin)), atol=5e-3)


# ----------------------------------------------------------------------------- CIELAB / ITA


def _skinlike_pixels(rng, n=3000):
    lab = np.column_stack([rng.uniform(20, 85, n), rng.uniform(2, 25, n), rng.uniform(6, 35, n)])
    enc = C.linear_to_srgb(np.clip(C.lab_to_linear_rgb(lab.astype(np.float32)), 0.002, 1.0))
    return np.clip(np.rint(enc * 255), 0, 255).astype(np.uint8)


def test_lab_and_ita_maps_match_colour_science(rng, test_basis_path):
    px = _skinlike_pixels(rng)
    img = px.reshape(50, 60, 3)
    mask = np.ones(img.shape[:2], bool)
    maps = I.compute_maps(img, mask, params=I.IndexParams(basis_path=test_basis_path, smoothing_sigma=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = cs.XYZ_to_Lab(cs.sRGB_to_XYZ(img / 255.0))
    ref_ita = np.degrees(np.arctan2(ref[..., 0] - 50.0, ref[..., 2]))
    for k, name in enumerate(("l_star", "a_star", "b_star")):
        np.testing.assert_allclose(maps[name], ref[..., k], atol=0.01)
    np.testing.assert_allclose(maps["ita_deg"], ref_ita, atol=0.01)


@pytest.mark.parametrize("value,expected", [
    (90.0, "very_light"), (55.0001, "very_light"), (55.0, "light"), (41.0001, "light"), (41.0, "intermediate"),
    (28.0, "tan"), (10.0001, "tan"), (10.0, "brown"), (-29.999, "brown"), (-30.0, "dark"), (-90.0, "dark"),
    (float("nan"), "unknown"),
])
def test_ita_category_boundaries_belong_to_the_darker_class(value, expected):
    assert I.ita_category(value) == expected
    assert I.ita_categories(np.array([value]))[0] == expected


def test_ita_deg_formula():
    assert I.ita_deg(np.float32(100.0), np.float32(50.0)) == pytest.approx(45.0, abs=1e-4)
    assert I.ita_deg(np.float32(50.0), np.float32(20.0)) == pytest.approx(0.0, abs=1e-5)
    assert I.ita_deg(np.float32(70.0), np.float32(0.0)) == pytest.approx(90.0, abs=1e-4)  # atan2: defined at b* = 0


# ----------------------------------------------------------------------------- chromophore algebra


def test_separation_inverts_the_model_and_removes_shading(rng):
    m = rng.uniform(0.01, 0.4, 1000)
    h = rng.uniform(0.0, 0.1, 1000)
    s = rng.uniform(-0.3, 0.5, 1000)  # shading / exposure: a shift along (1, 1, 1)
    od = (np.asarray(TEST_BASIS.offset_od) + m[:, None] * TEST_BASIS.melanin_od
          + h[:, None] * TEST_BASIS.hemoglobin_od + s[:, None])
    mel, hb = I.separate_chromophores(od, basis=TEST_BASIS)
    np.testing.assert_allclose(mel, m, atol=1e-5)
    np.testing.assert_allclose(hb, h, atol=1e-5)


def test_fit_basis_recovers_known_directions(rng):
    m = rng.uniform(0, 0.5, 400)
    h = rng.uniform(0, 0.1, 400)
    od = np.asarray(TEST_BASIS.offset_od) + m[:, None] * TEST_BASIS.melanin_od + h[:, None] * TEST_BASIS.hemoglobin_od
    b = TB.fit_chromophore_basis(m, h, 10.0 ** -od)
    np.testing.assert_allclose(b.melanin_od, TEST_BASIS.melanin_od, atol=1e-4)
    np.testing.assert_allclose(b.hemoglobin_od, TEST_BASIS.hemoglobin_od, atol=1e-4)
    assert b.provenance["rms_residual_od"] < 1e-5


def test_ica_recovers_tilted_directions(rng):
    """Independent non-Gaussian sources mixed along directions 12 deg off the reference basis."""
    n = 40000
    m = 0.15 + 0.05 * rng.laplace(size=n)
    h = 0.04 + rng.exponential(0.015, size=n)
    am, ah = np.asarray(TEST_BASIS.melanin_od), np.asarray(TEST_BASIS.hemoglobin_od)
    t = math.tan(math.radians(12))
    true_m, true_h = am + t * ah, ah - t * am  # tilted in the pigment plane
    od = np.asarray(TEST_BASIS.offset_od) + m[:, None] * true_m + h[:, None] * true_h + rng.uniform(-0.2, 0.2, (n, 1))
    basis, used = I.estimate_basis_ica(od, basis=TEST_BASIS, random_state=0)
    assert used == "ica"
    mel, hb = I.separate_chromophores(od, basis=basis)
    assert np.corrcoef(mel, m)[0, 1] > 0.995 and np.corrcoef(hb, h)[0, 1] > 0.995
    mel0, hb0 = I.separate_chromophores(od, basis=TEST_BASIS)
    assert abs(np.corrcoef(hb0, m)[0, 1]) > 0.3  # the fixed basis mixes them here; ICA does not
    assert abs(np.corrcoef(hb, m)[0, 1]) < 0.05


def test_ica_rejects_uniform_skin_and_falls_back_to_the_basis():
    od = np.tile(np.asarray(TEST_BASIS.offset_od) + 0.1, (500, 1))
    basis, used = I.estimate_basis_ica(od, basis=TEST_BASIS)
    assert basis == TEST_BASIS and used.startswith("basis (ica rejected")


def test_basis_file_errors(tmp_path):
    with pytest.raises(SkinImgError, match="not found"):
        I.load_basis(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(SkinImgError, match="not a chromophore basis"):
        I.load_basis(bad)
    with pytest.raises(SkinImgError):
        I.IndexParams(chromophore_method="pca")


# ----------------------------------------------------------------------------- statistics, areas, spots


def test_summarize_statistics_match_numpy(rng, test_basis_path):
    img = rng.integers(40, 230, size=(60, 80, 3), dtype=np.uint8)
    mask = np.zeros((60, 80), bool)
    mask[5:50, 10:70] = True
    params = I.IndexParams(basis_path=test_basis_path)
    maps = I.compute_maps(img, mask, params=params)
    for name in I.INDEX_NAMES:
        assert maps[name].dtype == np.float32
        assert np.isnan(maps[name][~mask]).all() and np.isfinite(maps[name][mask]).all()
    row = I.summarize(maps, mask, params=params)
    for name in I.INDEX_NAMES:
        v = maps[name][mask].astype(np.float64)
        assert row[name] == pytest.approx(v.mean(), rel=1e-5, abs=1e-5)
        assert row[f"{name}_std"] == pytest.approx(v.std(), rel=1e-4, abs=1e-5)
        for key, q in (("_median", 50), ("_p10", 10), ("_p90", 90)):
            assert row[f"{name}{key}"] == pytest.approx(np.percentile(v, q), rel=1e-5, abs=1e-5)
    fr = [row[f"ita_fraction_{c}"] for c in I.ITA_CATEGORIES]
    assert sum(fr) == pytest.approx(1.0)
    cats = I.ita_categories(maps["ita_deg"][mask])
    assert row["ita_fraction_brown"] == pytest.approx(np.mean(cats == "brown"))
    assert row["ita_category"] == I.ita_category(row["ita_deg"])
    hb = maps["hemoglobin"][mask]
    assert row["red_area_fraction"] == pytest.approx(np.mean(hb > np.float32(params.red_threshold)))
    if hb.mean() > 0:
        assert row["hemoglobin_variation_pct"] == pytest.approx(100 * hb.std() / hb.mean(), rel=1e-4)
    else:
        assert math.isnan(row["hemoglobin_variation_pct"])
    # measure() gives the same row without building all maps
    row2, maps2 = I.measure(img, mask, params=params, return_maps=False)
    assert maps2 is None
    for k, v in row.items():  # 8-bit input: per-colour statistics equal the per-pixel ones
        if isinstance(v, float) and math.isnan(v):
            assert math.isnan(row2[k]), k
        elif k.endswith(("_median", "_p10", "_p90")) or not isinstance(v, float):
            assert row2[k] == v, k
        else:
            assert row2[k] == pytest.approx(v, rel=1e-9, abs=1e-12), k


def test_red_area_fraction_uses_the_documented_threshold():
    mask = np.ones((10, 10), bool)
    hb = np.full((10, 10), 0.02, np.float32)
    hb[:3] = 0.09  # 30 % above the 0.06 threshold
    maps = {name: np.zeros((10, 10), np.float32) for name in I.INDEX_NAMES}
    maps["hemoglobin"] = hb
    maps["melanin"] = np.full((10, 10), 0.1, np.float32)
    row = I.summarize(maps, mask, params=I.IndexParams(red_threshold=0.06))
    assert row["red_area_fraction"] == pytest.approx(0.3)
    assert row["brown_spot_count"] == 0 and row["brown_spot_area_fraction"] == 0.0
    assert row["melanin_variation_pct"] == pytest.approx(0.0, abs=1e-4)


def _spot_map(rng, h=600, w=800):
    yy, xx = np.mgrid[:h, :w]
    mask = ((yy - h / 2) / (0.45 * h)) ** 2 + ((xx - w / 2) / (0.45 * w)) ** 2 <= 1
    m = (0.12 + 0.05 * xx / w + 0.004 * rng.standard_normal((h, w))).astype(np.float32)
    spots = [(200, 250, 14), (320, 400, 10), (380, 520, 18), (250, 560, 12), (420, 300, 9)]
    truth = np.zeros((h, w), bool)
    for cy, cx, r in spots:
        d = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        m[d] += 0.09
        truth |= d
    for cy, cx in ((300, 200), (350, 600)):  # too small to count: area ~ 13 px < 1e-4 * 480000 = 48 px
        m[(yy - cy) ** 2 + (xx - cx) ** 2 <= 4] += 0.09
    m[~mask] = np.nan
    return m, mask, truth, len(spots)


def test_brown_spots_counted_on_a_map_with_known_spots(rng):
    m, mask, truth, n = _spot_map(rng)
    res = I.detect_brown_spots(m, mask)
    assert res.count == n
    assert res.area_fraction == pytest.approx(truth.sum() / mask.sum(), rel=0.15)
    # resolution independence: same answer on a 2x smaller working resolution
    res2 = I.detect_brown_spots(m, mask, params=I.IndexParams(spot_work_pixels=120_000))
    assert res2.scale < 1 and res2.count == n
    assert res2.area_fraction == pytest.approx(res.area_fraction, rel=0.2)
    # a higher threshold than the spots' contrast finds none
    assert I.detect_brown_spots(m, mask, params=I.IndexParams(spot_threshold=0.2)).count == 0


def test_empty_mask_gives_nan_stats_not_errors(test_basis_path):
    img = np.full((8, 8, 3), 128, np.uint8)
    row, maps = I.measure(img, np.zeros((8, 8), bool), params=I.IndexParams(basis_path=test_basis_path))
    assert math.isnan(row["erythema_index"]) and row["ita_category"] == "unknown"
    assert all(np.isnan(v).all() for v in maps.values())


def test_input_validation(test_basis_path):
    with pytest.raises(ValueError):
        I.compute_maps(np.zeros((4, 4), np.uint8), np.ones((4, 4), bool))
    with pytest.raises(ValueError):
        I.compute_maps(np.zeros((4, 4, 3), np.uint8), np.ones((5, 4), bool))
    with pytest.raises(TypeError):
        I.compute_maps(np.zeros((4, 4, 3), np.int32), np.ones((4, 4), bool))


# ----------------------------------------------------------------------------- phantoms (ground truth)

synth = pytest.importorskip("skinimg.phantom")

GRID_M = (0.01, 0.08, 0.16, 0.25, 0.35, 0.45)  # ITA about +64 ... -50 degrees: the whole tone range
GRID_H = (0.002, 0.01, 0.02, 0.04, 0.07, 0.1)


@pytest.fixture(scope="module")
def phantom_grid():
    """6 x 6 phantoms (face, default scene, noise, shading, spots, red patches), melanin and
    haemoglobin varied independently; rows from analyze's measure() on the true skin mask."""
    out = []
    for i, m in enumerate(GRID_M):
        for j, h in enumerate(GRID_H):
            ph = synth.render_phantom(synth.PhantomSpec(melanin=m, hemoglobin=h, seed=i * 6 + j, size=(240, 320)))
            row, _ = I.measure(ph.image, ph.mask, return_maps=False)
            out.append((float(np.nanmean(ph.melanin)), float(np.nanmean(ph.hemoglobin)), row))
    return out


def _spearman(a, b):
    from scipy.stats import spearmanr

    return float(spearmanr(a, b)[0])


def test_chromophores_track_true_concentrations_over_the_tone_range(phantom_grid):
    """The basis inverts the ensemble's central model, not this phantom model (one member of the ensemble): on
    these phantoms haemoglobin reads relative changes at about 0.55 times and saturates at the top of the
    blood range (0.1), so ranks across the whole grid are weaker than a model fitted on the phantoms alone
    (0.97 then; 0.84 now, 0.92 for melanin) -- but still far better than the erythema index's."""
    true_m = [t[0] for t in phantom_grid]
    true_h = [t[1] for t in phantom_grid]
    hb = [t[2]["hemoglobin"] for t in phantom_grid]
    mel = [t[2]["melanin"] for t in phantom_grid]
    assert _spearman(hb, true_h) >= 0.8
    assert _spearman(mel, true_m) >= 0.9
    # the classic erythema index does much worse on the same set (it reads pigment as redness)
    ei = [t[2]["erythema_index"] for t in phantom_grid]
    assert _spearman(ei, true_h) < _spearman(hb, true_h) - 0.15


def test_hemoglobin_does_not_rise_with_melanin_like_the_erythema_index(phantom_grid):
    """Cross-talk: spread across melanin at fixed haemoglobin, relative to the spread across
    haemoglobin at fixed melanin (0 = no cross-talk, 1 = as large as the signal).  Below 0.35 when the basis was
    fitted on this phantom model; the ensemble's central model (issue 26) reads these phantoms' blood at about
    half scale, so the same pigment leak weighs more: 0.55 measured (2026-12-04), the erythema index 0.95."""
    hb = np.array([t[2]["hemoglobin"] for t in phantom_grid]).reshape(6, 6)
    ei = np.array([t[2]["erythema_index"] for t in phantom_grid]).reshape(6, 6)

    def crosstalk(x):
        return np.mean(np.ptp(x, axis=0)) / np.mean(np.ptp(x, axis=1))

    assert crosstalk(hb) < 0.6 and crosstalk(hb) < 0.7 * crosstalk(ei)
    assert crosstalk(ei) > 0.8  # EI's known weakness, reproduced
    rho_hb = np.mean([_spearman(GRID_M, hb[:, j]) for j in range(6)])
    rho_ei = np.mean([_spearman(GRID_M, ei[:, j]) for j in range(6)])
    assert rho_hb < rho_ei


def test_exposure_gain_on_the_twin_boundary_is_flagged_and_held_by_a_shared_branch():
    """Brown-tan skin (melanin 0.15, blood 0.04) lies where the chromophore model has two roots: alone, the x0.8
    shot is read on the dark root (haemoglobin -62 %), and both shots say ``exposure_sensitive``; with the branch
    held, as compare and track hold it for a pair, the gain moves haemoglobin < 1 %."""
    rows, held = {}, {}
    for gain in (1.0, 0.8):
        ph = synth.render_phantom(synth.PhantomSpec(melanin=0.15, hemoglobin=0.04, seed=5, size=(240, 320),
                                                    exposure=gain))
        rows[gain], _ = I.measure(ph.image, ph.mask, return_maps=False)
        held[gain], _ = I.measure(ph.image, ph.mask, params=I.IndexParams(branch="light"), return_maps=False)
    assert rows[1.0]["chromophore_branch_check"] == rows[0.8]["chromophore_branch_check"] == "exposure_sensitive"
    assert held[0.8]["hemoglobin"] == pytest.approx(held[1.0]["hemoglobin"], rel=0.01)
    assert held[0.8]["erythema_index"] == pytest.approx(held[1.0]["erythema_index"], rel=0.01)


@pytest.mark.parametrize("m,h", [(0.03, 0.015), (0.08, 0.02), (0.12, 0.02)])
def test_exposure_gain_leaves_ei_and_hemoglobin_unchanged(m, h):
    rows = {}
    for gain in (1.0, 0.8, 1.25):
        ph = synth.render_phantom(synth.PhantomSpec(melanin=m, hemoglobin=h, seed=5, size=(240, 320), exposure=gain))
        rows[gain], _ = I.measure(ph.image, ph.mask, return_maps=False)
    for gain in (0.8, 1.25):
        for key in ("erythema_index", "hemoglobin"):
            assert rows[gain][key] == pytest.approx(rows[1.0][key], rel=0.01), (gain, key)
        assert rows[gain]["melanin_index"] != pytest.approx(rows[1.0]["melanin_index"], rel=0.01)  # MI is not


def test_erythema_index_exposure_invariant_on_dark_skin():
    ph1 = synth.render_phantom(synth.PhantomSpec(melanin=0.4, hemoglobin=0.02, seed=2, size=(160, 200)))
    ph2 = synth.render_phantom(synth.PhantomSpec(melanin=0.4, hemoglobin=0.02, seed=2, size=(160, 200), exposure=0.8))
    r1, _ = I.measure(ph1.image, ph1.mask, return_maps=False)
    r2, _ = I.measure(ph2.image, ph2.mask, return_maps=False)
    assert r2["erythema_index"] == pytest.approx(r1["erythema_index"], rel=0.01)


def test_model_inversion_is_exact_on_model_colours():
    """Noise-free colours of the basis' own (central ensemble) model, light/intermediate skin (one root), are
    inverted to ~1e-3 up to blood 0.06; above it the central model's colour saturates and two blood levels come
    close to one colour (error 0.02 at 0.1, measured 2026-12-04), so the grid stops at 0.06."""
    from skinimg.train.ensemble import central_linear_rgb

    m, h = np.meshgrid(np.linspace(0.01, 0.15, 15), np.linspace(0.002, 0.06, 15), indexing="ij")
    od = C.optical_density(central_linear_rgb(m, h))
    mel, hb = I.separate_chromophores(od)
    np.testing.assert_allclose(mel, m, atol=2e-3)
    np.testing.assert_allclose(hb, h, atol=1e-3)


def _assert_same_document(got, want, where="basis"):
    """Equal keys and strings; numbers within rel 1e-9 (the last printed digit may differ between NumPy versions)."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), where
        for k in want:
            _assert_same_document(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (a, b) in enumerate(zip(got, want)):
            _assert_same_document(a, b, f"{where}[{i}]")
    elif isinstance(want, float) or isinstance(got, float):
        assert got == pytest.approx(want, rel=1e-9, abs=0), where
    else:
        assert got == want, where


def test_committed_basis_is_reproducible_from_its_script():
    """benchmarks/fit_basis.py (skinimg.train.basis) rebuilds the committed basis: the same text layout and, number
    by number, the same values to a relative 1e-9."""
    text = TB.format_basis(TB.basis_document(TB.fit()))
    committed = I.DEFAULT_BASIS_PATH.read_text(encoding="utf-8")
    assert text.count("\n") == committed.count("\n"), "models/chromophore_basis.json is stale: run benchmarks/fit_basis.py"
    _assert_same_document(json.loads(text), json.loads(committed))


def test_brown_spots_on_phantoms_no_false_spots_on_plain_skin():
    for m in (0.05, 0.2):
        plain = synth.render_phantom(synth.PhantomSpec(melanin=m, hemoglobin=0.02, seed=11, size=(480, 640), spots=0))
        row, _ = I.measure(plain.image, plain.mask, return_maps=False)
        assert row["brown_spot_count"] == 0 and row["brown_spot_area_fraction"] == 0.0
    spotted = synth.render_phantom(synth.PhantomSpec(melanin=0.05, hemoglobin=0.02, seed=11, size=(480, 640), spots=6))
    row, _ = I.measure(spotted.image, spotted.mask, return_maps=False)
    assert 3 <= row["brown_spot_count"] <= 6  # the smallest macules are below the documented minimum size
    assert 0.0 < row["brown_spot_area_fraction"] < 0.05


# ----------------------------------------------------------------------------- smoothing in linear light


def test_linear16_luts_round_trip_every_8bit_code():
    to_lin, to_u8 = C.linear16_luts()
    codes = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(to_u8[to_lin[codes]], codes)
    np.testing.assert_allclose(to_lin / 65535.0, C.srgb_to_linear(codes), atol=1 / 65535)
    assert np.all(np.diff(to_u8.astype(int)) >= 0)  # monotone


def test_smoothing_averages_light_not_code_values():
    """A fine checkerboard of two colours is smoothed to the code of their mean *light*
    (Jensen: the mean of the codes is darker), and background never leaks into skin."""
    a, b = np.array([40, 90, 160], np.uint8), np.array([200, 120, 20], np.uint8)
    yy, xx = np.mgrid[0:40, 0:40]
    img = np.where(((yy + xx) % 2 == 0)[..., None], a, b).astype(np.uint8)
    mask = np.zeros((40, 40), bool)
    mask[5:35, 5:35] = True
    img[~mask] = (0, 255, 0)  # green background must not leak in
    out = IK._smooth_inside(img, mask, 2.0)
    w = IK._box_width(2.0)
    assert w == 7  # the variance of a Gaussian of sigma 2: (w^2 - 1) / 12 = 4
    n_a = (w * w + 1) // 2  # an odd box centred on an "a" pixel of the checkerboard
    lin_mean = (n_a * C.srgb_to_linear(a) + (w * w - n_a) * C.srgb_to_linear(b)) / (w * w)
    expect = C.linear_to_srgb_uint8(lin_mean)
    assert np.abs(out[20, 20].astype(int) - expect.astype(int)).max() <= 1  # 16-bit linear rounding
    code_mean = (a.astype(float) + b) / 2
    assert np.abs(out[20, 20].astype(float) - code_mean)[[0, 2]].min() >= 20  # not the code average (R, B)
    # border pixels of the skin: the mix of skin only (within the tent's 2-level rounding)
    assert np.abs(out[5, 5].astype(int) - expect.astype(int)).max() <= 3
    np.testing.assert_array_equal(out[~mask], img[~mask])  # outside unchanged


@pytest.mark.parametrize("m,h,seed", [(0.35, 0.02, 26), (0.45, 0.01, 31), (0.45, 0.04, 33), (0.25, 0.04, 21)])
def test_exposure_gain_on_brown_and_dark_skin_with_the_branch_held(m, h, seed):
    """Brown/dark skin: with the twin branch held (as compare does), haemoglobin moves by
    < 2 % under -20 % / +25 % exposure (it moved 3-9 % when smoothing averaged code values)."""
    base = synth.render_phantom(synth.PhantomSpec(melanin=m, hemoglobin=h, seed=seed, size=(240, 320)))
    row0, _ = I.measure(base.image, base.mask, return_maps=False)
    branch = row0["chromophore_method"].split("(")[1].split()[0]
    p = I.IndexParams(branch=branch)
    for gain in (0.8, 1.25):
        ph = synth.render_phantom(synth.PhantomSpec(melanin=m, hemoglobin=h, seed=seed, size=(240, 320), exposure=gain))
        row, _ = I.measure(ph.image, ph.mask, params=p, return_maps=False)
        assert row["hemoglobin"] == pytest.approx(row0["hemoglobin"], rel=0.02), gain
        assert row["erythema_index"] == pytest.approx(row0["erythema_index"], rel=0.01), gain


def test_shared_branch_pools_photos_and_honours_a_forced_branch():
    dark = synth.render_phantom(synth.PhantomSpec(melanin=0.25, hemoglobin=0.02, seed=26, size=(240, 320)))
    bright = synth.render_phantom(synth.PhantomSpec(melanin=0.25, hemoglobin=0.02, seed=26, size=(240, 320),
                                                    exposure=1.25))
    # chosen per photo the two exposures take different twins (haemoglobin roughly doubles) ...
    r1, _ = I.measure(dark.image, dark.mask, return_maps=False)
    r2, _ = I.measure(bright.image, bright.mask, return_maps=False)
    assert r1["chromophore_method"] != r2["chromophore_method"]
    assert max(r1["hemoglobin"], r2["hemoglobin"]) / min(r1["hemoglobin"], r2["hemoglobin"]) > 1.5
    # ... one shared choice keeps them together
    shared = I.choose_shared_branch([(dark.image, dark.mask), (bright.image, bright.mask)])
    assert shared in ("light", "dark")
    p = I.IndexParams(branch=shared)
    h1 = I.measure(dark.image, dark.mask, params=p, return_maps=False)[0]["hemoglobin"]
    h2 = I.measure(bright.image, bright.mask, params=p, return_maps=False)[0]["hemoglobin"]
    assert h2 == pytest.approx(h1, rel=0.02)
    assert I.choose_shared_branch([(dark.image, dark.mask)], params=I.IndexParams(branch="light")) == "light"
    assert I.choose_shared_branch([(dark.image, np.zeros_like(dark.mask))]) == "light"
    with pytest.raises(SkinImgError, match="branch"):
        I.IndexParams(branch="middle")


def test_candidate_table_matches_the_direct_newton_solution():
    model = I.load_basis().model
    rng = np.random.default_rng(1)
    m, h = rng.uniform(0.005, 0.45, 20000), rng.uniform(0.002, 0.1, 20000)
    od = C.optical_density(synth.skin_linear_rgb(m, h)).astype(np.float64)
    fast = IC._candidates(od, model)
    slow = IC._solve_candidates(od @ I.CHROMA_AXES.T, model)
    for k in (1, 4):  # haemoglobin of the light and the dark root
        d = np.abs(fast[k] * np.abs(fast[k]) - slow[k] * np.abs(slow[k])) * model.hemoglobin_max
        assert np.median(d) < 2e-5 and np.percentile(d, 98) < 5e-3, k


def test_branch_check_flags_photos_whose_branch_an_exposure_change_would_swap():
    """chromophore_branch_check: 'exposure_sensitive' when a x0.8 / x1.25 exposure would swap the chromophore
    twin chosen for this photo (its haemoglobin alone is then ambiguous), 'stable' otherwise, 'held' for a
    given branch.  Checked against real re-renders at both exposures (on the 36-photo exposure grid of
    benchmarks/chromophore_accuracy.py: 12 of 13 swaps flagged, no false flag)."""
    from skinimg.phantom import PhantomSpec, render_phantom

    def rows(m, h, seed, params=None):
        out = {}
        for g in (1.0, 0.8, 1.25):
            ph = render_phantom(PhantomSpec(melanin=m, hemoglobin=h, seed=seed, size=(240, 320), exposure=g))
            out[g] = I.measure(ph.image, ph.mask, params=params, return_maps=False)[0]
        return out

    swap = rows(0.25, 0.03, 7)
    assert swap[1.0]["chromophore_branch_check"] == "exposure_sensitive"
    assert len({r["chromophore_method"] for r in swap.values()}) == 2  # the re-renders do swap
    for m, h, seed in ((0.01, 0.015, 6), (0.45, 0.03, 7)):
        ok = rows(m, h, seed)
        assert ok[1.0]["chromophore_branch_check"] == "stable"
        assert len({r["chromophore_method"] for r in ok.values()}) == 1
    held = rows(0.25, 0.03, 7, I.IndexParams(branch="dark"))
    assert {r["chromophore_branch_check"] for r in held.values()} == {"held"}


def test_branch_shifted_equals_the_sorted_percentile_rule():
    """The one-pass exposure check (_branch_shifted) gives the branch of the sorting rule (_branch_from) on
    brightness shifted by the same amount, for integer weights and without them."""
    rng = np.random.default_rng(3)
    for _ in range(200):
        n = int(rng.integers(50, 2000))
        b_l = rng.random(n).astype(np.float32)
        b_d = b_l + (rng.random(n) * 0.3).astype(np.float32)
        cands = [b_l, b_l, b_l, b_d, b_d, b_d]
        bright = (b_l + rng.uniform(-0.2, 1.2, n).astype(np.float32) * (b_d - b_l)).astype(np.float32)
        w = rng.integers(1, 50, n)
        for shift in (-0.0969, 0.0, 0.0969):
            for weights in (w, None):
                assert IC._branch_shifted(cands, bright, weights, shift) == \
                    IC._branch_from(cands, bright + np.float32(shift), weights)


# ----------------------------------------------------------------------------- beyond the model's gamut


def test_colours_past_the_gamut_edge_read_the_nearest_model_colour():
    """Very light skin sits at the edge of the central model's gamut.  Along a ray of colours from a very light
    skin colour (melanin 0.005, blood 0.011) towards bluer, less red ones, the roots first go below zero melanin
    (the table's linear extension, noise around zero), then past its end (melanin -0.06) no (melanin, blood)
    makes the colour and the reading is the nearest colour the model makes: blood moves continuously all along.
    Before, the inversion table held no root where melanin was below zero, and from melanin -0.015 on the
    readings jumped between 0 and the table's blood cap (0.15) from one colour to the next."""
    model = I.load_basis().model
    inside, out = np.array([0.2, 0.396, 0.491]), np.array([0.243, 0.373, 0.401])  # OD (R, G, B)
    ray = inside + np.linspace(0.0, 5.0, 201)[:, None] * (out - inside)
    c = IC._candidates(ray, model)
    hb = c[1] * np.abs(c[1]) * model.hemoglobin_max
    assert np.abs(np.diff(hb)).max() < 0.001, np.abs(np.diff(hb)).max()  # measured 0.0002
    assert 0.0 <= hb.min() and hb.max() < 0.012
    pt = ray @ I.CHROMA_AXES.T
    val, _, _ = IC._model_eval(model.table[..., :2], c[0].astype(np.float64), c[1].astype(np.float64), jacobian=False)
    dist = np.abs(pt - val).max(axis=1)
    assert dist[:90].max() < 1e-4  # roots up to melanin -0.04
    assert dist[-1] > 0.1 and np.all(np.diff(dist) > -1e-3)  # then beyond the gamut, ever further from it



def test_two_photos_of_one_skin_find_spots_with_one_threshold():
    """A soft-edged macule (Gaussian, sigma 6 px, melanin +0.08 over 0.05) photographed twice with different
    sensor noise (SD 0.004 and 0.007): alone each photo's threshold follows its noise (the 0.03 floor; 5 robust
    SD of the excess, 0.035), so the same macule measures 17.8 and 14.8 x 1e-4 of the skin; with the shared
    threshold (the larger) 14.5 and 14.8."""
    h, w = 240, 320
    yy, xx = np.mgrid[0:h, 0:w]
    blob = 0.05 + 0.08 * np.exp(-((xx - 160.0) ** 2 + (yy - 120.0) ** 2) / (2 * 6.0 ** 2))
    mask = np.ones((h, w), bool)
    rng = np.random.default_rng(3)
    quiet = (blob + rng.normal(0, 0.004, blob.shape)).astype(np.float32)
    noisy = (blob + rng.normal(0, 0.007, blob.shape)).astype(np.float32)
    alone = [I.detect_brown_spots(m, mask) for m in (quiet, noisy)]
    assert alone[0].threshold == pytest.approx(0.03)  # the floor
    assert alone[1].threshold > 0.033  # 5 robust SD of the noise
    (sq, sn), thr = I.shared_spot_threshold([quiet, noisy], [mask, mask])
    assert thr == max(s.threshold for s in alone) == sq.threshold == sn.threshold
    assert sn.area_fraction == alone[1].area_fraction  # the photo whose threshold it is: unchanged
    gap_alone = abs(alone[0].area_fraction - alone[1].area_fraction)
    gap_shared = abs(sq.area_fraction - sn.area_fraction)
    assert gap_shared < 0.3 * gap_alone, (gap_alone, gap_shared)

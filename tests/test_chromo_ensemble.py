"""The ensemble of optical skin models and what the chromophore separation does on it: member calibration,
the precomputed tables, changes read on held-out members, the model range, exposure invariance at every bit
depth, no melanin rim at shaded borders, lesions on a real photograph."""

from __future__ import annotations

import importlib.util
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from skinimg import color as C
from skinimg import indices as I
from skinimg.phantom import PhantomSpec, render_phantom, skin_linear_rgb
from skinimg.phantom.ensemble import FIT_MEMBERS, HELD_OUT_MEMBERS, MEMBERS, member
from skinimg.train import ensemble as TE
from skinimg.train.chromo_eval import lesion_summary

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- the ensemble


def test_every_member_meets_the_colorimetric_anchors():
    """ITA -50 degrees at melanin 0.45 and a* = 13 at ITA 35 degrees (typical blood), for every member."""
    for name, m in MEMBERS.items():
        assert TE.ita_of(m, 0.45, m.typical_blood) == pytest.approx(-50.0, abs=0.3), name
        mel = TE.tone_melanin(m, 35.0)
        assert float(TE.lab_of(m, mel, m.typical_blood)[1]) == pytest.approx(13.0, abs=0.15), name


@pytest.mark.parametrize("name", ["diff_j98", "mbll_j98"])
def test_member_constants_are_reproduced_by_the_calibration(name):
    m = TE.calibrate_member(replace(MEMBERS[name], epidermis_um=60.0, typical_blood=0.01), iterations=4)
    assert m.epidermis_um == pytest.approx(MEMBERS[name].epidermis_um, rel=0.01)
    assert m.typical_blood == pytest.approx(MEMBERS[name].typical_blood, rel=0.01)
    assert m.dpf_blood == pytest.approx(MEMBERS[name].dpf_blood, rel=0.02)


def test_the_diffusion_member_is_the_phantom_model():
    """diff_j98 is skinimg.phantom.optics' model with its epidermis calibrated (60 -> 64.8 um) and Prahl's 2 nm
    table instead of its 10 nm subset: with the phantom's 60 um they agree to 0.4 % of white up to typical
    blood, and still to 2.5 % at five times typical blood (where the finer haemoglobin table matters)."""
    m = replace(member("diff_j98"), epidermis_um=60.0)
    mm, hh = np.meshgrid([0.01, 0.1, 0.3], [0.003, 0.01], indexing="ij")
    assert np.abs(m.linear_rgb(mm, hh) - skin_linear_rgb(mm, hh)).max() < 4e-3
    mm, hh = np.meshgrid([0.01, 0.1, 0.3], [0.05], indexing="ij")
    assert np.abs(m.linear_rgb(mm, hh) - skin_linear_rgb(mm, hh)).max() < 2.5e-2


def test_monte_carlo_half_space_table_matches_a_fresh_simulation():
    """The committed Monte Carlo reflectances agree with a new run (other seeds, fewer photons) within its error,
    and with diffusion theory where that is accurate (weak absorption)."""
    spec = importlib.util.spec_from_file_location("mk", ROOT / "skinimg" / "data" / "make_ensemble_data.py")
    mk = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mk)
    d = json.loads((ROOT / "skinimg" / "data" / "ensemble_data.json").read_text())["half_space_mc"]
    albedo, refl = np.asarray(d["reduced_albedo"]), np.asarray(d["reflectance"])
    for k in (3, 15):
        fresh = mk.mc_half_space(float(albedo[k]), n_photons=20000, seed=1000 + k)
        assert fresh == pytest.approx(refl[k], rel=0.03)
    from skinimg.phantom.ensemble import _farrell, _monte_carlo

    musp = np.array([40.0])
    for mua in (0.01, 0.1):
        assert float(_monte_carlo(np.array([mua]), musp)[0]) == pytest.approx(
            float(_farrell(np.array([mua]), musp, 1.4)[0]), rel=0.01)


def test_held_out_members_were_not_used_to_fit_the_basis():
    prov = I.load_basis().provenance
    assert set(prov["members"]) == set(FIT_MEMBERS)
    assert not set(HELD_OUT_MEMBERS) & set(prov["members"])
    assert {MEMBERS[k].family for k in HELD_OUT_MEMBERS} - {MEMBERS[k].family for k in FIT_MEMBERS} == {"mc"}


def test_no_index_of_chromaticity_can_read_every_held_out_member_within_4_points():
    """The target of issue 26 (-20 % blood reads -20 +- 4 % on every held-out member) is out of reach of any index
    that is a smooth function of chromaticity: at one colour the held-out members' skins move by steps whose
    lengths differ almost three-fold for the same -20 % (p = d ln OD_blood / d ln blood is 0.5 in a diffusion dermis,
    1.0 in a Beer-Lambert one), and the best gradient (a linear programme) still reads one of them outside
    -24..-16 %.  The central model reads the same colours within 1.5 points of that optimum over all 13 members."""
    from skinimg.train.chromo_bound import best_reading, blood_exponent, central_readings

    for ita in (48.0, 20.0):
        b = best_reading(HELD_OUT_MEMBERS, ita)
        assert len(b["readings"]) >= 4, b["outside"]
        assert b["hi"] > -16.0 and b["lo"] < -24.0, (ita, b["lo"], b["hi"])
        assert b["step_ratio"] > 2.5
        assert b["exponents"]["diff_j13"] == pytest.approx(0.5, abs=0.05)
        assert b["exponents"]["mbll_j98"] == pytest.approx(1.0, abs=0.05)
    b = best_reading(FIT_MEMBERS + HELD_OUT_MEMBERS, 48.0)
    central = central_readings(b["states"]).values()
    worst_best = max(b["hi"] + 20.0, -20.0 - b["lo"])
    assert max(abs(c + 20.0) for c in central) <= worst_best + 1.5
    assert blood_exponent(MEMBERS["mc_j13"], 0.05, MEMBERS["mc_j13"].typical_blood) < 0.65


# ----------------------------------------------------------------------------- precomputed tables


def test_stored_candidate_table_is_the_computed_one():
    model = I.load_basis().model
    tables = I.load_tables()
    lo, step, table = I.compute_candidate_table(model)
    assert np.abs(tables["central_candidates"] - table).max() <= 1e-6
    np.testing.assert_allclose(tables["central_lo"], lo, atol=1e-12)
    np.testing.assert_allclose(tables["central_step"], step, atol=1e-12)
    prov = json.loads((ROOT / "models" / "chromophore_tables.json").read_text())
    import hashlib

    assert prov["sha256"] == hashlib.sha256((ROOT / "models" / "chromophore_tables.npz").read_bytes()).hexdigest()
    assert prov["basis_sha256"] == I.basis_digest()


def test_indices_from_stored_tables_equal_those_from_a_computed_table(monkeypatch):
    ph = render_phantom(PhantomSpec(melanin=0.2, hemoglobin=0.02, seed=4, size=(160, 200)))
    row, _ = I.measure(ph.image, ph.mask, return_maps=False)
    from skinimg.indices import chromophores

    monkeypatch.setattr(chromophores, "load_tables", lambda *a, **k: None)
    chromophores._candidate_table.cache_clear()
    try:
        row2, _ = I.measure(ph.image, ph.mask, return_maps=False)
    finally:
        chromophores._candidate_table.cache_clear()
    for k in ("hemoglobin", "melanin", "hemoglobin_p90", "melanin_median"):
        assert row2[k] == pytest.approx(row[k], abs=1e-6), k


# ----------------------------------------------------------------------------- changes on held-out members


def _pair(m, spec, **change):
    a = render_phantom(spec, optics=m)
    b = render_phantom(replace(spec, **change), optics=m)
    branch = I.choose_shared_branch([(a.image, a.mask), (b.image, b.mask)])
    p = I.IndexParams(branch=branch)
    ra = I.measure(a.image, a.mask, params=p, return_maps=False)[0]
    rb = I.measure(b.image, b.mask, params=p, return_maps=False)[0]
    return a, b, ra, rb


@pytest.mark.parametrize("name", HELD_OUT_MEMBERS)
def test_blood_change_on_held_out_members_lies_in_the_model_range(name):
    """A -20 % blood change of a held-out member (light and intermediate skin, JPEG 90): the central reading
    falls inside the fit members' range, the range holds the truth within 3 percentage points (km2_eupheo, with
    6 % surface reflection and 95 % saturation just outside the fit members' parameters, reads -17 % for -20 %),
    and the log-log slope stays within the spread of the ensemble's dermis models (0.45-1.8: homogeneous dermis
    ... Beer-Lambert).  On tan and darker skin the range misses more: see the table in docs/indices.md."""
    m = MEMBERS[name]
    for ita in (48.0, 35.0):
        spec = PhantomSpec(melanin=TE.tone_melanin(m, ita), hemoglobin=m.typical_blood, seed=12, size=(160, 200),
                           jpeg_quality=90)
        a, b, ra, rb = _pair(m, spec, hemoglobin_scale=0.8)
        pct = 100 * (rb["hemoglobin"] / ra["hemoglobin"] - 1)
        slope = math.log(rb["hemoglobin"] / ra["hemoglobin"]) / math.log(0.8)
        assert 0.45 < slope < 1.8, (name, ita, pct)
        brs = I.shared_member_branches([(a.image, a.mask), (b.image, b.mask)])
        ma, mb = I.member_maps(a.image, a.mask, branches=brs), I.member_maps(b.image, b.mask, branches=brs)
        by = [100 * (np.nanmean(mb[k]["hemoglobin"]) / np.nanmean(ma[k]["hemoglobin"]) - 1) for k in ma]
        assert min(by) - 3 <= -20 <= max(by) + 3, (name, ita, by)
        assert min(by) - 1 <= pct <= max(by) + 1, (name, ita, pct, by)


def test_hemoglobin_ranks_blood_and_ignores_melanin_on_a_held_out_member():
    m = MEMBERS["mbll_j98"]
    true_b, true_m, hb = [], [], []
    for i, ita in enumerate((55.0, 35.0, 15.0)):
        for j, lev in enumerate((0.5, 1.0, 2.0)):
            ph = render_phantom(PhantomSpec(melanin=TE.tone_melanin(m, ita), hemoglobin=lev * m.typical_blood,
                                            seed=30 + 3 * i + j, size=(160, 200)), optics=m)
            true_b.append(ph.truth["hemoglobin_mean"])
            true_m.append(ph.truth["melanin_mean"])
            hb.append(I.measure(ph.image, ph.mask, return_maps=False)[0]["hemoglobin"])
    from scipy.stats import spearmanr

    assert spearmanr(hb, true_b)[0] >= 0.95
    assert abs(spearmanr(hb, true_m)[0]) <= 0.35


# ----------------------------------------------------------------------------- exposure and shading


def _encode(lin: np.ndarray, kind: str) -> np.ndarray:
    enc = C.linear_to_srgb(np.clip(lin, 0.0, 1.0).astype(np.float32))
    if kind == "float":
        return enc
    if kind == "uint16":
        return np.clip(np.rint(enc * 65535.0), 0, 65535).astype(np.uint16)
    return np.clip(np.rint(enc * 255.0), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("kind,tol", [("float", 1e-4), ("uint16", 0.05), ("uint8", 0.5)])
def test_hemoglobin_is_invariant_to_a_pure_gain(kind, tol):
    """The same linear image scaled by 0.8 / 1.25 (the branch held, as compare does): haemoglobin moves by at most
    ``tol`` % (exactly invariant up to rounding: it is read from chromaticity)."""
    m = MEMBERS["mbll_j98"]
    ph = render_phantom(PhantomSpec(melanin=TE.tone_melanin(m, 30.0), hemoglobin=m.typical_blood, seed=5,
                                    size=(160, 200), noise=0.0), optics=m)
    base = _encode(ph.linear * np.float32(0.9), kind)
    branch = I.choose_branch(C.rgb_to_optical_density(base[ph.mask]), I.load_basis().model)
    p = I.IndexParams(branch=branch)
    h0 = I.measure(base, ph.mask, params=p, return_maps=False)[0]["hemoglobin"]
    for g in (0.8, 1.25):
        h = I.measure(_encode(ph.linear * np.float32(0.9 * g), kind), ph.mask, params=p, return_maps=False)[0]
        assert abs(100 * (h["hemoglobin"] / h0 - 1)) <= tol, (kind, g)


def test_exposure_on_jpeg_phantoms_moves_hemoglobin_little():
    """Pure exposure x0.8 / x1.25 on 8-bit JPEG (q 90) phantoms of a held-out member, 480 x 640: <= 1 % on light
    to tan skin, <= 2 % on brown and dark skin (branch shared by the pair)."""
    m = MEMBERS["mbll_j98"]
    for ita, tol in ((48.0, 1.0), (20.0, 1.0), (-10.0, 2.0), (-45.0, 2.0)):
        spec = PhantomSpec(melanin=TE.tone_melanin(m, ita), hemoglobin=m.typical_blood, seed=7, size=(480, 640),
                           jpeg_quality=90)
        for g in (0.8, 1.25):
            *_, ra, rb = _pair(m, spec, exposure=g)
            assert abs(100 * (rb["hemoglobin"] / ra["hemoglobin"] - 1)) <= tol, (ita, g)


def _border_band(mask):
    import cv2

    d = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
    return mask & (d < 0.03 * math.sqrt(mask.sum()))


@pytest.mark.parametrize("name", ["diff_j13", "mbll_j98"])
def test_melanin_does_not_rise_at_shaded_borders(name):
    """The same skin lit flat (shading 0) and with the phantoms' face shading (dimmer towards the borders):
    melanin in the border band moves by < 0.01 (corrected), where the uncorrected brightness step reads
    +0.02 to +0.04 of false pigment on light to brown skin; on dark skin (dark branch, no correction) it
    stays within 0.01 too."""
    m = MEMBERS[name]
    for ita in (48.0, -10.0, -45.0):
        spec = PhantomSpec(melanin=TE.tone_melanin(m, ita), hemoglobin=m.typical_blood, seed=9, size=(240, 320),
                           specular=0.0)
        flat, shaded = render_phantom(replace(spec, shading=0.0), optics=m), render_phantom(spec, optics=m)
        band = _border_band(shaded.mask) & flat.mask

        def rise(p):
            mf = I.compute_maps(flat.image, flat.mask, params=p)["melanin"]
            ms = I.compute_maps(shaded.image, shaded.mask, params=p)["melanin"]
            return float(np.nanmean(ms[band]) - np.nanmean(mf[band]))

        assert abs(rise(I.IndexParams())) < 0.01, (name, ita)
        if ita > -30:
            assert rise(I.IndexParams(shading_sigma=0)) > 0.02, (name, ita)


def test_brown_spot_field_ignores_a_shading_change_and_is_the_one_analyze_uses():
    """compute_maps(spot_map=True) returns the field analyze finds brown spots on (the chromaticity root on the
    light sheet): a stronger shading (x1.2, the light at another angle) leaves it within 0.003 on average where
    the shading-corrected melanin map moves by about 0.01, and detect_brown_spots on it gives analyze's count."""
    spec = PhantomSpec(melanin=0.06, hemoglobin=0.02, seed=3, size=(240, 320), spots=6)
    a, b = render_phantom(spec), render_phantom(replace(spec, shading=1.2))
    mask = a.mask & b.mask
    ma, mb = I.compute_maps(a.image, mask, spot_map=True), I.compute_maps(b.image, mask, spot_map=True)
    assert abs(float(np.nanmean(mb["spot_melanin"] - ma["spot_melanin"]))) < 0.003
    assert abs(float(np.nanmean(mb["melanin"] - ma["melanin"]))) > 0.005
    row, _ = I.measure(a.image, mask, return_maps=False)
    assert I.detect_brown_spots(ma["spot_melanin"], mask).count == row["brown_spot_count"] > 0


# ----------------------------------------------------------------------------- real photograph


@pytest.mark.parametrize("name", ["mbll_j98", "mc_j13"])
def test_red_papules_on_a_real_photo_rise_in_hemoglobin_not_melanin(name):
    """Papules (blood x2.5) and macules (melanin x2.5 + 0.03) of two held-out members (the one closest to issue 26's
    independent model, and the Monte Carlo dermis) rendered into the public-domain astronaut portrait (JPEG 90),
    three draws of 8 papules and 2-5 macules (the face has no room for more at their spacing; 12 macules in these
    draws): haemoglobin rises in every papule, with a median contrast at least the erythema index's (issue 26 asks
    for that on real lesions); melanin does not rise in papules but does in macules, where haemoglobin rises far
    less than the erythema index (which reads pigment as redness)."""
    res = lesion_summary(name, seeds=range(3))
    pap, mac = res["papule"], res["macule"]
    assert pap["hemoglobin"]["n"] == 24 and mac["melanin"]["n"] >= 9
    assert pap["hemoglobin"]["rises"] == 1.0
    assert pap["hemoglobin"]["median_contrast"] >= pap["erythema_index"]["median_contrast"]
    assert pap["melanin"]["median_contrast"] < 0.5
    assert mac["melanin"]["rises"] >= 0.9 and mac["melanin"]["median_contrast"] > 0.5
    assert mac["hemoglobin"]["median_contrast"] < 0.5 * mac["erythema_index"]["median_contrast"]

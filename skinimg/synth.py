"""Skin phantoms: synthetic photographs with known melanin and haemoglobin, from an optical model.

A phantom is a photograph rendered from a *known* skin: every skin pixel has a true
epidermal melanin volume fraction and a true dermal blood volume fraction, and the
photo goes through the things that make real measurements hard (illuminant, exposure,
camera pose, shading, specular highlights, hair, lips, eyes, clothing and skin-coloured
backgrounds, sensor noise, JPEG).  The truth is returned beside the photo so every
stage of skinimg (segmentation, indices, calibration, registration, before/after
statistics) can be tested against ground truth.

Optical model
-------------
Reflectance is computed at 61 wavelengths, 400-700 nm in 5 nm steps, from a
two-layer skin (epidermis over a semi-infinite dermis), then integrated to colour.

1. **Epidermis (melanin).**  Absorption of the melanosome interior
   ``mu_a,mel(l) = 6.6e11 * l**-3.33  cm^-1`` (``l`` in nm) and of the melanin-free
   tissue baseline ``mu_a,base(l) = 7.84e7 * l**-3.255 cm^-1`` [Jacques2013]_.  With
   ``f_mel`` = melanosome volume fraction (``melanin``; about 0.01 very light ... 0.45 very
   dark skin), ``mu_a,epi = f_mel mu_a,mel + (1 - f_mel) mu_a,base``.  The epidermis
   (thickness ``d = 60 um``) is a pure absorber crossed twice:
   ``T^2 = exp(-2 mu_a,epi d)``.
2. **Dermis (blood).**  ``mu_a,derm = B (S mu_a,HbO2 + (1 - S) mu_a,Hb) + (1 - B) mu_a,base``
   with ``B`` = blood volume fraction (``hemoglobin``; about 0.002 ... 0.1), oxygen
   saturation ``S = 0.75`` and ``mu_a = ln(10) * eps(l) * 150 g/L / 64500 g/mol``, where
   ``eps`` is the molar extinction coefficient of oxy- and deoxyhaemoglobin
   [Prahl1999]_ (tabulated at 10 nm, interpolated log-linearly to 5 nm).  Reduced
   scattering ``mu_s'(l) = 46 (l / 500 nm)^-1.4 cm^-1`` [Jacques2013]_.
3. **Dermal diffuse reflectance** of a semi-infinite turbid medium from diffusion theory
   [Farrell1992]_: with ``a' = mu_s' / (mu_a + mu_s')``,
   ``R_d = (a'/2) (1 + exp(-(4/3) A sqrt(3 (1 - a')))) exp(-sqrt(3 (1 - a')))``, where
   ``A = (1 + r_id) / (1 - r_id)`` accounts for the refractive-index mismatch (n = 1.4;
   internal diffuse reflection ``r_id`` from the polynomial of Egan and Hilgeman
   [Groenhuis1983]_, giving ``A = 3.25``).
4. **Surface.**  Fresnel reflection at normal incidence ``r_s = ((n - 1) / (n + 1))^2 = 0.028``
   (spectrally flat) plus the body reflection:
   ``R(l) = r_s + (1 - r_s) T^2(l) R_d(l)``.

**Colour.**  ``X = k sum R(l) E(l) xbar(l)`` (likewise Y, Z) with the CIE 1931 2 degree
colour matching functions and the relative spectral power ``E`` of the illuminant
(D65, D50, D75, A, FL2, FL11), ``k`` chosen so that a perfect white reflector has
``Y = 1`` under every illuminant [CIE015]_.  XYZ goes to linear sRGB with
:data:`skinimg.colour.XYZ_TO_SRGB` **without** chromatic adaptation: a tungsten (A) or
fluorescent (FL11) scene has the colour cast a camera set to daylight white balance
would record.  The tables (CMFs, illuminants, ColorChecker reflectances) are in
``skinimg/data/spectra.json``, generated once from colour-science by
``skinimg/data/make_spectra.py`` (CIE and BabelColor data; BSD-3 distribution).

With these constants the tone ladder spans ITA = atan2(L* - 50, b*) from about +64
degrees (``melanin = 0.01``) to about -50 degrees (``melanin = 0.45``), L* from 77 to 31
and a* from 8 to 20 (asserted in ``tests/test_synth.py``), consistent with the
colorimetric ranges of Del Bino et al. [DelBino2006]_.

For speed, photos are rendered through a precomputed 241 x 241 table of linear RGB
over (melanin in [0, 0.6], hemoglobin in [0, 0.3]), nodes equally spaced in the square
root of the concentrations, with bilinear interpolation (``cv2.remap``, 1/32-cell
sub-steps); :func:`skin_linear_rgb` evaluates the spectra exactly.  Concentration
maps are clipped to the table range.

Scene
-----
The scene is built in a canonical frame 1.5 times larger than the photo (so a pose
never exposes an empty border), in units of ``u = min(H, W)`` pixels, so that the same
``seed`` gives the same person at any pose.  The camera pose ``(dx, dy, rotation,
scale)`` then maps canonical pixels to the photo (``cv2.warpAffine``; the truth maps
with the same matrix, the mask and labels with nearest-neighbour).  Contents:

* skin: a face (ellipsoid shading, soft Blinn-Phong highlight, natural cheek flush,
  neck shadowed under the jaw) or a forearm (cylinder shading), with low-frequency
  chromophore variation (+-12 % melanin, +-15 % blood), fine micro-texture (+-8 %
  melanin, pores and relief as shading) that gives feature detectors hundreds of
  key points;
* ``spots`` brown macules: irregular super-Gaussian blobs of radius 0.006-0.022 u
  (about 1.5-6 mm on a face 14 cm wide), melanin raised by 1-2.5 x the local value
  plus 0.03;
* ``red_patches``: blotchy Gaussian patches of radius 0.03-0.08 u, blood raised by
  1-2 x plus 0.01;
* distractors (truth mask false): ``hair`` (mass and single strands over the skin,
  black/brown/auburn/blond/grey), ``lips`` (rendered with the skin model at high blood,
  so they are skin-coloured red), ``eye`` (sclera, iris, pupil, brows), ``clothing``
  (including beige and pink), ``shadow`` (a cast shadow on the background);
* background ``wall`` (beige plaster), ``wood`` (planks with grain), ``cloth``
  (woven, with folds), ``dark``, ``blue`` (backdrop) or ``grey``;
* optional 24-patch ColorChecker, spectrally rendered, with a small perspective tilt.

Camera: optical blur (Gaussian, ``blur`` px), exposure gain in linear RGB, Poisson-
Gaussian sensor noise ``var(x) = noise^2 x + (noise / 10)^2`` in linear units, the
Gaussian approximation of [Foi2008]_, clipping, sRGB encoding, optional JPEG.
Everything is deterministic from ``seed`` and ``noise_seed``.

References
----------
.. [Jacques2013] Jacques, S. L. (2013). Optical properties of biological tissues: a
   review. Physics in Medicine and Biology 58(11), R37-R61.
   https://doi.org/10.1088/0031-9155/58/11/R37
.. [Prahl1999] Prahl, S. (1999). Tabulated molar extinction coefficient for hemoglobin
   in water. Oregon Medical Laser Center, https://omlc.org/spectra/hemoglobin/
.. [Farrell1992] Farrell, T. J., Patterson, M. S. and Wilson, B. (1992). A diffusion
   theory model of spatially resolved, steady-state diffuse reflectance for the
   noninvasive determination of tissue optical properties in vivo. Medical Physics
   19(4), 879-888. https://doi.org/10.1118/1.596777
.. [Groenhuis1983] Groenhuis, R. A. J., Ferwerda, H. A. and Ten Bosch, J. J. (1983).
   Scattering and absorption of turbid materials determined from reflection
   measurements. 1: Theory. Applied Optics 22(16), 2456-2462.
   https://doi.org/10.1364/AO.22.002456
.. [CIE015] CIE 015:2018, Colorimetry, 4th edition. https://doi.org/10.25039/TR.015.2018
.. [DelBino2006] Del Bino, S., Sok, J., Bessac, E. and Bernerd, F. (2006). Relationship
   between skin response to ultraviolet exposure and skin color type. Pigment Cell
   Research 19(6), 606-614. https://doi.org/10.1111/j.1600-0749.2006.00338.x
.. [Chardon1991] Chardon, A., Cretois, I. and Hourseau, C. (1991). Skin colour typology
   and suntanning pathways. International Journal of Cosmetic Science 13(4), 191-208.
   https://doi.org/10.1111/j.1467-2494.1991.tb00561.x
.. [Foi2008] Foi, A., Trimeche, M., Katkovnik, V. and Egiazarian, K. (2008). Practical
   Poissonian-Gaussian noise modeling and fitting for single-image raw-data. IEEE
   Transactions on Image Processing 17(10), 1737-1754.
   https://doi.org/10.1109/TIP.2008.2001399
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from . import colour as _colour
from .indices import ita_category, ita_deg

__all__ = [
    "ASTRONAUT_SKIN",
    "astronaut_skin_mask",
    "WAVELENGTHS_NM",
    "ILLUMINANTS",
    "BACKGROUNDS",
    "DISTRACTORS",
    "LABELS",
    "SkinOptics",
    "PhantomSpec",
    "Phantom",
    "skin_reflectance",
    "reflectance_to_linear_rgb",
    "skin_linear_rgb",
    "render_chart_patches",
    "illuminant_white",
    "ita_degrees",
    "ita_category",
    "render_phantom",
    "write_phantom",
    "pose_matrix",
    "relative_pose",
    "chart_patch_names",
    "SETS",
    "SET_EXPOSURE",
    "LADDER_TONES",
    "PlannedImage",
    "plan_set",
    "write_set",
]

#: Wavelength grid of the model, nm (400-700 step 5), float64.
WAVELENGTHS_NM = np.arange(400.0, 701.0, 5.0)

#: Accepted illuminant names -> CIE table name.
ILLUMINANTS = {
    "D65": "D65",
    "D50": "D50",
    "D75": "D75",
    "cool": "D75",
    "A": "A",
    "tungsten": "A",
    "F2": "FL2",
    "FL2": "FL2",
    "F11": "FL11",
    "FL11": "FL11",
    "fluorescent": "FL11",
}
BACKGROUNDS = ("wall", "wood", "cloth", "dark", "blue", "grey")
DISTRACTORS = ("hair", "lips", "eye", "clothing", "shadow")
SITES = ("face", "forearm")
#: Codes of :attr:`Phantom.labels`.
LABELS = {"background": 0, "skin": 1, "hair": 2, "lips": 3, "eye": 4, "clothing": 5, "chart": 6}
# Prahl (1999) molar extinction coefficients, cm^-1 / (mol/L), 400..700 nm step 10.
_HBO2_10NM = np.array([
    266232, 466816, 480360, 246072, 102580, 62816, 44480, 33209, 26629, 23684, 20933, 20035, 24202, 39957,
    53236, 43016, 32613, 44496, 50104, 14401, 3200, 1506, 942, 610, 442, 368, 320, 294, 278, 276, 290,
], dtype=np.float64)
_HB_10NM = np.array([
    223296, 303956, 407560, 528600, 413280, 103292, 23389, 16156, 14550, 16684, 20035, 25774, 31590, 39036,
    46592, 53412, 53788, 45072, 37020, 28324, 14677, 9444, 6510, 5149, 4345, 3750, 3227, 2795, 2408, 2176, 1794,
], dtype=np.float64)

_MEL_MAX = 0.6
_HB_MAX = 0.3
_TABLE_N = 241


# ----------------------------------------------------------------------------- optical model


@dataclass(frozen=True)
class SkinOptics:
    """Constants of the two-layer skin model (see the module docstring; recorded in truth).

    Attributes
    ----------
    epidermis_thickness_cm : float
        Epidermal thickness ``d`` (60 um).
    oxygen_saturation : float
        Dermal blood oxygen saturation ``S``.
    hemoglobin_g_per_l : float
        Haemoglobin concentration of whole blood (150 g/L).
    hemoglobin_molar_mass : float
        g/mol (64 500).
    musp_500_per_cm : float
        Dermal reduced scattering at 500 nm, cm^-1 (Jacques 2013).
    musp_power : float
        Scattering power ``b`` in ``mu_s' = musp_500 (l/500)^-b``.
    refractive_index : float
        Tissue refractive index (surface Fresnel term and diffusion boundary).
    """

    epidermis_thickness_cm: float = 0.006
    oxygen_saturation: float = 0.75
    hemoglobin_g_per_l: float = 150.0
    hemoglobin_molar_mass: float = 64500.0
    musp_500_per_cm: float = 46.0
    musp_power: float = 1.4
    refractive_index: float = 1.4

    def to_dict(self) -> dict:
        return asdict(self)


DEFAULT_OPTICS = SkinOptics()


@lru_cache(maxsize=1)
def _spectra() -> dict:
    path = Path(__file__).with_name("data") / "spectra.json"
    with open(path, encoding="utf-8") as fh:
        d = json.load(fh)
    wl = np.asarray(d["wavelengths_nm"], dtype=np.float64)
    if not np.array_equal(wl, WAVELENGTHS_NM):  # pragma: no cover - packaging error
        raise RuntimeError("skinimg/data/spectra.json does not match the model wavelength grid")
    cmf = np.stack([np.asarray(d["cmf_1931_2deg"][k], dtype=np.float64) for k in "xyz"], axis=1)
    return {
        "cmf": cmf,
        "illuminants": {k: np.asarray(v, dtype=np.float64) for k, v in d["illuminants"].items()},
        "checker_names": list(d["colorchecker_names"]),
        "checker": np.asarray(d["colorchecker_reflectance"], dtype=np.float64),
        "provenance": d["provenance"],
    }


@lru_cache(maxsize=None)
def _absorption(optics: SkinOptics) -> dict:
    wl = WAVELENGTHS_NM
    w10 = np.arange(400.0, 701.0, 10.0)
    eps_oxy = np.exp(np.interp(wl, w10, np.log(_HBO2_10NM)))
    eps_deoxy = np.exp(np.interp(wl, w10, np.log(_HB_10NM)))
    conv = math.log(10.0) * optics.hemoglobin_g_per_l / optics.hemoglobin_molar_mass
    return {
        "mel": 6.6e11 * wl**-3.33,
        "base": 7.84e7 * wl**-3.255,
        "blood": conv * (optics.oxygen_saturation * eps_oxy + (1.0 - optics.oxygen_saturation) * eps_deoxy),
        "musp": optics.musp_500_per_cm * (wl / 500.0) ** -optics.musp_power,
    }


def _boundary_a(n: float) -> float:
    r_id = -1.440 / n**2 + 0.710 / n + 0.668 + 0.0636 * n
    return (1.0 + r_id) / (1.0 - r_id)


def skin_reflectance(melanin, hemoglobin, *, optics: SkinOptics = DEFAULT_OPTICS) -> np.ndarray:
    """Diffuse spectral reflectance of skin, 400-700 nm step 5 nm (module docstring, steps 1-4).

    Parameters
    ----------
    melanin : array_like, float, any shape
        Epidermal melanosome volume fraction in [0, 1] (0.01 very light ... 0.45 dark).
    hemoglobin : array_like, float, broadcastable with ``melanin``
        Dermal blood volume fraction in [0, 1] (0.002 ... 0.1).
    optics : SkinOptics
        Model constants.

    Returns
    -------
    ndarray, float64, shape (..., 61): reflectance in [0, 1] at :data:`WAVELENGTHS_NM`.
    """
    mel, blood = np.broadcast_arrays(np.asarray(melanin, dtype=np.float64), np.asarray(hemoglobin, dtype=np.float64))
    mel = mel[..., None]
    blood = blood[..., None]
    ab = _absorption(optics)
    mua_epi = mel * ab["mel"] + (1.0 - mel) * ab["base"]
    t2 = np.exp(-2.0 * mua_epi * optics.epidermis_thickness_cm)
    mua_d = blood * ab["blood"] + (1.0 - blood) * ab["base"]
    a = ab["musp"] / (mua_d + ab["musp"])
    s = np.sqrt(3.0 * (1.0 - a))
    big_a = _boundary_a(optics.refractive_index)
    rd = (a / 2.0) * (1.0 + np.exp(-(4.0 / 3.0) * big_a * s)) * np.exp(-s)
    n = optics.refractive_index
    r_s = ((n - 1.0) / (n + 1.0)) ** 2
    return r_s + (1.0 - r_s) * t2 * rd


def _illuminant_key(illuminant: str) -> str:
    try:
        return ILLUMINANTS[illuminant]
    except KeyError:
        raise ValueError(f"unknown illuminant {illuminant!r}; choose one of {', '.join(ILLUMINANTS)}") from None


@lru_cache(maxsize=None)
def _rgb_matrix(illuminant: str) -> np.ndarray:
    """(61, 3) matrix: reflectance spectrum -> linear sRGB under ``illuminant`` (white Y = 1)."""
    sp = _spectra()
    e = sp["illuminants"][_illuminant_key(illuminant)]
    cmf = sp["cmf"]
    k = 1.0 / float(e @ cmf[:, 1])
    return (e[:, None] * cmf * k) @ _colour.XYZ_TO_SRGB.T


def reflectance_to_linear_rgb(reflectance, illuminant: str = "D65") -> np.ndarray:
    """Integrate reflectance spectra to linear sRGB under an illuminant (no white balance).

    Parameters
    ----------
    reflectance : array_like, shape (..., 61)
        Reflectance at :data:`WAVELENGTHS_NM`.
    illuminant : str
        A key of :data:`ILLUMINANTS`.

    Returns
    -------
    ndarray, float32, shape (..., 3): linear R, G, B (a perfect white under D65 is (1, 1, 1)
    up to the 4-decimal sRGB matrix; other illuminants give their colour cast).
    """
    r = np.asarray(reflectance, dtype=np.float64)
    return (r @ _rgb_matrix(illuminant)).astype(np.float32)


def illuminant_white(illuminant: str = "D65") -> np.ndarray:
    """Linear sRGB of a perfect white reflector under ``illuminant``; float32 (3,)."""
    return reflectance_to_linear_rgb(np.ones(WAVELENGTHS_NM.size), illuminant)


def skin_linear_rgb(melanin, hemoglobin, illuminant: str = "D65", *, optics: SkinOptics = DEFAULT_OPTICS) -> np.ndarray:
    """Linear sRGB of skin with the given chromophore concentrations (exact spectral model).

    Parameters
    ----------
    melanin, hemoglobin : array_like, float, broadcastable, any shape
        Volume fractions (see :func:`skin_reflectance`).
    illuminant : str
        "D65" (default), "D50", "D75"/"cool", "A"/"tungsten", "F2", "F11"/"fluorescent".
    optics : SkinOptics

    Returns
    -------
    ndarray, float32, shape (..., 3): linear R, G, B of flat, fully lit skin
    (no shading, no specular), a perfect white being Y = 1.

    Notes
    -----
    Vectorised and evaluated in chunks of 2**16 values to bound memory.
    """
    mel, hb = np.broadcast_arrays(np.asarray(melanin, dtype=np.float64), np.asarray(hemoglobin, dtype=np.float64))
    shape = mel.shape
    mel = mel.reshape(-1)
    hb = hb.reshape(-1)
    out = np.empty((mel.size, 3), dtype=np.float32)
    m = _rgb_matrix(illuminant)
    step = 1 << 16
    for i in range(0, mel.size, step):
        out[i : i + step] = (skin_reflectance(mel[i : i + step], hb[i : i + step], optics=optics) @ m).astype(np.float32)
    return out.reshape(shape + (3,))


@lru_cache(maxsize=16)
def _skin_table(illuminant: str, optics: SkinOptics) -> np.ndarray:
    """(N_hb, N_mel, 3) float32 linear RGB on a grid over melanin [0, 0.6] x hemoglobin [0, 0.3].

    Nodes are equally spaced in sqrt(concentration), so the grid is densest near 0.
    """
    q = np.linspace(0.0, 1.0, _TABLE_N) ** 2  # square-root spacing: finer where colour changes fastest
    mel = q * _MEL_MAX
    hb = q * _HB_MAX
    mm, hh = np.meshgrid(mel, hb)
    return np.ascontiguousarray(skin_linear_rgb(mm, hh, illuminant, optics=optics))


def _table_lookup(melanin: np.ndarray, hemoglobin: np.ndarray, illuminant: str, optics: SkinOptics) -> np.ndarray:
    """Bilinear lookup of linear RGB for 2-D concentration maps (float32 (H, W, 3))."""
    table = _skin_table(illuminant, optics)
    mx = np.sqrt(np.clip(melanin, 0, None, dtype=np.float32) * np.float32(1.0 / _MEL_MAX)) * np.float32(_TABLE_N - 1)
    my = np.sqrt(np.clip(hemoglobin, 0, None, dtype=np.float32) * np.float32(1.0 / _HB_MAX)) * np.float32(_TABLE_N - 1)
    return cv2.remap(table, mx, my, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def render_chart_patches(illuminant: str = "D65") -> np.ndarray:
    """Linear sRGB of the 24 ColorChecker Classic patches rendered spectrally.

    Parameters
    ----------
    illuminant : str
        A key of :data:`ILLUMINANTS`.

    Returns
    -------
    ndarray, float32, shape (24, 3): row-major X-Rite order (dark skin, light skin,
    blue sky, ..., black), from the BabelColor average spectra (Pascale 2006).
    """
    return reflectance_to_linear_rgb(_spectra()["checker"], illuminant)


def chart_patch_names() -> list[str]:
    """Names of the 24 ColorChecker patches in :func:`render_chart_patches` order."""
    return list(_spectra()["checker_names"])


def ita_degrees(lab: np.ndarray) -> np.ndarray:
    """ITA in degrees of CIELAB values (shape (..., 3)): :func:`skinimg.indices.ita_deg` of L* and b*."""
    lab = np.asarray(lab, dtype=np.float32)
    return ita_deg(lab[..., 0], lab[..., 2])


# ----------------------------------------------------------------------------- material colours


def _spectrum_from_srgb(rgb8) -> np.ndarray:
    """A smooth reflectance spectrum whose D65 colour is close to the given 8-bit sRGB.

    Three smooth basis functions (blue, green, red regions, summing to one so that a
    neutral colour gets a flat spectrum) weighted to match the target; weights are
    clipped to [0.003, 1] (saturated targets are approached, not reached).
    """
    wl = WAVELENGTHS_NM
    b1 = 1.0 / (1.0 + np.exp((wl - 490.0) / 14.0))
    b3 = 1.0 / (1.0 + np.exp(-(wl - 590.0) / 14.0))
    basis = np.stack([b3, 1.0 - b1 - b3, b1], axis=1)  # (61, 3) red, green, blue
    target = _colour.srgb_to_linear(np.asarray(rgb8, dtype=np.uint8)).astype(np.float64)
    m = basis.T @ _rgb_matrix("D65")  # (3 basis, 3 rgb)
    c = np.linalg.solve(m.T, target)
    return basis @ np.clip(c, 0.003, 1.0)


def _material(rgb8, illuminant: str) -> np.ndarray:
    return reflectance_to_linear_rgb(_spectrum_from_srgb(rgb8), illuminant)


_WALLS = ((214, 196, 170), (205, 185, 158), (222, 210, 190), (200, 176, 150))
_WOODS = (((176, 124, 82), (204, 156, 108)), ((150, 100, 64), (184, 134, 92)), ((196, 160, 120), (222, 190, 150)))
_CLOTHS = ((70, 90, 120), (120, 60, 60), (90, 110, 90), (170, 160, 150))
_CLOTHES = ((200, 172, 142), (228, 226, 220), (42, 52, 82), (150, 42, 48), (62, 100, 72), (118, 118, 124), (212, 152, 150))
_HAIRS = ((24, 20, 18), (58, 40, 28), (98, 68, 44), (186, 154, 106), (124, 58, 34), (160, 158, 152))
_IRISES = ((92, 60, 36), (78, 108, 140), (88, 108, 70))


# ----------------------------------------------------------------------------- spec


@dataclass(frozen=True)
class PhantomSpec:
    """Everything that defines a phantom (recorded in its truth).

    Attributes
    ----------
    melanin : float
        Base epidermal melanosome volume fraction (0.01 very light ... 0.45 dark).
    hemoglobin : float
        Base dermal blood volume fraction (0.002 ... 0.1; 0.01-0.02 typical).
    seed : int
        The skin and scene (texture, spots, hair, colours).  Same seed = same person.
    size : (int, int)
        Photo height and width in pixels (H, W).
    site : str
        "face" (face with eyes, lips, hair, neck, clothing) or "forearm".
    background : str
        One of :data:`BACKGROUNDS`.
    distractors : tuple of str
        Subset of :data:`DISTRACTORS` ("hair", "lips", "eye", "clothing", "shadow").
    spots, red_patches : int
        Number of brown spots (high melanin) and red patches (high blood).
    illuminant : str
        A key of :data:`ILLUMINANTS`; no white balance is applied.
    exposure : float
        Linear gain applied to the scene radiance (1 = a white wall at shading 1 reaches ~1).
    pose : (dx_px, dy_px, rotation_deg, scale)
        Camera pose: canonical scene -> photo, about the photo centre.
    hemoglobin_scale, melanin_scale : float
        Treatment effects: the whole skin map (spots and patches included) is multiplied.
    noise : float
        Sensor noise: ``var = noise^2 x + (noise/10)^2`` in linear units; 0 = none.
    noise_seed : int or None
        Seed of the sensor noise (default: ``seed``).  Change it for a retake.
    jpeg_quality : int or None
        When set, the photo is JPEG-compressed at this quality and decoded again.
    chart : bool
        Put a 24-patch ColorChecker in the frame (the face moves aside).
    blur : float
        Optical blur, Gaussian sigma in photo pixels.
    shading, specular, texture : float
        Strength multipliers (1 = default) of shape shading, specular highlight and skin micro-texture.
    """

    melanin: float = 0.05
    hemoglobin: float = 0.015
    seed: int = 0
    size: tuple[int, int] = (480, 640)
    site: str = "face"
    background: str = "wall"
    distractors: tuple[str, ...] = DISTRACTORS
    spots: int = 6
    red_patches: int = 2
    illuminant: str = "D65"
    exposure: float = 1.0
    pose: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)
    hemoglobin_scale: float = 1.0
    melanin_scale: float = 1.0
    noise: float = 0.01
    noise_seed: int | None = None
    jpeg_quality: int | None = None
    chart: bool = False
    blur: float = 0.6
    shading: float = 1.0
    specular: float = 1.0
    texture: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "size", tuple(int(v) for v in self.size))
        object.__setattr__(self, "pose", tuple(float(v) for v in self.pose))
        object.__setattr__(self, "distractors", tuple(self.distractors))
        h, w = self.size
        if len(self.size) != 2 or h < 64 or w < 64 or h * w > 80_000_000:
            raise ValueError(f"size must be (H, W) with both >= 64 and at most 80 megapixels, got {self.size}")
        if not 0.0 <= self.melanin <= _MEL_MAX:
            raise ValueError(f"melanin must be in [0, {_MEL_MAX}], got {self.melanin}")
        if not 0.0 <= self.hemoglobin <= _HB_MAX:
            raise ValueError(f"hemoglobin must be in [0, {_HB_MAX}], got {self.hemoglobin}")
        if self.site not in SITES:
            raise ValueError(f"site must be one of {SITES}, got {self.site!r}")
        if self.background not in BACKGROUNDS:
            raise ValueError(f"background must be one of {BACKGROUNDS}, got {self.background!r}")
        bad = [d for d in self.distractors if d not in DISTRACTORS]
        if bad:
            raise ValueError(f"unknown distractors {bad}; choose from {DISTRACTORS}")
        _illuminant_key(self.illuminant)
        if len(self.pose) != 4 or not self.pose[3] > 0:
            raise ValueError(f"pose must be (dx, dy, rotation_deg, scale > 0), got {self.pose}")
        if not 0.5 <= self.pose[3] <= 2.0 or abs(self.pose[2]) > 45:
            raise ValueError(f"pose scale must be in [0.5, 2] and |rotation| <= 45 degrees, got {self.pose}")
        if self.exposure <= 0 or self.hemoglobin_scale < 0 or self.melanin_scale < 0 or self.noise < 0:
            raise ValueError("exposure must be > 0; hemoglobin_scale, melanin_scale and noise must be >= 0")
        if self.spots < 0 or self.red_patches < 0:
            raise ValueError("spots and red_patches must be >= 0")
        if self.jpeg_quality is not None and not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in [1, 100] or None, got {self.jpeg_quality}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["size"] = list(self.size)
        d["pose"] = list(self.pose)
        d["distractors"] = list(self.distractors)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "PhantomSpec":
        """Rebuild a spec from :meth:`to_dict` output (e.g. the ``spec`` of a truth JSON)."""
        d = dict(d)
        for k in ("size", "pose", "distractors"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)


@dataclass
class Phantom:
    """A rendered phantom.

    Attributes
    ----------
    image : ndarray, uint8, (H, W, 3)
        sRGB photo, RGB order.
    mask : ndarray, bool, (H, W)
        True skin (excludes hair, lips, eyes, clothing, chart).
    melanin, hemoglobin : ndarray, float32, (H, W)
        True volume fractions, NaN off skin.
    labels : ndarray, uint8, (H, W)
        Scene classes, codes in :data:`LABELS`.
    linear : ndarray, float32, (H, W, 3)
        Linear RGB after blur and exposure, before noise, clipping and encoding.
    truth : dict
        JSON-serialisable ground truth (means, spec, pose matrix, chart geometry ...).
    """

    image: np.ndarray
    mask: np.ndarray
    melanin: np.ndarray
    hemoglobin: np.ndarray
    labels: np.ndarray
    linear: np.ndarray
    truth: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- geometry helpers

_MARGIN = 1.5  # canonical frame / photo size


def _canonical_shape(size: tuple[int, int]) -> tuple[int, int]:
    h, w = size
    return int(round(h * _MARGIN)), int(round(w * _MARGIN))


def pose_matrix(spec: PhantomSpec) -> np.ndarray:
    """2x3 affine matrix mapping canonical-frame pixels to photo pixels for ``spec.pose``.

    ``photo = s R(theta) (p - c_canonical) + c_photo + (dx, dy)``; ``theta`` in degrees,
    positive counter-clockwise as seen in the photo (OpenCV convention).  float64.
    """
    h, w = spec.size
    hc, wc = _canonical_shape(spec.size)
    dx, dy, rot, scale = spec.pose
    t = math.radians(rot)
    al, be = scale * math.cos(t), scale * math.sin(t)
    ccx, ccy = (wc - 1) / 2.0, (hc - 1) / 2.0
    ocx, ocy = (w - 1) / 2.0 + dx, (h - 1) / 2.0 + dy
    return np.array(
        [[al, be, ocx - (al * ccx + be * ccy)], [-be, al, ocy - (-be * ccx + al * ccy)]], dtype=np.float64
    )


def relative_pose(spec_a: PhantomSpec, spec_b: PhantomSpec) -> np.ndarray:
    """2x3 affine matrix mapping photo-A pixels to photo-B pixels (same scene, two poses).

    Use ``cv2.warpAffine(b_array, relative_pose(a, b), (W_a, H_a), flags=cv2.WARP_INVERSE_MAP)``
    to bring B onto A, e.g. to undo a pose change in a test.
    """
    if _canonical_shape(spec_a.size) != _canonical_shape(spec_b.size):
        raise ValueError("relative_pose needs two phantoms of the same size")
    ma = np.vstack([pose_matrix(spec_a), [0.0, 0.0, 1.0]])
    mb = np.vstack([pose_matrix(spec_b), [0.0, 0.0, 1.0]])
    return (mb @ np.linalg.inv(ma))[:2]


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, stream])


class _Frame:
    """Canonical frame: shape, unit (pixels per scene unit) and coordinate vectors."""

    def __init__(self, spec: PhantomSpec):
        h, w = spec.size
        self.hc, self.wc = _canonical_shape(spec.size)
        self.u = float(min(h, w))
        # extent in units, from the aspect ratio only (same grids at every resolution)
        self.ext_y = _MARGIN * h / self.u
        self.ext_x = _MARGIN * w / self.u
        self.half_view = (w / (2.0 * self.u), h / (2.0 * self.u))
        self.x = ((np.arange(self.wc, dtype=np.float32) - (self.wc - 1) / 2.0) / self.u)[None, :]
        self.y = ((np.arange(self.hc, dtype=np.float32) - (self.hc - 1) / 2.0) / self.u)[:, None]

    def px(self, xn: float, yn: float) -> tuple[float, float]:
        return xn * self.u + (self.wc - 1) / 2.0, yn * self.u + (self.hc - 1) / 2.0

    def noise(self, rng: np.random.Generator, cells_x: float, cells_y: float | None = None,
              interp: int = cv2.INTER_CUBIC, grid_fn=None) -> np.ndarray:
        """Smooth noise with ``cells`` grid cells per scene unit (float32, canonical shape).

        A white Gaussian grid, sized from the aspect ratio only (so the same seed gives
        the same pattern at every resolution), is resized to the canonical frame.  Without
        ``grid_fn`` the result is normalised to zero mean and unit standard deviation;
        with it, ``grid_fn(grid)`` is resized as is.
        """
        cells_y = cells_x if cells_y is None else cells_y
        gw = int(math.ceil(self.ext_x * cells_x - 1e-9)) + 4
        gh = int(math.ceil(self.ext_y * cells_y - 1e-9)) + 4
        g = rng.standard_normal((gh, gw), dtype=np.float32)
        if grid_fn is not None:
            g = grid_fn(g).astype(np.float32)
        else:
            g = (g - np.float32(g.mean(dtype=np.float64))) / np.float32(g.std(dtype=np.float64))
        ow = max(int(round(gw * self.u / cells_x)), self.wc)
        oh = max(int(round(gh * self.u / cells_y)), self.hc)
        big = cv2.resize(g, (ow, oh), interpolation=interp)
        y0, x0 = (oh - self.hc) // 2, (ow - self.wc) // 2
        out = big[y0 : y0 + self.hc, x0 : x0 + self.wc]
        if grid_fn is not None:
            return np.ascontiguousarray(out)
        # interpolation lowers the variance; measure it on a sparse subsample (fast)
        sub = out[:: max(1, self.hc // 256), :: max(1, self.wc // 256)]
        sd = float(sub.std(dtype=np.float64))
        out = out * np.float32(1.0 / sd if sd > 0 else 1.0)
        return np.ascontiguousarray(out)


def _soft(d_units: np.ndarray, u: float) -> np.ndarray:
    """Coverage in [0, 1] from a signed distance in scene units (positive inside), 1-pixel ramp."""
    return np.clip(d_units * np.float32(u) + np.float32(0.5), 0.0, 1.0).astype(np.float32, copy=False)


def _bbox(alpha: np.ndarray, pad: int = 2) -> tuple[slice, slice] | None:
    rows = np.flatnonzero(alpha.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(alpha.any(axis=0))
    r0, r1 = max(rows[0] - pad, 0), min(rows[-1] + pad + 1, alpha.shape[0])
    c0, c1 = max(cols[0] - pad, 0), min(cols[-1] + pad + 1, alpha.shape[1])
    return slice(r0, r1), slice(c0, c1)


def _blend(img: np.ndarray, alpha: np.ndarray, layer_fn, labels: np.ndarray | None = None, code: int = 0) -> None:
    """img = img * (1 - alpha) + alpha * layer, evaluated only inside alpha's bounding box."""
    sl = _bbox(alpha > 0)
    if sl is None:
        return
    a = alpha[sl][..., None]
    layer = layer_fn(sl)
    sub = img[sl]
    sub += a * (layer - sub)
    if labels is not None:
        labels[sl][alpha[sl] >= 0.5] = code


def _draw_curves(shape: tuple[int, int], curves: list[np.ndarray], thickness: int, values=None) -> np.ndarray:
    """Anti-aliased polylines (points in canonical pixels, float) on a float32 canvas in [0, 1]."""
    canvas = np.zeros(shape, dtype=np.uint8)
    for i, pts in enumerate(curves):
        v = 255 if values is None else int(values[i])
        p = np.round(pts * 16.0).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(canvas, [p], False, v, thickness=thickness, lineType=cv2.LINE_AA, shift=4)
    return canvas.astype(np.float32) * np.float32(1.0 / 255.0)


def _bezier(p0, p1, p2, n: int = 24) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) ** 2 * np.asarray(p0) + 2 * (1 - t) * t * np.asarray(p1) + t**2 * np.asarray(p2)


# ----------------------------------------------------------------------------- scene


# key light from the upper left, near the camera axis (clinical photography: flash or soft box)
_LIGHT = np.array([-0.25, -0.3, 1.0]) / np.linalg.norm([-0.25, -0.3, 1.0])
_HALF = (_LIGHT + np.array([0.0, 0.0, 1.0])) / np.linalg.norm(_LIGHT + np.array([0.0, 0.0, 1.0]))
_AMBIENT = 0.35


def _lambert(nx, ny, nz, strength: float) -> np.ndarray:
    """Ambient + Lambert shading, 1 for a surface facing the camera (float32)."""
    lam = np.clip(nx * _LIGHT[0] + ny * _LIGHT[1] + nz * _LIGHT[2], 0.0, 1.0)
    shade = (np.float32(_AMBIENT) + np.float32(1 - _AMBIENT) * lam) / np.float32(_AMBIENT + (1 - _AMBIENT) * _LIGHT[2])
    return (1.0 + np.float32(strength) * (shade - 1.0)).astype(np.float32)


def _blinn(nx, ny, nz, power: float = 40.0) -> np.ndarray:
    c = np.clip(nx * _HALF[0] + ny * _HALF[1] + nz * _HALF[2], 0.0, 1.0)
    return (c**power).astype(np.float32)


class _Scene:
    """Builds the canonical-frame radiance, truth maps and labels for one spec."""

    def __init__(self, spec: PhantomSpec):
        self.spec = spec
        self.f = _Frame(spec)
        self.ill = spec.illuminant
        self.white = illuminant_white(self.ill)
        f = self.f
        shape = (f.hc, f.wc)
        self.img = np.zeros(shape + (3,), dtype=np.float32)
        self.labels = np.zeros(shape, dtype=np.uint8)
        self.choice = _rng(spec.seed, 1)
        c = self.choice
        self.wall_rgb = _WALLS[c.integers(len(_WALLS))]
        self.wood_rgb = _WOODS[c.integers(len(_WOODS))]
        self.cloth_bg_rgb = _CLOTHS[c.integers(len(_CLOTHS))]
        self.clothes_rgb = _CLOTHES[c.integers(len(_CLOTHES))]
        self.hair_rgb = _HAIRS[c.integers(len(_HAIRS))]
        self.iris_rgb = _IRISES[c.integers(len(_IRISES))]
        self.jitter = c.uniform(-1.0, 1.0, size=8)
        # shared texture fields (each from its own stream: adding one never shifts another)
        self.low = f.noise(_rng(spec.seed, 2), 2.5)
        self.mid = f.noise(_rng(spec.seed, 3), 10.0)
        self.micro = f.noise(_rng(spec.seed, 4), 160.0)
        self.fine = f.noise(_rng(spec.seed, 5), 300.0, interp=cv2.INTER_LINEAR)
        self.thin = max(1, int(round(f.u / 400.0)))

    # --- materials ------------------------------------------------------------------------
    def _mat(self, rgb8) -> np.ndarray:
        return _material(rgb8, self.ill)

    def background(self) -> None:
        f, spec = self.f, self.spec
        x, y = f.x, f.y
        light = np.float32(1.0) - np.float32(0.10) * (x + y) / np.float32(2.0)  # soft falloff from upper left
        kind = spec.background
        if kind == "wall":
            tex = 1 + 0.04 * self.low + 0.02 * self.mid + 0.025 * self.micro + 0.02 * self.fine
            col = self._mat(self.wall_rgb)
            self.img[:] = (tex * light)[..., None] * col
        elif kind == "wood":
            rng = _rng(spec.seed, 20)
            pw = 0.16 + 0.04 * float(rng.random())
            grain_n = f.noise(rng, 1.5, 25.0)
            yy = y + np.float32(0.0 * x)
            plank = np.floor(yy / np.float32(pw)).astype(np.int32)
            tone = rng.random(64).astype(np.float32)[(plank - plank.min()) % 64]
            phase = yy * np.float32(55.0) + np.float32(1.2) * grain_n + np.float32(0.3) * self.mid
            grain = np.float32(0.5) + np.float32(0.5) * np.sin(np.float32(2 * np.pi) * phase)
            t = np.clip(0.25 + 0.45 * tone + 0.3 * grain ** 3 - 0.15 * grain, 0, 1)[..., None]
            dark, lightc = self._mat(self.wood_rgb[0]), self._mat(self.wood_rgb[1])
            col = dark + t * (lightc - dark)
            frac = (yy / np.float32(pw)) - np.floor(yy / np.float32(pw))
            seam = np.minimum(frac, 1 - frac) * np.float32(pw * f.u)
            seam_f = np.float32(0.45) + np.float32(0.55) * np.clip(seam / 1.5, 0, 1)
            tex = (1 + 0.03 * self.micro + 0.02 * self.fine) * seam_f * light
            self.img[:] = col * tex[..., None]
        elif kind == "cloth":
            freq = np.float32(2 * np.pi * 110.0)
            weave = np.sin(freq * x) * np.sin(freq * y)
            folds = f.noise(_rng(spec.seed, 21), 1.2, 5.0)
            tex = (1 + 0.07 * weave + 0.12 * folds + 0.03 * self.micro) * light
            self.img[:] = tex[..., None] * self._mat(self.cloth_bg_rgb)
        elif kind == "dark":
            tex = (1 + 0.08 * self.low + 0.06 * self.micro) * light
            self.img[:] = tex[..., None] * self._mat((38, 36, 40))
        elif kind == "blue":
            tex = (1 + 0.05 * self.low + 0.02 * self.micro + 0.015 * self.fine) * light
            self.img[:] = tex[..., None] * self._mat((66, 104, 150))
        else:  # grey
            tex = (1 + 0.03 * self.low + 0.02 * self.micro) * light
            self.img[:] = tex[..., None] * self._mat((128, 128, 128))

    def cast_shadow(self, silhouette: np.ndarray) -> None:
        f = self.f
        # offset and blurred silhouette, computed at a reduced resolution (a soft shadow)
        k = max(1, int(f.u // 240))
        small = cv2.resize(silhouette, (f.wc // k, f.hc // k), interpolation=cv2.INTER_AREA)
        uk = f.u / k
        m = np.float32([[1, 0, 0.05 * uk], [0, 1, 0.035 * uk]])
        sh = cv2.warpAffine(small, m, (small.shape[1], small.shape[0]), flags=cv2.INTER_LINEAR, borderValue=0)
        sig = 0.015 * uk
        sh = cv2.GaussianBlur(sh, (0, 0), sigmaX=sig, sigmaY=sig)
        sh = cv2.resize(sh, (f.wc, f.hc), interpolation=cv2.INTER_LINEAR)
        self.img *= (1.0 - 0.5 * sh)[..., None]

    # --- skin geometry ------------------------------------------------------------------------
    def face_geometry(self) -> None:
        """Face (egg-shaped ellipsoid with a nose bump) and neck: coverage, normals, shading."""
        f, spec, j = self.f, self.spec, self.jitter
        fs = 0.85 if spec.chart else 1.0
        fcx = (-0.17 * f.half_view[0] / 0.667 if spec.chart else 0.0) + 0.02 * j[0]
        fcy = -0.03 + 0.02 * j[1]
        a, b = 0.26 * fs, 0.36 * fs
        self.face = dict(cx=fcx, cy=fcy, a=a, b=b, fs=fs)
        # all face computations happen in a window around head and neck (speed at large sizes)
        c0 = int(np.clip(math.floor(f.px(fcx - 1.35 * a, 0)[0]), 0, f.wc - 1))
        c1 = int(np.clip(math.ceil(f.px(fcx + 1.35 * a, 0)[0]) + 1, c0 + 1, f.wc))
        r0 = int(np.clip(math.floor(f.px(0, fcy - 1.25 * b)[1]), 0, f.hc - 1))
        self.fw = (slice(r0, f.hc), slice(c0, c1))
        x, y = f.x[:, self.fw[1]], f.y[self.fw[0]]
        yf = (y - np.float32(fcy)) / np.float32(b)
        a_eff = np.float32(a) * (1 - np.float32(0.18) * np.clip(yf, 0, 1) ** 2)
        xf = (x - np.float32(fcx)) / a_eff
        r = np.sqrt(xf * xf + yf * yf)
        face_a = _soft((1 - r) * np.float32(min(a, b)), f.u)
        nz = np.sqrt(np.clip(1 - r * r, 0, 1))
        # a flattened ellipsoid (depth/width 0.55 in the normal): cheeks and forehead face the camera
        nx, ny = np.float32(0.55) * xf, np.float32(0.55) * np.broadcast_to(yf, xf.shape)
        # nose: a Gaussian height bump down the middle of the face
        dxn = (x - np.float32(fcx)) / np.float32(0.035 * fs)
        dyn = (y - np.float32(fcy + 0.12 * b)) / np.float32(0.10 * fs)
        hb = np.exp(-(dxn * dxn) - (dyn * dyn) ** 2)
        nx += np.float32(0.9) * hb * dxn
        ny += np.float32(0.4) * hb * dyn
        norm = np.sqrt(nx * nx + ny * ny + nz * nz) + np.float32(1e-6)
        nx, ny, nz = nx / norm, ny / norm, nz / norm
        face_shade = _lambert(nx, ny, nz, spec.shading)
        face_spec = _blinn(nx, ny, nz)
        # neck: vertical cylinder below the face, in the jaw's shadow near the chin
        nw = 0.11 * fs
        tn = (x - np.float32(fcx)) / np.float32(nw)
        neck_a = np.minimum(_soft((1 - np.abs(tn)) * np.float32(nw), f.u), _soft(y - np.float32(fcy + 0.3 * b), f.u))
        nnz = np.sqrt(np.clip(1 - tn * tn, 0, 1))
        jaw = np.clip((y - np.float32(fcy + 0.9 * b)) / np.float32(0.15), 0, 1)
        neck_shade = _lambert(np.clip(tn, -1, 1), np.float32(0.0), nnz, spec.shading) * (0.55 + 0.45 * jaw)
        neck_shade = 1 + np.float32(spec.shading) * (neck_shade - 1)
        use_face = face_a > 0.02
        self.skin_alpha = self._embed(np.maximum(face_a, neck_a), 0.0)
        self.shade = self._embed(np.where(use_face, face_shade, neck_shade), 1.0)
        self.spec_map = self._embed(np.where(use_face, face_spec, _blinn(np.clip(tn, -1, 1), np.float32(0.0), nnz)), 0.0)
        self.face_alpha = face_a  # window arrays
        self.xf, self.yf = xf, yf

    def _embed(self, win_arr: np.ndarray, fill: float) -> np.ndarray:
        """A canonical-size float32 array equal to ``fill`` outside the face window."""
        out = np.full((self.f.hc, self.f.wc), fill, dtype=np.float32)
        out[self.fw] = win_arr
        return out

    def arm_geometry(self) -> None:
        """Forearm: a tapering cylinder across the frame."""
        f, spec, j = self.f, self.spec, self.jitter
        ang = math.radians(-8.0 + 4.0 * j[0])
        ca, sa = np.float32(math.cos(ang)), np.float32(math.sin(ang))
        oy = np.float32(0.02 + 0.03 * j[1] + (0.12 if spec.chart else 0.0))
        x, y = f.x, f.y
        s = x * ca + (y - oy) * sa
        t = -x * sa + (y - oy) * ca
        w = np.float32(0.19) - np.float32(0.035) * np.clip((s + 1.0) / 2.0, 0, 1)
        if spec.chart:
            w = w * np.float32(0.8)
        tn = t / w
        self.arm = dict(ang=ang, oy=float(oy), s=s, t=t, w=w)
        self.skin_alpha = _soft((1 - np.abs(tn)) * w, f.u)
        nz = np.sqrt(np.clip(1 - tn * tn, 0, 1))
        tc = np.clip(tn, -1, 1)
        nx, ny = -tc * sa, tc * ca
        self.shade = _lambert(nx, ny, nz, spec.shading)
        self.spec_map = _blinn(nx, ny, nz, 25.0)
        self.face_alpha = None

    # --- occluders (coverage only) -------------------------------------------------------------
    def face_occluders(self) -> dict:
        f, spec, j = self.f, self.spec, self.jitter
        fc = self.face
        fcx, fcy, a, b, fs = fc["cx"], fc["cy"], fc["a"], fc["b"], fc["fs"]
        x, y = f.x[:, self.fw[1]], f.y[self.fw[0]]
        occ: dict = {}
        d = spec.distractors
        if "lips" in d:
            yl = fcy + 0.62 * b
            wl, hu, hl = 0.078 * fs, 0.020 * fs, 0.026 * fs
            lx = (x - np.float32(fcx)) / np.float32(wl)
            inside = np.clip(1 - lx * lx, 0, 1)
            y_up = np.float32(yl) - np.float32(hu) * inside * (1 - 0.3 * np.exp(-(lx / 0.15) ** 2))
            y_lo = np.float32(yl) + np.float32(hl) * inside
            dd = np.minimum(np.minimum(y - y_up, y_lo - y), (1 - np.abs(lx)) * np.float32(wl * 0.5))
            occ["lips"] = self._embed(_soft(dd, f.u), 0.0)
            self.lip_line = np.float32(yl)
        if "eye" in d:
            eyes = np.zeros(self.face_alpha.shape, dtype=np.float32)
            self.eye_parts = []
            brows = []
            for sx in (-1.0, 1.0):
                ecx, ecy = fcx + sx * 0.105 * fs, fcy - 0.04 * fs
                ew, eh = 0.052 * fs, 0.021 * fs
                ex = (x - np.float32(ecx)) / np.float32(ew)
                ey = (y - np.float32(ecy)) / np.float32(eh)
                dd = (1 - ex * ex - np.abs(ey)) * np.float32(eh)
                eyes = np.maximum(eyes, _soft(dd, f.u))
                self.eye_parts.append((ecx, ecy, ew, eh))
                xs = np.linspace(-1.0, 1.0, 20)
                bx = ecx + sx * 0.008 + xs * 0.062 * fs
                by = ecy - 0.052 * fs - 0.014 * fs * (1 - xs**2) + 0.006 * xs * sx
                brows.append(np.stack(f.px(bx, by), axis=1))
            occ["eye"] = self._embed(eyes, 0.0)
            occ["brows"] = _draw_curves((f.hc, f.wc), brows, max(2, int(round(0.015 * f.u * fs))))
        if "hair" in d:
            ccx, ccy = fcx, fcy - 0.03 * fs
            a2, b2 = a * 1.2, b * 1.13
            e2 = np.sqrt(((x - np.float32(ccx)) / np.float32(a2)) ** 2 + ((y - np.float32(ccy)) / np.float32(b2)) ** 2)
            in_e2 = _soft((1 - e2) * np.float32(min(a2, b2)), f.u)
            hairline = np.float32(-0.55 + 0.08 * j[2]) + np.float32(0.45) * self.xf * self.xf
            above = _soft((hairline - self.yf) * np.float32(b), f.u)
            side_cut = _soft(np.float32(fcy + 0.3 * b) - y, f.u)
            occ["hair"] = self._embed(np.minimum(np.minimum(in_e2, np.maximum(above, 1 - self.face_alpha)), side_cut), 0.0)
            rng = _rng(spec.seed, 40)
            strands = []
            for _ in range(28):
                sx = fcx + a * rng.uniform(-0.85, 0.85)
                xf0 = (sx - fcx) / a
                sy = fcy + b * (-0.55 + 0.45 * xf0**2) - 0.01
                length = rng.uniform(0.06, 0.28)
                ang = math.radians(90 + rng.uniform(-35, 35) + 25 * xf0)
                p2 = (sx + length * math.cos(ang), sy + length * math.sin(ang))
                p1 = (sx + 0.5 * length * math.cos(ang) + rng.uniform(-0.04, 0.04), sy + 0.5 * length * math.sin(ang))
                pts = _bezier((sx, sy), p1, p2)
                strands.append(np.stack(f.px(pts[:, 0], pts[:, 1]), axis=1))
            occ["strands"] = _draw_curves((f.hc, f.wc), strands, self.thin)
        if "clothing" in d:
            x, y = f.x, f.y
            edge = np.float32(fcy + b + 0.05 * fs) + np.float32(0.09 * fs) * np.exp(-(((x - np.float32(fcx)) / np.float32(0.13 * fs)) ** 2))
            occ["clothing"] = np.minimum(_soft(y - edge, f.u), _soft(np.float32(0.85) - np.abs(x - np.float32(fcx)), f.u))
            self.clothing_edge = edge
        return occ

    def arm_occluders(self) -> dict:
        f, spec, j = self.f, self.spec, self.jitter
        arm = self.arm
        s, t, w = arm["s"], arm["t"], arm["w"]
        occ: dict = {}
        s0 = -0.55 + 0.05 * j[3]
        if "clothing" in spec.distractors:
            occ["clothing"] = np.minimum(_soft(np.float32(s0) - s, f.u), _soft(w + np.float32(0.035) - np.abs(t), f.u))
            self.sleeve = (s0,)
        if "hair" in spec.distractors:
            rng = _rng(spec.seed, 41)
            ang0 = arm["ang"]
            oy = arm["oy"]
            strands = []
            for _ in range(320):
                ss = rng.uniform(s0, 1.1)
                ww = 0.19 - 0.035 * min(max((ss + 1.0) / 2.0, 0.0), 1.0)
                tt = rng.uniform(-0.92, 0.92) * ww
                px0 = ss * math.cos(ang0) - tt * math.sin(ang0)
                py0 = oy + ss * math.sin(ang0) + tt * math.cos(ang0)
                ang = ang0 + rng.uniform(-0.4, 0.4) + (0.0 if rng.random() < 0.5 else math.pi)
                length = rng.uniform(0.012, 0.035)
                bend = rng.uniform(-0.004, 0.004)
                p2 = (px0 + length * math.cos(ang), py0 + length * math.sin(ang))
                p1 = ((px0 + p2[0]) / 2 - bend * math.sin(ang), (py0 + p2[1]) / 2 + bend * math.cos(ang))
                pts = _bezier((px0, py0), p1, p2, n=8)
                strands.append(np.stack(f.px(pts[:, 0], pts[:, 1]), axis=1))
            occ["strands"] = _draw_curves((f.hc, f.wc), strands, self.thin)
        return occ

    # --- chromophores ----------------------------------------------------------------------------
    def _sample_on_skin(self, rng, visible: np.ndarray, n: int, r_range, tries: int = 80) -> list:
        """Centres (units) and radii (units) of ``n`` blobs lying on visible skin."""
        f = self.f
        rows = np.flatnonzero(visible.any(axis=1))
        cols = np.flatnonzero(visible.any(axis=0))
        out = []
        if rows.size == 0:
            return out
        x0, x1 = (cols[0] - (f.wc - 1) / 2) / f.u, (cols[-1] - (f.wc - 1) / 2) / f.u
        y0, y1 = (rows[0] - (f.hc - 1) / 2) / f.u, (rows[-1] - (f.hc - 1) / 2) / f.u
        # stay inside the photo at the identity pose so that spots are visible
        hx, hy = f.half_view
        x0, x1 = max(x0, -hx + 0.03), min(x1, hx - 0.03)
        y0, y1 = max(y0, -hy + 0.03), min(y1, hy - 0.03)
        cand = rng.uniform(size=(n * tries, 3))
        for cx_, cy_, cr in cand:
            if len(out) == n:
                break
            cx = x0 + cx_ * (x1 - x0)
            cy = y0 + cy_ * (y1 - y0)
            r = r_range[0] + cr * (r_range[1] - r_range[0])
            ok = True
            for ox, oy in ((0, 0), (1.6, 0), (-1.6, 0), (0, 1.6), (0, -1.6)):
                px, py = f.px(cx + ox * r, cy + oy * r)
                ix, iy = int(round(px)), int(round(py))
                if not (0 <= iy < f.hc and 0 <= ix < f.wc and visible[iy, ix]):
                    ok = False
                    break
            if ok:
                out.append((cx, cy, r))
        return out

    def _blob(self, cx, cy, r, harmonics, power: float):
        """(slices, profile) of an irregular blob exp(-(rho / r_eff)^power) in a local window."""
        f = self.f
        px, py = f.px(cx, cy)
        rp = r * f.u
        half = int(math.ceil(2.2 * rp)) + 2
        r0, r1 = max(int(py) - half, 0), min(int(py) + half + 1, f.hc)
        c0, c1 = max(int(px) - half, 0), min(int(px) + half + 1, f.wc)
        if r0 >= r1 or c0 >= c1:
            return None, None
        yy = (np.arange(r0, r1, dtype=np.float32) - np.float32(py))[:, None]
        xx = (np.arange(c0, c1, dtype=np.float32) - np.float32(px))[None, :]
        rho = np.sqrt(xx * xx + yy * yy)
        phi = np.arctan2(yy, xx)
        mod = np.ones_like(rho)
        for k, (amp, ph) in enumerate(harmonics, start=2):
            mod += np.float32(amp) * np.cos(np.float32(k) * phi + np.float32(ph))
        prof = np.exp(-((rho / (np.float32(rp) * mod)) ** power))
        return (slice(r0, r1), slice(c0, c1)), prof.astype(np.float32)

    def chromophores(self, visible: np.ndarray) -> None:
        f, spec = self.f, self.spec
        tex = np.float32(spec.texture)
        mel_low = f.noise(_rng(spec.seed, 30), 3.0)
        hb_low = f.noise(_rng(spec.seed, 31), 3.5)
        hb_micro = f.noise(_rng(spec.seed, 32), 120.0)
        # base maps, computed only where there is skin (the rest keeps the base value)
        w = _bbox(self.skin_alpha > 0) or (slice(0, 1), slice(0, 1))
        mel = np.full((f.hc, f.wc), spec.melanin, dtype=np.float32)
        hb = np.full((f.hc, f.wc), spec.hemoglobin, dtype=np.float32)
        mel[w] = np.float32(spec.melanin) * np.clip(1 + 0.12 * mel_low[w] + 0.05 * self.mid[w], 0.3, None) * np.clip(
            1 + tex * 0.08 * self.micro[w], 0.3, None
        )
        hb[w] = np.float32(spec.hemoglobin) * np.clip(1 + 0.15 * hb_low[w], 0.3, None) * np.clip(
            1 + tex * 0.10 * hb_micro[w], 0.3, None
        )
        if spec.site == "face":
            fc = self.face
            x, y = f.x[:, w[1]], f.y[w[0]]
            flush = np.zeros(hb[w].shape, dtype=np.float32)
            for gx, gy, amp, sg in ((-0.14, 0.10, 0.35, 0.065), (0.14, 0.10, 0.35, 0.065), (0.0, 0.20, 0.25, 0.035)):
                gxx = (x - np.float32(fc["cx"] + gx * fc["fs"])) / np.float32(sg * fc["fs"])
                gyy = (y - np.float32(fc["cy"] + gy * fc["fs"])) / np.float32(sg * fc["fs"])
                flush += np.float32(amp) * np.exp(-0.5 * (gxx * gxx + gyy * gyy))
            hb[w] *= 1 + flush
        rng = _rng(spec.seed, 50)
        self.spot_list = []
        for cx, cy, r in self._sample_on_skin(rng, visible, spec.spots, (0.006, 0.022)):
            harm = [(rng.uniform(0, 0.12), rng.uniform(0, 2 * np.pi)) for _ in range(4)]
            k = rng.uniform(1.0, 2.5)
            sl, prof = self._blob(cx, cy, r, harm, 4.0)
            if sl is not None:
                mel[sl] = mel[sl] * (1 + np.float32(k) * prof) + np.float32(0.03) * prof
                self.spot_list.append({"x": cx, "y": cy, "radius": r, "gain": k})
        rng = _rng(spec.seed, 51)
        self.patch_list = []
        for cx, cy, r in self._sample_on_skin(rng, visible, spec.red_patches, (0.03, 0.08), tries=200):
            harm = [(rng.uniform(0, 0.2), rng.uniform(0, 2 * np.pi)) for _ in range(4)]
            k = rng.uniform(1.0, 2.0)
            sl, prof = self._blob(cx, cy, r, harm, 2.0)
            if sl is not None:
                blot = np.clip(0.7 + 0.3 * self.mid[sl] + 0.15 * hb_micro[sl], 0.2, None)
                hb[sl] = hb[sl] * (1 + np.float32(k) * prof * blot) + np.float32(0.01) * prof
                self.patch_list.append({"x": cx, "y": cy, "radius": r, "gain": k})
        mel *= np.float32(spec.melanin_scale)
        hb *= np.float32(spec.hemoglobin_scale)
        self.mel = np.clip(mel, 0, _MEL_MAX)
        self.hb = np.clip(hb, 0, _HB_MAX)

    # --- layers --------------------------------------------------------------------------------
    def skin_layer(self, sl) -> np.ndarray:
        spec = self.spec
        tex = np.float32(spec.texture)
        col = _table_lookup(self.mel[sl], self.hb[sl], self.ill, DEFAULT_OPTICS)
        relief = (1 + tex * 0.05 * self.fine[sl]) * (1 - tex * 0.35 * self.pores[sl])
        shade = self.shade[sl] * relief
        ks = np.float32(0.06 * spec.specular) * np.clip(1 + 0.5 * self.mid[sl], 0.2, 2) * np.clip(1 + 0.4 * self.micro[sl], 0, 2)
        return col * shade[..., None] + (ks * self.spec_map[sl])[..., None] * self.white

    def lips_layer(self, sl) -> np.ndarray:
        mel = np.full(self.mel[sl].shape, 0.55 * self.spec.melanin, dtype=np.float32)
        hb = (0.13 + 0.02 * self.mid[sl]).astype(np.float32)
        col = _table_lookup(mel, hb, self.ill, DEFAULT_OPTICS)
        y = self.f.y[sl[0]]
        line = 1 - 0.6 * np.exp(-(((y - self.lip_line) * np.float32(self.f.u) / np.float32(1.2 * self.thin)) ** 2))
        shade = self.shade[sl] * (1 + 0.06 * self.fine[sl]) * line
        return col * shade[..., None] + (np.float32(0.12 * self.spec.specular) * self.spec_map[sl])[..., None] * self.white

    def eye_layer(self, sl) -> np.ndarray:
        f = self.f
        x, y = f.x[:, sl[1]], f.y[sl[0]]
        out = np.broadcast_to(self._mat((228, 216, 206)), (y.shape[0], x.shape[1], 3)).copy()
        iris_c, pupil_c, hi_c = self._mat(self.iris_rgb), self._mat((12, 10, 10)), self._mat((250, 250, 250))
        lash = np.ones(out.shape[:2], dtype=np.float32)
        gaze = 0.004 * self.jitter[4]
        for ecx, ecy, ew, eh in self.eye_parts:
            icx, icy = ecx + gaze, ecy + 0.002
            ri = 0.019 * self.face["fs"]
            rr = np.sqrt((x - np.float32(icx)) ** 2 + (y - np.float32(icy)) ** 2) / np.float32(ri)
            ang = np.arctan2(y - np.float32(icy), x - np.float32(icx))
            streak = 0.75 + 0.25 * np.sin(ang * 23.0 + 3 * self.mid[sl]) * np.clip(rr, 0, 1)
            ring = 1 - 0.5 * np.clip((rr - 0.8) / 0.2, 0, 1)
            iris_a = _soft((1 - rr) * np.float32(ri), f.u)
            out += iris_a[..., None] * ((streak * ring)[..., None] * iris_c - out)
            pup_a = _soft((0.4 - rr) * np.float32(ri), f.u)
            out += pup_a[..., None] * (pupil_c - out)
            hl = np.sqrt((x - np.float32(icx - 0.3 * ri)) ** 2 + (y - np.float32(icy - 0.3 * ri)) ** 2)
            hl_a = _soft(np.float32(0.18 * ri) - hl, f.u)
            out += hl_a[..., None] * (hi_c - out)
            ex = (x - np.float32(ecx)) / np.float32(ew)
            ey = (y - np.float32(ecy)) / np.float32(eh)
            du = ey + (1 - ex * ex)
            lash = np.minimum(lash, np.where(np.abs(ex) < 1, 0.3 + 0.7 * np.clip(du / 0.4, 0, 1), 1))
        return out * (lash * self.shade[sl])[..., None]

    def hair_layer(self, sl, strand_tex: bool = True) -> np.ndarray:
        col = self._mat(self.hair_rgb)
        t = 0.75 + 0.5 * self.hair_tex[sl] + 0.1 * self.micro[sl]
        shade = 0.55 + 0.45 * self.shade[sl] if self.spec.site == "face" else self.shade[sl]
        sheen = np.float32(0.04 * self.spec.specular) * self.spec_map[sl] * np.clip(self.hair_tex[sl], 0, 1)
        return (t * shade)[..., None] * col + sheen[..., None] * self.white

    def clothing_layer(self, sl) -> np.ndarray:
        f = self.f
        x, y = f.x[:, sl[1]], f.y[sl[0]]
        freq = np.float32(2 * np.pi * 130.0)
        weave = np.sin(freq * (x + y)) * np.sin(freq * (x - y))
        folds = self.cloth_folds[sl]
        tex = 1 + 0.06 * weave + 0.15 * folds + 0.03 * self.micro[sl]
        if self.spec.site == "face":
            seam = 1 - 0.35 * np.exp(-(((y - self.clothing_edge[:, sl[1]]) * np.float32(f.u) / np.float32(2.5 * self.thin)) ** 2))
            shade = (0.8 + 0.2 * np.clip(1 - np.abs(x - np.float32(self.face["cx"])) / 0.9, 0, 1)) * seam
        else:
            shade = self.shade[sl]
        return (tex * shade)[..., None] * self._mat(self.clothes_rgb)

    # --- chart -----------------------------------------------------------------------------------
    def chart(self) -> dict:
        f, spec = self.f, self.spec
        rng = _rng(spec.seed, 60)
        gap, border = 0.25, 0.4
        wp, hp = 6 + 5 * gap + 2 * border, 4 + 3 * gap + 2 * border
        hx, hy = f.half_view
        cw = float(np.clip(hx - 0.06 - 0.16, 0.26, 0.46))
        ch = cw * hp / wp
        if spec.site == "face":
            ccx, ccy = hx - 0.05 - cw / 2, 0.12
        else:
            ccx, ccy = hx - 0.05 - cw / 2, -hy + 0.05 + ch / 2
        rot = math.radians(rng.uniform(-5, 5))
        corners = np.array([[-cw / 2, -ch / 2], [cw / 2, -ch / 2], [cw / 2, ch / 2], [-cw / 2, ch / 2]])
        corners += rng.uniform(-0.03, 0.03, size=(4, 2)) * np.array([cw, ch])  # perspective tilt
        rm = np.array([[math.cos(rot), -math.sin(rot)], [math.sin(rot), math.cos(rot)]])
        corners = corners @ rm.T + np.array([ccx, ccy])
        dst = np.stack(f.px(corners[:, 0], corners[:, 1]), axis=1).astype(np.float32)
        res = max(8, int(round(1.5 * cw * f.u / wp)))  # plane pixels per patch unit
        pw_, ph_ = int(round(wp * res)), int(round(hp * res))
        plane = np.empty((ph_, pw_, 3), dtype=np.float32)
        plane[:] = reflectance_to_linear_rgb(np.full(WAVELENGTHS_NM.size, 0.035), self.ill)
        patches = render_chart_patches(self.ill)
        centres = []
        for i in range(24):
            r_, c_ = divmod(i, 6)
            x0 = (border + c_ * (1 + gap)) * res
            y0 = (border + r_ * (1 + gap)) * res
            plane[int(round(y0)) : int(round(y0 + res)), int(round(x0)) : int(round(x0 + res))] = patches[i]
            centres.append((x0 + res / 2.0 - 0.5, y0 + res / 2.0 - 0.5))
        src = np.float32([[-0.5, -0.5], [pw_ - 0.5, -0.5], [pw_ - 0.5, ph_ - 0.5], [-0.5, ph_ - 0.5]])
        hmat = cv2.getPerspectiveTransform(src, dst)
        warped = cv2.warpPerspective(plane, hmat, (f.wc, f.hc), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        alpha = cv2.warpPerspective(np.ones((ph_, pw_), np.float32), hmat, (f.wc, f.hc), flags=cv2.INTER_LINEAR)
        _blend(self.img, alpha, lambda s: warped[s], self.labels, LABELS["chart"])
        cen = cv2.perspectiveTransform(np.float32(centres).reshape(-1, 1, 2), hmat).reshape(-1, 2)
        return {"corners_canonical": dst.astype(np.float64), "centres_canonical": cen.astype(np.float64),
                "patch_linear_rgb": patches}

    # --- assembly ----------------------------------------------------------------------------------
    def _hair_texture(self) -> np.ndarray:
        f, spec = self.f, self.spec
        tex = np.zeros((f.hc, f.wc), dtype=np.float32)
        if spec.site != "face" or "hair" not in spec.distractors:
            return tex
        fc = self.face
        rng = _rng(spec.seed, 42)
        crown = (fc["cx"], fc["cy"] - 1.05 * fc["b"])
        curves, vals = [], []
        for _ in range(700):
            px0 = fc["cx"] + rng.uniform(-1.25, 1.25) * fc["a"]
            py0 = fc["cy"] + rng.uniform(-1.2, 0.35) * fc["b"]
            ang = math.atan2(py0 - crown[1], px0 - crown[0]) + rng.uniform(-0.25, 0.25)
            length = rng.uniform(0.05, 0.16)
            p2 = (px0 + length * math.cos(ang), py0 + length * math.sin(ang))
            p1 = ((px0 + p2[0]) / 2 + rng.uniform(-0.015, 0.015), (py0 + p2[1]) / 2 + rng.uniform(-0.015, 0.015))
            pts = _bezier((px0, py0), p1, p2, n=12)
            curves.append(np.stack(f.px(pts[:, 0], pts[:, 1]), axis=1))
            vals.append(rng.integers(60, 256))
        tex = _draw_curves((f.hc, f.wc), curves, self.thin, vals)
        return tex - np.float32(0.3)

    def build(self) -> dict:
        f, spec = self.f, self.spec
        self.background()
        if spec.site == "face":
            self.face_geometry()
            occ = self.face_occluders()
        else:
            self.arm_geometry()
            occ = self.arm_occluders()
        zero = np.zeros((f.hc, f.wc), dtype=np.float32)
        covers = [occ.get(k, zero) for k in ("lips", "eye", "brows", "hair", "strands", "clothing")]
        visible = self.skin_alpha >= 0.5
        for c in covers:
            visible &= c < 0.5
        self.chromophores(visible)
        # pores: ~3 % of the cells of a 170-per-unit grid, smoothed on the grid, then resized
        self.pores = f.noise(
            _rng(spec.seed, 6), 170.0, interp=cv2.INTER_LINEAR,
            grid_fn=lambda g: cv2.GaussianBlur((g > 1.9).astype(np.float32), (0, 0), 0.6) * 2.2,
        )
        self.cloth_folds = f.noise(_rng(spec.seed, 22), 2.0, 4.0)
        self.hair_tex = self._hair_texture()
        if "shadow" in spec.distractors:
            sil = np.maximum(self.skin_alpha, np.maximum(occ.get("hair", zero), occ.get("clothing", zero)))
            self.cast_shadow(sil)
        lab = self.labels
        _blend(self.img, self.skin_alpha, self.skin_layer, lab, LABELS["skin"])
        if "lips" in occ:
            _blend(self.img, occ["lips"], self.lips_layer, lab, LABELS["lips"])
        if "eye" in occ:
            _blend(self.img, occ["eye"], self.eye_layer, lab, LABELS["eye"])
            _blend(self.img, occ["brows"], self.hair_layer, lab, LABELS["hair"])
        if "clothing" in occ:
            _blend(self.img, occ["clothing"], self.clothing_layer, lab, LABELS["clothing"])
        if "hair" in occ:
            _blend(self.img, occ["hair"], self.hair_layer, lab, LABELS["hair"])
        if "strands" in occ:
            _blend(self.img, occ["strands"], self.hair_layer, lab, LABELS["hair"])
        chart = self.chart() if spec.chart else None
        return {"chart": chart}


def _affine_points(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    pts = np.asarray(pts, dtype=np.float64)
    return pts @ m[:, :2].T + m[:, 2]


def _jpeg_roundtrip(rgb: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover
        raise RuntimeError("JPEG encoding failed")
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _skin_reference(melanin: float, hemoglobin: float) -> dict:
    rgb = skin_linear_rgb(melanin, hemoglobin, "D65")
    lab = _colour.linear_rgb_to_lab(rgb)
    ita = float(ita_degrees(lab))
    return {"linear_rgb_d65": rgb.tolist(), "lab_d65": lab.tolist(), "ita_deg": ita, "ita_category": ita_category(ita)}


def render_phantom(spec: PhantomSpec) -> Phantom:
    """Render a phantom photograph and its ground truth.

    Parameters
    ----------
    spec : PhantomSpec

    Returns
    -------
    Phantom
        ``image`` uint8 (H, W, 3) sRGB RGB; ``mask`` bool (H, W); ``melanin`` and
        ``hemoglobin`` float32 (H, W), NaN off skin; ``labels`` uint8 (H, W);
        ``linear`` float32 (H, W, 3); ``truth`` dict (see Notes).

    Notes
    -----
    ``truth`` keys: ``melanin_mean``, ``hemoglobin_mean``, ``melanin_median``,
    ``hemoglobin_median`` (over the true mask), ``skin_pixels``, ``skin_fraction``,
    ``illuminant``, ``illuminant_white_linear_rgb``, ``exposure``, ``pose``,
    ``pose_matrix`` (2x3, canonical pixels -> photo pixels), ``canonical_size``,
    ``skin_reference`` (flat-skin colour of the spec's base concentrations under D65:
    linear RGB, Lab, ITA and category), ``spots`` / ``red_patches`` (centres and radii in
    photo pixels), ``labels`` (codes), ``optics``, ``spec``, ``model``, and when
    ``spec.chart``: ``chart`` with ``corners`` (4x2 photo pixels, TL, TR, BR, BL of the
    black surround), ``patch_centres`` (24x2), ``patch_names`` and ``patch_linear_rgb``
    (24x3, exposure applied).  Deterministic: the same spec gives identical arrays.
    """
    scene = _Scene(spec)
    extra = scene.build()
    h, w = spec.size
    m = pose_matrix(spec)
    warp = dict(dsize=(w, h), borderMode=cv2.BORDER_REFLECT101)
    lin = cv2.warpAffine(scene.img, m, flags=cv2.INTER_LINEAR, **warp)
    labels = cv2.warpAffine(scene.labels, m, flags=cv2.INTER_NEAREST, **warp)
    mel = cv2.warpAffine(scene.mel, m, flags=cv2.INTER_LINEAR, **warp)
    hb = cv2.warpAffine(scene.hb, m, flags=cv2.INTER_LINEAR, **warp)
    del scene.img
    mask = labels == LABELS["skin"]
    mel[~mask] = np.nan
    hb[~mask] = np.nan
    if spec.blur > 0:
        lin = cv2.GaussianBlur(lin, (0, 0), sigmaX=spec.blur, sigmaY=spec.blur)
    lin *= np.float32(spec.exposure)
    noisy = lin
    if spec.noise > 0:
        rng = _rng(spec.seed if spec.noise_seed is None else spec.noise_seed, 99)
        z = rng.standard_normal(lin.shape, dtype=np.float32)
        n = np.float32(spec.noise)
        z *= np.sqrt(n * n * np.clip(lin, 0, None) + (n / np.float32(10.0)) ** 2)
        z += lin
        noisy = z
    image = _colour.linear_to_srgb_uint8(noisy)
    del noisy
    if spec.jpeg_quality is not None:
        image = _jpeg_roundtrip(image, spec.jpeg_quality)
    n_skin = int(mask.sum())
    with np.errstate(invalid="ignore"):
        truth = {
            "model": "skinimg.synth two-layer skin (Jacques 2013, Prahl 1999, Farrell 1992)",
            "melanin_mean": float(np.nanmean(mel)) if n_skin else None,
            "hemoglobin_mean": float(np.nanmean(hb)) if n_skin else None,
            "melanin_median": float(np.nanmedian(mel)) if n_skin else None,
            "hemoglobin_median": float(np.nanmedian(hb)) if n_skin else None,
            "skin_pixels": n_skin,
            "skin_fraction": n_skin / float(h * w),
            "illuminant": spec.illuminant,
            "illuminant_white_linear_rgb": illuminant_white(spec.illuminant).tolist(),
            "exposure": spec.exposure,
            "pose": list(spec.pose),
            "pose_matrix": m.tolist(),
            "canonical_size": list(_canonical_shape(spec.size)),
            "skin_reference": _skin_reference(spec.melanin * spec.melanin_scale, spec.hemoglobin * spec.hemoglobin_scale),
            "labels": dict(LABELS),
            "optics": DEFAULT_OPTICS.to_dict(),
            "spec": spec.to_dict(),
        }
    u = scene.f.u
    for key, items in (("spots", scene.spot_list), ("red_patches", scene.patch_list)):
        pts = np.array([scene.f.px(d["x"], d["y"]) for d in items], dtype=np.float64).reshape(-1, 2)
        pp = _affine_points(m, pts)
        truth[key] = [
            {"x": float(p[0]), "y": float(p[1]), "radius_px": float(d["radius"] * u * spec.pose[3]), "gain": float(d["gain"])}
            for p, d in zip(pp, items)
        ]
    if extra["chart"] is not None:
        c = extra["chart"]
        truth["chart"] = {
            "corners": _affine_points(m, c["corners_canonical"]).tolist(),
            "patch_centres": _affine_points(m, c["centres_canonical"]).tolist(),
            "patch_names": chart_patch_names(),
            "patch_linear_rgb": (c["patch_linear_rgb"] * np.float32(spec.exposure)).tolist(),
        }
    return Phantom(image=image, mask=mask, melanin=mel, hemoglobin=hb, labels=labels, linear=lin, truth=truth)


def _encode_image(rgb: np.ndarray, image_format: str, quality: int) -> bytes:
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if image_format == "jpg":
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    else:
        ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:  # pragma: no cover
        raise RuntimeError(f"could not encode {image_format}")
    return buf.tobytes()


def write_phantom(
    ph: Phantom,
    out_dir: str | os.PathLike,
    stem: str,
    *,
    image_format: str = "jpg",
    jpeg_quality: int | None = None,
    truth_dir: str | os.PathLike | None = None,
    maps: bool = True,
) -> dict[str, Path]:
    """Write a phantom photo and its ground truth (all writes atomic).

    Parameters
    ----------
    ph : Phantom
    out_dir : path-like
        Folder of the photo ``<stem>.jpg`` / ``<stem>.png`` (created if missing).
    stem : str
        File name without extension.
    image_format : {"jpg", "png"}
    jpeg_quality : int, optional
        JPEG quality (default: ``spec.jpeg_quality`` or 95).
    truth_dir : path-like, optional
        Folder of the truth files (default ``out_dir``): ``<stem>_mask.png`` (uint8,
        255 = skin), ``<stem>_melanin.tif`` and ``<stem>_hemoglobin.tif`` (float32, NaN
        off skin) and ``<stem>.json`` (``truth`` plus file names).  Put it apart (e.g.
        a ``truth/`` folder) so that a folder scan for photos does not pick up masks.
    maps : bool
        Write the two float32 TIFF maps (skip them to save space).

    Returns
    -------
    dict of Path: keys ``image``, ``mask``, ``json`` and, with ``maps``, ``melanin`` and ``hemoglobin``.

    Raises
    ------
    SkinImgError
        When a file cannot be written.
    """
    from .io import write_bytes, write_json, write_png, write_tiff

    if image_format not in ("jpg", "png"):
        raise ValueError(f"image_format must be 'jpg' or 'png', got {image_format!r}")
    out = Path(out_dir)
    tdir = out if truth_dir is None else Path(truth_dir)
    q = jpeg_quality or ph.truth.get("spec", {}).get("jpeg_quality") or 95
    paths = {"image": out / f"{stem}.{image_format}", "mask": tdir / f"{stem}_mask.png"}
    write_bytes(paths["image"], _encode_image(ph.image, image_format, q))
    write_png(paths["mask"], ph.mask.astype(np.uint8) * np.uint8(255))
    if maps:
        paths["melanin"] = write_tiff(tdir / f"{stem}_melanin.tif", ph.melanin)
        paths["hemoglobin"] = write_tiff(tdir / f"{stem}_hemoglobin.tif", ph.hemoglobin)
    paths["json"] = tdir / f"{stem}.json"
    rel = {k: os.path.relpath(v, tdir).replace(os.sep, "/") for k, v in paths.items() if k != "json"}
    doc = dict(ph.truth)
    doc["files"] = rel
    doc["image_format"] = image_format
    if image_format == "jpg":
        doc["file_jpeg_quality"] = int(q)
    write_json(paths["json"], doc)
    return paths


# ----------------------------------------------------------------------------- image sets

SETS = ("samples", "ladder", "pairs", "retakes", "grid")
#: Exposure of the planned sets: with the mean face shading (~0.85) the median skin pixel
#: then has about the colour of flat skin, so the ladder's measured ITA falls in its category.
SET_EXPOSURE = 1.2
#: Tone ladder of the committed samples: (melanin, hemoglobin), one per ITA category.
LADDER_TONES = ((0.005, 0.008), (0.02, 0.010), (0.045, 0.012), (0.085, 0.014), (0.20, 0.016), (0.42, 0.020))
_SET_BACKGROUNDS = ("wall", "wood", "cloth", "blue", "dark", "wall", "grey")


@dataclass(frozen=True)
class PlannedImage:
    """One image of a set: where it goes (``relpath`` without extension, "/"-separated) and its spec."""

    relpath: str
    spec: PhantomSpec
    note: str = ""


def _ladder_tone(i: int, n: int) -> tuple[float, float]:
    if n == len(LADDER_TONES):
        return LADDER_TONES[i]
    t = i / max(n - 1, 1)
    return float(0.005 * (0.42 / 0.005) ** t), float(0.008 + t * 0.012)


def plan_set(name: str, *, n: int | None = None, size: tuple[int, int] = (480, 640), seed: int = 0) -> list[PlannedImage]:
    """The images of a named set (no rendering).

    Parameters
    ----------
    name : str
        "samples" (the committed ``sample_images/`` tree), "ladder" (``n`` tones, very
        light to dark), "pairs" (``n`` before/after pairs with a known haemoglobin change
        and a pose/exposure change), "retakes" (``n`` pairs of the same skin, no true
        change), "grid" (``n`` x ``n`` melanin x haemoglobin levels varied independently).
    n : int, optional
        Size of the set (defaults: ladder 6, pairs 4, retakes 4, grid 5; ignored for samples).
    size : (H, W)
    seed : int
        Base seed; image ``k`` of a set uses ``seed + k``-derived seeds.

    Returns
    -------
    list of PlannedImage
    """
    e = SET_EXPOSURE
    out: list[PlannedImage] = []
    if name == "samples":
        for i, (m, h) in enumerate(LADDER_TONES):
            spec = PhantomSpec(melanin=m, hemoglobin=h, seed=seed + 11 + i, size=size, background=_SET_BACKGROUNDS[i],
                               spots=3 + i, red_patches=1, exposure=e, noise_seed=seed + 500 + i)
            ref = _skin_reference(m, h)
            out.append(PlannedImage(f"ladder/tone_{i + 1:02d}", spec, f"tone ladder, {ref['ita_category']} (ITA {ref['ita_deg']:+.0f})"))
        p1 = dict(melanin=0.05, hemoglobin=0.03, seed=seed + 101, size=size, background="wall", spots=3, red_patches=4)
        out.append(PlannedImage("patients/P001/cheek/2026-01-15/P001_cheek",
                                PhantomSpec(**p1, exposure=e, noise_seed=seed + 1011), "P001 baseline (redness, 4 red patches)"))
        out.append(PlannedImage("patients/P001/cheek/2026-03-15/P001_cheek",
                                PhantomSpec(**p1, exposure=0.85 * e, pose=(14.0, -9.0, 4.0, 1.06), hemoglobin_scale=0.7,
                                            noise_seed=seed + 1012),
                                "P001 after treatment: hemoglobin x0.7, new pose, exposure x0.85"))
        p2 = dict(melanin=0.16, hemoglobin=0.015, seed=seed + 202, size=size, site="forearm", background="wood", spots=14,
                  red_patches=0)
        for k, (date, ms, pose, ex) in enumerate((
            ("2026-01-10", 1.0, (0.0, 0.0, 0.0, 1.0), 1.0),
            ("2026-02-10", 0.85, (-18.0, 10.0, -5.0, 0.95), 1.1),
            ("2026-03-10", 0.75, (12.0, 16.0, 6.0, 1.04), 0.9),
        )):
            out.append(PlannedImage(f"patients/P002/forearm/{date}/P002_forearm",
                                    PhantomSpec(**p2, melanin_scale=ms, pose=pose, exposure=ex * e, noise_seed=seed + 2020 + k),
                                    f"P002 session {k + 1}: " + ("baseline, 14 lentigines" if k == 0 else
                                                                 f"melanin x{ms:g} (lentigines fading), new pose")))
        out.append(PlannedImage("chart/chart_tungsten",
                                PhantomSpec(melanin=0.08, hemoglobin=0.015, seed=seed + 303, size=size, chart=True, illuminant="A",
                                            exposure=0.55, background="wall", noise_seed=seed + 3030),
                                "ColorChecker beside a face under tungsten light (no white balance)"))
        r = dict(melanin=0.10, hemoglobin=0.02, seed=seed + 404, size=size, background="cloth", spots=5, red_patches=2)
        out.append(PlannedImage("retake/R001_a", PhantomSpec(**r, exposure=e, noise_seed=seed + 4041), "retake pair, shot 1"))
        out.append(PlannedImage("retake/R001_b",
                                PhantomSpec(**r, exposure=1.1 * e, pose=(-10.0, 6.0, -3.0, 1.03), noise_seed=seed + 4042, jpeg_quality=85),
                                "retake pair, shot 2: same skin, new pose, exposure x1.1, JPEG q85"))
        return out
    if name == "ladder":
        n = 6 if n is None else n
        for i in range(n):
            m, h = _ladder_tone(i, n)
            spec = PhantomSpec(melanin=m, hemoglobin=h, seed=seed + i, size=size,
                               background=_SET_BACKGROUNDS[i % len(_SET_BACKGROUNDS)], exposure=e)
            out.append(PlannedImage(f"ladder/tone_{i + 1:02d}", spec, f"melanin {m:.3f}, hemoglobin {h:.3f}"))
    elif name == "pairs":
        n = 4 if n is None else n
        for i in range(n):
            rng = _rng(seed + i, 700)
            hs = (0.6, 0.8, 1.0, 1.3)[i % 4]
            base = dict(melanin=float(rng.uniform(0.01, 0.3)), hemoglobin=float(rng.uniform(0.01, 0.04)), seed=seed + i,
                        size=size, site=SITES[i % 2], background=_SET_BACKGROUNDS[i % len(_SET_BACKGROUNDS)],
                        spots=int(rng.integers(2, 10)), red_patches=int(rng.integers(1, 5)))
            pose = (float(rng.uniform(-25, 25)), float(rng.uniform(-20, 20)), float(rng.uniform(-8, 8)), float(rng.uniform(0.92, 1.08)))
            out.append(PlannedImage(f"pairs/pair_{i + 1:03d}_before", PhantomSpec(**base, exposure=e, noise_seed=10 * (seed + i) + 1), "before"))
            out.append(PlannedImage(f"pairs/pair_{i + 1:03d}_after",
                                    PhantomSpec(**base, exposure=e * float(rng.uniform(0.8, 1.15)), pose=pose, hemoglobin_scale=hs,
                                                noise_seed=10 * (seed + i) + 2), f"after: hemoglobin x{hs:g}"))
    elif name == "retakes":
        n = 4 if n is None else n
        for i in range(n):
            rng = _rng(seed + i, 701)
            base = dict(melanin=float(rng.uniform(0.01, 0.3)), hemoglobin=float(rng.uniform(0.01, 0.04)), seed=seed + i,
                        size=size, site=SITES[i % 2], background=_SET_BACKGROUNDS[(i + 2) % len(_SET_BACKGROUNDS)],
                        spots=int(rng.integers(2, 10)), red_patches=int(rng.integers(0, 4)))
            pose = (float(rng.uniform(-25, 25)), float(rng.uniform(-20, 20)), float(rng.uniform(-8, 8)), float(rng.uniform(0.92, 1.08)))
            out.append(PlannedImage(f"retakes/retake_{i + 1:03d}_a", PhantomSpec(**base, exposure=e, noise_seed=10 * (seed + i) + 1), "shot 1"))
            out.append(PlannedImage(f"retakes/retake_{i + 1:03d}_b",
                                    PhantomSpec(**base, exposure=e * float(rng.uniform(0.85, 1.15)), pose=pose,
                                                noise_seed=10 * (seed + i) + 2, jpeg_quality=int(rng.integers(75, 96))),
                                    "shot 2: same skin (no true change)"))
    elif name == "grid":
        n = 5 if n is None else n
        mels = np.geomspace(0.01, 0.40, n) if n > 1 else np.array([0.08])
        hbs = np.geomspace(0.004, 0.06, n) if n > 1 else np.array([0.015])
        for i, m in enumerate(mels):
            for k, h in enumerate(hbs):
                spec = PhantomSpec(melanin=float(m), hemoglobin=float(h), seed=seed, size=size, exposure=e,
                                   noise_seed=seed * 1000 + i * n + k)
                out.append(PlannedImage(f"grid/m{i + 1:02d}_h{k + 1:02d}", spec, f"melanin {m:.3f}, hemoglobin {h:.4f}"))
    else:
        raise ValueError(f"unknown set {name!r}; choose one of {', '.join(SETS)}")
    return out


#: Hand-drawn skin outline of ``skimage.data.astronaut()`` (512 x 512, pixel coordinates x, y),
#: drawn by the skinimg developers on a 6x enlargement for a real-photo segmentation check (never
#: used for training or tuning): face, ears and the visible neck, without the eyes (ellipses:
#: centre, semi-axes), the eyebrows and the mouth (lips and teeth).  Approximate: the outline
#: follows the skin edge within about 2 px; hair strands over the forehead are not cut out.
ASTRONAUT_SKIN = {
    "skin": [(190, 80), (200, 77), (215, 76), (230, 76), (245, 77), (257, 80), (262, 88), (263, 100), (264, 112),
             (266, 118), (271, 121), (272, 128), (268, 136), (263, 139), (261, 150), (258, 162), (255, 172),
             (250, 180), (240, 186), (228, 188), (215, 188), (203, 186), (194, 182), (190, 175), (188, 162),
             (186, 150), (184, 140), (178, 136), (172, 133), (169, 126), (170, 119), (175, 116), (182, 116),
             (182, 104), (183, 92), (186, 84)],
    "eyes": [((203, 101), (9, 4)), ((246, 102), (9, 4))],
    "eyebrows": [[(184, 90), (196, 86), (212, 87), (216, 91), (200, 90), (186, 93)],
                 [(232, 91), (238, 87), (255, 86), (264, 90), (262, 93), (248, 90), (234, 93)]],
    "mouth": [(202, 139), (212, 136), (224, 137), (236, 135), (247, 138), (244, 146), (236, 152), (224, 154),
              (212, 152), (205, 146)],
}

_ASTRONAUT_CROP = (slice(0, 380), slice(80, 400))  # face, shoulders, flag


def astronaut_skin_mask(*, sample: bool = False, max_side: int = 320) -> np.ndarray:
    """True skin mask (bool) of ``skimage.data.astronaut()`` from :data:`ASTRONAUT_SKIN`.

    ``sample=True``: cropped and downscaled like ``real/astronaut.jpg`` of the samples
    (area-averaged coverage >= 0.5), so it matches that file pixel for pixel.
    """
    m = np.zeros((512, 512), np.uint8)
    cv2.fillPoly(m, [np.array(ASTRONAUT_SKIN["skin"], np.int32)], 255)
    for centre, axes in ASTRONAUT_SKIN["eyes"]:
        cv2.ellipse(m, centre, axes, 0, 0, 360, 0, -1)
    for poly in (*ASTRONAUT_SKIN["eyebrows"], ASTRONAUT_SKIN["mouth"]):
        cv2.fillPoly(m, [np.array(poly, np.int32)], 0)
    if not sample:
        return m > 0
    crop = np.ascontiguousarray(m[_ASTRONAUT_CROP])
    s = max_side / max(crop.shape[:2])
    if s < 1:
        crop = cv2.resize(crop, (int(round(crop.shape[1] * s)), int(round(crop.shape[0] * s))),
                          interpolation=cv2.INTER_AREA)
    return crop >= 128


def _astronaut_image(max_side: int = 320) -> np.ndarray:
    """The public-domain NASA portrait bundled with scikit-image, cropped to the head and shoulders."""
    from skimage import data

    img = np.ascontiguousarray(data.astronaut()[_ASTRONAUT_CROP])
    s = max_side / max(img.shape[:2])
    if s < 1:
        img = cv2.resize(img, (int(round(img.shape[1] * s)), int(round(img.shape[0] * s))), interpolation=cv2.INTER_AREA)
    return img


def write_set(
    name: str,
    out_dir: str | os.PathLike,
    *,
    n: int | None = None,
    size: tuple[int, int] = (480, 640),
    seed: int = 0,
    image_format: str = "jpg",
    jpeg_quality: int = 90,
    maps: bool | None = None,
    progress=None,
) -> list[dict]:
    """Render and write a set: photos under ``out_dir/<relpath>``, truth under ``out_dir/truth/<relpath>``.

    Parameters
    ----------
    name, n, size, seed
        See :func:`plan_set`.
    out_dir : path-like
    image_format : {"jpg", "png"}
    jpeg_quality : int
        Quality of written JPEG files.
    maps : bool, optional
        Write the float32 melanin/haemoglobin TIFFs (default: yes, except for "samples",
        which is kept small for the repository).
    progress : callable, optional
        Called with each record after it is written (for a CLI progress line).

    Returns
    -------
    list of dict: one record per photo (``image``, ``truth``, ``melanin_mean``,
    ``hemoglobin_mean``, ``note``; paths relative to ``out_dir``, "/"-separated).

    Notes
    -----
    Truth files live in a separate ``truth/`` folder with the same relative layout so
    that ``skinimg analyze out_dir/<set>`` sees only photographs.  For "samples" the
    folder also gets ``real/astronaut.jpg`` and a generated ``README.md``.
    """
    from .io import write_bytes, write_png

    out = Path(out_dir)
    plan = plan_set(name, n=n, size=size, seed=seed)
    maps = (name != "samples") if maps is None else maps
    records = []
    for item in plan:
        rel = Path(item.relpath)
        ph = render_phantom(item.spec)
        paths = write_phantom(ph, out / rel.parent, rel.name, image_format=image_format, jpeg_quality=jpeg_quality,
                              truth_dir=out / "truth" / rel.parent, maps=maps)
        ref = ph.truth["skin_reference"]
        rec = {
            "image": paths["image"].relative_to(out).as_posix(),
            "truth": paths["json"].relative_to(out).as_posix(),
            "melanin_mean": ph.truth["melanin_mean"],
            "hemoglobin_mean": ph.truth["hemoglobin_mean"],
            "ita_reference": ref["ita_deg"],
            "illuminant": item.spec.illuminant,
            "note": item.note,
        }
        records.append(rec)
        if progress is not None:
            progress(rec)
    if name == "samples":
        real = out / "real" / "astronaut.jpg"
        write_bytes(real, _encode_image(_astronaut_image(), "jpg", jpeg_quality))
        write_png(out / "truth" / "real" / "astronaut_mask.png",
                  astronaut_skin_mask(sample=True).astype(np.uint8) * np.uint8(255))
        rec = {"image": "real/astronaut.jpg", "truth": None, "melanin_mean": None, "hemoglobin_mean": None,
               "ita_reference": None, "illuminant": None,
               "note": "real photograph: astronaut Eileen Collins (NASA, public domain), via scikit-image"}
        records.append(rec)
        if progress is not None:
            progress(rec)
        write_bytes(out / "README.md", _samples_readme(records, size, seed).encode("utf-8"))
    return records


def _samples_readme(records: list[dict], size, seed) -> str:
    rows = []
    for r in records:
        m = "" if r["melanin_mean"] is None else f"{r['melanin_mean']:.4f}"
        h = "" if r["hemoglobin_mean"] is None else f"{r['hemoglobin_mean']:.4f}"
        rows.append(f"| `{r['image']}` | {r['note']} | {m} | {h} |")
    table = "\n".join(rows)
    cmd = "skinimg synth --set samples --out sample_images"
    if tuple(size) != (480, 640) or seed != 0:
        cmd += f" --size {size[0]}x{size[1]} --seed {seed}"
    return f"""# sample_images

Small, deterministic test photographs for skinimg.  Everything except `real/` is a
**skin phantom** rendered by `skinimg.synth` from a two-layer optical skin model
(melanin in the epidermis, blood in the dermis; see the docstring of
`skinimg/synth.py` and the README), so the true skin mask and the true melanin and
haemoglobin concentrations are known.

Regenerate the whole folder (byte-identical with the same library versions):

    {cmd}

The float32 truth maps (`*_melanin.tif`, `*_hemoglobin.tif`) are not committed to keep
the folder small; `skinimg synth` writes them for the other sets, and
`skinimg.synth.render_phantom(PhantomSpec.from_dict(json["spec"]))` rebuilds them
from any truth JSON.

## Layout

* photos: `ladder/`, `patients/<id>/<site>/<date>/`, `chart/`, `retake/`, `real/`
* truth: `truth/<same relative path>/<stem>_mask.png` (255 = skin) and `<stem>.json`
  (`melanin_mean`, `hemoglobin_mean` over the true mask, the full `spec`, illuminant,
  exposure, pose and pose matrix, spot and patch positions, chart corners and patch
  centres).  Kept apart so that a folder scan for photos does not pick them up
  (`skinimg analyze sample_images --exclude 'truth/*'`).
* expected results: `expected/indices.csv` and `expected/verdicts.csv`, what the CI
  pipeline (`skinimg run ci sample_images`, `pipelines/ci.toml`) must reproduce within the
  tolerances of `skinimg regress`; regenerated deliberately (see the main README,
  "Reports and regression checks").

## Images

Means are over the true skin mask (volume fractions).

| image | what | melanin_mean | hemoglobin_mean |
|---|---|---|---|
{table}

## Licences

* Phantoms: generated by skinimg (BSD-3-Clause), no real person.  Spectral data: CIE
  colour-matching functions and illuminants (CIE 015:2018), ColorChecker reflectances
  (BabelColor average, Pascale 2006), as distributed by colour-science (BSD-3-Clause);
  haemoglobin extinction after Prahl (1999), melanin absorption after Jacques (2013).
* `real/astronaut.jpg`: portrait of astronaut Eileen Collins, NASA (public domain,
  https://commons.wikimedia.org/wiki/File:Eileen_Collins.jpg), from `skimage.data.astronaut()`,
  cropped to the head and shoulders and downscaled.  `truth/real/astronaut_mask.png`: its skin mask,
  hand-drawn by the skinimg developers (`skinimg.synth.ASTRONAUT_SKIN`; face, ears and neck without
  eyes, eyebrows and mouth; within about 2 px), for `skinimg eval-segment`; never used for training.
"""

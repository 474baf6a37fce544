"""The optical model of the phantoms: spectral reflectance of a two-layer skin, integrated to colour.

Every skin pixel of a phantom has a true epidermal melanin and dermal blood volume fraction;
this module turns them into colour (see :mod:`skinimg.phantom` for what a phantom is).

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
:data:`skinimg.color.XYZ_TO_SRGB` **without** chromatic adaptation: a tungsten (A) or
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
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from .. import color
from ..color import ita_deg

__all__ = ["WAVELENGTHS_NM", "ILLUMINANTS", "SkinOptics", "DEFAULT_OPTICS", "skin_reflectance",
           "reflectance_to_linear_rgb", "skin_linear_rgb", "render_chart_patches", "illuminant_white",
           "chart_patch_names", "ita_degrees"]

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
    path = Path(__file__).resolve().parents[1] / "data" / "spectra.json"
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


def _farrell(mua, musp, n: float):
    """Diffuse reflectance of a semi-infinite turbid medium (module docstring, step 3: [Farrell1992]_, boundary
    term ``A`` after [Groenhuis1983]_ for refractive index ``n``).  ``mua``, ``musp``: absorption and reduced
    scattering in cm^-1, float arrays (broadcastable); returns float64 in [0, 1], the broadcast shape."""
    a = musp / (mua + musp)
    s = np.sqrt(3.0 * (1.0 - a))
    return (a / 2.0) * (1.0 + np.exp(-(4.0 / 3.0) * _boundary_a(n) * s)) * np.exp(-s)


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
    rd = _farrell(mua_d, ab["musp"], optics.refractive_index)
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
    return (e[:, None] * cmf * k) @ color.XYZ_TO_SRGB.T


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
def _skin_table(illuminant: str, optics) -> np.ndarray:
    """(N_hb, N_mel, 3) float32 linear RGB on a grid over melanin [0, 0.6] x hemoglobin [0, 0.3].

    Nodes are equally spaced in sqrt(concentration), so the grid is densest near 0.  ``optics``
    is a :class:`SkinOptics` or any model with ``linear_rgb(melanin, blood, illuminant)`` (a
    member of :mod:`skinimg.phantom.ensemble`).
    """
    q = np.linspace(0.0, 1.0, _TABLE_N) ** 2  # square-root spacing: finer where colour changes fastest
    mel = q * _MEL_MAX
    hb = q * _HB_MAX
    mm, hh = np.meshgrid(mel, hb)
    if isinstance(optics, SkinOptics):
        return np.ascontiguousarray(skin_linear_rgb(mm, hh, illuminant, optics=optics))
    return np.ascontiguousarray(optics.linear_rgb(mm, hh, illuminant), dtype=np.float32)


def _table_lookup(melanin: np.ndarray, hemoglobin: np.ndarray, illuminant: str, optics) -> np.ndarray:
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
    """ITA in degrees of CIELAB values (shape (..., 3)): :func:`skinimg.color.ita_deg` of L* and b*."""
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
    target = color.srgb_to_linear(np.asarray(rgb8, dtype=np.uint8)).astype(np.float64)
    m = basis.T @ _rgb_matrix("D65")  # (3 basis, 3 rgb)
    c = np.linalg.solve(m.T, target)
    return basis @ np.clip(c, 0.003, 1.0)


def _material(rgb8, illuminant: str) -> np.ndarray:
    return reflectance_to_linear_rgb(_spectrum_from_srgb(rgb8), illuminant)

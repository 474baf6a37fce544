"""An ensemble of plausible optical skin models: the same skin, rendered by models that disagree.

:mod:`skinimg.phantom.optics` is one two-layer model; an inversion fitted on it inherits its
assumptions (a haemoglobin index inverted on it grows as blood^1.9 on an independent
Beer-Lambert model).  Each member here maps the epidermal melanosome volume fraction
(``melanin``) and the dermal blood volume fraction (``blood``) to a reflectance spectrum,
400-700 nm every 5 nm, integrated to colour exactly like the phantoms (CIE 1931 2 degree
observer, CIE illuminant, linear sRGB; :func:`skinimg.phantom.optics.reflectance_to_linear_rgb`).
What varies between members, and why (references at the end):

* **dermis solver** (``family``), the assumption that matters most:

  - ``diffusion``: semi-infinite dermis, diffusion theory with index mismatch [Farrell1992]_
    [Groenhuis1983]_ (the phantoms' own model);
  - ``mc``: semi-infinite dermis, Monte Carlo photon transport (isotropic scattering with the
    reduced coefficients), tabulated in ``skinimg/data/ensemble_data.json`` [Wang1995]_;
  - ``km2``: Kubelka-Munk epidermis (a scattering layer) over a semi-infinite KM dermis,
    ``K = 2 mu_a``, ``S = 3/4 mu_s'`` [vanGemert1987]_, layers composed after [Kubelka1948]_;
  - ``km3``: as ``km2`` with a papillary layer (``papillary_um`` thick) holding
    ``papillary_ratio`` times the blood of the reticular dermis below, the superficial
    plexus of layered skin models [Meglinski2002]_ (mean blood over the top 1 mm = ``blood``);
  - ``mbll``: modified Beer-Lambert law, ``R = R_0 exp(-(mu_a - mu_a,base) L(lambda))`` with the
    differential path length ``L`` of diffusion theory at blood ``dpf_blood`` [Delpy1988]_
    [Kocsis2006]_: linear in blood, where the semi-infinite solvers go as about its square root;
  - ``bl_power``: Beer-Lambert with an absorption-independent power-law path
    ``L = path500_cm (lambda / 500)^path_power`` (a stress member, outside the plausible set:
    its path ignores that absorption shortens the paths of the photons that come back).

* **melanin spectrum** (:data:`MELANIN_SPECTRA`): power laws of [Jacques1998]_ (melanosome,
  lambda^-3.33 and lambda^-3.48) and [Jacques2013]_ (519 (lambda/500)^-3.5), the exponential
  form measured in vivo [Zonios2008]_ (decay 0.009 and 0.012 nm^-1, anchored at 519 cm^-1 at
  500 nm), and a 70:30 eumelanin:pheomelanin mixture [Donner2006]_;
* epidermal thickness, reduced scattering ``mu_s'(500)`` with its wavelength power and
  Rayleigh fraction [Jacques2013]_, blood oxygen saturation 0.6-0.95 (haemoglobin spectra
  [Prahl1999]_, 150 g/L), flat surface reflection 1-6 %.

Every member is **calibrated to the same colorimetric anchors** (so that a given ``melanin`` is
a similar tone in every member and the test grids mean the same skin): its epidermal
thickness gives ITA -50 degrees at melanin 0.45, and its ``typical_blood`` gives a* = 13 at
ITA 35 degrees (intermediate skin), within the colorimetric ranges of [DelBino2006]_.  The
constants below come from :func:`skinimg.train.ensemble.calibrate_member` (a test re-derives
them).  Blood is in each member's own units; ``typical_blood`` makes levels comparable.

Members have a ``role``: ``fit`` members build the inversion (:mod:`skinimg.train.chromophore`),
``held_out`` members (among them the Monte Carlo dermis, a solver no fit member uses) only test
it, the ``stress`` member is reported apart.

References
----------
.. [Farrell1992] Farrell, T. J., Patterson, M. S. and Wilson, B. (1992). Medical Physics 19(4),
   879-888. https://doi.org/10.1118/1.596777
.. [Groenhuis1983] Groenhuis, R. A. J., Ferwerda, H. A. and Ten Bosch, J. J. (1983). Applied
   Optics 22(16), 2456-2462. https://doi.org/10.1364/AO.22.002456
.. [Wang1995] Wang, L., Jacques, S. L. and Zheng, L. (1995). MCML. Computer Methods and
   Programs in Biomedicine 47(2), 131-146. https://doi.org/10.1016/0169-2607(95)01640-F
.. [Kubelka1948] Kubelka, P. (1948). New contributions to the optics of intensely
   light-scattering materials. JOSA 38(5), 448-457. https://doi.org/10.1364/JOSA.38.000448
.. [vanGemert1987] van Gemert, M. J. C. and Star, W. M. (1987). Relations between the
   Kubelka-Munk and the transport equation models for anisotropic scattering. Lasers in the
   Life Sciences 1(4), 287-298.
.. [Meglinski2002] Meglinski, I. V. and Matcher, S. J. (2002). Physiological Measurement
   23(4), 741-753. https://doi.org/10.1088/0967-3334/23/4/312
.. [Delpy1988] Delpy, D. T., Cope, M., van der Zee, P., et al. (1988). Physics in Medicine
   and Biology 33(12), 1433-1442. https://doi.org/10.1088/0031-9155/33/12/008
.. [Kocsis2006] Kocsis, L., Herman, P. and Eke, A. (2006). The modified Beer-Lambert law
   revisited. Physics in Medicine and Biology 51(5), N91-N98.
   https://doi.org/10.1088/0031-9155/51/5/N02
.. [Jacques1998] Jacques, S. L. (1998). Skin optics summary; melanosome absorption
   coefficient. Oregon Medical Laser Center News, https://omlc.org/news/jan98/skinoptics.html
.. [Jacques2013] Jacques, S. L. (2013). Optical properties of biological tissues: a review.
   Physics in Medicine and Biology 58(11), R37-R61. https://doi.org/10.1088/0031-9155/58/11/R37
.. [Zonios2008] Zonios, G., Dimou, A., Bassukas, I., et al. (2008). Melanin absorption
   spectroscopy. Journal of Biomedical Optics 13(1), 014017. https://doi.org/10.1117/1.2844710
.. [Donner2006] Donner, C. and Jensen, H. W. (2006). A spectral BSSRDF for shading human skin.
   Eurographics Symposium on Rendering, 409-417. https://doi.org/10.2312/EGWR/EGSR06/409-417
.. [Prahl1999] Prahl, S. (1999). Tabulated molar extinction coefficient for hemoglobin in
   water. https://omlc.org/spectra/hemoglobin/
.. [DelBino2006] Del Bino, S., Sok, J., Bessac, E. and Bernerd, F. (2006). Pigment Cell
   Research 19(6), 606-614. https://doi.org/10.1111/j.1600-0749.2006.00338.x
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .optics import WAVELENGTHS_NM, _farrell, reflectance_to_linear_rgb

__all__ = ["OpticalMember", "MEMBERS", "FIT_MEMBERS", "HELD_OUT_MEMBERS", "STRESS_MEMBERS", "MELANIN_SPECTRA",
           "FAMILIES", "member", "member_reflectance", "member_linear_rgb"]

FAMILIES = ("diffusion", "mc", "km2", "km3", "mbll", "bl_power")
_WL = WAVELENGTHS_NM

#: Melanosome absorption spectra (cm^-1 at volume fraction 1), name -> (function of wavelength nm, source).
MELANIN_SPECTRA = {
    "jacques1998": (lambda wl: 6.6e11 * wl**-3.33, "Jacques 1998, 6.6e11 nm^-3.33"),
    "omlc_skin": (lambda wl: 1.70e12 * wl**-3.48, "Jacques 1998 (OMLC melanosome page), 1.70e12 nm^-3.48"),
    "jacques2013": (lambda wl: 519.0 * (wl / 500.0) ** -3.5, "Jacques 2013, 519 (l/500)^-3.5"),
    "exp_k0.009": (lambda wl: 519.0 * np.exp(-0.009 * (wl - 500.0)), "exponential (Zonios 2008 form), 0.009 nm^-1"),
    "exp_k0.012": (lambda wl: 519.0 * np.exp(-0.012 * (wl - 500.0)), "exponential (Zonios 2008 form), 0.012 nm^-1"),
    "eu_pheo_70_30": (lambda wl: 10.0 * (0.7 * 6.6e10 * wl**-3.33 + 0.3 * 2.9e14 * wl**-4.75),
                      "Donner and Jensen 2006, 70 % eumelanin + 30 % pheomelanin"),
}


@dataclass(frozen=True)
class OpticalMember:
    """One optical skin model of the ensemble (see the module docstring for every field's meaning).

    Lengths in micrometres / centimetres as named, coefficients in cm^-1; ``typical_blood`` is the
    member's blood volume fraction of typical skin (a* = 13 at ITA 35 degrees).
    """

    name: str
    family: str
    melanin_spectrum: str
    epidermis_um: float
    typical_blood: float
    role: str = "fit"
    musp500: float = 46.0
    musp_power: float = 1.4
    f_rayleigh: float = 0.0
    saturation: float = 0.75
    surface: float = 0.028
    refractive_index: float = 1.4
    dpf_blood: float = 0.01
    path500_cm: float = 0.08
    path_power: float = 1.5
    papillary_um: float = 150.0
    papillary_ratio: float = 4.0
    note: str = ""

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"unknown family {self.family!r} (one of {', '.join(FAMILIES)})")
        if self.melanin_spectrum not in MELANIN_SPECTRA:
            raise ValueError(f"unknown melanin spectrum {self.melanin_spectrum!r}")
        if self.role not in ("fit", "held_out", "stress"):
            raise ValueError(f"unknown role {self.role!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    def reflectance(self, melanin, blood) -> np.ndarray:
        """Spectral reflectance, float64 (..., 61); see :func:`member_reflectance`."""
        return member_reflectance(self, melanin, blood)

    def linear_rgb(self, melanin, blood, illuminant: str = "D65") -> np.ndarray:
        """Linear sRGB, float32 (..., 3); see :func:`member_linear_rgb`."""
        return member_linear_rgb(self, melanin, blood, illuminant)


@lru_cache(maxsize=1)
def _data() -> dict:
    d = json.loads((Path(__file__).resolve().parents[1] / "data" / "ensemble_data.json").read_text(encoding="utf-8"))
    h = d["hemoglobin"]
    w = np.asarray(h["wavelength_nm"], dtype=np.float64)
    oxy = np.exp(np.interp(_WL, w, np.log(np.asarray(h["eps_hbo2"], dtype=np.float64))))
    deoxy = np.exp(np.interp(_WL, w, np.log(np.asarray(h["eps_hb"], dtype=np.float64))))
    mc = d["half_space_mc"]
    return {"oxy": oxy, "deoxy": deoxy, "mc_albedo": np.asarray(mc["reduced_albedo"], dtype=np.float64),
            "mc_refl": np.asarray(mc["reflectance"], dtype=np.float64)}


def _blood_mua(saturation: float) -> np.ndarray:
    """mu_a of whole blood (150 g/L haemoglobin, 64 500 g/mol), cm^-1 (Prahl 1999)."""
    d = _data()
    return math.log(10.0) * 150.0 / 64500.0 * (saturation * d["oxy"] + (1.0 - saturation) * d["deoxy"])


def _baseline() -> np.ndarray:
    """Bloodless, melanin-free tissue absorption 7.84e7 lambda^-3.255 cm^-1 (Jacques 1998)."""
    return 7.84e7 * _WL**-3.255


def _musp(m: OpticalMember) -> np.ndarray:
    x = _WL / 500.0
    return m.musp500 * (m.f_rayleigh * x**-4 + (1.0 - m.f_rayleigh) * x**-m.musp_power)


def _monte_carlo(mua, musp):
    d = _data()
    one_minus = np.clip(mua / (mua + musp), 1.0 - d["mc_albedo"][0], 1.0 - d["mc_albedo"][-1])
    x = np.log(1.0 - d["mc_albedo"])
    return np.exp(np.interp(np.log(one_minus), x, np.log(d["mc_refl"])))


def _dpf(m: OpticalMember) -> np.ndarray:
    """Differential path length (cm) of the diffusion dermis at blood ``m.dpf_blood``: -d ln R / d mu_a."""
    mua = m.dpf_blood * _blood_mua(m.saturation) + (1.0 - m.dpf_blood) * _baseline()
    musp = _musp(m)
    e = 1e-3
    hi, lo = _farrell(mua * (1 + e), musp, m.refractive_index), _farrell(mua * (1 - e), musp, m.refractive_index)
    return -(np.log(hi) - np.log(lo)) / (2.0 * e * mua)


def _km_layer(k, s, d):
    """Kubelka-Munk reflectance and transmittance of a layer (K, S in cm^-1, thickness d in cm)."""
    a = (s + k) / s
    b = np.sqrt(a * a - 1.0)
    bsd = b * s * d
    den = a * np.sinh(bsd) + b * np.cosh(bsd)
    return np.sinh(bsd) / den, b / den


def _km_infinite(k, s):
    q = k / s
    return 1.0 + q - np.sqrt(q * q + 2.0 * q)


def _stack(r1, t1, r2):
    """Kubelka's composition of a layer (r1, t1) over a reflector r2."""
    return r1 + t1 * t1 * r2 / (1.0 - r1 * r2)


def member_reflectance(m: OpticalMember, melanin, blood) -> np.ndarray:
    """Diffuse spectral reflectance of skin under member ``m``, 400-700 nm step 5 nm.

    Parameters
    ----------
    m : OpticalMember
    melanin : array_like, float, any shape
        Epidermal melanosome volume fraction in [0, 1].
    blood : array_like, float, broadcastable with ``melanin``
        Dermal blood volume fraction in [0, 1] (member units; ``m.typical_blood`` is typical skin).

    Returns
    -------
    ndarray, float64, shape (..., 61): reflectance in [0, 1] at
    :data:`skinimg.phantom.optics.WAVELENGTHS_NM`, flat surface reflection included.
    """
    mel, bl = np.broadcast_arrays(np.asarray(melanin, dtype=np.float64), np.asarray(blood, dtype=np.float64))
    mel, bl = mel[..., None], bl[..., None]
    base = _baseline()
    mua_epi = mel * MELANIN_SPECTRA[m.melanin_spectrum][0](_WL) + (1.0 - mel) * base
    mub = _blood_mua(m.saturation)
    musp = _musp(m)
    d_epi = m.epidermis_um * 1e-4
    mua_d = bl * mub + (1.0 - bl) * base
    if m.family in ("km2", "km3"):
        r_e, t_e = _km_layer(2.0 * mua_epi, 0.75 * musp, d_epi)
        s_d = 0.75 * musp
        if m.family == "km2":
            r_d = _km_infinite(2.0 * mua_d, s_d)
        else:
            dp = m.papillary_um * 1e-4  # papillary layer over the reticular dermis; mean blood over 1 mm = blood
            b_ret = bl / (m.papillary_ratio * dp / 0.1 + (1.0 - dp / 0.1))
            b_pap = m.papillary_ratio * b_ret
            r_p, t_p = _km_layer(2.0 * (b_pap * mub + (1.0 - b_pap) * base), s_d, dp)
            r_d = _stack(r_p, t_p, _km_infinite(2.0 * (b_ret * mub + (1.0 - b_ret) * base), s_d))
        body = _stack(r_e, t_e, r_d)
    else:
        t2 = np.exp(-2.0 * mua_epi * d_epi)  # epidermis: an absorbing filter crossed twice
        if m.family == "diffusion":
            body = t2 * _farrell(mua_d, musp, m.refractive_index)
        elif m.family == "mc":
            body = t2 * _monte_carlo(mua_d, np.broadcast_to(musp, mua_d.shape))
        else:
            path = _dpf(m) if m.family == "mbll" else m.path500_cm * (_WL / 500.0) ** m.path_power
            body = t2 * _farrell(base, musp, m.refractive_index) * np.exp(-bl * (mub - base) * path)
    return m.surface + (1.0 - m.surface) * body


def member_linear_rgb(m: OpticalMember, melanin, blood, illuminant: str = "D65") -> np.ndarray:
    """Linear sRGB of flat, fully lit skin under member ``m`` (white Y = 1, no white balance).

    Parameters
    ----------
    m : OpticalMember
    melanin, blood : array_like, float, broadcastable, any shape (see :func:`member_reflectance`)
    illuminant : str
        A key of :data:`skinimg.phantom.ILLUMINANTS`.

    Returns
    -------
    ndarray, float32, shape (..., 3): linear R, G, B.
    """
    mel, bl = np.broadcast_arrays(np.asarray(melanin, dtype=np.float64), np.asarray(blood, dtype=np.float64))
    out = np.empty(mel.shape + (3,), dtype=np.float32)
    flat_m, flat_b, flat_o = mel.reshape(-1), bl.reshape(-1), out.reshape(-1, 3)
    step = 1 << 15
    for i in range(0, flat_m.size, step):
        flat_o[i : i + step] = reflectance_to_linear_rgb(member_reflectance(m, flat_m[i : i + step],
                                                                            flat_b[i : i + step]), illuminant)
    return out


def _m(name, family, spectrum, epi, typical, role="fit", **kw) -> OpticalMember:
    return OpticalMember(name, family, spectrum, epi, typical, role, **kw)


#: The ensemble (constants from :func:`skinimg.train.ensemble.calibrate_member`).
MEMBERS = {m.name: m for m in (
    # ---- fit members: two semi-infinite solvers, Kubelka-Munk with and without a plexus, MBLL
    _m("diff_j98", "diffusion", "jacques1998", 64.78, 0.00898, note="the phantoms' own model (skinimg.phantom.optics)"),
    _m("diff_j13_ray", "diffusion", "jacques2013", 88.20, 0.00547, musp500=35.0, musp_power=1.0, f_rayleigh=0.3,
       saturation=0.9, surface=0.04),
    _m("diff_exp", "diffusion", "exp_k0.012", 152.03, 0.01462, musp500=60.0, musp_power=1.8, saturation=0.6,
       surface=0.015),
    _m("km2_omlc", "km2", "omlc_skin", 37.34, 0.02448, musp500=50.0, musp_power=1.5, surface=0.025),
    _m("km3_r4", "km3", "omlc_skin", 38.61, 0.01129, saturation=0.8, surface=0.03),
    _m("km3_r12", "km3", "jacques1998", 38.69, 0.00970, saturation=0.7, surface=0.05, papillary_um=100.0,
       papillary_ratio=12.0),
    _m("mbll_j13", "mbll", "jacques2013", 94.08, 0.00512, musp500=55.0, musp_power=1.2, saturation=0.85, surface=0.02,
       dpf_blood=0.00128),
    _m("mbll_exp", "mbll", "exp_k0.009", 110.29, 0.00630, musp500=40.0, musp_power=1.6, saturation=0.65, surface=0.035,
       dpf_blood=0.00189),
    # ---- held-out members (never used to fit)
    _m("mc_j13", "mc", "jacques2013", 89.10, 0.00664, "held_out", musp500=42.0, musp_power=1.3, saturation=0.8,
       surface=0.03, note="the one Monte Carlo dermis: a solver no fit member uses"),
    _m("km2_eupheo", "km2", "eu_pheo_70_30", 48.58, 0.01590, "held_out", musp500=40.0, musp_power=1.2,
       saturation=0.95, surface=0.06),
    _m("mbll_j98", "mbll", "jacques1998", 66.31, 0.00890, "held_out", surface=0.02, dpf_blood=0.00312,
       note="closest to the independent model of issue 26 (Jacques 1998 melanin, Prahl 75 %, 2 % surface, a wavelength-dependent mean path)"),
    _m("diff_j13", "diffusion", "jacques2013", 89.52, 0.00867, "held_out", surface=0.02),
    _m("km3_r2", "km3", "exp_k0.009", 81.49, 0.01173, "held_out", saturation=0.6, surface=0.01, papillary_um=200.0,
       papillary_ratio=2.0),
    # ---- stress member (reported apart)
    _m("bl_power", "bl_power", "jacques2013", 92.32, 0.03406, "stress", saturation=0.85, surface=0.02),
)}
FIT_MEMBERS = tuple(k for k, v in MEMBERS.items() if v.role == "fit")
HELD_OUT_MEMBERS = tuple(k for k, v in MEMBERS.items() if v.role == "held_out")
STRESS_MEMBERS = tuple(k for k, v in MEMBERS.items() if v.role == "stress")


def member(name: str) -> OpticalMember:
    """The member called ``name`` (:data:`MEMBERS`); ``ValueError`` naming the choices otherwise."""
    try:
        return MEMBERS[name]
    except KeyError:
        raise ValueError(f"unknown optical member {name!r} (one of {', '.join(MEMBERS)})") from None

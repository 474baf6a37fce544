"""How well *any* index read from colour can read a change of blood on every member of the ensemble.

The target of issue 26 (a -20 % blood change reads -20 +- 4 % on every held-out member of the ensemble of
optical models, :mod:`skinimg.phantom.ensemble`) is a property of the members as much as of the index.  An
index that is free of exposure and shading is a function ``h(c)`` of the chromaticity ``c`` of optical
density (two numbers per pixel; :data:`skinimg.indices.CHROMA_AXES`).  Take one chromaticity ``c0`` and, for
each member ``k``, the skin of that member that has it (melanin ``m_k``, blood ``b_k``; members disagree on
what skin a colour is).  When that skin loses 20 % of its blood its chromaticity moves by
``dc_k = c_k(m_k, 0.8 b_k) - c0``; the index reads ``ln(h(c0 + dc_k) / h(c0)) ~ G . dc_k`` with ``G`` the
gradient of ``ln h`` at ``c0`` (the same for every member, since they share ``c0``).  The best any smooth
index can do at ``c0`` is the ``G`` minimising the worst error ``max_k |G . dc_k - ln 0.8|``: a linear
programme in three unknowns (:func:`best_reading`).  If its worst error exceeds the target, no index of
chromaticity meets the target there, however it is defined or fitted.

Why the ``dc_k`` differ: how the blood part of optical density grows with blood depends on how light
travels in the dermis (:func:`blood_exponent`, ``p = d ln(OD_blood) / d ln(blood)``): about 0.5 in a
homogeneous semi-infinite scattering dermis (diffusion theory, Monte Carlo, Kubelka-Munk: the photons that
come back have shorter paths the more the tissue absorbs), 1 in a modified Beer-Lambert dermis with a
fixed differential path (Kocsis et al. 2006), 0.6-0.75 with a superficial plexus.  A -20 % change of blood
therefore moves the colour about twice as far under a Beer-Lambert member as under a diffusion member.

References
----------
Kocsis, L., Herman, P. and Eke, A. (2006). The modified Beer-Lambert law revisited. Physics in Medicine and
Biology 51(5), N91-N98. https://doi.org/10.1088/0031-9155/51/5/N02
Jacques, S. L. (2013). Optical properties of biological tissues: a review. Physics in Medicine and Biology
58(11), R37-R61. https://doi.org/10.1088/0031-9155/58/11/R37
Farrell, T. J., Patterson, M. S. and Wilson, B. (1992). A diffusion theory model of spatially resolved,
steady-state diffuse reflectance. Medical Physics 19(4), 879-888. https://doi.org/10.1118/1.596777
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from ..indices import CHROMA_AXES, separate_chromophores
from ..phantom.ensemble import MEMBERS, OpticalMember, member_reflectance
from ..phantom.optics import WAVELENGTHS_NM, reflectance_to_linear_rgb
from .ensemble import tone_melanin

__all__ = ["member_od", "blood_exponent", "state_at", "best_reading", "central_readings"]


@lru_cache(maxsize=4)
def _matrix(illuminant: str) -> np.ndarray:
    # reflectance -> linear RGB is linear: its matrix, applied in float64 (smooth for finite differences)
    return reflectance_to_linear_rgb(np.eye(WAVELENGTHS_NM.size), illuminant).astype(np.float64)


def member_od(m: OpticalMember, melanin, blood, illuminant: str = "D65") -> np.ndarray:
    """Optical density ``-log10(linear RGB)`` of flat skin under member ``m``; float64 (..., 3)."""
    return -np.log10(member_reflectance(m, melanin, blood) @ _matrix(illuminant))


def blood_exponent(m: OpticalMember, melanin: float, blood: float, channel: int = 1) -> float:
    """``d ln(OD(blood) - OD(0)) / d ln(blood)`` of camera ``channel`` (default G, where blood absorbs) at
    (``melanin``, ``blood``): 0.5 for a square-root law, 1 for Beer-Lambert."""
    def part(b):
        return float(member_od(m, melanin, b)[channel] - member_od(m, melanin, 0.0)[channel])

    e = 0.01
    return (math.log(part(blood * (1 + e))) - math.log(part(blood * (1 - e)))) / (math.log(1 + e) - math.log(1 - e))


def state_at(m: OpticalMember, chroma: np.ndarray, melanin0: float, blood0: float) -> tuple[float, float, float]:
    """The skin of member ``m`` whose chromaticity is ``chroma``: ``(melanin, blood, residual)`` (residual: the
    largest chromaticity error left, OD; above about 1e-5 the colour is outside the member's gamut)."""
    from scipy.optimize import least_squares

    def f(x):
        return (member_od(m, x[0], blood0 * math.exp(x[1])) @ CHROMA_AXES.T - chroma) * 100.0

    r = least_squares(f, [melanin0, 0.0], bounds=([0.0, -4.0], [0.6, 4.0]), xtol=1e-14, ftol=1e-14, gtol=1e-14)
    return float(r.x[0]), float(blood0 * math.exp(r.x[1])), float(np.abs(r.fun).max() / 100.0)


def best_reading(names, ita: float, *, reference: str = "mc_j13", level: float = 1.0, change: float = 0.8,
                 max_residual: float = 1e-5) -> dict:
    """The best worst-case reading of a ``change`` of blood by any smooth index of chromaticity.

    Parameters
    ----------
    names : sequence of str
        Members of :data:`skinimg.phantom.ensemble.MEMBERS` that the index must read.
    ita : float
        Tone: the chromaticity ``c0`` is that of ``reference``'s flat skin at this ITA (degrees) and
        ``level`` x its typical blood.
    change : float
        Blood ratio (0.8 = -20 %).

    Returns
    -------
    dict: ``lo``, ``hi`` (the best achievable worst readings, %: no index of chromaticity reads every member
    inside a narrower interval around ``100 (change - 1)``), ``readings`` (member -> its reading by that
    optimal index, %), ``states`` (member -> (melanin, blood / typical) at ``c0``), ``step_ratio`` (longest /
    shortest colour step ``|dc_k|``), ``exponents`` (member -> :func:`blood_exponent` there), ``outside``
    (members that cannot show ``c0``).
    """
    from scipy.optimize import linprog

    ref = MEMBERS[reference]
    c0 = member_od(ref, tone_melanin(ref, ita), level * ref.typical_blood) @ CHROMA_AXES.T
    steps, used, states, exps, outside = [], [], {}, {}, []
    for name in names:
        m = MEMBERS[name]
        mel, blood, res = state_at(m, c0, tone_melanin(m, ita), level * m.typical_blood)
        if res > max_residual:
            outside.append(name)
            continue
        steps.append(member_od(m, mel, change * blood) @ CHROMA_AXES.T - c0)
        used.append(name)
        states[name] = (mel, blood / m.typical_blood)
        exps[name] = blood_exponent(m, mel, blood)
    d = np.asarray(steps)
    target = math.log(change)
    # minimise t subject to |G . dc_k - target| <= t for every member (unknowns G_1, G_2, t)
    a_ub = np.vstack([np.c_[d, -np.ones(len(d))], np.c_[-d, -np.ones(len(d))]])
    b_ub = np.r_[np.full(len(d), target), np.full(len(d), -target)]
    lp = linprog([0.0, 0.0, 1.0], A_ub=a_ub, b_ub=b_ub, bounds=[(None, None), (None, None), (0.0, None)])
    g, t = lp.x[:2], float(lp.x[2])
    norms = np.linalg.norm(d, axis=1)
    return {"lo": 100.0 * (math.exp(target - t) - 1.0), "hi": 100.0 * (math.exp(target + t) - 1.0),
            "readings": {k: float(100.0 * (math.exp(v) - 1.0)) for k, v in zip(used, d @ g)},
            "states": states, "step_ratio": float(norms.max() / norms.min()), "exponents": exps,
            "outside": outside}


def central_readings(states: dict, change: float = 0.8) -> dict:
    """skinimg's own reading (the central model, :func:`skinimg.indices.separate_chromophores`) of a ``change``
    of blood at each member's state (``best_reading(...)["states"]``: member -> (melanin, blood / typical)):
    member -> relative change of ``hemoglobin``, %."""
    out = {}
    for name, (mel, rel) in states.items():
        m = MEMBERS[name]
        od = np.stack([member_od(m, mel, rel * m.typical_blood), member_od(m, mel, change * rel * m.typical_blood)])
        hb = separate_chromophores(od)[1]
        out[name] = float(100.0 * (hb[1] / hb[0] - 1.0))
    return out

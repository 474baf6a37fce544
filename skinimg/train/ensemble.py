"""The ensemble of optical skin models as training data: member calibration, tones, the central model.

:mod:`skinimg.phantom.ensemble` defines the members; this module

* re-derives their calibration constants (:func:`calibrate_member`): the epidermal thickness
  that gives ITA -50 degrees at melanin 0.45, and the typical blood that gives a* = 13 at
  ITA 35 degrees (for ``mbll`` members the differential path is taken at a fixed fraction of
  the typical blood, ``DPF_FRACTION``), so every member spans the same tone range;
* places a tone on a member (:func:`tone_melanin`: the melanin of a target ITA);
* defines the **central model** inverted by :mod:`skinimg.indices` (:func:`central_linear_rgb`):
  the mean optical density of the fit members, each at the same melanin and at the same
  blood *relative to its typical blood*, rescaled to ``CENTRAL_TYPICAL_BLOOD`` (the geometric
  mean of the fit members' typical blood).  Averaging optical density averages the members'
  responses to a change of blood, so a change read through the central model is, in log terms,
  between the members' own readings (the homogeneous-dermis members read about 0.6 times, the
  Beer-Lambert members about 1.5 times the central's relative change; see ``docs/indices.md``).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from ..color import linear_rgb_to_lab
from ..phantom.ensemble import FIT_MEMBERS, MEMBERS, OpticalMember

__all__ = ["ANCHORS", "DPF_FRACTION", "CENTRAL_TYPICAL_BLOOD", "lab_of", "ita_of", "tone_melanin", "calibrate_member",
           "central_linear_rgb"]

#: Colorimetric anchors of every member: ITA -50 degrees at melanin 0.45 (typical blood) and a* 13 at ITA 35 degrees.
ANCHORS = {"dark_ita": -50.0, "dark_melanin": 0.45, "a_star": 13.0, "a_star_ita": 35.0}
#: ``mbll`` members take their differential path length at this fraction of their typical blood.
DPF_FRACTION = {"mbll_j13": 0.25, "mbll_exp": 0.3, "mbll_j98": 0.35}
#: Blood of typical skin in the central model's units: geometric mean of the fit members' typical blood.
CENTRAL_TYPICAL_BLOOD = float(math.exp(np.mean([math.log(MEMBERS[k].typical_blood) for k in FIT_MEMBERS])))


def lab_of(m: OpticalMember, melanin, blood) -> np.ndarray:
    """CIELAB (D65) of flat skin under member ``m``; float32 (..., 3)."""
    return linear_rgb_to_lab(m.linear_rgb(melanin, blood))


def ita_of(m: OpticalMember, melanin, blood) -> np.ndarray:
    """ITA (degrees) of flat skin under member ``m``; float64 (...)."""
    lab = lab_of(m, melanin, blood).astype(np.float64)
    return np.degrees(np.arctan2(lab[..., 0] - 50.0, lab[..., 2]))


def tone_melanin(m: OpticalMember, ita: float, blood: float | None = None) -> float:
    """Melanin of member ``m`` whose flat skin has ITA ``ita`` degrees at ``blood`` (default its typical blood).

    Monotone interpolation on a 0-0.6 grid of 601 nodes; 0 when even melanin-free skin is darker.
    """
    blood = m.typical_blood if blood is None else blood
    grid = np.linspace(0.0, 0.6, 601)
    itas = ita_of(m, grid, blood)
    return float(np.interp(-ita, -itas, grid))


def _bisect(f, lo: float, hi: float, iters: int = 60) -> float:
    flo = f(lo)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        fm = f(mid)
        if (fm > 0) == (flo > 0):
            lo, flo = mid, fm
        else:
            hi = mid
    return 0.5 * (lo + hi)


def calibrate_member(m: OpticalMember, *, iterations: int = 4) -> OpticalMember:
    """``m`` with ``epidermis_um`` and ``typical_blood`` (and ``dpf_blood`` of ``mbll`` members, tied to the
    typical blood by :data:`DPF_FRACTION`) set to the :data:`ANCHORS`, by alternating one-dimensional root
    finding (bisection; deterministic)."""
    a = ANCHORS
    frac = DPF_FRACTION.get(m.name, 0.35) if m.family == "mbll" else None

    def with_blood(mm: OpticalMember, b: float) -> OpticalMember:
        return replace(mm, typical_blood=b, dpf_blood=frac * b) if frac is not None else replace(mm, typical_blood=b)

    m = with_blood(m, m.typical_blood)
    for _ in range(iterations):
        def dark(d, m=m):
            return float(ita_of(replace(m, epidermis_um=d), a["dark_melanin"], m.typical_blood)) - a["dark_ita"]
        m = replace(m, epidermis_um=_bisect(dark, 5.0, 500.0, 40))

        def redness(lb, m=m):
            mm = with_blood(m, math.exp(lb))
            return float(lab_of(mm, tone_melanin(mm, a["a_star_ita"]), mm.typical_blood)[1]) - a["a_star"]
        grid = np.linspace(math.log(1e-3), math.log(0.3), 24)
        vals = [redness(v) for v in grid]
        cross = [i for i in range(len(grid) - 1) if vals[i] < 0 <= vals[i + 1]]
        if not cross:
            raise ValueError(f"{m.name}: a* = {a['a_star']} at ITA {a['a_star_ita']} is not reachable")
        m = with_blood(m, math.exp(_bisect(redness, grid[cross[0]], grid[cross[0] + 1], 40)))
    return m


def central_linear_rgb(melanin, blood, *, members=FIT_MEMBERS, illuminant: str = "D65") -> np.ndarray:
    """Linear sRGB of the central model: ``10 ** -mean_k OD_k(melanin, blood * b_k / CENTRAL_TYPICAL_BLOOD)``.

    Parameters
    ----------
    melanin, blood : array_like, float, broadcastable
        Melanosome volume fraction and blood volume fraction in the central units
        (``CENTRAL_TYPICAL_BLOOD`` = typical skin).
    members : sequence of str
        Members averaged (default the fit members, equal weights).

    Returns
    -------
    ndarray, float64, shape (..., 3)
    """
    blood = np.asarray(blood, dtype=np.float64)
    od = None
    for name in members:
        m = MEMBERS[name]
        lin = m.linear_rgb(melanin, blood * (m.typical_blood / CENTRAL_TYPICAL_BLOOD), illuminant).astype(np.float64)
        o = -np.log10(np.clip(lin, 1e-6, None))
        od = o if od is None else od + o
    return 10.0 ** (-od / len(members))

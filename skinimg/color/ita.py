"""Individual Typology Angle (ITA) and the skin-colour classes built on it.

``ITA = atan2(L* - 50, b*) * 180 / pi`` in degrees, Chardon, Cretois and Hourseau (1991) [Chardon]_
(usually written ``arctan((L* - 50) / b*)``; ``atan2`` is the same for ``b* > 0`` and stays defined at
``b* = 0``), with the six classes of Del Bino and Bernerd (2013) [DelBino]_.  A pure formula on CIELAB,
shared by the indices (the ``ita_deg`` map and ``ita_category`` column), the segmentation evaluation
(tone of a labelled photo) and the phantom generator (reference tone of a phantom).

References
----------
.. [Chardon] Chardon, A., Cretois, I. and Hourseau, C. (1991). Skin colour typology and
   suntanning pathways. International Journal of Cosmetic Science 13(4), 191-208.
   https://doi.org/10.1111/j.1467-2494.1991.tb00561.x
.. [DelBino] Del Bino, S. and Bernerd, F. (2013). Variations in skin colour and the
   biological consequences of ultraviolet radiation exposure. British Journal of
   Dermatology 169(Suppl. 3), 33-40. https://doi.org/10.1111/bjd.12529
"""

from __future__ import annotations

import numpy as np

__all__ = ["ITA_CATEGORIES", "ITA_BOUNDS", "ita_deg", "ita_category", "ita_categories", "ita_index"]

#: ITA classes, lightest first (Del Bino & Bernerd 2013).
ITA_CATEGORIES = ("very_light", "light", "intermediate", "tan", "brown", "dark")
#: Lower bounds of the classes above (degrees); a value equal to a bound belongs to the darker class.
ITA_BOUNDS = (55.0, 41.0, 28.0, 10.0, -30.0)


def ita_deg(l_star: np.ndarray, b_star: np.ndarray) -> np.ndarray:
    """Individual Typology Angle ``atan2(L* - 50, b*)`` in degrees (Chardon et al. 1991).

    Parameters
    ----------
    l_star, b_star : array_like, float, broadcastable, any shape
        CIELAB L* in [0, 100] and b* (about [-128, 127]).

    Returns
    -------
    ndarray, float32: degrees in (-180, 180]; about +70 (very light skin) to -60 (dark skin).
    """
    l_star = np.asarray(l_star, dtype=np.float32)
    b_star = np.asarray(b_star, dtype=np.float32)
    return np.degrees(np.arctan2(l_star - np.float32(50.0), b_star)).astype(np.float32, copy=False)


def ita_categories(ita: np.ndarray) -> np.ndarray:
    """Vectorised :func:`ita_category`: array of class names (``"unknown"`` for NaN)."""
    ita = np.asarray(ita, dtype=np.float64)
    idx = ita_index(ita)
    names = np.array(ITA_CATEGORIES + ("unknown",))
    return names[idx]


def ita_index(ita: np.ndarray) -> np.ndarray:
    """Class index of ITA values (float, any shape): 0 (very_light) .. 5 (dark), 6 for NaN (int64, same shape).

    Bounds (:data:`ITA_BOUNDS`) belong to the darker class.
    """
    edges = np.array(ITA_BOUNDS[::-1])  # -30, 10, 28, 41, 55 ascending
    # searchsorted(side="left") gives i with edges[i-1] < x <= edges[i]: x == bound -> lower class.
    darkness = len(edges) - np.searchsorted(edges, ita, side="left")  # 0 for > 55 ... 5 for <= -30
    return np.where(np.isnan(ita), len(ITA_CATEGORIES), darkness)


def ita_category(ita: float) -> str:
    """Skin-colour class of an ITA value (Del Bino & Bernerd 2013).

    ========================  ================
    ITA (degrees)             class
    ========================  ================
    ITA > 55                  ``very_light``
    41 < ITA <= 55            ``light``
    28 < ITA <= 41            ``intermediate``
    10 < ITA <= 28            ``tan``
    -30 < ITA <= 10           ``brown``
    ITA <= -30                ``dark``
    NaN                       ``unknown``
    ========================  ================

    A value exactly on a boundary belongs to the darker class.  Never returns None.
    """
    return str(ita_categories(np.asarray([ita], dtype=np.float64))[0])

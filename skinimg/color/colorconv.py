"""Colour conversions: sRGB, linear RGB, CIE XYZ, CIELAB, optical density.

All functions are pure, vectorised over any leading shape ``(..., 3)`` and return
``float32`` (the working precision of skinimg; 16-bit input keeps ~1e-5 relative
precision, well below camera noise).  Channel order is always **R, G, B**.

Ranges (the "Notes" table of every function repeats the ones it uses):

=========================  ==================  ==========================
quantity                   dtype               range
=========================  ==================  ==========================
encoded sRGB (integer)     uint8 / uint16      [0, 255] / [0, 65535]
encoded sRGB (float)       float32/float64     [0, 1]
linear RGB                 float32             [0, 1] (may exceed after correction)
CIE XYZ                    float32             Y in [0, 1], D65 white = (0.9505, 1, 1.089)
CIELAB                     float32             L* in [0, 100], a*, b* about [-128, 127]
optical density            float32             [0, -log10(floor)] (4 by default)
=========================  ==================  ==========================

References
----------
.. [IEC] IEC 61966-2-1:1999, Multimedia systems and equipment - Colour measurement and
   management - Part 2-1: Default RGB colour space - sRGB.
.. [CIE] CIE 015:2018, Colorimetry, 4th edition. https://doi.org/10.25039/TR.015.2018
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..errors import ImageArrayError

__all__ = [
    "D65_WHITE_XY",
    "D65_WHITE_XYZ",
    "SRGB_TO_XYZ",
    "XYZ_TO_SRGB",
    "OD_FLOOR",
    "to_float",
    "srgb_to_linear",
    "linear_to_srgb",
    "linear_to_srgb_uint8",
    "linear16_luts",
    "linear_rgb_to_xyz",
    "xyz_to_linear_rgb",
    "xyz_to_lab",
    "lab_to_xyz",
    "linear_rgb_to_lab",
    "rgb_to_lab",
    "lab_to_linear_rgb",
    "optical_density",
    "rgb_to_optical_density",
]

#: CIE 1931 2-degree chromaticity of illuminant D65, as used by IEC 61966-2-1.
D65_WHITE_XY = (0.3127, 0.3290)
#: D65 white point in XYZ with Y = 1.
D65_WHITE_XYZ = np.array(
    [D65_WHITE_XY[0] / D65_WHITE_XY[1], 1.0, (1.0 - D65_WHITE_XY[0] - D65_WHITE_XY[1]) / D65_WHITE_XY[1]]
)
#: Linear sRGB -> XYZ (D65), the 4-decimal matrix of IEC 61966-2-1 (as colour-science uses).
SRGB_TO_XYZ = np.array(
    [
        [0.4124, 0.3576, 0.1805],
        [0.2126, 0.7152, 0.0722],
        [0.0193, 0.1192, 0.9505],
    ]
)
#: XYZ (D65) -> linear sRGB, the exact inverse of :data:`SRGB_TO_XYZ`.
XYZ_TO_SRGB = np.linalg.inv(SRGB_TO_XYZ)
#: Default reflectance floor for optical density: OD is at most -log10(1e-4) = 4.
OD_FLOOR = 1e-4

_EPSILON = 216.0 / 24389.0  # (6/29)^3
_KAPPA = 24389.0 / 27.0


def to_float(image: np.ndarray) -> np.ndarray:
    """Scale an image to float32 in [0, 1] (the one dtype gate of the library).

    Parameters
    ----------
    image : ndarray, shape (..., C), uint8, uint16 or floating
        Integer input is divided by its dtype maximum (255 or 65535); floating
        input is returned as float32 unchanged (assumed already in [0, 1]).

    Returns
    -------
    ndarray, float32, same shape

    Raises
    ------
    ImageArrayError
        For other dtypes (bool, signed integers), naming the dtype (a ``TypeError``).
    """
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image.astype(np.float32) * np.float32(1.0 / 255.0)
    if image.dtype == np.uint16:
        return image.astype(np.float32) * np.float32(1.0 / 65535.0)
    if np.issubdtype(image.dtype, np.floating):
        return image.astype(np.float32, copy=False)
    raise ImageArrayError(f"unsupported image dtype {image.dtype}; expected uint8, uint16 or float in [0, 1]")


def _srgb_decode(v: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 decoding (electro-optical transfer) on float input."""
    v = np.asarray(v, dtype=np.float64 if np.asarray(v).dtype == np.float64 else np.float32)
    a = np.abs(v)
    out = np.where(a <= 0.04045, a / 12.92, ((a + 0.055) / 1.055) ** 2.4)
    return np.copysign(out, v)


@lru_cache(maxsize=None)
def _decode_lut(bits: int) -> np.ndarray:
    n = 2**bits
    return _srgb_decode(np.arange(n, dtype=np.float64) / (n - 1)).astype(np.float32)


@lru_cache(maxsize=None)
def _od_lut(bits: int, floor: float) -> np.ndarray:
    lin = _decode_lut(bits).astype(np.float64)
    return (-np.log10(np.maximum(lin, floor))).astype(np.float32)


@lru_cache(maxsize=None)
def linear16_luts() -> tuple[np.ndarray, np.ndarray]:
    """Lookup tables between 8-bit sRGB and 16-bit *linear* codes (``round(65535 * C_lin)``).

    Returns
    -------
    to_linear16 : ndarray, uint16, shape (256,)
        Encoded 8-bit code -> linear 16-bit code.
    to_srgb8 : ndarray, uint8, shape (65536,)
        Linear 16-bit code -> nearest encoded 8-bit code.

    The round trip ``to_srgb8[to_linear16[v]] == v`` is exact for every 8-bit code
    (adjacent codes are at least 19 linear-16 steps apart), so pixels can be averaged
    in linear light (where light adds) and stored again as 8-bit sRGB.
    """
    to_lin = np.rint(_decode_lut(8).astype(np.float64) * 65535.0).astype(np.uint16)
    to_u8 = linear_to_srgb_uint8(np.arange(65536, dtype=np.float64) / 65535.0)
    return to_lin, to_u8


def srgb_to_linear(rgb: np.ndarray) -> np.ndarray:
    """Decode sRGB to linear RGB (IEC 61966-2-1).

    ``C_lin = C / 12.92`` for ``C <= 0.04045``, else ``((C + 0.055) / 1.055) ** 2.4``.

    Parameters
    ----------
    rgb : ndarray, shape (..., 3) or any shape
        Encoded sRGB: uint8 [0, 255] and uint16 [0, 65535] go through an exact
        256- / 65536-entry lookup table; float input in [0, 1] uses the formula
        (negative values are mirrored, as colour-science does).

    Returns
    -------
    ndarray, float32, same shape, linear RGB in [0, 1]

    Examples
    --------
    >>> float(srgb_to_linear(np.uint8(255)))
    1.0
    """
    rgb = np.asarray(rgb)
    if rgb.dtype == np.uint8:
        return _decode_lut(8)[rgb]
    if rgb.dtype == np.uint16:
        return _decode_lut(16)[rgb]
    return _srgb_decode(to_float(rgb)).astype(np.float32, copy=False)


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """Encode linear RGB to sRGB (IEC 61966-2-1), float32 in [0, 1] for input in [0, 1].

    ``C = 12.92 C_lin`` for ``C_lin <= 0.0031308``, else ``1.055 C_lin ** (1/2.4) - 0.055``.
    No clipping; negative input is mirrored.  See :func:`linear_to_srgb_uint8` for output.
    """
    v = np.asarray(linear, dtype=np.float32)
    a = np.abs(v)
    out = np.where(a <= 0.0031308, a * np.float32(12.92), np.float32(1.055) * a ** np.float32(1 / 2.4) - np.float32(0.055))
    return np.copysign(out, v).astype(np.float32, copy=False)


def linear_to_srgb_uint8(linear: np.ndarray) -> np.ndarray:
    """Encode linear RGB (float, [0, 1]) to 8-bit sRGB, clipping and rounding to nearest."""
    enc = linear_to_srgb(np.clip(np.asarray(linear, dtype=np.float32), 0.0, 1.0))
    return np.clip(np.rint(enc * 255.0), 0, 255).astype(np.uint8)


def _matmul3(x: np.ndarray, m: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.shape[-1] != 3:
        raise ValueError(f"expected a last axis of length 3 (R, G, B or X, Y, Z), got shape {x.shape}")
    return (x @ m.T.astype(np.float32)).astype(np.float32, copy=False)


def linear_rgb_to_xyz(linear: np.ndarray) -> np.ndarray:
    """Linear sRGB (D65) -> CIE XYZ with the IEC 61966-2-1 matrix; float32, shape (..., 3)."""
    return _matmul3(linear, SRGB_TO_XYZ)


def xyz_to_linear_rgb(xyz: np.ndarray) -> np.ndarray:
    """CIE XYZ (D65) -> linear sRGB (inverse IEC matrix); float32, shape (..., 3), unclipped."""
    return _matmul3(xyz, XYZ_TO_SRGB)


def _f_lab(t: np.ndarray) -> np.ndarray:
    return np.where(t > _EPSILON, np.cbrt(t), (np.float32(_KAPPA) * t + 16.0) / 116.0).astype(np.float32)


def _f_lab_inv(f: np.ndarray) -> np.ndarray:
    f3 = f * f * f
    return np.where(f3 > _EPSILON, f3, (116.0 * f - 16.0) / _KAPPA).astype(np.float32)


def xyz_to_lab(xyz: np.ndarray, white: np.ndarray | None = None) -> np.ndarray:
    """CIE XYZ -> CIELAB (CIE 015:2018).

    ``L* = 116 f(Y/Yn) - 16``, ``a* = 500 (f(X/Xn) - f(Y/Yn))``, ``b* = 200 (f(Y/Yn) - f(Z/Zn))``
    with ``f(t) = t^(1/3)`` above ``(6/29)^3`` and the linear segment below.

    Parameters
    ----------
    xyz : ndarray, shape (..., 3), Y in [0, 1]
    white : ndarray, shape (3,), optional
        Reference white XYZ, default D65 (:data:`D65_WHITE_XYZ`).

    Returns
    -------
    ndarray, float32, shape (..., 3): L* in [0, 100], a*, b*.
    """
    xyz = np.asarray(xyz, dtype=np.float32)
    if xyz.shape[-1] != 3:
        raise ValueError(f"expected a last axis of length 3 (X, Y, Z), got shape {xyz.shape}")
    w = (D65_WHITE_XYZ if white is None else np.asarray(white, dtype=np.float64)).astype(np.float32)
    f = _f_lab(xyz / w)
    fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
    out = np.empty(xyz.shape, dtype=np.float32)
    out[..., 0] = 116.0 * fy - 16.0
    out[..., 1] = 500.0 * (fx - fy)
    out[..., 2] = 200.0 * (fy - fz)
    return out


def lab_to_xyz(lab: np.ndarray, white: np.ndarray | None = None) -> np.ndarray:
    """CIELAB -> CIE XYZ (inverse of :func:`xyz_to_lab`); float32, shape (..., 3)."""
    lab = np.asarray(lab, dtype=np.float32)
    w = (D65_WHITE_XYZ if white is None else np.asarray(white, dtype=np.float64)).astype(np.float32)
    fy = (lab[..., 0] + 16.0) / 116.0
    f = np.stack([fy + lab[..., 1] / 500.0, fy, fy - lab[..., 2] / 200.0], axis=-1)
    return (_f_lab_inv(f) * w).astype(np.float32)


def linear_rgb_to_lab(linear: np.ndarray) -> np.ndarray:
    """Linear sRGB -> CIELAB (D65 / 2 degree); float32, shape (..., 3)."""
    return xyz_to_lab(linear_rgb_to_xyz(linear))


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """Encoded sRGB (uint8, uint16 or float in [0, 1]) -> CIELAB (D65 / 2 degree), float32.

    Notes
    -----
    Decoding goes through a lookup table for integer input, then the IEC matrix,
    then :func:`xyz_to_lab`.  Agrees with ``colour.XYZ_to_Lab(colour.sRGB_to_XYZ(x))``
    within 1e-3 (tested).
    """
    return linear_rgb_to_lab(srgb_to_linear(rgb))


def lab_to_linear_rgb(lab: np.ndarray) -> np.ndarray:
    """CIELAB (D65) -> linear sRGB, float32, unclipped (out-of-gamut values may leave [0, 1])."""
    return xyz_to_linear_rgb(lab_to_xyz(lab))


def optical_density(linear: np.ndarray, floor: float = OD_FLOOR) -> np.ndarray:
    """Optical density (absorbance) ``OD = -log10(max(R, floor))`` of linear reflectance.

    Parameters
    ----------
    linear : ndarray, float, linear RGB reflectance in [0, 1]
    floor : float
        Smallest reflectance considered (avoids log(0)); OD is at most ``-log10(floor)``.

    Returns
    -------
    ndarray, float32, same shape, >= 0 for reflectance <= 1.
    """
    lin = np.asarray(linear, dtype=np.float32)
    return (-np.log10(np.maximum(lin, np.float32(floor)))).astype(np.float32, copy=False)


def rgb_to_optical_density(rgb: np.ndarray, floor: float = OD_FLOOR) -> np.ndarray:
    """Encoded sRGB -> optical density of the linear values, in one table lookup for integers.

    Equivalent to ``optical_density(srgb_to_linear(rgb), floor)``; float32, same shape.
    """
    rgb = np.asarray(rgb)
    if rgb.dtype == np.uint8:
        return _od_lut(8, float(floor))[rgb]
    if rgb.dtype == np.uint16:
        return _od_lut(16, float(floor))[rgb]
    return optical_density(srgb_to_linear(rgb), floor)

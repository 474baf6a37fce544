"""Colour science: sRGB, linear RGB, CIE XYZ, CIELAB, optical density, CIEDE2000, ITA.

Pure functions, vectorised over any leading shape ``(..., 3)``, ``float32`` out (the working
precision of skinimg), channel order **R, G, B**.  Modules: ``colorconv`` (conversions and lookup
tables), ``delta_e`` (CIEDE2000), ``ita`` (Individual Typology Angle and its classes).
"""

from .colorconv import (D65_WHITE_XY, D65_WHITE_XYZ, OD_FLOOR, SRGB_TO_XYZ, XYZ_TO_SRGB, lab_to_linear_rgb,
                        lab_to_xyz, linear16_luts, linear_rgb_to_lab, linear_rgb_to_xyz, linear_to_srgb,
                        linear_to_srgb_uint8, optical_density, rgb_to_lab, rgb_to_optical_density, srgb_to_linear,
                        to_float, xyz_to_lab, xyz_to_linear_rgb)
from .delta_e import delta_e_2000
from .ita import ITA_BOUNDS, ITA_CATEGORIES, ita_categories, ita_category, ita_deg, ita_index

__all__ = [
    "D65_WHITE_XY",
    "D65_WHITE_XYZ",
    "ITA_BOUNDS",
    "ITA_CATEGORIES",
    "OD_FLOOR",
    "SRGB_TO_XYZ",
    "XYZ_TO_SRGB",
    "delta_e_2000",
    "ita_categories",
    "ita_category",
    "ita_deg",
    "ita_index",
    "lab_to_linear_rgb",
    "lab_to_xyz",
    "linear16_luts",
    "linear_rgb_to_lab",
    "linear_rgb_to_xyz",
    "linear_to_srgb",
    "linear_to_srgb_uint8",
    "optical_density",
    "rgb_to_lab",
    "rgb_to_optical_density",
    "srgb_to_linear",
    "to_float",
    "xyz_to_lab",
    "xyz_to_linear_rgb",
]

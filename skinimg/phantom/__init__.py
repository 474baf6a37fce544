"""Skin phantoms: synthetic photographs with known melanin and haemoglobin, from an optical model.

A phantom is a photograph rendered from a *known* skin: every skin pixel has a true
epidermal melanin volume fraction and a true dermal blood volume fraction, and the
photo goes through the things that make real measurements hard (illuminant, exposure,
camera pose, shading, specular highlights, hair, lips, eyes, clothing and skin-coloured
backgrounds, sensor noise, JPEG).  The truth is returned beside the photo so every
stage of skinimg (segmentation, indices, calibration, registration, before/after
statistics) can be tested against ground truth.

Modules: ``optics`` (the two-layer spectral skin model and its colour, with references),
``smooth`` (smooth-skin before/after pairs from an independent Beer-Lambert model, for registration and
comparison tests), ``spec`` (:class:`PhantomSpec`, :class:`Phantom`, camera pose), ``frame`` and ``scene`` (the
scene in its canonical frame), ``render`` (camera, :func:`render_phantom`,
:func:`write_phantom`), ``treated`` (:func:`render_treated`: blood changed in one patch only, a
split-face study), ``sets`` (named sets, :func:`write_set`), ``astronaut`` (a real
photograph's hand-drawn skin mask), ``chartphoto`` (ColorChecker photos at any angle among clutter,
with tone curves, for chart detection and fitting), ``plain`` (plain skin scenes and rendered papules: stress
tests of the segmentation).  The generator of the truth imports only
:mod:`skinimg.color` and :mod:`skinimg.io`, never the code it tests.
"""

from .astronaut import ASTRONAUT_SKIN, astronaut_skin_mask
from .chartphoto import (CASTS, CLUTTER_KINDS, TONE_CURVES, ChartPhoto, chart_reference_linear, render_chart_photo,
                         render_clutter_photo, tone_encode)
from .optics import (DEFAULT_OPTICS, ILLUMINANTS, WAVELENGTHS_NM, SkinOptics, chart_patch_names, illuminant_white,
                     ita_degrees, reflectance_to_linear_rgb, render_chart_patches, skin_linear_rgb, skin_reflectance)
from .plain import PLAIN_EXPOSURES, PLAIN_MELANIN, plain_scene, render_papules
from .render import render_phantom, write_phantom
from .sets import LADDER_TONES, REFERENCE_COLUMNS, SET_EXPOSURE, SETS, PlannedImage, plan_set, write_reference_csv, write_set
from .smooth import (SMOOTH_BACKDROPS, SMOOTH_CHANGES, SMOOTH_TONES, SmoothPair, SmoothScene, SmoothShot,
                     grid_residual, render_smooth, smooth_pairs, smooth_pose, wrong_site_pairs)
from .spec import BACKGROUNDS, DISTRACTORS, LABELS, SITES, Phantom, PhantomSpec, pose_matrix, relative_pose
from .treated import cheek_patches, patch_in, polygon_mask, render_treated

__all__ = [
    "render_treated",
    "cheek_patches",
    "patch_in",
    "polygon_mask",
    "ChartPhoto",
    "render_chart_photo",
    "render_clutter_photo",
    "chart_reference_linear",
    "tone_encode",
    "CLUTTER_KINDS",
    "TONE_CURVES",
    "CASTS",
    "SMOOTH_BACKDROPS",
    "SMOOTH_CHANGES",
    "SMOOTH_TONES",
    "SmoothPair",
    "SmoothScene",
    "SmoothShot",
    "grid_residual",
    "render_smooth",
    "smooth_pairs",
    "smooth_pose",
    "wrong_site_pairs",
    "ASTRONAUT_SKIN",
    "astronaut_skin_mask",
    "WAVELENGTHS_NM",
    "ILLUMINANTS",
    "BACKGROUNDS",
    "DISTRACTORS",
    "SITES",
    "LABELS",
    "SkinOptics",
    "DEFAULT_OPTICS",
    "PhantomSpec",
    "Phantom",
    "skin_reflectance",
    "reflectance_to_linear_rgb",
    "skin_linear_rgb",
    "render_chart_patches",
    "illuminant_white",
    "ita_degrees",
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
    "write_reference_csv",
    "REFERENCE_COLUMNS",
    "PLAIN_MELANIN",
    "PLAIN_EXPOSURES",
    "plain_scene",
    "render_papules",
]

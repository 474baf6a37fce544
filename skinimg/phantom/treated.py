"""A phantom treated in one patch only (:func:`render_treated`): the truth of a split-face study.

``hemoglobin_scale`` of :class:`PhantomSpec` multiplies the blood of the whole skin.  A treatment applied to one
site changes only that site, so :func:`render_treated` renders the same spec twice, untreated and with the blood
scaled, and takes each pixel from the rendering its place calls for: inside the patch polygon (in photo pixels)
the treated one, elsewhere the untreated one.  Both renderings share the scene, the pose and the sensor-noise
draw, and every step of the camera but the optical blur is per pixel, so the result is the phantom whose blood is
scaled inside the patch alone (within the blur's 1-2 px at the patch edge).  JPEG, when the spec asks for it, is
applied after the composition.

A patch drawn on one pose moves with the skin: :func:`patch_in` maps its polygon to another pose of the same scene
(:func:`skinimg.phantom.relative_pose`).
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from .render import _affine_points, _jpeg_roundtrip, render_phantom
from .spec import Phantom, PhantomSpec, relative_pose

__all__ = ["render_treated", "patch_in", "polygon_mask", "cheek_patches"]


def polygon_mask(polygon: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Pixels whose centres lie inside ``polygon`` ((n, 2) float ``[x, y]`` photo pixels): bool (H, W).

    The rule of ROI files (:func:`skinimg.io.read_roi`): vertices at 1/16 px, pixel centres at integer
    coordinates.
    """
    m = np.zeros((int(shape[0]), int(shape[1])), np.uint8)
    pts = np.round(np.asarray(polygon, dtype=np.float64) * 16).astype(np.int32).reshape(-1, 1, 2)
    cv2.fillPoly(m, [pts], 1, lineType=cv2.LINE_8, shift=4)
    return m > 0


def cheek_patches(mask: np.ndarray, share: float = 0.20) -> tuple[np.ndarray, np.ndarray]:
    """Two hexagons on a face phantom's cheeks: one on the photo-left cheek covering ``share`` of the true skin
    ``mask`` (bool (H, W)), and its mirror image about the face's vertical axis (a split-face study's treated
    and control sites).  Returns two float64 (6, 2) polygons ``[x, y]`` in photo pixels.

    The face is the rows of ``mask`` at least 60 % as wide as the widest; the patch is centred 48 % of the
    half-width left of the face's median column, 62 % down the face; its size is found by bisection.
    """
    widths = mask.sum(axis=1)
    face_rows = np.flatnonzero(widths > 0.6 * widths.max())
    y0, y1 = face_rows.min(), face_rows.max()
    cx, half = float(np.median(np.nonzero(mask[face_rows])[1])), widths.max() / 2.0
    centre = np.array([cx - 0.48 * half, y0 + 0.62 * (y1 - y0)])
    angles = np.radians(np.arange(0, 360, 60) + 30)
    unit = np.c_[np.cos(angles), 1.25 * np.sin(angles)]
    lo, hi, n_skin = 1.0, float(half), mask.sum()
    for _ in range(30):
        r = (lo + hi) / 2
        got = (polygon_mask(centre + r * unit, mask.shape) & mask).sum() / n_skin
        lo, hi = (r, hi) if got < share else (lo, r)
    treated = centre + r * unit
    return treated, np.c_[2 * cx - treated[:, 0], treated[:, 1]]


def patch_in(polygon: np.ndarray, spec_from: PhantomSpec, spec_to: PhantomSpec) -> np.ndarray:
    """A polygon drawn on the photo of ``spec_from`` in the photo of ``spec_to`` (same scene, another pose):
    float64 (n, 2)."""
    return _affine_points(relative_pose(spec_from, spec_to), polygon)


def render_treated(spec: PhantomSpec, patch: np.ndarray, *, hemoglobin_scale: float) -> Phantom:
    """Render ``spec`` with its blood multiplied by ``hemoglobin_scale`` inside ``patch`` only.

    Parameters
    ----------
    spec : PhantomSpec
        The session (its own ``hemoglobin_scale`` applies everywhere, the patch's on top).
    patch : ndarray, float (n, 2)
        Polygon ``[x, y]`` in this photo's pixels (:func:`patch_in` for a patch drawn on another pose).
    hemoglobin_scale : float
        Factor of the blood inside the patch (0.7 = a 30 % reduction).

    Returns
    -------
    Phantom
        As :func:`render_phantom`; ``hemoglobin`` and ``hemoglobin_mean`` are those of the composed skin, and
        ``truth["treated_patch"]`` holds ``polygon``, ``hemoglobin_scale``, ``pixels`` (of the photo) and
        ``skin_pixels`` (true skin inside it).
    """
    base = render_phantom(replace(spec, jpeg_quality=None))
    treated = render_phantom(replace(spec, jpeg_quality=None, hemoglobin_scale=spec.hemoglobin_scale * hemoglobin_scale))
    inside = polygon_mask(patch, base.mask.shape)
    image = np.where(inside[..., None], treated.image, base.image)
    if spec.jpeg_quality is not None:
        image = _jpeg_roundtrip(image, spec.jpeg_quality)
    hb = np.where(inside, treated.hemoglobin, base.hemoglobin).astype(np.float32)
    truth = dict(base.truth)
    truth["spec"] = spec.to_dict()
    with np.errstate(invalid="ignore"):
        truth["hemoglobin_mean"] = float(np.nanmean(hb)) if base.mask.any() else None
        truth["hemoglobin_median"] = float(np.nanmedian(hb)) if base.mask.any() else None
    truth["treated_patch"] = {"polygon": np.asarray(patch, dtype=np.float64).tolist(),
                              "hemoglobin_scale": float(hemoglobin_scale), "pixels": int(inside.sum()),
                              "skin_pixels": int((inside & base.mask).sum())}
    linear = np.where(inside[..., None], treated.linear, base.linear)
    return Phantom(image=image, mask=base.mask, melanin=base.melanin, hemoglobin=hb, labels=base.labels,
                   linear=linear, truth=truth)

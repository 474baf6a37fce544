"""A real photograph with a hand-drawn skin mask: ``skimage.data.astronaut()`` (generated outline data)."""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["ASTRONAUT_SKIN", "astronaut_skin_mask"]


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

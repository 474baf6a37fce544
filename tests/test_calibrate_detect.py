"""Chart detection at any rotation and tilt among clutter (rendered with perspective), no charts in chart-free
photos, and two real photographs (one also warped to steep angles)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from skinimg.calibrate import calibrate_image, detect_chart
from skinimg.io import load_image
from skinimg.phantom import CLUTTER_KINDS, PhantomSpec, render_chart_photo, render_clutter_photo, render_phantom

ROOT = Path(__file__).resolve().parents[1]
CC0 = ROOT / "tests" / "data" / "colorchecker_cc0_640.jpg"
BSD = ROOT / "tests" / "data" / "colorchecker_ccd_img1967.png"

# (seed, rotation, tilt, patch side px, tone curve, shadow): every quadrant of rotation, tilts to 50 degrees,
# patches 30-150 px, tinted printed-chart tone curves and shadows across part of the chart
CASES = [
    (1, 0.0, 0.0, 40, "srgb", False),
    (2, 42.0, 35.0, 90, "gamma", False),
    (3, 90.0, 50.0, 120, "srgb", True),
    (4, 137.0, 45.0, 30, "srgb", False),
    (5, 180.0, 25.0, 150, "filmic", False),
    (6, 223.0, 50.0, 70, "gamma", True),
    (7, 270.0, 15.0, 55, "filmic", True),
    (8, 318.0, 40.0, 100, "srgb", False),
    (9, 17.0, 48.0, 45, "gamma", False),
    (10, 301.0, 30.0, 35, "srgb", True),
]


@pytest.mark.parametrize("seed, rot, tilt, size, curve, shaded", CASES)
def test_detect_rendered_chart_at_any_angle(seed, rot, tilt, size, curve, shaded):
    shot = render_chart_photo(seed, size_px=size, rot=rot, tilt=tilt, curve=curve, shaded=shaded,
                              long_side=2048 if size > 110 else 1600)
    det = detect_chart(shot.image)
    assert det.found, det.reason
    pitch = shot.meta["pitch"]
    # every patch where it is (so patch 1 is found in its corner: the orientation is right)
    assert np.abs(det.patch_centres - shot.centres).max() < 0.1 * pitch
    assert np.hypot(*(det.corners - shot.corners).T).max() < max(2.0, 0.05 * pitch)


def _chart_free_photos():
    samples = sorted(p for p in (ROOT / "sample_images").rglob("*.jpg") if "chart" not in p.parts)
    for p in samples:
        yield p.relative_to(ROOT).as_posix(), load_image(p)[0]
    for seed in (1, 2):
        yield f"phantom {seed}", render_phantom(PhantomSpec(seed=seed, size=(600, 800))).image
    for i, kind in enumerate(CLUTTER_KINDS + ("fakechart",)):
        yield f"clutter {kind}", render_clutter_photo(100 + i, kinds=[kind, kind, "mosaic"], long_side=1024)[0]


def test_no_chart_in_chart_free_photos():
    """The sample images, phantoms without a chart and rendered clutter (keyboards, tiles, colour mosaics, window
    grids, text, chessboards, calendars, cubes, sticky notes, another 4x6 colour grid): no chart."""
    found = [(name, round(det.score, 1)) for name, img in _chart_free_photos() if (det := detect_chart(img)).found]
    assert not found
    n = sum(1 for _ in (ROOT / "sample_images").rglob("*.jpg"))
    assert n >= 10


def test_real_photo_bsd_hand_checked_patches():
    """A real photo of a chart leaning on a chair (slight perspective; colour-checker-detection, BSD-3-Clause, see
    tests/data/README.md): patch centres within 1.5 px of the hand-checked ones, and the chart reads the right way
    round (greys get darker from 19 to 24; dark skin is red > green > blue)."""
    rgb, _ = load_image(BSD)
    det = detect_chart(rgb)
    assert det.found, det.reason
    hand = {1: (110.3, 71.3), 6: (254.5, 76.0), 19: (108.0, 156.5), 23: (222.8, 160.6)}
    for k, xy in hand.items():
        assert np.hypot(*(det.patch_centres[k - 1] - xy)) < 1.5, k
    greys = det.patch_rgb[18:24].sum(axis=1)
    assert np.all(np.diff(greys) < 0)
    r, g, b = det.patch_rgb[0]
    assert r > g > b
    _, corr = calibrate_image(rgb)
    assert corr.kind == "chart" and corr.delta_e_loo["mean"] < corr.delta_e_before["mean"]


@pytest.mark.parametrize("path, rot, tilt", [(CC0, 42.0, 40.0), (CC0, 215.0, 50.0), (BSD, 135.0, 35.0)])
def test_real_photo_warped_to_steep_angles(path, rot, tilt):
    """A real photo re-projected as if the camera were tilted and rotated (the issue's missed chart: rotated about
    42 degrees, patches slanted parallelograms): the detection moves with the photo."""
    rgb, _ = load_image(path)
    base = detect_chart(rgb)
    h, w = rgb.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    # a tilt about the horizontal axis foreshortens the far edge; then rotate about the centre
    c, s = np.cos(np.radians(rot)), np.sin(np.radians(rot))
    k = np.cos(np.radians(tilt))
    far = 0.5 * (1 - k)
    quad = np.float32([[w * far / 2, h * far], [w * (1 - far / 2), h * far], [w, h], [0, h]])
    quad -= quad.mean(axis=0)
    quad = quad @ np.float32([[c, s], [-s, c]])
    size = int(np.ceil(np.abs(quad).max() * 2 + 40))
    quad += size / 2
    hmat = cv2.getPerspectiveTransform(src, quad.astype(np.float32))
    canvas = cv2.warpPerspective(rgb, hmat, (size, size), flags=cv2.INTER_LINEAR, borderValue=(120, 110, 100))
    det = detect_chart(canvas)
    assert det.found, det.reason
    expect = cv2.perspectiveTransform(base.patch_centres.reshape(-1, 1, 2), hmat).reshape(-1, 2)
    pitch = np.median(np.hypot(*np.diff(expect.reshape(4, 6, 2), axis=1).reshape(-1, 2).T))
    assert np.abs(det.patch_centres - expect).max() < max(1.5, 0.06 * pitch)

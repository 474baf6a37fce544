"""Rendered photos of a ColorChecker Classic at any angle, among clutter, for testing chart detection and fitting.

A chart raster (X-Rite reference colours, black frame, logos) is placed in 3-D (rotation about the
view axis, then a tilt about an in-plane axis), projected with a pinhole camera
(:func:`cv2.warpPerspective`) into a background (a photograph bundled with scikit-image, or a texture)
with clutter that looks like a chart to a simple detector (keyboards, tiles, colour mosaics, window
grids, text, chessboards, calendars, cubes, sticky notes, other 4x6 colour grids), then lit (gradient,
vignetting, an optional soft shadow across part of the chart) and photographed: a 3x3 camera matrix
(illuminant cast and sensor cross-talk), exposure, a per-channel tone curve (sRGB; a tinted gamma
1.6-2.6 with a 3-8 % black level, as a phone photo of a printed chart; or a tinted filmic S-curve),
sensor noise, 8-bit quantisation and JPEG.  Everything is drawn in linear light.

The truth returned beside each photo: the patch-grid corners (next to patches 1, 6, 24, 19), the 24
patch centres, the lattice -> image homography, and every rendering parameter.  Imports only
:mod:`skinimg.color` and :mod:`skinimg.io` (never the detector it tests).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..color import lab_to_linear_rgb, linear_rgb_to_lab, linear_to_srgb, srgb_to_linear
from ..io import model_file, read_json_object

__all__ = ["ChartPhoto", "render_chart_photo", "render_clutter_photo", "chart_reference_linear", "tone_encode",
           "CLUTTER_KINDS", "TONE_CURVES", "CASTS"]

#: Kinds of clutter :func:`render_clutter_photo` draws ("fakechart" = another 4x6 grid of random colours).
CLUTTER_KINDS = ("keyboard", "tiles", "mosaic", "window", "text", "chessboard", "cube", "calendar", "notes")
#: Tone curves of the rendered camera.
TONE_CURVES = ("srgb", "gamma", "filmic")
#: White-point gains of the camera under each light, relative to D65 (red, green, blue).
CASTS = {"D65": (1.0, 1.0, 1.0), "A": (1.75, 1.0, 0.42), "F11": (1.2, 1.0, 0.62), "D50": (1.15, 1.0, 0.8),
         "D75": (0.9, 1.0, 1.12), "LED3000": (1.55, 1.0, 0.5), "shade": (0.85, 1.0, 1.25)}
_PATCH = 0.87  # patch side / pitch of a ColorChecker Classic
_FRAME = {"left": 0.17, "right": 0.17, "top": 0.22, "bottom": 0.26}  # frame beyond the cell grid (pitches)
_GRID = np.array([[-0.5, -0.5], [5.5, -0.5], [5.5, 3.5], [-0.5, 3.5]])
_CELLS = np.stack([np.arange(24) % 6, np.arange(24) // 6], axis=1).astype(np.float64)
_PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png", "ihc.png", "gravel.png",
           "brick.png", "grass.png", "page.png", "text.png", "camera.png", "coins.png", "horse.png", "color.png")


@dataclass
class ChartPhoto:
    """A rendered chart photo and its truth.

    Attributes
    ----------
    image : ndarray (H, W, 3) uint8, encoded RGB
    corners : ndarray (4, 2) float64
        Image (x, y) of the patch-grid corners next to patches 1, 6, 24, 19.
    centres : ndarray (24, 2) float64
        Image (x, y) of the patch centres, chart order.
    homography : ndarray (3, 3)
        Chart lattice (column, row) -> image pixels.
    colours : ndarray (24, 3) float32
        Linear RGB of the chart's patches as printed (the reference plus ``print_sigma`` errors).
    meta : dict
        Every rendering parameter (size_px, rot, tilt, pitch, tone curve, camera matrix, ...).
    """

    image: np.ndarray
    corners: np.ndarray
    centres: np.ndarray
    homography: np.ndarray
    colours: np.ndarray
    meta: dict = field(default_factory=dict)


def chart_reference_linear() -> np.ndarray:
    """Linear sRGB (D65) of the 24 patches from ``models/colorchecker_classic24.json``, float64 (24, 3)."""
    doc = read_json_object(model_file("colorchecker_classic24.json"))
    return np.array([p["linear_srgb_d65"] for p in doc["patches"]], dtype=np.float64)


def _project(h: np.ndarray, pts) -> np.ndarray:
    return cv2.perspectiveTransform(np.asarray(pts, dtype=np.float64).reshape(-1, 1, 2), h).reshape(-1, 2)


def _rotation(axis, angle: float) -> np.ndarray:
    a = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


def _plane_homography(rot, tilt, tilt_axis, f, w, h, centre_uv, z0, txy) -> np.ndarray:
    """Pinhole homography of plane coordinates (u, v) -> image, the plane centred at ``centre_uv``."""
    r = _rotation([math.cos(math.radians(tilt_axis)), math.sin(math.radians(tilt_axis)), 0], math.radians(tilt))
    r = r @ _rotation([0, 0, 1], math.radians(rot))
    t = np.array([txy[0], txy[1], z0]) - r @ np.array([centre_uv[0], centre_uv[1], 0.0])
    hm = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1.0]]) @ np.column_stack([r[:, 0], r[:, 1], t])
    return hm / hm[2, 2]


def _place(rng, w, h, outline, centre_uv, size_units, size_px, rot, tilt, tilt_axis, f, margin=0.03, tries=60):
    """A homography putting the plane (outline in plane units) wholly inside the image, or None."""
    z0 = f * size_units / size_px
    for _ in range(tries):
        px, py = rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h
        hm = _plane_homography(rot, tilt, tilt_axis, f, w, h, centre_uv, z0, ((px - w / 2) * z0 / f, (py - h / 2) * z0 / f))
        q = _project(hm, outline)
        if (q[:, 0] > margin * w).all() and (q[:, 0] < (1 - margin) * w).all() and (q[:, 1] > margin * h).all() \
                and (q[:, 1] < (1 - margin) * h).all():
            return hm
    return None


def _put_text(img: np.ndarray, text: str, org, scale: float, colour, thickness: int) -> None:
    """Text on a float image (OpenCV draws text on 8-bit images only): an 8-bit mask, blended."""
    m = np.zeros(img.shape[:2], np.uint8)
    cv2.putText(m, text, (int(org[0]), int(org[1])), cv2.FONT_HERSHEY_SIMPLEX, scale, 255, thickness, cv2.LINE_AA)
    a = (m.astype(np.float32) / 255.0)[..., None]
    img *= 1 - a
    img += a * np.float32(colour)


def _chart_raster(ppp: float, colours: np.ndarray, logos: bool = True):
    """Linear raster of a chart at ``ppp`` pixels per pitch (4x supersampled) and the lattice -> raster matrix."""
    ox, oy = (0.5 + _FRAME["left"]) * ppp, (0.5 + _FRAME["top"]) * ppp
    w = int(math.ceil((6 + _FRAME["left"] + _FRAME["right"]) * ppp))
    h = int(math.ceil((4 + _FRAME["top"] + _FRAME["bottom"]) * ppp))
    ss = 4 if ppp < 60 else 2
    big = np.full((h * ss, w * ss, 3), 0.03, np.float32)
    for k in range(24):
        c, r = _CELLS[k]
        x0, x1 = (ox + (c - _PATCH / 2) * ppp) * ss, (ox + (c + _PATCH / 2) * ppp) * ss
        y0, y1 = (oy + (r - _PATCH / 2) * ppp) * ss, (oy + (r + _PATCH / 2) * ppp) * ss
        big[int(round(y0)):int(round(y1)), int(round(x0)):int(round(x1))] = colours[k]
    if logos:
        th = max(1, int(round(0.02 * ppp * ss)))
        _put_text(big, "colorchecker CLASSIC", ((ox - 0.4 * ppp) * ss, (oy - 0.44 * ppp) * ss), 0.0045 * ppp * ss, (0.6,) * 3, th)
        _put_text(big, "x-rite", ((ox - 0.4 * ppp) * ss, (oy + 3.68 * ppp) * ss), 0.0045 * ppp * ss, (0.6,) * 3, th)
    ras = cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA)
    a = np.array([[ppp, 0, ox - 0.5], [0, ppp, oy - 0.5], [0, 0, 1.0]])  # raster pixel i covers [i, i+1)
    return ras, a


def _warp_into(canvas: np.ndarray, raster: np.ndarray, h_img: np.ndarray, alpha: np.ndarray | None = None) -> None:
    """Composite a linear raster into ``canvas`` (in place); ``h_img`` maps raster pixels to image pixels."""
    hh, ww = canvas.shape[:2]
    rh, rw = raster.shape[:2]
    q = _project(h_img, [[0, 0], [rw, 0], [rw, rh], [0, rh]])
    x0, y0 = np.maximum(np.floor(q.min(axis=0)).astype(int) - 2, 0)
    x1, y1 = np.minimum(np.ceil(q.max(axis=0)).astype(int) + 2, [ww, hh])
    if x1 <= x0 or y1 <= y0:
        return
    t = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1.0]]) @ h_img
    a = np.ones((rh, rw), np.float32) if alpha is None else alpha.astype(np.float32)
    wc = cv2.warpPerspective(raster, t, (int(x1 - x0), int(y1 - y0)), flags=cv2.INTER_LINEAR)
    wa = cv2.warpPerspective(a, t, (int(x1 - x0), int(y1 - y0)), flags=cv2.INTER_LINEAR)[..., None]
    sub = canvas[y0:y1, x0:x1]
    sub *= 1 - wa
    sub += wc * wa


def _noise(rng, h: int, w: int, scale: int, ch: int = 3) -> np.ndarray:
    small = rng.random((max(2, h // scale), max(2, w // scale), ch)).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).reshape(h, w, ch)


def _background(rng, h: int, w: int) -> np.ndarray:
    kind = rng.choice(["photo", "photo", "wall", "wood", "floor", "cloth"])
    if kind == "photo":
        import skimage.data

        bgr = cv2.imread(str(Path(skimage.data.data_dir) / _PHOTOS[rng.integers(len(_PHOTOS))]), cv2.IMREAD_COLOR)
        ih, iw = bgr.shape[:2]
        cw, ch = int(iw * rng.uniform(0.5, 1)), int(ih * rng.uniform(0.5, 1))
        x0, y0 = rng.integers(0, iw - cw + 1), rng.integers(0, ih - ch + 1)
        im = cv2.cvtColor(bgr[y0:y0 + ch, x0:x0 + cw], cv2.COLOR_BGR2RGB)
        im = cv2.resize(np.ascontiguousarray(im[:, ::-1] if rng.random() < 0.5 else im), (w, h), interpolation=cv2.INTER_CUBIC)
        return srgb_to_linear(im) * np.float32(rng.uniform(0.5, 1.0))
    base = rng.uniform(0.05, 0.6, 3).astype(np.float32)
    if kind == "wall":
        img = base * (0.9 + 0.2 * _noise(rng, h, w, 40))
    elif kind == "wood":
        coord = np.arange(h, dtype=np.float32)[:, None] if rng.random() < 0.5 else np.arange(w, dtype=np.float32)[None, :]
        grain = 0.5 + 0.5 * np.sin((coord + 30 * _noise(rng, h, w, 80, 1)[..., 0]) / rng.uniform(4, 15)
                                   + 3 * _noise(rng, h, w, 20, 1)[..., 0])
        img = np.float32([0.35, 0.18, 0.08]) * np.float32(rng.uniform(0.5, 1.5)) * (0.7 + 0.5 * grain[..., None])
    elif kind == "floor":
        img = base * (0.6 + 0.8 * _noise(rng, h, w, 4)) * (0.8 + 0.4 * _noise(rng, h, w, 60))
    else:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        p = rng.uniform(3, 8)
        img = base * (0.85 + 0.15 * (np.sin(xx / p) * np.sin(yy / p))[..., None]) * (0.8 + 0.4 * _noise(rng, h, w, 100))
    return np.clip(img, 0, 1).astype(np.float32)


def _colour(rng, saturated: bool = True) -> np.ndarray:
    if saturated:
        c = rng.random(3) ** 1.5
        return (c / max(c.max(), 1e-3) * rng.uniform(0.2, 0.9)).astype(np.float32)
    return np.float32([rng.uniform(0.05, 0.8)] * 3) * rng.uniform(0.9, 1.1, 3).astype(np.float32)


def _grid(rows: int, cols: int, cell: int, gap: int, ground: float, fill) -> np.ndarray:
    img = np.full((rows * (cell + gap) + gap, cols * (cell + gap) + gap, 3), ground, np.float32)
    for r in range(rows):
        for c in range(cols):
            img[gap + r * (cell + gap):(r + 1) * (cell + gap), gap + c * (cell + gap):(c + 1) * (cell + gap)] = fill(r, c)
    return img


def _clutter_raster(rng, kind: str):
    """(linear raster, alpha or None) of one clutter object."""
    alpha = None
    if kind == "keyboard":
        rows, cols, gap, key = int(rng.integers(4, 7)), int(rng.integers(10, 16)), int(rng.integers(4, 10)), 40
        kc = _colour(rng, saturated=False)
        img = _grid(rows, cols, key, gap, rng.uniform(0.02, 0.1), lambda r, c: kc)
        ink = (0.9,) * 3 if kc.mean() < 0.3 else (0.02,) * 3
        for r in range(rows):
            for c in range(cols):
                _put_text(img, chr(65 + rng.integers(26)), (gap + c * (key + gap) + 8, gap + r * (key + gap) + 30), 0.9, ink, 2)
    elif kind in ("tiles", "mosaic"):
        base = _colour(rng, saturated=rng.random() < 0.5)
        img = _grid(int(rng.integers(4, 9)), int(rng.integers(5, 10)), 50, int(rng.integers(3, 10)), rng.uniform(0.05, 0.6),
                    (lambda r, c: _colour(rng)) if kind == "mosaic" else (lambda r, c: base * np.float32(rng.uniform(0.9, 1.1))))
    elif kind == "window":
        sky = np.float32([0.6, 0.75, 1.0]) * np.float32(rng.uniform(0.6, 1.0))
        img = _grid(int(rng.integers(2, 5)), int(rng.integers(2, 6)), 80, int(rng.integers(6, 14)), rng.uniform(0.02, 0.7),
                    lambda r, c: sky * np.float32(rng.uniform(0.8, 1.1)))
    elif kind == "text":
        img = np.full((500, 380, 3), rng.uniform(0.6, 0.9), np.float32)
        for y in range(30, 490, 22):
            line = "".join(chr(97 + rng.integers(26)) if rng.random() > 0.15 else " " for _ in range(30))
            _put_text(img, line, (12, y), 0.6, (0.02,) * 3, 1)
    elif kind == "chessboard":
        a, b = rng.uniform(0.5, 0.9), rng.uniform(0.01, 0.1)
        img = _grid(int(rng.integers(6, 10)), int(rng.integers(6, 10)), 40, 0, 0.0, lambda r, c: a if (r + c) % 2 else b)
    elif kind == "cube":
        faces = np.float32([[0.7, 0.02, 0.02], [0.02, 0.4, 0.05], [0.02, 0.05, 0.6], [0.8, 0.7, 0.02], [0.9, 0.25, 0.01],
                            [0.85, 0.85, 0.85]])
        img = _grid(3, 3, 40, 4, 0.02, lambda r, c: faces[rng.integers(6)])
    elif kind == "calendar":
        img = _grid(5, 7, 50, 3, 0.1, lambda r, c: 0.8)
        for r in range(5):
            for c in range(7):
                _put_text(img, str(1 + r * 7 + c), (3 + c * 53 + 5, 3 + r * 53 + 20), 0.5, (0.05,) * 3, 1)
    elif kind == "notes":
        img, alpha = np.zeros((300, 300, 3), np.float32), np.zeros((300, 300), np.float32)
        for _ in range(int(rng.integers(3, 8))):
            x, y, s = rng.integers(0, 240), rng.integers(0, 240), rng.integers(30, 60)
            img[y:y + s, x:x + s] = _colour(rng)
            alpha[y:y + s, x:x + s] = 1
    elif kind == "fakechart":
        img, _ = _chart_raster(50, np.stack([_colour(rng, saturated=rng.random() < 0.7) for _ in range(24)]), logos=False)
    else:
        raise ValueError(f"unknown clutter kind {kind!r}")
    return img, alpha


def _add_clutter(rng, canvas: np.ndarray, kinds, avoid: np.ndarray | None = None) -> None:
    h, w = canvas.shape[:2]
    for kind in kinds:
        ras, alpha = _clutter_raster(rng, kind)
        rh, rw = ras.shape[:2]
        outline = np.array([[0, 0], [rw, 0], [rw, rh], [0, rh]], float)
        hm = _place(rng, w, h, outline, (rw / 2, rh / 2), max(rh, rw), rng.uniform(0.15, 0.5) * min(h, w),
                    rng.uniform(0, 360), rng.uniform(0, 55), rng.uniform(0, 180), rng.uniform(0.7, 1.5) * w, margin=-0.2)
        if hm is None:
            continue
        if avoid is not None:  # the chart is never occluded: skip objects over its bounding box
            q = _project(hm, outline)
            if not (q[:, 0].max() < avoid[:, 0].min() or q[:, 0].min() > avoid[:, 0].max()
                    or q[:, 1].max() < avoid[:, 1].min() or q[:, 1].min() > avoid[:, 1].max()):
                continue
        _warp_into(canvas, ras, hm, alpha)


def _lighting(rng, h: int, w: int, strength: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = rng.uniform(0, 2 * np.pi)
    g = (np.cos(a) * (xx / w - 0.5) + np.sin(a) * (yy / h - 0.5)) * np.float32(strength * rng.uniform(0, 2))
    vignette = 1 - np.float32(rng.uniform(0, 0.3)) * 2 * ((xx / w - 0.5) ** 2 + (yy / h - 0.5) ** 2)
    return np.clip((1 + g) * vignette, 0.2, 2).astype(np.float32)


def _shadow(rng, h: int, w: int, region: np.ndarray, depth: float) -> np.ndarray:
    """A soft-edged half-plane shadow cutting through ``region`` (points): factor ``depth`` inside."""
    c = region.mean(axis=0) + rng.normal(0, 0.25, 2) * np.ptp(region, axis=0)
    a = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    d = np.cos(a) * (xx - c[0]) + np.sin(a) * (yy - c[1])
    soft = rng.uniform(2, 0.06 * np.ptp(region, axis=0).max() + 3)
    return (1 - (1 - depth) / (1 + np.exp(-d / soft))).astype(np.float32)


def _tone_params(rng, curve: str) -> dict:
    if curve == "srgb":
        return {"curve": "srgb"}
    if curve == "gamma":  # flare / black level (a linear offset per channel), then a per-channel gamma
        return {"curve": "gamma", "gamma": rng.uniform(1.6, 2.6, 3).tolist(), "black": rng.uniform(0.03, 0.08, 3).tolist()}
    if curve == "filmic":  # black level, sRGB, then a tinted contrast S-curve about a pivot
        return {"curve": "filmic", "contrast": rng.uniform(1.1, 1.6, 3).tolist(), "pivot": rng.uniform(0.4, 0.6, 3).tolist(),
                "black": rng.uniform(0.0, 0.06, 3).tolist()}
    raise ValueError(f"unknown tone curve {curve!r}; use one of {TONE_CURVES}")


def tone_encode(linear: np.ndarray, params: dict) -> np.ndarray:
    """Encode linear camera values (clipped to [0, 1]) with a tone curve of :func:`_tone_params`; float32 [0, 1]."""
    x = np.clip(linear, 0, 1).astype(np.float32)
    if params["curve"] == "srgb":
        return linear_to_srgb(x)
    out = np.empty_like(x)
    for c in range(3):
        b = np.float32(params["black"][c])
        v = b + (1 - b) * x[..., c]
        if params["curve"] == "gamma":
            out[..., c] = v ** np.float32(1 / params["gamma"][c])
        else:
            s, k, p = linear_to_srgb(v), params["contrast"][c], params["pivot"][c]
            out[..., c] = np.where(s < p, p * (np.minimum(s, p) / p) ** k, 1 - (1 - p) * ((1 - np.maximum(s, p)) / (1 - p)) ** k)
    return out


def _camera(rng, lin: np.ndarray, *, illuminant: str, exposure: float, curve: str, noise: float, jpeg: int, crosstalk=0.15):
    cross = np.abs(rng.normal(0, crosstalk, (3, 3)))  # cameras are less saturated than sRGB: positive mixing
    np.fill_diagonal(cross, 0)
    m = np.eye(3) + cross
    m = np.diag(CASTS[illuminant]) @ (m / m.sum(axis=1, keepdims=True))  # rows sum to 1: greys stay grey before the cast
    x = (lin.reshape(-1, 3) @ m.T.astype(np.float32)).reshape(lin.shape) * np.float32(exposure)
    x = cv2.GaussianBlur(x, (0, 0), 0.5)
    x += rng.normal(0, 1, x.shape).astype(np.float32) * np.float32(noise) * (np.sqrt(np.clip(x, 0, None)) + np.float32(0.125))
    tone = _tone_params(rng, curve)
    img = np.clip(np.rint(tone_encode(x, tone) * 255), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(jpeg)])
    img = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return img, {"camera_matrix": m.tolist(), "exposure": exposure, "tone": tone, "illuminant": illuminant, "jpeg": int(jpeg)}


def render_chart_photo(seed, *, size_px: float | None = None, rot: float | None = None, tilt: float | None = None,
                       curve: str | None = None, illuminant: str | None = None, shaded: bool | None = None,
                       print_sigma: float = 0.0, gradient: float = 0.3, clutter: int | None = None,
                       other_chart: bool = False, long_side: int | None = None) -> ChartPhoto:
    """Render one photo of a ColorChecker Classic.

    Parameters
    ----------
    seed : int, sequence of int or numpy Generator
        Everything not given is drawn from it (deterministic).
    size_px : float
        Patch side in pixels before foreshortening (default: uniform 30-150).
    rot, tilt : float
        Rotation about the view axis (default uniform 0-360 degrees) and tilt out of the image plane about
        a random in-plane axis (default uniform 0-50 degrees).
    curve : {"srgb", "gamma", "filmic"}
        Camera tone curve (default: sRGB half the time, else gamma or filmic).
    illuminant : str
        A key of :data:`CASTS` (default: random).
    shaded : bool
        A soft shadow across part of the chart, depth 0.35-0.75 (default: 40 % of photos).
    print_sigma : float
        Per-patch CIELAB error of a printed chart (normal, per component).
    gradient : float
        Strength of the lighting gradient across the photo.
    clutter : int
        Number of clutter objects (default 1-3); ``other_chart`` adds a 4x6 grid of random colours.
    long_side : int
        Photo's longer side (default: 1280-2048, large enough for the chart).

    Returns
    -------
    ChartPhoto
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    size_px = rng.uniform(30, 150) if size_px is None else float(size_px)
    rot = rng.uniform(0, 360) if rot is None else float(rot)
    tilt = rng.uniform(0, 50) if tilt is None else float(tilt)
    tilt_axis = rng.uniform(0, 180)
    if long_side is None:
        choices = [s for s in (1280, 1600, 2048, 3000, 4000) if s >= 1.35 * size_px / _PATCH * 6.6]
        long_side = int(rng.choice(choices[:3]))
    w, h = long_side, int(round(long_side * 0.75))
    if rng.random() < 0.3:
        w, h = h, w
    f = rng.uniform(0.7, 1.6) * max(w, h)
    outline = np.array([[-0.5 - _FRAME["left"], -0.5 - _FRAME["top"]], [5.5 + _FRAME["right"], -0.5 - _FRAME["top"]],
                        [5.5 + _FRAME["right"], 3.5 + _FRAME["bottom"]], [-0.5 - _FRAME["left"], 3.5 + _FRAME["bottom"]]])
    hm = None
    while hm is None:
        hm = _place(rng, w, h, outline, (2.5, 1.5), _PATCH, size_px, rot, tilt, tilt_axis, f)
        if hm is None:
            w, h = int(w * 1.15), int(h * 1.15)
    canvas = _background(rng, h, w)
    chart_outline = _project(hm, outline)
    kinds = [CLUTTER_KINDS[i] for i in rng.integers(0, len(CLUTTER_KINDS), rng.integers(1, 4) if clutter is None else clutter)]
    _add_clutter(rng, canvas, kinds + (["fakechart"] if other_chart else []), avoid=chart_outline)
    lab = linear_rgb_to_lab(np.clip(chart_reference_linear(), 0, None).astype(np.float32)).astype(np.float64)
    if print_sigma:
        lab = lab + rng.normal(0, print_sigma, lab.shape)
    colours = np.clip(lab_to_linear_rgb(lab.astype(np.float32)), 0, 1).astype(np.float32)
    ras, a = _chart_raster(max(20.0, size_px / _PATCH * 1.2), colours)
    _warp_into(canvas, ras, hm @ np.linalg.inv(a))
    light = _lighting(rng, h, w, gradient)
    shaded = bool(rng.random() < 0.4) if shaded is None else bool(shaded)
    if shaded:
        light *= _shadow(rng, h, w, chart_outline, rng.uniform(0.35, 0.75))
    canvas *= light[..., None]
    curve = str(rng.choice(["srgb", "srgb", "gamma", "filmic"])) if curve is None else curve
    illuminant = str(rng.choice(list(CASTS))) if illuminant is None else illuminant
    img, meta = _camera(rng, canvas, illuminant=illuminant, exposure=rng.uniform(0.6, 1.0) / max(CASTS[illuminant]),
                        curve=curve, noise=rng.uniform(0.002, 0.01), jpeg=int(rng.integers(70, 96)))
    centres = _project(hm, _CELLS)
    pitch = float(np.median(np.hypot(*np.diff(centres.reshape(4, 6, 2), axis=1).reshape(-1, 2).T)))
    meta.update(size_px=size_px, rot=rot, tilt=tilt, tilt_axis=tilt_axis, shaded=shaded, width=w, height=h, focal=f,
                pitch=pitch, clutter=kinds, other_chart=other_chart, print_sigma=print_sigma)
    return ChartPhoto(img, _project(hm, _GRID), centres, hm, colours, meta)


def render_clutter_photo(seed, *, kinds=None, long_side: int | None = None) -> tuple[np.ndarray, list]:
    """A photo without a ColorChecker: a background with 2-5 clutter objects (or ``kinds``), lit and photographed
    like :func:`render_chart_photo`.  Returns (uint8 RGB image, kinds drawn)."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    long_side = int(rng.choice([1024, 1280, 1600, 2048])) if long_side is None else long_side
    w, h = long_side, int(long_side * 0.75)
    if rng.random() < 0.3:
        w, h = h, w
    canvas = _background(rng, h, w)
    kinds = list(kinds) if kinds is not None else [CLUTTER_KINDS[i] for i in rng.integers(0, len(CLUTTER_KINDS), rng.integers(2, 6))]
    _add_clutter(rng, canvas, kinds)
    canvas *= _lighting(rng, h, w, 0.3)[..., None]
    img, _ = _camera(rng, canvas, illuminant=str(rng.choice(list(CASTS))), exposure=rng.uniform(0.5, 1.0) / 1.75,
                     curve=str(rng.choice(TONE_CURVES)), noise=0.004, jpeg=int(rng.integers(70, 96)))
    return img, kinds

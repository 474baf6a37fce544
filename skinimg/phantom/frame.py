"""Drawing helpers of the scene: the canonical frame, coverage and blending, curves, shading, material colours."""

from __future__ import annotations

import math

import cv2
import numpy as np

from .optics import reflectance_to_linear_rgb, _spectrum_from_srgb
from .spec import _MARGIN, PhantomSpec, _canonical_shape


def _material(rgb8, illuminant: str) -> np.ndarray:
    return reflectance_to_linear_rgb(_spectrum_from_srgb(rgb8), illuminant)


_WALLS = ((214, 196, 170), (205, 185, 158), (222, 210, 190), (200, 176, 150))
_WOODS = (((176, 124, 82), (204, 156, 108)), ((150, 100, 64), (184, 134, 92)), ((196, 160, 120), (222, 190, 150)))
_CLOTHS = ((70, 90, 120), (120, 60, 60), (90, 110, 90), (170, 160, 150))
_CLOTHES = ((200, 172, 142), (228, 226, 220), (42, 52, 82), (150, 42, 48), (62, 100, 72), (118, 118, 124), (212, 152, 150))
_HAIRS = ((24, 20, 18), (58, 40, 28), (98, 68, 44), (186, 154, 106), (124, 58, 34), (160, 158, 152))
_IRISES = ((92, 60, 36), (78, 108, 140), (88, 108, 70))


class _Frame:
    """Canonical frame: shape, unit (pixels per scene unit) and coordinate vectors."""

    def __init__(self, spec: PhantomSpec):
        h, w = spec.size
        self.hc, self.wc = _canonical_shape(spec.size)
        self.u = float(min(h, w))
        # extent in units, from the aspect ratio only (same grids at every resolution)
        self.ext_y = _MARGIN * h / self.u
        self.ext_x = _MARGIN * w / self.u
        self.half_view = (w / (2.0 * self.u), h / (2.0 * self.u))
        self.x = ((np.arange(self.wc, dtype=np.float32) - (self.wc - 1) / 2.0) / self.u)[None, :]
        self.y = ((np.arange(self.hc, dtype=np.float32) - (self.hc - 1) / 2.0) / self.u)[:, None]

    def px(self, xn: float, yn: float) -> tuple[float, float]:
        return xn * self.u + (self.wc - 1) / 2.0, yn * self.u + (self.hc - 1) / 2.0

    def noise(self, rng: np.random.Generator, cells_x: float, cells_y: float | None = None,
              interp: int = cv2.INTER_CUBIC, grid_fn=None) -> np.ndarray:
        """Smooth noise with ``cells`` grid cells per scene unit (float32, canonical shape).

        A white Gaussian grid, sized from the aspect ratio only (so the same seed gives
        the same pattern at every resolution), is resized to the canonical frame.  Without
        ``grid_fn`` the result is normalised to zero mean and unit standard deviation;
        with it, ``grid_fn(grid)`` is resized as is.
        """
        cells_y = cells_x if cells_y is None else cells_y
        gw = int(math.ceil(self.ext_x * cells_x - 1e-9)) + 4
        gh = int(math.ceil(self.ext_y * cells_y - 1e-9)) + 4
        g = rng.standard_normal((gh, gw), dtype=np.float32)
        if grid_fn is not None:
            g = grid_fn(g).astype(np.float32)
        else:
            g = (g - np.float32(g.mean(dtype=np.float64))) / np.float32(g.std(dtype=np.float64))
        ow = max(int(round(gw * self.u / cells_x)), self.wc)
        oh = max(int(round(gh * self.u / cells_y)), self.hc)
        big = cv2.resize(g, (ow, oh), interpolation=interp)
        y0, x0 = (oh - self.hc) // 2, (ow - self.wc) // 2
        out = big[y0 : y0 + self.hc, x0 : x0 + self.wc]
        if grid_fn is not None:
            return np.ascontiguousarray(out)
        # interpolation lowers the variance; measure it on a sparse subsample (fast)
        sub = out[:: max(1, self.hc // 256), :: max(1, self.wc // 256)]
        sd = float(sub.std(dtype=np.float64))
        out = out * np.float32(1.0 / sd if sd > 0 else 1.0)
        return np.ascontiguousarray(out)


def _soft(d_units: np.ndarray, u: float) -> np.ndarray:
    """Coverage in [0, 1] from a signed distance in scene units (positive inside), 1-pixel ramp."""
    return np.clip(d_units * np.float32(u) + np.float32(0.5), 0.0, 1.0).astype(np.float32, copy=False)


def _bbox(alpha: np.ndarray, pad: int = 2) -> tuple[slice, slice] | None:
    rows = np.flatnonzero(alpha.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(alpha.any(axis=0))
    r0, r1 = max(rows[0] - pad, 0), min(rows[-1] + pad + 1, alpha.shape[0])
    c0, c1 = max(cols[0] - pad, 0), min(cols[-1] + pad + 1, alpha.shape[1])
    return slice(r0, r1), slice(c0, c1)


def _blend(img: np.ndarray, alpha: np.ndarray, layer_fn, labels: np.ndarray | None = None, code: int = 0) -> None:
    """img = img * (1 - alpha) + alpha * layer, evaluated only inside alpha's bounding box."""
    sl = _bbox(alpha > 0)
    if sl is None:
        return
    a = alpha[sl][..., None]
    layer = layer_fn(sl)
    sub = img[sl]
    sub += a * (layer - sub)
    if labels is not None:
        labels[sl][alpha[sl] >= 0.5] = code


def _draw_curves(shape: tuple[int, int], curves: list[np.ndarray], thickness: int, values=None) -> np.ndarray:
    """Anti-aliased polylines (points in canonical pixels, float) on a float32 canvas in [0, 1]."""
    canvas = np.zeros(shape, dtype=np.uint8)
    for i, pts in enumerate(curves):
        v = 255 if values is None else int(values[i])
        p = np.round(pts * 16.0).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(canvas, [p], False, v, thickness=thickness, lineType=cv2.LINE_AA, shift=4)
    return canvas.astype(np.float32) * np.float32(1.0 / 255.0)


def _bezier(p0, p1, p2, n: int = 24) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) ** 2 * np.asarray(p0) + 2 * (1 - t) * t * np.asarray(p1) + t**2 * np.asarray(p2)


# ----------------------------------------------------------------------------- shading


# key light from the upper left, near the camera axis (clinical photography: flash or soft box)
_LIGHT = np.array([-0.25, -0.3, 1.0]) / np.linalg.norm([-0.25, -0.3, 1.0])
_HALF = (_LIGHT + np.array([0.0, 0.0, 1.0])) / np.linalg.norm(_LIGHT + np.array([0.0, 0.0, 1.0]))
_AMBIENT = 0.35


def _lambert(nx, ny, nz, strength: float) -> np.ndarray:
    """Ambient + Lambert shading, 1 for a surface facing the camera (float32)."""
    lam = np.clip(nx * _LIGHT[0] + ny * _LIGHT[1] + nz * _LIGHT[2], 0.0, 1.0)
    shade = (np.float32(_AMBIENT) + np.float32(1 - _AMBIENT) * lam) / np.float32(_AMBIENT + (1 - _AMBIENT) * _LIGHT[2])
    return (1.0 + np.float32(strength) * (shade - 1.0)).astype(np.float32)


def _blinn(nx, ny, nz, power: float = 40.0) -> np.ndarray:
    c = np.clip(nx * _HALF[0] + ny * _HALF[1] + nz * _HALF[2], 0.0, 1.0)
    return (c**power).astype(np.float32)

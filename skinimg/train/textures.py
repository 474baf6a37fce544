"""Skin-coloured backgrounds for the skin network's training (never used at run time).

The labelled photos (SFA faces, abdomen close-ups) have few backgrounds of skin colour, so a network trained on
them alone takes wood, dry grass, beige paper or an orange garment for skin.  :func:`skin_coloured_background`
replaces the background of a training crop (the non-skin pixels connected to the crop's border) by a procedural
texture of a real skin colour: wood grain, straw or grass strokes, woven fabric, mottled paper or plaster.
Label unchanged (not skin).  The textures are deliberately *not* skin-like (no pores, no shading of a body):
the network has to tell skin from skin-coloured material by its structure and its context, not by colour.

All functions take and return NumPy arrays: patterns float32 (H, W) in [0, 1]; images uint8 RGB (H, W, 3).
"""
from __future__ import annotations

import cv2
import numpy as np

from ..color import linear_to_srgb, srgb_to_linear

__all__ = ["wood", "straw", "weave", "mottle", "TEXTURES", "skin_coloured_background"]


def _smooth_noise(h: int, w: int, rng, cells: float) -> np.ndarray:
    """Value noise: a (cells x cells) grid of uniform values upsampled bicubically to (h, w); float32, about [0, 1]."""
    gh, gw = max(2, int(round(cells * h / max(h, w))) + 2), max(2, int(round(cells * w / max(h, w))) + 2)
    return cv2.resize(rng.random((gh, gw)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)


def _rotated(pattern_fn, h: int, w: int, rng) -> np.ndarray:
    """``pattern_fn(side, side)`` drawn on a square canvas large enough for any rotation, rotated by a random
    angle and cropped to (h, w)."""
    side = int(np.ceil(np.hypot(h, w))) + 2
    p = pattern_fn(side, side)
    m = cv2.getRotationMatrix2D((side / 2, side / 2), float(rng.uniform(0, 180)), 1.0)
    p = cv2.warpAffine(p, m, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    y0, x0 = (side - h) // 2, (side - w) // 2
    return np.ascontiguousarray(p[y0:y0 + h, x0:x0 + w])


def wood(h: int, w: int, rng) -> np.ndarray:
    """Wood grain: growth rings (a sine of a warped coordinate across the grain) and fine fibres along it."""
    period = float(rng.uniform(6, 40))
    warp = float(rng.uniform(0.5, 4.0))

    def draw(H, W):
        yy = np.arange(H, dtype=np.float32)[:, None]
        bend = _smooth_noise(H, W, rng, float(rng.uniform(1.5, 5))) * warp * period
        rings = 0.5 + 0.5 * np.sin(2 * np.pi * (yy + bend) / period)
        rings = rings ** float(rng.uniform(0.6, 3.0))
        fib = cv2.resize(rng.random((H, max(2, W // 24))).astype(np.float32), (W, H), interpolation=cv2.INTER_LINEAR)
        return (0.75 * rings + 0.25 * fib).astype(np.float32)

    return _rotated(draw, h, w, rng)


def straw(h: int, w: int, rng) -> np.ndarray:
    """Dry grass or straw: many thin strokes of one main direction (+-25 degrees) over a darker base."""
    p = np.full((h, w), float(rng.uniform(0.0, 0.4)), np.float32)
    main = float(rng.uniform(0, np.pi))
    n = int(rng.integers(150, 600) * h * w / 224 ** 2)
    for _ in range(n):
        x, y = float(rng.uniform(-10, w + 10)), float(rng.uniform(-10, h + 10))
        a = main + float(rng.normal(0, 0.45))
        length = float(rng.uniform(8, 0.6 * max(h, w)))
        x2, y2 = x + length * np.cos(a), y + length * np.sin(a)
        cv2.line(p, (int(x), int(y)), (int(x2), int(y2)), float(rng.uniform(0.4, 1.0)), int(rng.integers(1, 4)),
                 cv2.LINE_AA)
    return cv2.GaussianBlur(p, (0, 0), float(rng.uniform(0.3, 1.0)))


def weave(h: int, w: int, rng) -> np.ndarray:
    """Woven or knitted fabric: a fine two-direction weave, yarn noise and soft folds."""
    period = float(rng.uniform(2.5, 9))

    def draw(H, W):
        yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
        wv = 0.5 + 0.25 * (np.sin(2 * np.pi * xx / period) + np.sin(2 * np.pi * yy / period * rng.uniform(0.8, 1.25)))
        folds = _smooth_noise(H, W, rng, float(rng.uniform(1.5, 4)))
        yarn = rng.random((H, W)).astype(np.float32)
        return (0.45 * wv + 0.35 * folds + 0.2 * yarn).astype(np.float32)

    return _rotated(draw, h, w, rng)


def mottle(h: int, w: int, rng) -> np.ndarray:
    """Mottled paper, plaster, sand or stone: fractal noise (octaves of value noise) with a fine grain."""
    p = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    for cells in (3, 7, 16, 40, 100):
        p += amp * _smooth_noise(h, w, rng, cells)
        total += amp
        amp *= float(rng.uniform(0.45, 0.8))
    p /= total
    p += rng.normal(0, float(rng.uniform(0.01, 0.06)), (h, w)).astype(np.float32)
    lo, hi = np.percentile(p, [1, 99])
    return np.clip((p - lo) / max(hi - lo, 1e-6), 0, 1).astype(np.float32)


TEXTURES = {"wood": wood, "straw": straw, "weave": weave, "mottle": mottle}


def _background(lab: np.ndarray) -> np.ndarray:
    """Non-skin pixels (label 0) connected to the border of the crop: the background, not the eyes, lips or
    nostrils enclosed by skin."""
    nonskin = (lab == 0).astype(np.uint8)
    n, comp = cv2.connectedComponents(nonskin, connectivity=4)
    border = np.unique(np.concatenate([comp[0], comp[-1], comp[:, 0], comp[:, -1]]))
    border = border[border > 0]
    return np.isin(comp, border) if n > 1 and len(border) else np.zeros(lab.shape, bool)


def skin_coloured_background(rgb8: np.ndarray, lab: np.ndarray, rng, skin_pool: np.ndarray, *,
                             min_share: float = 0.08) -> np.ndarray:
    """The crop's background (non-skin pixels connected to its border, ``lab == 0``) replaced by a procedural
    texture (:data:`TEXTURES`, one at random) whose colours span a real skin colour from ``skin_pool`` (uint8
    (N, 3) RGB) and a darker or lighter shade of it; with probability 0.5 only a random smooth part of the
    background.  ``rgb8`` uint8 (H, W, 3) RGB, ``lab`` uint8 (H, W) labels (0 not skin, 1 skin, 2 ignored).
    Returns uint8 (H, W, 3); the labels are unchanged.  Crops with less than ``min_share`` background are
    returned as they are."""
    h, w = lab.shape
    region = _background(lab)
    if rng.random() < 0.5:
        noise = _smooth_noise(h, w, rng, 4)
        region &= noise > np.quantile(noise, rng.uniform(0.2, 0.6))
    if region.sum() < min_share * h * w:
        return rgb8
    name = list(TEXTURES)[int(rng.integers(len(TEXTURES)))]
    t = TEXTURES[name](h, w, rng)
    base = srgb_to_linear(skin_pool[rng.integers(len(skin_pool))])
    lin = np.clip(base * np.exp(rng.normal(0, 0.06, 3)), 0, 1).astype(np.float32)  # near a skin colour, linear
    # the second colour at least exp(0.25) darker or exp(0.2) lighter: a flat skin-coloured area is ambiguous
    contrast = float(rng.uniform(-1.2, -0.25)) if rng.random() < 0.75 else float(rng.uniform(0.2, 0.5))
    other = lin * float(np.exp(contrast)) * np.exp(rng.normal(0, 0.08, 3)).astype(np.float32)
    a, b = (lin, other) if rng.random() < 0.5 else (other, lin)
    tex_lin = a[None, None, :] * (1 - t[..., None]) + b[None, None, :] * t[..., None]
    shade = 1 + float(rng.uniform(-0.25, 0.25)) * (_smooth_noise(h, w, rng, 2) - 0.5)
    tex = linear_to_srgb(np.clip(tex_lin * shade[..., None], 0, 1))
    alpha = cv2.GaussianBlur(region.astype(np.float32), (0, 0), 0.8)[..., None]
    alpha *= (lab != 1)[..., None]  # never over skin
    out = rgb8.astype(np.float32) / 255 * (1 - alpha) + tex * alpha
    return np.clip(out * 255 + 0.5, 0, 255).astype(np.uint8)

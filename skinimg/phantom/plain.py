"""Plain scenes and rendered papules: stress tests of the skin segmentation with a pixel-true answer.

* :func:`plain_scene`: a plain, untextured region of skin on a flat background (grey, blue, green or off-white),
  smooth cylindrical shading, exposure x0.6-x1.4, with or without a dark hair band across its top; the skin's
  colour comes from the two-layer spectral model (:func:`skinimg.phantom.skin_linear_rgb`: melanin and haemoglobin
  volume fractions, illuminants D65, A and F11).  An obvious photo: a segmenter must never do worse on it than a
  colour rule.  The skin network never trains on these scenes (its flat scenes are real skin colours in random
  blobs, ``skinimg.train.augment``).
* :func:`render_papules`: red papules and pustules drawn into a photo, inside its true skin, in CIELAB (a raised
  dome of higher a* and lower L*, a halo of erythema, a specular glint, pustules with a yellow-white head); returns
  the lesion cores (dome >= 0.5), which are skin and must stay in the mask.  Unlike the training lesions
  (haemoglobin optical density in linear RGB).
"""

from __future__ import annotations

import cv2
import numpy as np

from .optics import illuminant_white, skin_linear_rgb

__all__ = ["PLAIN_MELANIN", "PLAIN_EXPOSURES", "plain_scene", "render_papules"]

#: Melanin volume fractions of the plain scenes (very light to dark skin).
PLAIN_MELANIN = (0.005, 0.02, 0.05, 0.1, 0.2, 0.3, 0.45)
#: Exposures of the plain scenes.
PLAIN_EXPOSURES = (0.6, 0.8, 1.0, 1.2, 1.4)
_ILLUMINANTS = ("D65", "A", "F11")
_BACKGROUNDS = ((0.05, 0.05, 0.05), (0.2, 0.2, 0.2), (0.5, 0.5, 0.5), (0.05, 0.1, 0.35), (0.1, 0.3, 0.12),
                (0.6, 0.6, 0.55))


def _srgb8(lin: np.ndarray) -> np.ndarray:
    x = np.clip(lin, 0, 1)
    s = np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)
    return np.clip(s * 255 + 0.5, 0, 255).astype(np.uint8)


def plain_scene(seed: int, size: tuple[int, int] = (480, 640), *, melanin: float | None = None,
                exposure: float | None = None, hair: bool | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """One plain scene: ``(rgb uint8 (H, W, 3), true skin bool (H, W), description)``.

    ``seed`` chooses everything (seeds 0-139 run through every melanin of :data:`PLAIN_MELANIN`, two haemoglobin
    levels, every exposure of :data:`PLAIN_EXPOSURES`, without and with hair); ``melanin``, ``exposure`` and ``hair``
    override the seed's choice.  8-bit sRGB, +-2 levels of noise, JPEG quality 90 round trip.
    """
    rng = np.random.default_rng(10_000 + seed)
    h, w = size
    ill = _ILLUMINANTS[seed % 3] if seed % 5 else "D65"
    mel = PLAIN_MELANIN[seed % len(PLAIN_MELANIN)] if melanin is None else float(melanin)
    hb = (0.01, 0.03)[(seed // 7) % 2]
    exposure = PLAIN_EXPOSURES[(seed // 14) % 5] if exposure is None else float(exposure)
    hair = (seed // 70) % 2 == 1 if hair is None else bool(hair)
    white = np.asarray(illuminant_white(ill), np.float32).reshape(3)
    skin = np.asarray(skin_linear_rgb(mel, hb, ill), np.float32).reshape(3) / (white / white[1])
    bgk = int(rng.integers(0, len(_BACKGROUNDS)))
    bg = np.array(_BACKGROUNDS[bgk], np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    shape = seed % 3
    cx, cy = w * rng.uniform(0.4, 0.6), h * rng.uniform(0.4, 0.6)
    if shape == 0:  # an ellipse (a face- or patch-like region)
        ax, ay = w * rng.uniform(0.18, 0.32), h * rng.uniform(0.25, 0.4)
        m = ((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2 <= 1
        nx = np.clip((xx - cx) / ax, -1, 1)
    elif shape == 1:  # a rounded rectangle (skin filling much of the frame)
        ax, ay, r = w * rng.uniform(0.25, 0.42), h * rng.uniform(0.25, 0.42), 30
        qx, qy = np.maximum(np.abs(xx - cx) - ax + r, 0), np.maximum(np.abs(yy - cy) - ay + r, 0)
        m = (np.abs(xx - cx) <= ax) & (np.abs(yy - cy) <= ay) & (qx * qx + qy * qy <= r * r)
        nx = np.clip((xx - cx) / ax, -1, 1)
    else:  # a limb-like band across the frame
        ang = rng.uniform(-0.6, 0.6)
        half = h * rng.uniform(0.14, 0.24)
        t = -(xx - cx) * np.sin(ang) + (yy - cy) * np.cos(ang)
        m = np.abs(t) <= half
        nx = np.clip(t / half, -1, 1)
    shade = np.sqrt(np.clip(1 - 0.8 * nx ** 2, 0.05, 1)) * (0.65 + 0.35 * rng.uniform(0.8, 1.0))
    img = np.broadcast_to(bg, (h, w, 3)).copy()
    img[m] = skin[None, :] * shade[m][:, None]
    truth = m.copy()
    if hair:  # a dark band over the region's top, across the frame
        rows = np.nonzero(m.any(1))[0]
        y0 = int(rows.min()) if len(rows) else 0
        band = (yy >= y0 - 10) & (yy < y0 + h * rng.uniform(0.08, 0.18) + 6 * np.sin(xx / 37.0))
        img[band] = np.array((0.02, 0.015, 0.01), np.float32) * rng.uniform(0.5, 2.0)
        truth &= ~band
    rgb = _srgb8(img * np.float32(exposure))
    rgb = np.clip(rgb.astype(np.int16) + rng.integers(-2, 3, (h, w, 1)), 0, 255).astype(np.uint8)
    _, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 90])
    rgb = np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])
    info = {"seed": seed, "illuminant": ill, "melanin": mel, "hemoglobin": hb, "exposure": exposure, "hair": hair,
            "shape": ("ellipse", "rounded rectangle", "band")[shape], "background": list(_BACKGROUNDS[bgk])}
    return rgb, truth, info


def render_papules(rgb: np.ndarray, truth: np.ndarray, seed: int, *, n: int = 12,
                   radius: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Red papules and pustules in a uint8 RGB photo, centred inside ``truth`` (bool) eroded by twice the largest
    radius: ``(photo with lesions uint8, lesion cores bool)``.

    Radii (pixels) uniform in ``radius``, by default 2.5-9 px scaled by the photo's long side / 768.  Per lesion, in
    CIELAB: a dome ``(1 - d^2)^0.7`` and a halo ``0.5 exp(-d^2 / 4)`` (``d`` = distance / radius) lower L* by 5-18
    and raise a* by 20-45 and b* by 0-10; 35 % get a pustule's head (L* +15-35, a* -10-25, b* +10-25 within 0.45
    radius) and every one a glint (L* +0-20).  The cores are the dome >= 0.5 within ``truth``.
    """
    rng = np.random.default_rng(50_000 + seed)
    h, w = truth.shape
    f = max(h, w) / 768.0
    lo, hi = radius if radius is not None else (max(1.5, 2.5 * f), max(2.5, 9.0 * f))
    lab = cv2.cvtColor(rgb.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)
    core = np.zeros((h, w), bool)
    k = int(4 * hi) | 1
    inner = cv2.erode(truth.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))) > 0
    ys, xs = np.nonzero(inner)
    if len(ys) == 0:
        return rgb.copy(), core
    for i in rng.integers(0, len(ys), n):
        cy, cx = float(ys[i]), float(xs[i])
        r = float(rng.uniform(lo, hi))
        y0, y1, x0, x1 = (max(0, int(cy - 3 * r - 2)), min(h, int(cy + 3 * r + 3)), max(0, int(cx - 3 * r - 2)),
                          min(w, int(cx + 3 * r + 3)))
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        d2 = ((xx - cx) ** 2 + (yy - cy) ** 2) / (r * r)
        dome = np.clip(1 - d2, 0, 1) ** 0.7
        prof = np.maximum(dome, np.exp(-d2 / 4.0) * 0.5)
        win = lab[y0:y1, x0:x1]
        win[..., 0] -= prof * rng.uniform(5, 18)
        win[..., 1] += prof * rng.uniform(20, 45)
        win[..., 2] += prof * rng.uniform(0, 10)
        if rng.random() < 0.35:  # pustule: yellow-white head
            head = np.clip(1 - d2 / 0.2, 0, 1)
            win[..., 0] += head * rng.uniform(15, 35)
            win[..., 1] -= head * rng.uniform(10, 25)
            win[..., 2] += head * rng.uniform(10, 25)
        glint = np.exp(-(((xx - cx + 0.35 * r) ** 2 + (yy - cy + 0.35 * r) ** 2) / (0.08 * r * r + 0.3)))
        win[..., 0] += glint * rng.uniform(0, 20)
        core[y0:y1, x0:x1] |= dome >= 0.5
    out = cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)
    return np.clip(out * 255 + 0.5, 0, 255).astype(np.uint8), core & truth

"""Training augmentation of the skin network: geometry, an optical skin-tone model, rendered lesions, camera
effects, flat scenes and mosaics (for :func:`skinimg.train.train_segmenter`; never used at run time).

All photometric changes to skin are made in linear RGB (IEC 61966-2-1 sRGB transfer function) with
Beer-Lambert optical densities (base 10) per camera channel:

* melanin: the epidermal melanosome absorption spectrum mu_a,mel(lambda) = 519 (lambda/500 nm)^-3.48 cm^-1
  (Jacques 2013, "Optical properties of biological tissues: a review", Phys. Med. Biol. 58:R37,
  DOI 10.1088/0031-9155/58/11/R37) sampled at effective channel wavelengths 600/540/460 nm, normalised to G:
  E_MEL = (0.69, 1.00, 1.75).  Adding k * E_MEL to the skin pixels of a real photo darkens (k > 0) or lightens
  (k < 0, vitiligo-like) the skin as a change of melanin would.
* haemoglobin (red papules, erythema): oxy-haemoglobin molar extinction (Prahl 1999, compiled from Gratzer and
  Kollias, https://omlc.org/spectra/hemoglobin/) averaged over sRGB camera bands (R 580-680, G 500-580,
  B 440-500 nm), normalised to G: E_HB = (0.08, 1.00, 0.85), jittered per lesion.

Labels are not changed by the skin-tone and lesion models: rendered lesions are skin.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from ..color import srgb_to_linear
from .textures import skin_coloured_background

__all__ = ["E_MEL", "E_HB", "to_linear", "to_srgb8", "warp_sample", "add_melanin", "add_lesions", "camera",
           "tone_and_noise", "recolour_negatives", "photometric", "flat_scene", "mosaic"]

E_MEL = np.array([0.69, 1.00, 1.75], np.float32)
E_HB = np.array([0.08, 1.00, 0.85], np.float32)


def to_linear(rgb8: np.ndarray) -> np.ndarray:
    """Linear RGB float32 in [0, 1], same shape, of uint8 sRGB (IEC 61966-2-1): :func:`skinimg.color.srgb_to_linear`'s
    256-entry table."""
    return srgb_to_linear(rgb8)


def to_srgb8(lin: np.ndarray) -> np.ndarray:
    """uint8 sRGB, same shape, of float linear RGB (clipped to [0, 1] first; IEC 61966-2-1 encoding, rounded half
    up)."""
    x = np.clip(lin, 0, 1)
    s = np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)
    return np.clip(s * 255 + 0.5, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- geometry


def warp_sample(rgb, lab, out_hw, scale, angle, flip, center, rot90=0):
    """Crop of size out_hw around ``center`` (source px) at ``scale`` (output px per source px).

    ``rgb`` uint8 (H, W, 3), ``lab`` uint8 (H, W) labels (0 not skin, 1 skin, 2 ignore); ``angle`` in degrees
    (counter-clockwise), ``flip`` mirrors left-right, ``rot90`` quarter turns.  Returns ``(uint8 (h, w, 3), uint8
    (h, w))``, ``(h, w) = out_hw`` (swapped by an odd ``rot90``).

    The source is first reduced by area averaging when scale < 0.75 (no aliasing), then one affine warp.
    Outside the source: reflected for the photo, label 2 (ignore).
    """
    H, W = out_hw
    src, sl, cx, cy, s = rgb, lab, center[0], center[1], scale
    if s < 0.75:
        f = s / 0.75 if s > 0.1 else s
        nw, nh = max(8, int(round(rgb.shape[1] * f))), max(8, int(round(rgb.shape[0] * f)))
        fx, fy = nw / rgb.shape[1], nh / rgb.shape[0]
        src = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)
        sl = cv2.resize(lab, (nw, nh), interpolation=cv2.INTER_NEAREST)
        cx, cy, s = cx * fx, cy * fy, s / fx
    M = cv2.getRotationMatrix2D((float(cx), float(cy)), float(angle), float(s))
    M[0, 2] += W / 2 - cx
    M[1, 2] += H / 2 - cy
    img = cv2.warpAffine(src, M, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    lb = cv2.warpAffine(sl, M, (W, H), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=2)
    if flip:
        img, lb = img[:, ::-1], lb[:, ::-1]
    if rot90:
        img, lb = np.rot90(img, rot90), np.rot90(lb, rot90)
    return np.ascontiguousarray(img), np.ascontiguousarray(lb)


# ----------------------------------------------------------------------------- optical skin model


def _soft_skin_alpha(lab, feather=1.5):
    a = (lab == 1).astype(np.float32)
    if feather > 0:
        a = cv2.GaussianBlur(a, (0, 0), feather)
    return a


def add_melanin(lin, alpha, k):
    """Skin pixels (weight ``alpha``) get ``k`` optical density units of melanin (E_MEL per channel).

    ``lin`` float32 (H, W, 3) linear RGB (0-1), ``alpha`` float32 (H, W) in [0, 1]; Beer-Lambert
    ``lin * 10 ** (-alpha k E_MEL)`` (module documentation), near-white pixels (max channel above 0.8) progressively
    spared.  Returns float32 (H, W, 3)."""
    hi = np.clip((lin.max(axis=2) - 0.80) / 0.2, 0, 1)  # spare clipped specular highlights
    w = (alpha * (1 - hi))[..., None]
    return lin * np.power(np.float32(10), -w * (k * E_MEL))


def _blob(shape, cx, cy, r, rng, harmonics=3):
    """Radial profile in [0, 1] of a roughly round spot with a wobbly rim (float32, shape)."""
    h, w = shape
    x0, x1 = int(max(0, cx - 3 * r - 2)), int(min(w, cx + 3 * r + 3))
    y0, y1 = int(max(0, cy - 3 * r - 2)), int(min(h, cy + 3 * r + 3))
    out = np.zeros(shape, np.float32)
    if x1 <= x0 or y1 <= y0:
        return out, (slice(y0, y1), slice(x0, x1))
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dx, dy = xx - cx, yy - cy
    th = np.arctan2(dy, dx)
    rr = np.full_like(th, r)
    for n in range(2, 2 + harmonics):
        rr *= 1 + rng.uniform(-0.12, 0.12) * np.cos(n * th + rng.uniform(0, 2 * np.pi))
    d = np.sqrt(dx * dx + dy * dy) / np.maximum(rr, 0.5)
    prof = np.exp(-(d ** rng.uniform(1.5, 3.0)) * 1.5)
    out[y0:y1, x0:x1] = prof
    return out, (slice(y0, y1), slice(x0, x1))


def _skin_points(lab, n, rng, margin=2):
    core = (lab == 1).astype(np.uint8)
    if margin:
        core = cv2.erode(core, np.ones((2 * margin + 1,) * 2, np.uint8))
    ys, xs = np.nonzero(core)
    if len(ys) == 0:
        return []
    idx = rng.integers(0, len(ys), n)
    return list(zip(xs[idx], ys[idx]))


def add_lesions(lin, lab, rng, scale_px=1.0):
    """Red papules, pustules, erythema, pigmented spots and vitiligo-like patches on skin pixels (labels unchanged).

    ``lin`` float32 (H, W, 3) linear RGB (0-1), ``lab`` uint8 (H, W) labels (1 = skin); ``scale_px`` scales the lesion
    spot radii (1.2-10 px at 1; haloes and patches larger).  Optical densities E_HB / E_MEL (module documentation).
    Returns float32 (H, W, 3) (``lin`` itself when under 2 % of the pixels are skin)."""
    h, w = lab.shape
    skin_frac = float((lab == 1).mean())
    if skin_frac < 0.02:
        return lin
    kind_p = rng.random()
    n = int(rng.integers(3, 40) * min(1.0, skin_frac * 3))
    od = np.zeros((h, w, 3), np.float32)
    white = np.zeros((h, w), np.float32)
    for cx, cy in _skin_points(lab, max(n, 1), rng):
        r = float(np.exp(rng.uniform(np.log(1.2), np.log(10))) * scale_px)
        t = rng.random()
        prof, sl = _blob((h, w), cx, cy, r, rng)
        if t < 0.6 or kind_p < 0.3:  # red papule (+ halo)
            e = E_HB * np.array([rng.uniform(0.5, 1.5), 1, rng.uniform(0.6, 1.2)], np.float32)
            od[sl] += prof[sl][..., None] * (rng.uniform(0.12, 0.7) * e)
            halo, hs = _blob((h, w), cx, cy, r * rng.uniform(1.8, 3.5), rng)
            od[hs] += halo[hs][..., None] * (rng.uniform(0.02, 0.15) * e)
            if rng.random() < 0.3:  # pustule head
                head, hs2 = _blob((h, w), cx, cy, r * rng.uniform(0.25, 0.5), rng)
                white[hs2] = np.maximum(white[hs2], head[hs2] * rng.uniform(0.3, 0.8))
        elif t < 0.85:  # pigmented spot / mole / freckle
            od[sl] += prof[sl][..., None] * (rng.uniform(0.1, 0.9) * E_MEL)
        else:  # depigmented (vitiligo-like) patch, larger
            big, bs = _blob((h, w), cx, cy, r * rng.uniform(2, 5), rng, harmonics=5)
            od[bs] -= big[bs][..., None] * (rng.uniform(0.1, 0.5) * E_MEL)
    if rng.random() < 0.25:  # diffuse erythema patch (flushing, rosacea-like)
        for cx, cy in _skin_points(lab, int(rng.integers(1, 3)), rng):
            big, bs = _blob((h, w), cx, cy, float(rng.uniform(0.08, 0.25) * max(h, w)), rng, harmonics=5)
            od[bs] += big[bs][..., None] * (rng.uniform(0.05, 0.25) * E_HB)
    a = (lab == 1).astype(np.float32)
    a = cv2.GaussianBlur(a, (0, 0), 1.0)[..., None]
    out = lin * np.power(np.float32(10), -a * od)
    if white.any():
        lum = out.mean(axis=2, keepdims=True)
        tint = np.array([1.0, rng.uniform(0.85, 0.98), rng.uniform(0.55, 0.8)], np.float32)
        tgt = np.clip(lum * rng.uniform(1.3, 2.2), 0, 0.9) * tint
        wa = (white * a[..., 0])[..., None]
        out = out * (1 - wa) + tgt * wa
    return out


# ----------------------------------------------------------------------------- camera


def camera(lin, rng, exposure_range=(0.55, 1.6), wb=0.3):
    """Exposure (log-uniform) and white balance (log-uniform R/B gains of +-wb) in linear light.

    ``lin`` float (H, W, 3) linear RGB; returns ``lin`` times one gain per channel (float, not clipped)."""
    e = float(np.exp(rng.uniform(np.log(exposure_range[0]), np.log(exposure_range[1]))))
    g = np.exp(rng.uniform(-wb, wb, 3)).astype(np.float32)
    g[1] = 1.0
    g /= np.float32(np.exp(np.log(g).mean()))
    return lin * (e * g)


def tone_and_noise(rgb8, rng, p_blur=0.3, p_noise=0.35, p_jpeg=0.6, p_gamma=0.3):
    """Camera effects on uint8 (H, W, 3) sRGB, each with its probability: a tone curve (gamma 0.75-1.3), Gaussian
    blur or downscale-upscale, sensor noise (sd 1-8 levels), a JPEG round trip (quality 25-95).  Returns uint8
    (H, W, 3)."""
    x = rgb8
    if rng.random() < p_gamma:  # other tone curves
        gam = float(np.exp(rng.uniform(np.log(0.75), np.log(1.3))))
        lut = np.clip(255 * (np.arange(256) / 255) ** gam + 0.5, 0, 255).astype(np.uint8)
        x = lut[x]
    if rng.random() < p_blur:
        if rng.random() < 0.8:
            x = cv2.GaussianBlur(x, (0, 0), float(rng.uniform(0.4, 2.0)))
        else:  # downscale-upscale
            f = float(rng.uniform(0.3, 0.7))
            h, w = x.shape[:2]
            x = cv2.resize(cv2.resize(x, (max(4, int(w * f)), max(4, int(h * f))), interpolation=cv2.INTER_AREA), (w, h),
                           interpolation=cv2.INTER_LINEAR)
    if rng.random() < p_noise:
        sd = float(rng.uniform(1, 8))
        n = rng.normal(0, sd, x.shape[:2] + (1,)) + rng.normal(0, sd * rng.uniform(0, 0.6), x.shape)
        x = np.clip(x.astype(np.float32) + n, 0, 255).astype(np.uint8)
    if rng.random() < p_jpeg:
        q = int(rng.integers(25, 96))
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(x[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, q])
        x = np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])
    return x


def recolour_negatives(rgb8, lab, rng, skin_pool, *, min_texture=3.0):
    """A textured non-skin area (clothing, hair, foliage) recoloured to a skin colour, label unchanged (not skin).

    The textured pixels (5 x 5 standard deviation of CIELAB L*, smoothed, at least ``min_texture``) of a random
    smooth blob of the crop's non-skin pixels (3 px away from skin) get the a*, b* of a real skin pixel (plus 0.3 of
    their own variation) and their lightness moved part of the way to that pixel's: skin-coloured fabric and hair
    (an orange suit, a beige jumper) must stay out of the mask.  Smooth areas are left alone: a plain skin-coloured
    region is ambiguous by itself.
    """
    h, w = lab.shape
    far = cv2.erode((lab != 1).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    noise = cv2.resize(rng.random((6, 6)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    region = far & (lab == 0) & (noise > np.quantile(noise, rng.uniform(0.3, 0.7)))
    if region.sum() < 0.03 * h * w:
        return rgb8
    L = cv2.cvtColor(rgb8.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)
    g = L[..., 0]
    sd = np.sqrt(np.maximum(cv2.blur(g * g, (5, 5)) - cv2.blur(g, (5, 5)) ** 2, 0))
    region &= cv2.GaussianBlur(sd, (0, 0), 2.0) >= min_texture  # textured pixels only
    if region.sum() < 0.03 * h * w:
        return rgb8
    ref = cv2.cvtColor(skin_pool[rng.integers(len(skin_pool))].reshape(1, 1, 3).astype(np.float32) / 255,
                       cv2.COLOR_RGB2Lab)[0, 0]
    mu = L[region].mean(axis=0)
    out = L.copy()
    for c in (1, 2):
        out[..., c] = np.where(region, ref[c] + 0.3 * (L[..., c] - mu[c]), L[..., c])
    out[..., 0] = np.where(region, L[..., 0] + rng.uniform(0, 1) * (ref[0] - mu[0]), L[..., 0])
    a = cv2.GaussianBlur(region.astype(np.float32), (0, 0), 1.0)[..., None]
    rgb = cv2.cvtColor(out, cv2.COLOR_Lab2RGB)
    mixed = rgb * a + rgb8.astype(np.float32) / 255 * (1 - a)
    return np.clip(mixed * 255 + 0.5, 0, 255).astype(np.uint8)


def photometric(rgb8, lab, rng, *, p_melanin=0.6, p_lesion=0.35, scale_px=1.0, skin_pool=None, p_recolour=0.2,
                p_background=0.0):
    """The photometric augmentation of one crop (uint8 RGB, label): skin tone, lesions, skin-coloured negatives
    (recoloured textures of the photo, ``p_recolour``; procedural skin-coloured backgrounds,
    :func:`skinimg.train.textures.skin_coloured_background`, ``p_background``), exposure and white balance, tone
    curve, blur, noise, JPEG (module documentation)."""
    if skin_pool is not None:
        u = rng.random()
        if u < p_background:
            rgb8 = skin_coloured_background(rgb8, lab, rng, skin_pool)
        elif u < p_background + p_recolour:
            rgb8 = recolour_negatives(rgb8, lab, rng, skin_pool)
    lin = to_linear(rgb8)
    if (lab == 1).any():
        if rng.random() < p_melanin:
            k = float(rng.uniform(0.05, 0.9)) if rng.random() < 0.85 else float(rng.uniform(-0.2, 0.0))
            lin = add_melanin(lin, _soft_skin_alpha(lab), k)
        if rng.random() < p_lesion:
            lin = add_lesions(lin, lab, rng, scale_px)
    lin = camera(lin, rng)
    return tone_and_noise(to_srgb8(lin), rng)


# ----------------------------------------------------------------------------- flat scenes (training source A)


def _fourier_blob(h, w, rng, cx, cy, rx, ry, harmonics=4):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = (xx - cx) / rx, (yy - cy) / ry
    th = np.arctan2(dy, dx)
    rr = np.ones_like(th)
    for n in range(2, 2 + harmonics):
        rr *= 1 + rng.uniform(-0.15, 0.15) * np.cos(n * th + rng.uniform(0, 2 * np.pi))
    return np.sqrt(dx * dx + dy * dy) <= rr


def _band(h, w, rng, cx, cy):
    """A band of skin across the frame (a forearm, a leg, a strip of cheek): pixels within a half-width of a line
    through (cx, cy) at a random angle, edges wobbling by up to 3 %; returns (mask, distance / half-width)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    th = rng.uniform(0, np.pi)
    half = rng.uniform(0.06, 0.25) * min(h, w)
    along = (xx - cx) * np.cos(th) + (yy - cy) * np.sin(th)
    d = -(xx - cx) * np.sin(th) + (yy - cy) * np.cos(th)
    d = d + rng.uniform(0, 0.03) * half * np.sin(2 * np.pi * along / rng.uniform(0.3, 1.5) / max(h, w) + rng.uniform(0, 6.3))
    r = np.abs(d) / half
    return r <= 1, r


def flat_scene(rng, size, skin_pool, texture_pool, uci_skin=None, uci_bg=None, p_band=0.0):
    """A plain scene: smooth or textured skin blobs (or, with probability ``p_band`` each, bands across the frame
    shaded like a cylinder) of a real skin colour (any tone) on a flat or gradient background,
    sometimes with a dark hair band or strands.  Skin colours: a pixel of a training photo's labelled skin or a
    UCI skin pixel (Bhatt and Dhall 2009, DOI 10.24432/C5T30C, CC BY 4.0); backgrounds: a random colour or a UCI
    non-skin pixel.  Returns (rgb8, lab)."""
    h, w = size
    pool = uci_skin if (uci_skin is not None and rng.random() < 0.5) else skin_pool
    skin = pool[rng.integers(len(pool))].astype(np.float32) / 255  # sRGB of a real skin pixel
    skin_lin = to_linear((skin * 255).astype(np.uint8)[None, None])[0, 0]
    k = float(rng.uniform(-0.1, 0.9))
    skin_lin = skin_lin * np.power(10, -k * E_MEL)
    for _ in range(20):
        bg = rng.random(3).astype(np.float32)
        if uci_bg is not None and rng.random() < 0.4:
            bg = uci_bg[rng.integers(len(uci_bg))].astype(np.float32) / 255
        elif rng.random() < 0.4:  # grey-ish
            bg = np.full(3, rng.random(), np.float32) * rng.uniform(0.85, 1.15, 3).astype(np.float32)
        bg_lin = to_linear((np.clip(bg, 0, 1) * 255).astype(np.uint8)[None, None])[0, 0]
        c1 = np.log(skin_lin + 1e-3) - np.log(skin_lin + 1e-3).mean()
        c2 = np.log(bg_lin + 1e-3) - np.log(bg_lin + 1e-3).mean()
        if np.abs(c1 - c2).max() > 0.35 or abs(np.log(skin_lin.mean() + 1e-3) - np.log(bg_lin.mean() + 1e-3)) > 1.2:
            break
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    g = 1 + rng.uniform(-0.3, 0.3) * (xx / w - 0.5) + rng.uniform(-0.3, 0.3) * (yy / h - 0.5)
    img = bg_lin[None, None, :] * g[..., None]
    lab = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        rx, ry = rng.uniform(0.15, 0.6) * w, rng.uniform(0.15, 0.6) * h
        if p_band > 0 and rng.random() < p_band:
            m, r = _band(h, w, rng, cx, cy)
            shade = 1 - rng.uniform(0, 0.6) * np.clip(r, 0, 1) ** 2
        else:
            m = _fourier_blob(h, w, rng, cx, cy, rx, ry)
            shade = 1 - rng.uniform(0, 0.5) * np.clip(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2, 0, 1)
        tex = np.ones((h, w), np.float32)
        if texture_pool and rng.random() < 0.6:  # empty when no photo has a 64 x 64 skin patch
            t = texture_pool[rng.integers(len(texture_pool))]
            t = cv2.resize(t, (w, h), interpolation=cv2.INTER_LINEAR)
            tex = np.exp(t * rng.uniform(0.3, 1.2)).astype(np.float32)
        col = skin_lin * np.exp(rng.normal(0, 0.05, 3)).astype(np.float32)
        layer = col[None, None, :] * (shade * tex)[..., None]
        mf = cv2.GaussianBlur(m.astype(np.float32), (0, 0), 0.7)[..., None]
        img = img * (1 - mf) + layer * mf
        lab[m] = 1
    if rng.random() < 0.5:  # dark hair band with strands
        hair_lin = to_linear(np.array([[[rng.integers(10, 90), rng.integers(8, 60), rng.integers(5, 45)]]], np.uint8))[0, 0]
        band = np.zeros((h, w), np.uint8)
        y0 = rng.uniform(0, 0.6) * h
        th = rng.uniform(0.08, 0.35) * h
        amp, per, ph = rng.uniform(0, 0.06) * h, rng.uniform(0.3, 1.5) * w, rng.uniform(0, 6.3)
        edge1 = y0 + amp * np.sin(2 * np.pi * xx[0] / per + ph)
        rows = np.arange(h)[:, None]  # column x: rows from int(max(0, edge1[x])) to int(max(0, edge1[x] + th))
        band[(rows >= np.maximum(edge1, 0).astype(np.int64)) & (rows < np.maximum(edge1 + th, 0).astype(np.int64))] = 1
        strands = np.zeros((h, w), np.uint8)
        for _ in range(int(rng.integers(0, 40))):
            x0 = rng.uniform(0, w); y1 = edge1[int(np.clip(x0, 0, w - 1))] + th
            pts = np.array([[x0, y1], [x0 + rng.uniform(-30, 30), y1 + rng.uniform(5, 0.3 * h)]], np.int32)
            cv2.polylines(strands, [pts], False, 1, 1)
        if rng.random() < 0.5:
            band = cv2.dilate(band, np.ones((3, 3), np.uint8))
        hm = (band | strands).astype(bool)
        htex = np.exp(rng.normal(0, 0.25, (h, w))).astype(np.float32)
        htex = cv2.GaussianBlur(htex, (0, 0), 0.6)
        img[hm] = (hair_lin[None, :] * htex[hm][:, None])
        lab[hm] = 0
    e = float(np.exp(rng.uniform(np.log(0.55), np.log(1.6))))
    img = img * e
    rgb8 = to_srgb8(img)
    return tone_and_noise(rgb8, rng, p_blur=0.2, p_noise=0.5, p_jpeg=0.5), lab


def mosaic(samples, size, rng):
    """Several photos at small scale in one frame: ``samples`` = list of (uint8 (h, w, 3) RGB, uint8 (h, w) label)
    tiles on a grid of ``ceil(sqrt(n))`` x ``ceil(sqrt(n))`` cells.  Returns ``(uint8 (H, W, 3), uint8 (H, W))``,
    ``(H, W) = size``; the gaps get one random flat colour, label 0."""
    h, w = size
    n = int(math.ceil(math.sqrt(len(samples))))
    img = np.zeros((h, w, 3), np.uint8)
    lab = np.zeros((h, w), np.uint8)
    ch, cw = h // n, w // n
    filled = np.zeros((h, w), bool)
    for i, (r, l) in enumerate(samples):
        y, x = (i // n) * ch, (i % n) * cw
        f = min(ch / r.shape[0], cw / r.shape[1])
        nh, nw = max(2, int(r.shape[0] * f)), max(2, int(r.shape[1] * f))
        img[y:y + nh, x:x + nw] = cv2.resize(r, (nw, nh), interpolation=cv2.INTER_AREA)
        lab[y:y + nh, x:x + nw] = cv2.resize(l, (nw, nh), interpolation=cv2.INTER_NEAREST)
        filled[y:y + nh, x:x + nw] = True
    # the gaps get a flat colour (not skin)
    img[~filled] = rng.integers(0, 256, 3, dtype=np.uint8)
    lab[~filled] = 0
    return img, lab

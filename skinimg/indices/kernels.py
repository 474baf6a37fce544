"""Per-pixel kernels: the Dawson/Diffey indices, light smoothing inside the skin, distinct skin colours.

Also the crop rule every per-pixel computation uses (:func:`_crop_box`: the skin's bounding box grown
by the smoothing kernel, so results equal the uncropped ones) and the input gate of the maps.
"""

from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np

from ..color import OD_FLOOR, ita_deg, linear16_luts, linear_to_srgb, rgb_to_lab, rgb_to_optical_density, srgb_to_linear
from ..errors import ImageArrayError
from ..io import check_rgb
from .params import _CHUNK, INDEX_NAMES, IndexParams

__all__ = ["erythema_index", "melanin_index"]


def erythema_index(rgb: np.ndarray, *, floor: float = OD_FLOOR) -> np.ndarray:
    """Erythema index ``100 * log10(R_lin / G_lin)`` (Dawson et al. 1980; Yamamoto et al. 2008).

    Parameters
    ----------
    rgb : ndarray, shape (..., 3), encoded sRGB uint8 / uint16 / float in [0, 1], R, G, B

    Returns
    -------
    ndarray, float32, shape (...): dimensionless x100; 0 for grey, > 0 when red
    exceeds green.  Linear values are floored at ``floor`` before the logarithm.
    """
    od = rgb_to_optical_density(rgb, floor)
    return (np.float32(100.0) * (od[..., 1] - od[..., 0])).astype(np.float32, copy=False)


def melanin_index(rgb: np.ndarray, *, floor: float = OD_FLOOR) -> np.ndarray:
    """Melanin index ``100 * log10(1 / R_lin)`` (Dawson et al. 1980; Diffey et al. 1984).

    Parameters
    ----------
    rgb : ndarray, shape (..., 3), encoded sRGB uint8 / uint16 / float in [0, 1], R, G, B

    Returns
    -------
    ndarray, float32, shape (...): dimensionless x100, 0 (R = 1) to ``-100 log10(floor)``.
    """
    od = rgb_to_optical_density(rgb, floor)
    return (np.float32(100.0) * od[..., 0]).astype(np.float32, copy=False)


def _prepare(rgb: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The photo (:func:`skinimg.io.check_rgb`) and its skin mask (bool, same height and width)."""
    rgb = check_rgb(rgb)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != rgb.shape[:2]:
        raise ImageArrayError(f"mask shape {mask.shape} does not match image {rgb.shape[:2]}")
    return rgb, mask


def _clipped(rgb: np.ndarray, top) -> np.ndarray:
    """Pixels of ``rgb`` (H, W, 3) with a channel at or above ``top`` (the code of a clipped channel), bool (H, W).

    Three channel comparisons: ``(rgb >= top).any(axis=2)`` gives the same and took 8x longer (0.11 s on a
    10.9 MP photo), a reduction over an axis of length 3."""
    out = rgb[..., 0] >= top
    out |= rgb[..., 1] >= top
    out |= rgb[..., 2] >= top
    return out


def _smooth_skin(rgb: np.ndarray, mask: np.ndarray, params: IndexParams, *, precise: bool = False):
    """The skin as every reading sees it: ``(rgb, top)``, ``top`` the code of a clipped channel.

    Skin pixels averaged with their unclipped skin neighbours (:func:`_smooth_inside`, ``params.smoothing_sigma``;
    none when 0 or no skin); clipped skin pixels (a channel at ``top``) stay out of their neighbours' average and
    keep their own colour, pixels off the skin as they were.  ``rgb`` (H, W, 3) encoded sRGB uint8 / uint16 /
    float in [0, 1], ``mask`` bool (H, W); the result has :func:`_smooth_inside`'s dtype (``rgb`` itself when
    nothing is smoothed).

    ``precise``: return ``(rgb, top, linear)``; for uint8 and uint16 photos ``rgb`` is then 8-bit (:func:`_precise_skin`:
    distinct colours stay few, so each is read once) and ``linear`` the skin pixels' colours before that rounding,
    16-bit linear codes (N, 3) uint16 in mask order (:func:`_unit_centroids` reads each code at their mean);
    ``linear`` None for float photos."""
    top = np.iinfo(rgb.dtype).max if rgb.dtype.kind == "u" else 1.0
    if precise and rgb.dtype in (np.uint8, np.uint16):
        smooth = _unclipped_skin(rgb, mask, top) if params.smoothing_sigma > 0 and mask.any() else mask
        codes, linear = _precise_skin(rgb, mask, smooth, params.smoothing_sigma)
        if rgb.dtype == np.uint16:  # 8-bit code 255 only for the channels clipped at 16 bits
            clip = _clipped(rgb, top)
            codes[clip] = np.where(rgb[clip] >= top, 255, np.minimum(codes[clip], 254))
            np.minimum(codes, 254, out=codes, where=~clip[..., None])
        return codes, 255, linear
    linear = None
    if params.smoothing_sigma > 0 and mask.any():
        # clipped colours carry no chromaticity
        rgb = _smooth_inside(rgb, _unclipped_skin(rgb, mask, top), params.smoothing_sigma, keep_outside=True)
    return (rgb, top, linear) if precise else (rgb, top)


def _unit_centroids(units: np.ndarray, weights: np.ndarray, pos: np.ndarray, linear: np.ndarray) -> np.ndarray:
    """The mean colour of each distinct 8-bit colour's pixels before their rounding, encoded sRGB float64 (M, 3) in
    [0, 1] (exactly the code's own colour where no pixel of it was averaged).

    ``units`` (M, 3) uint8, ``weights`` (M,) pixel counts and ``pos`` (N,) each pixel's unit (:func:`_skin_colours`),
    ``linear`` (N, 3) uint16 the pixels' 16-bit linear codes (:func:`_smooth_skin` with ``precise``).  A reading
    taken once per distinct colour at its centroid equals the mean of the pixels' own readings to first order;
    taken at the rounded code it is off by up to half a code step, and on uniform skin (every pixel rounding the
    same way) that bias does not average out: a gain of a few per cent then moved haemoglobin by several per
    cent (``docs/comparison.md``)."""
    m = len(units)
    base = linear16_luts()[0][units].astype(np.float64)  # each code's own 16-bit linear code
    lin = srgb_to_linear(units.astype(np.float64) / 255.0).astype(np.float64)
    den = np.maximum(weights, 1).astype(np.float64)
    for k in range(3):
        # the code's exact colour plus its pixels' mean offset from it (0 where none was averaged)
        lin[:, k] += (np.bincount(pos, weights=linear[:, k], minlength=m) / den - base[:, k]) / 65535.0
    return linear_to_srgb(np.clip(lin, 0.0, 1.0))


def _unclipped_skin(rgb: np.ndarray, mask: np.ndarray, top) -> np.ndarray:
    """``mask & ~_clipped(rgb, top)``, bool (H, W): skin pixels with every channel below ``top``.

    Integer input: one ``cv2.inRange`` pass (every channel in [0, top - 1]) instead of three comparisons and two
    logical operations over the frame (the same pixels, tested)."""
    if rgb.dtype in (np.uint8, np.uint16) and rgb.ndim == 3 and rgb.shape[2] == 3:
        below = cv2.inRange(rgb if rgb.flags.c_contiguous else np.ascontiguousarray(rgb), (0, 0, 0),
                            (int(top) - 1,) * 3)
        return cv2.bitwise_and(np.ascontiguousarray(mask).view(np.uint8), below).view(bool)  # 1 & 255 = 1
    return mask & ~_clipped(rgb, top)


def _crop_box(mask: np.ndarray, pad: int) -> tuple[slice, slice]:
    """Bounding box of the mask grown by ``pad`` pixels (the whole image when the mask is empty).

    Every per-pixel computation runs on this crop: the skin is often a small part of
    the photo.  ``pad`` covers the smoothing kernel, so results equal the uncropped ones.
    """
    x, y, w, h = cv2.boundingRect(mask.view(np.uint8))
    if w == 0 or h == 0:
        return slice(0, mask.shape[0]), slice(0, mask.shape[1])
    return (slice(max(0, y - pad), min(mask.shape[0], y + h + pad)),
            slice(max(0, x - pad), min(mask.shape[1], x + w + pad)))


def _pad(params: IndexParams) -> int:
    return int(math.ceil(6.5 * params.smoothing_sigma)) + 2


def _index_values(px: np.ndarray, floor: float) -> dict:
    """EI, MI, CIELAB and ITA of an (M, 3) array of encoded colours, in chunks; float32 1-D arrays."""
    n = len(px)
    out = {name: np.empty(n, dtype=np.float32) for name in INDEX_NAMES if name not in ("melanin", "hemoglobin")}
    hundred = np.float32(100.0)
    for s in range(0, n, _CHUNK):
        c = px[s : s + _CHUNK]
        sl = slice(s, s + len(c))
        od = rgb_to_optical_density(c, floor)
        np.multiply(od[:, 1] - od[:, 0], hundred, out=out["erythema_index"][sl])
        np.multiply(od[:, 0], hundred, out=out["melanin_index"][sl])
        del od
        lab = rgb_to_lab(c)
        out["l_star"][sl] = lab[:, 0]
        out["a_star"][sl] = lab[:, 1]
        out["b_star"][sl] = lab[:, 2]
        out["ita_deg"][sl] = ita_deg(lab[:, 0], lab[:, 2])
    return out


def _box_width(sigma: float) -> int:
    """Odd width b of the box filter with the variance of a Gaussian of ``sigma``:
    a box of width b has variance (b^2 - 1) / 12 (b = 7 for sigma 2)."""
    x = math.sqrt(12.0 * sigma * sigma + 1.0)
    return 2 * int(round((x - 1.0) / 2.0)) + 1


def _box(a: np.ndarray, b: int, *, normalize: bool = True, ddepth: int = -1) -> np.ndarray:
    return cv2.boxFilter(a, ddepth, (b, b), normalize=normalize, borderType=cv2.BORDER_CONSTANT)


def _smooth_inside(rgb: np.ndarray, mask: np.ndarray, sigma: float, *, keep_outside: bool = True) -> np.ndarray:
    """Skin pixels averaged in *linear light* with their skin neighbours.

    Kernel: a box of width ``b = sqrt(12 sigma^2 + 1)`` rounded to odd (the variance of
    a Gaussian of ``sigma``; 7 x 7 px for sigma 2, a running sum, so its cost does not
    grow with b), normalised to the mask (``blur(lin * mask) / blur(mask)``: background
    never leaks into skin values, up to the border).  Averaging happens on linear values: the mean of encoded (gamma)
    values is darker than the mean light (Jensen's inequality) by an amount that grows
    with the noise relative to the signal, so it changes with exposure at dark tones.

    Parameters
    ----------
    rgb : ndarray (H, W, 3), encoded sRGB uint8 / uint16 / float in [0, 1]
    mask : ndarray of bool (H, W)
    keep_outside : bool
        Pixels outside the mask as they were (default); False leaves them undefined
        (faster, for callers that read skin pixels only).

    Returns
    -------
    ndarray, same shape; uint8 input as the nearest 8-bit code of the averaged light
    (through 16-bit linear codes, :func:`skinimg.color.linear16_luts`), uint16 as
    uint16, float as float32.
    """
    src = np.ascontiguousarray(rgb)
    b = _box_width(sigma)
    m8 = mask.view(np.uint8)
    if src.dtype == np.uint8:
        to_lin, to_u8 = linear16_luts()
        masked = np.zeros_like(src)
        cv2.copyTo(src, m8, masked)
        num = _average16(cv2.LUT(masked, to_lin), mask, b)  # code 0 -> linear 0 off the mask
        del masked
        sm = _lookup16(to_u8, num)
    else:
        edge, scale = _edge_scale(mask, b)
        lin = srgb_to_linear(src)
        lin *= mask[..., None]
        num = _box(lin, b)
        del lin
        num.reshape(-1, 3)[edge] *= scale[:, None]
        enc = linear_to_srgb(np.clip(num, 0.0, 1.0))
        if src.dtype == np.uint16:
            sm = np.clip(np.rint(enc * np.float32(65535.0)), 0, 65535).astype(np.uint16)
        else:
            sm = enc
            src = src.astype(np.float32, copy=False)
    if not keep_outside:
        return sm
    out = src.copy()
    cv2.copyTo(sm, m8, out)
    return out


def _edge_scale(mask: np.ndarray, b: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices of the skin pixels whose ``b`` x ``b`` box holds non-skin, and the factor (box area / skin
    count under it) that turns their box sum of skin values into the skin mean."""
    den = _box(mask.view(np.uint8), b, normalize=False, ddepth=cv2.CV_16U)  # skin count under the kernel, <= b^2
    edge = np.flatnonzero(mask & (den < np.uint16(b * b)))
    return edge, np.float32(b * b) / den.reshape(-1)[edge].astype(np.float32)


def _average16(masked: np.ndarray, mask: np.ndarray, b: int) -> np.ndarray:
    """The mean over each ``b`` x ``b`` box of the skin's 16-bit linear codes (``masked``: (H, W, 3) uint16, 0 off
    ``mask``), uint16 (H, W, 3); valid on ``mask``."""
    num = _box(masked, b)
    edge, scale = _edge_scale(mask, b)
    flat = num.reshape(-1, 3)
    flat[edge] = np.clip(np.rint(flat[edge] * scale[:, None]), 0, 65535).astype(np.uint16)
    return num


@lru_cache(maxsize=1)
def _encoded16_to_linear16() -> np.ndarray:
    """Encoded 16-bit sRGB code -> 16-bit linear code (65536,) uint16."""
    return np.rint(srgb_to_linear(np.arange(65536, dtype=np.float64) / 65535.0) * 65535.0).astype(np.uint16)


def _precise_skin(rgb: np.ndarray, mask: np.ndarray, smooth: np.ndarray, sigma: float) -> tuple[np.ndarray,
                                                                                             np.ndarray]:
    """The skin of an integer photo as 8-bit codes and, before that rounding, as 16-bit linear codes.

    ``rgb`` (H, W, 3) encoded sRGB uint8 or uint16, ``mask`` bool (H, W) the skin, ``smooth`` bool (H, W) the skin
    pixels averaged with each other (unclipped skin; ``sigma`` 0: none).  Returns ``(codes, linear)``: (H, W, 3)
    uint8 with the ``smooth`` pixels replaced by the nearest 8-bit code of their average light (for uint8 input the
    same codes as :func:`_smooth_inside`), and the skin pixels' own linear codes (N, 3) uint16 in mask order,
    averaged where ``smooth``: what :func:`_unit_centroids` reads each distinct code at."""
    to_lin8, to_u8 = linear16_luts()
    src = np.ascontiguousarray(rgb)
    lin = cv2.LUT(src, to_lin8) if src.dtype == np.uint8 else _lookup16(_encoded16_to_linear16(), src)
    if sigma > 0 and smooth.any():
        m8 = smooth.view(np.uint8)
        masked = np.zeros_like(lin)
        cv2.copyTo(lin, m8, masked)
        num = _average16(masked, smooth, _box_width(sigma))
        del masked
        cv2.copyTo(num, m8, lin)
        del num
    return _lookup16(to_u8, lin), lin[mask]


def _lookup16(table: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """``table[codes]`` for a uint16 array ``codes`` (H, W, ...) and a 65536-entry ``table``, in bands of rows.

    ``np.take`` on bands of about 1 MiB of codes (it converts each band's indices to int64, which stays in cache):
    0.027 s of CPU against 0.040 s for ``table[codes]`` on a 10.9 MP RGB array, the same values (tested)."""
    out = np.empty(codes.shape, dtype=table.dtype)
    rows = max(1, (1 << 19) // max(1, codes[0].size)) if codes.ndim > 1 else len(codes)
    for r in range(0, len(codes), rows):
        np.take(table, codes[r : r + rows], out=out[r : r + rows])
    return out


def _skin_colours(rgb: np.ndarray, mask: np.ndarray):
    """The skin pixels of ``rgb`` (H, W, 3) under ``mask`` (H, W), compactly.

    uint8: ``(units, weights, pos)``: the distinct colours (M, 3) uint8 in the order of
    their 24-bit codes ``R | G << 8 | B << 16``, each one's pixel count, and each pixel's
    colour index.  Other dtypes: ``(pixels (N, 3), None, None)``.
    """
    if rgb.dtype != np.uint8 or not mask.any():
        return rgb.reshape(-1, 3)[mask.ravel()], None, None
    # 24-bit colour codes of the skin pixels: R | G << 8 | B << 16 (RGBA view, alpha masked off).
    codes = cv2.cvtColor(rgb if rgb.flags.c_contiguous else np.ascontiguousarray(rgb), cv2.COLOR_RGB2RGBA)
    codes = codes.view(np.uint32).reshape(mask.shape)[mask]
    np.bitwise_and(codes, np.uint32(0xFFFFFF), out=codes)
    # distinct colours (sorted codes) from a 2**24 bool table (a bincount over 2**24 int64 bins
    # and its nonzero scan cost 4x more), then each pixel's colour index and the counts
    seen = np.zeros(1 << 24, dtype=bool)
    seen[codes] = True
    nz = np.flatnonzero(seen)
    del seen
    table = np.empty(1 << 24, dtype=np.int32)
    table[nz] = np.arange(len(nz), dtype=np.int32)
    pos = table[codes]
    del table
    weights = np.bincount(pos, minlength=len(nz))
    units = np.empty((len(nz), 3), dtype=np.uint8)
    units[:, 0] = nz & 0xFF
    units[:, 1] = (nz >> 8) & 0xFF
    units[:, 2] = nz >> 16
    return units, weights, pos


def _pooled_skin_od(images, params: IndexParams) -> list[tuple[np.ndarray, np.ndarray]]:
    """The skin colours of several photos of the same skin as optical density, for a pooled twin-branch choice.

    Per photo with skin (``images``: (rgb, mask) pairs as :func:`_prepare` takes them): smoothed as the
    measurement smooths (clipped pixels out of their neighbours' smoothing), then ``(od (N, 3) float64,
    weights (N,) float64)``: the distinct colours (8-bit) or pixels and their pixel counts, clipped colours
    weighted 0 (they carry no chromaticity)."""
    out = []
    for rgb, mask in images:
        rgb, mask = _prepare(rgb, mask)
        if not mask.any():
            continue
        box = _crop_box(mask, _pad(params))
        mc = np.ascontiguousarray(mask[box])
        crop, top, linear = _smooth_skin(rgb[box], mc, params, precise=True)
        px, w, pos = _skin_colours(crop, mc)
        colours = px if linear is None or w is None else _unit_centroids(px, w, pos, linear)
        w = np.ones(len(px), dtype=np.int64) if w is None else w
        w = np.where((px >= top).any(axis=1), 0, w)
        out.append((rgb_to_optical_density(colours, params.od_floor).astype(np.float64), w.astype(np.float64)))
    return out

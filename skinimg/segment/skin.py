"""Skin segmentation of a photo: :func:`segment_skin` (the network, or the YCrCb rule with its clean-up)."""

from __future__ import annotations

import math
import os

import cv2
import numpy as np

from ..errors import SkinImgError
from ..io import check_rgb, to_uint8
from .filters import (_bbox, _block_mean, _ellipse, _fill_small_holes, _gauss, _remove_small, _upsample_mask,
                      _work_factor, guided_filter, hysteresis_threshold)
from .metrics import evaluate_masks
from .model import SkinNet, load_model, rules_mask
from .params import SegmentParams, SegmentResult, check_method

__all__ = ["segment_skin", "candidate_region", "reduce_photo"]


def candidate_region(p: np.ndarray, params: SegmentParams) -> tuple[np.ndarray, np.ndarray]:
    """The clean-up of the rules baseline on P(skin) float32 (h, w): (region bool, smoothed probability float32).

    Gaussian smoothing (``smooth_sigma``), hysteresis (``low``, ``high``), elliptic opening and closing, small
    components removed and small holes filled (``min_component``, ``max_hole`` of the image area).  Components run
    on the bounding box (1 pixel margin: what touches it is background connected to the image border).
    """
    area = p.size
    ps = _gauss(p, params.smooth_sigma)
    mask = hysteresis_threshold(ps, params.low, params.high)
    if params.open_radius:
        mask = cv2.morphologyEx(mask.view(np.uint8), cv2.MORPH_OPEN, _ellipse(params.open_radius)).view(bool)
    if params.close_radius:
        mask = cv2.morphologyEx(mask.view(np.uint8), cv2.MORPH_CLOSE, _ellipse(params.close_radius),
                                borderType=cv2.BORDER_REPLICATE).view(bool)
    box = _bbox(mask, 1)
    if box is None:
        return np.zeros(mask.shape, dtype=bool), ps
    sub = _remove_small(np.ascontiguousarray(mask[box]), int(math.ceil(params.min_component * area)))
    sub = _fill_small_holes(sub, int(params.max_hole * area))
    mask = np.zeros(mask.shape, dtype=bool)
    mask[box] = sub
    return mask, ps


def reduce_photo(rgb8: np.ndarray, side: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """The working copy of a uint8 (H, W, 3) photo: long side at most ``side`` pixels (area averaging), and the
    intermediate 2 x 2 levels on the way down (largest first), which OpenCV computes fastest.

    Returns ``(small uint8 (h, w, 3), levels)``; a photo already small enough is returned as it is.
    """
    h, w = rgb8.shape[:2]
    f = min(1.0, side / max(h, w))
    hh, ww = max(1, round(h * f)), max(1, round(w * f))
    if (hh, ww) == (h, w):
        return rgb8, []
    levels = []
    a = rgb8
    while a.shape[0] >= 4 * hh and a.shape[1] >= 4 * ww:
        a = cv2.resize(a, (a.shape[1] // 2, a.shape[0] // 2), interpolation=cv2.INTER_AREA)
        levels.append(a)
    if a.shape[:2] != (hh, ww):
        a = cv2.resize(a, (ww, hh), interpolation=cv2.INTER_AREA)
    return a, levels


def _rules(rgb: np.ndarray, params: SegmentParams) -> tuple[np.ndarray, np.ndarray, tuple]:
    """The rules baseline on a working copy downscaled by an integer factor: (mask at full size, probability at
    working size, geometry)."""
    h, w = rgb.shape[:2]
    k = min(_work_factor(h * w, params.work_pixels), h, w)  # min: a strip one pixel high is not reduced
    if k > 1:
        hk, wk = (h // k) * k, (w // k) * k  # the last h % k rows and w % k columns are replicated back at the end
        work = _block_mean(rgb[:hk, :wk], k)
    else:
        work = rgb
    work8 = np.ascontiguousarray(to_uint8(work))
    p = rules_mask(work8).astype(np.float32)
    mask, ps = candidate_region(p, params)
    mask &= ~(_gauss(p, params.pixel_sigma) < np.float32(params.pixel_min))
    r, g, b = cv2.split(work8)
    mask &= ~(cv2.min(cv2.min(r, g), b) >= params.specular_level)
    mask &= ~(cv2.max(cv2.max(r, g), b) <= params.dark_level)
    geometry = ()
    if k > 1:
        geometry = (hk, wk, h, w)
        mask = _upsample_mask(mask, *geometry)
    return mask, ps, geometry


def _network(rgb8: np.ndarray, params: SegmentParams, model: SkinNet, roi: np.ndarray | None, check: bool):
    """The network's segmentation: (mask at full size, probability, geometry, agreement or None)."""
    h, w = rgb8.shape[:2]
    small, levels = reduce_photo(rgb8, params.work_side)
    hh, ww = small.shape[:2]
    z = model.logit(small)
    t = np.float32(math.log(params.threshold / (1.0 - params.threshold)))
    agreement = None
    if check:  # the network's opinion of the mirror image: a mask it cannot see twice the same way is uncertain
        a, b = z >= t, model.logit(small, flip=True) >= t
        if roi is not None:
            roi_w = roi if (hh, ww) == (h, w) else cv2.resize(roi.view(np.uint8) * np.uint8(255), (ww, hh),
                                                              interpolation=cv2.INTER_AREA) >= 128
            a, b = a & roi_w, b & roi_w
        agreement = evaluate_masks(a, b)["iou"]  # 1.0 when both are empty
    z, kept = _neutral_veto(z, small, t, params)
    if (hh, ww) == (h, w):
        return z >= t, _sigmoid(z), (), agreement
    # back to the photo along its edges: the guided filter's copy is the photo itself when small, else the
    # smallest 2 x 2 level with a long side >= guide_side
    guide = rgb8
    for lv in levels:
        if max(lv.shape[:2]) >= params.guide_side:
            guide = lv
    if params.guide_side and max(guide.shape[:2]) > 2 * params.guide_side:
        f = params.guide_side / max(guide.shape[:2])
        guide = cv2.resize(guide, (max(1, round(guide.shape[1] * f)), max(1, round(guide.shape[0] * f))),
                           interpolation=cv2.INTER_AREA)
    if not params.guide_side:
        guide = small
    gh, gw = guide.shape[:2]
    zg = cv2.resize(z, (gw, gh), interpolation=cv2.INTER_LINEAR) if (gh, gw) != (hh, ww) else z
    if params.guide_side and (gh, gw) != (hh, ww):
        radius = max(1, round(gw / ww)) * params.guide_radius
        grey = cv2.cvtColor(guide, cv2.COLOR_RGB2GRAY).astype(np.float32) * np.float32(1 / 255)
        # a clipped logit: the uncertain band moves to the photo's edges, confident regions stay as they are
        zg = guided_filter(grey, np.clip(zg, -4, 4) * np.float32(0.25), radius, params.guide_eps) * np.float32(4)
    if kept is not None and (gh, gw) != (hh, ww):  # grey pixels of the finer copy along the mask's edge (a halo)
        inner = cv2.erode(kept.view(np.uint8), np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)
        inner = cv2.resize(inner, (gw, gh), interpolation=cv2.INTER_LINEAR) > 0
        drop = _grey(guide, params.neutral_chroma) & (zg > t - 1) & ~inner
        zg[drop] = t - np.float32(1)
    if (gh, gw) == (h, w):
        return zg >= t, _sigmoid(zg), (), agreement
    # full resolution: bilinear interpolation of the decision margin coded in 8 bits (1/32 log-odds per level)
    q = np.clip(zg * np.float32(32) + np.float32(128), 0, 255).astype(np.uint8)
    up = cv2.resize(q, (w, h), interpolation=cv2.INTER_LINEAR)
    level = int(np.clip(math.ceil(float(t) * 32 + 128), 0, 255))
    mask = cv2.threshold(up, level - 1, 1, cv2.THRESH_BINARY, dst=up)[1].view(bool)
    return mask, _sigmoid(zg), (h, w, h, w), agreement


def _grey(rgb8: np.ndarray, limit: float) -> np.ndarray:
    """bool (h, w): pixels of a uint8 RGB image whose YCrCb chroma hypot(Cr - 128, Cb - 128) is below ``limit``."""
    ycc = cv2.cvtColor(rgb8, cv2.COLOR_RGB2YCrCb)
    cr = ycc[..., 1].astype(np.float32) - np.float32(128)
    cb = ycc[..., 2].astype(np.float32) - np.float32(128)
    return cv2.magnitude(cr, cb) < np.float32(limit)


def _neutral_veto(z: np.ndarray, rgb8: np.ndarray, t: np.float32, params: SegmentParams):
    """Log-odds float32 (h, w) of the working copy ``rgb8`` (uint8 (h, w, 3)) with its grey pixels moved below the
    threshold ``t`` (YCrCb chroma below ``params.neutral_chroma``), except in holes of the mask of at most
    ``params.neutral_hole`` of the area (specular spots); and the bool (h, w) mask so kept (None if off).  The
    network alone sometimes takes a flat grey background for skin; skin of any tone has a hue
    (docs/segmentation.md)."""
    mask = z >= t
    if params.neutral_chroma <= 0 or not mask.any():
        return z, None
    keep = mask & ~_grey(rgb8, params.neutral_chroma)
    filled = _fill_small_holes(keep, int(params.neutral_hole * mask.size))
    drop = mask & ~filled
    if drop.any():
        z = z.copy()
        z[drop] = np.minimum(z[drop], t - np.float32(1))
    return z, filled


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return (np.float32(1) / (np.float32(1) + np.exp(-np.clip(z, -30, 30)))).astype(np.float32)


def segment_skin(rgb: np.ndarray, *, method: str = "model", roi: np.ndarray | None = None,
                 params: SegmentParams | None = None, model: SkinNet | str | os.PathLike | None = None,
                 check: bool = False) -> SegmentResult:
    """Segment the skin of a photo.

    Parameters
    ----------
    rgb : ndarray, uint8 or uint16, (H, W, 3), sRGB, RGB order
        The upright photo.
    method : {"model", "rules"}
        The trained network (:mod:`skinimg.segment`) or the YCrCb rule of Chai and Ngan (1999) with its
        morphological clean-up (a baseline).
    roi : ndarray, bool, (H, W), optional
        Region of interest (:func:`skinimg.io.load_roi`): skin outside it is dropped.
    params : SegmentParams, optional
    model : SkinNet or path-like, optional
        Network for ``method="model"`` (default ``models/skin_unet.onnx``).
    check : bool
        ``method="model"``: also run the network on the mirror image and report how far the two masks agree
        (``SegmentResult.agreement``; below :data:`AGREEMENT_MIN` the mask deserves a look).  Costs a second
        pass of the network on the working copy.

    Returns
    -------
    SegmentResult
        ``status="no_skin"`` with ``skin_fraction=0`` when no skin pixel is left.

    Raises
    ------
    SkinImgError
        Bad array, unknown method, ROI of the wrong shape, unreadable model.
    """
    rgb = check_rgb(rgb, allow_float=False)
    params = params or SegmentParams()
    check_method(method)
    h, w = rgb.shape[:2]
    if roi is not None:
        roi = np.asarray(roi, dtype=bool)
        if roi.shape != (h, w):
            raise SkinImgError(f"ROI is {roi.shape[1]}x{roi.shape[0]} pixels but the photo is {w}x{h}")
    agreement = None
    if method == "rules":
        mask, ps, geometry = _rules(rgb, params)
    else:
        if not isinstance(model, SkinNet):
            model = load_model(model)
        mask, ps, geometry, agreement = _network(np.ascontiguousarray(to_uint8(rgb)), params, model, roi, check)
    if roi is not None:
        mask &= roi
    n = int(np.count_nonzero(mask))
    return SegmentResult(mask=mask, skin_fraction=n / float(h * w), status="ok" if n else "no_skin", method=method,
                         work_probability=np.asarray(ps, dtype=np.float32), agreement=agreement, _geometry=geometry)

"""The second stage of the ``"model"`` segmentation: the perceptron and the U-Net on the clean-up region.

Runs on the region's bounding box (a crop whose margin covers every filter behind a feature), and on a
downscaled copy for large working images, whose log-odds come back by bilinear interpolation sharpened
with a guided filter (step 7 of :mod:`skinimg.segment`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import replace
from typing import Sequence

import cv2
import numpy as np

from .features import _image_llr, _pixel_features
from .filters import _Z_CAP, _bbox, _block_mean, _ellipse, _gauss, _logit, _scatter, _upsample, guided_filter
from .model import SkinModel
from .params import SegmentParams
from .unet import net_input

__all__: list[str] = []


#: Margin (working pixels) of the crop around the region in which the second stage runs: more than the
#: reach of every spatial filter behind a region pixel's features (the widest: band-pass energy at sigma 4,
#: a Gaussian of radius 16 (OpenCV's float kernel, 4 sigma) on the difference of Gaussians of radii 8 and 16
#: = 32 pixels; structure tensor at sigma 3 = 12 + 1; 15 x 15 box = 7; grey-level closing/opening of radius 2
#: = 4; and the Gaussian of ``pixel_sigma``, about 4 sigma), so the crop gives the region the same values as
#: the whole image.
_CROP_MARGIN = 36


@functools.lru_cache(maxsize=1)
def _blas_pools():
    """This process's BLAS thread pools (threadpoolctl; found once, about 10 ms), or None."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - installed with scikit-learn
        return None
    return ThreadpoolController().select(user_api="blas")


def _stage2_logit_one_thread(model: SkinModel, f: np.ndarray) -> np.ndarray:
    """``model.stage2_logit(f)`` with the BLAS on one thread (the same values: each product element is
    computed alike).  A few milliseconds of matrix product gain little from a second thread, and its
    wake-up and spinning cost far more when the other cores are busy (a batch runs one photo per core)."""
    pools = _blas_pools()
    if pools is None or not pools.lib_controllers:  # pragma: no cover
        return model.stage2_logit(f)
    with pools.limit(limits=1):
        return model.stage2_logit(f)


def _stage2_logit(rgb8: np.ndarray, p: np.ndarray, mask: np.ndarray, confident: np.ndarray, params: SegmentParams,
                  model: SkinModel) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray] | None:
    """Second-stage log-odds of the region's pixels: ``(box, m, z)`` with ``box`` the region's bounding box
    grown by :data:`_CROP_MARGIN` (the features are computed on it), ``m = mask[box]`` and ``z`` float32 (N,)
    in ``m`` order; None for an empty region."""
    if model.net is not None and params.stage2_model == "net":
        return _net_logit(rgb8, p, mask, model.net)
    box = _bbox(mask, max(_CROP_MARGIN, int(4 * params.pixel_sigma) + 2))
    if box is None:
        return None
    img = _image_llr(rgb8, mask, confident, params) if params.refine_weight > 0 else None
    m = np.ascontiguousarray(mask[box])
    core = cv2.erode((m & confident[box]).view(np.uint8), _ellipse(params.refine_margin)).view(bool)
    llr = _logit(_gauss(np.ascontiguousarray(p[box]), params.pixel_sigma))
    f = _pixel_features(np.ascontiguousarray(rgb8[box]), llr, None if img is None else img[box], m, core,
                        photo_pixels=mask.size)
    return box, m, _stage2_logit_one_thread(model, f)


#: Margin (pixels) of the crop around the region in which the convolutional second stage runs (see
#: :func:`_net_logit`).
_NET_MARGIN = 8


def _net_logit(rgb8: np.ndarray, p: np.ndarray, mask: np.ndarray, net) -> tuple | None:
    """The convolutional second stage's log-odds of the region's pixels, as :func:`_stage2_logit`.

    The network sees the region's bounding box grown by :data:`_NET_MARGIN` (it was trained on crops of
    photos, whose borders it sees as zero padding).  8 pixels, not the 32 of earlier versions: on the 600
    development phantoms (seeds 200000+, 480 x 640) F1 per tone moved by at most 0.0004, and the network's input
    shrinks by 35-60 % on a 12 MP face or forearm (its time with it).
    """
    box = _bbox(mask, _NET_MARGIN)
    if box is None:
        return None
    m = np.ascontiguousarray(mask[box])
    z = net(net_input(np.ascontiguousarray(rgb8[box]), np.ascontiguousarray(p[box]), m))
    return box, m, z[m]


def _stage2_z(rgb8: np.ndarray, p: np.ndarray, mask: np.ndarray, confident: np.ndarray, params: SegmentParams,
              model: SkinModel, stages: Sequence[str]) -> list[np.ndarray] | None:
    """Second-stage log-odds at working resolution: one float32 map of ``mask``'s shape per stage of ``stages``
    (``"mlp"``, ``"net"``), or None for an empty region.  Only the region's pixels are meaningful.

    At most ``stage2_pixels`` pixels: at working resolution.  Larger: on a copy downscaled by the smallest
    integer factor ``k`` that fits (block means of colours and probabilities; a block is in the region when any
    of its pixels is, confident when most are); the log-odds, clipped to +-:data:`_Z_CAP` and -:data:`_Z_CAP`
    outside the region, are resized back bilinearly and sharpened by :func:`guided_filter` with the working
    image's grey level as guide (``guide_radius``, ``guide_eps``), so that the region's outline follows the
    photo's edges rather than the k x k blocks.  Saves about three quarters of the second stage's time (the
    larger part of the segmentation of a close-up) for a drop of pooled F1 on the 480 x 640 sample photos from
    0.986 to 0.985.  The downscaled copy and the guide are shared by the stages.
    """
    h, w = mask.shape
    k = min(max(1, math.ceil(math.sqrt(h * w / float(params.stage2_pixels)))), h, w) if params.stage2_pixels else 1
    cap = np.float32(_Z_CAP)
    if k == 1:
        outs = [_stage2_logit(rgb8, p, mask, confident, replace(params, stage2_model=s), model) for s in stages]
        if outs[0] is None:
            return None
        return [_scatter(mask.shape, box, m, zv, cap) for box, m, zv in outs]
    hk, wk = (h // k) * k, (w // k) * k
    rgb2 = _block_mean(rgb8[:hk, :wk], k)
    p2 = _block_mean(p[:hk, :wk], k)
    mask2 = _block_mean(mask[:hk, :wk].view(np.uint8) * np.uint8(255), k) > 0
    conf2 = _block_mean(confident[:hk, :wk].view(np.uint8) * np.uint8(255), k) >= 128
    r = params.guide_radius
    box = _bbox(mask, 2 * r + 1)
    grey = None
    if r > 0 and box is not None:
        grey = cv2.cvtColor(np.ascontiguousarray(rgb8[box]), cv2.COLOR_RGB2GRAY).astype(np.float32)
        grey *= np.float32(1 / 255.0)
    zs = []
    for s in stages:
        out = _stage2_logit(rgb2, p2, mask2, conf2, replace(params, stage2_model=s), model)
        if out is None:
            return None
        box2, m2, z2v = out
        z = _upsample(_scatter(mask2.shape, box2, m2, np.clip(z2v, -cap, cap), cap), hk, wk, h, w)
        if grey is not None:
            z[box] = guided_filter(grey, np.ascontiguousarray(z[box]), r, params.guide_eps)
        zs.append(z)
    return zs


def _stage2_plan(params: SegmentParams, model: SkinModel, check: bool) -> tuple[list[str], bool]:
    """The second stages to run and whether the mask is their mean: ``(stages, mean)``.

    ``stage2_model="both"`` runs both and averages their log-odds; ``"mlp"`` (default) or ``"net"`` one of them
    (``check`` adds the other, for the agreement only).  A model with only one second stage uses that one.
    """
    if model.net is None:
        return ["mlp"], False
    if model.stage2 is None:
        return ["net"], False
    if params.stage2_model == "both":
        return ["mlp", "net"], True
    if check:
        return ([params.stage2_model, "net" if params.stage2_model == "mlp" else "mlp"]), False
    return [params.stage2_model], False

"""Skin segmentation of a photo: :func:`segment_skin` (clean-up steps 1-8 of :mod:`skinimg.segment`)."""

from __future__ import annotations

import math
import os

import cv2
import numpy as np

from ..errors import SkinImgError
from ..io import check_rgb, to_uint8
from .features import _image_llr, _pixel_features, _redness_outliers, _thin_structures
from .filters import (_bbox, _block_mean, _ellipse, _fill_small_holes, _gauss, _logit, _remove_small,
                      _upsample_mask, _work_factor, hysteresis_threshold)
from .metrics import evaluate_masks
from .model import SkinModel, load_model, rules_mask
from .params import SegmentParams, SegmentResult, check_method
from .stage2 import _stage2_plan, _stage2_z

__all__ = ["segment_skin", "candidate_region", "second_stage_inputs"]


def candidate_region(p: np.ndarray, params: SegmentParams) -> tuple[np.ndarray, np.ndarray]:
    """Steps 2-5 of the clean-up on P(skin) float32 (h, w): (region bool, smoothed probability float32).

    The region is what the second stage judges.  Components run on the bounding box (1 pixel margin: what
    touches it is background connected to the image border).
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


def _clean(p: np.ndarray, rgb8: np.ndarray, params: SegmentParams, *, refine: bool = True,
           model: SkinModel | None = None, collect: list | None = None, check: bool = False
           ) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """Spatial clean-up at working resolution: (mask bool, smoothed probability float32, pair).

    ``pair``: the masks the perceptron and the U-Net give alone, when both ran (``stage2_model="both"``, or
    ``check``) and the model has both; else None.

    ``refine=False`` (the rules baseline) skips the per-image refinement and the strand
    and lip vetoes, which need graded probabilities.

    Speed (same results): the component steps run on the region's bounding box (1 pixel
    margin: what touches it is background connected to the image border); with a second
    stage, its features are computed on the bounding box grown by :data:`_CROP_MARGIN`
    (every filter behind a region pixel's features reaches less far), and the rule-based
    probability veto it replaces is not computed.
    """
    mask, ps = candidate_region(p, params)
    high = np.float32(params.high)
    stage2 = (refine and model is not None and (model.stage2 is not None or model.net is not None)
              and params.stage2_threshold > 0)
    if stage2 and collect is None:
        stages, mean = _stage2_plan(params, model, check)
        zs = _stage2_z(rgb8, p, mask, ps >= high, params, model, stages)
        box = _bbox(mask, 0)
        if zs is None or box is None:
            return mask, ps, ((mask, mask.copy()) if len(stages) == 2 else None)
        thr = params.stage2_threshold
        zthr = np.float32(math.log(thr / (1.0 - thr)))
        r, g, b = cv2.split(rgb8[box])
        never = cv2.min(cv2.min(r, g), b) >= params.specular_level
        never |= cv2.max(cv2.max(r, g), b) <= params.dark_level
        keep = mask[box] & ~never
        zb = [z[box] for z in zs]
        pair = None
        if len(stages) == 2:
            pair = []
            for name in ("mlp", "net"):
                one = np.zeros_like(mask)
                one[box] = keep & (zb[stages.index(name)] >= zthr)
                pair.append(one)
            pair = tuple(pair)
        if mean:  # the mean of the two stages' log-odds
            z = zb[0] + zb[1]
            keep &= z >= np.float32(2) * zthr
        else:
            keep &= zb[0] >= zthr
        mask[box] = keep
        return mask, ps, pair
    llr = _logit(_gauss(p, params.pixel_sigma))
    llr_global = llr.copy()
    img = None
    if refine and params.refine_weight > 0 and mask.any():
        img = _image_llr(rgb8, mask, ps >= high, params)
        if img is not None:
            llr += np.float32(params.refine_weight) * img
    veto = llr < np.float32(math.log(params.pixel_min / (1.0 - params.pixel_min)))
    if collect is not None and mask.any():  # training the second stage: its features and the region
        core = cv2.erode((mask & (ps >= high)).view(np.uint8), _ellipse(params.refine_margin)).view(bool)
        collect.append((_pixel_features(rgb8, llr_global, img, mask, core), mask.copy()))
    if stage2 and mask.any():
        core = cv2.erode((mask & (ps >= high)).view(np.uint8), _ellipse(params.refine_margin)).view(bool)
        f = _pixel_features(rgb8, llr_global, img, mask, core)
        veto = np.zeros_like(mask)
        veto[mask] = model.predict_stage2(f) < np.float32(params.stage2_threshold)
    elif refine and params.strand_radius > 0:
        # a thin line whose colour is more common around the skin than on it (hair)
        gate = img if img is not None else llr
        veto |= _thin_structures(rgb8, params) & (gate < np.float32(params.strand_llr))
    if refine and not stage2 and params.redness_z > 0 and mask.any():  # noqa: SIM102
        core = mask & (ps >= high)
        if core.any():
            red = _redness_outliers(rgb8, core, params)
            # lips are a small part of the skin: a "redness outlier" covering much of the
            # region means the region is mostly not skin (a beige wall) - then skip the veto
            if np.count_nonzero(red & mask) <= 0.2 * np.count_nonzero(mask):
                veto |= red
    r, g, b = cv2.split(rgb8)
    veto |= cv2.min(cv2.min(r, g), b) >= params.specular_level
    veto |= cv2.max(cv2.max(r, g), b) <= params.dark_level
    mask &= ~veto
    return mask, ps, None


def second_stage_inputs(p: np.ndarray, rgb8: np.ndarray, model: SkinModel, params: SegmentParams | None = None
                        ) -> tuple[np.ndarray, np.ndarray] | None:
    """What the second-stage perceptron sees on a working image: ``(features, region)``, or None without a region.

    ``p`` float32 (h, w) P(skin) of the colour table, ``rgb8`` uint8 (h, w, 3) the working image; ``features``
    float32 (N, len(:data:`~skinimg.segment.FEATURE_NAMES`)) of the N pixels of ``region`` (bool (h, w), the
    clean-up region of steps 1-5), in row order.  The training data of the perceptron
    (:func:`skinimg.train.train_segmenter`).
    """
    rows: list = []
    _clean(p, rgb8, params or SegmentParams(), model=model, collect=rows)
    return rows[0] if rows else None


def segment_skin(rgb: np.ndarray, *, method: str = "model", roi: np.ndarray | None = None,
                 params: SegmentParams | None = None, model: SkinModel | str | os.PathLike | None = None,
                 check: bool = False) -> SegmentResult:
    """Segment the skin of a photo.

    Parameters
    ----------
    rgb : ndarray, uint8 or uint16, (H, W, 3), sRGB, RGB order
        The upright photo.
    method : {"model", "rules"}
        Colour classifier: the trained lookup table (Jones and Rehg 2002) or the
        YCrCb rule of Chai and Ngan (1999).  See the module documentation.
    roi : ndarray, bool, (H, W), optional
        Region of interest (:func:`load_roi`): skin outside it is dropped.
    params : SegmentParams, optional
        Clean-up parameters.
    model : SkinModel or path-like, optional
        Colour model for ``method="model"`` (default ``models/skin_lut.npz``).
    check : bool
        Also run the other second stage and report how far the two masks agree
        (``SegmentResult.agreement``; below :data:`AGREEMENT_MIN` the mask deserves a look).  The two stages
        fail on different photos, so a low agreement marks most of the masks that went wrong.  Costs the other
        second stage (10-20 ms on one thread for a 12 MP photo); implied by ``stage2_model="both"``.

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
    if method == "model" and not isinstance(model, SkinModel):
        model = load_model(model)
    # working copy: downscaled by an integer factor k (area averaging of k x k blocks; the
    # last h % k rows and w % k columns are dropped here and replicated back at the end)
    k = min(_work_factor(h * w, params.work_pixels), h, w)  # min: a strip one pixel high is not reduced
    if k > 1:
        hk, wk = (h // k) * k, (w // k) * k
        work = _block_mean(rgb[:hk, :wk], k)
    else:
        work = rgb
    work8 = np.ascontiguousarray(to_uint8(work))
    if method == "model":
        p = model.predict(work8)
    else:
        p = rules_mask(work8).astype(np.float32)
    mask, ps, pair = _clean(p, work8, params, refine=method == "model", model=model if method == "model" else None,
                            check=check)
    agreement = None
    if pair is not None:
        a, b = pair
        if roi is not None:
            roi_w = roi if k == 1 else _block_mean(roi[:hk, :wk].view(np.uint8) * np.uint8(255), k) >= 128
            a, b = a & roi_w, b & roi_w
        agreement = evaluate_masks(a, b)["iou"]  # 1.0 when both are empty
    geometry = ()
    if k > 1:
        geometry = (hk, wk, h, w)
        mask = _upsample_mask(mask, *geometry)
    if roi is not None:
        mask &= roi
    n = int(np.count_nonzero(mask))
    return SegmentResult(mask=mask, skin_fraction=n / float(h * w), status="ok" if n else "no_skin", method=method,
                         work_probability=np.asarray(ps, dtype=np.float32), agreement=agreement, _geometry=geometry)

"""Comparing two photographs of the same skin: :func:`compare_arrays` (steps 1-8 of :mod:`skinimg.session`).

:class:`CompareParams` holds every setting (recorded in ``comparison.json``); :func:`measure_pair`
registers, normalises and measures the pair; :func:`compare_arrays` adds MDCs and verdicts;
:func:`render_pictures` draws ``pair.png`` and the change maps.  Comparing files is
:func:`skinimg.batch.compare_files`, series of a study :func:`skinimg.batch.track`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import cv2
import numpy as np

from ..calibrate import MODES as CALIBRATION_MODES
from ..calibrate import CalibrationParams, calibrate_image, chart_mask
from ..errors import SkinImgError
from ..indices import (INDEX_NAMES, IndexParams, choose_shared_branch, compute_maps, render_heatmap,
                       shared_spot_threshold)
from ..io import DEFAULT_MAX_PIXELS, DEFAULT_WORK_PIXELS, REGION_COLOURS, check_rgb, reduce_image, reduce_mask, to_uint8
from ..segment import SegmentParams, check_method, check_second_stage, segment_skin
from .chain import REGISTRATION_MODES, register_chain
from .lighting import _apply_gain, _lighting
from .model_range import MEMBER_LEVEL_MIN, add_model_range, member_reads, model_range_record, model_span
from .register import RegistrationParams, warp_image, warp_map
from .stats import METRICS, _add_verdicts, _tile_ids, load_mdc, pair_statistics
from .unaligned import measure_unaligned

__all__ = ["LIGHTING_MODES", "MEMBER_LEVEL_MIN", "CompareParams", "measure_pair", "compare_arrays", "render_pictures",
           "model_span"]

#: Lighting normalisation of a pair without a chart (``CompareParams.lighting``).
LIGHTING_MODES = ("auto", "none")
#: ``joint_mask.rule`` of an aligned comparison.
ALIGNED_RULE = ("aligned: BEFORE's skin whose registered AFTER position (and its bilinear neighbours) is AFTER's "
                "skin, inside the ROI when given")


@dataclass(frozen=True)
class CompareParams:
    """Parameters of a comparison (recorded in ``comparison.json``).

    Attributes
    ----------
    segment_method : {"model", "rules"}
        Passed to the skin segmentation.
    second_stage : {"mlp", "net", "both"}
        Deprecated, no effect (the second stage of the former colour-table segmenter, retired by issue 22).
    calibrate : {"auto", "chart", "none"}
        Colour-chart correction (see module docstring).
    lighting : {"auto", "none"}
        Lighting normalisation by a per-channel gain on an unchanged reference region.
    indices : IndexParams
    registration : RegistrationParams
    registration_mode : {"auto", "features", "ecc", "none"}
        The registration chain (:func:`skinimg.session.register_chain`): ``auto`` = features, then ECC, then no
        alignment; ``features`` / ``ecc`` = that step only; ``none`` = region statistics without alignment.
    tile_frac : float
        Bootstrap tile side as a fraction of BEFORE's shorter side (at least ``min_tile_px``).
    min_tile_px : int
    n_boot : int
        Bootstrap resamples.
    seed : int
        Bootstrap seed.
    mdc : tuple of (name, value)
        Overrides of the default MDCs (index units).
    mdc_path : str or None
        MDC table (default ``models/mdc.json``).
    crosstalk_allowance : bool
        Widen the haemoglobin MDC by the melanin cross-talk measured on phantoms
        (``crosstalk`` in the MDC table): ``mdc + coefficient * |delta melanin|``.
    min_joint_pixels : int
        Fewer joint skin pixels: the pair fails ("too little common skin").
    max_pixels : int or None
        Photos declaring more pixels are refused before decoding.
    map_max_side : int
        Longer side of each photo in the PNG maps.
    calibrate_params : CalibrationParams or None
        How a chart is used (reference values, correction model); None = the defaults.
    work_pixels : int or None
        The working size, as ``skinimg analyze`` (``--resolution``, :func:`skinimg.io.reduce_image`): after the
        calibration (which looks for the chart in the full photos) a photo of more pixels is area-averaged to about
        this many, and segmented, registered and measured there (given masks and ROIs are reduced with it;
        ``residual_px`` is in its pixels).  None: the photos' own size.
    model_range : bool
        Read ``hemoglobin`` and ``melanin`` also with every fit member of the ensemble of optical
        models and report the spread of their relative change, ``delta_pct_model_range``, for the whole
        skin and every named region (:mod:`skinimg.indices.ensemble`); the verdict then calls a change only
        when it holds under every member (see :mod:`skinimg.session`, step 8).
    """

    segment_method: str = "model"
    calibrate: str = "auto"
    lighting: str = "auto"
    indices: IndexParams = field(default_factory=IndexParams)
    registration: RegistrationParams = field(default_factory=RegistrationParams)
    tile_frac: float = 0.05
    min_tile_px: int = 16
    n_boot: int = 2000
    seed: int = 0
    mdc: tuple = ()
    mdc_path: str | None = None
    crosstalk_allowance: bool = True
    min_joint_pixels: int = 500
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    map_max_side: int = 1024
    second_stage: str = "mlp"
    calibrate_params: CalibrationParams | None = None
    model_range: bool = True
    registration_mode: str = "auto"
    work_pixels: int | None = DEFAULT_WORK_PIXELS

    def __post_init__(self):
        if self.calibrate not in CALIBRATION_MODES:
            raise SkinImgError(f"unknown calibration mode {self.calibrate!r} (use auto, chart or none)")
        if self.lighting not in LIGHTING_MODES:
            raise SkinImgError(f"unknown lighting normalisation {self.lighting!r} (use auto or none)")
        if self.registration_mode not in REGISTRATION_MODES:
            raise SkinImgError(f"unknown registration {self.registration_mode!r} (use {', '.join(REGISTRATION_MODES)})")
        check_method(self.segment_method)
        check_second_stage(self.second_stage)
        mdc = tuple(sorted((str(k), float(v)) for k, v in dict(self.mdc).items()))
        for k, v in mdc:
            if k not in METRICS:
                raise SkinImgError(f"--mdc: unknown index {k!r} (one of {', '.join(METRICS)})")
            if not (math.isfinite(v) and v >= 0):
                raise SkinImgError(f"--mdc: {k} must be a number >= 0, got {v}")
        object.__setattr__(self, "mdc", mdc)
        if not (0 < self.tile_frac <= 1) or self.n_boot < 100:
            raise SkinImgError("tile_frac must be in (0, 1] and n_boot at least 100")

    def to_dict(self) -> dict:
        """The fields, and ``segment``: the segmentation's parameters (:class:`~skinimg.segment.SegmentParams`, the
        defaults the comparison's masks are made with when none are given)."""
        d = asdict(self)
        d["registration"] = self.registration.to_dict()
        d["mdc"] = dict(self.mdc)
        d["segment"] = asdict(SegmentParams())
        return d


# ----------------------------------------------------------------------------- pair pipeline


def _segment(rgb: np.ndarray, p: CompareParams) -> np.ndarray:
    """The skin mask of one photo of the pair (:func:`skinimg.segment.segment_skin` with ``p``'s method; the
    deprecated ``second_stage`` has no effect), bool (H, W)."""
    seg = segment_skin(rgb, method=p.segment_method)
    return np.asarray(seg.mask, dtype=bool)


def _calibrate_pair(before: np.ndarray, after: np.ndarray, mode: str, notes: list, params: CalibrationParams | None = None):
    """(before, after, info, chart corrections or (None, None))."""
    info = {"mode": mode, "before": "none", "after": "none"}
    if mode == "none":
        return before, after, info, (None, None)
    out, corr = [], []
    for which, rgb in (("BEFORE", before), ("AFTER", after)):
        try:
            c_rgb, c = calibrate_image(rgb, mode="chart", params=params)
        except SkinImgError as exc:
            if mode == "chart":
                raise SkinImgError(f"{which}: {exc.reason}") from None
            notes.append(f"{which}: {exc.reason}")
            c_rgb, c = None, None
        out.append(c_rgb)
        corr.append(c)
    if corr[0] is not None and corr[1] is not None:
        info.update(before="chart", after="chart",
                    delta_e_after={"before": corr[0].delta_e_after, "after": corr[1].delta_e_after})
        return out[0], out[1], info, (corr[0], corr[1])
    if corr[0] is not None or corr[1] is not None:
        notes.append("a colour chart was found in only one photo: chart correction not used")
    return before, after, info, (corr[0], corr[1])


def measure_pair(before: np.ndarray, after: np.ndarray, *, before_mask: np.ndarray | None = None,
                 after_mask: np.ndarray | None = None, roi: np.ndarray | None = None,
                 params: CompareParams | None = None, label: str | None = None,
                 regions: dict[str, np.ndarray] | None = None, after_roi: np.ndarray | None = None,
                 after_regions: dict[str, np.ndarray] | None = None) -> tuple[dict, dict]:
    """Register, normalise and measure a pair; metrics without verdicts.

    Parameters
    ----------
    before, after : ndarray, shape (H, W, 3) / (H', W', 3), encoded sRGB uint8 / uint16 / float [0, 1], R, G, B
    before_mask, after_mask : ndarray of bool, optional
        Skin masks (default: segmentation of each photo).
    roi : ndarray of bool, shape (H, W), optional
        Region of interest in BEFORE's frame: every metric is measured inside it.
    params : CompareParams, optional
    label : str, optional
        Names the pair in errors ("before.jpg vs after.jpg").
    regions : dict str -> ndarray of bool (H, W), optional
        Named regions in BEFORE's frame (not with ``roi``): ``metrics`` stay over the whole common skin and
        ``regions[name]`` holds each region's ``pixels`` (its area), ``joint_mask``, ``metrics`` and ``counts``
        (or ``error`` when it holds too little common skin).  One registration and one lighting normalisation
        (that of the whole skin: the regions do not change ``metrics``) serve every region.
    after_roi, after_regions : optional
        AFTER's own ROI / named regions in AFTER's frame, used only when the pair is not pixel-aligned
        (:func:`skinimg.session.measure_unaligned`: BEFORE's regions cannot be carried into AFTER then).

    Returns
    -------
    doc : dict
        ``registration``, ``calibration``, ``lighting``, ``joint_mask``, ``metrics``
        (each: before, after, delta, delta_pct, ci95, effect_size), ``statistics``, ``warnings``
        (and ``regions`` when given).
    pictures : dict
        ``before`` (BEFORE, calibrated), ``after_registered`` (AFTER in BEFORE's frame,
        normalised), ``joint`` mask, ``delta_hemoglobin`` / ``delta_melanin`` float32 maps,
        ``regions`` (name -> the region's joint mask, when regions are given); for a pair without pixel
        alignment ``before``, ``after``, ``skin_before``, ``skin_after`` (each photo's measured skin).

    Raises
    ------
    SkinImgError
        Too little common skin, chart required and missing, an ROI that cannot be used without alignment.  A
        pair that cannot be aligned is compared by region statistics (``registration.ok`` False), never refused.
    """
    p = params or CompareParams()
    notes: list[str] = []
    before, after = check_rgb(before, what="BEFORE"), check_rgb(after, what="AFTER")
    try:
        before, after, cal, corr = _calibrate_pair(before, after, p.calibrate, notes, p.calibrate_params)
    except SkinImgError as exc:
        raise SkinImgError(exc.reason, label) from None
    full_b, full_a = before.shape[:2], after.shape[:2]
    if (before_mask is not None and np.shape(before_mask) != full_b) or (after_mask is not None
                                                                         and np.shape(after_mask) != full_a):
        raise SkinImgError("skin mask size differs from its photo", label)
    if roi is not None and regions is not None:
        raise ValueError("give roi or regions, not both")
    if any(np.shape(m) != full_b for m in ([roi] if roi is not None else list((regions or {}).values()))):
        raise SkinImgError("ROI size differs from BEFORE", label)
    if any(np.shape(m) != full_a for m in ([after_roi] if after_roi is not None else [])
           + list((after_regions or {}).values())):
        raise SkinImgError("AFTER's ROI size differs from AFTER", label)
    # the working size of analyze: masks, charts and ROIs are given in the photos' own pixels
    before, after = reduce_image(before, p.work_pixels), reduce_image(after, p.work_pixels)
    hb, ha = before.shape[:2], after.shape[:2]
    mask_b = _segment(before, p) if before_mask is None else reduce_mask(before_mask, hb)
    mask_a = _segment(after, p) if after_mask is None else reduce_mask(after_mask, ha)
    chart_b = reduce_mask(chart_mask(full_b, corr[0]), hb) if corr[0] is not None else np.zeros(hb, bool)
    chart_a = reduce_mask(chart_mask(full_a, corr[1]), ha) if corr[1] is not None else np.zeros(ha, bool)
    mask_b, mask_a = mask_b & ~chart_b, mask_a & ~chart_a
    roi = None if roi is None else reduce_mask(roi, hb)
    regions = None if regions is None else {k: reduce_mask(v, hb) for k, v in regions.items()}
    after_roi = None if after_roi is None else reduce_mask(after_roi, ha)
    after_regions = None if after_regions is None else {k: reduce_mask(v, ha) for k, v in after_regions.items()}

    reg = register_chain(before, after, before_mask=mask_b, after_mask=mask_a, mode=p.registration_mode,
                         params=p.registration)
    if not reg.ok:
        return measure_unaligned(before, after, mask_b, mask_a, reg=reg, params=p, calibration=cal, notes=notes,
                                 roi=roi, after_roi=after_roi, regions=regions, after_regions=after_regions,
                                 exclude_b=chart_b, exclude_a=chart_a, label=label)
    hw = mask_b.shape
    valid = warp_image(np.ones(after.shape[:2], np.uint8), reg, hw, interpolation=cv2.INTER_NEAREST).astype(bool)
    mask_a_w = warp_image(mask_a, reg, hw)
    after_w = warp_image(after, reg, hw)

    if cal["before"] == "chart":
        gain, light = None, {"method": "chart", "gain": [1.0, 1.0, 1.0], "reference_pixels": 0, "spread": None}
    else:
        gain, light = _lighting(before, after, after_w, mask_b, mask_a_w, valid, roi, chart_b, p.lighting, notes)
    if gain is not None:
        after = _apply_gain(after, gain, precise=True)  # measured at 16 bits (_apply_gain)
        after_w = _apply_gain(after_w, gain)

    # one chromophore branch for both photos (same skin): an exposure or lighting change must
    # not swap the twin solution of brown/dark skin between sessions (indices.choose_shared_branch)
    branch = choose_shared_branch([(before, mask_b), (after, mask_a)], params=p.indices)
    ip = replace(p.indices, branch=branch)
    maps_b = compute_maps(before, mask_b, params=ip, spot_map=True)
    maps_a = compute_maps(after, mask_a, params=ip, spot_map=True)
    warped = {name: warp_map(maps_a[name], reg, hw) for name in maps_a}
    del maps_a
    common = mask_b & np.isfinite(warped["hemoglobin"]) & np.isfinite(maps_b["hemoglobin"])
    joint = common & roi if roi is not None else common
    n_joint = int(np.count_nonzero(joint))
    if n_joint < p.min_joint_pixels:
        raise SkinImgError(f"too little common skin: {n_joint} joint skin pixels < {p.min_joint_pixels}", label)
    tile = max(p.min_tile_px, int(round(p.tile_frac * min(hw))))
    metrics, counts, n_tiles = _joint_metrics(maps_b, warped, joint, tile, p)
    n_b = int(np.count_nonzero(mask_b if roi is None else mask_b & roi))
    doc = {
        "registration": _photo_registration(reg.to_dict(), full_b, hb, full_a, ha),
        "calibration": cal,
        "lighting": light,
        "chromophore_branch": branch,
        "joint_mask": {"pixels": n_joint, "fraction_of_before_skin": n_joint / n_b if n_b else None,
                       "roi": roi is not None, "common_skin_pixels": int(np.count_nonzero(common)),
                       "rule": ALIGNED_RULE},
        "metrics": metrics,
        "counts": counts,
        "statistics": {
            "ci95": "percentile block bootstrap over square spatial tiles (paired)",
            "tile_px": tile, "n_tiles": n_tiles, "n_boot": p.n_boot, "seed": p.seed,
            "effect_size": "Cohen's d: delta / sqrt((sd_before^2 + sd_after^2) / 2), pixel SDs over the joint mask",
            "delta_pct": "100 * delta / |before|",
        },
        "warnings": notes + list(reg.notes),
    }
    region_joints = {}
    if regions is not None:
        doc["regions"] = {}
        for name, region in regions.items():
            rj = common & region
            n_r, n_rb = int(np.count_nonzero(rj)), int(np.count_nonzero(mask_b & region))
            entry = {"pixels": int(np.count_nonzero(region)),
                     "joint_mask": {"pixels": n_r, "fraction_of_before_skin": n_r / n_rb if n_rb else None}}
            if n_r < p.min_joint_pixels:
                entry["error"] = (f"too little common skin in region '{name}': {n_r} joint skin pixels < "
                                  f"{p.min_joint_pixels}")
            else:
                entry["metrics"], entry["counts"], _ = _joint_metrics(maps_b, warped, rj, tile, p)
                region_joints[name] = rj
            doc["regions"][name] = entry
    if p.model_range:
        reads = member_reads(before, after, mask_b, mask_a, p.indices, warp=lambda m: warp_map(m, reg, hw))
        add_model_range(reads, metrics, joint)
        for name, rj in region_joints.items():
            add_model_range(reads, doc["regions"][name]["metrics"], rj)
        doc["model_range"] = model_range_record(reads)
    pics = {"before": before, "after_registered": after_w, "joint": joint,
            "delta_hemoglobin": np.where(joint, warped["hemoglobin"] - maps_b["hemoglobin"], np.nan).astype(np.float32),
            "delta_melanin": np.where(joint, warped["melanin"] - maps_b["melanin"], np.nan).astype(np.float32)}
    if regions is not None:
        pics["regions"] = region_joints
    return doc, pics


def _joint_metrics(maps_b: dict, warped: dict, joint: np.ndarray, tile: int, p: CompareParams):
    """(metrics, counts, number of tiles) of the registered maps over the ``joint`` mask (steps 6-7)."""
    hw = joint.shape
    tiles = _tile_ids(joint, tile)
    metrics: dict = {}
    for name in INDEX_NAMES:
        metrics[name] = pair_statistics(maps_b[name][joint], warped[name][joint], tiles, n_boot=p.n_boot, seed=p.seed)
    thr = np.float32(p.indices.red_threshold)
    metrics["red_area_fraction"] = pair_statistics((maps_b["hemoglobin"][joint] > thr).astype(np.float32),
                                                   (warped["hemoglobin"][joint] > thr).astype(np.float32), tiles,
                                                   n_boot=p.n_boot, seed=p.seed)
    # the field analyze finds spots on (shading-free on the light sheet): a shading change between the photos
    # must not make or unmake spots; one threshold for both (the larger one): nor must a change of noise
    (spots_b, spots_a), _ = shared_spot_threshold([maps_b["spot_melanin"], warped["spot_melanin"]], [joint, joint],
                                                  params=p.indices)
    sp_b = _spot_pixels(spots_b, hw)[joint].astype(np.float32)
    sp_a = _spot_pixels(spots_a, hw)[joint].astype(np.float32)
    metrics["brown_spot_area_fraction"] = pair_statistics(sp_b, sp_a, tiles, n_boot=p.n_boot, seed=p.seed)
    counts = {"brown_spot_count": {"before": int(spots_b.count), "after": int(spots_a.count)}}
    return {name: metrics[name] for name in METRICS}, counts, int(len(np.unique(tiles)))


def _spot_pixels(spots, shape) -> np.ndarray:
    lab = spots.labels > 0
    if lab.shape != tuple(shape):
        lab = cv2.resize(lab.view(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST).astype(bool)
    return lab


def _photo_registration(rec: dict, full_b, hb, full_a, ha) -> dict:
    """The registration record with its ``homography`` (found between the working copies) as one between the
    photos' own pixels, pixel centres onto pixel centres, so that an ROI drawn on BEFORE maps onto AFTER
    (``skinimg track --propagate-roi``); ``residual_px`` stays in pixels of the working copy."""
    if rec.get("homography") is None or (tuple(full_b) == tuple(hb) and tuple(full_a) == tuple(ha)):
        return rec

    def to_work(full, work):  # photo pixel -> working-copy pixel
        sx, sy = work[1] / full[1], work[0] / full[0]
        return np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])

    h = np.linalg.inv(to_work(full_a, ha)) @ np.asarray(rec["homography"], dtype=np.float64) @ to_work(full_b, hb)
    return dict(rec, homography=[[float(v) for v in row] for row in h / h[2, 2]])


def compare_arrays(before: np.ndarray, after: np.ndarray, *, before_mask: np.ndarray | None = None,
                   after_mask: np.ndarray | None = None, roi: np.ndarray | None = None,
                   params: CompareParams | None = None, label: str | None = None,
                   regions: dict[str, np.ndarray] | None = None, after_roi: np.ndarray | None = None,
                   after_regions: dict[str, np.ndarray] | None = None) -> tuple[dict, dict]:
    """:func:`measure_pair` plus ``mdc`` and ``verdict`` per metric (see the module docstring).

    Returns ``(doc, pictures)``; ``doc["metrics"][name]`` has ``before``, ``after``,
    ``delta``, ``delta_pct``, ``ci95``, ``effect_size``, ``mdc``, ``verdict``, ``direction``;
    with ``regions``, so has ``doc["regions"][region]["metrics"][name]``.  The MDC of a metric measured on
    part of the common skin (``roi``, a region) is the whole skin's divided by the square root of that part's
    share (``mdc_source.area_scale``, see :mod:`skinimg.session`, step 8); without pixel alignment that share is
    the smaller of the two photos' (``joint_mask.area_fraction``) and the MDCs are those of unaligned retakes.
    """
    p = params or CompareParams()
    load_mdc(p.mdc_path)  # a missing table fails before any work
    doc, pics = measure_pair(before, after, before_mask=before_mask, after_mask=after_mask, roi=roi, params=p,
                             label=label, regions=regions, after_roi=after_roi, after_regions=after_regions)
    common = doc["joint_mask"]["common_skin_pixels"]

    def share(jm: dict) -> float:  # the part of the skin measured: aligned, of the common skin; unaligned, recorded
        return jm["area_fraction"] if "area_fraction" in jm else jm["pixels"] / common

    for entry in (doc.get("regions") or {}).values():
        if "metrics" in entry:
            entry["mdc_source"] = _add_verdicts({"metrics": entry["metrics"], "lighting": doc["lighting"],
                                                 "registration": doc["registration"]}, p,
                                                share(entry["joint_mask"]))["mdc_source"]
    return _add_verdicts(doc, p, share(doc["joint_mask"])), pics


# ----------------------------------------------------------------------------- pictures


def _diverging_lut() -> np.ndarray:
    """Blue - white - red colour map as an OpenCV user LUT (256 x 1 x 3, BGR)."""
    t = np.linspace(-1.0, 1.0, 256)
    r = np.where(t < 0, 1.0 + t * 0.85, 1.0)
    g = 1.0 - np.abs(t) * 0.85
    b = np.where(t > 0, 1.0 - t * 0.85, 1.0)
    lut = np.stack([b, g, r], axis=1)
    return np.clip(lut * 255.0 + 0.5, 0, 255).astype(np.uint8).reshape(256, 1, 3)


def _fit(img: np.ndarray, max_side: int, interp=cv2.INTER_AREA) -> np.ndarray:
    h, w = img.shape[:2]
    s = min(1.0, max_side / float(max(h, w)))
    if s < 1.0:
        img = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=interp)
    return img


def _smooth_in(values: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
    v = np.where(mask, np.nan_to_num(values, nan=0.0), 0.0).astype(np.float32)
    m = mask.astype(np.float32)
    num = cv2.GaussianBlur(v, (0, 0), sigma)
    den = cv2.GaussianBlur(m, (0, 0), sigma)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mask & (den > 1e-3), num / np.maximum(den, 1e-6), np.nan).astype(np.float32)


def _side_by_side(pics: dict, max_side: int) -> np.ndarray:
    """BEFORE and AFTER, each in its own frame (AFTER scaled to BEFORE's height), each outlined in green with its own
    measured skin and each named region's skin in its colour."""
    out = []
    regions = sorted(pics.get("regions", {}).items())
    for k, (rgb, skin) in enumerate(((pics["before"], pics["skin_before"]), (pics["after"], pics["skin_after"]))):
        img = _fit(to_uint8(rgb), max_side).copy()
        th = max(1, int(round(min(img.shape[:2]) / 300)))
        outlines = [(skin, (40, 220, 90))] + [(pair[k], REGION_COLOURS[i % len(REGION_COLOURS)])
                                              for i, (_, pair) in enumerate(regions)]
        for mask, colour in outlines:
            m = cv2.resize(mask.view(np.uint8), (img.shape[1], img.shape[0]), interpolation=cv2.INTER_NEAREST)
            contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(img, contours, -1, colour, th)
        out.append(img)
    b, a = out
    if a.shape[0] != b.shape[0]:
        a = cv2.resize(a, (max(1, round(a.shape[1] * b.shape[0] / a.shape[0])), b.shape[0]), interpolation=cv2.INTER_AREA)
    gap = np.full((b.shape[0], max(4, b.shape[1] // 100), 3), 255, np.uint8)
    return np.ascontiguousarray(np.concatenate([b, gap, a], axis=1))


def render_pictures(pics: dict, *, max_side: int = 1024) -> dict[str, np.ndarray]:
    """The PNG pictures of a comparison: ``pair.png`` and the delta maps (RGB uint8 arrays).

    ``pair.png``: BEFORE and the registered, normalised AFTER side by side, joint skin
    outlined in green and each named region's joint skin in its colour (:data:`skinimg.io.REGION_COLOURS`, by
    name order).
    ``delta_hemoglobin.png`` / ``delta_melanin.png``: ``after - before`` over BEFORE (blue = decrease, red =
    increase, symmetric scale at the 98th percentile of ``|delta|``), smoothed inside the joint mask by a Gaussian of 1 % of the shorter side
    (display only; statistics use the unsmoothed maps).  A pair compared without pixel alignment has ``pair.png``
    only: each photo in its own frame, outlined with its own measured skin (and regions).
    """
    if "after_registered" not in pics:  # not pixel-aligned: no pixel-wise change to draw
        return {"pair.png": _side_by_side(pics, max_side)}
    b = _fit(to_uint8(pics["before"]), max_side)
    a = _fit(to_uint8(pics["after_registered"]), max_side)
    th = max(1, int(round(min(b.shape[:2]) / 300)))
    b, a = b.copy(), a.copy()
    outlines = [(pics["joint"], (40, 220, 90))]
    outlines += [(m, REGION_COLOURS[i % len(REGION_COLOURS)])  # colours by name order, as in the report
                 for i, (_, m) in enumerate(sorted(pics.get("regions", {}).items()))]
    for mask, colour in outlines:
        m = _fit(mask.view(np.uint8) * 255, max_side, cv2.INTER_NEAREST) > 0
        contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        for img in (b, a):
            cv2.drawContours(img, contours, -1, colour, th)
    gap = np.full((b.shape[0], max(4, b.shape[1] // 100), 3), 255, np.uint8)
    out = {"pair.png": np.ascontiguousarray(np.concatenate([b, gap, a], axis=1))}
    sigma = max(1.0, 0.01 * min(pics["joint"].shape))
    lut = _diverging_lut()
    for key, title in (("delta_hemoglobin", "hemoglobin change"), ("delta_melanin", "melanin change")):
        d = _smooth_in(pics[key], pics["joint"], sigma)
        fin = np.abs(d[np.isfinite(d)])
        v = float(np.percentile(fin, 98)) if fin.size else 1.0
        v = v if v > 0 else 1.0
        out[f"{key}.png"] = render_heatmap(pics["before"], d, vmin=-v, vmax=v, title=title, colormap=lut,
                                           max_side=max_side)
    return out

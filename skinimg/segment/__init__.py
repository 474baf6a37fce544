"""Skin segmentation: a colour model (lookup table) plus spatial clean-up.

Two per-pixel colour classifiers are available:

``model`` (default)
    A Bayesian colour histogram (Jones and Rehg 2002, *Statistical color models with
    application to skin detection*, IJCV 46:81-96, DOI 10.1023/A:1013200319198).  Skin
    and non-skin colour histograms over quantised sRGB (``2**bits`` levels per
    channel, default 64**3 bins) are counted on labelled pixels, smoothed with a
    Gaussian of ``hist_sigma`` bins, and turned into the log-likelihood ratio
    ``LLR(c) = log((H_s(c) + e_s) / (H_n(c) + e_n))`` with equal class priors, so
    ``P(skin | c) = 1 / (1 + exp(-LLR(c)))``.  ``e_n > e_s`` makes colours never
    seen in training lean to non-skin.  The table is stored as uint8-quantised
    log-odds in ``models/skin_lut.npz`` (provenance in ``models/skin_lut.json``);
    inference is one indexed gather per pixel.  Training data: the UCI Skin
    Segmentation pixels (Bhatt and Dhall 2009, DOI 10.24432/C5T30C, CC BY 4.0) and
    pixels of ``skinimg.phantom`` phantoms spanning melanin 0.003-0.45 (very light to
    very dark skin), several illuminants and exposures, with hair, lips, eyes,
    clothing, shadows and wood/beige/cloth/dark backgrounds as non-skin.
    :func:`skinimg.train.train_segmenter` rebuilds it (fixed seeds: the same inputs give the same bytes).

``rules``
    The explicit YCrCb box of Chai and Ngan (1999), *Face segmentation using
    skin-color map in videophone applications*, IEEE TCSVT 9(4):551-564,
    DOI 10.1109/76.767122: skin when ``133 <= Cr <= 173`` and ``77 <= Cb <= 127``
    (ITU-R BT.601 YCrCb of 8-bit sRGB, offsets 128).  A baseline for comparison.

Spatial clean-up (parameters in :class:`SegmentParams`; the rules baseline gets steps
1-5, 7's specular/dark veto and 8, the model all of them), on a copy
downscaled to at most ``work_pixels`` pixels (block means of k x k pixels, ``k`` the smallest
of 1, 2, 3, 4, 6, 8, 12, 16 ... that fits: made of 2 x 2 steps, the fastest); the
mask and probability are resized back (bilinear) to the photo's size at the end, so
the cost hardly grows with the megapixels:

1. ``p``: per-pixel P(skin | colour) from the table (rules: 0 or 1).
2. ``ps``: ``p`` smoothed with a Gaussian of ``smooth_sigma`` pixels.
3. Hysteresis threshold (Canny 1986): pixels with ``ps > high`` seed regions that
   grow over 4-connected pixels with ``ps > low`` (:func:`hysteresis_threshold`, the same
   result as ``skimage.filters.apply_hysteresis_threshold``, faster).
4. Morphological opening (``open_radius``) then closing (``close_radius``), elliptic
   structuring elements.
5. Connected components (8-connected) smaller than ``min_component`` x image area
   are removed; holes (background components not touching the border) smaller
   than ``max_hole`` x image area are filled.
6. Per-image colour refinement: colour histograms (``2**refine_bits`` levels per
   channel, smoothed by ``refine_sigma`` bins) of this photo's confident skin (inside
   the region, ``ps >= high``, eroded by ``refine_margin``) and of its surroundings
   (outside the region dilated by ``refine_margin``) give a per-image log-likelihood
   ratio, clipped to +-``refine_cap`` and added with weight ``refine_weight`` to the
   pixel's global log-odds (``p`` smoothed by ``pixel_sigma``): a self-training step
   in the spirit of GrabCut's per-image colour models (Rother et al. 2004,
   DOI 10.1145/1015706.1015720), without the graph cut.
7. Pixel veto inside the region: combined probability below ``pixel_min``; thin
   dark or light lines (hair strands) found by a grey-level black-hat / top-hat
   of radius ``strand_radius`` with relative contrast ``strand_contrast`` (the
   DullRazor idea, Lee et al. 1997, DOI 10.1016/S0010-4825(97)00020-6) whose colour
   is more frequent around the skin than on it (per-image log-likelihood ratio of
   step 6 below ``strand_llr``: hair, not pores or wrinkles); pixels much redder than the photo's own
   skin (lips: robust z-score of ``log(R/G)`` above ``redness_z``, skipped when it
   would remove more than 20 % of the region); specular
   highlights (every channel >= ``specular_level``) and very dark pixels (every
   channel <= ``dark_level``), both on the 8-bit scale.
   With a second stage in the model (the default model has two), it replaces the probability, strand
   and lip vetoes: by default a perceptron over colour, texture and context features of every region
   pixel (:data:`FEATURE_NAMES`); with ``stage2_model="net"`` a small U-Net (:mod:`skinimg.segment.unet`;
   Ronneberger, Fischer and Brox 2015, DOI 10.1007/978-3-319-24574-4_28) that sees the photo, the colour
   log-odds and the region on the region's bounding box and vetoes the region pixels it gives log-odds
   below ``logit(stage2_threshold)``; with ``stage2_model="both"`` the mean of the two's log-odds (a
   two-member ensemble; Dietterich 2000, *Ensemble methods in machine learning*, MCS 2000,
   DOI 10.1007/3-540-45014-9_1).  Either runs on the working image when that has at most
   ``stage2_pixels`` pixels, otherwise on a copy downscaled by the smallest integer factor that
   fits; its log-odds then come back by bilinear interpolation sharpened with a guided filter
   (He, Sun and Tang 2013, *Guided image filtering*, IEEE TPAMI 35(6):1397-1409,
   DOI 10.1109/TPAMI.2012.213) whose guide is the working image's grey level, so the outline
   follows the photo's edges.
8. Optional region of interest (``roi``): everything outside it is removed.

A photo without any skin pixel left gets ``status="no_skin"`` (not an exception).

Modules: ``params`` (:class:`SegmentParams`, :class:`SegmentResult`, the choice lists),
``model`` (the colour table and its loading, the YCrCb rule), ``filters`` (steps 2-5 and
resampling), ``features`` (per-image refinement, vetoes, second-stage features), ``stage2`` and
``unet`` (the second stages), ``skin`` (:func:`segment_skin`), ``metrics`` (mask agreement).
Segmenting files is :func:`skinimg.batch.segment_paths`; evaluating on labelled folders
:func:`skinimg.batch.evaluate_folders`; training :mod:`skinimg.train`.
"""

from .features import FEATURE_NAMES
from .filters import guided_filter, hysteresis_threshold
from .metrics import (TONE_GROUPS, evaluate_masks, metrics_from_counts, pooled_tone_metrics, tone_group,
                      true_skin_tone)
from .model import (DEFAULT_MODEL_PATH, LLR_RANGE, MODEL_FILE, STAGE2_ARRAYS, SkinModel, clear_model_cache, load_model,
                    require_both_stages, rules_mask, table_probability)
from .params import (AGREEMENT_MIN, METHODS, SECOND_STAGES, SegmentParams, SegmentResult, check_method,
                     check_second_stage)
from .skin import candidate_region, second_stage_inputs, segment_skin

__all__ = [
    "METHODS",
    "SECOND_STAGES",
    "AGREEMENT_MIN",
    "DEFAULT_MODEL_PATH",
    "FEATURE_NAMES",
    "STAGE2_ARRAYS",
    "LLR_RANGE",
    "MODEL_FILE",
    "SegmentParams",
    "SegmentResult",
    "SkinModel",
    "segment_skin",
    "candidate_region",
    "second_stage_inputs",
    "rules_mask",
    "hysteresis_threshold",
    "guided_filter",
    "load_model",
    "clear_model_cache",
    "table_probability",
    "require_both_stages",
    "check_method",
    "check_second_stage",
    "evaluate_masks",
    "metrics_from_counts",
    "true_skin_tone",
    "pooled_tone_metrics",
    "tone_group",
    "TONE_GROUPS",
]

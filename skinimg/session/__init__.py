"""Sessions: before/after comparison of two photographs of the same skin.

``skinimg compare BEFORE AFTER`` answers "did it change, by how much, and is that more
than photo-to-photo noise?"; ``skinimg track`` runs it over a study
(:func:`skinimg.batch.compare_files`, :func:`skinimg.batch.track`).  Everything here works
on arrays: modules ``register`` (features alignment), ``ecc`` (intensity-based alignment and its
starts), ``chain`` (the registration chain and its acceptance test), ``lighting`` (normalisation),
``stats`` (statistics, MDC tables, verdicts), ``model_range`` (the change under every optical model of the
ensemble), ``unaligned`` (region statistics without alignment),
``compare`` (:class:`CompareParams`, :func:`compare_arrays`, pictures), ``roi`` (regions carried
between photos).  Details, thresholds and measured numbers: ``docs/comparison.md``.

Pipeline of one pair (:func:`compare_arrays`)
---------------------------------------------
1. **Calibration** (``calibrate``): ``"auto"`` uses the ColorChecker correction of
   :func:`skinimg.calibrate.calibrate_image` when a chart is found in *both* photos (one
   chart only: not used, noted); ``"chart"`` requires a chart in both; ``"none"`` skips it.
2. **Skin masks**: :func:`skinimg.segment.segment_skin` on each photo (``segment_method``),
   chart area removed (:func:`skinimg.calibrate.chart_mask`).
3. **Registration** of AFTER onto BEFORE by the chain of :mod:`skinimg.session.chain`
   (``registration_mode``, ``--registration auto|features|ecc|none``): ORB + RANSAC features
   (:mod:`skinimg.session.register`); when they fail, ECC from several starts
   (:mod:`skinimg.session.ecc`), each candidate checked by an acceptance test meant to reject a wrong site;
   when nothing passes, **no pixel alignment**: the pair is compared by region statistics of each
   photo's own skin (:mod:`skinimg.session.unaligned`; ``registration.ok`` False, method
   ``"none (region statistics)"``, a warning, verdicts against the MDCs of unaligned retakes).
   ``registration.method`` names the step that aligned the pair; pixels are paired only through an
   accepted alignment (which can still be off: ``docs/comparison.md``).
4. **Lighting normalisation** (``lighting="auto"``), in linear RGB, when no chart
   correction was applied to both photos: a per-channel gain ``g_c`` multiplies AFTER's
   linear RGB so that a *reference region that did not change* matches BEFORE.
   ``g_c = sum B_c / sum A_c`` over the reference pixels of the registered pair (pixels with
   a 7 x 7 local mean outside 0.1-0.9 linear in either photo excluded, then those whose log ratio
   is more than 3 robust SDs from the median).  When the three gains agree within 4 %
   (:data:`ACHROMATIC_TOLERANCE`) their geometric mean is used for all channels: such
   small differences are estimation noise (JPEG chroma subsampling of a coloured
   backdrop), and a false colour cast would bias the chromaticity-based indices; a
   larger difference is a real change of white balance and is corrected per channel.
   A channel without 2000 usable reference pixels (red of a blue backdrop) gets the
   achromatic gain of the others.
   Reference, first usable of:

   * ``skin_outside_roi``: skin of both photos outside the ROI (when one ROI is given; named
     regions are measured on the whole skin's normalisation, so adding them changes no
     whole-skin number);
   * ``background``: pixels that are skin in neither photo, more than 2 % of the shorter
     side away from skin (the static scene: backdrop, clothing, chart frame).

   A reference is usable with at least 2000 pixels and a spread (1.4826 x MAD of the log
   ratio, every channel) below 0.08; otherwise no gain is applied, a warning says so and
   the verdict of the lighting-dependent metrics (:data:`LIGHTING_DEPENDENT`) is
   ``unknown`` (a dark backdrop, for instance, gives no usable reference).
   The whole skin is deliberately **not** the reference: a per-channel gain on the skin
   itself would cancel the very change being measured (a global fall in blood makes
   the skin less red; matching the skin's mean colour would undo it).
   Indices that are exposure-invariant by construction need no normalisation:
   ``erythema_index`` (log ratio R/G, Dawson 1980) and ``hemoglobin`` (optical-density
   chromaticity, Tsumura 1999) are unchanged by any common gain (shown in
   ``tests/test_compare.py``); ``melanin``, ``melanin_index``, ``l_star``, ``a_star``,
   ``b_star`` and ``ita_deg`` depend on exposure and rely on this step.
5. **Joint mask**: aligned pairs: BEFORE pixels that are skin in BEFORE, whose registered AFTER
   position and its bilinear neighbours are skin in AFTER (the intersection of the warped masks),
   inside the ROI when given.  Named regions (``regions=``) are measured on the same registration
   and maps, each on the joint mask inside it, beside the whole common skin; module ``roi`` carries
   a region drawn on one photo onto another through their homography (:func:`propagate_regions`).
   Unaligned pairs: each photo's own skin, inside its own ROI (or each named region) when given
   (``joint_mask.rule`` says which).
6. **Indices**: :func:`skinimg.indices.compute_maps` on each photo in its own frame (no
   resampling of colours); AFTER's maps are resampled bilinearly into BEFORE's frame.
   Both photos use one chromophore branch (:func:`skinimg.indices.choose_shared_branch`
   on their pooled skin colours, reported as ``chromophore_branch``): on brown and dark
   skin two solutions share a chromaticity, and choosing per photo lets an exposure
   change swap them between sessions.  :func:`track` keeps the branch of a series' first
   compared pair for all its other pairs.
7. **Statistics** per metric over the joint mask (:func:`pair_statistics`): ``before`` and
   ``after`` means, ``delta = after - before``, ``delta_pct = 100 delta / |before|``,
   ``ci95``: 95 % percentile interval of ``delta`` by a **block bootstrap over square
   spatial tiles** (pixels are spatially correlated, tiles roughly independent; Kunsch
   1989): tile side ``tile_frac`` (5 %) of BEFORE's shorter side, at least 16 px (24 px on a
   480 x 640 photo, 150 px on 12 MP); ``n_boot`` = 2000 resamples of the tiles with
   replacement, both photos' sums taken from the same tiles (paired), fixed seed 0.
   ``effect_size``: Cohen's d, ``delta / sqrt((sd_before^2 + sd_after^2) / 2)`` with the
   pixel standard deviations over the joint mask (Cohen 1988).
   Area measures: ``red_area_fraction`` (joint skin with ``hemoglobin`` above
   ``IndexParams.red_threshold``) and ``brown_spot_area_fraction``
   (:func:`skinimg.indices.detect_brown_spots` on each photo's ``spot_melanin`` map, the field ``analyze``
   finds spots on: shading-free on the light sheet; joint mask; one threshold for both photos, the larger of
   their own, :func:`skinimg.indices.shared_spot_threshold`).  The
   spot *count* is reported under ``counts`` without a verdict: on unchanged retakes it
   varies by up to 40 % (spots split and merge at the threshold) while the spot area does not.
   **Model range** (``model_range=True``): ``hemoglobin`` and ``melanin`` are also read by every
   fit member of the ensemble of optical skin models (:func:`skinimg.indices.member_maps`, one
   twin branch per member shared by both photos); ``delta_pct_by_model`` holds each member's
   relative change over the same joint mask (and over each named region's, for the region's metrics) and
   ``delta_pct_model_range`` their [min, max]
   (:func:`model_span`): the change the photos show under the plausible models of how light
   travels in skin.  A member takes part only where it can read the skin: its chromaticity map
   well conditioned there (``conditioning`` >= :data:`skinimg.indices.CONDITIONING_MIN` of its value
   at typical light skin; next to its fold a member reads a change of any size) and its level at
   least a quarter of the central's (else its zero lies elsewhere).
8. **Verdict** per metric against the minimal detectable change ``mdc`` (index units):
   ``no_change`` when ``|delta| <= mdc`` or the CI contains 0, otherwise ``worsened`` /
   ``improved`` by the metric's direction (:data:`DIRECTIONS`).  Default MDCs: see
   ``models/mdc.json`` (derived by :mod:`skinimg.train.mdc` from phantom retakes,
   ``MDC = 1.96 sqrt(2) SEM``, Weir 2005); brown and dark skin (the darker photo's mean ITA
   <= -10 / <= -30 degrees) use the larger MDCs of the table's ``mdc_by_tone`` bands
   (:func:`load_mdc_bands`; ``mdc_source.tone_band`` in the result); override with
   ``mdc={"hemoglobin": 0.002}``.  These MDCs are of the whole skin; a metric measured on a
   share ``f`` of the common skin (an ROI, a named region) has every MDC multiplied by
   ``1 / sqrt(f)`` (``mdc_source.area_scale``): its mean averages ``f`` times fewer tiles, so
   its retake error is about ``1 / sqrt(f)`` times larger (on the split-face phantom series of
   ``benchmarks/roi_split_face.py`` the retake spread of regions of 20 % of the skin was 2.2
   times that of the whole skin; ``1 / sqrt(0.2)`` = 2.24).
   ``hemoglobin`` adds a cross-talk allowance, ``coefficient * |delta melanin|`` (the
   table's ``crosstalk``, measured on phantom pairs whose only true change is melanin;
   :func:`load_crosstalk`), so a pigment change is not reported as a change of redness, and
   ``melanin`` likewise ``coefficient * |delta hemoglobin|`` (pairs whose only true change is
   blood) (``crosstalk_allowance=False`` turns both off).
   With a model range the change must hold under **every** member: the delta and its CI are
   scaled to the member reading the smallest relative change (``delta_model_min``), and the
   verdict is ``no_change`` when the members disagree on the sign.

Sign convention (:data:`DIRECTIONS`): for ``hemoglobin``, ``erythema_index``,
``a_star``, ``red_area_fraction`` (redness) and ``melanin``, ``melanin_index``,
``b_star``, ``brown_spot_area_fraction`` (pigmentation; b* rises
with tanning, Chardon 1991) a **decrease is improved**; for ``l_star`` and ``ita_deg`` an
**increase is improved** (lighter = less pigment).

References
----------
Kunsch, H. R. (1989). The jackknife and the bootstrap for general stationary observations.
Annals of Statistics 17(3), 1217-1241. https://doi.org/10.1214/aos/1176347265

Cohen, J. (1988). Statistical Power Analysis for the Behavioral Sciences, 2nd ed. Erlbaum.

Weir, J. P. (2005). Quantifying test-retest reliability using the intraclass correlation
coefficient and the SEM. Journal of Strength and Conditioning Research 19(1), 231-240.
https://doi.org/10.1519/15184.1
"""

from .chain import NO_ALIGNMENT, REGISTRATION_MODES, STARTS, acceptance, alignment_checks, dark_detail, register_chain
from .compare import LIGHTING_MODES, CompareParams, compare_arrays, measure_pair, render_pictures
from .ecc import (FallbackParams, ecc_align, init_identity, init_mask_moments, init_phase_correlation,
                  similarity_finish)
from .lighting import ACHROMATIC_TOLERANCE
from .model_range import MEMBER_LEVEL_MIN, model_span
from .register import Registration, RegistrationParams, register, to_grey8, warp_image, warp_map
from .roi import MIN_INSIDE, clip_polygon, map_points, polygon_area, propagate_regions
from .stats import (DEFAULT_MDC_PATH, DIRECTIONS, LIGHTING_DEPENDENT, MDC_FORMAT, METRICS, load_crosstalk, load_mdc,
                    load_mdc_bands, pair_statistics, region_statistics, verdict)
from .unaligned import UNALIGNED_RULE, measure_unaligned

__all__ = [
    "METRICS",
    "DIRECTIONS",
    "LIGHTING_DEPENDENT",
    "ACHROMATIC_TOLERANCE",
    "DEFAULT_MDC_PATH",
    "MDC_FORMAT",
    "LIGHTING_MODES",
    "CompareParams",
    "load_mdc",
    "load_mdc_bands",
    "load_crosstalk",
    "pair_statistics",
    "region_statistics",
    "verdict",
    "measure_pair",
    "compare_arrays",
    "render_pictures",
    "model_span",
    "MEMBER_LEVEL_MIN",
    "RegistrationParams",
    "Registration",
    "register",
    "warp_image",
    "warp_map",
    "to_grey8",
    "MIN_INSIDE",
    "map_points",
    "clip_polygon",
    "polygon_area",
    "propagate_regions",
    "REGISTRATION_MODES",
    "NO_ALIGNMENT",
    "STARTS",
    "UNALIGNED_RULE",
    "FallbackParams",
    "similarity_finish",
    "register_chain",
    "alignment_checks",
    "acceptance",
    "dark_detail",
    "ecc_align",
    "init_identity",
    "init_mask_moments",
    "init_phase_correlation",
    "measure_unaligned",
]

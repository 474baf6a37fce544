"""Redness and pigmentation indices: per-pixel maps and per-image statistics.

Every map is computed on the skin pixels only (a boolean mask), in ``float32``,
and is ``NaN`` off skin.  All inputs are **encoded sRGB, channel order R, G, B**;
every formula works on **linearised** RGB (IEC 61966-2-1 decoding, through a
lookup table for 8- and 16-bit input).

Per-pixel indices (:data:`INDEX_NAMES`)
---------------------------------------

``erythema_index``  ``EI = 100 * log10(R / G)``  (= 100 * (OD_G - OD_R))
    Dawson et al. 1980 [Dawson]_ and Diffey et al. 1984 [Diffey]_ defined the
    erythema index from narrow-band reflectance as ``100 * log10(R_red / R_green)``:
    the green band (~560 nm) is strongly absorbed by haemoglobin, the red band
    (~650-660 nm) almost not, so their log ratio rises with blood content.  The
    camera adaptation (Takiwaki 1998 [Takiwaki]_; Yamamoto et al. 2008 [Yamamoto]_)
    takes the camera's **R channel for the ~650 nm band and G for the ~560 nm
    band**.  Scale: dimensionless, x100 (typical skin 0-40).  Invariant to a global
    exposure gain (the gain cancels in the ratio).  Known weakness: melanin absorbs
    green more than red, so EI also rises with pigmentation.
``melanin_index``   ``MI = 100 * log10(1 / R)``  (= 100 * OD_R)
    The Dawson/Diffey melanin index on the red band (where haemoglobin absorbs
    little), camera R channel.  Scale: dimensionless, x100 (0 = white, 400 = black
    at the 1e-4 reflectance floor).  Not exposure invariant (uncalibrated photos
    report apparent reflectance).
``l_star``, ``a_star``, ``b_star``  CIELAB (D65, 2 degree observer)
    via :func:`skinimg.color.rgb_to_lab` (CIE 015:2018).
``ita_deg``  ``ITA = atan2(L* - 50, b*) * 180 / pi``  in degrees
    Individual Typology Angle (Chardon et al. 1991, DOI 10.1111/j.1467-2494.1991.tb00561.x)
    and its classes (Del Bino and Bernerd 2013, DOI 10.1111/bjd.12529): the formula, the
    classes and their references are in :mod:`skinimg.color.ita` (re-exported here).
``hemoglobin``, ``melanin``  chromophore concentrations
    Optical-density separation after Tsumura et al. 1999 [Tsumura99]_ / 2003
    [Tsumura03]_.  ``OD = -log10(linear RGB)``; shading and exposure multiply the
    reflectance, i.e. shift OD along (1, 1, 1), so the projection of OD on the plane
    perpendicular to (1, 1, 1) (the *chromaticity*) is free of them.  Tsumura's linear
    model ``OD = o + c_mel a_mel + c_hb a_hb + s (1, 1, 1)`` is kept for the per-image
    ICA method (``chromophore_method="ica"``).  The default (``"basis"``) inverts a
    non-linear model of skin colour stored in ``models/chromophore_basis.json``: the **central
    model of an ensemble of optical skin models** (:mod:`skinimg.phantom.ensemble`: diffusion,
    Monte Carlo, Kubelka-Munk with and without a papillary plexus, modified Beer-Lambert dermis;
    four melanin spectra; varied scattering, saturation, surface reflection; each calibrated to
    the same colorimetric anchors), i.e. the mean optical density of the fit members
    (:mod:`skinimg.train.ensemble`, fitted by ``benchmarks/fit_basis.py``).  Surface reflection and
    diffuse dermal reflectance make real OD far from additive (the linear fit leaves 0.03 OD rms):

    * haemoglobin from the chromaticity alone (the model's roots, precomputed on a 256 x 256
      chromaticity grid in ``models/chromophore_tables.npz`` and interpolated per colour),
      hence independent of exposure and shading;
    * where two skins share a chromaticity (lighter skin with more blood, darker skin
      with less; for the central model from about ITA 10 degrees down, with high blood
      lighter), the pair member is chosen once per image from the brightness of its
      least-shaded pixels (:func:`choose_branch`) and shared by the photos of a comparison;
    * melanin from the brightness at that haemoglobin (mean OD matched to the model, which
      assumes a white reflector at 1), after removing the image's **shading** (the low-passed
      brightness residual at the chromaticity root above its well-lit level,
      ``IndexParams.shading_sigma``): accurate at dark tones where chromaticity barely changes
      with melanin, free of the rim of false pigment at shaded borders, but -- like the melanin
      index -- dependent on exposure;
    * clipped pixels (a channel at the maximum code) get no haemoglobin or melanin and do not
      enter their neighbours' smoothing.

    Units: ensemble volume fractions (epidermal melanosome fraction; dermal blood fraction
    scaled so that typical skin is 0.0116); on real photos *model-equivalent* fractions,
    comparable within one camera and lighting set-up (calibrate for comparisons across set-ups).
    **The magnitude of a change is model-bound**: the ensemble's members read the same colour
    change as relative changes of blood that differ by up to about 3x (how light travels in
    the dermis cannot be seen in three colour channels); the central model is in the middle,
    and ``compare`` reports every fit member's reading (``delta_pct_model_range``,
    :mod:`skinimg.indices.ensemble`).  See ``docs/indices.md``.

Noise: each skin pixel is averaged in linear light with its skin neighbours (a 7 x 7
box, the variance of a Gaussian of sigma 2, normalised to the skin mask so the
background never leaks in) before the indices (:attr:`IndexParams.smoothing_sigma`).
All per-pixel work runs on the skin's bounding box, and for 8-bit photos once per
distinct skin colour.

Per-image statistics: see :func:`summarize`.

Modules: ``params`` (:class:`IndexParams`), ``basis`` (the calibrated chromophore basis and its
precomputed tables), ``chromophores`` (inversion, twin branch, ICA), ``ensemble`` (the fit members'
readings for the model range), ``kernels`` (per-pixel indices, smoothing),
``maps`` (:func:`compute_maps`, :func:`measure`), ``spots`` (brown spots), ``stats`` (per-image
statistics), ``heatmap`` (display), ``user`` (bring your own index: user functions measured beside the
built-ins, :class:`UserIndexRunner`; docs/agreement.md).  Fitting the basis is :mod:`skinimg.train.basis`.

References
----------
.. [Dawson] Dawson, J. B., Barker, D. J., Ellis, D. J., et al. (1980). A theoretical and
   experimental study of light absorption and scattering by in vivo skin.
   Physics in Medicine and Biology 25(4), 695-709. https://doi.org/10.1088/0031-9155/25/4/008
.. [Diffey] Diffey, B. L., Oliver, R. J. and Farr, P. M. (1984). A portable instrument for
   quantifying erythema induced by ultraviolet radiation. British Journal of
   Dermatology 111(6), 663-672.
.. [Takiwaki] Takiwaki, H. (1998). Measurement of skin color: practical application and
   theoretical considerations. Journal of Medical Investigation 44(3-4), 121-126.
.. [Yamamoto] Yamamoto, T., Takiwaki, H., Arase, S. and Ohshima, H. (2008). Derivation and
   clinical application of special imaging by means of digital cameras and Image J
   freeware for quantification of erythema and pigmentation. Skin Research and
   Technology 14(1), 26-34. https://doi.org/10.1111/j.1600-0846.2007.00256.x
.. [Tsumura99] Tsumura, N., Haneishi, H. and Miyake, Y. (1999). Independent-component
   analysis of skin color image. Journal of the Optical Society of America A 16(9),
   2169-2176. https://doi.org/10.1364/JOSAA.16.002169
.. [Tsumura03] Tsumura, N., Ojima, N., Sato, K., et al. (2003). Image-based skin color and
   texture analysis/synthesis by extracting hemoglobin and melanin information in
   the skin. ACM Transactions on Graphics 22(3), 770-779.
   https://doi.org/10.1145/882262.882344
"""

from ..color.ita import ITA_BOUNDS, ITA_CATEGORIES, ita_categories, ita_category, ita_deg
from .basis import (CHROMA_AXES, DEFAULT_BASIS_PATH, TABLES_FILE, ChromophoreBasis, ChromophoreModel, basis_digest,
                    clear_basis_cache, load_basis, load_tables)
from .chromophores import (CANDIDATE_GRID, choose_branch, compute_candidate_table, estimate_basis_ica, multistart_roots,
                           separate_chromophores)
from .ensemble import CONDITIONING_MIN, conditioning, member_maps, member_names, shared_member_branches
from .heatmap import COLORMAPS, heatmap_background, render_heatmap, robust_range
from .kernels import erythema_index, melanin_index
from .maps import choose_shared_branch, compute_maps, measure, skin_values
from .params import BRANCHES, CHROMOPHORE_METHODS, INDEX_NAMES, STATS, IndexParams, with_params
from .spots import SpotResult, detect_brown_spots, shared_spot_threshold
from .stats import summarize, summarize_values, summary_columns
from .user import (DEFAULT_TIMEOUT, ENTRY_POINT_GROUP, UserIndex, UserIndexRunner, UserIndexSpec, format_errors,
                   installed_indices, load_user_index, load_user_indices, parse_index_option, row_errors, user_columns)

__all__ = [
    "INDEX_NAMES",
    "STATS",
    "CHROMOPHORE_METHODS",
    "BRANCHES",
    "ITA_CATEGORIES",
    "ITA_BOUNDS",
    "IndexParams",
    "with_params",
    "ChromophoreBasis",
    "ChromophoreModel",
    "CHROMA_AXES",
    "DEFAULT_BASIS_PATH",
    "load_basis",
    "basis_digest",
    "load_tables",
    "clear_basis_cache",
    "TABLES_FILE",
    "CANDIDATE_GRID",
    "compute_candidate_table",
    "multistart_roots",
    "separate_chromophores",
    "choose_branch",
    "choose_shared_branch",
    "estimate_basis_ica",
    "erythema_index",
    "melanin_index",
    "ita_deg",
    "ita_category",
    "ita_categories",
    "compute_maps",
    "skin_values",
    "summarize",
    "summarize_values",
    "measure",
    "detect_brown_spots",
    "shared_spot_threshold",
    "SpotResult",
    "summary_columns",
    "member_maps",
    "conditioning",
    "CONDITIONING_MIN",
    "member_names",
    "shared_member_branches",
    "render_heatmap",
    "heatmap_background",
    "robust_range",
    "COLORMAPS",
    "ENTRY_POINT_GROUP",
    "DEFAULT_TIMEOUT",
    "UserIndexSpec",
    "UserIndex",
    "UserIndexRunner",
    "parse_index_option",
    "installed_indices",
    "load_user_index",
    "load_user_indices",
    "user_columns",
    "format_errors",
    "row_errors",
]

"""Research benchmark of the indices against phantom ground truth and the user's references: ``skinimg bench``.

Part of :mod:`skinimg.train` (the only layer that uses the phantom generator as training or scoring
data); the library's modules never import it.  Modules: ``params`` (settings and presets),
``stats`` (correlations, cross-talk, repeatability), ``suites`` (accuracy, repeatability,
segmentation, :func:`run_bench`), ``speed`` (timings and memory), ``agreement`` (the agreement
suite: reference CSV, measuring), ``ranking`` (its leaderboard and plots), ``output`` (tables,
plots, files).  User indices (:mod:`skinimg.indices.user`) run beside the built-ins in the
accuracy, repeatability and agreement suites.

Skin phantoms (:mod:`skinimg.phantom`) know the true melanin and haemoglobin of every
pixel, so the indices of :mod:`skinimg.indices` can be scored against the truth.
Four suites, each a pure function returning a JSON-ready dict (nothing is printed):

``accuracy`` (:func:`run_accuracy`)
    A grid of phantoms varying melanin and haemoglobin independently across the full
    tone range (reference ITA from about +70 to -65 degrees), measured on the **true** skin mask.
    For every index: Spearman rank correlation and Pearson correlation of the
    per-image mean with the true per-image mean haemoglobin and melanin, and the
    cross-talk (:func:`crosstalk`).
``repeatability`` (:func:`run_repeatability`)
    Retakes of unchanged skin (same phantom seed) under exposure +-20 %, white-balance
    shifts (daylight illuminants D50/D65/D75), JPEG quality 70-95, small pose changes
    and sensor noise, each factor alone and all together; per index the within-subject
    standard deviation (SEM), the minimal detectable change
    ``MDC95 = 1.96 * sqrt(2) * SEM`` and the coefficient of variation, without and with
    ColorChecker calibration (:func:`skinimg.calibrate.calibrate_image`, ``mode="chart"``).
``segmentation`` (:func:`run_segmentation`)
    Pixel precision, recall, F1 and IoU of :func:`skinimg.segment.segment_skin` on phantom masks
    (per tone class), on the hand-labelled astronaut photo, and optionally on a labelled real set.
``speed`` (:func:`run_speed`)
    Per-stage time of the pipeline on a 12-megapixel JPEG, images per second with 1
    and 2 worker processes, peak memory (``getrusage``), next to baselines measured in
    the same run (OpenCV JPEG decode alone, scikit-image ``rgb2lab``).
``agreement`` (:func:`run_agreement`; needs the user's photos and a reference CSV)
    Every index (built-in and user) against every reference column of the CSV (instrument
    readings, rater grades): Pearson and Spearman with BCa bootstrap intervals, calibration line,
    ICC(2,1)/ICC(3,1) after cross-validated calibration, Bland-Altman bias and limits, and with
    repeated photos SEM/MDC95/CV (:mod:`skinimg.stats`); ``leaderboard.csv``/``.md``/``.json``.

:func:`run_bench` runs the chosen suites; :func:`format_markdown` renders the tables;
:func:`write_outputs` writes ``bench.json``, ``bench.csv`` (:data:`CSV_COLUMNS`) and the
plots.  Everything is deterministic (fixed seeds) except the timings.

Metrics
-------
Spearman's rank correlation (Spearman 1904) and Pearson's product-moment correlation
are computed on per-image means (one value per phantom).

Cross-talk of an index X whose target chromophore is T (haemoglobin for
``erythema_index``, ``a_star`` and ``hemoglobin``; melanin for the others) and whose
other chromophore is O::

    crosstalk = (dX/dO * span(O)) / (dX/dT * span(T))

``dX/dT`` is the least-squares slope of X against the true mean of T at a fixed grid level
of O (model ``X = a_level(O) + b T + c O``: one intercept per level of O, so the slope
comes from the variation within levels, and the small variation of the true O within a
level is adjusted for); ``dX/dO`` likewise with the roles swapped; ``span`` is the range
of the grid's nominal levels.  It is the change of X over the grid's full range
of the *other* chromophore relative to its change over the full range of its own:
0 = no cross-talk, 1 = the other chromophore moves X as much as the target does;
the sign says whether they move X in the same direction.

Repeatability follows Weir (2005): with ``k_i`` retakes of subject ``i`` (sample
standard deviation ``s_i``), ``SEM = sqrt(sum (k_i - 1) s_i^2 / sum (k_i - 1))`` (the
square root of the within-subject mean square of a one-way ANOVA), and the minimal
detectable change at 95 % confidence ``MDC95 = 1.96 * sqrt(2) * SEM``: a change between
two photos smaller than MDC95 cannot be told from retake variation.  The coefficient of
variation is the root mean square of the subjects' ``s_i / |mean_i|`` (Glüer et al.
1995), in %; it is meaningful for ratio-scale indices only (not for ``ita_deg``,
``a_star``, ``b_star`` near 0).

Segmentation: per image, with TP, FP, FN the pixel counts against the true mask,
precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = 2 TP / (2 TP + FP + FN),
IoU (Jaccard index) = TP / (TP + FP + FN) (:func:`skinimg.segment.evaluate_masks`: an empty
prediction of real skin scores 0, never NaN); the tables show means over images.

References
----------
.. [Weir2005] Weir, J. P. (2005). Quantifying test-retest reliability using the
   intraclass correlation coefficient and the SEM. Journal of Strength and
   Conditioning Research 19(1), 231-240. https://doi.org/10.1519/15184.1
.. [Gluer1995] Glüer, C. C., Blake, G., Lu, Y., Blunt, B. A., Jergas, M. and Genant, H. K.
   (1995). Accurate assessment of precision errors: how to measure the reproducibility
   of bone densitometry techniques. Osteoporosis International 5(4), 262-270.
   https://doi.org/10.1007/BF01774016
.. [Spearman1904] Spearman, C. (1904). The proof and measurement of association between
   two things. American Journal of Psychology 15(1), 72-101. https://doi.org/10.2307/1412159
.. [Jaccard1912] Jaccard, P. (1912). The distribution of the flora in the alpine zone.
   New Phytologist 11(2), 37-50. https://doi.org/10.1111/j.1469-8137.1912.tb05611.x
"""

from .agreement import Reference, measure_reference, read_reference, run_agreement
from .ranking import CRITERION, LEADERBOARD_METRICS, leaderboard, leaderboard_markdown, write_leaderboard
from .output import csv_rows, format_markdown, write_outputs, write_plots
from .params import ALL_SUITES, CSV_COLUMNS, FACTORS, SIZES, SUITES, TARGETS, UNITS, BenchParams, bench_params
from .speed import make_speed_jpeg, run_speed
from .stats import crosstalk, pearson, repeatability_stats, spearman
from .suites import machine_info, retake_specs, run_accuracy, run_bench, run_repeatability, run_segmentation

__all__ = [
    "SUITES",
    "ALL_SUITES",
    "Reference",
    "read_reference",
    "measure_reference",
    "run_agreement",
    "CRITERION",
    "LEADERBOARD_METRICS",
    "leaderboard",
    "leaderboard_markdown",
    "write_leaderboard",
    "SIZES",
    "CSV_COLUMNS",
    "TARGETS",
    "FACTORS",
    "UNITS",
    "BenchParams",
    "bench_params",
    "spearman",
    "pearson",
    "crosstalk",
    "repeatability_stats",
    "retake_specs",
    "run_accuracy",
    "run_repeatability",
    "run_segmentation",
    "run_speed",
    "run_bench",
    "machine_info",
    "csv_rows",
    "format_markdown",
    "write_outputs",
    "write_plots",
    "make_speed_jpeg",
]

"""Agreement statistics (issue 28) against published worked examples and reference implementations.

Published data and the values printed with them:

* Shrout & Fleiss (1979), Psychological Bulletin 86:420, doi:10.1037/0033-2909.86.2.420: Table 2
  (p. 423), 6 targets x 4 judges; Table 4: ICC(1,1) = .17, ICC(2,1) = .29, ICC(3,1) = .71,
  ICC(1,4) = .44, ICC(2,4) = .62, ICC(3,4) = .91.  The table as reproduced in the R packages
  SimplyAgree (vignettes/reliability_analysis.Rmd, "Shrout and Fleiss (1979), pg. 423") and
  iccbot (tests/testthat/test-icc.R, the six printed values).
* Bland & Altman (1986), Lancet 327:307, doi:10.1016/S0140-6736(86)90837-8: PEFR of 17 subjects,
  first Wright and first mini Wright reading (Table 1, as in SimplyAgree data/ba1986.csv and
  qwraps2 vignette-spinners/pefr.R).  Printed: r = 0.94 (section "Inappropriate use of
  correlation coefficient"), mean difference -2.1 l/min, SD of the differences 38.8 l/min.
  With 1.96 SD (Bland & Altman 1999, Stat Methods Med Res 8:135): limits -78.1 to 73.9 l/min
  (as the Analyse-it tutorial "Estimating the average bias and the limits of agreement" prints
  for mini - Wright: 2.1, -73.9 to 78.1).
* Weir (2005), J Strength Cond Res 19:231, doi:10.1519/15184.1: example data set A (8 subjects,
  trials A1 and A2, as in SimplyAgree tests/testthat/test-reli_stats.R "Weir dataset A");
  printed on p. 236: SEM = sqrt(MSE) = 7.6, and from ICC(3,1): SEE = 7.1, SEP = 10.2.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from skinimg import stats as A
from skinimg.stats import method_comparison as AM

SHROUT_FLEISS = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]],
                         dtype=float)
PEFR_WRIGHT1 = np.array([494, 395, 516, 434, 476, 557, 413, 442, 650, 433, 417, 656, 267, 478, 178, 423, 427],
                        dtype=float)
PEFR_MINI1 = np.array([512, 430, 520, 428, 500, 600, 364, 380, 658, 445, 432, 626, 260, 477, 259, 350, 451],
                      dtype=float)
WEIR_A1 = np.array([146, 148, 170, 90, 157, 156, 176, 205], dtype=float)
WEIR_A2 = np.array([140, 152, 152, 99, 145, 153, 167, 218], dtype=float)


def test_icc_shrout_fleiss_table():
    r = A.icc(SHROUT_FLEISS)
    printed = {"icc1": 0.17, "icc2": 0.29, "icc3": 0.71, "icc1k": 0.44, "icc2k": 0.62, "icc3k": 0.91}
    assert {k: round(r[k], 2) for k in printed} == printed
    assert (r["n"], r["k"]) == (6, 4)


def _pingouin_table(table):
    pd = pytest.importorskip("pandas")
    pg = pytest.importorskip("pingouin")
    n, k = table.shape
    df = pd.DataFrame([(i, j, table[i, j]) for i in range(n) for j in range(k)], columns=["t", "r", "s"])
    out = pg.intraclass_corr(df, targets="t", raters="r", ratings="s").set_index("Type")
    # pingouin >= 0.7 names the two-way forms ICC(A,1) / ICC(C,1); older versions ICC2 / ICC3
    alias = {"ICC(1,1)": "ICC1", "ICC(A,1)": "ICC2", "ICC(C,1)": "ICC3", "ICC(1,k)": "ICC1k", "ICC(A,k)": "ICC2k",
             "ICC(C,k)": "ICC3k"}
    return out.rename(index=alias)


@pytest.mark.filterwarnings("ignore:The inplace keyword")  # pingouin 0.7 on pandas 3
@pytest.mark.parametrize("name", ["shrout_fleiss", "weir_a", "random"])
def test_icc_matches_pingouin(name):
    rng = np.random.default_rng(7)
    table = {"shrout_fleiss": SHROUT_FLEISS, "weir_a": np.stack([WEIR_A1, WEIR_A2], axis=1),
             "random": rng.normal(0, 1, (25, 1)) + rng.normal(0, 0.6, (25, 3)) + [0.0, 0.4, -0.2]}[name]
    ours = A.icc(table)
    ref = _pingouin_table(table)
    for key, row in (("icc1", "ICC1"), ("icc2", "ICC2"), ("icc3", "ICC3"), ("icc1k", "ICC1k"), ("icc2k", "ICC2k"),
                     ("icc3k", "ICC3k")):
        assert ours[key] == pytest.approx(float(ref.loc[row, "ICC"]), abs=1e-12), key
    for key, row in (("icc1", "ICC1"), ("icc2", "ICC2"), ("icc3", "ICC3")):
        lo, hi = ref.loc[row, "CI95"] if "CI95" in ref.columns else ref.loc[row, "CI95%"]
        # pingouin prints its interval to 2 decimals
        assert (round(ours[f"{key}_lo"], 2), round(ours[f"{key}_hi"], 2)) == (pytest.approx(lo), pytest.approx(hi)), key


def test_bland_altman_pefr():
    ba = A.bland_altman(PEFR_WRIGHT1, PEFR_MINI1)
    assert round(ba["bias"], 1) == -2.1
    assert round(ba["sd"], 1) == 38.8
    assert (round(ba["lo"], 1), round(ba["hi"], 1)) == (-78.1, 73.9)
    assert ba["n"] == 17
    # the other direction (mini - Wright), as the Analyse-it tutorial prints it
    ba2 = A.bland_altman(PEFR_MINI1, PEFR_WRIGHT1)
    assert (round(ba2["bias"], 1), round(ba2["lo"], 1), round(ba2["hi"], 1)) == (2.1, -73.9, 78.1)
    # the bias interval is the one-sample t interval of the differences
    t = stats.ttest_1samp(PEFR_WRIGHT1 - PEFR_MINI1, 0.0).confidence_interval(0.95)
    assert (ba["bias_lo"], ba["bias_hi"]) == (pytest.approx(t.low, abs=1e-9), pytest.approx(t.high, abs=1e-9))
    # "For the data in fig 1, r = 0.94"
    assert round(A.correlation(PEFR_WRIGHT1, PEFR_MINI1, n_resamples=0)["r"], 2) == 0.94


def test_weir_dataset_a_sem():
    values = np.r_[WEIR_A1, WEIR_A2]
    subjects = np.r_[np.arange(8), np.arange(8)]
    sessions = np.r_[["A1"] * 8, ["A2"] * 8]
    rep = A.repeatability(values, subjects, sessions)
    assert rep["model"] == "two-way"
    assert round(rep["sem"], 1) == 7.6
    assert rep["mdc"] == pytest.approx(1.96 * math.sqrt(2.0) * rep["sem"])
    # SEE and SEP from ICC(3,1) and the SD of all scores (Weir 2005, p. 236)
    icc3 = A.icc(np.stack([WEIR_A1, WEIR_A2], axis=1))["icc3"]
    assert rep["icc"] == pytest.approx(icc3)
    sd = float(np.std(values, ddof=1))
    assert round(sd * math.sqrt(icc3 * (1 - icc3)), 1) == 7.1
    assert round(sd * math.sqrt(1 - icc3 ** 2), 1) == 10.2
    # without sessions: the pooled within-subject SD (includes the session shift of 2.75)
    one = A.repeatability(values, subjects)
    assert one["model"] == "one-way"
    assert one["sem"] == pytest.approx(math.sqrt(np.sum((WEIR_A1 - WEIR_A2) ** 2) / 2 / 8))
    assert one["sem"] < rep["sem"] + 0.5


def test_repeatability_one_way_matches_bench():
    from skinimg.train.bench import repeatability_stats

    rng = np.random.default_rng(2)
    groups = [list(10 + i + rng.normal(0, 0.3, 3 + i % 2)) for i in range(5)]
    values = np.concatenate(groups)
    subjects = np.concatenate([[i] * len(g) for i, g in enumerate(groups)])
    ours, ref = A.repeatability(values, subjects), repeatability_stats(groups)
    for key in ("sem", "mdc", "mdc_pct", "cv_pct", "mean", "n_subjects", "n_values"):
        assert ours[key] == pytest.approx(ref[key], rel=1e-12), key


def test_bootstrap_equals_scipy_paired_bootstrap():
    """Each photo its own cluster: the weighted resampling is scipy's paired bootstrap, draw for draw."""
    rng = np.random.default_rng(5)
    x = rng.normal(0, 1, 30)
    y = 0.6 * x + rng.normal(0, 0.8, 30)
    for method, fn in (("pearson", stats.pearsonr), ("spearman", stats.spearmanr)):
        ours = A.correlation(x, y, method=method, n_resamples=999, seed=11)

        def stat(a, b):
            return fn(a, b)[0]

        ref = stats.bootstrap((x, y), stat, paired=True, vectorized=False, n_resamples=999, method="BCa",
                              **AM._bootstrap_kwargs(11))
        assert ours["r"] == pytest.approx(fn(x, y)[0], abs=1e-12)
        assert ours["lo"] == pytest.approx(ref.confidence_interval.low, abs=1e-10), method
        assert ours["hi"] == pytest.approx(ref.confidence_interval.high, abs=1e-10), method
    # deterministic given the seed
    assert A.correlation(x, y, seed=3) == A.correlation(x, y, seed=3)


def test_cluster_weights_are_the_expanded_sample():
    """A resample of clusters = the rows of the drawn clusters, repeated: same r and rho."""
    rng = np.random.default_rng(9)
    x = np.round(rng.normal(0, 1, 12), 1)  # ties
    y = np.round(x + rng.normal(0, 1, 12), 1)
    w = rng.integers(0, 4, (5, 12)).astype(float)
    for b in range(5):
        rows = np.repeat(np.arange(12), w[b].astype(int))
        assert AM._weighted_corr(x, y, w[b:b + 1], "pearson")[0] == pytest.approx(stats.pearsonr(x[rows], y[rows])[0])
        assert AM._weighted_corr(x, y, w[b:b + 1], "spearman")[0] == pytest.approx(
            stats.spearmanr(x[rows], y[rows])[0])
    # clusters: repeated photos of one subject widen the interval compared with counting them as independent
    subj = np.repeat(np.arange(8), 4)
    xs = np.repeat(rng.normal(0, 1, 8), 4) + rng.normal(0, 0.05, 32)
    ys = xs + rng.normal(0, 0.7, 32)
    flat = A.correlation(xs, ys, seed=0)
    clus = A.correlation(xs, ys, groups=subj, seed=0)
    assert flat["r"] == clus["r"]
    assert (clus["hi"] - clus["lo"]) > (flat["hi"] - flat["lo"])


def test_calibrated_predictions_leave_one_out():
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 10, 15)
    y = 2.0 + 0.5 * x + rng.normal(0, 0.3, 15)
    pred = A.calibrated_predictions(x, y)
    for i in range(15):
        keep = np.arange(15) != i
        fit = stats.linregress(x[keep], y[keep])
        assert pred[i] == pytest.approx(fit.intercept + fit.slope * x[i], abs=1e-10)
    groups = np.repeat(np.arange(5), 3)
    pg = A.calibrated_predictions(x, y, groups=groups)
    keep = groups != 2
    fit = stats.linregress(x[keep], y[keep])
    assert pg[groups == 2] == pytest.approx(fit.intercept + fit.slope * x[groups == 2], abs=1e-10)
    cal = A.linear_calibration(x, y)
    full = stats.linregress(x, y)
    assert (cal["slope"], cal["intercept"]) == (pytest.approx(full.slope), pytest.approx(full.intercept))


def test_agreement_of_a_linear_index():
    rng = np.random.default_rng(1)
    ref = rng.uniform(5, 30, 40)
    index = (ref - 3.0) / 0.25 + rng.normal(0, 0.4, 40)  # another scale, little noise
    res = A.agreement(index, ref, seed=0, n_resamples=500)
    assert res["calibration"]["slope"] == pytest.approx(0.25, rel=0.02)
    assert res["icc"]["icc2"] > 0.99 and res["icc2_band"] == "excellent"
    assert abs(res["bland_altman"]["bias"]) < 0.05
    assert res["pearson"]["lo"] < res["pearson"]["r"] < res["pearson"]["hi"] <= 1.0


def test_koo_li_bands():
    assert [A.koo_li(v) for v in (0.2, 0.5, 0.74, 0.75, 0.9, 0.95, float("nan"))] == [
        "poor", "moderate", "moderate", "good", "excellent", "excellent", "n/a"]


def test_degenerate_inputs_are_nan_without_warnings():
    nan = float("nan")
    assert math.isnan(A.correlation([1, 1, 1, 1], [1, 2, 3, 4])["r"])
    assert math.isnan(A.correlation([1, 2], [1, 2])["r"])
    r = A.correlation([1, 2, 3, nan, 5], [2, 4, 6, 8, nan], n_resamples=100)
    assert r["n"] == 3 and r["r"] == pytest.approx(1.0) and math.isnan(r["lo"])  # 3 pairs: no interval
    assert math.isnan(A.icc(np.ones((1, 2)))["icc2"])
    assert math.isnan(A.bland_altman([1.0], [2.0])["sd"])
    assert math.isnan(A.repeatability([1.0, 2.0], ["a", "b"])["sem"])
    assert math.isnan(A.linear_calibration([1, 1, 1], [1, 2, 3])["slope"])
    res = A.agreement([1, 1, 1, 1, 1], [1, 2, 3, 4, 5], n_resamples=50)
    assert math.isnan(res["pearson"]["r"]) and math.isnan(res["icc"]["icc2"])

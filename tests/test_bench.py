"""skinimg bench (issue 10): the small run end to end, metrics against independent computations."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import stats

from skinimg.train import bench as B
from skinimg.cli import cli
from skinimg.indices import INDEX_NAMES, ITA_CATEGORIES
from skinimg.segment import evaluate_masks
from skinimg.train.bench import suites as BS
from tests.harness import stand_in_segment


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """`skinimg bench --suite all --size small --out DIR`, once for the module."""
    out = tmp_path_factory.mktemp("bench") / "res"
    r = CliRunner().invoke(cli, ["-q", "bench", "--suite", "all", "--size", "small", "--out", str(out)],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return out, r.output, json.loads((out / "bench.json").read_text(encoding="utf-8"))


# ----------------------------------------------------------------------------- the small run


def test_accuracy_separated_hemoglobin_beats_erythema_index(small_run):
    _, _, res = small_run
    acc = {r["index"]: r for r in res["accuracy"]["indices"]}
    assert set(acc) == set(INDEX_NAMES)
    hb, ei, mel = acc["hemoglobin"], acc["erythema_index"], acc["melanin"]
    # the basis inverts the ensemble's central model (these phantoms are one member): ranks hold, magnitudes are
    # read at about 0.55 times (docs/indices.md)
    # (measured 0.876 / 0.800; 0.883 / 0.834 before 2026-12-04, when 8 % of the darkest high-blood phantom's pixels
    # read the inversion table's cap 0.15 and so happened to follow its high blood: docs/indices.md)
    assert hb["spearman_hemoglobin"] > 0.85 and hb["pearson_hemoglobin"] > 0.79
    assert mel["spearman_melanin"] > 0.9
    # the classic index moves with melanin nearly as much as with blood; the separated one does not
    assert abs(ei["crosstalk"]) > 0.3
    # /5 with a basis fitted on these phantoms alone; measured 0.47 vs 1.17 (0.39 before the cap readings went)
    assert abs(hb["crosstalk"]) < abs(ei["crosstalk"]) / 2.4
    assert abs(hb["spearman_melanin"]) < 0.3
    # the grid spans the full tone range
    assert {r["tone"] for r in res["accuracy"]["images"]} <= set(ITA_CATEGORIES)
    hi, lo = res["accuracy"]["ita_range"]
    assert hi > 55 and lo < -45
    assert res["accuracy"]["n_images"] == len(res["params"]["melanin_levels"]) * len(res["params"]["hemoglobin_levels"])


def test_repeatability_mdc(small_run):
    _, _, res = small_run
    rows = res["repeatability"]["rows"]
    assert {(r["condition"], r["index"]) for r in rows} == {(c, n) for c in ("uncalibrated", "calibrated")
                                                             for n in INDEX_NAMES}
    for r in rows:
        assert math.isfinite(r["mdc"]) and r["mdc"] > 0, r
        assert r["mdc"] == pytest.approx(1.96 * math.sqrt(2) * r["sem"])
        assert r["n_subjects"] == len(res["params"]["subjects"])
    mdc = res["repeatability"]["mdc"]
    # exposure and white balance move L* and the erythema index; the chart removes most of it
    assert mdc["calibrated"]["l_star"] < mdc["uncalibrated"]["l_star"] / 2
    assert mdc["calibrated"]["erythema_index"] < mdc["uncalibrated"]["erythema_index"]


def test_outputs_columns_and_stdout(small_run):
    out, stdout, res = small_run
    with open(out / "bench.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0].keys()) == B.CSV_COLUMNS
    assert {r["suite"] for r in rows} == set(B.SUITES)
    hb = [r for r in rows if r["suite"] == "accuracy" and r["item"] == "hemoglobin"
          and r["metric"] == "spearman_hemoglobin"]
    assert float(hb[0]["value"]) == pytest.approx(
        next(x["spearman_hemoglobin"] for x in res["accuracy"]["indices"] if x["index"] == "hemoglobin"))
    assert res["suites"] == list(B.SUITES)
    assert res["params"]["size"] == "small" and res["machine"]["cpu_count"] >= 1
    assert "| index | target | Spearman Hb |" in stdout and "| stage | seconds | x cv2 decode |" in stdout
    assert (out / "accuracy_scatter.png").stat().st_size > 10_000
    assert (out / "repeatability.png").stat().st_size > 5_000


def test_speed(small_run):
    _, _, res = small_run
    sp = res["speed"]
    assert sp["shape"][:2] == list(res["params"]["speed_size"])
    assert set(sp["stages"]) == {"decode", "calibrate", "segment", "indices", "maps", "write"}
    assert all(v >= 0 for v in sp["stages"].values()) and sp["stages"]["decode"] > 0
    assert sp["baselines"]["cv2_decode"] > 0 and sp["baselines"]["skimage_rgb2lab"] > 0
    assert sp["ratios"]["indices"] == pytest.approx(sp["stages"]["indices"] / sp["baselines"]["cv2_decode"])
    assert set(sp["throughput"]) == {"1", "2"} and all(v > 0 for v in sp["throughput"].values())
    assert sp["calibration"] == "chart"  # the speed phantom carries a chart
    if sp["peak_rss_bytes"] is not None:  # Linux
        assert sp["peak_rss_bytes"] > sp["decoded_bytes"]


# ----------------------------------------------------------------------------- metrics


def test_spearman_pearson_match_scipy():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 6, 40).astype(float)  # many ties
    y = x + rng.normal(0, 2, 40)
    assert B.spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-12)
    assert B.pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0], abs=1e-12)
    assert math.isnan(B.pearson([1, 1, 1, 1], [1, 2, 3, 4]))


def test_crosstalk_of_a_linear_index():
    lt, lo = np.meshgrid([0.01, 0.03, 0.05, 0.1], [0.0, 0.2, 0.4], indexing="ij")
    lt, lo = lt.ravel(), lo.ravel()
    rng = np.random.default_rng(1)
    tt, to = lt * rng.uniform(0.9, 1.1, lt.size), lo + rng.uniform(0, 0.02, lo.size)
    v = 2.0 * tt - 0.5 * to + 7.0
    xt = B.crosstalk(v, target_true=tt, other_true=to, target_level=lt, other_level=lo)
    assert xt["slope_target"] == pytest.approx(2.0) and xt["slope_other"] == pytest.approx(-0.5)
    assert xt["crosstalk"] == pytest.approx(-0.5 * 0.4 / (2.0 * 0.09))


def test_repeatability_stats_is_anova_within_mean_square():
    groups = [[1.0, 1.2, 0.9, 1.1], [2.0, 2.5, 2.2], [3.1, 2.9, 3.0, 3.3, 2.8], [np.nan, 5.0]]
    used = groups[:3]
    ssw = sum(((np.array(g) - np.mean(g)) ** 2).sum() for g in used)
    msw = ssw / sum(len(g) - 1 for g in used)
    r = B.repeatability_stats(groups)
    assert r["sem"] == pytest.approx(math.sqrt(msw))
    assert r["mdc"] == pytest.approx(1.96 * math.sqrt(2 * msw))
    cvs = [np.std(g, ddof=1) / np.mean(g) for g in used]
    assert r["cv_pct"] == pytest.approx(100 * math.sqrt(np.mean(np.square(cvs))))
    assert r["n_subjects"] == 3 and r["n_values"] == 12
    assert math.isnan(B.repeatability_stats([[1.0]])["mdc"])


def test_mask_metrics():
    """The benchmark scores masks with the library's one mask metric (skinimg.segment.evaluate_masks): its decided
    empty-mask rule gives an empty prediction of real skin 0 (not NaN), so a failed mask lowers the means."""
    truth = np.zeros((10, 10), bool)
    truth[:5] = True  # 50 px
    pred = np.zeros((10, 10), bool)
    pred[3:8] = True  # 50 px, 20 overlap
    m = evaluate_masks(pred, truth)
    assert (m["tp"], m["fp"], m["fn"]) == (20, 30, 30)
    assert m["precision"] == pytest.approx(0.4) and m["recall"] == pytest.approx(0.4)
    assert m["f1"] == pytest.approx(0.4) and m["iou"] == pytest.approx(20 / 80)
    empty = evaluate_masks(np.zeros_like(truth), truth)
    assert (empty["precision"], empty["recall"], empty["f1"], empty["iou"]) == (0.0, 0.0, 0.0, 0.0)
    assert BS._summarise_masks([m, empty])["f1"] == pytest.approx(0.2)


def test_retakes_keep_the_skin_and_are_deterministic():
    from skinimg.phantom import PhantomSpec

    base = PhantomSpec(seed=4, size=(96, 128))
    p = B.bench_params("small")
    a = B.retake_specs(base, "all", 6, p, 9)
    assert a == B.retake_specs(base, "all", 6, p, 9)
    assert all(s.seed == 4 and s.melanin == base.melanin and s.hemoglobin == base.hemoglobin for s in a)
    assert all(0.8 <= s.exposure <= 1.2 and 70 <= s.jpeg_quality <= 95 and s.illuminant in p.illuminants for s in a)
    assert len({s.noise_seed for s in a}) == 6
    wb = B.retake_specs(base, "white_balance", 3, p, 9)
    assert {s.illuminant for s in wb} == set(p.illuminants) and all(s.exposure == 1.0 for s in wb)


def test_accuracy_is_deterministic():
    p = B.bench_params("small", image_size=(96, 128), melanin_levels=(0.02, 0.3), hemoglobin_levels=(0.01, 0.05))
    a, b = B.run_accuracy(p), B.run_accuracy(p)
    assert a == b


# ----------------------------------------------------------------------------- segmentation


def test_segmentation_with_a_segmenter_and_a_real_set(tmp_path, monkeypatch):
    from skinimg.io import write_png
    from skinimg.phantom import PhantomSpec, render_phantom

    monkeypatch.setattr(BS, "segment_skin", stand_in_segment)  # what the segmentation suite segments with
    imgs, masks = tmp_path / "img", tmp_path / "masks"
    expected = []
    for k in range(2):
        ph = render_phantom(PhantomSpec(seed=50 + k, size=(96, 128), melanin=0.05 + 0.2 * k))
        write_png(imgs / "v1" / f"p{k}.png", ph.image)
        write_png(masks / "v1" / f"p{k}_mask.png", ph.mask.astype(np.uint8) * 255)
        expected.append(evaluate_masks(stand_in_segment(ph.image).mask, ph.mask))
    write_png(imgs / "v1" / "nomask.png", ph.image)
    p = B.bench_params("small", image_size=(96, 128), segmentation_images=3, segment_methods=("rules",))
    res = B.run_segmentation(p, images=imgs, masks=masks)
    assert res["status"] == "ok"
    rows = {(r["dataset"], r["group"]): r for r in res["rows"]}
    assert rows["phantoms", "all"]["n_images"] == 3
    real = rows["real", "all"]
    assert real["n_images"] == 2
    assert real["iou"] == pytest.approx(np.mean([e["iou"] for e in expected]))
    assert real["f1"] == pytest.approx(np.mean([e["f1"] for e in expected]))
    assert res["errors"] == [{"image": "v1/nomask.png", "error": "no mask found"}]


def test_cli_images_needs_masks(tmp_path):
    r = CliRunner().invoke(cli, ["bench", "--suite", "segmentation", "--images", str(tmp_path)])
    assert r.exit_code == 2 and "--masks" in r.output
    r = CliRunner().invoke(cli, ["bench", "--suite", "nope"])
    assert r.exit_code == 2

"""`skinimg regress`: drift records, tolerances, verdicts, --update, and the sample-image CI check."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from skinimg.cli import cli
from skinimg.errors import SkinImgError
from skinimg.io import write_csv, write_json
from skinimg.report import (
    DEFAULT_TOLERANCES,
    Drift,
    Tolerance,
    collect_verdicts,
    format_drift_table,
    parse_tolerance,
    regress,
    tolerance_for,
    update_expected,
)

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_images"
SAMPLE_EXPECTED = SAMPLE / "expected" / "indices.csv"

COLUMNS = [
    "image", "status", "error", "width", "height", "skin_fraction",
    "erythema_index", "erythema_index_median", "erythema_index_p10", "erythema_index_p90", "erythema_index_std",
    "hemoglobin", "hemoglobin_median", "l_star", "ita_deg", "ita_category",
    "red_area_fraction", "brown_spot_count", "brown_spot_area_fraction",
]


def _rows():
    return [
        {"image": "p1/cheek/2024-01-01/a.jpg", "status": "ok", "error": "", "width": 640, "height": 480,
         "skin_fraction": 0.41, "erythema_index": 31.25, "erythema_index_median": 31.0, "erythema_index_p10": 28.5,
         "erythema_index_p90": 34.0, "erythema_index_std": 2.1, "hemoglobin": 0.25, "hemoglobin_median": 0.24,
         "l_star": 62.3, "ita_deg": 38.2, "ita_category": "intermediate", "red_area_fraction": 0.12,
         "brown_spot_count": 3, "brown_spot_area_fraction": 0.02},
        {"image": "p1/cheek/2024-02-01/a.jpg", "status": "ok", "error": "", "width": 640, "height": 480,
         "skin_fraction": 0.39, "erythema_index": 29.0, "erythema_index_median": 28.8, "erythema_index_p10": 26.0,
         "erythema_index_p90": 32.0, "erythema_index_std": 2.0, "hemoglobin": 0.21, "hemoglobin_median": 0.2,
         "l_star": 63.0, "ita_deg": 40.1, "ita_category": "intermediate", "red_area_fraction": 0.08,
         "brown_spot_count": 3, "brown_spot_area_fraction": 0.02},
        {"image": "broken.jpg", "status": "error", "error": "truncated image file", "width": None, "height": None},
    ]


def _write(folder: Path, rows, columns=COLUMNS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return write_csv(folder / "indices.csv", rows, columns)


@pytest.fixture
def study(tmp_path):
    """An expected file and an identical results folder."""
    expected = _write(tmp_path / "expected", _rows())
    results = tmp_path / "results"
    _write(results, _rows())
    return expected, results


def _run(*args):
    return CliRunner().invoke(cli, ["regress", *map(str, args)], prog_name="skinimg")


# ----------------------------------------------------------------------------- pass / fail


def test_identical_results_pass(study):
    expected, results = study
    res = regress(expected, results)
    assert res.ok and res.drifts == []
    assert res.images_compared == 3
    assert res.values_compared == 3 * (len(COLUMNS) - 2)  # all but image and status
    r = _run("--expected", expected, "--results", results)
    assert r.exit_code == 0, r.output
    assert "ok: 3 image(s)" in r.output


def test_changed_value_is_exact_drift_record(study):
    expected, results = study
    rows = _rows()
    rows[1]["erythema_index"] = 29.75  # +0.75 > ±0.5
    _write(results, rows)
    res = regress(expected, results)
    assert res.drifts == [Drift("value", "p1/cheek/2024-02-01/a.jpg", "erythema_index", "29.0", "29.75", "±0.5")]
    r = _run("--expected", expected, "--results", results)
    assert r.exit_code == 1
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["image", "index", "expected", "got", "tolerance", "kind"]
    assert lines[2].split() == ["p1/cheek/2024-02-01/a.jpg", "erythema_index", "29.0", "29.75", "±0.5", "value"]
    assert "1 difference(s) beyond tolerance" in r.stderr


def test_change_within_tolerance_passes_and_statistics_use_the_index_tolerance(study):
    expected, results = study
    rows = _rows()
    rows[0]["erythema_index"] = 31.25 + 0.49
    rows[0]["erythema_index_p90"] = 34.0 - 0.49
    rows[0]["l_star"] = 62.3 + 0.29
    rows[0]["brown_spot_count"] = 5  # counts ±20 %, at least ±2
    _write(results, rows)
    assert regress(expected, results).ok
    rows[0]["erythema_index_p90"] = 34.0 - 0.51
    rows[0]["brown_spot_count"] = 6
    _write(results, rows)
    got = {(d.index, d.tolerance) for d in regress(expected, results).drifts}
    assert got == {("erythema_index_p90", "±0.5"), ("brown_spot_count", "±20% (min 2)")}


def test_relative_tolerance_and_cli_override(study):
    expected, results = study
    rows = _rows()
    rows[0]["hemoglobin"] = 0.25 * 1.04  # +4 % < 5 % default
    _write(results, rows)
    assert regress(expected, results).ok
    rows[0]["hemoglobin"] = 0.25 * 1.06  # +6 %
    _write(results, rows)
    (d,) = regress(expected, results).drifts
    assert (d.kind, d.index, d.tolerance) == ("value", "hemoglobin", "±5% (min 0.002)")
    assert _run("--expected", expected, "--results", results, "--tolerance", "hemoglobin=7%").exit_code == 0
    assert _run("--expected", expected, "--results", results, "--tolerance", "hemoglobin=0.016").exit_code == 0
    assert _run("--expected", expected, "--results", results, "--tolerance", "hemoglobin=0.014").exit_code == 1
    # near zero the relative tolerance has an absolute floor
    assert Tolerance(0.05, relative=True, floor=0.002).allows(0.001, 0.0029)
    assert not Tolerance(0.05, relative=True, floor=0.002).allows(0.001, 0.0031)


def test_exact_columns_and_status_and_category(study):
    expected, results = study
    rows = _rows()
    rows[0]["width"] = 641
    rows[0]["ita_category"] = "light"
    rows[1] = {"image": rows[1]["image"], "status": "error", "error": "segmentation found no skin"}
    _write(results, rows)
    got = {(d.kind, d.image, d.index, d.expected, d.got) for d in regress(expected, results).drifts}
    # the status change is reported once, not again as a new message and a dozen emptied cells
    assert got == {
        ("value", "p1/cheek/2024-01-01/a.jpg", "width", "640", "641"),
        ("category", "p1/cheek/2024-01-01/a.jpg", "ita_category", "intermediate", "light"),
        ("status", "p1/cheek/2024-02-01/a.jpg", "status", "ok", "error"),
    }
    rows = _rows()
    rows[2]["error"] = "truncated file"
    _write(results, rows)
    assert [(d.kind, d.index) for d in regress(expected, results).drifts] == [("text", "error")]


def test_missing_and_extra_rows_columns_and_values(study):
    expected, results = study
    rows = _rows()
    del rows[1]
    rows.append({"image": "new.jpg", "status": "ok", "width": 10, "height": 10})
    rows[0]["l_star"] = None
    cols = [c for c in COLUMNS if c != "ita_deg"] + ["a_star"]
    _write(results, rows, cols)
    drifts = regress(expected, results).drifts
    assert Drift("missing_row", "p1/cheek/2024-02-01/a.jpg", "", "present", "", "") in drifts
    assert Drift("extra_row", "new.jpg", "", "", "present", "") in drifts
    assert Drift("missing_column", "*", "ita_deg", "present", "", "") in drifts
    assert Drift("extra_column", "*", "a_star", "", "present", "") in drifts
    assert Drift("missing_value", "p1/cheek/2024-01-01/a.jpg", "l_star", "62.3", "", "±0.3") in drifts
    assert len(drifts) == 5


def test_missing_results_file_is_drift_and_missing_expected_is_an_error(tmp_path, study):
    expected, _ = study
    empty = tmp_path / "empty"
    empty.mkdir()
    assert regress(expected, empty).drifts == [Drift("missing_file", "indices.csv", "", "present", "", "")]
    with pytest.raises(SkinImgError, match="file not found"):
        regress(tmp_path / "nope.csv", empty)
    r = _run("--expected", tmp_path / "nope.csv", "--results", empty)
    assert r.exit_code == 1 and "file not found" in r.stderr and "Traceback" not in r.output


# ----------------------------------------------------------------------------- tolerances


def test_parse_tolerance():
    assert parse_tolerance("erythema_index=0.5") == ("erythema_index", Tolerance(0.5, relative=False))
    assert parse_tolerance(" hemoglobin = 2.5% ") == ("hemoglobin", Tolerance(0.025, relative=True))
    assert parse_tolerance("brown_spot_count=1e0") == ("brown_spot_count", Tolerance(1.0))
    for bad in ("erythema_index", "=0.5", "a=b", "a=-1", "a=1%%", "a b=1"):
        with pytest.raises(SkinImgError, match="bad tolerance"):
            parse_tolerance(bad)
    r = _run("--expected", "x.csv", "--results", ".", "--tolerance", "l_star=abc")
    assert r.exit_code == 1 and "bad tolerance 'l_star=abc'" in r.stderr


def test_tolerance_lookup_prefers_column_then_longest_index():
    tol = {**DEFAULT_TOLERANCES, "melanin_p90": Tolerance(9)}
    assert tolerance_for("melanin_index_median", tol) == DEFAULT_TOLERANCES["melanin_index"]
    assert tolerance_for("melanin_median", tol) == DEFAULT_TOLERANCES["melanin"]
    assert tolerance_for("melanin_p90", tol) == Tolerance(9)
    assert tolerance_for("mystery_column", tol) is None
    assert Tolerance(0.02, relative=True).allows(100.0, 102.0)
    assert not Tolerance(0.02, relative=True).allows(100.0, 102.1)
    assert Tolerance(0.02, relative=True).allows(-100.0, -98.0)
    assert not Tolerance(0).allows(1.0, 1.0000001)


# ----------------------------------------------------------------------------- verdicts


def _pair(results: Path, patient, site, ref, session, verdicts: dict):
    metrics = {k: {"before": 1.0, "after": 1.0, "delta": 0.0, "delta_pct": 0.0, "ci95": [-1, 1], "verdict": v}
               for k, v in verdicts.items()}
    write_json(results / "pairs" / patient / site / f"{ref}__{session}" / "comparison.json",
               {"before": "b", "after": "a", "registration": {"ok": True}, "metrics": metrics})


def test_verdicts_compared_when_expected_file_exists(study):
    expected, results = study
    _pair(results, "p1", "cheek", "2024-01-01", "2024-02-01", {"hemoglobin": "improved", "melanin": "no_change"})
    rows = collect_verdicts(results)
    assert rows == [
        {"patient": "p1", "site": "cheek", "session": "2024-02-01", "reference": "2024-01-01",
         "index": "hemoglobin", "verdict": "improved"},
        {"patient": "p1", "site": "cheek", "session": "2024-02-01", "reference": "2024-01-01",
         "index": "melanin", "verdict": "no_change"},
    ]
    # no expected verdicts file: verdicts are not checked
    assert not regress(expected, results).verdicts_checked
    update_expected(expected, results, verdicts=True)
    res = regress(expected, results)
    assert res.ok and res.verdicts_checked and res.verdicts_compared == 2
    _pair(results, "p1", "cheek", "2024-01-01", "2024-02-01", {"hemoglobin": "no_change"})
    drifts = regress(expected, results).drifts
    assert drifts == [
        Drift("verdict", "p1/cheek/2024-02-01 vs 2024-01-01", "hemoglobin", "improved", "no_change", "exact"),
        Drift("missing_row", "p1/cheek/2024-02-01 vs 2024-01-01", "melanin", "no_change", "", "exact"),
    ]


def test_verdicts_from_series_csv_and_single_comparison(tmp_path):
    r1 = tmp_path / "r1"
    write_csv(r1 / "series.csv", [
        {"patient": "p", "site": "s", "session": "2024-02-01", "reference": "2024-01-01", "index": "hemoglobin",
         "verdict": "worsened"}])
    assert collect_verdicts(r1)[0]["verdict"] == "worsened"
    r2 = tmp_path / "r2"
    write_json(r2 / "comparison.json", {"before": "b.jpg", "after": "a.jpg",
                                        "metrics": {"a_star": {"verdict": "improved"}}})
    assert collect_verdicts(r2) == [{"patient": "", "site": "", "session": "a.jpg", "reference": "b.jpg",
                                     "index": "a_star", "verdict": "improved"}]
    assert collect_verdicts(tmp_path / "none") is None


# ----------------------------------------------------------------------------- --update


def test_update_round_trip(study):
    expected, results = study
    rows = _rows()
    rows[0]["erythema_index"] = 40.0
    rows[1]["l_star"] = 63.01  # within tolerance, still a change
    _write(results, rows)
    before = expected.read_bytes()
    r = _run("--expected", expected, "--results", results, "--update")
    assert r.exit_code == 0, r.output
    assert "erythema_index" in r.stdout and "l_star" in r.stdout
    assert "2 change(s), 1 of them beyond tolerance" in r.stdout
    assert expected.read_bytes() == (results / "indices.csv").read_bytes() != before
    assert not list(expected.parent.glob("*.tmp")) and not list(expected.parent.glob(".*"))
    assert _run("--expected", expected, "--results", results).exit_code == 0
    # --update on a new expected file creates it
    fresh = expected.parent / "sub" / "indices.csv"
    r = _run("--expected", fresh, "--results", results, "--update")
    assert r.exit_code == 0 and fresh.read_bytes() == expected.read_bytes()


def test_format_drift_table_is_aligned():
    text = format_drift_table([Drift("value", "a.jpg", "l_star", "1.0", "2.0", "±0.3"),
                               Drift("missing_row", "long/name.jpg", "", "present", "", "")])
    lines = text.splitlines()
    assert len(lines) == 4
    assert lines[0].index("index") == lines[2].index("l_star")


# ----------------------------------------------------------------------------- the CI check on sample_images


def test_sample_images_regression(tmp_path, monkeypatch):
    """`skinimg run ci sample_images` (the CI pipeline: analyze, track, regress) matches the committed
    expected indices and verdicts; a deliberately changed expected value makes it fail with a drift table."""
    assert SAMPLE_EXPECTED.is_file() and (SAMPLE_EXPECTED.parent / "verdicts.csv").is_file()
    monkeypatch.chdir(ROOT)  # regress.expected in pipelines/ci.toml is relative to the repository root
    out = tmp_path / "results-ci"
    r = CliRunner().invoke(cli, ["run", "ci", "sample_images", "--out", str(out), "--workers", "1", "--quiet"],
                           prog_name="skinimg")
    assert r.exit_code == 0, "drift against sample_images/expected:\n" + r.output
    res = regress(SAMPLE_EXPECTED, out)
    n_expected = sum(1 for _ in SAMPLE_EXPECTED.open(encoding="utf-8")) - 1
    assert res.ok and res.images_compared == n_expected >= 15
    assert res.verdicts_checked and res.verdicts_compared >= 20
    # the same results against an expected file with one value moved beyond its tolerance: drift, exit 1
    rows = list(csv.DictReader(SAMPLE_EXPECTED.open(newline="", encoding="utf-8")))
    rows[0]["hemoglobin"] = str(float(rows[0]["hemoglobin"]) * 1.5 + 0.01)  # beyond the 5 % / 0.002 floor
    bad = tmp_path / "expected" / "indices.csv"
    write_csv(bad, rows, list(rows[0]))
    r = CliRunner().invoke(cli, ["regress", "--expected", str(bad), "--results", str(out)], prog_name="skinimg")
    assert r.exit_code == 1
    assert rows[0]["image"] in r.output and "hemoglobin" in r.output

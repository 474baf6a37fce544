"""`skinimg analyze` end to end: rows, tables, maps, errors, exit codes, JSON."""

from __future__ import annotations

import csv
import json
import math
import sqlite3
import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from skinimg.batch import analyze as A
from skinimg import indices as I
from skinimg.cli import cli
from skinimg.io import write_png
from skinimg.segment import SegmentResult


def _result(mask, method):
    return SegmentResult(mask=mask, skin_fraction=float(mask.mean()), status="ok" if mask.any() else "no_skin",
                         method=method, work_probability=mask.astype(np.float32))


def _stand_in_segment(rgb, method, **_):
    """Test-only stand-in for skinimg.segment.segment_skin: skin = reddish pixels (R > G > B, R > 90)."""
    r, g, b = (rgb[..., k].astype(np.int32) for k in range(3))
    return _result((r > g) & (g > b) & (r > 90), f"stand-in-{method}")


@pytest.fixture(autouse=True)
def stand_in_segmenter(monkeypatch):
    monkeypatch.setattr(A, "segment_skin", _stand_in_segment)  # what analyze segments with (workers=1)


def _photo(seed, h=120, w=160, tone=(205, 150, 125)):
    rng = np.random.default_rng(seed)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = (60, 90, 160)
    yy, xx = np.mgrid[:h, :w]
    skin = ((yy - h / 2) / (0.4 * h)) ** 2 + ((xx - w / 2) / (0.4 * w)) ** 2 <= 1
    noise = rng.normal(0, 4, (h, w, 1))
    img[skin] = np.clip(np.array(tone) + noise[skin], 0, 255).astype(np.uint8)
    return img, skin


@pytest.fixture
def inputs(tmp_path):
    root = tmp_path / "in"
    (root / "visit").mkdir(parents=True)
    img1, _ = _photo(1)
    img2, _ = _photo(2, tone=(150, 105, 80))
    write_png(root / "visit" / "b.png", img1)
    write_png(root / "a.png", img2)
    write_png(root / "blue.png", np.full((40, 50, 3), (40, 60, 200), np.uint8))  # no skin
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return root


def _read_csv(p):
    with open(p, newline="", encoding="utf-8") as fh:
        rd = csv.DictReader(fh)
        return rd.fieldnames, list(rd)


def test_analyze_image_row_and_maps(tmp_path):
    img, skin = _photo(3)
    write_png(tmp_path / "x.png", img)
    row, maps = A.analyze_image(tmp_path / "x.png", maps="all")
    assert row["status"] == "ok" and row["error"] is None and row["image"] == "x.png"
    assert (row["width"], row["height"]) == (160, 120)
    assert row["skin_fraction"] == pytest.approx(skin.mean(), abs=1e-9)
    assert set(A.ROW_COLUMNS) <= set(row)
    for name in I.INDEX_NAMES:
        assert maps[name].shape == (120, 160) and maps[name].dtype == np.float32
        assert np.isnan(maps[name][~skin]).all() and np.isfinite(maps[name][skin]).all()
    # the row equals the library statistics on the same pixels
    ref = I.summarize(maps, skin)
    for k in ("erythema_index", "hemoglobin_p90", "ita_category", "brown_spot_count"):
        assert row[k] == ref[k]
    row2, maps2 = A.analyze_image(tmp_path / "x.png", maps=False)
    assert maps2 is None and row2["erythema_index"] == row["erythema_index"]


def test_analyze_image_bad_file_is_an_error_row(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"nope")
    row, maps = A.analyze_image(tmp_path / "bad.png")
    assert row["status"] == "error" and "unrecognised" in row["error"] and maps is None
    assert row["ita_category"] == "unknown" and math.isnan(row["erythema_index"])


def test_cli_analyze_writes_tables_maps_and_exit_2(inputs, tmp_path):
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["analyze", str(inputs), "--out", str(out), "--workers", "1", "--format", "parquet"])
    assert r.exit_code == 2, r.output
    cols, rows = _read_csv(out / "indices.csv")
    assert tuple(cols) == A.ROW_COLUMNS
    for c in ("image", "status", "error", "width", "height", "skin_fraction", "ita_category", "red_area_fraction",
              "brown_spot_count", "brown_spot_area_fraction"):
        assert c in cols
    for name in I.INDEX_NAMES:
        assert {name, f"{name}_median", f"{name}_p10", f"{name}_p90", f"{name}_std"} <= set(cols)
    assert [x["image"] for x in rows] == ["a.png", "blue.png", "broken.jpg", "visit/b.png"]
    by = {x["image"]: x for x in rows}
    assert by["a.png"]["status"] == "ok" and by["visit/b.png"]["status"] == "ok"
    assert by["broken.jpg"]["status"] == "error" and by["broken.jpg"]["error"]
    assert by["blue.png"]["status"] == "no_skin"
    assert by["visit/b.png"]["ita_category"] in I.ITA_CATEGORIES
    # darker tone photo: lower ITA, higher melanin
    assert float(by["a.png"]["ita_deg"]) < float(by["visit/b.png"]["ita_deg"])
    assert float(by["a.png"]["melanin"]) > float(by["visit/b.png"]["melanin"])

    # SQLite rows == CSV rows
    with sqlite3.connect(out / "results.sqlite") as con:
        con.row_factory = sqlite3.Row
        db = [dict(x) for x in con.execute("SELECT * FROM indices ORDER BY image")]
    assert len(db) == len(rows)
    for d, c in zip(db, rows):
        for k in cols:
            v = d[k]
            assert (c[k] == "" and v is None) or (c[k] == str(v) if isinstance(v, str) else float(c[k]) == v), k

    # Parquet readable, same rows
    pq = pytest.importorskip("pyarrow.parquet")
    t = pq.read_table(out / "indices.parquet").to_pylist()
    assert [x["image"] for x in t] == [x["image"] for x in rows]
    assert t[0]["erythema_index"] == float(rows[0]["erythema_index"])

    # maps: float32 TIFF with NaN off skin, PNG heatmap with a colour-bar panel (the default set only)
    written = sorted(p.name for p in (out / "maps" / "visit").iterdir())
    assert written == sorted(f"b_{n}.{ext}" for n in A.DEFAULT_MAPS for ext in ("tif", "png"))
    for name in A.DEFAULT_MAPS:
        tif = cv2.imread(str(out / "maps" / "visit" / f"b_{name}.tif"), cv2.IMREAD_UNCHANGED)
        assert tif.dtype == np.float32 and tif.shape == (120, 160)
        _, skin = _photo(1)
        assert np.isnan(tif[~skin]).all() and np.isfinite(tif[skin]).all()
        png = cv2.imread(str(out / "maps" / "visit" / f"b_{name}.png"))
        assert png.shape[0] == 120 and png.shape[1] > 160
    assert not list((out / "maps").glob("blue_*")) and not list((out / "maps").glob("broken_*"))

    meta = json.loads((out / "analyze.json").read_text())
    assert meta["params_hash"] == by["a.png"]["params_hash"] and meta["n_error"] == 1 and meta["n_ok"] == 2
    assert meta["params"]["indices"]["red_threshold"] == I.IndexParams().red_threshold
    # the masks' own parameters and network are on record too
    from skinimg.segment import SegmentParams, load_model
    assert meta["params"]["segment"]["guide_radius"] == SegmentParams().guide_radius
    assert meta["skin_network"]["sha256"] == load_model().sha256
    assert "broken.jpg" in r.output  # the one-line error on stderr (mixed into output by CliRunner)


def test_cli_rerun_replaces_rows_json_and_no_maps(inputs, tmp_path):
    out = tmp_path / "out"
    args = ["analyze", str(inputs / "a.png"), str(inputs / "visit"), "--out", str(out), "--workers", "1", "--no-maps"]
    r1 = CliRunner().invoke(cli, args + ["--json"])
    assert r1.exit_code == 0, r1.stderr
    lines = [json.loads(x) for x in r1.stdout.splitlines()]
    assert [x["image"] for x in lines] == ["a.png", "b.png"] and all(x["status"] == "ok" for x in lines)
    assert set(lines[0]) == set(A.ROW_COLUMNS)
    assert not (out / "maps").exists()
    csv1 = (out / "indices.csv").read_bytes()
    r2 = CliRunner().invoke(cli, args)
    assert r2.exit_code == 0
    assert (out / "indices.csv").read_bytes() == csv1  # deterministic
    with sqlite3.connect(out / "results.sqlite") as con:
        assert con.execute("SELECT COUNT(*), COUNT(DISTINCT image) FROM indices").fetchone() == (2, 2)


def test_cli_nothing_to_do_is_fatal(tmp_path):
    (tmp_path / "empty").mkdir()
    r = CliRunner().invoke(cli, ["analyze", str(tmp_path / "empty"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 1 and "no image files found" in r.output


def test_16_bit_photo_gives_the_same_numbers_as_8_bit(tmp_path):
    img8, skin = _photo(4)
    img16 = img8.astype(np.uint16) * 257  # exactly the same colours in 16 bits
    write_png(tmp_path / "a8.png", img8)
    write_png(tmp_path / "a16.png", img16)
    r8, _ = A.analyze_image(tmp_path / "a8.png", maps=False)
    r16, _ = A.analyze_image(tmp_path / "a16.png", maps=False)
    assert r8["bit_depth"] == 8 and r16["bit_depth"] == 16
    for k in ("erythema_index", "l_star", "ita_deg", "hemoglobin", "melanin", "melanin_index_p90"):
        assert r16[k] == pytest.approx(r8[k], rel=2e-3, abs=2e-3), k
    assert r16["ita_category"] == r8["ita_category"]


# ----------------------------------------------------------------------------- --calibrate


def test_calibrate_chart_makes_tungsten_photo_measure_like_daylight(tmp_path, monkeypatch):
    """Same skin under D65 and under tungsten (A, darker): with --calibrate chart both photos are mapped
    onto the chart's reference, so L*, a*, b* agree within CIEDE2000-scale tolerances; as photographed
    they do not.  The chart's pixels never count as skin."""
    synth = pytest.importorskip("skinimg.phantom")
    from skinimg.color import delta_e_2000

    shots = {}
    for name, ill, expo in (("day", "D65", 1.0), ("tungsten", "A", 0.7)):
        ph = synth.render_phantom(synth.PhantomSpec(seed=3, chart=True, illuminant=ill, exposure=expo))
        write_png(tmp_path / f"{name}.png", ph.image)
        shots[name] = ph
    truth_mask = shots["day"].mask & shots["tungsten"].mask
    chart_px = shots["day"].labels == synth.LABELS["chart"]

    def segmenter(with_chart):
        def seg(rgb, method, **_):
            return _result(truth_mask | chart_px if with_chart else truth_mask, "truth")
        return seg

    lab = {}
    for mode in ("none", "chart"):
        # with calibration the segmenter deliberately includes the chart: analyze must remove it
        monkeypatch.setattr(A, "segment_skin", segmenter(mode == "chart"))
        for name in shots:
            row, _ = A.analyze_image(tmp_path / f"{name}.png", params=A.AnalyzeParams(calibration=mode), maps=False)
            assert row["status"] == "ok", row["error"]
            assert row["calibration"] == ("chart" if mode == "chart" else "none")
            if mode == "chart":
                assert row["calibration_delta_e"] < 1.5
                assert row["skin_pixels"] == truth_mask.sum()  # chart pixels removed, skin kept
            else:
                assert math.isnan(row["calibration_delta_e"])
            lab[mode, name] = np.array([row["l_star"], row["a_star"], row["b_star"]], np.float32)
    # the daylight photo's chart already matches its reference: it is left as it is (same numbers)
    np.testing.assert_array_equal(lab["chart", "day"], lab["none", "day"])
    raw = float(delta_e_2000(lab["none", "day"], lab["none", "tungsten"]))
    fixed = float(delta_e_2000(lab["none", "day"], lab["chart", "tungsten"]))
    # measured: 14.3 as photographed -> 5.1 after the chart correction with the X-Rite reference values
    # (the phantom's spectral chart differs from them by ~1 mean CIEDE2000, and a chart-fitted matrix cannot
    # undo tungsten metamerism of skin fully; tests/test_calibrate.py reaches <= 3.0 with the chart's own
    # reference values)
    assert fixed < 6.0 and fixed < 0.4 * raw, (raw, fixed)


def test_calibrate_chart_without_chart_is_an_error_row_and_auto_falls_back(inputs, tmp_path):
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["analyze", str(inputs / "a.png"), "--out", str(out), "--workers", "1",
                                 "--no-maps", "--calibrate", "chart"])
    assert r.exit_code == 2
    row = _read_csv(out / "indices.csv")[1][0]
    assert row["status"] == "error" and "no chart found" in row["error"]
    r = CliRunner().invoke(cli, ["analyze", str(inputs / "a.png"), "--out", str(out), "--workers", "1",
                                 "--no-maps", "--calibrate", "auto"])
    assert r.exit_code == 0, r.output
    row = _read_csv(out / "indices.csv")[1][0]
    assert row["calibration"] == "gray_world"
    saved = json.loads((out / "calibration" / "a.json").read_text())
    assert saved["kind"] == "gray_world" and saved["image"] == "a.png"
    assert saved["notes"][0].startswith("no chart found")


def test_heatmap_range_of_a_large_map_uses_a_subset_close_to_the_full_percentiles():
    from skinimg.indices.heatmap import _RANGE_SAMPLES, robust_range

    rng = np.random.default_rng(7)
    v = rng.normal(10.0, 2.0, 3 * _RANGE_SAMPLES).astype(np.float32)
    v[::5] = np.nan
    full = np.percentile(v[np.isfinite(v)], [2, 98])
    lo, hi = robust_range(v)
    assert abs(lo - full[0]) < 0.02 and abs(hi - full[1]) < 0.02
    assert robust_range(np.full(10, np.nan)) == (0.0, 1.0)


def test_params_hash_follows_the_segmentation_parameters(monkeypatch):
    """Other segmentation defaults give other masks, so other numbers: a resumed run must not keep the old rows."""
    from dataclasses import replace

    from skinimg.segment import SegmentParams

    before = A.AnalyzeParams().hash()
    assert A.AnalyzeParams().hash() == before  # deterministic
    import skinimg.batch.analyze_params as AP

    assert A.AnalyzeParams(work_pixels=None).hash() != before  # the working size changes large photos' numbers
    monkeypatch.setattr(AP, "SegmentParams", lambda: replace(SegmentParams(), guide_eps=0.02))
    changed = A.AnalyzeParams()
    assert changed.to_dict()["segment"]["guide_eps"] == 0.02
    assert changed.hash() != before

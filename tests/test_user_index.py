"""Bring your own index (issue 28): loading, what the function gets, results, failures, timeouts."""

from __future__ import annotations

import csv
import json
import math
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

from skinimg import indices as I
from skinimg.cli import cli
from skinimg.errors import SkinImgError
from skinimg.indices import user as U
from skinimg.phantom import PhantomSpec, render_phantom
from skinimg.train import bench as B

STATS = ("", "_median", "_p10", "_p90", "_std")


def runner(*targets, timeout=60.0):
    specs = [U.parse_index_option(t) for t in targets]
    return U.UserIndexRunner(U.load_user_indices(specs), timeout=timeout)


@pytest.fixture(scope="module")
def phantom():
    ph = render_phantom(PhantomSpec(melanin=0.12, hemoglobin=0.03, seed=5, size=(120, 160)))
    return ph.image, ph.mask


# ----------------------------------------------------------------------------- loading


@pytest.mark.parametrize("text, message", [
    ("A=tests.user_indices:a_star", "lower-case"),
    ("1x=tests.user_indices:a_star", "lower-case"),
    ("ok=tests.user_indices", "NAME=module:function"),
    ("ok=:a_star", "NAME=module:function"),
])
def test_bad_option_is_one_line(text, message):
    with pytest.raises(SkinImgError, match=message) as exc:
        U.parse_index_option(text)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("target, message", [
    ("tests.no_such_module:f", "cannot import tests.no_such_module (ModuleNotFoundError"),
    ("tests.user_indices:nope", "has no 'nope'"),
    ("tests.user_indices:not_a_function", "is not a function"),
    ("missing_file.py:f", "file missing_file.py not found"),
])
def test_import_errors_name_the_index(target, message):
    with pytest.raises(SkinImgError, match="index mine: ") as exc:
        U.load_user_index(U.parse_index_option(f"mine={target}"))
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_file_target_and_syntax_error(tmp_path):
    good = tmp_path / "my_index.py"
    good.write_text("import numpy as np\ndef f(rgb, mask):\n    return float(rgb[mask].mean())\n", encoding="utf-8")
    ui = U.load_user_index(U.parse_index_option("mine=my_index.py:f", cwd=tmp_path))
    assert ui.inputs == frozenset()
    (tmp_path / "bad.py").write_text("def f(rgb, mask)\n    return 1\n", encoding="utf-8")
    with pytest.raises(SkinImgError, match=r"index bad: cannot import bad.py \(SyntaxError"):
        U.load_user_index(U.parse_index_option("bad=bad.py:f", cwd=tmp_path))


def test_module_in_the_current_folder(tmp_path, monkeypatch):
    (tmp_path / "cwd_index_mod.py").write_text("def f(rgb, mask):\n    return 1.5\n", encoding="utf-8")
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    ui = U.load_user_index(U.parse_index_option("m=cwd_index_mod:f", cwd=tmp_path))
    assert ui.func(None, None) == 1.5
    monkeypatch.delitem(sys.modules, "cwd_index_mod")


def test_names_must_not_clash():
    with pytest.raises(SkinImgError, match="already a built-in column"):
        U.load_user_indices([U.parse_index_option("a_star=tests.user_indices:a_star")])
    with pytest.raises(SkinImgError, match="given twice"):
        U.load_user_indices([U.parse_index_option("x=tests.user_indices:a_star")] * 2)
    with pytest.raises(SkinImgError, match="already a built-in column"):
        U.load_user_indices([U.parse_index_option("status=tests.user_indices:a_star")], reserved=("status",))


def test_entry_point(tmp_path, monkeypatch):
    dist = tmp_path / "skinimg_extra_indices-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: skinimg-extra-indices\nVersion: 1.0\n",
                                   encoding="utf-8")
    (dist / "entry_points.txt").write_text("[skinimg.indices]\nep_a_star = tests.user_indices:a_star\n",
                                           encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert U.installed_indices()["ep_a_star"] == "tests.user_indices:a_star"
    ui = U.load_user_index(U.parse_index_option("ep_a_star"))
    assert ui.chromophore == "hemoglobin" and ui.inputs == frozenset({"linear"})
    with pytest.raises(SkinImgError, match="no entry point of that name"):
        U.load_user_index(U.parse_index_option("not_installed"))


# ----------------------------------------------------------------------------- what it gets and gives


@pytest.mark.parametrize("dtype,clipped", [("uint8", False), ("uint16", False), ("float32", False), ("uint8", True)])
def test_reimplemented_a_star_equals_the_built_in(phantom, dtype, clipped):
    """A user's a* gives the built-in's numbers, in every dtype; with blown-out skin pixels (``clipped``) these stay
    out of their neighbours' smoothing for the user's rgb as for the built-ins."""
    rgb, mask = phantom
    if clipped:
        rgb = rgb.copy()
        ys, xs = np.nonzero(mask)
        rgb[ys[::37], xs[::37]] = 255  # a scatter of blown-out skin pixels
    rgb = {"uint8": rgb, "uint16": rgb.astype(np.uint16) * 257,
           "float32": rgb.astype(np.float32) / np.float32(255)}[dtype]
    row, maps = I.measure(rgb, mask)
    assert (row["saturated_fraction"] > 0.02) == clipped
    urow, umaps, errors = runner("a2=tests.user_indices:a_star").measure(rgb, mask, want_maps=True)
    assert errors == {}
    for s in STATS:
        assert urow[f"a2{s}"] == pytest.approx(row[f"a_star{s}"], rel=1e-9, abs=1e-9), s
    np.testing.assert_array_equal(umaps["a2"], maps["a_star"])


def test_per_image_value_and_extra_inputs(phantom):
    rgb, mask = phantom
    r = runner("red=tests.user_indices:mean_red", "ei=tests.user_indices:erythema_ratio",
               "both=tests.user_indices:wants_everything")
    row, maps, errors = r.measure(rgb, mask, want_maps=True)
    assert errors == {}
    assert 0.3 < row["red"] < 1.0 and math.isnan(row["red_median"]) and "red" not in maps
    assert row["ei_p10"] < row["ei_median"] < row["ei_p90"] and set(maps) == {"ei"}
    assert np.isnan(maps["ei"][~mask]).all() and np.isfinite(maps["ei"][mask]).all()
    assert math.isfinite(row["both"])
    assert r.indices[2].inputs == frozenset(U.INPUTS)


@pytest.mark.parametrize("target, message", [
    ("broken", "ValueError: this index is broken"),
    ("wrong_shape", "returned shape (120, 160, 3); expected the mask's (120, 160) or one number"),
    ("text", "returned str"),
    ("writes_input", "ValueError: assignment destination is read-only"),
])
def test_failures_are_one_line_and_keep_other_columns(phantom, target, message):
    rgb, mask = phantom
    before = rgb.copy()
    row, _, errors = runner(f"bad=tests.user_indices:{target}", "red=tests.user_indices:mean_red").measure(rgb, mask)
    assert errors["bad"] == message or errors["bad"].startswith(message)
    assert "\n" not in errors["bad"]
    assert all(math.isnan(row[f"bad{s}"]) for s in STATS)
    assert math.isfinite(row["red"])
    np.testing.assert_array_equal(rgb, before)


@pytest.mark.parametrize("target", ["slow", "swallows"])
def test_timeout_interrupts_and_skips_later_images(phantom, target):
    rgb, mask = phantom
    r = runner(f"slow=tests.user_indices:{target}", "red=tests.user_indices:mean_red", timeout=0.5)
    t0 = time.perf_counter()
    row, _, errors = r.measure(rgb, mask)
    assert time.perf_counter() - t0 < 5.0
    assert errors == {"slow": "timed out after 0.5 s"} and math.isfinite(row["red"])
    row, _, errors = r.measure(rgb, mask)
    assert errors == {"slow": "skipped: timed out on an earlier image (limit 0.5 s)"} and math.isfinite(row["red"])


# ----------------------------------------------------------------------------- commands


def _read(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_analyze_index_columns_maps_and_failures(tmp_path):
    photos = tmp_path / "photos"
    for i, (m, h) in enumerate(((0.02, 0.01), (0.2, 0.03))):
        from skinimg.phantom import write_phantom

        write_phantom(render_phantom(PhantomSpec(melanin=m, hemoglobin=h, seed=i, size=(96, 128))), photos, f"p{i}",
                      image_format="png", truth_dir=tmp_path / "truth", maps=False)
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["analyze", str(photos), "--out", str(out), "--method", "rules", "--workers", "2",
                                 "--index", "a2=tests.user_indices:a_star", "--index", "bad=tests.user_indices:broken",
                                 "--index", "slow=tests.user_indices:slow", "--index-timeout", "1"])
    assert r.exit_code == 2, r.output
    err = [line for line in r.stderr.splitlines() if "index" in line]
    assert "skinimg: index bad failed on 2 of 2 image(s): ValueError: this index is broken (first: p0.png)" in err
    assert any(line.startswith("skinimg: index slow failed on 2 of 2 image(s): timed out after 1 s") for line in err)
    assert "Traceback" not in r.output
    rows = _read(out / "indices.csv")
    assert len(rows) == 2 and all(row["status"] == "ok" for row in rows)
    for row in rows:
        for s in STATS:
            assert float(row[f"a2{s}"]) == pytest.approx(float(row[f"a_star{s}"]), rel=1e-9, abs=1e-9)
            assert row[f"bad{s}"] == "" and row[f"slow{s}"] == ""
        assert "bad: ValueError: this index is broken" in row["index_errors"]
        assert math.isfinite(float(row["hemoglobin"]))
    assert (out / "maps" / "p0_a2.tif").is_file() and not (out / "maps" / "p0_bad.tif").exists()
    meta = json.loads((out / "analyze.json").read_text(encoding="utf-8"))
    assert meta["user_indices"][0] == "a2=tests.user_indices:a_star" and meta["index_errors"]["bad"]["n_failed"] == 2
    # the built-in numbers and their hash do not depend on the user indices
    plain = tmp_path / "plain"
    r2 = CliRunner().invoke(cli, ["analyze", str(photos), "--out", str(plain), "--method", "rules", "--no-maps"])
    assert r2.exit_code == 0, r2.output
    for a, b in zip(_read(plain / "indices.csv"), rows):
        assert a["params_hash"] == b["params_hash"] and a["hemoglobin_p90"] == b["hemoglobin_p90"]
    assert list(_read(plain / "indices.csv")[0]) == list(B_ROW_COLUMNS())


def B_ROW_COLUMNS():
    from skinimg.batch import ROW_COLUMNS

    return ROW_COLUMNS


def test_analyze_bad_import_is_one_line_before_work(tmp_path):
    r = CliRunner().invoke(cli, ["analyze", str(tmp_path), "--out", str(tmp_path / "o"),
                                 "--index", "x=tests.user_indices:nope"])
    assert r.exit_code == 1
    assert r.stderr.strip() == "skinimg: --index: index x: tests.user_indices has no 'nope'"


def test_bench_suites_user_copy_equals_built_in():
    """accuracy and repeatability: a re-implemented a_star gets a_star's numbers to 1e-9."""
    p = B.bench_params("small", melanin_levels=(0.02, 0.3), hemoglobin_levels=(0.005, 0.05),
                       subjects=((0.05, 0.02), (0.3, 0.02)), retakes=2)
    res = B.run_bench(("accuracy", "repeatability"), params=p,
                      indices=[U.parse_index_option("a2=tests.user_indices:a_star")])
    acc = {r["index"]: r for r in res["accuracy"]["indices"]}
    for key, v in acc["a_star"].items():
        if key in ("index", "target_source"):
            continue
        if isinstance(v, str):
            assert acc["a2"][key] == v
            continue
        assert acc["a2"][key] == pytest.approx(v, rel=1e-9, abs=1e-9), key
    assert acc["a2"]["target_source"] == "declared"
    rep = {(r["condition"], r["factor"], r["index"]): r for r in res["repeatability"]["rows"]}
    for (c, f, n), r in rep.items():
        if n != "a_star":
            continue
        for key in ("sem", "mdc", "mdc_pct", "cv_pct", "mean", "n_values"):
            assert rep[c, f, "a2"][key] == pytest.approx(r[key], rel=1e-9, abs=1e-9, nan_ok=True), (c, key)
    assert res["repeatability"]["calibration_failures"] == {"all": 0}  # the calibrated condition is compared too
    assert res["index_names"][-1] == "a2" and res["index_errors"] == {}
    md = B.format_markdown(res)
    assert "| `a2` |" in md

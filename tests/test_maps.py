"""Map files (issue 29): which maps are written (--maps, [analyze] maps), lossless float32 TIFFs (bit for bit,
NaN included), heatmaps at display size, and writing on a thread while the next photo is measured."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from skinimg import SkinImgError
from skinimg import indices as I
from skinimg.batch import analyze as A
from skinimg.batch import parse_pipeline, run_pipeline
from skinimg.batch.executors import BackgroundWriter, Deferred, finish, map_jobs
from skinimg.cli import cli
from skinimg.io import write_png, write_tiff

from .badcorpus import skin_like
from .harness import stand_in_segment
from .test_batch import _photo  # skin-coloured ellipse the stand-in segmenter finds


@pytest.fixture(autouse=True)
def stand_in_segmenter(monkeypatch):
    monkeypatch.setattr(A, "segment_skin", stand_in_segment)  # what analyze and run segment with (workers=1)


def _files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.*")) if folder.is_dir() else []


# ----------------------------------------------------------------------------- which maps

def test_map_names_sets_lists_and_errors():
    assert A.map_names(True) == A.map_names("default") == A.DEFAULT_MAPS
    assert A.DEFAULT_MAPS == ("erythema_index", "hemoglobin", "melanin")  # in INDEX_NAMES order
    assert A.map_names("all") == I.INDEX_NAMES
    assert A.map_names(False) == A.map_names(None) == A.map_names("none") == A.map_names([]) == ()
    # index order, whatever the order asked, duplicates once; a set plus a name
    assert A.map_names(" a_star,hemoglobin ,a_star") == ("a_star", "hemoglobin")
    assert A.map_names(["melanin", "l_star"]) == ("l_star", "melanin")
    assert A.map_names("default,ita_deg") == tuple(n for n in I.INDEX_NAMES if n in A.DEFAULT_MAPS + ("ita_deg",))
    with pytest.raises(SkinImgError, match=r"unknown map 'redness' \(use all, default, none or index names: "
                                           r"erythema_index, melanin_index"):
        A.map_names("hemoglobin,redness")
    with pytest.raises(SkinImgError, match="map names are strings"):
        A.map_names([1])


def test_report_heatmaps_are_in_the_default_set():
    from skinimg.report.study import HEATMAPS

    assert set(HEATMAPS) <= set(A.DEFAULT_MAPS)  # the clinic report's heatmaps need their TIFFs by default


def test_cli_maps_option_and_no_maps_alias(tmp_path):
    write_png(tmp_path / "in" / "a.png", _photo(1))
    runner = CliRunner()

    def run(*opts):
        out = tmp_path / f"out{len(list(tmp_path.iterdir()))}"
        r = runner.invoke(cli, ["analyze", str(tmp_path / "in"), "--out", str(out), "--workers", "1", *opts])
        return r, _files(out / "maps")

    r, files = run()
    assert r.exit_code == 0, r.output
    assert files == sorted(f"a_{n}.{e}" for n in A.DEFAULT_MAPS for e in ("png", "tif"))
    r, files = run("--maps", "all")
    assert files == sorted(f"a_{n}.{e}" for n in I.INDEX_NAMES for e in ("png", "tif"))
    r, files = run("--maps", "a_star,hemoglobin")
    assert files == ["a_a_star.png", "a_a_star.tif", "a_hemoglobin.png", "a_hemoglobin.tif"]
    for opts in (("--no-maps",), ("--maps", "none"), ("--no-maps", "--maps", "none")):
        r, files = run(*opts)
        assert r.exit_code == 0 and files == [], (opts, r.output)
    r, _ = run("--no-maps", "--maps", "all")
    assert r.exit_code == 2 and "give only one of --no-maps and --maps" in r.output
    r, _ = run("--maps", "hemoglobin,redness")
    assert r.exit_code == 1 and "unknown map 'redness'" in r.output and "Traceback" not in r.output


def test_pipeline_maps_setting(tmp_path):
    head = '[pipeline]\nstages = ["analyze"]\n[analyze]\nmaps = '
    for value, want in (("true", A.DEFAULT_MAPS), ("false", ()), ('"all"', I.INDEX_NAMES), ('"none"', ()),
                        ('"default"', A.DEFAULT_MAPS), ('["melanin", "b_star"]', ("b_star", "melanin"))):
        p = parse_pipeline(head + value + "\n", source="p.toml")
        assert A.map_names(p.options["analyze"]["maps"]) == want, value
    with pytest.raises(SkinImgError, match=r"p.toml: analyze.maps: unknown map 'hb'"):
        parse_pipeline(head + '["hb"]\n', source="p.toml")
    src = tmp_path / "in"
    write_png(src / "x.png", _photo(2))
    (tmp_path / "p.toml").write_text(head + '["melanin", "b_star"]\n')
    run_pipeline(tmp_path / "p.toml", src, tmp_path / "out", workers=1)
    assert _files(tmp_path / "out" / "maps") == ["x_b_star.png", "x_b_star.tif", "x_melanin.png", "x_melanin.tif"]


# ----------------------------------------------------------------------------- exact data

def _bits_equal(got: np.ndarray, want: np.ndarray) -> bool:
    return got.dtype == np.float32 and got.shape == want.shape and got.tobytes() == want.tobytes()


def test_tiff_maps_read_back_bit_for_bit(tmp_path):
    """Every written float32 TIFF equals the in-memory map of analyze_image bit for bit (NaN off skin at the same
    places), read with OpenCV (what the report uses) and with Pillow."""
    write_png(tmp_path / "in" / "v" / "p.png", _photo(3, 150, 200))
    params = A.AnalyzeParams(heatmap_max_side=100)
    A.analyze_paths([tmp_path / "in"], tmp_path / "out", params=params, workers=1, maps="all")
    row, maps = A.analyze_image(tmp_path / "in" / "v" / "p.png", params=params, maps="all")
    assert row["status"] == "ok" and set(maps) == set(I.INDEX_NAMES)
    for name, m in maps.items():
        assert np.isnan(m).any() and np.isfinite(m).any(), name
        tif = tmp_path / "out" / "maps" / "v" / f"p_{name}.tif"
        assert _bits_equal(cv2.imread(str(tif), cv2.IMREAD_UNCHANGED), m), name
        with Image.open(tif) as im:
            assert _bits_equal(np.asarray(im), m), name
        png = cv2.imread(str(tmp_path / "out" / "maps" / "v" / f"p_{name}.png"))
        assert png.shape[0] == 75 and png.shape[1] > 100  # display size: long side of the photo 200 -> 100 px


def test_write_tiff_is_bit_exact_across_strips_and_special_values(tmp_path):
    """Several 1-MiB strips, NaN, +-inf, -0.0, subnormals and random bit patterns come back unchanged."""
    rng = np.random.default_rng(7)
    m = rng.standard_normal((900, 700)).astype(np.float32)  # 2800 bytes a row: 374 rows a strip, 3 strips
    m[rng.random(m.shape) < 0.4] = np.nan
    m[0, :4] = [np.inf, -np.inf, -0.0, np.float32(1e-42)]
    m[1] = rng.integers(0, 2**32, 700, dtype=np.uint32).view(np.float32)  # any bits, NaN payloads included
    path = write_tiff(tmp_path / "m.tif", m)
    assert _bits_equal(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), m)
    with Image.open(path) as im:
        assert _bits_equal(np.asarray(im), m)
    tifffile = pytest.importorskip("tifffile")  # installed with scikit-image
    assert _bits_equal(tifffile.imread(path), m)
    if hasattr(cv2, "IMWRITE_TIFF_ROWSPERSTRIP"):
        assert len(tifffile.TiffFile(path).pages[0].dataoffsets) == 3


def test_write_png_fast_reads_back_equal(tmp_path):
    img = np.ascontiguousarray(np.concatenate([_photo(5), skin_like(96, 128, 6)], axis=1))
    p = write_png(tmp_path / "f.png", img, fast=True)
    assert np.array_equal(cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB), img)


# ----------------------------------------------------------------------------- writing meanwhile

@pytest.mark.parametrize("threads", [1, 2])
def test_background_writer_overlaps_and_keeps_order(threads):
    """``threads`` results are written while the caller goes on; one more waits for the oldest."""
    main = threading.get_ident()
    release = threading.Event()
    started = [threading.Event() for _ in range(threads + 1)]
    seen = []

    def job(k):
        def write():
            seen.append((k, threading.get_ident() != main))
            started[k].set()
            if k < threads:
                release.wait(5)
            return k
        return Deferred(write)

    w = BackgroundWriter(threads=threads)
    try:
        first = [w.submit(job(k)) for k in range(threads)]
        assert all(e.wait(5) for e in started[:threads]) and not any(f.done() for f in first)  # written meanwhile
        threading.Timer(0.2, release.set).start()
        t = time.perf_counter()
        last = w.submit(job(threads))  # waits for the oldest: at most `threads` results are written at a time
        assert time.perf_counter() - t > 0.1 and first[0].done()
        plain = w.submit({"plain": 1})  # a plain result passes through
        assert [f.result() for f in first + [last, plain]] == list(range(threads + 1)) + [{"plain": 1}]
    finally:
        w.close()
    assert sorted(seen) == [(k, True) for k in range(threads + 1)]


def test_background_writer_failure_stops_at_the_next_photo():
    def fail():
        raise SkinImgError("cannot write output (No space left on device)", "maps/a_melanin.tif")

    w = BackgroundWriter(threads=2)
    try:
        w.submit(Deferred(fail))
        time.sleep(0.2)  # done before the next photo is measured: re-raised at once, not after two more
        with pytest.raises(SkinImgError, match="No space left"):
            w.submit(Deferred(lambda: 1))
    finally:
        w.close()
    assert finish(Deferred(lambda: 3)) == 3 and finish(4) == 4


def test_map_jobs_in_process_returns_written_results(tmp_path):
    def job(k):
        return Deferred(lambda: (tmp_path / f"{k}.txt").write_text(str(k)) and k)

    assert map_jobs(job, list(range(4)), workers=1) == [0, 1, 2, 3]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0.txt", "1.txt", "2.txt", "3.txt"]


def test_a_photo_whose_map_cannot_be_named_is_its_error_row(tmp_path):
    """The maps are written after the row is measured; a name too long for the file system is still that
    photo's error row, the other photos are complete (one worker: the writer thread)."""
    long_name = "x" * 240 + ".png"  # the file itself fits; "<stem>_erythema_index.tif" does not
    src = tmp_path / "in"
    write_png(src / long_name, _photo(6))
    write_png(src / "ok.png", _photo(7))
    res = A.analyze_paths([src], tmp_path / "out", workers=1)
    rows = {r["image"]: r for r in res["rows"]}
    assert rows[long_name]["status"] == "error" and "file name too long" in rows[long_name]["error"]
    assert rows["ok.png"]["status"] == "ok"
    assert _files(tmp_path / "out" / "maps") == sorted(f"ok_{n}.{e}" for n in A.DEFAULT_MAPS for e in ("png", "tif"))

"""`skinimg run` (issue 7): pipelines, executors, resume, kill -9, bad files, run.json."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from skinimg import SkinImgError, __version__
from skinimg.batch import analyze as A
from skinimg.batch import make_plan, run_pipeline
from skinimg.cli import cli
from skinimg.io import write_png
from skinimg.batch import STAGES, load_pipeline, packaged_pipelines, parse_pipeline

from .badcorpus import skin_like
from .harness import stand_in_segment

REPO = Path(__file__).resolve().parents[1]


def _photo(seed: int, h: int = 96, w: int = 128) -> np.ndarray:
    """Skin-coloured ellipse on a blue background (the stand-in segmenter finds the ellipse)."""
    img = np.empty((h, w, 3), np.uint8)
    img[:] = (50, 80, 150)
    yy, xx = np.mgrid[:h, :w]
    skin = ((yy - h / 2) / (0.4 * h)) ** 2 + ((xx - w / 2) / (0.42 * w)) ** 2 <= 1
    img[skin] = skin_like(h, w, seed)[skin]
    return img


def _folder(root: Path, n: int, *, bad: bool = False) -> Path:
    for k in range(n):
        write_png(root / f"p{k % 3}" / f"img{k:02d}.png", _photo(k))
    if bad:
        (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
        png = (root / "p0" / "img00.png").read_bytes()
        (root / "truncated.png").write_bytes(png[: len(png) // 2])
        (root / "notes.png").write_text("this is text, not a picture")
        write_png(root / "blue.png", np.full((40, 50, 3), (40, 60, 200), np.uint8))  # no skin
    return root


PIPE = '[pipeline]\nstages = ["analyze"]\nformats = ["csv", "parquet"]\n[analyze]\nmaps = {maps}\n'


def _pipe(tmp_path: Path, maps: bool = True, name: str = "p.toml") -> Path:
    p = tmp_path / name
    p.write_text(PIPE.format(maps=str(maps).lower()))
    return p


def _db(path: Path, table: str) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(path)) as con:
        return sorted(con.execute(f'SELECT * FROM "{table}"').fetchall())


def _tables(out: Path) -> dict:
    """Everything a run leaves that must be identical across executors / interruptions."""
    snap = {"indices": _db(out / "results.sqlite", "indices"), "jobs": _db(out / "results.sqlite", "jobs"),
            "indices.csv": (out / "indices.csv").read_bytes()}
    for p in sorted((out / "maps").rglob("*")) if (out / "maps").is_dir() else []:
        if p.is_file():
            snap[p.relative_to(out).as_posix()] = p.read_bytes()
    return snap


# ----------------------------------------------------------------------------- pipeline files

@pytest.mark.parametrize("text, needle", [
    ('[pipeline]\nstages = ["analyze"]\n[analyze]\ncolour = 1\n', "unknown key 'analyze.colour'"),
    ('[pipeline]\nstages = ["analyze"]\nworkers = 4\n', "unknown key 'pipeline.workers'"),
    ('[pipeline]\nstages = ["segmnt", "analyze"]\n', "unknown stage 'segmnt'"),
    ('[pipeline]\nstages = ["analyze"]\n[analyse]\nmaps = false\n', "unknown table [analyse]"),
    ('[pipeline]\nstages = ["analyze"]\n[analyze]\nmaps = "yes"\n', "analyze.maps: unknown map 'yes'"),
    ('[pipeline]\nstages = ["analyze"]\n[analyze]\nmaps = 3\n', "analyze.maps must be true or false or a string"),
    ('[pipeline]\nstages = ["analyze"]\n[analyze]\nchromophores = "pca"\n', "analyze.chromophores must be one of"),
    ('[pipeline]\nstages = ["analyze", "calibrate"]\n', "out of order"),
    ('[pipeline]\nstages = ["report", "analyze"]\n', "out of order"),
    ('[pipeline]\nstages = ["analyze", "analyze"]\n', "'analyze' is listed twice"),
    ('[pipeline]\nstages = ["analyze"]\n[report]\ntitle = "x"\n', "[report] configures stage 'report'"),
    ('[pipeline]\nstages = ["regress"]\n[regress]\nexpected = "e.csv"\n', "add 'analyze'"),
    ('[pipeline]\nstages = ["analyze", "regress"]\n', "missing key 'regress.expected'"),
    ('[pipeline]\nstages = ["analyze"]\nformats = ["xlsx"]\n', "pipeline.formats"),
    ('[pipeline]\nstages = []\n', "pipeline.stages is empty"),
    ('[pipeline]\nname = "x"\n', "missing key 'pipeline.stages'"),
    ('[analyze]\nmaps = true\n', "missing table [pipeline]"),
    ('[pipeline]\nstages = ["analyze"\n', "invalid TOML"),
    ('[pipeline]\nstages = ["segment", "analyze"]\n[analyze]\nmethod = "rules"\n', "'analyze.method' conflicts"),
])
def test_invalid_pipeline_names_the_key_and_the_file(tmp_path, text, needle):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(SkinImgError) as ei:
        load_pipeline(f)
    assert needle in ei.value.reason and ei.value.path == str(f)
    # the CLI: one line naming file and key, exit 1, before any photo is touched
    src = _folder(tmp_path / "in", 1)
    r = CliRunner().invoke(cli, ["run", str(f), str(src), "--out", str(tmp_path / "out")])
    assert r.exit_code == 1 and needle in r.output and str(f) in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_shipped_pipelines_resolve_by_name_and_validate():
    shipped = packaged_pipelines()
    assert {"clinic", "research", "ci"} <= set(shipped)
    assert shipped["clinic"].parent.name == "pipelines"
    clinic, research, ci = (load_pipeline(n) for n in ("clinic", "research", "ci"))
    assert clinic.stages == ("calibrate", "segment", "analyze", "track", "report")
    assert research.stages == ("segment", "analyze") and research.formats == ("csv", "parquet")
    assert ci.stages == ("analyze", "track", "regress") and ci.options["regress"]["expected"].startswith("sample_images/")
    assert ci.exclude == ("truth/*", "expected/*") and ci.options["track"]["root"] == "patients"
    # defaults filled in for every option of the registry
    assert set(clinic.options["calibrate"]) == set(STAGES["calibrate"].options)
    assert load_pipeline(REPO / "pipelines" / "ci.toml").sha256 == ci.sha256
    with pytest.raises(SkinImgError, match="no pipeline named 'nightly'.*ci, clinic, research"):
        load_pipeline("nightly")
    with pytest.raises(SkinImgError, match="pipeline file not found"):
        load_pipeline("missing/dir/x.toml")


# ----------------------------------------------------------------------------- engine

def test_run_equals_analyze_and_exports_come_from_sqlite(tmp_path):
    src = _folder(tmp_path / "in", 5, bad=True)
    res = run_pipeline(_pipe(tmp_path), src, tmp_path / "run", workers=1)
    A.analyze_paths([src], tmp_path / "an", params=res["plan"].analyze, workers=1, formats=["csv"])
    run, an = tmp_path / "run", tmp_path / "an"
    # the same library functions: byte-identical table and maps
    assert (run / "indices.csv").read_bytes() == (an / "indices.csv").read_bytes()
    maps = sorted(p.relative_to(an).as_posix() for p in (an / "maps").rglob("*.*"))
    assert maps and maps == sorted(p.relative_to(run).as_posix() for p in (run / "maps").rglob("*.*"))
    assert all((run / m).read_bytes() == (an / m).read_bytes() for m in maps)
    assert _db(run / "results.sqlite", "indices") == _db(an / "results.sqlite", "indices")
    pq = pytest.importorskip("pyarrow.parquet")
    t = pq.read_table(run / "indices.parquet").to_pylist()
    with open(run / "indices.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [x["image"] for x in t] == [x["image"] for x in rows] == sorted(x["image"] for x in rows)
    assert res["processed"] == 9 and res["skipped"] == 0
    with sqlite3.connect(run / "results.sqlite") as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_resume_skips_done_photos_and_redoes_changed_ones(tmp_path):
    src = _folder(tmp_path / "in", 6, bad=True)
    out = tmp_path / "out"
    pipe = _pipe(tmp_path, maps=False)
    first = run_pipeline(pipe, src, out, workers=1)
    assert first["processed"] == 10 and first["skipped"] == 0
    table = _tables(out)
    # rerun: the 7 done photos (6 ok + 1 no_skin) are skipped, the 3 errors retried, the table unchanged
    events = []
    again = run_pipeline(pipe, src, out, workers=1, progress=events.append)
    assert again["skipped"] == 7 and again["processed"] == 3
    assert sorted(e["image"] for e in events if e.get("outcome") == "skipped") == sorted(
        [f"p{k % 3}/img{k:02d}.png" for k in range(6)] + ["blue.png"])
    assert _tables(out) == table
    assert {i for i, _, _ in again["failed"]} == {"blue.png", "broken.jpg", "notes.png", "truncated.png"}
    # a changed photo is recomputed (new content hash), a removed one leaves the tables
    write_png(src / "p1" / "img01.png", _photo(99))
    (src / "p2" / "img02.png").unlink()
    third = run_pipeline(pipe, src, out, workers=1)
    assert third["processed"] == 4 and third["skipped"] == 5
    rows = {r[0]: r for r in _db(out / "results.sqlite", "indices")}
    assert "p2/img02.png" not in rows and len(rows) == 9
    fresh = A.analyze_image(src / "p1" / "img01.png", params=first["plan"].analyze, maps=False)[0]
    assert rows["p1/img01.png"][A.ROW_COLUMNS.index("erythema_index")] == fresh["erythema_index"]
    jobs = {r[0]: r for r in _db(out / "results.sqlite", "jobs")}
    assert jobs["p1/img01.png"][1] == hashlib.sha256((src / "p1" / "img01.png").read_bytes()).hexdigest()
    # changed per-image options (maps on) change the job hash: everything is redone, maps appear
    fourth = run_pipeline(_pipe(tmp_path, maps=True), src, out, workers=1)
    assert fourth["skipped"] == 0 and fourth["processed"] == 9
    assert len(list((out / "maps").rglob("*.tif"))) == 5 * len(A.DEFAULT_MAPS) or (out / "maps").is_dir()
    with sqlite3.connect(out / "results.sqlite") as con:
        for t in ("indices", "jobs"):
            assert con.execute(f"SELECT COUNT(*), COUNT(DISTINCT image) FROM {t}").fetchone() == (9, 9)


def test_local_pool_and_dask_give_identical_tables(tmp_path):
    distributed = pytest.importorskip("distributed")
    src = _folder(tmp_path / "in", 6, bad=True)
    pipe = _pipe(tmp_path)
    run_pipeline(pipe, src, tmp_path / "inline", workers=1)
    run_pipeline(pipe, src, tmp_path / "pool", workers=2)
    # a real LocalCluster on loopback (threads, to stay fast), reached through --scheduler
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp",
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        addr = cluster.scheduler_address
        assert addr.startswith("tcp://127.0.0.1:")
        r = CliRunner().invoke(cli, ["run", str(pipe), str(src), "--out", str(tmp_path / "dask"),
                                     "--executor", "dask", "--scheduler", addr])
    assert r.exit_code == 2, r.output
    ref = _tables(tmp_path / "inline")
    assert len(ref["indices"]) == 10
    assert _tables(tmp_path / "pool") == ref
    assert _tables(tmp_path / "dask") == ref
    # --scheduler only with the dask executor
    r = CliRunner().invoke(cli, ["run", str(pipe), str(src), "--out", str(tmp_path / "x"), "--scheduler", addr])
    assert r.exit_code == 2 and "--scheduler needs --executor dask" in r.output


def test_dask_local_cluster_of_worker_processes(tmp_path):
    pytest.importorskip("distributed")
    src = _folder(tmp_path / "in", 3)
    pipe = _pipe(tmp_path, maps=False)
    run_pipeline(pipe, src, tmp_path / "inline", workers=1)
    res = run_pipeline(pipe, src, tmp_path / "dask", workers=1, executor="dask")  # LocalCluster, 1 process
    assert res["processed"] == 3 and not res["failed"]
    assert _tables(tmp_path / "dask") == _tables(tmp_path / "inline")


def _harness(args) -> list[str]:
    """The ``skinimg`` command in a subprocess."""
    return [sys.executable, "-m", "skinimg", *map(str, args)]


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


def _done_rows(db: Path) -> int:
    try:
        with contextlib.closing(sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=1)) as con:
            return con.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_kill_9_mid_batch_then_rerun_gives_the_identical_table(tmp_path):
    src = _folder(tmp_path / "in", 14)
    pipe = _pipe(tmp_path)
    ref = tmp_path / "ref"
    run_pipeline(pipe, src, ref, workers=1)
    expected = _tables(ref)
    out = tmp_path / "out"
    argv = ["run", pipe, src, "--out", out, "--workers", "2"]
    proc = subprocess.Popen(_harness(argv), env=_env(), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while _done_rows(out / "results.sqlite") < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # the parent and its workers, mid-batch
    proc.wait()
    n_before = _done_rows(out / "results.sqlite")
    assert 3 <= n_before < 14, n_before
    # resume in one process (any worker count gives the same rows)
    r = subprocess.run(_harness(argv[:-1] + ["1"]), env=_env(), cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert f"{n_before} skipped (already done)" in r.stderr
    assert _tables(out) == expected
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    with sqlite3.connect(out / "results.sqlite") as con:
        assert con.execute("SELECT COUNT(*), COUNT(DISTINCT image) FROM indices").fetchone() == (14, 14)


def test_mixed_folder_finishes_good_photos_and_reports_bad_ones(tmp_path):
    src = _folder(tmp_path / "in", 4, bad=True)
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["run", str(_pipe(tmp_path, maps=False)), str(src), "--out", str(out),
                                 "--workers", "1"])
    assert r.exit_code == 2
    err = r.stderr
    for name, reason in [("broken.jpg", "skinimg: broken.jpg: "), ("truncated.png", "skinimg: truncated.png: "),
                         ("notes.png", "skinimg: notes.png: "), ("blue.png", "skinimg: blue.png: no skin found")]:
        assert reason in err, name
    assert "8 image(s): 8 processed, 0 skipped (already done), 4 failed" in err
    assert "8/8 images" in err  # plain progress line (not a terminal)
    with open(out / "indices.csv", newline="") as fh:
        by = {x["image"]: x for x in csv.DictReader(fh)}
    assert [k for k, v in by.items() if v["status"] == "ok"] == [f"p{k % 3}/img{k:02d}.png" for k in (0, 3, 1, 2)]
    assert {k: v["status"] for k, v in by.items() if v["status"] != "ok"} == {
        "blue.png": "no_skin", "broken.jpg": "error", "notes.png": "error", "truncated.png": "error"}
    assert all(by[k]["error"] for k in ("broken.jpg", "notes.png", "truncated.png"))
    # --quiet: no progress, no summary; the failures are still listed
    r = CliRunner().invoke(cli, ["run", str(_pipe(tmp_path, maps=False)), str(src), "--out", str(out), "--quiet"])
    assert r.exit_code == 2 and "images (" not in r.stderr and "processed" not in r.stderr
    assert "skinimg: broken.jpg: " in r.stderr


def test_run_json_records_versions_pipeline_parameters_hashes_and_times(tmp_path):
    src = _folder(tmp_path / "in", 3)
    pipe = _pipe(tmp_path, maps=False)
    res = run_pipeline(pipe, src, tmp_path / "out", workers=1)
    m = json.loads((tmp_path / "out" / "run.json").read_text())
    assert m["skinimg_version"] == __version__
    assert m["dependencies"]["numpy"] == np.__version__ and "opencv-python-headless" in m["dependencies"]
    assert m["pipeline"]["text"] == pipe.read_text()
    assert m["pipeline"]["sha256"] == hashlib.sha256(pipe.read_bytes()).hexdigest()
    assert m["pipeline"]["resolved"]["analyze"] == {"method": "model", "second_stage": "mlp", "check": False,
                                                     "chromophores": "basis", "branch": "auto", "maps": False,
                                                     "resolution": 0.75}
    with open(tmp_path / "out" / "indices.csv", newline="") as fh:
        hashes = {x["params_hash"] for x in csv.DictReader(fh)}
    assert hashes == {m["parameters"]["params_hash"]} == {res["plan"].analyze.hash()}
    assert m["parameters"]["plan"]["analyze"]["indices"]["chromophore_method"] == "basis"
    assert m["inputs"] == [str(src)]
    assert m["input_hashes"] == [{"image": f"p{k % 3}/img{k:02d}.png",
                                  "sha256": hashlib.sha256((src / f"p{k % 3}" / f"img{k:02d}.png").read_bytes()).hexdigest()}
                                 for k in (0, 1, 2)]
    t0, t1 = (datetime.fromisoformat(m[k]) for k in ("start_time", "end_time"))
    assert t0 <= t1 and t0.tzinfo is not None
    assert m["counts"] == {"images": 3, "processed": 3, "skipped": 0, "failed": 0, "mask_check": 0}


def test_calibrate_stage_composes_calibrate_image_and_excludes_the_chart(tmp_path):
    from skinimg.calibrate import calibrate_image, chart_mask
    from skinimg.io import load_image

    photo = REPO / "sample_images" / "chart" / "chart_tungsten.jpg"
    text = ('[pipeline]\nstages = ["calibrate", "analyze"]\n[calibrate]\nwrite_images = true\n'
            '[analyze]\nmaps = false\n')
    (tmp_path / "c.toml").write_text(text)
    res = run_pipeline(tmp_path / "c.toml", photo, tmp_path / "out", workers=1)
    rgb, _ = load_image(photo)
    ref, corr = calibrate_image(rgb)
    assert corr.kind == "chart"
    with open(tmp_path / "out" / "calibrate.csv", newline="") as fh:
        (crow,) = list(csv.DictReader(fh))
    assert crow["kind"] == "chart" and float(crow["delta_e_after_mean"]) == corr.delta_e_after["mean"]
    doc = json.loads((tmp_path / "out" / "calibration" / "chart_tungsten.json").read_text())
    assert doc["matrix"] == corr.to_dict()["matrix"]
    saved, _ = load_image(tmp_path / "out" / "calibrated" / "chart_tungsten.png")
    assert np.array_equal(saved, ref)
    seg_mask = np.asarray(A.segment_photo(ref, A.AnalyzeParams()).mask, dtype=bool)
    cmask = chart_mask(ref.shape, corr)
    with open(tmp_path / "out" / "indices.csv", newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    assert int(row["skin_pixels"]) == int((seg_mask & ~cmask).sum())
    assert row["calibration"] == "chart"
    assert row["params_hash"] == res["plan"].row_hash != res["plan"].analyze.hash()


def test_segment_stage_adapter_writes_masks_and_feeds_analyze(tmp_path, monkeypatch):
    monkeypatch.setattr(A, "segment_skin", stand_in_segment)  # the batch layer's segmentation
    src = _folder(tmp_path / "in", 2)
    write_png(src / "blue.png", np.full((40, 50, 3), (40, 60, 200), np.uint8))
    (tmp_path / "s.toml").write_text('[pipeline]\nstages = ["segment", "analyze"]\n[analyze]\nmaps = false\n')
    res = run_pipeline(tmp_path / "s.toml", src, tmp_path / "out", workers=1)
    with open(tmp_path / "out" / "segment.csv", newline="") as fh:
        seg = {x["image"]: x for x in csv.DictReader(fh)}
    assert list(next(iter(seg.values()))) == ["image", "status", "error", "skin_fraction", "method", "stage_agreement",
                                              "mask_check", "roi", "roi_source", "roi_pixels"]
    assert seg["blue.png"]["status"] == "no_skin" and seg["p0/img00.png"]["status"] == "ok"
    from skinimg.io import read_mask

    m = read_mask(tmp_path / "out" / "masks" / "p0" / "img00.png")
    assert np.array_equal(m, stand_in_segment(_photo(0)).mask)
    assert float(seg["p0/img00.png"]["skin_fraction"]) == m.mean()
    assert [i for i, _, _ in res["failed"]] == ["blue.png"]


def test_regress_stage_passes_then_fails_on_drift(tmp_path):
    src = _folder(tmp_path / "in", 3)
    base = tmp_path / "base"
    run_pipeline(_pipe(tmp_path, maps=False), src, base, workers=1)
    expected = tmp_path / "expected.csv"
    expected.write_bytes((base / "indices.csv").read_bytes())
    text = (f'[pipeline]\nstages = ["analyze", "regress"]\n[analyze]\nmaps = false\n'
            f'[regress]\nexpected = "{expected}"\ntolerances = {{ erythema_index = 0.5 }}\n')
    (tmp_path / "ci.toml").write_text(text)
    r = CliRunner().invoke(cli, ["run", str(tmp_path / "ci.toml"), str(src), "--out", str(tmp_path / "o")])
    assert r.exit_code == 0 and "regress: ok" in r.stderr, r.output
    with open(expected, newline="") as fh:
        rows = list(csv.DictReader(fh))
    rows[1]["erythema_index"] = str(float(rows[1]["erythema_index"]) + 0.6)
    with open(expected, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    r = CliRunner().invoke(cli, ["run", str(tmp_path / "ci.toml"), str(src), "--out", str(tmp_path / "o")])
    assert r.exit_code == 1 and "drift: 1 difference(s)" in r.stderr
    assert rows[1]["image"] in r.stdout and "erythema_index" in r.stdout
    assert "1 skipped" not in r.stderr and "3 skipped (already done)" in r.stderr


def test_plan_hash_covers_every_per_image_option():
    a = make_plan(parse_pipeline('[pipeline]\nstages = ["analyze"]\n'))
    b = make_plan(parse_pipeline('[pipeline]\nstages = ["analyze"]\n[analyze]\nmaps = false\n'))
    c = make_plan(parse_pipeline('[pipeline]\nstages = ["analyze", "report"]\n'))
    d = make_plan(parse_pipeline('[pipeline]\nstages = ["analyze"]\nmax_pixels = 1000\n'))
    assert a.job_hash != b.job_hash and a.job_hash != d.job_hash
    assert a.job_hash == c.job_hash  # batch stages do not change per-photo results
    assert a.row_hash == b.row_hash == A.AnalyzeParams().hash()


def test_pipeline_exclude_and_track_root_are_validated(tmp_path):
    f = tmp_path / "p.toml"
    f.write_text('[pipeline]\nstages = ["analyze", "track"]\nexclude = ["x/*"]\n[track]\nroot = "../elsewhere"\n')
    with pytest.raises(SkinImgError, match="track.root must be a folder inside INPUT"):
        load_pipeline(f)
    f.write_text('[pipeline]\nstages = ["analyze"]\nexclude = [3]\n')
    with pytest.raises(SkinImgError, match="pipeline.exclude must list shell patterns"):
        load_pipeline(f)


def test_segment_stage_check_reaches_the_tables_and_second_stage_is_a_no_op(tmp_path):
    # the real segmenter: the pipeline's check reaches segment_skin and its agreement the tables; the deprecated
    # second_stage is accepted and changes nothing (the second stages were retired, issue 22)
    from skinimg import segment as S
    from skinimg.io import read_mask
    from skinimg.phantom import PhantomSpec, render_phantom

    src = tmp_path / "in"
    ph = render_phantom(PhantomSpec(melanin=0.3, hemoglobin=0.02, seed=7, size=(240, 320)))
    write_png(src / "dark.png", ph.image)
    (tmp_path / "b.toml").write_text('[pipeline]\nstages = ["segment", "analyze"]\n[segment]\nsecond_stage = "both"\n'
                                     'check = true\n[analyze]\nmaps = false\n')
    res = run_pipeline(tmp_path / "b.toml", src, tmp_path / "out", workers=1)
    lib = S.segment_skin(ph.image, check=True)
    np.testing.assert_array_equal(read_mask(tmp_path / "out" / "masks" / "dark.png"), lib.mask)
    np.testing.assert_array_equal(lib.mask, S.segment_skin(ph.image).mask)  # checking does not change the mask
    with open(tmp_path / "out" / "segment.csv", newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    assert float(row["stage_agreement"]) == pytest.approx(lib.agreement, abs=1e-4) and row["mask_check"] == lib.mask_check
    with open(tmp_path / "out" / "indices.csv", newline="") as fh:
        (irow,) = list(csv.DictReader(fh))
    assert int(irow["skin_pixels"]) == int(lib.mask.sum())
    assert irow["params_hash"] == res["plan"].analyze.hash() == A.AnalyzeParams().hash()  # second_stage: not hashed
    # without check: no flag columns
    (tmp_path / "c.toml").write_text('[pipeline]\nstages = ["segment"]\n[segment]\nsecond_stage = "net"\n')
    run_pipeline(tmp_path / "c.toml", src, tmp_path / "out2", workers=1)
    np.testing.assert_array_equal(read_mask(tmp_path / "out2" / "masks" / "dark.png"), lib.mask)
    with open(tmp_path / "out2" / "segment.csv", newline="") as fh:
        (row2,) = list(csv.DictReader(fh))
    assert row2["stage_agreement"] == "" and row2["mask_check"] == ""
    # analyze without a segment stage: the same mask whatever its (deprecated) second_stage
    (tmp_path / "a.toml").write_text('[pipeline]\nstages = ["analyze"]\n[analyze]\nsecond_stage = "both"\nmaps = false\n')
    run_pipeline(tmp_path / "a.toml", src, tmp_path / "out3", workers=1)
    with open(tmp_path / "out3" / "indices.csv", newline="") as fh:
        (irow3,) = list(csv.DictReader(fh))
    assert irow3["skin_pixels"] == irow["skin_pixels"]


def test_track_stage_segments_the_pairs_as_the_segment_stage_does(tmp_path, monkeypatch):
    from skinimg.phantom import PhantomSpec, render_phantom

    root = tmp_path / "study"
    for date, hb in (("2026-01-05", 0.02), ("2026-02-05", 0.03)):
        ph = render_phantom(PhantomSpec(melanin=0.07, hemoglobin=hb, seed=21, size=(240, 320), site="face"))
        write_png(root / "P1" / "cheek" / date / "face.png", ph.image)
    from skinimg.session import compare as SC

    seen = []
    real = SC.segment_skin

    def spy(rgb, *, method, **kw):
        seen.append(method)
        return real(rgb, method=method, **kw)

    monkeypatch.setattr(SC, "segment_skin", spy)  # what the pairs of the track stage are segmented with
    (tmp_path / "t.toml").write_text('[pipeline]\nstages = ["segment", "track"]\n[segment]\nsecond_stage = "both"\n'
                                     'write_masks = false\n')
    res = run_pipeline(tmp_path / "t.toml", root, tmp_path / "out", workers=1)
    assert not res["failed"]
    assert seen and set(seen) == {"model"}  # the track stage's two photos per pair
    doc = json.loads(next((tmp_path / "out").rglob("comparison.json")).read_text())
    assert doc["params"]["second_stage"] == "both"  # deprecated, recorded as given, no effect


def test_run_counts_and_names_the_flagged_masks(tmp_path):
    import shutil

    from skinimg.phantom import plain_scene

    src = tmp_path / "in"
    write_png(src / "plain.png", plain_scene(0)[0])  # skin on a flat background: the network agrees with itself
    shutil.copy(Path(__file__).resolve().parents[1] / "sample_images" / "real" / "astronaut.jpg", src / "astronaut.jpg")
    (tmp_path / "c.toml").write_text('[pipeline]\nstages = ["segment", "analyze"]\n[segment]\ncheck = true\n'
                                     '[analyze]\nmaps = false\n')
    r = CliRunner().invoke(cli, ["run", str(tmp_path / "c.toml"), str(src), "--out", str(tmp_path / "out"),
                                 "--workers", "1"])
    assert r.exit_code == 0, r.output
    assert "1 skin mask(s) to check by eye (mask_check = check): astronaut.jpg" in r.stderr
    m = json.loads((tmp_path / "out" / "run.json").read_text())
    assert m["mask_check"] == ["astronaut.jpg"] and m["counts"]["mask_check"] == 1
    with open(tmp_path / "out" / "indices.csv", newline="") as fh:
        rows = {x["image"]: x for x in csv.DictReader(fh)}
    with open(tmp_path / "out" / "segment.csv", newline="") as fh:
        seg = {x["image"]: x for x in csv.DictReader(fh)}
    # the indices rows carry the segment stage's flag
    for name in ("plain.png", "astronaut.jpg"):
        assert rows[name]["mask_check"] == seg[name]["mask_check"]
        assert rows[name]["stage_agreement"] == seg[name]["stage_agreement"]
    assert rows["astronaut.jpg"]["mask_check"] == "check" and rows["plain.png"]["mask_check"] == "ok"

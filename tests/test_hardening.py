"""Issue 9: hostile and broken input through the commands, exit codes, crash safety, full disk.

The bad-input corpus (tests/badcorpus.py) goes through every batch command via Click's
CliRunner (in process, one worker, so that ``-W error::RuntimeWarning`` sees every
warning); crash safety is checked with real processes killed by SIGKILL.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from skinimg.io import write as sio
from skinimg.cli import cli
from skinimg.io import write_png

from .badcorpus import make_corpus, skin_like
from .harness import snapshot

REPO = Path(__file__).resolve().parents[1]
OK_LIKE = ("ok", "no_skin", "ok-or-error")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    return root, make_corpus(root)


def _csv(path: Path) -> dict[str, dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    names = [r["image"] for r in rows]
    assert len(names) == len(set(names)), "duplicate rows"
    return {r["image"]: r for r in rows}


def _run(args, **kw):
    r = CliRunner().invoke(cli, [str(a) for a in args], **kw)
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    assert "Traceback" not in r.output and "Traceback" not in r.stderr
    return r


def _stderr_lines_for(stderr: str, name: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(f"skinimg: {name}: ")]


def _assert_bad_files_reported(root: Path, exp: dict, rows: dict, stderr: str, *, no_skin_is_error: bool) -> None:
    for name, expect in exp.items():
        row = rows[name]
        lines = _stderr_lines_for(stderr, name)
        if expect == "ok" or (expect == "no_skin" and not no_skin_is_error) or expect == "ok-or-error":
            if expect != "ok-or-error":
                assert row["status"] == "ok", (name, row["status"], row["error"])
                assert not lines, (name, lines)
            continue
        if expect == "no_skin":
            assert row["status"] == "no_skin" and "no skin" in row["error"], (name, row)
            assert len(lines) == 1 and "no skin" in lines[0], (name, stderr)
            continue
        assert row["status"] == "error" and expect in row["error"], (name, row["error"])
        assert len(lines) == 1 and expect in lines[0], (name, stderr)
    assert str(root) not in stderr and os.path.expanduser("~") + os.sep not in stderr


# ----------------------------------------------------------------------------- analyze


def test_analyze_corpus(corpus, tmp_path):
    root, exp = corpus
    out = tmp_path / "out"
    r = _run(["analyze", root, "--out", out, "--workers", "1"])
    assert r.exit_code == 2, r.stderr
    rows = _csv(out / "indices.csv")
    assert set(rows) == set(exp)
    _assert_bad_files_reported(root, exp, rows, r.stderr, no_skin_is_error=True)
    assert str(root) not in (out / "indices.csv").read_text(encoding="utf-8")
    for name, expect in exp.items():
        if expect == "ok":
            assert all(math.isfinite(float(rows[name][c])) for c in ("erythema_index", "melanin_index", "l_star", "ita_deg",
                                                                    "hemoglobin", "melanin", "skin_fraction")), name
        if rows[name]["status"] == "no_skin":  # a status with empty indices, not NaN from a division by zero
            assert rows[name]["erythema_index"] == "" and rows[name]["width"] != ""

    # valid but unusual files give the values of the plain 8-bit file with the same pixels
    def v(name, col="erythema_index"):
        return float(rows[name][col])

    for col in ("erythema_index", "melanin_index", "l_star", "a_star", "b_star"):
        assert v("sixteen.png", col) == pytest.approx(v("rgba.png", col), abs=0.02, rel=1e-3), col
        assert v("sixteen.tif", col) == pytest.approx(v("sixteen.png", col), abs=1e-9), col
        assert v("cmyk.jpg", col) == pytest.approx(v("good.jpg", col), abs=2.5), col
        assert v("rotated.jpg", col) == pytest.approx(v("good.jpg", col), abs=1.0), col
    assert (rows["rotated.jpg"]["width"], rows["rotated.jpg"]["height"]) == ("96", "128")
    assert rows["sixteen.png"]["bit_depth"] == "16"

    # same file name in two folders: separate outputs, each of its own photo
    tifs = [out / "maps" / f"visit{k}" / "img_erythema_index.tif" for k in (1, 2)]
    assert all(t.is_file() for t in tifs)
    assert tifs[0].read_bytes() != tifs[1].read_bytes()
    assert (out / "maps" / "with space" / "ünïcödé name_melanin.png").is_file()
    # sixteen.png and sixteen.tif in one folder: two sets of maps (the second is "sixteen~tif")
    assert (out / "maps" / "sixteen_melanin.tif").is_file() and (out / "maps" / "sixteen~tif_melanin.tif").is_file()
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_same_stem_in_one_folder_keeps_both_outputs_and_the_report_finds_each(tmp_path):
    from skinimg.io import discover_images, output_stems
    from skinimg.report import load_study

    root = tmp_path / "in"
    write_png(root / "v" / "img.png", skin_like(48, 64, seed=1))
    (root / "v" / "img.jpg").write_bytes((root / "v" / "img.png").read_bytes())  # PNG bytes named .jpg
    write_png(root / "v" / "img.tif", skin_like(48, 64, seed=3))
    assert output_stems(["v/img.png", "v/img.jpg", "v/img.tif", "w/img.png"]) == {
        "v/img.jpg": "v/img", "v/img.png": "v/img~png", "v/img.tif": "v/img~tif", "w/img.png": "w/img"}
    items = discover_images([root])
    assert [i.stem_rel for i in items] == ["v/img", "v/img~png", "v/img~tif"]
    out = tmp_path / "out"
    assert _run(["analyze", root, "--out", out, "--workers", "1"]).exit_code == 0
    rows = _csv(out / "indices.csv")
    study = load_study(out)
    entries = {e.image: e for ser in study.series for e in ser.entries}
    import cv2

    for image, stem in (("v/img.jpg", "v/img"), ("v/img.png", "v/img~png"), ("v/img.tif", "v/img~tif")):
        assert entries[image].stem_rel == stem
        tif = out / "maps" / f"{stem}_erythema_index.tif"
        m = cv2.imread(str(tif), cv2.IMREAD_UNCHANGED)
        assert float(np.nanmean(m)) == pytest.approx(float(rows[image]["erythema_index"]), rel=1e-4)
    assert float(rows["v/img.tif"]["erythema_index"]) != float(rows["v/img.png"]["erythema_index"])


def test_analyze_json_rows_and_no_skin_only(tmp_path):
    """Only images without skin: exit 2, every row a no_skin status, no warning escapes."""
    root = tmp_path / "in"
    write_png(root / "white.png", np.full((40, 50, 3), 255, np.uint8))
    write_png(root / "black.png", np.zeros((40, 50, 3), np.uint8))
    r = _run(["analyze", root, "--out", tmp_path / "out", "--workers", "1", "--json"])
    assert r.exit_code == 2
    import json

    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["status"] for x in rows] == ["no_skin", "no_skin"]
    assert all(x["erythema_index"] is None for x in rows)


# ----------------------------------------------------------------------------- calibrate


def test_calibrate_corpus(corpus, tmp_path):
    root, exp = corpus
    out = tmp_path / "cal"
    r = _run(["calibrate", root, "--out", out])
    assert r.exit_code == 2
    rows = _csv(out / "calibrate.csv")
    assert set(rows) == set(exp)
    _assert_bad_files_reported(root, exp, rows, r.stderr, no_skin_is_error=False)
    assert r.stderr.splitlines()[-1].startswith("skinimg: 9 of ")
    # unusual files keep their pixels (no chart: identity or gray world) and their bit depth
    from skinimg.io import load_image

    a16, _ = load_image(out / "calibrated" / "sixteen.png")
    assert a16.dtype == np.uint16
    rot, _ = load_image(out / "calibrated" / "rotated.png")
    assert rot.shape[:2] == (128, 96)
    one, two = (out / "calibrated" / f"visit{k}" / "img.png" for k in (1, 2))
    assert one.read_bytes() != two.read_bytes()
    # a.png and a.tif with the same stem in one folder: both kept
    assert (out / "calibrated" / "sixteen.png").is_file() and (out / "calibrated" / "sixteen~tif.png").is_file()


# ----------------------------------------------------------------------------- exit codes


@pytest.fixture
def small_sets(tmp_path):
    good = tmp_path / "good"
    write_png(good / "a.png", skin_like(48, 64, seed=1))
    write_png(good / "sub" / "b.png", skin_like(48, 64, seed=2))
    mixed = tmp_path / "mixed"
    write_png(mixed / "a.png", skin_like(48, 64, seed=1))
    (mixed / "bad.jpg").write_bytes(b"not an image")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images here")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the output folder should go")
    return {"good": good, "mixed": mixed, "empty": empty, "blocker": blocker, "tmp": tmp_path}


def _commands(tmp: Path):
    """command name -> function(inputs, out) -> argv, for every batch command present."""
    cmds = {
        "info": lambda src, out: ["info", src],
        "analyze": lambda src, out: ["analyze", src, "--out", out, "--workers", "1", "--no-maps"],
        "calibrate": lambda src, out: ["calibrate", src, "--out", out],
    }
    if "segment" in cli.commands:
        cmds["segment"] = lambda src, out: ["segment", src, "--out", out]
    return cmds


@pytest.mark.parametrize("cmd", ["info", "analyze", "calibrate", "segment"])
def test_exit_codes_consistent(cmd, small_sets):
    s = small_sets
    cmds = _commands(s["tmp"])
    if cmd not in cmds:
        pytest.skip(f"skinimg {cmd} has not landed")
    argv = cmds[cmd]
    assert _run(argv(s["good"], s["tmp"] / f"{cmd}-ok")).exit_code == 0
    r = _run(argv(s["mixed"], s["tmp"] / f"{cmd}-mixed"))
    assert r.exit_code == 2 and len(_stderr_lines_for(r.stderr, "bad.jpg")) == 1
    r = _run(argv(s["empty"], s["tmp"] / f"{cmd}-empty"))
    assert r.exit_code == 1 and "no image files found" in r.stderr
    r = _run(argv(s["tmp"] / "missing", s["tmp"] / f"{cmd}-missing"))
    assert r.exit_code in (1, 2) and "Traceback" not in r.stderr  # Click's own check (2) or ours (1)
    if cmd != "info":
        r = _run(argv(s["good"], s["blocker"]))
        assert r.exit_code in (1, 2), r.stderr  # Click refuses a file as --out (usage error, 2) ...
        r = _run(argv(s["good"], s["blocker"] / "sub"))  # ... and a folder under a file is ours: fatal
        assert r.exit_code == 1 and r.stderr.count("\n") <= 2 and "skinimg: " in r.stderr, r.stderr


# ----------------------------------------------------------------------------- full disk / read-only


def _enospc_after(monkeypatch, n_ok: int):
    """Make os.fsync fail with ENOSPC after ``n_ok`` successful calls (the atomic writers fsync every file)."""
    calls = {"n": 0}
    real = os.fsync

    def fsync(fd):
        calls["n"] += 1
        if calls["n"] > n_ok:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)

    monkeypatch.setattr(sio.os, "fsync", fsync)
    return calls


@pytest.mark.parametrize("cmd,n_ok", [("analyze", 0), ("analyze", 5), ("analyze", 17), ("calibrate", 1)])
def test_full_disk_is_one_clear_error_and_keeps_previous_outputs(cmd, n_ok, small_sets, monkeypatch):
    s = small_sets
    out = s["tmp"] / "out"
    argv = _commands(s["tmp"])[cmd](s["good"], out)
    if cmd == "analyze":
        argv.remove("--no-maps")
        argv += ["--maps", "all"]  # 16 files a photo: n_ok = 17 fails in the second photo's maps
    assert _run(argv).exit_code == 0
    before = snapshot(out)
    # The second run would write different numbers: make it clear if any partial file landed.
    write_png(s["good"] / "a.png", skin_like(48, 64, seed=99))
    _enospc_after(monkeypatch, n_ok)
    r = _run(argv)
    assert r.exit_code == 1, (r.exit_code, r.stderr)
    assert "No space left on device" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    after = snapshot(out)
    assert set(after) == set(before)
    for k, v in before.items():  # every file is either the old complete one or a new complete one
        if after[k] != v:
            assert k.endswith((".tif", ".png", ".json")) and n_ok > 0, k
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


@contextlib.contextmanager
def _mounted_tmpfs(path: Path, options: str):
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", os.fspath(path)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount tmpfs: {r.stderr.decode(errors='replace').strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", os.fspath(path)], capture_output=True)


def test_real_full_disk_and_read_only_folder(small_sets):
    """A 1 MiB tmpfs fills up during analyze; the same tmpfs remounted read-only refuses writes."""
    s = small_sets
    for k in range(6):
        write_png(s["good"] / f"more{k}.png", skin_like(96, 128, seed=10 + k))
    with _mounted_tmpfs(s["tmp"] / "mnt", "size=1m") as mnt:
        out = mnt / "out"
        r = _run(["analyze", s["good"], "--out", out, "--workers", "1", "--maps", "all"])
        assert r.exit_code == 1 and "No space left on device" in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
        assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
        subprocess.run(["rm", "-rf", os.fspath(out)], check=True)  # free the space again
        r2 = _run(["analyze", s["good"], "--out", mnt / "small", "--workers", "1", "--no-maps"])
        before = snapshot(mnt / "small")
        subprocess.run(["mount", "-o", "remount,ro", os.fspath(mnt)], check=True)
        assert r2.exit_code == 0, r2.stderr
        for argv in (["analyze", s["good"], "--out", mnt / "small", "--workers", "1"],
                     ["calibrate", s["good"], "--out", mnt / "small"]):
            r = _run(argv)
            assert r.exit_code == 1 and "Read-only file system" in r.stderr, r.stderr
            assert len(r.stderr.strip().splitlines()) == 1
        assert snapshot(mnt / "small") == before


# ----------------------------------------------------------------------------- crash safety (SIGKILL)


def _harness_cmd(args) -> list[str]:
    """The ``skinimg`` command in a subprocess."""
    return [sys.executable, "-m", "skinimg", *map(str, args)]


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


def test_sigkill_then_rerun_equals_uninterrupted_run(tmp_path):
    """SIGKILL `skinimg analyze` at 3 random points; each rerun gives exactly the uninterrupted result.

    benchmarks/kill_loop.py runs the same loop at >= 20 points.
    """
    src = tmp_path / "in"
    for k in range(10):
        write_png(src / f"p{k // 5}" / f"img{k}.png", skin_like(96, 128, seed=k))
    argv = ["analyze", src, "--workers", "1"]
    ref = tmp_path / "ref"
    t0 = time.perf_counter()
    subprocess.run(_harness_cmd(argv + ["--out", ref]), check=True, env=_env(), cwd=REPO, capture_output=True)
    t_full = time.perf_counter() - t0
    expected = snapshot(ref)
    rnd = random.Random(9)
    out = tmp_path / "out"
    for point in range(3):
        proc = subprocess.Popen(_harness_cmd(argv + ["--out", out]), env=_env(), cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(rnd.uniform(0.3, 1.0) * t_full)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        r = subprocess.run(_harness_cmd(argv + ["--out", out]), env=_env(), cwd=REPO, capture_output=True)
        assert r.returncode == 0, r.stderr
        got = snapshot(out)
        assert got.keys() == expected.keys(), set(got) ^ set(expected)
        assert all(got[k] == expected[k] for k in expected), [k for k in expected if got[k] != expected[k]]
        assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_stale_temp_files_removed_only_when_their_process_is_gone(tmp_path):
    (tmp_path / "maps").mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = tmp_path / "maps" / f".a.tif.{dead_pid}.k2j3h4.tmp"
    live = tmp_path / f".indices.csv.{os.getpid()}.abcd_1.tmp"
    other = tmp_path / "notes.tmp"  # not ours: kept
    for p in (stale, live, other):
        p.write_bytes(b"partial")
    assert sio.remove_stale_temp_files(tmp_path) == 1
    assert not stale.exists() and live.exists() and other.exists()
    # a killed writer that is not reaped yet (zombie) is not writing any more
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        for _ in range(200):
            time.sleep(0.02)
            with open(f"/proc/{zombie.pid}/stat", "rb") as fh:
                if fh.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                    break
        zfile = tmp_path / f".b.png.{zombie.pid}.zzz.tmp"
        zfile.write_bytes(b"partial")
        assert sio.remove_stale_temp_files(tmp_path) == 1 and not zfile.exists()
    finally:
        zombie.wait()
    # a pid now used by a process started after the file was written is not its writer
    old = tmp_path / f".c.png.{os.getpid()}.old.tmp"
    old.write_bytes(b"partial")
    os.utime(old, (time.time() - 10 * 24 * 3600,) * 2)
    assert sio._proc_started_after(os.getpid(), old.stat().st_mtime) is True
    assert sio._proc_started_after(os.getpid(), time.time()) is False


# ----------------------------------------------------------------------------- unreadable file


def test_unreadable_file_is_a_row_not_a_crash():
    """Permissions only bite an unprivileged user: as root, run the command with effective uid `nobody`."""
    import pwd

    from skinimg import batch, indices  # noqa: F401  (imported while root: the interpreter may live in /root)

    base = Path(tempfile.mkdtemp(prefix="skinimg-perm-"))
    try:
        base.chmod(0o777)
        src = base / "in"
        write_png(src / "ok.png", skin_like(48, 64, seed=1))
        write_png(src / "locked.png", skin_like(48, 64, seed=2))
        for p in (src, src / "ok.png"):
            p.chmod(0o755)
        (src / "locked.png").chmod(0)
        out = base / "out"
        # warm-up in this process so that nothing is imported lazily while unprivileged
        _run(["analyze", src / "ok.png", "--out", base / "warm", "--workers", "1", "--no-maps"])
        root = os.geteuid() == 0
        if root:
            try:
                nobody = pwd.getpwnam("nobody")
            except KeyError:
                pytest.skip("no user 'nobody'")
            os.setegid(nobody.pw_gid)
            os.seteuid(nobody.pw_uid)
        try:
            r = _run(["analyze", src, "--out", out, "--workers", "1", "--no-maps"])
        finally:
            if root:
                os.seteuid(0)
                os.setegid(0)
        assert r.exit_code == 2, r.stderr
        assert "skinimg: locked.png: permission denied" in r.stderr.splitlines()
        rows = _csv(out / "indices.csv")
        assert rows["locked.png"]["status"] == "error" and rows["ok.png"]["status"] == "ok"
    finally:
        subprocess.run(["rm", "-rf", os.fspath(base)])


@pytest.mark.parametrize("shape", [(1, 1), (1, 400), (300, 1)])
def test_compare_with_a_one_pixel_wide_photo_is_one_line(tmp_path, shape):
    """ORB's image pyramid raises cv2.error on a 1-pixel side: register() says so and compare ends in one line."""
    from skinimg.session.register import register

    big = skin_like(96, 128)
    thin = np.ascontiguousarray(np.broadcast_to(big[:1, :1], shape + (3,)))
    reg = register(big, thin)
    assert not reg.ok and reg.reason.startswith("image too small for key points")
    write_png(tmp_path / "big.png", big)
    write_png(tmp_path / "thin.png", thin)
    for pair in (("big.png", "thin.png"), ("thin.png", "big.png")):
        r = _run(["compare", *(tmp_path / p for p in pair), "--out", tmp_path / "o"])
        assert r.exit_code == 1, r.output
        err = r.stderr.strip()
        assert err.startswith("skinimg: ") and "\n" not in err and "thin.png" in err, err

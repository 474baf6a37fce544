"""Issue 9: privacy and security.

* no EXIF/GPS/maker note of a source photo in any exported image or report;
* messages name files relative to the input root, never the absolute (home) path;
* models are never unpickled: no pickle/joblib import, every np.load has allow_pickle=False,
  and a pickled NPZ is refused;
* names read from user files cannot make skinimg write outside --out.
"""

from __future__ import annotations

import ast
import io
import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from skinimg import SkinImgError
from skinimg.cli import cli
from skinimg.io import load_npz, safe_output_path, write_png

from .badcorpus import skin_like
from .harness import SECRET_ARTIST, SECRET_CAMERA, SECRET_MAKERNOTE, exif_photo

PACKAGE = Path(__file__).resolve().parents[1] / "skinimg"
#: GPS IFD, Exif IFD, maker note, make, model, artist, date/time, original date, user comment, XMP, IPTC.
PRIVATE_TAGS = {0x8825, 0x8769, 0x927C, 0x010F, 0x0110, 0x013B, 0x0132, 0x9003, 0x9286, 0x02BC, 0x83BB}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp"}


def _invoke(args):
    r = CliRunner().invoke(cli, [str(a) for a in args])
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    return r


def _photo_with_skin_and_background(seed: int) -> np.ndarray:
    img = np.empty((120, 160, 3), np.uint8)
    img[:] = (70, 110, 170)
    img[20:100, 30:130] = skin_like(80, 100, seed=seed)
    return img


def _assert_no_metadata(path: Path) -> None:
    data = path.read_bytes()
    for secret in (SECRET_MAKERNOTE, SECRET_ARTIST.encode(), SECRET_CAMERA.encode()):
        assert secret not in data, (path, secret)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return
    # (a bare b"GPS" substring is not checked: three bytes occur by chance in compressed PNG data;
    # the GPS IFD is checked structurally below)
    assert b"Exif\x00\x00" not in data, path
    with Image.open(path) as im:
        exif = im.getexif()  # for a TIFF: its own IFD, which may only hold structural tags
        assert not (set(exif) & PRIVATE_TAGS), (path, sorted(set(exif) & PRIVATE_TAGS))
        assert 0x8825 not in exif and not exif.get_ifd(0x8825), path  # GPS IFD
        if path.suffix.lower() not in (".tif", ".tiff"):
            assert not exif, (path, dict(exif))
        assert "exif" not in im.info and "xmp" not in im.info and "XML:com.adobe.xmp" not in im.info, path
        assert not getattr(im, "text", {}), (path, im.text)


def test_no_source_metadata_in_any_output(tmp_path):
    src = tmp_path / "clinic" / "patient01" / "visit1"
    exif_photo(src / "face.jpg", _photo_with_skin_and_background(1))
    exif_photo(tmp_path / "clinic" / "patient01" / "visit2" / "face.jpg", _photo_with_skin_and_background(2))
    with Image.open(src / "face.jpg") as im:  # the source really carries GPS and a maker note
        assert im.getexif().get_ifd(0x8825) and im.getexif().get_ifd(0x8769).get(0x927C) == SECRET_MAKERNOTE
    with pytest.raises(AssertionError):  # and the check below sees it
        _assert_no_metadata(src / "face.jpg")

    res = tmp_path / "res"
    r = _invoke(["analyze", tmp_path / "clinic", "--out", res, "--workers", "1", "--maps", "all"])
    assert r.exit_code == 0, r.stderr
    cal = tmp_path / "cal"
    assert _invoke(["calibrate", tmp_path / "clinic", "--out", cal]).exit_code == 0
    outs = [res, cal]
    if "segment" in cli.commands:
        seg = tmp_path / "seg"
        assert _invoke(["segment", tmp_path / "clinic", "--out", seg]).exit_code in (0, 2)
        outs.append(seg)
    pytest.importorskip("matplotlib")
    rep = tmp_path / "rep"
    r = _invoke(["report", res, "--out", rep])
    assert r.exit_code == 0, r.stderr
    outs.append(rep)

    n_images = 0
    for out in outs:
        for p in sorted(out.rglob("*")):
            if p.is_file():
                _assert_no_metadata(p)
                n_images += p.suffix.lower() in IMAGE_SUFFIXES
    assert n_images >= 2 * 16 + 2 + 4  # analyze maps, calibrated photos, report pictures


def test_messages_use_paths_relative_to_the_input_root(tmp_path):
    home_like = tmp_path / "home" / "dr_smith" / "Patients" / "Doe, Jane"
    (home_like / "2024").mkdir(parents=True)
    (home_like / "2024" / "cheek.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"Jane Doe DOB 1970" * 8)
    write_png(home_like / "2024" / "ok.png", _photo_with_skin_and_background(3))
    for argv in (["analyze", home_like, "--out", tmp_path / "a", "--workers", "1", "--no-maps"],
                 ["calibrate", home_like, "--out", tmp_path / "c"], ["info", home_like]):
        r = _invoke(argv)
        assert r.exit_code == 2
        assert "skinimg: 2024/cheek.jpg: " in r.stderr
        assert str(home_like) not in r.output + r.stderr and "dr_smith" not in r.stderr
        assert "Jane Doe" not in r.stderr and "DOB" not in r.stderr  # no file content in messages
    assert "dr_smith" not in (tmp_path / "a" / "indices.csv").read_text(encoding="utf-8")
    assert "dr_smith" not in (tmp_path / "c" / "calibrate.csv").read_text(encoding="utf-8")


def test_decoder_messages_never_carry_file_bytes_or_full_paths():
    from skinimg.io import reason_text as _reason_text

    exc = SyntaxError("not a TIFF file (header b'II*\\x00Jane' not valid)")
    assert _reason_text(exc) == "not a TIFF file (header <bytes> not valid)"
    p = "/home/dr/Patients/Doe/a.jpg"
    assert _reason_text(ValueError(f"bad data in {p}"), p) == "bad data in a.jpg"
    assert _reason_text(OSError(5, "Input/output error", p)) == "Input/output error"
    assert len(_reason_text(ValueError("x" * 1000))) == 160
    assert "\n" not in _reason_text(ValueError("two\nlines"))


# ----------------------------------------------------------------------------- models: never pickle


def _package_sources() -> list[Path]:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) >= 10
    return files


def test_package_never_imports_pickle_or_joblib():
    banned = {"pickle", "cPickle", "_pickle", "joblib", "dill", "cloudpickle", "shelve", "marshal"}
    for f in _package_sources():
        tree = ast.parse(f.read_text(encoding="utf-8"), filename=str(f))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [(node.module or "").split(".")[0]]
            else:
                continue
            assert not banned & set(names), f"{f.name}:{node.lineno} imports {names}"
        text = f.read_text(encoding="utf-8")
        assert not re.search(r"\b(pickle|joblib)\.(load|loads)\b", text), f.name


def test_every_np_load_refuses_pickles():
    """Every call of numpy's load (np.load, numpy.load, load imported from numpy) passes allow_pickle=False."""
    n_calls = 0
    for f in _package_sources():
        tree = ast.parse(f.read_text(encoding="utf-8"), filename=str(f))
        numpy_names = {"np", "numpy"}
        direct = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                numpy_names |= {a.asname or a.name for a in node.names if a.name == "numpy"}
            elif isinstance(node, ast.ImportFrom) and node.module == "numpy":
                direct |= {a.asname or a.name for a in node.names if a.name == "load"}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            fn = node.func
            is_load = (isinstance(fn, ast.Attribute) and fn.attr == "load" and isinstance(fn.value, ast.Name)
                       and fn.value.id in numpy_names) or (isinstance(fn, ast.Name) and fn.id in direct)
            if not is_load:
                continue
            n_calls += 1
            kw = {k.arg: k.value for k in node.keywords}
            assert "allow_pickle" in kw and isinstance(kw["allow_pickle"], ast.Constant) \
                and kw["allow_pickle"].value is False, f"{f.name}:{node.lineno}: np.load without allow_pickle=False"
    assert n_calls >= 1  # at least skinimg.io.load_npz


def test_pickled_npz_and_npy_are_refused(tmp_path):
    ok = tmp_path / "model.npz"
    np.savez(ok, weights=np.arange(6, dtype=np.float32).reshape(2, 3), bias=np.float32(0.5))
    d = load_npz(ok)
    np.testing.assert_array_equal(d["weights"], np.arange(6, dtype=np.float32).reshape(2, 3))
    assert d["bias"] == np.float32(0.5)

    class Boom:  # would run code when unpickled
        def __reduce__(self):
            return (os.system, ("echo pwned > " + os.fspath(tmp_path / "pwned"),))

    bad = tmp_path / "evil.npz"
    np.savez(bad, weights=np.arange(3), payload=np.array([Boom()], dtype=object))
    npy = tmp_path / "evil.npy"
    np.save(npy, np.array([Boom()], dtype=object), allow_pickle=True)
    raw = tmp_path / "evil_raw.npz"
    raw.write_bytes(pickle.dumps(Boom()))
    for f in (bad, npy, raw):
        with pytest.raises(SkinImgError, match="pickled Python objects") as ei:
            load_npz(f, label=f.name)
        assert str(ei.value).startswith(f.name)
    assert not (tmp_path / "pwned").exists()
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(SkinImgError, match="cannot read model file"):
        load_npz(tmp_path / "junk.npz")


# ----------------------------------------------------------------------------- nothing written outside --out


@pytest.mark.parametrize("bad", ["../escape.csv", "a/../../escape.csv", "/etc/cron.d/x", "C:\\Windows\\x",
                                 "a\\..\\..\\x", "", "  ", "a/\x00b", "./..", "..", "//server/share/x"])
def test_safe_output_path_refuses_escapes(tmp_path, bad):
    with pytest.raises(SkinImgError):
        safe_output_path(tmp_path / "out", bad)


@pytest.mark.parametrize("good,expected", [("a.csv", "a.csv"), ("p1/site/x.json", "p1/site/x.json"),
                                           ("./p1//x.png", "p1/x.png"), ("p1\\x.png", "p1/x.png"),
                                           ("..foo/x", "..foo/x")])
def test_safe_output_path_keeps_relative_names(tmp_path, good, expected):
    p = safe_output_path(tmp_path / "out", good)
    assert p == tmp_path / "out" / expected
    assert (tmp_path / "out").resolve() in p.resolve().parents


def test_outputs_keep_ordinary_permissions(tmp_path, monkeypatch):
    """Atomic writers used to leave mkstemp's 0600: results must follow the umask like other files."""
    from skinimg.io import write as sio

    monkeypatch.setattr(sio, "_UMASK", 0o022)  # the umask is read once at import
    p = sio.write_bytes(tmp_path / "x.csv", b"a\n")
    assert (p.stat().st_mode & 0o777) == 0o644
    p.chmod(0o640)
    sio.write_bytes(p, b"b\n")  # a replaced file keeps its permissions
    assert (p.stat().st_mode & 0o777) == 0o640
    monkeypatch.setattr(sio, "_UMASK", 0o077)
    assert (sio.write_bytes(tmp_path / "private.csv", b"a\n").stat().st_mode & 0o777) == 0o600

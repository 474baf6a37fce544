"""Image loading: every format, orientation, metadata, and every failure named in the issue."""

from __future__ import annotations

import io as _io
import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from skinimg import SkinImgError
from skinimg.cli import cli
from skinimg.io import (
    discover_images,
    load_image,
    read_mask,
    write_csv,
    write_json,
    write_png,
    write_tiff,
    atomic_write,
)


def _save_cv2(path: Path, rgb: np.ndarray, params=()) -> Path:
    ok, buf = cv2.imencode(path.suffix, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), list(params))
    assert ok
    path.write_bytes(buf.tobytes())
    return path


@pytest.mark.parametrize("ext", [".png", ".tif", ".bmp", ".webp"])
def test_lossless_8bit_formats_round_trip_rgb(tmp_path, rgb8, ext):
    params = [cv2.IMWRITE_WEBP_QUALITY, 101] if ext == ".webp" else []
    p = _save_cv2(tmp_path / f"a{ext}", rgb8, params)
    out, meta = load_image(p)
    assert out.dtype == np.uint8 and out.shape == rgb8.shape
    np.testing.assert_array_equal(out, rgb8)  # RGB order, not BGR
    assert (meta.width, meta.height, meta.bit_depth) == (64, 48, 8)


def test_jpeg_is_rgb_not_bgr(tmp_path):
    a = np.zeros((32, 32, 3), np.uint8)
    a[..., 0] = 220  # strongly red
    p = _save_cv2(tmp_path / "red.jpg", a, [cv2.IMWRITE_JPEG_QUALITY, 95])
    out, meta = load_image(p)
    assert out[..., 0].mean() > 200 and out[..., 2].mean() < 20
    assert meta.format == "JPEG"


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_16bit_round_trip(tmp_path, rng, ext):
    a = rng.integers(0, 65536, size=(20, 30, 3), dtype=np.uint16)
    p = _save_cv2(tmp_path / f"a{ext}", a)
    out, meta = load_image(p)
    assert out.dtype == np.uint16 and meta.bit_depth == 16
    np.testing.assert_array_equal(out, a)


def test_rgba_alpha_dropped(tmp_path, rgb8):
    rgba = np.dstack([rgb8, np.full(rgb8.shape[:2], 7, np.uint8)])
    p = tmp_path / "a.png"
    Image.fromarray(rgba, "RGBA").save(p)
    out, meta = load_image(p)
    np.testing.assert_array_equal(out, rgb8)
    assert meta.had_alpha


def test_cmyk_jpeg_is_converted(tmp_path):
    p = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(p, quality=95)  # pure red ink mix
    out, meta = load_image(p)
    assert meta.source_mode == "CMYK"
    ref = np.asarray(Image.open(p).convert("RGB"))
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 2
    assert out[..., 0].mean() > 200 and out[..., 1].mean() < 40


@pytest.mark.parametrize("mode", ["L", "P", "I;16", "LA", "1"])
def test_grayscale_and_palette_refused(tmp_path, mode):
    p = tmp_path / f"g_{mode.replace(';', '')}.png"
    Image.new(mode, (8, 8)).save(p)
    with pytest.raises(SkinImgError, match="colour photograph required") as ei:
        load_image(p)
    assert str(p) in str(ei.value)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path, rgb8, orientation):
    img = Image.fromarray(rgb8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    p = tmp_path / f"o{orientation}.png"
    img.save(p, exif=exif.tobytes())
    out, meta = load_image(p)
    from PIL import ImageOps

    ref = np.asarray(ImageOps.exif_transpose(Image.open(p)).convert("RGB"))
    np.testing.assert_array_equal(out, ref)
    assert meta.orientation == orientation
    assert (meta.height, meta.width) == out.shape[:2]


def test_portrait_phone_photo_is_upright(tmp_path):
    # A landscape sensor image with orientation 6 ("rotate 90 CW to view") becomes portrait.
    a = np.zeros((30, 40, 3), np.uint8)
    a[:6, :, 0] = 255  # top rows red in sensor frame -> right columns after rotating CW
    exif = Image.Exif()
    exif[0x0112] = 6
    p = tmp_path / "phone.jpg"
    Image.fromarray(a).save(p, exif=exif.tobytes(), quality=100)
    out, _ = load_image(p)
    assert out.shape[:2] == (40, 30)
    assert out[:, -2, 0].mean() > 200 and out[:, 0, 0].mean() < 50


def test_exif_capture_time_camera_and_icc(tmp_path, rgb8):
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif[0x0110] = "EOS 90D"
    exif.get_ifd(0x8769)[0x9003] = "2026:03:15 10:42:07"
    p = tmp_path / "meta.jpg"
    icc = Image.core.__dict__.get("icc")  # noqa: F841 - just to avoid lint on unused
    from PIL import ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(rgb8).save(p, exif=exif.tobytes(), icc_profile=srgb, quality=90)
    _, meta = load_image(p)
    assert meta.capture_time == "2026-03-15T10:42:07"
    assert meta.camera_model == "Canon EOS 90D"
    assert meta.has_icc_profile
    _, meta2 = load_image(_save_cv2(tmp_path / "plain.png", rgb8))
    assert meta2.capture_time is None and meta2.camera_model is None and not meta2.has_icc_profile


def _png_header_only(path: Path, w: int, h: int) -> Path:
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))
    return path


def test_decompression_bomb_refused_from_header(tmp_path):
    p = _png_header_only(tmp_path / "bomb.png", 100_000, 100_000)
    with pytest.raises(SkinImgError, match="too large") as ei:
        load_image(p)
    assert "bomb.png" in str(ei.value)


def test_max_pixels_limit(tmp_path, rgb8):
    p = _save_cv2(tmp_path / "a.png", rgb8)
    with pytest.raises(SkinImgError, match="exceeds the limit"):
        load_image(p, max_pixels=1000)
    load_image(p, max_pixels=48 * 64)  # exactly at the limit is fine


def test_max_pixels_checked_before_decoding(tmp_path, monkeypatch):
    p = _png_header_only(tmp_path / "big.png", 20_000, 10_000)  # 200 MP declared, tiny file

    def boom(*a, **k):  # pragma: no cover - must not be reached
        raise AssertionError("decoder called")

    monkeypatch.setattr(cv2, "imdecode", boom)
    with pytest.raises(SkinImgError, match="too large"):
        load_image(p)


@pytest.mark.parametrize(
    "name,content,reason",
    [
        ("empty.jpg", b"", "empty file"),
        ("text.jpg", b"this is not an image\n" * 10, "not a supported image"),
        ("doc.jpg", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n" * 5, "not a supported image"),
    ],
)
def test_bad_files_raise_named_errors(tmp_path, name, content, reason):
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(SkinImgError, match=reason) as ei:
        load_image(p)
    assert str(ei.value).startswith(str(p))
    assert "\n" not in str(ei.value)


def test_missing_file(tmp_path):
    with pytest.raises(SkinImgError, match="file not found"):
        load_image(tmp_path / "nope.jpg", label="visit/nope.jpg")
    try:
        load_image(tmp_path / "nope.jpg", label="visit/nope.jpg")
    except SkinImgError as exc:
        assert str(exc) == "visit/nope.jpg: file not found"


@pytest.mark.parametrize("ext", [".jpg", ".png"])
def test_truncated_files(tmp_path, rng, ext):
    a = rng.integers(0, 256, size=(120, 160, 3), dtype=np.uint8)
    full = _save_cv2(tmp_path / f"full{ext}", a)
    data = full.read_bytes()
    p = tmp_path / f"trunc{ext}"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(SkinImgError, match="truncated|corrupt") as ei:
        load_image(p)
    assert "trunc" in str(ei.value)


def test_unreadable_file(tmp_path, rgb8, monkeypatch):
    p = _save_cv2(tmp_path / "secret.png", rgb8)
    if os.geteuid() == 0:  # root reads any file: simulate the permission error instead
        def denied(*a, **k):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(Image, "open", denied)
    else:
        p.chmod(0)
    with pytest.raises(SkinImgError, match="permission denied") as ei:
        load_image(p)
    assert "secret.png" in str(ei.value)


def test_directory_given_as_file(tmp_path):
    with pytest.raises(SkinImgError, match="folder"):
        load_image(tmp_path)


# ----------------------------------------------------------------------------- writers


def test_write_png_rgb_round_trip_and_no_exif(tmp_path, rgb8):
    p = write_png(tmp_path / "sub" / "x.png", rgb8)
    out, meta = load_image(p)
    np.testing.assert_array_equal(out, rgb8)
    with Image.open(p) as im:
        assert not im.getexif() and "exif" not in im.info
    assert not [q for q in p.parent.iterdir() if q.name.endswith(".tmp")]


def test_write_tiff_float_map_with_nan(tmp_path):
    m = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    m[0, 0] = np.nan
    p = write_tiff(tmp_path / "m.tif", m)
    back = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(back), np.isnan(m))
    np.testing.assert_array_equal(back[~np.isnan(m)], m[~np.isnan(m)])


def test_atomic_write_failure_keeps_old_file(tmp_path):
    p = tmp_path / "keep.json"
    write_json(p, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_write(p, "w") as fh:
            fh.write('{"a": 2, "half')
            raise RuntimeError("interrupted")
    assert p.read_text().strip().startswith("{") and '"a": 1' in p.read_text()
    assert sorted(q.name for q in tmp_path.iterdir()) == ["keep.json"]


def test_write_to_read_only_folder_is_clear_error(tmp_path, monkeypatch):
    d = tmp_path / "ro"
    d.mkdir()
    if os.geteuid() == 0:  # root ignores folder permissions: simulate a read-only file system
        import tempfile

        def ro(*a, **k):
            raise OSError(30, "Read-only file system")

        monkeypatch.setattr(tempfile, "mkstemp", ro)
    else:
        d.chmod(0o500)
    with pytest.raises(SkinImgError, match="cannot write output") as ei:
        write_json(d / "x.json", {})
    assert "x.json" in str(ei.value)


def test_full_disk_keeps_previous_output(tmp_path, monkeypatch):
    p = write_json(tmp_path / "r.json", {"rows": 1})

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(SkinImgError, match="No space left on device"):
        write_json(p, {"rows": 2})
    assert '"rows": 1' in p.read_text()
    assert sorted(q.name for q in tmp_path.iterdir()) == ["r.json"]


def test_write_csv_and_json_values(tmp_path):
    p = write_csv(tmp_path / "t.csv", [{"image": "a b/ç.jpg", "x": 0.1, "n": np.int64(3), "bad": float("nan")}, {"image": "z", "x": None}])
    assert p.read_text(encoding="utf-8").splitlines() == ["image,x,n,bad", "a b/ç.jpg,0.1,3,", "z,,,"]
    q = write_json(tmp_path / "t.json", {"v": np.float32(0.5), "nan": float("nan"), "arr": np.arange(3)})
    import json

    assert json.loads(q.read_text()) == {"v": 0.5, "nan": None, "arr": [0, 1, 2]}


def test_read_mask(tmp_path):
    m = np.zeros((5, 6), np.uint8)
    m[1:3, 2:5] = 255
    write_png(tmp_path / "m.png", m)
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png"), m > 0)
    with pytest.raises(SkinImgError, match="mask file not found"):
        read_mask(tmp_path / "none.png")


# ----------------------------------------------------------------------------- discovery


def test_discover_images_order_names_and_loops(tmp_path, rgb8):
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "x").mkdir(parents=True)
    _save_cv2(tmp_path / "b" / "img.jpg", rgb8)
    _save_cv2(tmp_path / "a" / "x" / "img.JPG", rgb8)
    _save_cv2(tmp_path / "a" / "zz é.png", rgb8)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / ".hidden.jpg").write_bytes(b"")
    (tmp_path / "a" / "loop").symlink_to(tmp_path / "a", target_is_directory=True)
    items = discover_images([tmp_path])
    assert [i.relpath for i in items] == ["a/x/img.JPG", "a/zz é.png", "b/img.jpg"]
    assert [i.stem_rel for i in items] == ["a/x/img", "a/zz é", "b/img"]
    assert [i.relpath for i in discover_images([tmp_path], exclude=["a/*"])] == ["b/img.jpg"]
    assert [i.relpath for i in discover_images([tmp_path], exclude=["*.png", "b/*"])] == ["a/x/img.JPG"]
    # an explicitly named file is never excluded
    assert [i.relpath for i in discover_images([tmp_path / "b" / "img.jpg"], exclude=["*"])] == ["img.jpg"]


def test_discover_explicit_files_and_duplicates(tmp_path, rgb8):
    (tmp_path / "v1").mkdir()
    (tmp_path / "v2").mkdir()
    f1 = _save_cv2(tmp_path / "v1" / "img.png", rgb8)
    f2 = _save_cv2(tmp_path / "v2" / "img.png", rgb8)
    t = tmp_path / "odd.txt"
    t.write_text("x")
    items = discover_images([f1, f2, t])
    assert [i.relpath for i in items] == ["img.png", "img~2.png", "odd.txt"]
    with pytest.raises(SkinImgError, match="not found"):
        discover_images([tmp_path / "missing"])


# ----------------------------------------------------------------------------- CLI


def test_cli_version_and_help():
    r = CliRunner().invoke(cli, ["--version"])
    assert r.exit_code == 0 and "skinimg, version" in r.output
    r = CliRunner().invoke(cli, ["--help"])
    assert r.exit_code == 0 and "info" in r.output


def test_cli_info_bad_file_is_one_line(tmp_path, rgb8):
    _save_cv2(tmp_path / "good.png", rgb8)
    (tmp_path / "bad.jpg").write_bytes(b"garbage")
    r = CliRunner().invoke(cli, ["info", str(tmp_path)])
    assert r.exit_code == 2
    assert "good.png: 64x48 8-bit PNG" in r.stdout
    err = [l for l in r.stderr.splitlines() if "bad.jpg" in l]
    assert err == ["skinimg: bad.jpg: not a supported image file (unrecognised format)"]
    assert "Traceback" not in r.output


def test_cli_missing_input_exit_1(tmp_path):
    r = CliRunner().invoke(cli, ["info", str(tmp_path / "none")])
    assert r.exit_code == 1
    assert r.stderr.strip().endswith("none: file or folder not found")


def test_models_dir_finds_the_trained_parameters(monkeypatch, tmp_path):
    from skinimg.io import models_dir

    assert (models_dir() / "chromophore_basis.json").is_file()
    monkeypatch.setenv("SKINIMG_MODELS", str(tmp_path))
    assert models_dir() == tmp_path


def test_write_tiff_is_deflate_compressed_lossless_and_readable_by_pillow(tmp_path):
    """Index maps are mostly NaN background: Deflate (zlib level 1, no predictor, strips of about 1 MiB, which
    Pillow and tifffile read without extra codecs) stores them losslessly in far less space."""
    from PIL import Image

    rng = np.random.default_rng(0)
    m = np.full((300, 400), np.nan, np.float32)
    m[100:250, 100:260] = (0.03 + 0.01 * rng.standard_normal((150, 160))).astype(np.float32)
    small = write_tiff(tmp_path / "c.tif", m)
    big = write_tiff(tmp_path / "u.tif", m, compress=False)
    assert small.stat().st_size < 0.5 * big.stat().st_size
    with Image.open(small) as im:
        assert im.info.get("compression") in ("tiff_adobe_deflate", "tiff_deflate")
        assert im.tag_v2.get(317, 1) == 1  # no predictor
        if hasattr(cv2, "IMWRITE_TIFF_ROWSPERSTRIP"):
            assert im.tag_v2.get(278) == 300  # rows per strip: the whole 480 kB map in one strip (<= 1 MiB)
        back = np.array(im)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, m)  # bit-exact values; NaN at the same places


# ----------------------------------------------------------------------------- the one gate, converter, helpers


def test_to_uint8_rounds_16_bit_and_float_and_keeps_8_bit():
    from skinimg.io import to_uint8

    x16 = np.arange(65536, dtype=np.uint16)
    got = to_uint8(x16).astype(np.int64)
    np.testing.assert_array_equal(got, np.floor(np.arange(65536) / 257.0 + 0.5).astype(np.int64))  # round(x/257)
    assert (to_uint8(np.arange(256, dtype=np.uint16) * 257) == np.arange(256)).all()  # 8-bit levels come back
    f = np.array([-0.1, 0.0, 0.5 / 255, 1.49 / 255, 0.5, 1.0, 1.7], np.float32)
    np.testing.assert_array_equal(to_uint8(f), [0, 0, 0, 1, 128, 255, 255])
    a8 = np.zeros((2, 2, 3), np.uint8)
    assert to_uint8(a8) is a8
    with pytest.raises(TypeError, match="int32"):
        to_uint8(np.zeros(3, np.int32))


def test_check_rgb_is_one_gate_with_one_error_type():
    from skinimg.errors import ImageArrayError
    from skinimg.io import check_rgb

    ok = np.zeros((2, 3, 3), np.uint16)
    assert check_rgb(ok) is ok and check_rgb(np.zeros((1, 1, 3), np.float32)).dtype == np.float32
    for bad, kind in ((np.zeros((4, 4), np.uint8), ValueError), (np.zeros((4, 4, 4), np.uint8), ValueError),
                      (np.zeros((0, 4, 3), np.uint8), ValueError), (np.zeros((4, 4, 3), np.int32), TypeError)):
        with pytest.raises(ImageArrayError) as err:
            check_rgb(bad)
        assert isinstance(err.value, (kind, SkinImgError)) and "\n" not in str(err.value)
    with pytest.raises(ImageArrayError, match="BEFORE: .*uint8 or uint16"):
        check_rgb(np.zeros((2, 2, 3), np.float32), allow_float=False, what="BEFORE")


def test_find_truth_mask_one_rule(tmp_path):
    from skinimg.io import find_truth_mask

    m = tmp_path / "masks"
    assert find_truth_mask(m, "v/a") is None
    write_png(m / "v" / "a_mask.bmp", np.zeros((2, 2), np.uint8))
    assert find_truth_mask(m, "v/a") == m / "v" / "a_mask.bmp"
    write_png(m / "v" / "a_mask.png", np.zeros((2, 2), np.uint8))  # a PNG wins over other formats
    assert find_truth_mask(m, "v/a") == m / "v" / "a_mask.png"
    write_png(m / "v" / "a.png", np.zeros((2, 2), np.uint8))  # the plain name wins over _mask
    assert find_truth_mask(m, "v/a") == m / "v" / "a.png"


def test_make_output_folder_creates_and_cleans(tmp_path):
    from skinimg.io import make_output_folder

    out = make_output_folder(tmp_path / "a" / "b")
    assert out.is_dir()
    stale = out / ".x.csv.999999999.abc.tmp"  # the temporary file of a process that does not exist
    stale.write_text("partial")
    assert make_output_folder(out) == out and not stale.exists()
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(SkinImgError, match="cannot create output folder"):
        make_output_folder(tmp_path / "file" / "sub")


def test_trained_files_follow_skinimg_models_when_read(monkeypatch, tmp_path):
    """$SKINIMG_MODELS is read when a trained file is looked up, not at import: mdc.json included."""
    import json
    import shutil

    from skinimg.io import model_file, models_dir
    from skinimg.session import load_mdc

    shutil.copytree(models_dir(), tmp_path / "m")
    doc = json.loads((tmp_path / "m" / "mdc.json").read_text())
    doc["mdc"]["hemoglobin"] = 0.123
    (tmp_path / "m" / "mdc.json").write_text(json.dumps(doc))
    monkeypatch.setenv("SKINIMG_MODELS", str(tmp_path / "m"))
    assert model_file("mdc.json") == tmp_path / "m" / "mdc.json"
    assert load_mdc()["hemoglobin"] == 0.123

"""Every file of the bad-input corpus: a one-line error naming it, or a correct load."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings, strategies as st

from skinimg import SkinImgError
from skinimg.cli import cli
from skinimg.io import discover_images, load_image

from .badcorpus import make_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    return root, make_corpus(root)


def test_loader_on_corpus(corpus):
    root, exp = corpus
    items = {i.relpath: i for i in discover_images([root])}
    assert set(exp) <= set(items), set(exp) - set(items)
    for name, expect in exp.items():
        item = items[name]
        if expect in ("ok", "no_skin"):
            rgb, meta = load_image(item.path, label=name)
            assert rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.dtype in (np.uint8, np.uint16), name
            continue
        if expect == "ok-or-error":
            try:
                load_image(item.path, label=name)
            except SkinImgError as exc:
                assert str(exc).startswith(name)
            continue
        with pytest.raises(SkinImgError) as ei:
            load_image(item.path, label=name)
        msg = str(ei.value)
        assert msg.startswith(f"{name}: ") and expect in msg and "\n" not in msg, (name, msg)
        assert str(root) not in msg  # relative names, no absolute paths


def test_unusual_valid_images_decode_to_the_same_colours(corpus):
    root, _ = corpus
    ref, _ = load_image(root / "good.jpg")
    rgba, _ = load_image(root / "rgba.png")
    s16, m16 = load_image(root / "sixteen.png")
    assert m16.bit_depth == 16 and s16.dtype == np.uint16
    np.testing.assert_array_equal((s16 // 257).astype(np.uint8), rgba)
    rot, meta = load_image(root / "rotated.jpg")
    assert meta.orientation == 6 and rot.shape[:2] == ref.shape[1::-1]
    cmyk, _ = load_image(root / "cmyk.jpg")
    assert np.abs(cmyk.astype(int).mean((0, 1)) - rgba.astype(int).mean((0, 1))).max() < 6


def test_cli_info_on_corpus_never_tracebacks(corpus):
    root, exp = corpus
    r = CliRunner().invoke(cli, ["info", str(root)])
    assert r.exit_code == 2
    assert "Traceback" not in r.output
    bad = [n for n, e in exp.items() if e not in ("ok", "no_skin", "ok-or-error")]
    for name in bad:
        lines = [l for l in r.stderr.splitlines() if l.startswith(f"skinimg: {name}: ")]
        assert len(lines) == 1, (name, r.stderr)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(min_size=0, max_size=2048), ext=st.sampled_from([".jpg", ".png", ".tif", ".bmp", ".webp"]))
def test_fuzz_random_bytes_never_crash(tmp_path, data, ext):
    p = tmp_path / f"f{ext}"
    p.write_bytes(data)
    try:
        rgb, _ = load_image(p)
    except SkinImgError as exc:
        assert "\n" not in str(exc)
    else:
        assert rgb.ndim == 3 and rgb.shape[2] == 3


_MAGIC = {".png": b"\x89PNG\r\n\x1a\n", ".jpg": b"\xff\xd8\xff\xe0", ".tif": b"II*\x00", ".bmp": b"BM", ".webp": b"RIFF"}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(min_size=0, max_size=1024), ext=st.sampled_from(sorted(_MAGIC)))
def test_fuzz_valid_magic_then_garbage(tmp_path, data, ext):
    """Garbage behind a valid signature reaches the decoders: still only SkinImgError."""
    p = tmp_path / f"m{ext}"
    p.write_bytes(_MAGIC[ext] + data)
    try:
        load_image(p)
    except SkinImgError:
        pass


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    h=st.integers(1, 40), w=st.integers(1, 40), seed=st.integers(0, 2**16),
    fmt=st.sampled_from([".png", ".bmp", ".tif", ".webp", ".jpg"]), bits16=st.booleans(),
)
def test_fuzz_random_small_images_round_trip(tmp_path, h, w, seed, fmt, bits16):
    import cv2

    rng = np.random.default_rng(seed)
    bits16 = bits16 and fmt in (".png", ".tif")
    a = rng.integers(0, 65536 if bits16 else 256, size=(h, w, 3), dtype=np.uint16 if bits16 else np.uint8)
    params = [cv2.IMWRITE_WEBP_QUALITY, 101] if fmt == ".webp" else []
    ok, buf = cv2.imencode(fmt, cv2.cvtColor(a, cv2.COLOR_RGB2BGR), params)
    assert ok
    p = tmp_path / f"r{fmt}"
    p.write_bytes(buf.tobytes())
    rgb, meta = load_image(p)
    assert rgb.shape == a.shape and rgb.dtype == a.dtype
    if fmt != ".jpg":
        np.testing.assert_array_equal(rgb, a)

"""The bad-input corpus of issue 9, generated on the fly (nothing binary is committed).

``make_corpus(root)`` writes every kind of messy file a clinic folder holds and returns a
dict ``relative name -> expectation``: ``"ok"`` (valid, possibly unusual, must be processed)
or the fragment the one-line error must contain.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image


def _png_header_only(path: Path, w: int, h: int) -> None:
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def skin_like(h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    """A textured skin-coloured RGB uint8 image (not a phantom; just plausible skin tones)."""
    rng = np.random.default_rng(seed)
    base = np.array([224, 172, 150], np.float32)
    img = base + rng.normal(0, 6, (h, w, 3)).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def _enc(path: Path, rgb: np.ndarray, params=()) -> bytes:
    ok, buf = cv2.imencode(path.suffix if path.suffix.lower() != ".jpeg" else ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), list(params))
    assert ok
    return buf.tobytes()


def make_corpus(root: Path, *, include_unreadable: bool = True) -> dict[str, str]:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    exp: dict[str, str] = {}
    skin = skin_like()

    def put(name: str, data: bytes, expect: str) -> None:
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        exp[name] = expect

    put("good.jpg", _enc(root / "good.jpg", skin, [cv2.IMWRITE_JPEG_QUALITY, 92]), "ok")
    put("empty.jpg", b"", "empty file")
    full = _enc(root / "x.jpg", skin)
    put("truncated.jpg", full[: len(full) // 2], "truncated")
    fullp = _enc(root / "x.png", skin)
    put("truncated.png", fullp[: len(fullp) // 2], "truncated")
    put("notes.jpg", b"Patient called, will come back Tuesday.\n", "not a supported image")
    put("scan.jpg", b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer\n%%EOF\n", "not a supported image")
    put("tiny1x1.png", _enc(root / "a.png", skin[:1, :1]), "ok-or-error")
    put("tiny3x3.png", _enc(root / "a.png", skin[:3, :3]), "ok-or-error")
    _png_header_only(root / "bomb.png", 100_000, 100_000)
    exp["bomb.png"] = "too large"
    for name, mode in [("gray.png", "L"), ("palette.png", "P")]:
        Image.fromarray(skin).convert(mode).save(root / name)
        exp[name] = "colour photograph required"
    Image.fromarray(np.dstack([skin, np.full(skin.shape[:2], 128, np.uint8)]), "RGBA").save(root / "rgba.png")
    exp["rgba.png"] = "ok"
    s16 = skin.astype(np.uint16) * 257
    put("sixteen.png", _enc(root / "a.png", s16), "ok")
    put("sixteen.tif", _enc(root / "a.tif", s16), "ok")
    Image.fromarray(skin).convert("CMYK").save(root / "cmyk.jpg", quality=92)
    exp["cmyk.jpg"] = "ok"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(skin).save(root / "rotated.jpg", exif=exif.tobytes(), quality=92)
    exp["rotated.jpg"] = "ok"
    blue = np.zeros_like(skin)
    blue[..., 2] = 200
    put("blue.png", _enc(root / "a.png", blue), "no_skin")
    put("white.png", _enc(root / "a.png", np.full_like(skin, 255)), "no_skin")
    put("black.png", _enc(root / "a.png", np.zeros_like(skin)), "no_skin")
    put("with space/ünïcödé name.jpg", _enc(root / "a.jpg", skin), "ok")
    put("visit1/img.jpg", _enc(root / "a.jpg", skin), "ok")
    put("visit2/img.jpg", _enc(root / "a.jpg", np.roll(skin, 5, axis=1)), "ok")
    (root / "loop").mkdir(exist_ok=True)
    if not (root / "loop" / "self").exists():
        os.symlink(root / "loop", root / "loop" / "self", target_is_directory=True)
    if not (root / "dangling.jpg").is_symlink():
        os.symlink(root / "does-not-exist.jpg", root / "dangling.jpg")
    exp["dangling.jpg"] = "not found"
    if include_unreadable and os.geteuid() != 0:
        put("locked.jpg", _enc(root / "a.jpg", skin), "permission denied")
        (root / "locked.jpg").chmod(0)
    return exp

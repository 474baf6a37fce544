"""Longer mutation fuzzing of the image loader (``make fuzz``).

Takes valid small images in every supported format, mutates them (bit flips, byte
overwrites, truncation, chunk duplication, random insertions) and loads each result with
``skinimg.io.load_image``.  Anything other than a clean load or a one-line
``SkinImgError`` is a finding: it is printed with the seed to reproduce it and the script
exits 1.

    python benchmarks/fuzz_loader.py [--n 20000] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from skinimg import SkinImgError  # noqa: E402
from skinimg.io import load_image  # noqa: E402


def seeds_corpus(rng) -> dict[str, bytes]:
    a = rng.integers(0, 256, size=(24, 32, 3), dtype=np.uint8)
    out = {}
    for ext, params in [(".jpg", [cv2.IMWRITE_JPEG_QUALITY, 90]), (".png", []), (".tif", []), (".bmp", []), (".webp", [])]:
        ok, buf = cv2.imencode(ext, a, params)
        out[ext] = buf.tobytes()
    ok, buf = cv2.imencode(".png", a.astype(np.uint16) * 257)
    out["16.png"] = buf.tobytes()
    exif = Image.Exif()
    exif[0x0112] = 6
    import io as _io

    bio = _io.BytesIO()
    Image.fromarray(a).save(bio, "JPEG", exif=exif.tobytes())
    out["exif.jpg"] = bio.getvalue()
    return out


def mutate(data: bytes, rng) -> bytes:
    b = bytearray(data)
    op = rng.integers(0, 5)
    if op == 0:  # bit flips
        for _ in range(rng.integers(1, 8)):
            i = rng.integers(0, len(b))
            b[i] ^= 1 << int(rng.integers(0, 8))
    elif op == 1:  # byte overwrite with extreme values
        for _ in range(rng.integers(1, 6)):
            b[rng.integers(0, len(b))] = int(rng.choice([0, 255, 127, 128]))
    elif op == 2:  # truncation
        b = b[: rng.integers(1, len(b))]
    elif op == 3:  # duplicate a slice
        i, j = sorted(rng.integers(0, len(b), 2))
        b = b[:j] + b[i:j] + b[j:]
    else:  # random insertion
        i = rng.integers(0, len(b))
        b = b[:i] + bytes(rng.integers(0, 256, rng.integers(1, 64), dtype=np.uint8)) + b[i:]
    return bytes(b)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    corpus = seeds_corpus(rng)
    names = sorted(corpus)
    outcomes: Counter = Counter()
    findings = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.n):
            name = names[k % len(names)]
            data = mutate(corpus[name], rng)
            p = Path(tmp) / f"case{Path(name).suffix}"
            p.write_bytes(data)
            try:
                rgb, _ = load_image(p)
                assert rgb.ndim == 3 and rgb.shape[2] == 3
                outcomes["loaded"] += 1
            except SkinImgError as exc:
                assert "\n" not in str(exc)
                outcomes["SkinImgError"] += 1
            except Exception:  # a finding
                outcomes["other exception"] += 1
                keep = Path("bench-results") / "fuzz" / f"finding_{k}{Path(name).suffix}"
                keep.parent.mkdir(parents=True, exist_ok=True)
                keep.write_bytes(data)
                findings.append((k, name, traceback.format_exc(limit=3)))
    dt = time.perf_counter() - t0
    print(f"| inputs tried | loaded | SkinImgError | other exceptions | seconds |")
    print(f"|---:|---:|---:|---:|---:|")
    print(f"| {args.n} | {outcomes['loaded']} | {outcomes['SkinImgError']} | {outcomes['other exception']} | {dt:.1f} |")
    for k, name, tb in findings[:10]:
        print(f"\nfinding #{k} (from {name}, seed {args.seed}):\n{tb}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())

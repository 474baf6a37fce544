"""Helpers of the tests and benchmarks.

* :func:`stand_in_segment`: a deterministic test stand-in with the signature of
  :func:`skinimg.segment.segment_skin`, for tests that monkeypatch the real function (in-process runs only).
* :func:`exif_photo`: a JPEG carrying GPS, maker-note and camera EXIF (privacy tests).
* :func:`snapshot`: every file of an output tree with its bytes (SQLite compared by rows).
* :data:`CHROMIUM`, :func:`chromium_screenshot`: a page rendered by headless Chromium (the report's checks).
"""

from __future__ import annotations

import io
import shutil
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

import numpy as np

#: Strings planted in the EXIF of :func:`exif_photo`; none may appear in any output.
SECRET_MAKERNOTE = b"MAKERNOTE-SECRET-7c1f"
SECRET_CAMERA = "SecretCam"
SECRET_ARTIST = "Dr Jane Secret"
GPS_LAT = (48.0, 51.0, 24.17)


def stand_in_segment(rgb, method="model", **_):
    """Skin = reddish pixels (R > G > B, R > 90 on the 8-bit scale), as a :class:`~skinimg.segment.SegmentResult`;
    test-only."""
    from skinimg.segment import SegmentResult

    a = (rgb >> 8).astype(np.int32) if rgb.dtype == np.uint16 else rgb.astype(np.int32)
    r, g, b = a[..., 0], a[..., 1], a[..., 2]
    mask = (r > g) & (g > b) & (r > 90)
    return SegmentResult(mask=mask, skin_fraction=float(mask.mean()), status="ok" if mask.any() else "no_skin",
                         method=f"stand-in-{method}", work_probability=mask.astype(np.float32))


def exif_photo(path: Path, rgb: np.ndarray) -> Path:
    """Write ``rgb`` as a JPEG with GPS position, maker note, camera make/model and artist in EXIF."""
    from PIL import Image

    exif = Image.Exif()
    exif[0x010F] = SECRET_CAMERA          # Make
    exif[0x0110] = SECRET_CAMERA + " X1"  # Model
    exif[0x013B] = SECRET_ARTIST          # Artist
    exif[0x0132] = "2024:05:06 07:08:09"  # DateTime
    sub = exif.get_ifd(0x8769)
    sub[0x927C] = SECRET_MAKERNOTE        # MakerNote
    sub[0x9003] = "2024:05:06 07:08:09"   # DateTimeOriginal
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = GPS_LAT
    gps[3] = "E"
    gps[4] = (2.0, 21.0, 3.0)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=92, exif=exif.tobytes())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    return path


def sqlite_rows(path: Path) -> list[tuple]:
    with closing(sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True)) as con:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        out = []
        for t in tables:
            out.append((t, sorted(tuple(r) for r in con.execute(f'SELECT * FROM "{t}"'))))
    return out


def snapshot(root: Path) -> dict[str, object]:
    """relative path -> bytes (or table rows for SQLite files); WAL side files skipped."""
    root = Path(root)
    snap: dict[str, object] = {}
    for p in sorted(root.rglob("*")):
        if p.is_dir() or p.name.endswith(("-wal", "-shm")):
            continue
        rel = p.relative_to(root).as_posix()
        snap[rel] = sqlite_rows(p) if p.suffix == ".sqlite" else p.read_bytes()
    return snap


#: The headless browser of the report's rendering checks (None: not installed, those tests skip).
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium_screenshot(page: Path, shot: Path, profile: Path, size: tuple[int, int]) -> None:
    """Render the HTML file ``page`` in headless Chromium into the PNG ``shot`` (``size`` = width, height; no
    network, a throw-away ``profile`` folder)."""
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", f"--screenshot={shot}", f"--window-size={size[0]},{size[1]}",
           "--hide-scrollbars", Path(page).resolve().as_uri()]
    subprocess.run(cmd, capture_output=True, timeout=120, check=False)

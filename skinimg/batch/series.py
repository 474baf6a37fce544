"""The sessions of a study: ``ROOT/<patient>/<site>/<session>/<image>`` folders or a CSV manifest."""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import SkinImgError
from ..io import IMAGE_EXTENSIONS, is_roi_file, read_header, safe_output_path

__all__ = ["SessionImage", "discover_series", "read_manifest"]

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass
class SessionImage:
    """One photo of a series: ``patient``, ``site``, ``session``, ``path``, ``label`` (relative name), ``roi``."""

    patient: str
    site: str
    session: str
    path: Path
    label: str
    roi: Path | None = None
    capture_time: str | None = None


def _capture_time(path: Path) -> str | None:
    try:
        im, info = read_header(path)
        im.close()
    except SkinImgError:
        return None
    return info.get("capture_time")


def _order_sessions(items: list[SessionImage], notes: list) -> list[SessionImage]:
    """Sessions ordered by ISO date names, else by EXIF capture time, else by name (noted)."""
    if all(_ISO_DATE.match(s.session) for s in items):
        return sorted(items, key=lambda s: s.session)
    for s in items:
        s.capture_time = _capture_time(s.path)
    if all(s.capture_time for s in items):
        return sorted(items, key=lambda s: (s.capture_time, s.session))
    if len(items) > 1:
        notes.append(f"{items[0].patient}/{items[0].site}: sessions are not ISO dates and lack EXIF capture times; "
                     "ordered by name")
    return sorted(items, key=lambda s: s.session)


def discover_series(root: str | os.PathLike, notes: list | None = None) -> dict[tuple[str, str], list[SessionImage]]:
    """Series of ``ROOT/<patient>/<site>/<session>/<image>``, sessions ordered (see :func:`track`).

    A session folder with several photos uses the first in name order (noted).
    """
    notes = [] if notes is None else notes
    root = Path(root)
    if not root.is_dir():
        raise SkinImgError("study folder not found", os.fspath(root))
    series: dict[tuple[str, str], list[SessionImage]] = {}
    for pdir in sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")):
        for sdir in sorted(d for d in pdir.iterdir() if d.is_dir() and not d.name.startswith(".")):
            items = []
            for sess in sorted(d for d in sdir.iterdir() if d.is_dir() and not d.name.startswith(".")):
                imgs = sorted(f for f in sess.iterdir() if f.is_file() and not f.name.startswith(".")
                              and f.suffix.lower() in IMAGE_EXTENSIONS and not is_roi_file(f.name))
                if not imgs:
                    continue
                if len(imgs) > 1:
                    notes.append(f"{pdir.name}/{sdir.name}/{sess.name}: {len(imgs)} photos; using {imgs[0].name}")
                items.append(SessionImage(pdir.name, sdir.name, sess.name, imgs[0],
                                          imgs[0].relative_to(root).as_posix()))
            if items:
                series[(pdir.name, sdir.name)] = _order_sessions(items, notes)
    if not series:
        raise SkinImgError("no <patient>/<site>/<session>/<image> photos found", os.fspath(root))
    return series


def read_manifest(path: str | os.PathLike, root: str | os.PathLike,
                  notes: list | None = None) -> dict[tuple[str, str], list[SessionImage]]:
    """Series from a CSV manifest with columns ``patient,site,session,image[,roi]``.

    ``image`` and ``roi`` are relative to ``root`` (or absolute).  Sessions are ordered as
    in :func:`discover_series`; a session listed twice for one patient/site is an error.
    """
    notes = [] if notes is None else notes
    p, root = Path(path), Path(root)
    try:
        with open(p, newline="", encoding="utf-8-sig") as fh:
            rd = csv.DictReader(fh)
            cols = [c.strip() for c in (rd.fieldnames or [])]
            rows = [{(k or "").strip(): (v or "").strip() for k, v in r.items()} for r in rd]
    except FileNotFoundError:
        raise SkinImgError("manifest not found", os.fspath(p)) from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SkinImgError(f"cannot read manifest ({exc})", os.fspath(p)) from None
    missing = [c for c in ("patient", "site", "session", "image") if c not in cols]
    if missing:
        raise SkinImgError(f"manifest lacks column(s) {', '.join(missing)} (needs patient,site,session,image[,roi])",
                           p.name)
    series: dict[tuple[str, str], list[SessionImage]] = {}
    for i, r in enumerate(rows, start=2):
        if not any(r.values()):
            continue
        if not all(r.get(c) for c in ("patient", "site", "session", "image")):
            raise SkinImgError(f"line {i}: patient, site, session and image are required", p.name)
        for c in ("patient", "site", "session"):
            safe_output_path(".", r[c], what=f"manifest {c} (line {i})")
            if "/" in r[c] or "\\" in r[c] or "__" in r[c]:
                raise SkinImgError(f"line {i}: {c} {r[c]!r} may not contain '/', '\\' or '__'", p.name)
        img = Path(r["image"])
        img = img if img.is_absolute() else root / img
        roi = r.get("roi") or None
        roi_p = None if roi is None else (Path(roi) if Path(roi).is_absolute() else root / roi)
        key = (r["patient"], r["site"])
        if any(s.session == r["session"] for s in series.get(key, [])):
            raise SkinImgError(f"line {i}: session {r['session']!r} listed twice for {key[0]}/{key[1]}", p.name)
        series.setdefault(key, []).append(SessionImage(r["patient"], r["site"], r["session"], img, r["image"], roi_p))
    if not series:
        raise SkinImgError("manifest lists no photos", p.name)
    return {k: _order_sessions(v, notes) for k, v in sorted(series.items())}

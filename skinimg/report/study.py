"""What a results folder holds, read for the report: rows, series, pairs, provenance (:func:`load_study`)."""

from __future__ import annotations

import csv
import hashlib
import hmac
import logging
import math
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..errors import SkinImgError
from ..io import map_paths, mask_path, output_stems, read_json_object

__all__ = ["ReportParams", "Anonymizer", "Study", "study_key", "load_study"]

log = logging.getLogger("skinimg.report")

#: Indices shown in tables, trend plots and the study summary (in this order).
MAIN_INDICES = ("hemoglobin", "melanin", "erythema_index", "melanin_index", "a_star", "l_star", "ita_deg")
#: Heatmaps shown per photo.
HEATMAPS = ("hemoglobin", "melanin")
#: Units / scales shown on axes.
UNITS = {
    "hemoglobin": "model volume fraction",
    "melanin": "model volume fraction",
    "erythema_index": "100·log10(R/G)",
    "melanin_index": "100·log10(1/R)",
    "a_star": "CIELAB a*",
    "b_star": "CIELAB b*",
    "l_star": "CIELAB L*",
    "ita_deg": "degrees",
    "red_area_fraction": "fraction of skin",
    "brown_spot_area_fraction": "fraction of skin",
    "brown_spot_count": "count",
}
#: Matplotlib colour maps of the heatmaps (same families as ``skinimg analyze``'s PNGs).
CMAPS = {"hemoglobin": "inferno", "melanin": "cividis"}
#: Below this skin fraction of the photo a "little skin found" warning is shown.
LITTLE_SKIN_FRACTION = 0.05
#: Above this fraction of saturated skin pixels an "over-exposed" warning is shown.
SATURATED_WARN = 0.01
#: Registration is flagged as poor above this residual (px) or below this inlier count,
#: unless comparison.json itself says how good it was (``registration.ok`` / ``warnings``).
POOR_RESIDUAL_PX = 3.0
POOR_INLIERS = 25
#: Longest side of the photos and heatmaps in the report (pixels).
DISPLAY_SIDE = 640
ITA_ORDER = ("very_light", "light", "intermediate", "tan", "brown", "dark")
VERDICTS = ("improved", "no_change", "worsened")


@dataclass(frozen=True)
class ReportParams:
    """Options of :func:`build_report`.

    Attributes
    ----------
    title : str
        Shown on every page.
    anonymize : bool
        Replace patient identifiers (and image file names) by pseudonyms.
    salt : str or None
        Key of the pseudonyms; a random one per report when None (pseudonyms then
        differ between reports).  Never written into the report.
    images : path or None
        Folder of the original photos (the input root given to ``analyze``); default:
        the inputs recorded in ``analyze.json`` / ``run.json``.
    display_side : int
        Longest side of the pictures in the report.
    """

    title: str = "skinimg report"
    anonymize: bool = False
    salt: str | None = None
    images: str | None = None
    display_side: int = DISPLAY_SIDE


# ----------------------------------------------------------------------------- anonymisation


class Anonymizer:
    """Stable pseudonyms for patient identifiers and image names (HMAC-SHA256 with a salt).

    With ``enabled=False`` every method returns its input unchanged.
    """

    def __init__(self, salt: str | None, enabled: bool):
        self.enabled = enabled
        self._key = (salt if salt is not None else secrets.token_hex(16)).encode("utf-8")
        self._names: dict[str, str] = {}
        self._pattern: re.Pattern | None = None

    def _digest(self, text: str) -> str:
        return hmac.new(self._key, text.encode("utf-8"), hashlib.sha256).hexdigest()[:6]

    def patient(self, name: str) -> str:
        """``P-xxxxxx`` for a patient folder name (identity when disabled)."""
        if not self.enabled or not name:
            return name
        if name not in self._names:
            self._names[name] = f"P-{self._digest('patient:' + name)}"
            self._pattern = None
        return self._names[name]

    def image_name(self, filename: str) -> str:
        """``img-xxxxxx.<ext>`` for an image file name (identity when disabled)."""
        if not self.enabled:
            return filename
        p = Path(filename)
        return f"img-{self._digest('image:' + filename)}{p.suffix.lower()}"

    def image_path(self, relpath: str) -> str:
        """An image's relative path with the patient folder and the file name replaced."""
        if not self.enabled:
            return relpath
        parts = list(Path(relpath).parts)
        if not parts:
            return relpath
        parts[-1] = self.image_name(parts[-1])
        return self.text("/".join(parts))

    def text(self, s: str) -> str:
        """Any text with every known patient name (as a whole word) replaced by its pseudonym."""
        if not self.enabled or not self._names or not s:
            return s
        if self._pattern is None:
            names = sorted(self._names, key=len, reverse=True)
            self._pattern = re.compile(
                r"(?<![A-Za-z0-9])(" + "|".join(re.escape(n) for n in names) + r")(?![A-Za-z0-9])"
            )
        return self._pattern.sub(lambda m: self._names[m.group(1)], s)


# ----------------------------------------------------------------------------- reading the results folder


@dataclass
class ImageEntry:
    image: str  # path relative to the input root, as in indices.csv
    row: dict  # the photo's row of the whole skin (or of its one ROI)
    patient: str
    site: str
    session: str
    stem: str | None = None  # output stem (skinimg.io.output_stems), set by load_study
    regions: dict = field(default_factory=dict)  # region name -> its row (named ROI regions)

    @property
    def stem_rel(self) -> str:
        return self.stem if self.stem is not None else Path(self.image).with_suffix("").as_posix()

    @property
    def status(self) -> str:
        return self.row.get("status", "")


@dataclass
class Pair:
    reference: str
    session: str
    doc: dict
    folder: Path | None
    pictures: list[Path] = field(default_factory=list)


@dataclass
class Series:
    patient: str
    site: str
    entries: list[ImageEntry] = field(default_factory=list)
    pairs: list[Pair] = field(default_factory=list)
    slug: str = ""

    @property
    def sessions(self) -> list[str]:
        seen: list[str] = []
        for e in self.entries:
            if e.session not in seen:
                seen.append(e.session)
        for p in self.pairs:
            for s in (p.reference, p.session):
                if s and s not in seen:
                    seen.append(s)
        return sorted(seen)


def study_key(image: str) -> tuple[str, str, str]:
    """``(patient, site, session)`` from ``<patient>/<site>/<session>/<image>`` (the last three folders).

    Paths with fewer folders give empty parts: ``a/b.jpg`` -> ``("a", "", "")`` is
    read as patient ``a``; a bare file name -> ``("", "", "")``.
    """
    parts = Path(image).parts[:-1]
    if len(parts) >= 3:
        return parts[-3], parts[-2], parts[-1]
    if len(parts) == 2:
        return parts[0], "", parts[1]
    if len(parts) == 1:
        return parts[0], "", ""
    return "", "", ""


def _read_csv(path: Path) -> list[dict]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            return [dict(r) for r in csv.DictReader(fh)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SkinImgError(f"cannot read CSV ({exc})", path.name) from None


def _num(v) -> float | None:
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


@dataclass
class Study:
    root: Path
    rows: list[dict]  # one per photo (the whole skin); the rows of named ROI regions are in ImageEntry.regions
    series: list[Series]
    analyze: dict
    run: dict
    single: Pair | None
    image_roots: list[Path]


def load_study(results: Path, *, images: str | None = None) -> Study:
    """Read a results folder into series of images and compared pairs."""
    if not results.is_dir():
        raise SkinImgError("results folder not found", os.fspath(results))
    idx = results / "indices.csv"
    rows = _read_csv(idx) if idx.is_file() else []
    analyze = read_json_object(results / "analyze.json", "analyze.json") if (results / "analyze.json").is_file() else {}
    run = read_json_object(results / "run.json", "run.json") if (results / "run.json").is_file() else {}
    pairs_dir = results / "pairs"
    pair_files = sorted(pairs_dir.glob("*/*/*/comparison.json")) if pairs_dir.is_dir() else []
    single_path = results / "comparison.json"
    if not rows and not pair_files and not single_path.is_file():
        raise SkinImgError("no results to report (no indices.csv, pairs/ or comparison.json)", os.fspath(results))

    # image -> (patient, site, session): series.csv first (when it names images), then the layout
    keys: dict[str, tuple[str, str, str]] = {}
    series_csv = results / "series.csv"
    if series_csv.is_file():
        for r in _read_csv(series_csv):
            img = r.get("image") or r.get("after") or ""
            if img and r.get("patient") is not None:
                keys.setdefault(img, (r.get("patient", ""), r.get("site", ""), r.get("session", "")))
    groups: dict[tuple[str, str], Series] = {}
    stems = output_stems(r.get("image", "") for r in rows)  # the names analyze gave the maps
    region_rows = [r for r in rows if r.get("region")]
    rows = [r for r in rows if not r.get("region")]
    entries: dict[str, ImageEntry] = {}
    for r in rows:
        img = r.get("image", "")
        patient, site, session = keys.get(img) or study_key(img)
        s = groups.setdefault((patient, site), Series(patient, site))
        entries[img] = ImageEntry(img, r, patient, site, session, stems[img])
        s.entries.append(entries[img])
    for r in region_rows:
        if r.get("image", "") in entries:
            entries[r["image"]].regions[r["region"]] = r
    for f in pair_files:
        patient, site, name = f.relative_to(pairs_dir).parts[:3]
        reference, _, session = name.partition("__")
        doc = read_json_object(f, f.relative_to(results).as_posix())
        s = groups.setdefault((patient, site), Series(patient, site))
        s.pairs.append(Pair(reference, session, doc, f.parent, sorted(f.parent.glob("*.png"))))
    single = None
    if single_path.is_file():
        doc = read_json_object(single_path, "comparison.json")
        pics = sorted(p for p in results.glob("*.png"))
        single = Pair(str(doc.get("before", "before")), str(doc.get("after", "after")), doc, results, pics)
    for s in groups.values():
        s.entries.sort(key=lambda e: (e.session, e.image))
        s.pairs.sort(key=lambda p: (p.session, p.reference))
    series = sorted(groups.values(), key=lambda s: (s.patient, s.site))

    roots: list[Path] = []
    if images:
        roots.append(Path(images))
    for doc in (analyze, run):
        for key in ("inputs", "input", "input_root", "root"):
            v = doc.get(key)
            for p in (v if isinstance(v, list) else [v] if v else []):
                if isinstance(p, str):
                    q = Path(p)
                    roots += [q] if q.is_absolute() else [q, results.parent / q]
    return Study(results, rows, series, analyze, run, single, roots)


def _find_photo(study: Study, image: str) -> Path | None:
    for root in study.image_roots:
        cand = root / image if root.is_dir() else (root if root.name == Path(image).name else None)
        if cand is not None and cand.is_file():
            return cand
    return None


def _find_mask(results: Path, entry: ImageEntry) -> Path | None:
    for cand in (mask_path(results, entry.stem_rel), results / "masks" / entry.image):
        if cand.is_file() and cand.suffix.lower() == ".png":
            return cand
    return None


def _map_path(results: Path, entry: ImageEntry, name: str, ext: str) -> Path:
    tif, png = map_paths(results, entry.stem_rel, name)
    return tif if ext == "tif" else png


def _read_map(path: Path) -> np.ndarray | None:
    data = np.fromfile(os.fspath(path), dtype=np.uint8) if path.is_file() else None
    if data is None or not data.size:
        return None
    arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if arr is None or arr.ndim != 2:
        return None
    return arr.astype(np.float32, copy=False)

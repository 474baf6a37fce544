"""Which region of interest each photo of a batch is measured in (:class:`RoiLookup`), and writing propagated ROIs.

Lookup order for a photo (the first found wins; :meth:`RoiLookup.resolve`):

1. ``roi_file``: one ROI file for every photo (``skinimg analyze --roi FILE``, ``segment --roi``);
2. the photo's own ROI file (:func:`skinimg.io.find_roi`): ``<stem>.roi.json`` / ``.roi.png`` beside the photo
   (``files="beside"``, the default) or at its relative path under a mirrored folder (``files="dir"``,
   ``--roi-dir``); ``files="none"`` (``--no-roi-files``) skips this step;
3. an ROI propagated from the series' baseline (``skinimg track --propagate-roi``, a pipeline's
   ``roi.propagate``), written to ``rois/<patient>/<site>/<session>.roi.json``;
4. none: the whole skin.

Every row says which was used: columns :data:`ROI_COLUMNS` (``roi`` = the file, ``region`` = the region name,
``roi_source`` = ``file`` | ``propagated`` | ``none``, ``roi_pixels`` = the region's area in the photo's pixels).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import SkinImgError
from ..io import InputImage, Roi, find_roi, read_roi, safe_output_path, write_json, write_png

__all__ = ["ROI_COLUMNS", "ROI_SOURCES", "ROI_FILES", "RoiRef", "RoiLookup", "fit_roi", "roi_columns",
           "write_propagated"]

#: Columns added (at the end) to ``indices.csv``, ``series.csv`` (and ``segment.csv`` without ``region``).
ROI_COLUMNS = ("roi", "region", "roi_source", "roi_pixels")
#: Values of ``roi_source``.
ROI_SOURCES = ("file", "propagated", "none")
#: Where a batch looks for each photo's own ROI file (a pipeline's ``roi.files`` is one of these or ``dir:<path>``).
ROI_FILES = ("beside", "none")


@dataclass(frozen=True)
class RoiRef:
    """The ROI of one photo as found (read later, in the worker that has the photo).

    Attributes
    ----------
    path : Path or None
        The ROI file (None: no ROI).
    label : str
        How rows and messages name it (the ``roi`` column).
    source : {"file", "propagated", "none"}
    error : str or None
        Why the photo has no usable ROI although it should (a lookup error, a propagation refused): its rows are
        errors with this reason.
    """

    path: Path | None = None
    label: str = ""
    source: str = "none"
    error: str | None = None

    def key(self) -> str | None:
        """What the photo's results depend on (resume key): source, label and the file's SHA-256; None without ROI."""
        if self.path is None and self.error is None:
            return None
        try:
            digest = hashlib.sha256(Path(self.path).read_bytes()).hexdigest() if self.path is not None else ""
        except OSError:
            digest = "unreadable"
        return f"{self.source}:{self.label}:{digest}:{self.error or ''}"


@dataclass(frozen=True)
class RoiLookup:
    """How a batch finds each photo's ROI (see the module docstring for the order).

    Attributes
    ----------
    files : {"beside", "dir", "none"}
        Where the photo's own ROI file is looked for.
    roi_dir : Path or None
        The mirrored folder of ``files="dir"``.
    roi_file : Path or None
        One ROI file for every photo (wins over the photos' own).
    propagated : dict str -> RoiRef
        ROIs propagated by ``track`` (key: the photo's resolved path), used when a photo has no file.
    """

    files: str = "beside"
    roi_dir: Path | None = None
    roi_file: Path | None = None
    propagated: dict = field(default_factory=dict)

    @classmethod
    def parse(cls, setting: str, *, roi_file: str | os.PathLike | None = None) -> "RoiLookup":
        """From a pipeline's ``roi.files`` (``"beside"``, ``"none"`` or ``"dir:<path>"``) or the CLI's options."""
        if setting.startswith("dir:") and setting[4:].strip():
            return cls("dir", Path(setting[4:].strip()), None if roi_file is None else Path(roi_file))
        if setting not in ROI_FILES:
            raise SkinImgError(f"roi.files must be 'beside', 'none' or 'dir:<path>', got {setting!r}")
        return cls(setting, None, None if roi_file is None else Path(roi_file))

    @classmethod
    def from_options(cls, roi: str | os.PathLike | None = None, roi_dir: str | os.PathLike | None = None,
                     no_files: bool = False) -> "RoiLookup":
        """The lookup of the CLI options ``--roi FILE``, ``--roi-dir DIR`` and ``--no-roi-files``."""
        if roi is not None and not Path(roi).is_file():
            raise SkinImgError("ROI file not found", os.fspath(roi))
        if roi_dir is not None and not Path(roi_dir).is_dir():
            raise SkinImgError("ROI folder not found", os.fspath(roi_dir))
        files = "none" if no_files else ("dir" if roi_dir is not None else "beside")
        return cls(files, None if roi_dir is None else Path(roi_dir), None if roi is None else Path(roi))

    def setting(self) -> str:
        """The ``roi.files`` value of this lookup (recorded in ``analyze.json`` / ``run.json``)."""
        return f"dir:{os.fspath(self.roi_dir)}" if self.files == "dir" else self.files

    def resolve(self, path: str | os.PathLike, relpath: str | None = None) -> RoiRef:
        """The :class:`RoiRef` of the photo at ``path`` (``relpath``: its name relative to the input folder)."""
        if self.roi_file is not None:
            return RoiRef(self.roi_file, os.fspath(self.roi_file), "file")
        rel = relpath if relpath is not None else Path(path).name
        if self.files != "none":
            try:
                found = find_roi(path, relpath=rel, roi_dir=self.roi_dir if self.files == "dir" else None)
            except SkinImgError as exc:
                return RoiRef(None, "", "file", f"{exc.reason} ({exc.path})")
            if found is not None:
                label = os.fspath(found) if self.files == "dir" else (Path(rel).parent / found.name).as_posix()
                return RoiRef(found, label, "file")
        return self.propagated.get(os.fspath(Path(path).resolve()), RoiRef())

    def item(self, item: InputImage) -> RoiRef:
        return self.resolve(item.path, item.relpath)


def fit_roi(ref: RoiRef, shape: tuple[int, int],
            photo_shape: tuple[int, int] | None = None) -> tuple[Roi | None, dict[str, np.ndarray]]:
    """Read ``ref``'s file and fit it to a photo of ``shape`` (H, W): ``(roi, {region: mask})`` (``(None, {})``
    without ROI; key ``""`` for an unnamed region).  ``photo_shape``: the photo's own (H, W) when ``shape`` is
    a working copy of it (:meth:`skinimg.io.Roi.masks`).

    Raises
    ------
    SkinImgError
        One line naming the ROI file: ``ROI face.roi.json: ROI polygon has a point (700, 20) outside the 640x480
        photo``; or the reason of :attr:`RoiRef.error`.
    """
    if ref.error is not None:
        raise SkinImgError(ref.error)
    if ref.path is None:
        return None, {}
    try:
        roi = read_roi(ref.path, label=ref.label)
        return roi, roi.masks(shape, photo_shape)
    except SkinImgError as exc:
        raise SkinImgError(f"ROI {ref.label}: {exc.reason}") from None


def roi_columns(ref: RoiRef | None, region: str = "", pixels: int | None = None) -> dict:
    """The :data:`ROI_COLUMNS` of a row: the whole skin (``ref`` None or without file) or a region of ``ref``."""
    if ref is None or (ref.path is None and ref.error is None):
        return {"roi": "", "region": "", "roi_source": "none", "roi_pixels": None}
    return {"roi": ref.label, "region": region, "roi_source": ref.source, "roi_pixels": pixels}


def write_propagated(out: str | os.PathLike, patient: str, site: str, session: str, roi: Roi, regions,
                     shape: tuple[int, int], info: dict) -> Path:
    """Write a propagated ROI for a person to check: ``out/rois/<patient>/<site>/<session>.roi.json`` (polygons)
    or ``.roi.png`` (a mask ROI, 255 inside), with ``propagated`` = ``info`` (baseline, registration) in the JSON.

    ``regions`` is :func:`skinimg.session.propagate_regions`' result (polygons by name, or a mask); ``shape`` the
    session photo's (H, W).
    """
    base = safe_output_path(out, f"rois/{patient}/{site}/{session}")
    if isinstance(regions, np.ndarray):
        return write_png(base.parent / (base.name + ".roi.png"), regions.astype(np.uint8) * np.uint8(255))
    polys = {k: [[round(float(x), 2), round(float(y), 2)] for x, y in v] for k, v in regions.items()}
    doc = {"regions": polys} if roi.named else {"polygon": polys[""]}
    doc["image_size"] = [int(shape[1]), int(shape[0])]
    doc["propagated"] = dict(info)
    doc["note"] = ("propagated by skinimg from the baseline's ROI: check it; to correct it, save the corrected file "
                   "beside the photo as <photo stem>.roi.json (a photo's own ROI file always wins)")
    return write_json(base.parent / (base.name + ".roi.json"), doc)

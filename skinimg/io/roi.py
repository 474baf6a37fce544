"""Regions of interest: reading ROI files (:func:`read_roi`, :func:`load_roi`) and finding a photo's (:func:`find_roi`).

ROI files
---------
``<photo stem>.roi.json``
    A polygon ``[[x, y], ...]`` (or ``{"polygon": [[x, y], ...]}``): at least 3 points in the
    pixels of the upright photo, x to the right, y down; the pixels whose centres lie inside
    belong to the ROI.  Several named regions: ``{"regions": {"left_cheek": [[x, y], ...],
    "right_cheek": [...]}}`` (names of letters, digits, ``_``, ``-`` and ``.``).  Optional keys:
    ``image_size`` ``[width, height]`` (the photo it was drawn on: another size is an error),
    ``note`` (free text) and ``propagated`` (written by ``skinimg track --propagate-roi``).
``<photo stem>.roi.png``
    A mask of the photo's size, non-zero = inside (one unnamed region).

A ROI file beside a photo is found by :func:`find_roi`; folder scans never take it for a photo
(:func:`is_roi_file`, used by :func:`skinimg.io.discover_images`).
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..errors import SkinImgError
from .image import reason_text
from .masks import read_mask
from .worksize import reduce_mask

__all__ = ["ROI_SUFFIXES", "REGION_NAME", "REGION_COLOURS", "Roi", "is_roi_file", "find_roi", "read_roi", "load_roi"]

#: Suffixes of ROI files beside a photo, in lookup order (``face.jpg`` -> ``face.roi.json``, ``face.roi.png``).
ROI_SUFFIXES = (".roi.json", ".roi.png")
#: Allowed names of the regions of a ``{"regions": {...}}`` file.
REGION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: RGB outline colours of named regions in pictures (``pair.png``, the report), in the order of their names.
REGION_COLOURS = ((255, 140, 0), (30, 144, 255), (220, 40, 200), (255, 215, 0), (0, 200, 200), (160, 90, 255))
_KEYS = ("polygon", "regions", "image_size", "note", "propagated")
#: How far (pixels) a polygon point may lie beyond the photo's edge (a point drawn on the border, rounding).
_EDGE_SLACK = 1.0


def is_roi_file(name: str | os.PathLike) -> bool:
    """Whether a file name is an ROI file (``*.roi.json`` / ``*.roi.png``, any case), never a photo."""
    low = os.fspath(name).lower()
    return any(low.endswith(s) for s in ROI_SUFFIXES)


@dataclass(frozen=True)
class Roi:
    """An ROI file as read, before it is fitted to a photo (:meth:`masks`).

    Attributes
    ----------
    label : str
        How messages name the file.
    kind : {"polygon", "mask"}
    polygons : dict str -> ndarray float64 (n, 2)
        Vertices ``[x, y]`` per region; the key ``""`` is the one region of an unnamed polygon.
        Empty for a mask.
    mask : ndarray of bool (H, W) or None
        The mask of a mask file.
    image_size : (int, int) or None
        ``(width, height)`` declared by the file.
    meta : dict
        The file's ``note`` and ``propagated`` entries.
    """

    label: str
    kind: str
    polygons: dict = field(default_factory=dict)
    mask: np.ndarray | None = None
    image_size: tuple | None = None
    meta: dict = field(default_factory=dict)

    @property
    def named(self) -> bool:
        """True for a ``{"regions": ...}`` file (one row per region), False for one unnamed region."""
        return self.kind == "polygon" and "" not in self.polygons

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.polygons) if self.kind == "polygon" else ("",)

    def masks(self, shape: tuple[int, int], photo_shape: tuple[int, int] | None = None) -> dict[str, np.ndarray]:
        """The regions as bool masks of ``shape`` (H, W): ``{name: mask}`` (``""`` for an unnamed region).

        ``photo_shape`` (H, W) is the size of the photo the ROI belongs to when the masks are wanted on a working
        copy of another ``shape`` (:func:`skinimg.io.load_image` ``work_pixels``): the file is checked against the
        photo, its polygons are scaled to ``shape`` (pixel centres onto pixel centres) and a mask ROI is
        area-averaged (:func:`skinimg.io.reduce_mask`).  None: the photo is ``shape``.

        Raises
        ------
        SkinImgError
            (naming the file) a declared ``image_size`` or a mask of another size than the photo, a polygon
            point outside the photo, a region covering no pixel.
        """
        h, w = int(shape[0]), int(shape[1])
        ph, pw = (h, w) if photo_shape is None else (int(photo_shape[0]), int(photo_shape[1]))
        if self.image_size is not None and tuple(self.image_size) != (pw, ph):
            raise SkinImgError(f"ROI was drawn on a {self.image_size[0]}x{self.image_size[1]} photo but the photo is "
                               f"{pw}x{ph}", self.label)
        if self.kind == "mask":
            if self.mask.shape != (ph, pw):
                raise SkinImgError(f"ROI mask is {self.mask.shape[1]}x{self.mask.shape[0]} pixels but the photo is "
                                   f"{pw}x{ph}", self.label)
            if not self.mask.any():
                raise SkinImgError("ROI covers no pixel of the photo", self.label)
            small = reduce_mask(self.mask, (h, w))
            if not small.any():
                raise SkinImgError("ROI covers no pixel of the working copy of the photo", self.label)
            return {"": small}
        scale = np.array([w / pw, h / ph])
        return {name: self._fill(name, poly, ph, pw, scale, (h, w)) for name, poly in self.polygons.items()}

    def _fill(self, name: str, poly: np.ndarray, h: int, w: int, scale=None, out_shape=None) -> np.ndarray:
        what = f"ROI region '{name}'" if name else "ROI polygon"
        lo, hi = -_EDGE_SLACK, np.array([w - 1 + _EDGE_SLACK, h - 1 + _EDGE_SLACK])
        out = (poly < lo).any(axis=1) | (poly > hi).any(axis=1)
        if (poly.max(axis=0) < 0).any() or (poly.min(axis=0) > [w - 1, h - 1]).any():
            raise SkinImgError(f"{what} lies outside the {w}x{h} photo (covers no pixel of it)", self.label)
        if out.any():
            x, y = poly[int(np.flatnonzero(out)[0])]
            raise SkinImgError(f"{what} has a point ({x:g}, {y:g}) outside the {w}x{h} photo", self.label)
        if out_shape is not None and tuple(out_shape) != (h, w):  # onto the working copy, centres onto centres
            h, w = out_shape
            poly = (poly + 0.5) * scale - 0.5
        m = np.zeros((h, w), np.uint8)
        # 4 fractional bits: vertices at sub-pixel precision, pixel centres at integer coordinates
        cv2.fillPoly(m, [np.round(poly * 16).astype(np.int32).reshape(-1, 1, 2)], 1, lineType=cv2.LINE_8, shift=4)
        if not m.any():
            raise SkinImgError(f"{what} covers no pixel of the photo", self.label)
        return m > 0


def _polygon(pts, what: str, label: str) -> np.ndarray:
    ok = (isinstance(pts, list) and len(pts) >= 3
          and all(isinstance(q, (list, tuple)) and len(q) == 2
                  and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in q)
                  for q in pts))
    if not ok:
        raise SkinImgError(f"{what} must be a JSON list of at least 3 [x, y] number pairs", label)
    poly = np.array(pts, dtype=np.float64)
    if np.abs(poly).max() > 1e7:
        raise SkinImgError(f"{what} coordinates are out of range", label)
    return poly


def _parse_json(doc, label: str) -> Roi:
    if isinstance(doc, list):
        return Roi(label, "polygon", {"": _polygon(doc, "ROI polygon", label)})
    if not isinstance(doc, dict):
        raise SkinImgError("ROI polygon must be a JSON list of at least 3 [x, y] number pairs", label)
    if ("polygon" in doc) == ("regions" in doc):
        raise SkinImgError("ROI polygon must be a JSON list of at least 3 [x, y] number pairs, or an object with "
                           "either \"polygon\" or \"regions\"", label)
    unknown = [k for k in doc if k not in _KEYS]
    if unknown:
        raise SkinImgError(f"unknown key '{unknown[0]}' in the ROI file (keys: {', '.join(_KEYS)})", label)
    size = doc.get("image_size")
    if size is not None:
        if not (isinstance(size, list) and len(size) == 2 and all(type(v) is int and v > 0 for v in size)):
            raise SkinImgError(f"ROI image_size must be [width, height] in pixels, got {size!r}", label)
        size = (size[0], size[1])
    meta = {k: doc[k] for k in ("note", "propagated") if k in doc}
    if "polygon" in doc:
        return Roi(label, "polygon", {"": _polygon(doc["polygon"], "ROI polygon", label)}, image_size=size, meta=meta)
    regions = doc["regions"]
    if not isinstance(regions, dict) or not regions:
        raise SkinImgError("ROI regions must be an object {\"name\": [[x, y], ...], ...} with at least one region",
                           label)
    polys = {}
    for name, pts in regions.items():
        if not REGION_NAME.match(name):
            raise SkinImgError(f"ROI region name {name!r} must be 1-64 letters, digits, '_', '-' or '.'", label)
        polys[name] = _polygon(pts, f"ROI region '{name}'", label)
    return Roi(label, "polygon", polys, image_size=size, meta=meta)


def read_roi(path: str | os.PathLike, *, label: str | None = None) -> Roi:
    """Read an ROI file: ``.json`` (polygon or named regions, see the module docstring) or a mask image.

    Raises
    ------
    SkinImgError
        Missing or unreadable file, malformed JSON, bad polygon or region name (one line naming the file).
    """
    p = Path(path)
    shown = label or p.name
    if p.suffix.lower() != ".json":
        return Roi(shown, "mask", mask=read_mask(p, label=shown))
    if not p.is_file():
        raise SkinImgError("ROI file not found", shown)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SkinImgError(f"ROI is not valid JSON ({reason_text(exc, p)})", shown) from None
    return _parse_json(doc, shown)


def load_roi(path: str | os.PathLike, shape: tuple[int, int], *, label: str | None = None,
             photo_shape: tuple[int, int] | None = None) -> np.ndarray:
    """Region of interest as one bool mask of ``shape`` (H, W): the union of the file's regions.

    Parameters
    ----------
    path : path-like
        An ROI file (:func:`read_roi`): polygon JSON, named regions, or a mask image of the photo's size.
    shape : (int, int)
        Height and width of the (upright) photo, or of its working copy (then give ``photo_shape``).
    photo_shape : (int, int), optional
        The photo's own (H, W) when ``shape`` is a working copy (:meth:`Roi.masks`).

    Raises
    ------
    SkinImgError
        Unreadable file, malformed polygon, a point outside the photo, size mismatch, or an empty ROI.
    """
    masks = read_roi(path, label=label).masks(shape, photo_shape)
    out = np.zeros((int(shape[0]), int(shape[1])), bool)
    for m in masks.values():
        out |= m
    return out


def find_roi(photo: str | os.PathLike, *, relpath: str | None = None,
             roi_dir: str | os.PathLike | None = None) -> Path | None:
    """The ROI file of a photo, or None: the one lookup rule of every command.

    Without ``roi_dir``: ``<photo folder>/<photo stem>.roi.json`` or ``.roi.png`` beside the photo.  With
    ``roi_dir``: the same names at the photo's relative path (``relpath``, default its file name) under
    ``roi_dir`` (a folder mirroring the photos' folders).  ``face.jpg`` and ``face.png`` in one folder share
    ``face.roi.json``.

    Raises
    ------
    SkinImgError
        When both a ``.roi.json`` and a ``.roi.png`` exist for the photo (ambiguous).
    """
    p = Path(photo)
    if roi_dir is None:
        base = p.parent / p.stem
    else:
        rel = Path(relpath if relpath is not None else p.name)
        base = Path(roi_dir) / rel.parent / rel.stem
    found = [c for c in (base.parent / (base.name + s) for s in ROI_SUFFIXES) if c.is_file()]
    if len(found) > 1:
        raise SkinImgError(f"two ROI files for one photo ({found[0].name} and {found[1].name}): keep one",
                           os.fspath(p if relpath is None else relpath))
    return found[0] if found else None

"""Reading masks: skin masks, regions of interest (polygon or mask image), and the rule that finds a photo's true mask."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import cv2
import numpy as np

from ..errors import SkinImgError
from .image import reason_text

__all__ = ["read_mask", "load_roi", "find_truth_mask", "TRUTH_MASK_NAMES"]

#: Names of a photo's true mask in a mask folder, tried in this order (``{stem}`` = the photo's relative path
#: without extension): a PNG first, then the other lossless formats, then JPEG; each plain, then with ``_mask``.
TRUTH_MASK_NAMES = tuple(f"{{stem}}{suffix}{ext}" for ext in (".png", ".PNG", ".bmp", ".tif", ".tiff", ".jpg")
                         for suffix in ("", "_mask"))


def read_mask(path: str | os.PathLike, *, label: str | None = None) -> np.ndarray:
    """Read a mask PNG (any bit depth, grey or colour) as a bool array: True where > 0."""
    shown = os.fspath(label if label is not None else path)
    data = np.fromfile(os.fspath(path), dtype=np.uint8) if Path(path).is_file() else None
    if data is None:
        raise SkinImgError("mask file not found", shown)
    arr = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE | cv2.IMREAD_IGNORE_ORIENTATION) if data.size else None
    if arr is None:
        raise SkinImgError("not a readable mask image", shown)
    return arr > 0


def load_roi(path: str | os.PathLike, shape: tuple[int, int], *, label: str | None = None) -> np.ndarray:
    """Region of interest as a bool mask of ``shape`` (H, W).

    Parameters
    ----------
    path : path-like
        ``.json``: a polygon ``[[x, y], ...]`` (at least 3 points, image pixel
        coordinates, x to the right, y down; pixel centres inside are in the ROI), or
        ``{"polygon": [[x, y], ...]}``.
        Anything else: a mask image (PNG ...), non-zero = inside; it must have the
        photo's size.
    shape : (int, int)
        Height and width of the (upright) photo.

    Raises
    ------
    SkinImgError
        Unreadable file, malformed polygon, size mismatch, or an empty ROI.
    """
    p = Path(path)
    shown = label or p.name
    h, w = int(shape[0]), int(shape[1])
    if p.suffix.lower() == ".json":
        try:
            pts = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SkinImgError("ROI file not found", shown) from None
        except (OSError, ValueError) as exc:
            raise SkinImgError(f"ROI is not valid JSON ({reason_text(exc, p)})", shown) from None
        if isinstance(pts, dict):  # {"polygon": [[x, y], ...]} is accepted too
            pts = pts.get("polygon")
        ok = (isinstance(pts, list) and len(pts) >= 3
              and all(isinstance(q, (list, tuple)) and len(q) == 2
                      and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in q)
                      for q in pts))
        if not ok:
            raise SkinImgError("ROI polygon must be a JSON list of at least 3 [x, y] number pairs", shown)
        poly = np.array(pts, dtype=np.float64)
        if np.abs(poly).max() > 1e7:
            raise SkinImgError("ROI polygon coordinates are out of range", shown)
        m = np.zeros((h, w), np.uint8)
        # 4 fractional bits: vertices at sub-pixel precision, pixel centres at integer coordinates
        cv2.fillPoly(m, [np.round(poly * 16).astype(np.int32).reshape(-1, 1, 2)], 1, lineType=cv2.LINE_8, shift=4)
        roi = m > 0
    else:
        roi = read_mask(p, label=shown)
        if roi.shape != (h, w):
            raise SkinImgError(f"ROI mask is {roi.shape[1]}x{roi.shape[0]} pixels but the photo is {w}x{h}", shown)
    if not roi.any():
        raise SkinImgError("ROI covers no pixel of the photo", shown)
    return roi


def find_truth_mask(masks_dir: str | os.PathLike, stem_rel: str) -> Path | None:
    """The true mask of the photo whose output stem is ``stem_rel`` (relative path without extension), or None.

    The first existing file of :data:`TRUTH_MASK_NAMES` under ``masks_dir``: ``visit/a.jpg`` has its mask at
    ``masks/visit/a.png`` or ``masks/visit/a_mask.png`` (the layout of ``skinimg synth`` truth folders), or the
    same with ``.bmp``, ``.tif``, ``.tiff``, ``.jpg``.  Used by ``eval-segment`` and ``bench --images``.
    """
    root = Path(masks_dir)
    for pattern in TRUTH_MASK_NAMES:
        p = root / pattern.format(stem=stem_rel)
        if p.is_file():
            return p
    return None

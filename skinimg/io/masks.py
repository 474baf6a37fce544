"""Reading masks: skin masks and the rule that finds a photo's true mask (regions of interest: :mod:`.roi`)."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from ..errors import SkinImgError

__all__ = ["read_mask", "find_truth_mask", "TRUTH_MASK_NAMES"]

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

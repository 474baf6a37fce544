"""Where the per-image files of a results folder go (one rule for the stages that write them and the report that reads them).

``<out>/`` holds, per photo of output stem ``<stem>`` (:attr:`skinimg.io.InputImage.stem_rel`):

``masks/<stem>.png``                skin mask, 8-bit, 255 = skin (``segment``, ``run``)
``maps/<stem>_<index>.tif``         float32 index map, NaN off skin (``analyze``, ``run``)
``maps/<stem>_<index>.png``         its heatmap over the dimmed photo
``calibration/<stem>.json``         the colour correction applied (``calibrate``, ``analyze --calibrate``, ``run``)
``calibrated/<stem>.png``           the corrected photo (``calibrate``, ``run`` with ``write_images``)
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["mask_path", "map_paths", "calibration_path", "calibrated_path"]


def mask_path(out: str | os.PathLike, stem: str) -> Path:
    """``out/masks/<stem>.png``."""
    return Path(out) / "masks" / f"{stem}.png"


def map_paths(out: str | os.PathLike, stem: str, name: str) -> tuple[Path, Path]:
    """``(tif, png)`` paths of one map: ``out/maps/<stem>_<name>.tif`` / ``.png``."""
    base = Path(out) / "maps" / f"{stem}_{name}"
    return base.with_suffix(".tif"), base.with_suffix(".png")


def calibration_path(out: str | os.PathLike, stem: str) -> Path:
    """``out/calibration/<stem>.json``."""
    return Path(out) / "calibration" / f"{stem}.json"


def calibrated_path(out: str | os.PathLike, stem: str) -> Path:
    """``out/calibrated/<stem>.png``."""
    return Path(out) / "calibrated" / f"{stem}.png"

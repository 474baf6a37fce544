"""Which per-pixel maps ``analyze`` writes (:func:`map_names`, :data:`DEFAULT_MAPS`) and how (:func:`write_maps`).

The float32 TIFF keeps the data (lossless, read back bit for bit); the PNG heatmap is a picture at display size.
Settings and their measurement: docs/indices.md, "Map files".
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from ..errors import SkinImgError
from ..indices import COLORMAPS, INDEX_NAMES, heatmap_background, render_heatmap
from ..io import map_paths, write_png, write_tiff

__all__ = ["DEFAULT_MAPS", "MAP_SETS", "map_names", "write_maps"]

#: Maps written by default: the two chromophores (the report's heatmaps, with a shared colour scale across
#: sessions) and the erythema index (the redness measure most studies report).  The other indices are simple
#: functions of the photo's colour (CIELAB, ITA, melanin index) a user can ask for (``--maps all``).
DEFAULT_MAPS = ("erythema_index", "hemoglobin", "melanin")
#: Names accepted by :func:`map_names` besides index names.
MAP_SETS = {"default": DEFAULT_MAPS, "all": INDEX_NAMES, "none": ()}


def map_names(spec) -> tuple[str, ...]:
    """The index maps to write, in :data:`~skinimg.indices.INDEX_NAMES` order.

    ``spec``: True / ``"default"`` (:data:`DEFAULT_MAPS`), ``"all"``, False / None / ``"none"``, or index names
    as a sequence or one comma-separated string (``"hemoglobin,a_star"``).

    Raises
    ------
    SkinImgError
        An unknown name, naming it and the choices.
    """
    if spec is True:
        return DEFAULT_MAPS
    if spec is False or spec is None:
        return ()
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    names: set[str] = set()
    for item in items:
        if not isinstance(item, str):
            raise SkinImgError(f"map names are strings, got {item!r}")
        key = item.strip()
        if key in MAP_SETS:
            names.update(MAP_SETS[key])
        elif key in INDEX_NAMES:
            names.add(key)
        elif key:
            raise SkinImgError(f"unknown map {key!r} (use all, default, none or index names: "
                               f"{', '.join(INDEX_NAMES)})")
    return tuple(n for n in INDEX_NAMES if n in names)



def write_maps(out: str | os.PathLike, stem: str, rgb: np.ndarray, maps: dict, params) -> None:
    """``maps/<stem>_<index>.tif`` (float32, NaN off skin, lossless: :func:`skinimg.io.write_tiff`) and ``.png``
    (heatmap over the dimmed photo at display size, ``params.heatmap_max_side`` of the run's
    :class:`~skinimg.batch.AnalyzeParams`) of every map in
    ``maps``, in its order (the built-ins, then any user index; :func:`skinimg.io.map_paths`); the photo and mask
    are resized once for all the heatmaps."""
    if not maps:
        return
    first = next(iter(maps.values()))
    bg = heatmap_background(rgb, np.isfinite(first), max_side=params.heatmap_max_side)
    for name, values in maps.items():
        tif, png = map_paths(out, stem, name)
        write_tiff(tif, values)
        overlay = render_heatmap(rgb, values, title=name, colormap=COLORMAPS.get(name, cv2.COLORMAP_VIRIDIS),
                                 max_side=params.heatmap_max_side, background=bg)
        write_png(png, overlay, fast=True)  # a viewing aid: the fastest PNG settings measured

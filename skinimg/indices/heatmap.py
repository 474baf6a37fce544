"""Colour-mapped heatmaps of index maps over the (dimmed) photograph, with a labelled colour bar.

Drawn with OpenCV only (``cv2.applyColorMap``: a 256-entry colour table indexed by the 8-bit code of each value,
at display size; the colour bar is drawn once per size and colour map; ``cv2.putText`` for the labels); no
matplotlib.  Images are RGB uint8 in and out.
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

from ..io import to_uint8

__all__ = ["render_heatmap", "heatmap_background", "robust_range", "COLORMAPS"]

#: OpenCV colour map per index (default viridis).
COLORMAPS = {
    "erythema_index": cv2.COLORMAP_INFERNO,
    "hemoglobin": cv2.COLORMAP_INFERNO,
    "a_star": cv2.COLORMAP_INFERNO,
    "melanin_index": cv2.COLORMAP_CIVIDIS,
    "melanin": cv2.COLORMAP_CIVIDIS,
}


#: Display scales are estimated on at most this many values (an evenly strided subset).
_RANGE_SAMPLES = 1_000_000


def robust_range(values: np.ndarray, lo: float = 2.0, hi: float = 98.0) -> tuple[float, float]:
    """The ``lo``-``hi`` percentile range of the finite values (a non-empty interval).

    For a display scale only: above :data:`_RANGE_SAMPLES` values an evenly strided
    subset is used (deterministic; a 12-MP map took 0.25 s in full).
    """
    v = np.asarray(values, dtype=np.float32).ravel()
    if v.size > _RANGE_SAMPLES:
        v = v[:: int(math.ceil(v.size / _RANGE_SAMPLES))]
    v = v[np.isfinite(v)]
    if v.size == 0:
        return 0.0, 1.0
    a, b = (float(x) for x in np.percentile(v, [lo, hi]))
    if not b > a:
        a, b = a - 0.5, a + 0.5
    return a, b


def _fmt(v: float, span: float) -> str:
    digits = max(0, min(4, 2 - int(math.floor(math.log10(span))) if span > 0 else 2))
    return f"{v:.{digits}f}"


def _out_size(h: int, w: int, max_side: int | None) -> tuple[int, int] | None:
    if max_side and max(h, w) > max_side:
        s = max_side / max(h, w)
        return max(1, round(w * s)), max(1, round(h * s))
    return None


def heatmap_background(rgb: np.ndarray, mask: np.ndarray, *, max_side: int | None = 2048) -> tuple:
    """The photo and the mask at the heatmap's size, computed once for several maps of one photo.

    Parameters
    ----------
    rgb : ndarray (H, W, 3), uint8 / uint16 / float [0, 1] sRGB, R, G, B
    mask : ndarray of bool (H, W): where the maps have values (NaN elsewhere)
    max_side : int or None, as in :func:`render_heatmap`

    Returns
    -------
    tuple, to pass as ``background=`` to :func:`render_heatmap` with maps of the same size.
    """
    img = to_uint8(rgb)
    h, w = mask.shape
    size = _out_size(h, w, max_side)
    if size is None:
        return (h, w, max_side, img, np.asarray(mask, bool))
    small = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    valid = cv2.resize(np.asarray(mask, np.uint8) * np.uint8(255), size, interpolation=cv2.INTER_AREA) >= 128
    return (h, w, max_side, small, valid)


def _colour_bar(h: int, colormap) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The dark side panel with the colour ramp and its frame (read-only; copy it to label it) and
    ``(top, bottom, bar_x0, bar_w)`` for the tick labels.  Width ~ 1/5 of the height, at least 110 px.  Drawn once
    per (height, OpenCV colour map number); a colour table given as an array is drawn each time."""
    if isinstance(colormap, (int, np.integer)):
        return _cached_colour_bar(h, int(colormap))
    return _draw_colour_bar(h, colormap)


@functools.lru_cache(maxsize=32)
def _cached_colour_bar(h: int, colormap: int):
    return _draw_colour_bar(h, colormap)


def _draw_colour_bar(h: int, colormap):
    panel_w = max(110, h // 5)
    panel = np.full((h, panel_w, 3), 24, dtype=np.uint8)
    top, bottom = int(0.12 * h), int(0.92 * h)
    bar_x0, bar_w = int(0.1 * panel_w), max(8, int(0.22 * panel_w))
    ramp = np.linspace(255, 0, max(2, bottom - top)).astype(np.uint8)[:, None]
    bar = cv2.cvtColor(cv2.applyColorMap(np.repeat(ramp, bar_w, axis=1), colormap), cv2.COLOR_BGR2RGB)
    panel[top:bottom, bar_x0 : bar_x0 + bar_w] = bar
    cv2.rectangle(panel, (bar_x0, top), (bar_x0 + bar_w - 1, bottom - 1), (200, 200, 200), 1)
    panel.setflags(write=False)
    return panel, (top, bottom, bar_x0, bar_w)


def render_heatmap(rgb: np.ndarray | None, values: np.ndarray, *, vmin: float | None = None,
                   vmax: float | None = None, title: str = "", colormap: int = cv2.COLORMAP_VIRIDIS,
                   dim: float = 0.35, max_side: int | None = 2048, background: tuple | None = None) -> np.ndarray:
    """Heatmap of ``values`` over the photograph, with a colour bar and its numeric scale.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8 or uint16 sRGB, R, G, B
        The photograph, shown dimmed (multiplied by ``dim``) where ``values`` is NaN.
    values : ndarray, float, shape (H, W)
        The map; NaN = not measured (off skin).
    vmin, vmax : float, optional
        Colour scale limits; default the 2nd-98th percentile of the finite values.
        Values outside are clipped to the end colours.
    title : str
        Drawn above the colour bar (e.g. the index name).
    colormap : int
        An OpenCV colour map (``cv2.COLORMAP_*``).
    dim : float
        Brightness factor of the photo off the map.
    max_side : int or None
        The output is downscaled (area averaging) so its longer side is at most this.
    background : tuple, optional
        :func:`heatmap_background` of this photo (``rgb`` may then be None): the resized
        photo and skin mask shared by several maps of one photo.

    Returns
    -------
    ndarray, uint8, shape (h, w + panel, 3), RGB
        The overlay with a dark panel on the right holding the colour bar.
    """
    vals = np.asarray(values, dtype=np.float32)
    if vmin is None or vmax is None:
        lo, hi = robust_range(vals)
        vmin = lo if vmin is None else vmin
        vmax = hi if vmax is None else vmax
    if not vmax > vmin:
        vmax = vmin + 1.0
    if background is not None and background[:3] == (vals.shape[0], vals.shape[1], max_side):
        _, _, _, img, valid = background
    else:
        img = to_uint8(rgb)
        size = _out_size(vals.shape[0], vals.shape[1], max_side)
        if size is not None:
            img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
            valid = cv2.resize(np.isfinite(vals).astype(np.float32), size, interpolation=cv2.INTER_AREA) >= 0.5
        else:
            valid = np.isfinite(vals)
    if valid.shape != vals.shape:  # nearest sampling keeps NaN where it is
        vals = cv2.resize(vals, (valid.shape[1], valid.shape[0]), interpolation=cv2.INTER_NEAREST)
    h, w = vals.shape
    scaled = np.clip((np.nan_to_num(vals, nan=vmin) - vmin) / (vmax - vmin), 0.0, 1.0)
    codes = (scaled * 255.0 + 0.5).astype(np.uint8)
    coloured = cv2.cvtColor(cv2.applyColorMap(codes, colormap), cv2.COLOR_BGR2RGB)
    out = cv2.convertScaleAbs(img, alpha=float(dim))
    cv2.copyTo(coloured, np.ascontiguousarray(valid).view(np.uint8), out)

    panel, (top, bottom, bar_x0, bar_w) = _colour_bar(h, colormap)
    panel = panel.copy()
    font = cv2.FONT_HERSHEY_SIMPLEX
    fs = max(0.35, h / 1400.0)
    th = max(1, int(round(fs * 1.5)))
    span = vmax - vmin
    for i in range(5):
        f = i / 4.0
        y = int(bottom - 1 - f * (bottom - top - 1))
        cv2.line(panel, (bar_x0 + bar_w, y), (bar_x0 + bar_w + 4, y), (230, 230, 230), 1)
        label = _fmt(vmin + f * span, span)
        (tw, tht), _ = cv2.getTextSize(label, font, fs, th)
        cv2.putText(panel, label, (bar_x0 + bar_w + 7, min(h - 2, y + tht // 2)), font, fs, (235, 235, 235), th,
                    cv2.LINE_AA)
    if title:
        words = title.replace("_", " ")
        cv2.putText(panel, words, (4, max(12, int(0.06 * h))), font, fs * 0.9, (255, 255, 255), th, cv2.LINE_AA)
    return np.ascontiguousarray(np.concatenate([out, panel], axis=1))

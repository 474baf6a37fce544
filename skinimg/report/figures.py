"""The report's pictures: photos with the skin outline, heatmaps, trend and distribution plots (matplotlib)."""

from __future__ import annotations

import io as _io
import math
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

from ..errors import SkinImgError
from ..io import reduce_mask, to_uint8, write_bytes
from .study import CMAPS, DISPLAY_SIDE, MAIN_INDICES, UNITS, Series, _num

__all__ = ["photo_with_outline", "heatmap_png", "trend_png", "distributions_png"]


# ----------------------------------------------------------------------------- pictures


def _require_matplotlib():
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt  # noqa: F401
    except ImportError:
        raise SkinImgError(
            "the report needs matplotlib: pip install 'skinimg[report]' (or pip install matplotlib)"
        ) from None
    return matplotlib


def _fit(shape: tuple[int, int], side: int) -> tuple[int, int]:
    h, w = shape
    s = min(1.0, side / max(h, w))
    return max(1, round(w * s)), max(1, round(h * s))


def _jpeg(path: Path, rgb8: np.ndarray) -> Path:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb8, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
    if not ok:  # pragma: no cover
        raise SkinImgError("could not encode picture", path.name)
    return write_bytes(path, buf.tobytes())


def _same_aspect(a: tuple, b: tuple) -> bool:
    """Whether (H, W) shapes ``a`` and ``b`` are the same picture at two sizes (the aspect ratios within 1 %)."""
    return a == b or abs(a[0] * b[1] - a[1] * b[0]) <= 0.01 * a[1] * b[0]


def photo_with_outline(rgb: np.ndarray, mask: np.ndarray | None, *, side: int = DISPLAY_SIDE) -> np.ndarray:
    """The photo scaled to ``side`` with the skin mask's outline drawn in green.

    Parameters
    ----------
    rgb : ndarray, (H, W, 3) uint8 or uint16, sRGB, R, G, B
    mask : ndarray of bool, (H, W) or the size of the working copy that analyze measured (the same aspect
        ratio), or None (no outline)

    Returns
    -------
    ndarray, (h, w, 3) uint8 RGB, longest side at most ``side``.
    """
    size = _fit(rgb.shape[:2], side)
    small = cv2.resize(to_uint8(rgb), size, interpolation=cv2.INTER_AREA)
    if mask is not None and _same_aspect(mask.shape, rgb.shape[:2]) and mask.any():
        if mask.shape == rgb.shape[:2]:
            m = cv2.resize(mask.astype(np.uint8) * 255, size, interpolation=cv2.INTER_NEAREST)
        else:  # analyze's working copy (its maps' NaN): to the display size by area / bilinear
            m = reduce_mask(mask, (size[1], size[0])).astype(np.uint8) * np.uint8(255)
        contours, _ = cv2.findContours(m, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        thick = max(1, round(max(size) / 320))
        cv2.drawContours(small, contours, -1, (0, 0, 0), thick + 2, lineType=cv2.LINE_AA)
        cv2.drawContours(small, contours, -1, (60, 255, 60), thick, lineType=cv2.LINE_AA)
    return small


def _fig_png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def heatmap_png(values: np.ndarray, background: np.ndarray | None, *, name: str, vmin: float, vmax: float,
                side: int = DISPLAY_SIDE, title: str = "", cmap: str | None = None) -> bytes:
    """A PNG of ``values`` (NaN transparent) over a dimmed grey photo, with a labelled colour bar.

    Parameters
    ----------
    values : ndarray, float32 (H, W), NaN off skin
    background : ndarray uint8 (h, w, 3) RGB or None
    vmin, vmax : float
        Colour scale (shared by every session of a series, so colours compare).
    """
    import matplotlib.pyplot as plt

    size = _fit(values.shape, side)
    v = cv2.resize(values, size, interpolation=cv2.INTER_NEAREST)
    w, h = size
    fig_w = 5.2
    fig, ax = plt.subplots(figsize=(fig_w, fig_w * h / w * 0.82 + 0.5))
    if background is not None:
        grey = cv2.cvtColor(cv2.resize(background, size, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
        ax.imshow(grey, cmap="gray", vmin=0, vmax=255 / 0.45)
    else:
        ax.imshow(np.full((h, w), 0.8), cmap="gray", vmin=0, vmax=1)
    im = ax.imshow(np.ma.masked_invalid(v), cmap=cmap or CMAPS.get(name, "viridis"), vmin=vmin, vmax=vmax,
                   interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    cb.set_label(f"{name} ({UNITS.get(name, '')})", fontsize=8)
    cb.ax.tick_params(labelsize=7)
    fig.tight_layout()
    return _fig_png(fig)


def _robust(values: Iterable[np.ndarray]) -> tuple[float, float]:
    parts = []
    for v in values:
        f = v[np.isfinite(v)]
        if f.size:
            parts.append(f[:: max(1, f.size // 200_000)])
    if not parts:
        return 0.0, 1.0
    a, b = (float(x) for x in np.percentile(np.concatenate(parts), [2, 98]))
    if b > a:
        return a, b
    half = max(abs(a) * 0.05, 1e-6)  # a uniform map: a narrow scale around its value
    return a - half, a + half


def trend_png(ser: Series, title: str) -> bytes | None:
    """PNG of the series' trends: per-session means (indices.csv) and, against the baseline, each session's value
    with the 95 % CI of its change, coloured by verdict (hollow for a pair compared without pixel alignment), over
    the baseline +- MDC band; None with one session."""
    sessions = ser.sessions
    if len(sessions) < 2:
        return None
    import matplotlib.pyplot as plt

    base = sessions[0]
    by_ref = {p.session: p for p in ser.pairs if p.reference == base}
    names = [n for n in MAIN_INDICES if any(_num(e.row.get(n)) is not None for e in ser.entries)
             or any(n in (p.doc.get("metrics") or {}) for p in by_ref.values())]
    if not names:
        return None
    ncols = 3 if len(names) > 4 else 2
    nrows = math.ceil(len(names) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.1 * ncols, 2.7 * nrows), squeeze=False)
    x = np.arange(len(sessions))
    for ax, name in zip(axes.ravel(), names):
        # per-session mean over the session's photos (indices.csv)
        ys = []
        for s in sessions:
            vals = [_num(e.row.get(name)) for e in ser.entries if e.session == s and e.status == "ok"]
            vals = [v for v in vals if v is not None]
            ys.append(float(np.mean(vals)) if vals else np.nan)
        ax.plot(x, ys, "o-", color="#6b7280", lw=1, ms=4, label="per-session mean (indices.csv)")
        # comparisons with the baseline: after value, CI of the change, MDC band
        px, py, lo, hi, bands = [], [], [], [], []
        for i, s in enumerate(sessions):
            p = by_ref.get(s)
            m = ((p.doc.get("metrics") or {}).get(name) if p else None) or {}
            b, a, d = _num(m.get("before")), _num(m.get("after")), _num(m.get("delta"))
            ci = m.get("ci95") or [None, None]
            if a is None:
                continue
            if i and b is not None and not px:
                px.append(0)
                py.append(b)
                lo.append(0.0)
                hi.append(0.0)
            px.append(i)
            py.append(a)
            base_v = b if b is not None else (a - d if d is not None else a)
            c0, c1 = (_num(ci[0]), _num(ci[1])) if isinstance(ci, (list, tuple)) and len(ci) == 2 else (None, None)
            lo.append(a - (base_v + c0) if c0 is not None else 0.0)
            hi.append((base_v + c1) - a if c1 is not None else 0.0)
            mdc = _num(m.get("mdc"))
            if mdc is not None and b is not None:
                bands.append((b, mdc))
            color = {"improved": "#2e9d5b", "worsened": "#c0392b"}.get(m.get("verdict"), "#1f4e79")
            if (p.doc.get("registration") or {}).get("ok", True) is False:  # region statistics: hollow square
                ax.plot([i], [a], "s", color=color, mfc="white", mew=1.6, ms=6, zorder=4)
            else:
                ax.plot([i], [a], "s", color=color, ms=6, zorder=4)
        if px:
            ax.errorbar(px, py, yerr=[np.maximum(lo, 0), np.maximum(hi, 0)], fmt="none", ecolor="#1f4e79",
                        capsize=3, lw=1.2, zorder=3)
        if bands:
            b, mdc = bands[0]
            ax.axhspan(b - mdc, b + mdc, color="#9ec5e8", alpha=0.35, lw=0, label="baseline ± MDC")
        ax.set_title(f"{name}", fontsize=9)
        ax.set_xticks(x)
        ax.set_xticklabels(sessions, rotation=30, ha="right", fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
        ax.set_ylabel(UNITS.get(name, ""), fontsize=7)
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(names):]:
        ax.set_axis_off()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _fig_png(fig)


def distributions_png(data: dict[str, np.ndarray]) -> bytes:
    """PNG of one histogram per index (``name -> per-image values``), four per row."""
    import matplotlib.pyplot as plt

    names = list(data)
    ncols = 4
    nrows = math.ceil(len(names) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.4 * nrows), squeeze=False)
    for ax, n in zip(axes.ravel(), names):
        ax.hist(data[n], bins=min(30, max(5, data[n].size)), color="#3b6ea5", edgecolor="white")
        ax.set_title(n, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(names):]:
        ax.set_axis_off()
    fig.tight_layout()
    return _fig_png(fig)

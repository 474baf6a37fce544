"""Regions of interest in the report: their outlines on the photos, their rows and their trends.

A photo's ROI is the file named in its ``roi`` column of ``indices.csv`` (beside the photo, in a mirrored folder,
or ``rois/...`` propagated by ``track``), looked up in the results folder, the photos' folders and as given.
Named regions are drawn and plotted in the colours of :data:`skinimg.io.REGION_COLOURS`, by name order (the
colours of ``pair.png``).
"""

from __future__ import annotations

import html
from pathlib import Path

import cv2
import numpy as np

from ..errors import SkinImgError
from ..io import REGION_COLOURS, read_roi
from .figures import _fig_png
from .study import MAIN_INDICES, Series, Study, _num

__all__ = ["region_colour", "roi_file", "region_masks", "draw_regions", "region_legend", "series_regions",
           "regions_trend_png", "region_table", "TREND_INDICES"]

#: Indices plotted per region (change against the baseline).
TREND_INDICES = ("hemoglobin", "erythema_index", "melanin", "a_star")


def region_colour(names, name: str) -> tuple[int, int, int]:
    """RGB colour of region ``name`` among ``names`` (by name order)."""
    order = sorted(set(names))
    return REGION_COLOURS[order.index(name) % len(REGION_COLOURS)] if name in order else (60, 255, 60)


def roi_file(study: Study, label: str) -> Path | None:
    """The ROI file a row names (``roi`` column), or None when it cannot be found."""
    if not label:
        return None
    for base in [study.root] + list(study.image_roots):
        base = base if base.is_dir() else base.parent
        if (base / label).is_file():
            return base / label
    return Path(label) if Path(label).is_file() else None


def region_masks(study: Study, row: dict, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """The regions of the ROI file of ``row`` fitted to a photo of ``shape`` (``{}`` when not found or bad)."""
    path = roi_file(study, row.get("roi") or "")
    if path is None:
        return {}
    try:
        return read_roi(path, label=row.get("roi")).masks(shape)
    except SkinImgError:
        return {}


def draw_regions(small: np.ndarray, masks: dict[str, np.ndarray], names) -> np.ndarray:
    """Outline every region of ``masks`` (full-resolution bool masks) on ``small`` (RGB uint8, the photo scaled
    down), in its colour, with its name at its top; returns ``small`` (drawn in place)."""
    h, w = small.shape[:2]
    thick = max(1, round(max(h, w) / 320))
    for name, mask in masks.items():
        m = cv2.resize(mask.astype(np.uint8) * 255, (w, h), interpolation=cv2.INTER_NEAREST)
        contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        colour = region_colour(names, name) if name else (255, 215, 0)
        cv2.drawContours(small, contours, -1, (0, 0, 0), thick + 2, lineType=cv2.LINE_AA)
        cv2.drawContours(small, contours, -1, colour, thick, lineType=cv2.LINE_AA)
        if name and contours:
            x, y, _, _ = cv2.boundingRect(np.concatenate(contours))
            org = (int(x), int(max(12, y - 4)))
            cv2.putText(small, name, org, cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(small, name, org, cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1, cv2.LINE_AA)
    return small


def region_legend(names) -> str:
    """HTML: a coloured swatch and the name of every region."""
    items = []
    for n in sorted(set(names)):
        r, g, b = region_colour(names, n)
        items.append(f"<span style=\"border-bottom:3px solid rgb({r},{g},{b});margin-right:10px\">"
                     f"{html.escape(n)}</span>")
    return "".join(items)


def series_regions(ser: Series) -> list[str]:
    """Names of the named regions of a series (its photos' rows and its comparisons)."""
    names = {n for e in ser.entries for n in e.regions}
    names |= {n for p in ser.pairs for n in (p.doc.get("regions") or {})}
    return sorted(names)


def regions_trend_png(ser: Series, title: str) -> bytes | None:
    """PNG: per index, the change against the baseline (%) of every named region and of the whole skin over the
    sessions, with the 95 % CI of each change; filled markers where the verdict is a change.  None without
    named regions or with one session."""
    names = series_regions(ser)
    sessions = ser.sessions
    if not names or len(sessions) < 2:
        return None
    import matplotlib.pyplot as plt

    base = sessions[0]
    by_ref = {p.session: p for p in ser.pairs if p.reference == base}
    idx = [n for n in TREND_INDICES if n in MAIN_INDICES]
    fig, axes = plt.subplots(1, len(idx), figsize=(3.6 * len(idx), 3.2), squeeze=False)
    x = np.arange(len(sessions))
    for ax, index in zip(axes.ravel(), idx):
        for k, name in enumerate([""] + names):
            colour = "#6b7280" if not name else tuple(c / 255 for c in region_colour(names, name))
            px, py, err, filled = [0], [0.0], [[0.0], [0.0]], [False]
            for i, s in enumerate(sessions[1:], 1):
                doc = by_ref[s].doc if s in by_ref else {}
                m = ((doc.get("regions") or {}).get(name, {}).get("metrics") if name else doc.get("metrics")) or {}
                m = m.get(index) or {}
                pct, b = _num(m.get("delta_pct")), _num(m.get("before"))
                if pct is None or not b or m.get("delta_pct_note"):  # no percentage of a level near 0
                    continue
                ci = m.get("ci95") or [None, None]
                lo, hi = (_num(ci[0]), _num(ci[1])) if len(ci) == 2 else (None, None)
                px.append(i)
                py.append(pct)
                err[0].append(pct - 100 * lo / abs(b) if lo is not None else 0.0)
                err[1].append(100 * hi / abs(b) - pct if hi is not None else 0.0)
                filled.append(m.get("verdict") in ("improved", "worsened"))
            if len(px) < 2:
                continue
            ax.errorbar(px, py, yerr=np.maximum(err, 0), color=colour, lw=1.4 if name else 1.0,
                        ls="-" if name else "--", capsize=3, label=name or "whole skin", zorder=3 + k)
            ax.scatter([a for a, f in zip(px, filled) if f], [b for b, f in zip(py, filled) if f], color=colour,
                       s=28, zorder=10)
        ax.axhline(0, color="#9ca3af", lw=0.8)
        ax.set_title(index, fontsize=9)
        ax.set_xticks(x)
        ax.set_xticklabels(sessions, rotation=30, ha="right", fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
        ax.set_ylabel("change vs baseline (%)", fontsize=7)
        ax.grid(alpha=0.3)
    axes.ravel()[0].legend(fontsize=7, loc="best")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _fig_png(fig)


def region_table(entry, names, fmt) -> str:
    """HTML table of a photo's region rows: region, source, area, skin pixels, status and the main indices
    (``fmt`` formats a number)."""
    if not entry.regions:
        return ""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in ("ROI from", "area px", "skin px") + MAIN_INDICES)
    out = [f"<table><tr><th class=\"l\">region</th>{head}<th class=\"l\">status</th></tr>"]
    for name, row in sorted(entry.regions.items()):
        r, g, b = region_colour(names, name)
        px = "".join(f"<td>{int(v) if v is not None else '–'}</td>" for v in (_num(row.get("roi_pixels")),
                                                                            _num(row.get("skin_pixels"))))
        cells = px + "".join(f"<td>{fmt(row.get(n))}</td>" for n in MAIN_INDICES)
        status = row.get("status", "") if row.get("status") == "ok" else f"{row.get('status')}: {row.get('error')}"
        out.append(f"<tr><td class=\"l\" style=\"border-left:6px solid rgb({r},{g},{b})\">{html.escape(name)}</td>"
                   f"<td>{html.escape(row.get('roi_source') or '')}</td>{cells}"
                   f"<td class=\"l\">{html.escape(status)}</td></tr>")
    out.append("</table>")
    return "".join(out)

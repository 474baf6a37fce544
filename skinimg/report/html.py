"""The HTML pages of a report (:func:`build_report`): index, summary, one page per patient/site."""

from __future__ import annotations

import html
import json
import logging
import os
import re
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from .. import __version__
from ..errors import SkinImgError
from ..io import collapse_messages, format_collapsed, load_image, pair_warning_source, read_mask, to_uint8, write_bytes
from .figures import (_fit, _jpeg, _require_matplotlib, _robust, distributions_png, heatmap_png, photo_with_outline,
                      trend_png)
from .regions import draw_regions, region_legend, region_masks, region_table, regions_trend_png, series_regions
from .study import (HEATMAPS, ITA_ORDER, LITTLE_SKIN_FRACTION, MAIN_INDICES, POOR_INLIERS,
                    POOR_RESIDUAL_PX, SATURATED_WARN, UNITS, VERDICTS, Anonymizer, ImageEntry, Pair, ReportParams, Series, Study,
                    _find_mask, _find_photo, _map_path, _num, _read_map, load_study)

__all__ = ["build_report"]

log = logging.getLogger("skinimg.report")

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#243447;color:#fff;padding:14px 28px}
header h1{margin:0;font-size:22px;font-weight:600}
header nav a{color:#cfe3ff;margin-right:18px;font-size:14px}
main{padding:18px 28px;max-width:1400px}
h2{font-size:19px;border-bottom:2px solid #dfe3ea;padding-bottom:4px;margin-top:30px}
h3{font-size:16px;margin:22px 0 8px}
table{border-collapse:collapse;margin:8px 0 14px;background:#fff;font-size:13px}
th,td{border:1px solid #d5dae2;padding:4px 8px;text-align:right}
th{background:#eef1f5}
td.l,th.l{text-align:left}
.v-improved{background:#d8f3dc;color:#14532d;font-weight:600}
.v-worsened{background:#fde2e1;color:#7f1d1d;font-weight:600}
.v-no_change{background:#eceff3;color:#374151}
.warn{background:#fff7e0;border-left:4px solid #e0a800;padding:6px 12px;margin:6px 0;font-size:14px}
.ok{background:#e9f7ef;border-left:4px solid #2e9d5b;padding:6px 12px;margin:6px 0;font-size:14px}
.row{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}
figure{margin:0;background:#fff;border:1px solid #d5dae2;padding:6px}
figure img{display:block;max-width:100%;height:auto}
.pics figure img{height:250px;width:auto}
.pairpics figure img{max-height:300px;width:auto}
.trend img{max-width:1240px}
figcaption{font-size:12px;color:#4b5563;margin-top:4px}
.muted{color:#6b7280;font-size:13px}
dl.prov{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;font-size:13px}
dl.prov dt{font-weight:600}
dl.prov dd{margin:0;font-family:ui-monospace,Menlo,Consolas,monospace;word-break:break-all}
"""


def _e(s) -> str:
    return html.escape("" if s is None else str(s), quote=True)


def _fmt(v, digits: int = 3) -> str:
    f = _num(v)
    if f is None:
        return "–"
    if f == 0:
        return "0"
    mag = abs(f)
    if mag >= 100:
        return f"{f:.1f}"
    if mag >= 1:
        return f"{f:.2f}"
    return f"{f:.{digits}g}"


def _page(title: str, report_title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{_e(title)} · {_e(report_title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f"<header><h1>{_e(report_title)}</h1><nav><a href=\"index.html\">Overview</a>"
        f"<a href=\"summary.html\">Study summary</a></nav></header>\n<main>\n{body}\n</main>\n"
        f"<footer class=\"muted\" style=\"padding:10px 28px\">skinimg {_e(__version__)} · research tool, "
        "not a medical device</footer>\n</body>\n</html>\n"
    )


def _img(src: str, alt: str, caption: str = "", width: int | None = None) -> str:
    w = f" width=\"{int(width)}\"" if width else ""
    cap = f"<figcaption>{_e(caption)}</figcaption>" if caption else ""
    return f"<figure><img src=\"{_e(src)}\" alt=\"{_e(alt)}\"{w}>{cap}</figure>"


def _verdict_cell(v: str, note: str = "") -> str:
    """The verdict's cell, coloured; ``note`` (why a change is not called, ``verdict_note``) under it in small type."""
    cls = f"v-{v}" if v in VERDICTS else ""
    why = f"<br><span class=\"muted\">{_e(note)}</span>" if note else ""
    return f"<td class=\"l {cls}\">{_e(v.replace('_', ' ') if v else '–')}{why}</td>"


# ----------------------------------------------------------------------------- the builder


class _Builder:
    def __init__(self, study: Study, out: Path, params: ReportParams):
        self.s = study
        self.out = out
        self.p = params
        self.anon = Anonymizer(params.salt, params.anonymize)
        for ser in study.series:  # register every patient name before any text is scrubbed
            self.anon.patient(ser.patient)
        self.written: list[Path] = []
        self.warnings: list[tuple[str, str]] = []  # (where, message)
        self.warn_items: list[tuple[str, str, str]] = []  # (source, message without the pair, unit): the overview's lines

    # -- helpers
    def patient(self, name: str) -> str:
        return self.anon.patient(name) if name else "(no patient folder)"

    def where(self, ser: Series) -> str:
        return self.patient(ser.patient) + (f" / {ser.site}" if ser.site else "")

    def save(self, rel: str, data: bytes | None = None, *, rgb8: np.ndarray | None = None) -> str:
        path = self.out / rel
        if rgb8 is not None:
            _jpeg(path, rgb8)
        else:
            write_bytes(path, data)
        self.written.append(path)
        return rel

    def warn(self, where: str, msg: str, *, source: str | None = None, text: str | None = None,
             unit: str | None = None) -> str:
        """A warning box; ``source`` and ``text`` (the message without its pair label) let the overview collapse
        the same warning from many pairs into one line with a count."""
        self.warnings.append((where, msg))
        self.warn_items.append((source or where, text if text is not None else msg, unit or "times"))
        return f"<div class=\"warn\">⚠ {_e(msg)}</div>"

    # -- slugs
    def assign_slugs(self) -> None:
        used: set[str] = set()
        for ser in self.s.series:
            base = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{self.patient(ser.patient)}__{ser.site or 'all'}").strip("._")
            base = base or "series"
            slug, n = base, 1
            while slug.lower() in used or slug.lower() in ("index", "summary"):
                n += 1
                slug = f"{base}-{n}"
            used.add(slug.lower())
            ser.slug = slug

    # -- pages
    def build(self) -> list[Path]:
        self.assign_slugs()
        series_pages = []
        for ser in self.s.series:
            series_pages.append(self.series_page(ser))
        single_html = self.single_pair_section() if self.s.single is not None else ""
        self.write_page("summary.html", "Study summary", self.summary_body())
        self.write_page("index.html", "Overview", self.index_body(series_pages, single_html))
        return self.written

    def write_page(self, name: str, title: str, body: str) -> None:
        if self.anon.enabled:  # safety net: scrub every text node (names already replaced where known)
            body = "".join(seg if seg.startswith("<") else self.anon.text(seg) for seg in re.split(r"(<[^>]*>)", body))
        text = _page(self.anon.text(title), self.anon.text(self.p.title), body)
        self.written.append(write_bytes(self.out / name, text.encode("utf-8")))

    # -- a patient/site page
    def series_page(self, ser: Series) -> tuple[Series, int]:
        where = self.where(ser)
        n_warn0 = len(self.warnings)
        parts = [f"<p><a href=\"index.html\">← Overview</a></p><h2>{_e(where)}</h2>"]
        sessions = ser.sessions
        parts.append(f"<p class=\"muted\">{len(sessions)} session(s), {len(ser.entries)} photo(s), "
                     f"{len(ser.pairs)} compared pair(s).</p>")
        trend = self.trend_plot(ser)
        if trend:
            parts.append("<h3>Trends</h3>" + _img(trend, f"Trend of the main indices over sessions, {where}",
                                                     "Line: mean over each photo's own skin mask, as photographed. "
                                                     "Squares with whiskers: the comparison with the baseline "
                                                     "(registered common skin, lighting normalised: what the "
                                                     "verdict uses; hollow: a pair that could not be aligned, "
                                                     "each photo's own skin) with the 95 % CI of the change; "
                                                     "shaded band: baseline ± MDC (changes inside it are not "
                                                     "detectable).") )
        names = series_regions(ser)
        rtrend = regions_trend_png(ser, where)
        if rtrend:
            rel = self.save(f"img/{ser.slug}/regions-trend.png", rtrend)
            parts.append(f"<h3>Trends per region</h3><p>Regions: {region_legend(names)}</p>"
                         + _img(rel, f"Change of each region against the baseline, {where}",
                                "Change against the baseline (%) of each region of interest (solid) and of the whole "
                                "skin (dashed), with the 95 % CI; filled markers: a change beyond the MDC."))
        # shared colour scales per heatmap index
        maps: dict[tuple[str, str], np.ndarray] = {}
        for e in ser.entries:
            if e.status != "ok":
                continue
            for name in HEATMAPS:
                m = _read_map(_map_path(self.s.root, e, name, "tif"))
                if m is not None:
                    maps[(e.image, name)] = m
        scales = {name: _robust(v for (img, n), v in maps.items() if n == name) for name in HEATMAPS}
        parts.append("<h2>Sessions</h2>")
        for si, session in enumerate(sessions, 1):
            entries = [e for e in ser.entries if e.session == session]
            if not entries:
                continue
            parts.append(f"<h3>Session {_e(session or '(unnamed)')}</h3>")
            for ii, e in enumerate(entries, 1):
                parts.append(self.image_block(ser, e, f"s{si:02d}-i{ii:02d}", maps, scales))
        if ser.pairs:
            parts.append("<h2>Compared pairs</h2>")
            for pi, pair in enumerate(ser.pairs, 1):
                parts.append(self.pair_block(where, pair, f"{ser.slug}/pair{pi:02d}"))
        self.write_page(f"{ser.slug}.html", where, "\n".join(parts))
        return ser, len(self.warnings) - n_warn0

    def image_block(self, ser: Series, e: ImageEntry, key: str, maps, scales) -> str:
        where = self.where(ser)
        shown = self.anon.image_path(e.image)
        out = [f"<div class=\"img-block\"><p class=\"muted\">{_e(shown)}</p>"]
        row = e.row
        if e.status != "ok":
            reason = row.get("error") or e.status
            out.append(self.warn(where, f"{shown}: not measured ({self.anon.text(reason)})"))
            return "".join(out) + "</div>"
        sf = _num(row.get("skin_fraction"))
        if sf is not None and sf < LITTLE_SKIN_FRACTION:
            out.append(self.warn(where, f"{shown}: little skin found ({sf * 100:.1f} % of the photo)"))
        sat = _num(row.get("saturated_fraction"))
        if sat is not None and sat > SATURATED_WARN:
            out.append(self.warn(where, f"{shown}: over-exposed ({sat * 100:.1f} % of skin pixels saturated)"))
        if row.get("mask_check") == "check":
            agree = _num(row.get("stage_agreement"))
            agree_text = "" if agree is None else f" (its masks of the photo and of its mirror image overlap only {agree:.2f})"
            out.append(self.warn(where, f"{shown}: the segmenter flagged this skin mask{agree_text}: look at it "
                                        "before trusting these numbers"))
        if row.get("chromophore_branch_check") == "exposure_sensitive":
            out.append(self.warn(where, f"{shown}: haemoglobin of this photo alone is ambiguous (a 20-25 % exposure "
                                        "change would swap its chromophore twin); compare it on a shared branch "
                                        "or with a colour chart"))
        photo_path = _find_photo(self.s, e.image)
        rgb = None
        figs = []
        alt_base = f"{where}, session {e.session}"
        if photo_path is not None:
            try:
                rgb, _ = load_image(photo_path, label=e.image)
            except SkinImgError as exc:
                out.append(self.warn(where, f"{shown}: photo not readable ({exc.reason})"))
        mask = None
        mpath = _find_mask(self.s.root, e)
        if mpath is not None:
            mask = read_mask(mpath, label=mpath.name)
        elif maps.get((e.image, "hemoglobin")) is not None:
            mask = np.isfinite(maps[(e.image, "hemoglobin")])
        if rgb is not None:
            outlined = photo_with_outline(rgb, mask, side=self.p.display_side)
            roi_row = e.row if e.row.get("roi") else next(iter(e.regions.values()), {})
            regions = region_masks(self.s, roi_row, rgb.shape[:2])
            draw_regions(outlined, regions, series_regions(ser))
            rel = self.save(f"img/{ser.slug}/{key}-photo.jpg", rgb8=outlined)
            caption = "Photo, skin outline in green" + (f"; ROI ({roi_row.get('roi_source')}) outlined in colour"
                                                        if regions else "")
            figs.append(_img(rel, f"Photo with skin outline, {alt_base}", caption))
        else:
            figs.append("<figure><figcaption>photo not available (give --images)</figcaption></figure>")
        for name in HEATMAPS:
            m = maps.get((e.image, name))
            if m is not None:
                bg = (cv2.resize(to_uint8(rgb), _fit(m.shape, self.p.display_side), interpolation=cv2.INTER_AREA)
                      if rgb is not None else None)
                vmin, vmax = scales[name]
                png = heatmap_png(m, bg, name=name, vmin=vmin, vmax=vmax, side=self.p.display_side)
                rel = self.save(f"img/{ser.slug}/{key}-{name}.png", png)
                figs.append(_img(rel, f"{name} heatmap, {alt_base}", f"{name} (colour scale shared by all sessions)"))
            else:
                png_path = _map_path(self.s.root, e, name, "png")
                if png_path.is_file():
                    rel = self.save(f"img/{ser.slug}/{key}-{name}.png", png_path.read_bytes())
                    figs.append(_img(rel, f"{name} heatmap, {alt_base}", f"{name} heatmap"))
        out.append("<div class=\"row pics\">" + "".join(figs) + "</div>")
        cells = "".join(f"<th>{_e(n)}</th>" for n in ("skin fraction",) + MAIN_INDICES + ("ITA class",))
        vals = "".join(f"<td>{_fmt(row.get(n))}</td>" for n in ("skin_fraction",) + MAIN_INDICES)
        out.append(f"<table><tr>{cells}</tr><tr>{vals}<td class=\"l\">{_e(row.get('ita_category', ''))}</td></tr>"
                   "</table>")
        if row.get("roi") and not e.regions:
            out.append(f"<p class=\"muted\">measured inside the ROI {_e(self.anon.text(row['roi']))} "
                       f"({_e(row.get('roi_source'))}, {_fmt(row.get('roi_pixels'))} px)</p>")
        out.append(region_table(e, series_regions(ser), _fmt))
        return "".join(out) + "</div>"

    def registration_text(self, where: str, label: str, doc: dict, photos: tuple[str, str] | None = None
                          ) -> tuple[str, str]:
        """How the pair was aligned (one line) and its warnings (HTML boxes); ``photos``: the names of BEFORE and
        AFTER, to which a warning about one of them is counted in the overview."""
        reg = doc.get("registration") or {}
        if not isinstance(reg, dict):
            reg = {}
        method = reg.get("method", "?")
        inl = _num(reg.get("inliers"))
        res = _num(reg.get("residual_px"))
        checks = reg.get("checks") if isinstance(reg.get("checks"), dict) else {}
        warnings = [self.anon.text(str(w)) for w in doc.get("warnings") or []]
        warn = ""
        if reg.get("ok") is False:
            text = ("alignment: none, not pixel-aligned: each photo's own skin compared by region statistics "
                    "(verdicts against the MDCs of unaligned retakes)")
            if not any(w.startswith("not pixel-aligned") for w in warnings):  # comparison.json of an older skinimg
                warn = self.warn(where, f"{label}: registration failed ({reg.get('reason') or reg.get('error') or method})",
                                 source=f"{where} {label}", text="registration failed")
        elif str(method).startswith("ecc"):
            text = (f"alignment: {method} (intensity-based), correlation {_fmt(_num(checks.get('cc')))}, dark details "
                    f"line up {_fmt(_num(checks.get('detail_ncc')))}"
                    + (", similarity finish" if checks.get("finish") == "similarity" else ""))
        else:
            text = (f"registration: {method}, {int(inl) if inl is not None else '?'} inliers, "
                    f"residual {_fmt(res)} px")
            if (res is not None and res > POOR_RESIDUAL_PX) or (inl is not None and inl < POOR_INLIERS):
                warn = self.warn(where, f"{label}: poor registration ({text})", source=f"{where} {label}",
                                 text=f"poor registration ({text})")
        for w in warnings:
            src, unit = f"{where} {label}", "times"
            if photos is not None:
                src, _, unit = pair_warning_source(w, src, f"{where} {photos[0]}", f"{where} {photos[1]}")
            warn += self.warn(where, f"{label}: {w}", source=src, text=w, unit=unit)
        return text, warn

    def pair_block(self, where: str, pair: Pair, key: str) -> str:
        label = f"{pair.session} vs {pair.reference}"
        return f"<h3>{_e(label)}</h3>" + self.pair_body(where, label, pair, f"img/{key}-", f", {where}, {label}")

    def pair_body(self, where: str, label: str, pair: Pair, img_prefix: str, alt_context: str) -> str:
        """Registration and lighting line, the comparison's pictures and its table of changes."""
        reg_text, reg_warn = self.registration_text(where, label, pair.doc, (pair.reference, pair.session))
        out = [f"<p class=\"muted\">{_e(reg_text)}{_e(self.lighting_text(pair.doc))}</p>{reg_warn}"]
        figs = []
        for k, pic in enumerate(pair.pictures, 1):
            caption = pic.stem.replace("_", " ")
            rel = self.save(f"{img_prefix}{k:02d}-{re.sub(r'[^A-Za-z0-9_-]+', '_', pic.stem)[:40]}.png",
                            pic.read_bytes())
            figs.append(_img(rel, f"{caption}{alt_context}", caption))
        if figs:
            out.append("<div class=\"row pairpics\">" + "".join(figs) + "</div>")
        doc = pair.doc
        if doc.get("regions"):
            out.append("<h4>Whole skin</h4>")
        elif doc.get("roi"):
            out.append(f"<p class=\"muted\">inside the ROI {_e(self.anon.text(str(doc['roi'])))} "
                       f"({_e(doc.get('roi_source'))}, {_fmt(doc.get('roi_pixels'))} px)</p>")
        out.append(self.metrics_table(doc))
        for name, entry in sorted((doc.get("regions") or {}).items()):
            out.append(f"<h4>Region {_e(name)} <span class=\"muted\">({_e(pair.doc.get('roi_source'))}, "
                       f"{_fmt(entry.get('pixels'))} px)</span></h4>")
            out.append(self.warn(where, f"{label}: {entry['error']}", source=f"{where} {label}", text=entry["error"])
                       if "error" in entry else self.metrics_table(entry))
        return "".join(out)

    def lighting_text(self, doc: dict) -> str:
        for k in ("calibration", "lighting", "normalisation", "normalization"):
            v = doc.get(k)
            if isinstance(v, dict):
                m = v.get("method") or v.get("name")
                if m:
                    return f"; {k}: {m}"
            elif isinstance(v, str) and v:
                return f"; {k}: {v}"
        return ""

    def metrics_table(self, doc: dict) -> str:
        metrics = doc.get("metrics") or {}
        if not isinstance(metrics, dict) or not metrics:
            return "<p class=\"muted\">no metrics in comparison.json</p>"
        order = [n for n in MAIN_INDICES if n in metrics] + sorted(n for n in metrics if n not in MAIN_INDICES)
        head = "".join(f"<th>{h}</th>" for h in ("before", "after", "change", "change %", "95 % CI of change",
                                                   "MDC", "effect size"))
        rows = [f"<table><tr><th class=\"l\">index</th>{head}<th class=\"l\">verdict</th></tr>"]
        for n in order:
            m = metrics[n] if isinstance(metrics[n], dict) else {}
            ci = m.get("ci95") or [None, None]
            ci_txt = f"[{_fmt(ci[0])}, {_fmt(ci[1])}]" if isinstance(ci, (list, tuple)) and len(ci) == 2 else "–"
            eff = m.get("effect_size", m.get("cohens_d"))
            rng = m.get("delta_pct_model_range")
            pct = _fmt(m.get("delta_pct"))
            if m.get("delta_pct_note"):  # a percentage of a level within the MDC of zero: not shown as a number
                pct = f"<span class=\"muted\" title=\"{_e(str(m['delta_pct_note']))}\">n/a (level near 0)</span>"
            elif isinstance(rng, (list, tuple)) and len(rng) == 2:  # the change under every model of the ensemble
                pct += f" <span class=\"muted\">(models {_fmt(rng[0])} to {_fmt(rng[1])})</span>"
            rows.append(
                f"<tr><td class=\"l\">{_e(n)}</td><td>{_fmt(m.get('before'))}</td><td>{_fmt(m.get('after'))}</td>"
                f"<td>{_fmt(m.get('delta'))}</td><td>{pct}</td><td>{_e(ci_txt)}</td>"
                f"<td>{_fmt(m.get('mdc'))}</td><td>{_fmt(eff)}</td>"
                f"{_verdict_cell(str(m.get('verdict') or ''), str(m.get('verdict_note') or ''))}</tr>"
            )
        rows.append("</table>")
        return "".join(rows)

    def single_pair_section(self) -> str:
        pair = self.s.single
        before = self.anon.image_path(pair.reference)
        after = self.anon.image_path(pair.session)
        label = f"{after} vs {before}"
        return (f"<h2>Comparison {_e(label)}</h2>"
                + self.pair_body("comparison", label, pair, "img/comparison/", f", {label}"))

    # -- trend plot
    def trend_plot(self, ser: Series) -> str | None:
        png = trend_png(ser, self.where(ser))
        return None if png is None else self.save(f"img/{ser.slug}/trend.png", png)

    # -- summary page
    def summary_body(self) -> str:
        ok = [r for r in self.s.rows if r.get("status") == "ok"]
        parts = [f"<h2>Study summary</h2><p class=\"muted\">{len(self.s.rows)} photo(s) in indices.csv, "
                 f"{len(ok)} measured; {len(self.s.series)} patient/site series.</p>"]
        if not ok:
            return "\n".join(parts + ["<p>No measured photos.</p>"])
        head = "".join(f"<th>{h}</th>" for h in ("n", "mean", "SD", "median", "P10", "P90", "min", "max"))
        t = [f"<h3>Per-image means over skin</h3><table><tr><th class=\"l\">index</th><th class=\"l\">unit</th>{head}</tr>"]
        names = [n for n in MAIN_INDICES + ("red_area_fraction", "brown_spot_count", "brown_spot_area_fraction")
                 if any(_num(r.get(n)) is not None for r in ok)]
        data = {}
        for n in names:
            v = np.array([x for x in (_num(r.get(n)) for r in ok) if x is not None], dtype=np.float64)
            data[n] = v
            q = np.percentile(v, [50, 10, 90])
            t.append(f"<tr><td class=\"l\">{_e(n)}</td><td class=\"l\">{_e(UNITS.get(n, ''))}</td><td>{v.size}</td>"
                     f"<td>{_fmt(v.mean())}</td><td>{_fmt(v.std(ddof=1) if v.size > 1 else 0.0)}</td>"
                     f"<td>{_fmt(q[0])}</td><td>{_fmt(q[1])}</td><td>{_fmt(q[2])}</td><td>{_fmt(v.min())}</td>"
                     f"<td>{_fmt(v.max())}</td></tr>")
        t.append("</table>")
        parts.append("".join(t))
        rel = self.save("img/summary/distributions.png", distributions_png(data))
        parts.append("<h3>Distributions</h3>" + _img(rel, "Histograms of the per-image index means",
                                                     "Histogram of each index's per-image mean over skin"))
        counts = {c: 0 for c in ITA_ORDER}
        for r in ok:
            c = r.get("ita_category") or "unknown"
            counts[c] = counts.get(c, 0) + 1
        cells = "".join(f"<th>{_e(c.replace('_', ' '))}</th>" for c in counts)
        vals = "".join(f"<td>{n}</td>" for n in counts.values())
        parts.append("<h3>ITA categories</h3><p class=\"muted\">Individual Typology Angle classes of the per-image "
                     "mean (Chardon et al. 1991; Del Bino &amp; Bernerd 2013).</p>"
                     f"<table><tr>{cells}</tr><tr>{vals}</tr></table>")
        return "\n".join(parts)

    # -- index page
    def index_body(self, series_pages: Sequence[tuple[Series, int]], single_html: str) -> str:
        parts = []
        n_ok = sum(r.get("status") == "ok" for r in self.s.rows)
        parts.append(f"<h2>Overview</h2><p>{len(self.s.rows)} photo(s), {n_ok} measured, "
                     f"{len(self.s.series)} patient/site series. <a href=\"summary.html\">Study summary</a> "
                     "(distributions, ITA classes).</p>")
        if series_pages:
            t = ["<table><tr><th class=\"l\">patient</th><th class=\"l\">site</th><th>sessions</th><th>photos</th>"
                 "<th>pairs</th><th>improved</th><th>no change</th><th>worsened</th><th>warnings</th></tr>"]
            for ser, nw in series_pages:
                counts = {v: 0 for v in VERDICTS}
                for p in ser.pairs:
                    for m in (p.doc.get("metrics") or {}).values():
                        if isinstance(m, dict) and m.get("verdict") in counts:
                            counts[m["verdict"]] += 1
                unaligned = sum(1 for p in ser.pairs if (p.doc.get("registration") or {}).get("ok", True) is False)
                pairs_txt = f"{len(ser.pairs)}" + (f" ({unaligned} not aligned)" if unaligned else "")
                t.append(
                    f"<tr><td class=\"l\"><a href=\"{_e(ser.slug)}.html\">{_e(self.patient(ser.patient))}</a></td>"
                    f"<td class=\"l\">{_e(ser.site or '–')}</td><td>{len(ser.sessions)}</td><td>{len(ser.entries)}</td>"
                    f"<td>{_e(pairs_txt)}</td><td class=\"v-improved\">{counts['improved']}</td>"
                    f"<td class=\"v-no_change\">{counts['no_change']}</td><td class=\"v-worsened\">"
                    f"{counts['worsened']}</td><td>{nw}</td></tr>")
            t.append("</table><p class=\"muted\">Verdict counts are over every index of every compared pair; a "
                     "decrease of redness or pigmentation is <em>improved</em>.  Pairs that could not be "
                     "pixel-aligned are compared by region statistics of each photo's own skin.</p>")
            parts.append("".join(t))
        if single_html:
            parts.append(single_html)
        parts.append("<h2>Warnings</h2>")
        calib = self.calibration_used()
        if calib is None:
            msg = ("no colour chart used: values are uncalibrated (comparable only between photos taken with the "
                   "same camera and lighting)")
            self.warnings.insert(0, ("study", msg))
            self.warn_items.insert(0, ("study", msg, "times"))
        if self.warnings:
            # the same warning from many photos or pairs (no chart on every photo of a study) is one line with a count
            groups = collapse_messages(self.warn_items)
            parts.append("".join(f"<div class=\"warn\">⚠ {_e(format_collapsed(g, what='times'))}</div>" for g in groups))
        else:
            parts.append("<div class=\"ok\">No warnings.</div>")
        parts.append(self.provenance_html(calib))
        return "\n".join(parts)

    def calibration_used(self) -> str | None:
        params = self.s.analyze.get("params") or {}
        for doc in (params, self.s.analyze, self.s.run, self.s.run.get("parameters") or {}):
            if not isinstance(doc, dict):
                continue
            v = doc.get("calibration")
            if v:
                return json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else str(v)
        for p in [pp for s in self.s.series for pp in s.pairs] + ([self.s.single] if self.s.single else []):
            v = p.doc.get("calibration")
            if isinstance(v, dict) and (v.get("chart") or v.get("method") == "chart"):
                return json.dumps(v, sort_keys=True)
        return None

    def provenance_html(self, calib: str | None) -> str:
        a, r = self.s.analyze, self.s.run
        items: list[tuple[str, str]] = [("report by", f"skinimg {__version__}")]
        if r:
            for k in ("skinimg_version", "pipeline", "started", "start_time", "finished", "end_time", "executor"):
                if k in r:
                    items.append((f"run: {k}", r[k] if isinstance(r[k], str) else json.dumps(r[k], sort_keys=True)))
            deps = r.get("dependencies") or r.get("dependency_versions")
            if isinstance(deps, dict):
                items.append(("dependencies", ", ".join(f"{k} {v}" for k, v in sorted(deps.items()))))
            for k in ("parameters", "params", "stages"):
                if k in r:
                    items.append((f"run: {k}", json.dumps(r[k], sort_keys=True)))
        if a:
            items.append(("analyze: skinimg version", str(a.get("skinimg_version", "?"))))
            items.append(("analyze: parameters hash", str(a.get("params_hash", "?"))))
            if "params" in a:
                items.append(("analyze: parameters", json.dumps(a["params"], sort_keys=True)))
            basis = a.get("chromophore_basis")
            if isinstance(basis, dict):
                prov = basis.get("provenance") or {}
                items.append(("chromophore basis", json.dumps(prov, sort_keys=True) if prov else "(no provenance)"))
        items.append(("calibration", calib or "none (no colour chart)"))
        regs = []
        for s in self.s.series:
            for p in s.pairs:
                reg = p.doc.get("registration") or {}
                if isinstance(reg, dict) and reg:
                    regs.append(f"{self.where(s)} {p.session} vs {p.reference}: {reg.get('method', '?')}, "
                                f"{reg.get('inliers', '?')} inliers, residual {_fmt(reg.get('residual_px'))} px, "
                                f"{'aligned' if reg.get('ok', True) else 'not pixel-aligned'}")
        if regs:
            items.append(("registration quality", "; ".join(regs)))
        rows = "".join(f"<dt>{_e(k)}</dt><dd>{_e(self.anon.text(str(v)))}</dd>" for k, v in items)
        return f"<h2>Provenance</h2><dl class=\"prov\">{rows}</dl>"


def build_report(results: str | os.PathLike, out: str | os.PathLike, *, params: ReportParams | None = None) -> dict:
    """Write the HTML report of a results folder.

    Parameters
    ----------
    results : path
        A folder written by ``skinimg analyze`` / ``track`` / ``compare`` / ``run``.
    out : path
        The report folder (created); ``out/index.html`` is the entry page.
    params : ReportParams, optional

    Returns
    -------
    dict
        ``index`` (path of index.html), ``pages`` (HTML files), ``files`` (every file
        written), ``series`` (number of patient/site pages), ``warnings`` (list of
        ``(where, message)``).

    Raises
    ------
    SkinImgError
        No results in the folder, a file unreadable, matplotlib missing, output not writable.
    """
    params = params or ReportParams()
    _require_matplotlib()
    results, out = Path(results), Path(out)
    study = load_study(results, images=params.images)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SkinImgError(f"cannot create report folder ({exc.strerror or exc})", os.fspath(out)) from None
    b = _Builder(study, out, params)
    files = b.build()
    pages = [f for f in files if f.suffix == ".html"]
    return {"index": out / "index.html", "pages": pages, "files": files, "series": len(study.series),
            "warnings": list(b.warnings)}

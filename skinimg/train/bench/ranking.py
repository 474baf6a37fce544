"""The agreement suite's leaderboard and plots: ``leaderboard.csv``/``.md``/``.json``, ``agreement_<ref>_*.png``."""

from __future__ import annotations

import io as _io
import math
import os
import re
from pathlib import Path

import numpy as np

from ...color import ITA_CATEGORIES
from ...io import write_bytes, write_csv, write_json

__all__ = ["LEADERBOARD_METRICS", "CRITERION", "leaderboard", "leaderboard_columns", "leaderboard_markdown",
           "write_leaderboard", "write_agreement_plots"]

#: Leaderboard metrics per reference column (``<reference>.<metric>`` in the CSV).
LEADERBOARD_METRICS = ("n", "pearson", "pearson_lo", "pearson_hi", "spearman", "spearman_lo", "spearman_hi",
                       "slope", "intercept", "icc2", "icc2_lo", "icc2_hi", "icc2_band", "icc3", "icc3_lo", "icc3_hi",
                       "ba_bias", "ba_lo", "ba_hi", "retest_icc", "sem", "mdc", "cv_pct")
#: The ranking criterion (stated in every output).
CRITERION = ("ICC(2,1), absolute agreement of the reference and the index calibrated to it by a line fitted "
             "without the photo's own subject (or photo), against the ranking reference column; descending, "
             "undefined last, ties by name")
_SAFE = re.compile(r"[^A-Za-z0-9_-]+")


def _metrics(p: dict, has_subject: bool) -> dict:
    ic, ba = p["icc"], p["bland_altman"]
    m = {"n": p["n"], "pearson": p["pearson"]["r"], "pearson_lo": p["pearson"]["lo"], "pearson_hi": p["pearson"]["hi"],
         "spearman": p["spearman"]["r"], "spearman_lo": p["spearman"]["lo"], "spearman_hi": p["spearman"]["hi"],
         "slope": p["calibration"]["slope"], "intercept": p["calibration"]["intercept"],
         "icc2": ic["icc2"], "icc2_lo": ic["icc2_lo"], "icc2_hi": ic["icc2_hi"], "icc2_band": p["icc2_band"],
         "icc3": ic["icc3"], "icc3_lo": ic["icc3_lo"], "icc3_hi": ic["icc3_hi"],
         "ba_bias": ba["bias"], "ba_lo": ba["lo"], "ba_hi": ba["hi"],
         "retest_icc": math.nan, "sem": math.nan, "mdc": math.nan, "cv_pct": math.nan}
    if has_subject and "repeatability" in p:
        rep = p["repeatability"]["index"]
        m.update(retest_icc=rep["icc"], sem=rep["sem"], mdc=rep["mdc"], cv_pct=rep["cv_pct"])
    return m


def _order_key(v: float, name: str):
    return (0 if math.isfinite(v) else 1, -v if math.isfinite(v) else 0.0, name)


def leaderboard(res: dict) -> list[dict]:
    """One row per index: ``index``, ``rank`` and ``{reference: {metric: value}}`` (:data:`LEADERBOARD_METRICS`).

    ``retest_icc`` (test-retest ICC of the index over the repeated photos: ICC(3,1) over
    sessions, or ICC(1,1) without a complete session table), ``sem``, ``mdc`` (in the index's
    own units) and ``cv_pct`` need a ``subject`` column; the same in reference units (after
    calibration) and the reference's own are in ``pairs[...]["repeatability"]``.  Sorted by
    :data:`CRITERION`.
    """
    by: dict = {}
    for p in res["pairs"]:
        by.setdefault(p["index"], {})[p["reference"]] = _metrics(p, res["has_subject"])
    key_ref = res["rank_by"]

    order = sorted(by, key=lambda name: _order_key(by[name][key_ref]["icc2"], name))
    return [{"index": name, "rank": i + 1, "references": by[name]} for i, name in enumerate(order)]


def leaderboard_columns(res: dict) -> list[str]:
    return ["rank", "index"] + [f"{c}.{m}" for c in res["columns"] for m in LEADERBOARD_METRICS]


def _flat(res: dict) -> list[dict]:
    out = []
    for row in res["leaderboard"]:
        flat = {"rank": row["rank"], "index": row["index"]}
        for c, ms in row["references"].items():
            flat.update({f"{c}.{m}": v for m, v in ms.items()})
        out.append(flat)
    return out


def _fmt(v, f=".3f") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return v if isinstance(v, str) else format(v, f)


def leaderboard_markdown(res: dict) -> str:
    """The leaderboard as Markdown: one table per reference column, rows in rank order."""
    parts = [f"## Agreement with {Path(res['reference']).name}: {res['n_measured']} site(s) on {res['n_photos']} "
             f"photo(s), skin = {'ROI' if res['method'] == 'roi' else res['method'] + ' segmentation'}"
             f"{' within the ROI' if res['method'] != 'roi' else ''}, calibration {res['calibration']}",
             f"Ranked by {res['criterion']} (ranking column: `{res['rank_by']}`, the order of leaderboard.csv; "
             "each table below is ordered the same way against its own column). Intervals: 95 %, "
             "correlations by BCa bootstrap" + (" over subjects" if res["has_subject"] else " over photos") +
             ", ICC by F distribution (McGraw & Wong 1996). Bland-Altman: calibrated index - reference.",
             ]
    for col in res["columns"]:
        head = ["rank", "index", "n", "Pearson r [95 % CI]", "Spearman rho [95 % CI]", "slope", "intercept",
                "ICC(2,1) [95 % CI]", "Koo & Li", "ICC(3,1)", "BA bias", "BA limits"]
        if res["has_subject"]:
            head += ["retest ICC", "SEM (index units)", "MDC95 (index units)"]
        rule = "|" + "|".join("---" if i < 2 else "---:" for i in range(len(head))) + "|"
        lines = ["| " + " | ".join(head) + " |", rule]
        rows = sorted(res["leaderboard"], key=lambda r: _order_key(r["references"][col]["icc2"], r["index"]))
        for pos, r in enumerate(rows, start=1):
            m = r["references"][col]
            cells = [str(pos), f"`{r['index']}`", str(m["n"]),
                     f"{_fmt(m['pearson'])} [{_fmt(m['pearson_lo'])}, {_fmt(m['pearson_hi'])}]",
                     f"{_fmt(m['spearman'])} [{_fmt(m['spearman_lo'])}, {_fmt(m['spearman_hi'])}]",
                     _fmt(m["slope"], ".4g"), _fmt(m["intercept"], ".4g"),
                     f"{_fmt(m['icc2'])} [{_fmt(m['icc2_lo'])}, {_fmt(m['icc2_hi'])}]", m["icc2_band"],
                     _fmt(m["icc3"]), _fmt(m["ba_bias"], ".4g"),
                     f"{_fmt(m['ba_lo'], '.4g')} to {_fmt(m['ba_hi'], '.4g')}"]
            if res["has_subject"]:
                cells += [_fmt(m["retest_icc"]), _fmt(m["sem"], ".4g"), _fmt(m["mdc"], ".4g")]
            lines.append("| " + " | ".join(cells) + " |")
        parts.append(f"### Reference `{col}`" + (" (ranking column)" if col == res["rank_by"] else ""))
        parts.append("\n".join(lines))
    sk = res["skipped"]
    c = sk["counts"]
    notes = []
    if c["duplicate_rows"]:
        notes.append(f"{c['duplicate_rows']} duplicate row(s) left out")
    for key, what in (("missing_images", "image not found"), ("unreadable", "unreadable image or ROI"),
                      ("no_skin", "no skin")):
        if c[key]:
            first = sk[key][0]
            notes.append(f"{c[key]} row(s) skipped: {what} (first: line {first['line']}, {first['image']})")
    if sk["text_columns"]:
        notes.append(f"text column(s) not used as references: {', '.join(sk['text_columns'])}")
    miss = {k: v for k, v in sk["missing_values"].items() if v}
    if miss:
        notes.append("missing readings: " + ", ".join(f"{k} {v}" for k, v in miss.items()))
    for name, d in res["index_errors"].items():
        notes.append(f"index {name} failed on {d['n_failed']} row(s): {d['first_error']} (first: {d['first_image']})")
    if notes:
        parts.append("Notes: " + "; ".join(notes) + ".")
    return "\n\n".join(parts) + "\n"


def write_leaderboard(res: dict, out: str | os.PathLike) -> list[Path]:
    """``leaderboard.csv`` (flat: ``<reference>.<metric>`` columns), ``.md`` and ``.json`` under ``out``."""
    out = Path(out)
    doc = {"criterion": res["criterion"], "rank_by": res["rank_by"], "reference": res["reference"],
           "columns": res["columns"], "metrics": list(LEADERBOARD_METRICS), "rows": res["leaderboard"],
           "skipped": res["skipped"]["counts"], "index_errors": res["index_errors"]}
    return [write_csv(out / "leaderboard.csv", _flat(res), leaderboard_columns(res)),
            write_bytes(out / "leaderboard.md", ("# skinimg agreement leaderboard\n\n" + leaderboard_markdown(res))
                        .encode("utf-8")),
            write_json(out / "leaderboard.json", doc)]


# ----------------------------------------------------------------------------- plots


def write_agreement_plots(res: dict, out: str | os.PathLike, plt) -> list[Path]:
    """Per reference column: ``agreement_<ref>_scatter.png`` (index vs reference with the
    calibration line, coloured by ITA class), ``agreement_<ref>_bland_altman.png`` (calibrated
    index - reference against their mean, bias and limits) and ``agreement_<ref>_tones.png``
    (calibrated index - reference per ITA class)."""
    out = Path(out)
    written = []
    tones = tuple(ITA_CATEGORIES)
    colours = dict(zip(tones, ("#f1d3b3", "#e0b48c", "#c98e62", "#a66a3f", "#6e4426", "#3b2313")))
    names = res["index_names"]
    ncol = 4
    nrow = max(1, math.ceil(len(names) / ncol))
    photo_tones = [r["ita_category"] for r in res["photos"]]

    def save(fig, name):
        buf = _io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        plt.close(fig)
        written.append(write_bytes(out / name, buf.getvalue()))

    for col in res["columns"]:
        pairs = {p["index"]: p for p in res["pairs"] if p["reference"] == col}
        y = np.array([r["values"][col] for r in res["photos"]], dtype=np.float64)
        safe = _SAFE.sub("_", col)
        for kind in ("scatter", "bland_altman", "tones"):
            fig, axes = plt.subplots(nrow, ncol, figsize=(15, 3.6 * nrow + 0.6), squeeze=False)
            for ax in axes.ravel()[len(names):]:
                ax.set_visible(False)
            for ax, name in zip(axes.ravel(), names):
                p = pairs[name]
                x = np.array(p["values"], dtype=np.float64)
                cal = np.array(p["calibrated"], dtype=np.float64)
                if kind == "scatter":
                    for tone in tones:
                        sel = np.array([t == tone for t in photo_tones]) & np.isfinite(x) & np.isfinite(y)
                        if sel.any():
                            ax.scatter(x[sel], y[sel], s=14, color=colours[tone], edgecolors="k", linewidths=0.3,
                                       label=tone.replace("_", " "))
                    c = p["calibration"]
                    if math.isfinite(c["slope"]):
                        xs = np.array([np.nanmin(x), np.nanmax(x)])
                        ax.plot(xs, c["intercept"] + c["slope"] * xs, "k-", lw=1)
                    ax.set_xlabel(name)
                    ax.set_ylabel(col)
                    ax.set_title(f"{name}: r = {_fmt(p['pearson']['r'], '.2f')}", fontsize=9)
                elif kind == "bland_altman":
                    ok = np.isfinite(cal) & np.isfinite(y)
                    ax.scatter((cal[ok] + y[ok]) / 2, cal[ok] - y[ok], s=12, color="#4c72b0")
                    ba = p["bland_altman"]
                    for v, style in ((ba["bias"], "-"), (ba["lo"], "--"), (ba["hi"], "--")):
                        if math.isfinite(v):
                            ax.axhline(v, color="k", ls=style, lw=0.8)
                    ax.set_xlabel("mean of the two", fontsize=8)
                    ax.set_ylabel("calibrated - reference", fontsize=8)
                    ax.set_title(f"{name}: bias {_fmt(ba['bias'], '.3g')}, limits {_fmt(ba['lo'], '.3g')} to "
                                 f"{_fmt(ba['hi'], '.3g')}", fontsize=8)
                else:
                    present = [t for t in tones if t in photo_tones]
                    for i, tone in enumerate(present):
                        sel = np.array([t == tone for t in photo_tones]) & np.isfinite(cal) & np.isfinite(y)
                        d = cal[sel] - y[sel]
                        ax.scatter(np.full(d.size, i) + np.linspace(-0.15, 0.15, max(d.size, 1))[: d.size], d, s=12,
                                   color=colours[tone], edgecolors="k", linewidths=0.3)
                    ax.axhline(0, color="k", lw=0.6)
                    ax.set_xticks(range(len(present)), [t.replace("_", " ") for t in present], rotation=30,
                                  fontsize=7)
                    ax.set_ylabel(f"calibrated - {col}")
                    ax.set_title(name, fontsize=9)
            if kind == "scatter":
                axes[0, 0].legend(fontsize=6, title="tone (ITA)", title_fontsize=6)
            title = {"scatter": f"Index vs {col} with the least-squares calibration line, by tone class",
                     "bland_altman": f"Bland-Altman: index calibrated to {col} (cross-validated) minus {col}",
                     "tones": f"Calibrated index minus {col} per tone class (ITA of the measured skin)"}[kind]
            fig.suptitle(title)
            fig.tight_layout()
            save(fig, f"agreement_{safe}_{kind}.png")
    return written

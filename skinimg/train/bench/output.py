"""Tables and files of a benchmark result: ``bench.csv`` rows, the Markdown tables, plots, ``bench.json``."""

from __future__ import annotations

import io as _io
import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ...color import ITA_CATEGORIES
from ...indices import INDEX_NAMES, format_errors
from ...io import make_output_folder, write_bytes, write_csv, write_json
from .ranking import LEADERBOARD_METRICS, leaderboard_markdown, write_agreement_plots, write_leaderboard
from .params import CSV_COLUMNS, UNITS

__all__ = ["csv_rows", "format_markdown", "write_plots", "write_outputs"]


def csv_rows(res: dict) -> list[dict]:
    """The results as long-format rows of :data:`CSV_COLUMNS` (one metric value per row)."""
    out = []

    def add(suite, table, item, condition, metric, value, unit="", n=None):
        out.append({"suite": suite, "table": table, "item": item, "condition": condition, "metric": metric,
                    "value": value, "unit": unit, "n": n})

    if "accuracy" in res:
        a = res["accuracy"]
        for r in a["indices"]:
            for m in ("spearman_hemoglobin", "pearson_hemoglobin", "spearman_melanin", "pearson_melanin"):
                add("accuracy", "correlation", r["index"], "", m, r[m], "", a["n_images"])
            add("accuracy", "crosstalk", r["index"], f"target={r['target']}", "crosstalk", r["crosstalk"], "ratio",
                a["n_images"])
    units = res.get("units") or UNITS
    if "repeatability" in res:
        for r in res["repeatability"]["rows"]:
            u = units.get(r["index"], "")
            for m, unit in (("sem", u), ("mdc", u), ("mdc_pct", "%"), ("cv_pct", "%")):
                add("repeatability", r["factor"], r["index"], r["condition"], m, r[m], unit, r["n_values"])
    if "segmentation" in res:
        sg = res["segmentation"]
        for r in sg["rows"]:
            for m in ("precision", "recall", "f1", "iou", "iou_min"):
                add("segmentation", r["dataset"], r["group"], r["method"], m, r[m], "", r["n_images"])
    if "speed" in res:
        sp = res["speed"]
        for k, v in sp["stages"].items():
            add("speed", "stage", k, sp["segment_method"] if k == "segment" else "", "seconds", v, "s")
            add("speed", "stage", k, "", "x_cv2_decode", sp["ratios"][k], "ratio")
        for k, v in sp["baselines"].items():
            add("speed", "baseline", k, "", "seconds", v, "s")
            add("speed", "baseline", k, "", "x_cv2_decode", sp["ratios"][k], "ratio")
        for k, v in sp["throughput"].items():
            add("speed", "throughput", "decode+calibrate+segment+indices", f"workers={k}", "images_per_s", v,
                "1/s")
        add("speed", "memory", "peak_rss", "", "bytes", sp["peak_rss_bytes"], "B")
        add("speed", "memory", "peak_rss", "", "x_decoded", sp["peak_rss_x_decoded"], "ratio")
    if "agreement" in res:
        ag = res["agreement"]
        for row in ag["leaderboard"]:
            for col, ms in row["references"].items():
                for m in LEADERBOARD_METRICS:
                    if m not in ("n", "icc2_band"):
                        add("agreement", col, row["index"], f"rank={row['rank']}" if col == ag["rank_by"] else "", m,
                            ms[m], "", ms["n"])
    return out


def _f(v, fmt=".3f") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return format(v, fmt)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def format_markdown(res: dict) -> str:
    """Markdown tables of a :func:`run_bench` result (what ``skinimg bench`` prints)."""
    p = res["params"]
    m = res["machine"]
    parts = [f"# skinimg bench ({p['size']}), skinimg {res['skinimg_version']}, Python {m['python']}, "
             f"{m['cpu_count']} CPU(s)"]
    if "accuracy" in res:
        a = res["accuracy"]
        hi, lo = a["ita_range"]
        parts.append(f"## Accuracy: {a['n_images']} phantoms, {len(p['melanin_levels'])} melanin x "
                     f"{len(p['hemoglobin_levels'])} haemoglobin levels x {p['grid_seeds']} skin(s), "
                     f"{p['image_size'][0]}x{p['image_size'][1]}, reference ITA {hi:+.0f} to {lo:+.0f} deg, "
                     "true skin masks")
        rows = [[f"`{r['index']}`", r["target"], _f(r["spearman_hemoglobin"]), _f(r["pearson_hemoglobin"]),
                 _f(r["spearman_melanin"]), _f(r["pearson_melanin"]), _f(r["crosstalk"], "+.3f")]
                for r in a["indices"]]
        parts.append(_table(["index", "target", "Spearman Hb", "Pearson Hb", "Spearman mel", "Pearson mel",
                             "cross-talk"], rows))
        by = {r["index"]: r for r in a["indices"]}
        parts.append(f"Cross-talk = change over the grid's range of the other chromophore / change over the range "
                     f"of the target (0 = none). Melanin cross-talk of the erythema index: "
                     f"{_f(by['erythema_index']['crosstalk'], '+.3f')}; of the separated haemoglobin: "
                     f"{_f(by['hemoglobin']['crosstalk'], '+.3f')}.")
    if "repeatability" in res:
        r = res["repeatability"]
        parts.append(f"## Repeatability: {len(r['subjects'])} subjects x {r['n_retakes']} retakes per factor "
                     "(exposure 0.8-1.2, white balance D50/D65/D75, JPEG 70-95, pose, sensor noise); "
                     "MDC95 = 1.96 sqrt(2) SEM (Weir 2005)")
        idx = {(x["condition"], x["factor"], x["index"]): x for x in r["rows"]}
        names = res.get("index_names") or INDEX_NAMES
        rows = []
        for n in names:
            u, c = idx.get(("uncalibrated", "all", n)), idx.get(("calibrated", "all", n))
            if u is None:
                continue
            rows.append([f"`{n}`", _f(u["sem"], ".4g"), _f(u["mdc"], ".4g"), _f(u["mdc_pct"], ".1f"),
                         _f(u["cv_pct"], ".2f"), _f(c["mdc"], ".4g"), _f(c["mdc_pct"], ".1f"), _f(c["cv_pct"], ".2f")])
        if rows:
            parts.append("All factors at once:")
            parts.append(_table(["index", "SEM", "MDC95", "MDC95 %", "CV %", "MDC95 calibrated",
                                 "MDC95 % calibrated", "CV % calibrated"], rows))
        factors = [f for f in r["factors"] if f != "all"]
        if factors:
            for cond in ("uncalibrated", "calibrated"):
                rows = [[f"`{n}`"] + [_f(idx[cond, f, n]["mdc"], ".4g") for f in factors]
                        for n in names]
                parts.append(f"MDC95 by factor, {cond}:")
                parts.append(_table(["index"] + factors, rows))
        fails = sum(r["calibration_failures"].values())
        if fails:
            parts.append(f"Chart not found in {fails} retake(s) (left out of the calibrated condition).")
    if "segmentation" in res:
        sg = res["segmentation"]
        parts.append("## Segmentation")
        rows = [[r["dataset"], r["group"], r["method"], str(r["n_images"]), _f(r["precision"]), _f(r["recall"]),
                 _f(r["f1"]), _f(r["iou"]), _f(r["iou_min"])] for r in sg["rows"]]
        parts.append(_table(["dataset", "group", "method", "images", "precision", "recall", "F1", "IoU",
                             "min IoU"], rows))
        if sg["errors"]:
            parts.append(f"{len(sg['errors'])} real image(s) skipped (no usable mask).")
    if "speed" in res:
        sp = res["speed"]
        h, w = sp["shape"][:2]
        parts.append(f"## Speed: {h}x{w} JPEG ({sp['megapixels']:.1f} MP), one thread per process, median of "
                     f"{sp['repeat']}; segmentation: {sp['segment_method']}; calibration: {sp['calibration']}")
        rows = [[k, _f(v), _f(sp["ratios"][k], ".2f")] for k, v in sp["stages"].items()]
        rows += [[f"baseline: {k}", _f(v), _f(sp["ratios"][k], ".2f")] for k, v in sp["baselines"].items()]
        parts.append(_table(["stage", "seconds", "x cv2 decode"], rows))
        thr = ", ".join(f"{k} worker(s): {v:.2f} images/s" for k, v in sp["throughput"].items())
        peak = sp["peak_rss_bytes"]
        parts.append(f"Throughput (decode + calibrate + segment + indices): {thr}. Peak memory of one image: "
                     + (f"{peak / 1e6:.0f} MB ({sp['peak_rss_x_decoded']:.1f} x the decoded image)." if peak
                        else "n/a (needs the resource module of Unix)."))
    if "agreement" in res:
        parts.append(leaderboard_markdown(res["agreement"]).rstrip("\n"))
    if res.get("index_errors"):
        parts.append("User indices that failed (their values are missing where they failed; every other column is "
                     "complete):\n" + "\n".join(f"- {line}" for line in format_errors(res["index_errors"])))
    return "\n\n".join(parts) + "\n"


def write_plots(res: dict, out: str | os.PathLike) -> tuple[list[Path], str | None]:
    """``accuracy_scatter.png`` (index vs true chromophore, coloured by tone class) and
    ``repeatability.png`` (MDC95 per index and factor, uncalibrated vs calibrated), and the agreement
    suite's plots (:func:`skinimg.train.bench.ranking.write_agreement_plots`).

    Returns ``(paths written, note)``; the note says why plots were skipped (no
    matplotlib: ``pip install 'skinimg[report]'``).
    """
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError:
        return [], "plots skipped: matplotlib is not installed (pip install 'skinimg[report]')"
    out = Path(out)
    written = []
    tones = tuple(ITA_CATEGORIES)  # lightest first
    colours = dict(zip(tones, ("#f1d3b3", "#e0b48c", "#c98e62", "#a66a3f", "#6e4426", "#3b2313")))

    def save(fig, name):
        buf = _io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        plt.close(fig)
        written.append(write_bytes(out / name, buf.getvalue()))

    names = list(res.get("index_names") or INDEX_NAMES)
    nrow = max(2, math.ceil(len(names) / 4))
    units = res.get("units") or UNITS
    if "accuracy" in res:
        imgs = res["accuracy"]["images"]
        target = {r["index"]: r["target"] for r in res["accuracy"]["indices"]}
        fig, axes = plt.subplots(nrow, 4, figsize=(15, 3.75 * nrow))
        for ax in axes.ravel()[len(names):]:
            ax.set_visible(False)
        for ax, name in zip(axes.ravel(), names):
            t = target[name]
            for tone in tones:
                sel = [r for r in imgs if r["tone"] == tone]
                if sel:
                    ax.scatter([r[f"true_{t}"] for r in sel], [r[name] for r in sel], s=14, color=colours[tone],
                               edgecolors="k", linewidths=0.3, label=tone.replace("_", " "))
            ax.set_xlabel(f"true {t} (volume fraction)")
            ax.set_title(name, fontsize=10)
        axes[0, 0].legend(fontsize=7, title="tone (reference ITA)", title_fontsize=7)
        fig.suptitle("Index vs phantom truth, per tone class")
        fig.tight_layout()
        save(fig, "accuracy_scatter.png")
    if "repeatability" in res:
        rep = res["repeatability"]
        idx = {(r["condition"], r["factor"], r["index"]): r["mdc"] for r in rep["rows"]}
        factors = list(rep["factors"])
        x = np.arange(len(factors))
        fig, axes = plt.subplots(nrow, 4, figsize=(15, 3.5 * nrow))
        for ax in axes.ravel()[len(names):]:
            ax.set_visible(False)
        for ax, name in zip(axes.ravel(), names):
            for k, cond in enumerate(("uncalibrated", "calibrated")):
                v = [idx.get((cond, f, name), np.nan) for f in factors]
                ax.bar(x + (k - 0.5) * 0.38, v, width=0.38, label=cond)
            ax.set_xticks(x, [f.replace("white_balance", "WB") for f in factors], rotation=30, ha="right",
                          fontsize=8)
            ax.set_title(f"{name} ({units.get(name) or 'user index'})", fontsize=10)
        axes[0, 0].set_ylabel("MDC95")
        axes[1, 0].set_ylabel("MDC95")
        axes[0, 0].legend(fontsize=8)
        fig.suptitle("Retake repeatability: MDC95 = 1.96 sqrt(2) SEM per factor, without and with chart calibration")
        fig.tight_layout()
        save(fig, "repeatability.png")
    if "agreement" in res:
        written += write_agreement_plots(res["agreement"], out, plt)
    return written, None


def write_outputs(res: dict, out: str | os.PathLike, *, plots: bool = True) -> dict:
    """Write ``bench.json`` (everything), ``bench.csv`` (:func:`csv_rows`), with the agreement suite
    ``leaderboard.csv``/``.md``/``.json`` (:func:`skinimg.train.bench.ranking.write_leaderboard`), and the
    plots under ``out``.

    Returns ``{"outputs": [paths], "note": str or None}``.
    """
    out = make_output_folder(out)
    paths = [write_json(out / "bench.json", res), write_csv(out / "bench.csv", csv_rows(res), CSV_COLUMNS)]
    if "agreement" in res:
        paths += write_leaderboard(res["agreement"], out)
    note = None
    if plots:
        more, note = write_plots(res, out)
        paths += more
    return {"outputs": paths, "note": note}

"""Skin mask accuracy per skin tone on held-out phantoms, with 95 % bootstrap intervals and an error budget.

    python benchmarks/segment_accuracy.py                       # 240 phantoms at 240x320 and 144 at 480x640
    python benchmarks/segment_accuracy.py --set 240x320:600     # a larger set (about 1 minute per 240 photos)
    python benchmarks/segment_accuracy.py --plan ladder:60 --plan grid:8:4   # the sets `skinimg synth` writes
    python benchmarks/segment_accuracy.py --json out.json

The photos are ``skinimg.segment.phantom_specs(range(seed, seed + n), size=...)``: the held-out seeds (100000+)
unless ``--seed`` says otherwise (200000+ is the development range used to choose changes); with ``--plan``,
the photos of ``skinimg synth --set NAME --n N`` (``skinimg.phantom.plan_set``, 480x640) for base seeds 600000+.  For each tone
group (melanin volume fraction, ``skinimg.segment.TONE_GROUPS``) the table gives the pooled F1 (Dice) of the
skin network (default parameters), its 95 % percentile-bootstrap interval over photos (``pooled_tone_metrics``;
1000 resamples, seed 0), the worst photo, and the rules baseline (Chai and Ngan 1999) with the paired difference
(same bootstrap resamples of photos for both, seed 1).  Phantoms are a stress test of pixel-true masks from another
generator than the network's training data, not its accuracy on photographs (``benchmarks/segment_real.py``).
The error budget (``skinimg.train.error_budget``) splits the model's wrong pixels into missed skin beside thin structures
(hair strands), at the skin's edge and inside, and false skin per true label (thin strands apart), and gives
the F1 each tone would reach without each class; a per-photo table (``photo_distribution``) gives the median and
10th percentile of the photos' own F1 and how many photos are below 0.90, with their share of the wrong pixels;
``check_flag`` how many of the network's failed masks (F1 < 0.90) and of the good ones ``skinimg segment --check``
flags (its agreement with the mirror image).
Deterministic; ``--workers`` only changes the speed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from skinimg import segment as S  # noqa: E402
from skinimg import train as T  # noqa: E402

GROUPS = [g for g, _, _ in S.TONE_GROUPS]


def plan_image(spec, jpeg_quality=None):
    """The rendered photo and its phantom; with ``jpeg_quality``, the photo encoded and decoded as
    ``skinimg synth --format jpg`` writes it and ``load_image`` reads it back."""
    from skinimg.phantom import render_phantom
    from skinimg.phantom.render import _jpeg_roundtrip

    ph = render_phantom(spec)
    return (ph.image if jpeg_quality is None else _jpeg_roundtrip(ph.image, jpeg_quality)), ph


def _one(job):
    spec, jpeg_quality = job if isinstance(job, tuple) else (job, None)
    image, ph = plan_image(spec, jpeg_quality)
    # the site string also names the skin: the photos of a --plan grid share one seed
    out = {"seed": spec.seed, "group": S.tone_group(spec.melanin),
           "site": f"{spec.site}, melanin {spec.melanin:.3f}, haemoglobin {spec.hemoglobin:.4f}"}
    for name, meth in (("model", "model"), ("rules", "rules")):
        r = S.segment_skin(image, method=meth, check=meth == "model")
        m = S.evaluate_masks(r.mask, ph.mask)
        out[name] = [m[k] for k in ("tp", "fp", "fn", "tn")]
        if name == "model":
            out["budget"] = T.error_budget(r.mask, ph.mask, ph.labels)
            out["agreement"] = r.agreement  # what `segment --check` reports
    return out


def check_flag(rows, cut=0.9, threshold=None):
    """How well ``segment --check``'s flag (agreement below ``threshold``, default ``S.AGREEMENT_MIN``) finds the
    default masks with F1 < ``cut``, per tone group and "all": ``[failed, failed and flagged, good, good but
    flagged]``."""
    threshold = S.AGREEMENT_MIN if threshold is None else threshold
    out = {}
    for r in rows:
        bad = _f1(*r["model"][:3]) < cut
        flagged = r["agreement"] < threshold
        for g in (r["group"], "all"):
            c = out.setdefault(g, [0, 0, 0, 0])
            c[0 if bad else 2] += 1
            c[1 if bad else 3] += flagged
    return out


def paired_difference(rows, a, b, bootstrap, seed=1):
    """Per tone: pooled F1 of ``a`` minus that of ``b`` and its 95 % percentile-bootstrap interval, photos
    resampled together (the same resample for both)."""
    import numpy as np

    out = {}
    rng = np.random.default_rng(seed)
    for g in GROUPS + ["all"]:
        sel = [r for r in rows if g in (r["group"], "all")]
        if not sel:
            continue
        ca = np.array([r[a][:3] for r in sel], float)
        cb = np.array([r[b][:3] for r in sel], float)

        def f1(c):
            return 2 * c[..., 0] / np.maximum(2 * c[..., 0] + c[..., 1] + c[..., 2], 1)

        d = float(f1(ca.sum(0)) - f1(cb.sum(0)))
        if bootstrap:
            idx = rng.integers(0, len(sel), (bootstrap, len(sel)))
            ds = f1(ca[idx].sum(1)) - f1(cb[idx].sum(1))
            out[g] = (d, float(np.percentile(ds, 2.5)), float(np.percentile(ds, 97.5)))
        else:
            out[g] = (d, float("nan"), float("nan"))
    return out


def _f1(tp, fp, fn):
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0


def photo_distribution(rows, name, cut=0.9):
    """Per tone group (and "all"): the median and 10th percentile of the photos' own F1 under stage ``name``, how
    many photos are below ``cut``, and their share of the group's wrong pixels (FP + FN): whether a tone's pooled
    figure is set by many photos or by a few failures."""
    out = {}
    for g in GROUPS + ["all"]:
        sel = [r[name] for r in rows if g in (r["group"], "all")]
        if not sel:
            continue
        f = np.array([_f1(*c[:3]) for c in sel])
        wrong = np.array([c[1] + c[2] for c in sel], dtype=float)
        low = f < cut
        out[g] = {"n_images": len(sel), "median": float(np.median(f)), "p10": float(np.percentile(f, 10)),
                  "below": int(low.sum()), "below_error_share": float(wrong[low].sum() / max(wrong.sum(), 1.0))}
    return out


def run_set(size, n, seed, workers, bootstrap, specs=None, label=None):
    """Segment ``specs`` (default: ``phantom_specs(range(seed, seed + n), size=size)``) and tabulate."""
    if specs is None:
        specs = T.phantom_specs(range(seed, seed + n), size=size)
    t0 = time.perf_counter()
    if workers > 1:
        with ProcessPoolExecutor(workers) as ex:
            rows = list(ex.map(_one, specs, chunksize=4))
    else:
        rows = [_one(s) for s in specs]
    elapsed = time.perf_counter() - t0
    tabs = {name: S.pooled_tone_metrics([(r["group"], *r[name]) for r in rows], bootstrap=bootstrap)
            for name in ("model", "rules")}
    budget: dict = {}
    for r in rows:
        for g in (r["group"], "all"):
            b = budget.setdefault(g, {})
            for k, v in r["budget"].items():
                b[k] = b.get(k, 0) + v
    worst = {}
    for r in rows:
        f = _f1(*r["model"][:3])
        for g in (r["group"], "all"):
            if g not in worst or f < worst[g][0]:
                worst[g] = (f, r["seed"], r["site"])
    return {"size": list(size), "n": len(specs), "seed": seed, "label": label, "seconds": elapsed, "model": tabs["model"],
            "rules": tabs["rules"], "model_minus_rules": paired_difference(rows, "model", "rules", bootstrap),
            "budget": budget, "worst": worst, "photos": {k: photo_distribution(rows, k) for k in ("model", "rules")},
            "check": check_flag(rows),
            "counts": {g: [sum(r["model"][i] for r in rows if g in (r["group"], "all")) for i in range(3)]
                       for g in GROUPS + ["all"]}}


def print_set(res):
    h, w = res["size"]
    what = res.get("label") or f"{res['n']} phantoms, {h}x{w}, seeds {res['seed']}+"
    print(f"\n## {what} ({res['seconds']:.0f} s)\n")
    print("| tone | photos | F1 | 95 % interval | worst photo (seed, site, skin) | rules F1 | model - rules (95 % paired) |")
    print("|---|---|---|---|---|---|---|")
    for g in GROUPS + ["all"]:
        if g not in res["model"]:
            continue
        m, r = res["model"][g], res["rules"][g]
        lo, hi = m.get("f1_ci95", [float("nan")] * 2)
        wf, ws, wsite = res["worst"][g]
        d, dlo, dhi = res["model_minus_rules"][g]
        print(f"| {g} | {m['n_images']} | {m['f1']:.3f} | {lo:.3f}-{hi:.3f} | {wf:.2f} ({ws}, {wsite}) "
              f"| {r['f1']:.3f} | {d:+.4f} ({dlo:+.4f} to {dhi:+.4f}) |")
    print("\nPer photo: median F1, 10th percentile, photos below 0.90 and their share of the wrong pixels\n")
    print("| tone | model: median | p10 | below 0.90 | share of errors | rules: median | p10 | below 0.90 | share of errors |")
    print("|---|---|---|---|---|---|---|---|---|")
    for g in GROUPS + ["all"]:
        if g not in res["photos"]["model"]:
            continue
        cells = [f"{d['median']:.3f} | {d['p10']:.3f} | {d['below']} | {100 * d['below_error_share']:.0f} %"
                 for d in (res["photos"]["model"][g], res["photos"]["rules"][g])]
        print(f"| {g} | " + " | ".join(cells) + " |")
    print(f"\n`segment --check` (the network agrees with its mirror image less than {S.AGREEMENT_MIN}): masks with "
          "F1 < 0.90 flagged, and good masks flagged\n")
    print("| tone | failed masks flagged | good masks flagged |")
    print("|---|---|---|")
    for g in GROUPS + ["all"]:
        if g in res["check"]:
            nb, fb, ng, fg = res["check"][g]
            print(f"| {g} | {fb} of {nb} | {fg} of {ng} |")
    keys = sorted({k for b in res["budget"].values() for k in b}, key=lambda k: -res["budget"]["all"].get(k, 0))
    keys = [k for k in keys if res["budget"]["all"].get(k, 0) >= 0.01 * sum(res["budget"]["all"].values())]
    print("\nError budget: share of the model's wrong pixels, and (F1 without that class)\n")
    print("| tone | " + " | ".join(keys) + " |")
    print("|---|" + "---|" * len(keys))
    for g in GROUPS + ["all"]:
        if g not in res["budget"]:
            continue
        b = res["budget"][g]
        tp, fp, fn = res["counts"][g]
        tot = fp + fn
        cells = []
        for k in keys:
            v = b.get(k, 0)
            f = _f1(tp + v, fp, fn - v) if k.startswith("fn") else _f1(tp, fp - v, fn)
            cells.append(f"{100 * v / max(tot, 1):.0f} % ({f:.3f})")
        print(f"| {g} | " + " | ".join(cells) + " |")


def _set_arg(text):
    """``HxW:N`` -> ((H, W), N); argparse turns the ValueError into a one-line usage error."""
    try:
        dims, n = text.split(":")
        h, w = (int(v) for v in dims.lower().split("x"))
        size, count = (h, w), int(n)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW:N such as 240x320:240, got {text!r}") from None
    if min(h, w, count) < 1:
        raise argparse.ArgumentTypeError(f"sizes and counts must be positive, got {text!r}")
    return size, count


def _plan_arg(text):
    """``NAME:N[:SEEDS]`` -> (name, n, seeds): a set of ``skinimg synth`` (``plan_set``), once per seed."""
    from skinimg.phantom import SETS

    try:
        parts = text.split(":")
        name, n = parts[0], int(parts[1])
        seeds = int(parts[2]) if len(parts) > 2 else 1
    except (ValueError, IndexError):
        raise argparse.ArgumentTypeError(f"expected NAME:N[:SEEDS] such as ladder:60 or grid:8:4, got {text!r}") from None
    if name not in SETS or name == "samples" or min(n, seeds) < 1 or len(parts) > 3:
        raise argparse.ArgumentTypeError(f"expected ladder|pairs|retakes|grid:N[:SEEDS] with N, SEEDS >= 1, got {text!r}")
    return name, n, seeds


def plan_specs(name, n, seeds, seed, size=(480, 640)):
    """The photos ``skinimg synth --set NAME --n N --seed S --size HxW`` writes, for S = seed .. seed + seeds - 1."""
    from skinimg.phantom import plan_set

    return [p.spec for k in range(seeds) for p in plan_set(name, n=n, size=size, seed=seed + k)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--set", action="append", metavar="HxW:N", type=_set_arg,
                    help="a set of N phantoms of H x W pixels (repeatable; default 240x320:240 and 480x640:144)")
    ap.add_argument("--plan", action="append", metavar="NAME:N[:SEEDS]", type=_plan_arg,
                    help="a set exactly as `skinimg synth --set NAME --n N` renders it (480x640), for SEEDS consecutive "
                    "base seeds from --plan-seed (repeatable), e.g. ladder:60 or grid:8:4")
    ap.add_argument("--plan-seed", type=int, default=600_000,
                    help="first base seed of --plan sets (default 600000: scenes no training set uses)")
    ap.add_argument("--seed", type=int, default=100_000, help="first phantom seed (default 100000, held out)")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--json", help="write the results here as well")
    a = ap.parse_args(argv)
    sets = a.set or ([] if a.plan else [((240, 320), 240), ((480, 640), 144)])
    results = []
    for size, n in sets:
        res = run_set(size, n, a.seed, a.workers, a.bootstrap)
        print_set(res)
        results.append(res)
    for name, n, seeds in a.plan or []:
        specs = plan_specs(name, n, seeds, a.plan_seed)
        label = (f"`skinimg synth --set {name} --n {n}` (480x640), base seeds {a.plan_seed}"
                 + (f"-{a.plan_seed + seeds - 1}" if seeds > 1 else "") + f": {len(specs)} photos")
        res = run_set((480, 640), len(specs), a.plan_seed, a.workers, a.bootstrap, specs=[(sp, 90) for sp in specs],
                      label=label + " (JPEG quality 90, as written)")
        print_set(res)
        results.append(res)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()

"""Skin segmentation on real labelled photographs, plain scenes and rendered papules, beside the rules baseline.

    python benchmarks/segment_real.py --data DIR --split dev --splits-cache splits.json   # choices are made here
    python benchmarks/segment_real.py --data DIR --split val                              # reported once
    python benchmarks/segment_real.py --scenes --papules --closeups --data DIR
    python benchmarks/segment_real.py --data DIR --split val --other-masks OLD/val --other-name "previous default"

``--data``: the folder ``skinimg train-segmenter --data`` reads (``docs/segmentation.md``: the SFA and abdomen datasets
of ``MRE-Lab-UMD/abd-skin-segmentation`` commit ``ee7b5f3``, exported with ``git archive``; research photos, never
committed).  ``--model``: another ONNX file than the shipped ``models/skin_unet.onnx``.  ``--other-masks DIR``: the
masks of a third segmenter (for example an older skinimg release) as ``DIR/<dataset>/<folder>/<id>.png`` (photos),
``DIR/scenes/<seed>.png`` and ``DIR/papules/<dataset>/<folder>/<id>.png`` (non-zero = skin), shown as a third column.
Tables (F1 of every photo and pixel-pooled F1 / IoU per group, ``skinimg.segment.evaluate_masks``):

* the photos (val folders or the development split): per group (all, each dataset, darker = ITA of the true skin
  < 28 deg, lighter, each ITA class of Del Bino and Bernerd 2013) with the labels as published and with the label
  clean-up of ``skinimg.train.segdata`` (lips and specks removed);
* ``--scenes``: the 140 plain scenes of ``skinimg.phantom.plain_scene`` (seeds 0-139: 7 tones x 2 haemoglobin x 5
  exposures x without / with a hair band): mean and worst F1 per exposure, tone and hair, and how many scenes a
  segmenter does worse than the rules (F1 lower by more than 0.005);
* ``--papules``: red papules and pustules rendered into every val photo (``skinimg.phantom.render_papules``, 12 per
  photo, seed = the photo's index): the share of lesion-core pixels in the mask, overall and where the photo's
  mask without lesions had them;
* ``--closeups``: clinical framing: the face of every 11th SFA val photo (10 photos) filling a 3000 x 3400 frame
  (bicubic, JPEG quality 92) with 25 rendered papules: F1 and lesion pixels kept.

Deterministic.  About 15 minutes on one core for the val table (rules and network), 5 for the scenes, 20 for the
papules, 10 for the close-ups.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from skinimg.io import read_mask, write_json
from skinimg.phantom import PLAIN_EXPOSURES, PLAIN_MELANIN, plain_scene, render_papules
from skinimg.segment import evaluate_masks, load_model, metrics_from_counts, segment_skin, true_skin_tone
from skinimg.color import ITA_CATEGORIES
from skinimg.train.segdata import find_photos, load_photo, make_splits

DARKER = 28.0  # ITA below this: tan, brown, dark (Del Bino and Bernerd 2013)


def photo_sets(data, split: str, splits_cache: str | None):
    """(key, rgb, truth as labelled, truth cleaned) of the val folders or of the development split."""
    photos = find_photos(data)
    by = {p.key: p for p in photos}
    if split == "val":
        keys = [p.key for p in photos if p.folder == "val"]
    else:
        cached = json.loads(Path(splits_cache).read_text()) if splits_cache and Path(splits_cache).is_file() else None
        keys = (cached["splits"] if cached else make_splits(photos))["dev"]
    for k in keys:
        raw = load_photo(by[k], clean=False)
        yield k, raw.rgb, raw.label == 1, load_photo(by[k]).label == 1


class Methods:
    """The segmenters of the tables: ``model`` (the network), ``rules``, and optionally masks read from a folder."""

    def __init__(self, model, other: str | None, other_name: str):
        self.model, self.other, self.other_name = model, Path(other) if other else None, other_name
        self.names = ["model", "rules"] + ([other_name] if other else [])

    def masks(self, rgb: np.ndarray, key: str | None) -> dict:
        out = {"model": segment_skin(rgb, model=self.model).mask, "rules": segment_skin(rgb, method="rules").mask}
        if self.other is not None:
            p = self.other / f"{key}.png"
            out[self.other_name] = read_mask(p) if p.is_file() else None
        return out


def photo_rows(items, methods: Methods) -> list[dict]:
    rows = []
    for key, rgb, raw, clean in items:
        ms = methods.masks(rgb, key)
        row = {"photo": key, "dataset": key.split("/")[0]}
        for labels, truth in (("raw", raw), ("clean", clean)):
            ita, tone = true_skin_tone(rgb, truth)
            row[labels] = {"ita_deg": ita, "tone": tone}
            for m, mask in ms.items():
                if mask is not None:
                    e = evaluate_masks(mask, truth)
                    row[labels][m] = [e["tp"], e["fp"], e["fn"], e["tn"], e["f1"]]
        rows.append(row)
    return rows


def group_table(rows: list[dict], labels: str, names: list[str]) -> dict:
    sel = {"all": rows}
    for ds in sorted({r["dataset"] for r in rows}):
        sel[ds] = [r for r in rows if r["dataset"] == ds]
    sel["darker (ITA < 28)"] = [r for r in rows if r[labels]["ita_deg"] < DARKER]
    sel["lighter (ITA >= 28)"] = [r for r in rows if r[labels]["ita_deg"] >= DARKER]
    for tone in ITA_CATEGORIES:
        sel[f"ITA {tone}"] = [r for r in rows if r[labels]["tone"] == tone]
    for ds in sorted({r["dataset"] for r in rows}):
        sel[f"{ds} darker"] = [r for r in rows if r["dataset"] == ds and r[labels]["ita_deg"] < DARKER]
    out = {}
    for g, rs in sel.items():
        if not rs:
            continue
        out[g] = {"n_photos": len(rs)}
        for m in names:
            have = [r[labels][m] for r in rs if m in r[labels]]
            if not have:
                continue
            mm = metrics_from_counts(*np.sum([c[:4] for c in have], axis=0).tolist())
            out[g][m] = {"mean_f1": float(np.mean([c[4] for c in have])), "pooled_f1": mm["f1"],
                         "pooled_iou": mm["iou"], "n": len(have)}
    return out


def print_groups(title: str, groups: dict, names: list[str]) -> None:
    print(f"\n### {title}\n")
    print("| group | photos | " + " | ".join(f"{m}: mean F1 / pooled F1 / IoU" for m in names) + " |")
    print("|---|---|" + "---|" * len(names))
    for g, v in groups.items():
        cells = [f"{v[m]['mean_f1']:.3f} / {v[m]['pooled_f1']:.3f} / {v[m]['pooled_iou']:.3f}" if m in v else "-"
                 for m in names]
        print(f"| {g} | {v['n_photos']} | " + " | ".join(cells) + " |", flush=True)


def scenes_table(methods: Methods, n: int = 140) -> dict:
    rows = []
    for s in range(n):
        rgb, truth, info = plain_scene(s)
        ms = methods.masks(rgb, f"scenes/{s}")
        rows.append({**info, **{m: evaluate_masks(v, truth)["f1"] for m, v in ms.items() if v is not None}})
    groups = {"all": rows}
    groups.update({f"exposure x{e}": [r for r in rows if r["exposure"] == e] for e in PLAIN_EXPOSURES})
    groups.update({f"melanin {m}": [r for r in rows if r["melanin"] == m] for m in PLAIN_MELANIN})
    groups.update({"no hair": [r for r in rows if not r["hair"]], "hair band": [r for r in rows if r["hair"]]})
    names = [m for m in methods.names if m in rows[0]]
    out = {}
    print("\n### plain scenes (F1: mean / worst; scenes worse than the rules by more than 0.005)\n")
    print("| group | scenes | " + " | ".join(names) + " | " + " | ".join(f"{m} worse" for m in names if m != "rules")
          + " |")
    print("|---|---|" + "---|" * (2 * len(names) - 1))
    for g, sel in groups.items():
        out[g] = {m: [float(np.mean([r[m] for r in sel])), float(np.min([r[m] for r in sel]))] for m in names}
        worse = {m: sum(r[m] < r["rules"] - 0.005 for r in sel) for m in names if m != "rules"}
        out[g]["worse_than_rules"] = worse
        print(f"| {g} | {len(sel)} | " + " | ".join(f"{out[g][m][0]:.3f} / {out[g][m][1]:.3f}" for m in names) + " | "
              + " | ".join(str(v) for v in worse.values()) + " |", flush=True)
    return out


def papules_table(methods: Methods, data) -> dict:
    tot = {}
    for i, (key, rgb, raw, _) in enumerate(photo_sets(data, "val", None)):
        les, core = render_papules(rgb, raw, i)
        if not core.any():
            continue
        before, after = methods.masks(rgb, key), methods.masks(les, f"papules/{key}")
        for m in after:
            if after[m] is None or before[m] is None:
                continue
            t = tot.setdefault(m, [0, 0, 0, 0, 0])
            t[0] += int((core & after[m]).sum())
            t[1] += int(core.sum())
            t[2] += int((core & before[m] & after[m]).sum())
            t[3] += int((core & before[m]).sum())
            t[4] += 1
    out = {m: {"kept": v[0] / max(v[1], 1), "kept_where_the_mask_had_it": v[2] / max(v[3], 1), "lesion_pixels": v[1],
               "photos": v[4]} for m, v in tot.items()}
    print("\n### papules and pustules rendered into the val photos\n")
    print("| method | photos | lesion pixels | kept in the mask | kept where the mask without lesions had them |")
    print("|---|---|---|---|---|")
    for m, v in out.items():
        print(f"| {m} | {v['photos']} | {v['lesion_pixels']} | {v['kept']:.4f} | {v['kept_where_the_mask_had_it']:.4f} |")
    return out


def closeup(rgb: np.ndarray, truth: np.ndarray, size=(3400, 3000)):
    """The face of a labelled photo filling a ``size`` (H, W) frame: bicubic, JPEG quality 92 round trip."""
    ys, xs = np.nonzero(truth)
    cy, cx = int(np.median(ys)), int(np.median(xs))
    hh = int((ys.max() - ys.min()) * 0.55)
    hw = int(hh * size[1] / size[0])
    y0, x0 = max(0, cy - hh // 2), max(0, cx - hw // 2)
    crop, t = rgb[y0:y0 + hh, x0:x0 + hw], truth[y0:y0 + hh, x0:x0 + hw]
    big = cv2.resize(crop, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)
    _, buf = cv2.imencode(".jpg", np.ascontiguousarray(big[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 92])
    big = np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])
    return big, cv2.resize(t.view(np.uint8), (size[1], size[0]), interpolation=cv2.INTER_NEAREST) > 0


def closeups_table(methods: Methods, data, n: int = 10) -> dict:
    sfa = [x for x in photo_sets(data, "val", None) if x[0].startswith("coco-sfa/")][::11][:n]
    rows = []
    for i, (key, rgb, raw, _) in enumerate(sfa):
        big, bt = closeup(rgb, raw)
        les, core = render_papules(big, bt, 900 + i, n=25)
        row = {"photo": key}
        for m in ("model", "rules"):
            mask = segment_skin(les, model=methods.model).mask if m == "model" else segment_skin(les, method="rules").mask
            row[m] = {"f1": evaluate_masks(mask, bt)["f1"], "kept": float((mask & core).sum() / max(core.sum(), 1))}
        rows.append(row)
    print("\n### close-ups (3000 x 3400, 25 papules each)\n")
    print("| photo | model F1 | model lesions kept | rules F1 | rules lesions kept |")
    print("|---|---|---|---|---|")
    for r in rows + [{"photo": "mean", **{m: {k: float(np.mean([x[m][k] for x in rows])) for k in ("f1", "kept")}
                                          for m in ("model", "rules")}}]:
        print(f"| {r['photo']} | {r['model']['f1']:.3f} | {r['model']['kept']:.4f} | {r['rules']['f1']:.3f} | "
              f"{r['rules']['kept']:.4f} |")
    return {"rows": rows}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", help="folder of labelled photos (needed for the photo tables, --papules, --closeups)")
    ap.add_argument("--split", choices=("val", "dev", "none"), default="val")
    ap.add_argument("--splits-cache", help="splits JSON of train-segmenter (dev split)")
    ap.add_argument("--model", help="ONNX network (default: the shipped one)")
    ap.add_argument("--other-masks", help="masks of a third segmenter (module documentation)")
    ap.add_argument("--other-name", default="other")
    ap.add_argument("--scenes", action="store_true", help="also the plain scenes")
    ap.add_argument("--papules", action="store_true", help="also the rendered papules")
    ap.add_argument("--closeups", action="store_true", help="also the close-ups")
    ap.add_argument("--json", help="also write the tables (and per-photo rows) here")
    a = ap.parse_args(argv)
    cv2.setNumThreads(1)
    if (a.papules or a.closeups or a.split != "none") and not a.data:
        sys.exit("the photo tables, --papules and --closeups need --data")
    model = load_model(a.model)
    methods = Methods(model, a.other_masks, a.other_name)
    res = {"model": os.fspath(model.path), "model_sha256": model.sha256}
    t0 = time.time()
    if a.split != "none":
        rows = photo_rows(photo_sets(a.data, a.split, a.splits_cache), methods)
        res["rows"] = rows
        for labels, title in (("raw", "as labelled"), ("clean", "cleaned labels (lips, specks)")):
            res[labels] = group_table(rows, labels, methods.names)
            print_groups(f"{a.split}, {title} ({len(rows)} photos)", res[labels], methods.names)
    if a.scenes:
        res["scenes"] = scenes_table(methods)
    if a.papules:
        res["papules"] = papules_table(methods, a.data)
    if a.closeups:
        res["closeups"] = closeups_table(methods, a.data)
    print(f"\n({time.time() - t0:.0f} s)")
    if a.json:
        write_json(a.json, res)  # atomic; NaN (the ITA of a photo without true skin) -> null


if __name__ == "__main__":
    main()

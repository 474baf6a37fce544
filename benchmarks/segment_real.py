"""Skin segmentation on real labelled photographs, plain scenes and rendered papules, beside the rules baseline.

    python benchmarks/segment_real.py --data DIR                 # the val folders (as labelled and with the clean-up)
    python benchmarks/segment_real.py --data DIR --split dev --splits-cache splits.json
    python benchmarks/segment_real.py --scenes --papules --data DIR

``--data``: the folder ``skinimg train-segmenter --data`` reads (``docs/segmentation.md``: the SFA and abdomen
datasets of ``MRE-Lab-UMD/abd-skin-segmentation`` commit ``ee7b5f3``, exported with ``git archive``; research photos,
never committed).  Tables:

* val (or dev): per group (all, each dataset, each ITA class of the true skin, darker = ITA < 28 deg, lighter) the
  mean of the photos' F1, the pixel-pooled F1 and IoU of the shipped network and of the rules baseline
  (``skinimg.train.score_photos``); with the labels as published and with the label clean-up (lips removed);
* ``--scenes``: the 140 plain scenes of ``skinimg.phantom.plain_scene`` (seeds 0-139: 7 tones x 2 haemoglobin x 5
  exposures x without / with a hair band): mean and worst F1 per exposure, tone and hair, and how many scenes the
  network segments worse than the rules (F1 lower by more than 0.005);
* ``--papules``: red papules and pustules rendered into every val photo (``skinimg.phantom.render_papules``, 12 per
  photo, seed = the photo's index): the share of lesion-core pixels in the mask, overall and where the photo's mask
  without lesions had them.

Deterministic.  About 10 minutes on one core for the val table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from skinimg.phantom import PLAIN_EXPOSURES, PLAIN_MELANIN, plain_scene, render_papules
from skinimg.segment import evaluate_masks, load_model, segment_skin
from skinimg.train import score_photos
from skinimg.train.segdata import find_photos, load_photo, make_splits


def photo_sets(data, split: str, splits_cache: str | None):
    """(as labelled, cleaned) lists of ``(key, rgb, truth)`` of the val folders or the development split."""
    photos = find_photos(data)
    by = {p.key: p for p in photos}
    if split == "val":
        keys = [p.key for p in photos if p.folder == "val"]
    else:
        cached = json.loads(Path(splits_cache).read_text()) if splits_cache and Path(splits_cache).is_file() else None
        keys = (cached["splits"] if cached else make_splits(photos))["dev"]
    raw, clean = [], []
    for k in keys:
        r = load_photo(by[k], clean=False)
        raw.append((k, r.rgb, r.label == 1))
        clean.append((k, r.rgb, load_photo(by[k]).label == 1))
    return raw, clean


def print_groups(title: str, groups: dict) -> None:
    print(f"\n### {title}\n")
    print("| group | photos | model mean F1 | model pooled F1 | model IoU | rules mean F1 | rules pooled F1 | rules IoU |")
    print("|---|---|---|---|---|---|---|---|")
    for g, v in groups.items():
        print(f"| {g} | {v['n_photos']} | {v['mean_f1']:.3f} | {v['pooled_f1']:.3f} | {v['pooled_iou']:.3f} | "
              f"{v['rules_mean_f1']:.3f} | {v['rules_pooled_f1']:.3f} | {v['rules_pooled_iou']:.3f} |")


def scenes_table(model, n: int = 140) -> dict:
    rows = []
    for s in range(n):
        rgb, truth, info = plain_scene(s)
        f = {m: evaluate_masks(segment_skin(rgb, method=m, model=model if m == "model" else None).mask, truth)["f1"]
             for m in ("model", "rules")}
        rows.append({**info, **f})
    groups = {"all": rows}
    groups.update({f"exposure x{e}": [r for r in rows if r["exposure"] == e] for e in PLAIN_EXPOSURES})
    groups.update({f"melanin {m}": [r for r in rows if r["melanin"] == m] for m in PLAIN_MELANIN})
    groups.update({"no hair": [r for r in rows if not r["hair"]], "hair band": [r for r in rows if r["hair"]]})
    out = {}
    print("\n### plain scenes (F1: mean / worst)\n")
    print("| group | scenes | model | rules | model worse than rules |")
    print("|---|---|---|---|---|")
    for g, sel in groups.items():
        worse = sum(r["model"] < r["rules"] - 0.005 for r in sel)
        out[g] = {m: [float(np.mean([r[m] for r in sel])), float(np.min([r[m] for r in sel]))] for m in ("model", "rules")}
        out[g]["worse_than_rules"] = worse
        print(f"| {g} | {len(sel)} | {out[g]['model'][0]:.3f} / {out[g]['model'][1]:.3f} | "
              f"{out[g]['rules'][0]:.3f} / {out[g]['rules'][1]:.3f} | {worse} |")
    return out


def papules_table(model, items) -> dict:
    tot = {m: [0, 0, 0, 0] for m in ("model", "rules")}
    for i, (key, rgb, truth) in enumerate(items):
        les, core = render_papules(rgb, truth, i)
        if not core.any():
            continue
        for m in tot:
            kw = {"model": model} if m == "model" else {"method": "rules"}
            before, after = segment_skin(rgb, **kw).mask, segment_skin(les, **kw).mask
            tot[m][0] += int((core & after).sum())
            tot[m][1] += int(core.sum())
            tot[m][2] += int((core & before & after).sum())
            tot[m][3] += int((core & before).sum())
    out = {m: {"kept": v[0] / max(v[1], 1), "kept_where_the_mask_had_it": v[2] / max(v[3], 1), "lesion_pixels": v[1]}
           for m, v in tot.items()}
    print("\n### papules and pustules rendered into the photos\n")
    print("| method | lesion pixels | kept in the mask | kept where the mask without lesions had them |")
    print("|---|---|---|---|")
    for m, v in out.items():
        print(f"| {m} | {v['lesion_pixels']} | {v['kept']:.4f} | {v['kept_where_the_mask_had_it']:.4f} |")
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", help="folder of labelled photos (needed for the photo tables and --papules)")
    ap.add_argument("--split", choices=("val", "dev"), default="val")
    ap.add_argument("--splits-cache", help="splits JSON of train-segmenter (dev split)")
    ap.add_argument("--scenes", action="store_true", help="also the plain scenes")
    ap.add_argument("--papules", action="store_true", help="also the rendered papules")
    ap.add_argument("--json", help="also write the tables here")
    a = ap.parse_args(argv)
    model = load_model()
    res = {"model_sha256": model.sha256}
    t0 = time.time()
    if a.data:
        raw, clean = photo_sets(a.data, a.split, a.splits_cache)
        res["as_labelled"] = score_photos(raw, model=model)["groups"]
        print_groups(f"{a.split}, as labelled ({len(raw)} photos)", res["as_labelled"])
        res["cleaned"] = score_photos(clean, model=model)["groups"]
        print_groups(f"{a.split}, cleaned labels (lips removed)", res["cleaned"])
        if a.papules:
            res["papules"] = papules_table(model, raw)
    elif a.papules:
        sys.exit("--papules needs --data")
    if a.scenes:
        res["scenes"] = scenes_table(model)
    print(f"\n({time.time() - t0:.0f} s)")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()

"""Training the skin network on real labelled photos (``skinimg train-segmenter``).

Data: a folder of labelled photos (:mod:`skinimg.train.segdata`; the SFA and abdomen datasets of the
``MRE-Lab-UMD/abd-skin-segmentation`` repository, ``docs/segmentation.md``) and, for the flat scenes of the
augmentation, the UCI Skin Segmentation pixels (Bhatt and Dhall 2009, DOI 10.24432/C5T30C, CC BY 4.0).  The photos
are only read: nothing of them is written but the trained network and its scores.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from .. import __version__
from ..color import ITA_CATEGORIES
from ..errors import SkinImgError
from ..io import models_dir, reason_text, write_json
from ..segment import (MODEL_FILE, SegmentParams, clear_model_cache, evaluate_masks, load_model, metrics_from_counts,
                       segment_skin, true_skin_tone)
from .network import WIDTHS, Sampler, export_onnx, predict_torch, require_torch, train_network
from .segdata import DEV_BANDS, find_photos, load_photo, make_splits

__all__ = ["UCI_CANDIDATES", "DATASET_TERMS", "load_uci", "uci_split", "train_segmenter", "score_photos", "score_network"]

#: Default UCI Skin Segmentation file (columns B G R label; 1 = skin, 2 = non-skin).
#: Looked up in ``../shared/data/uci-skin/`` beside the repository (or one level higher, for a git worktree).
_REPO = Path(__file__).resolve().parents[2]
UCI_CANDIDATES = tuple(base / "shared" / "data" / "uci-skin" / "Skin_NonSkin.txt"
                       for base in (_REPO.parent, _REPO.parent.parent))

#: What is known of the datasets' sources and terms (recorded in the provenance; others: "see the dataset's terms").
DATASET_TERMS = {
    "coco-sfa": {"name": "SFA (Casati, Moraes and Rodrigues 2013, SFA: a human skin image database based on FERET and "
                         "AR facial images, IX Workshop de Visao Computacional), as kept in MRE-Lab-UMD/"
                         "abd-skin-segmentation commit ee7b5f3 (coco-sfa/)",
                 "terms": "research use; photos from the FERET (NIST) and AR (CVC, Martinez and Benavente 1998) face "
                          "databases, whose terms restrict use to research: never redistributed, only the trained "
                          "parameters are"},
    "coco-abdomen": {"name": "Abdominal skin dataset (Topiwala et al. 2019, Adaptation and evaluation of deep learning "
                             "techniques for skin segmentation on novel abdominal dataset, IEEE BIBE, "
                             "DOI 10.1109/BIBE.2019.00146), MRE-Lab-UMD/abd-skin-segmentation commit ee7b5f3 "
                             "(coco-abdomen/)",
                     "terms": "research use; photos collected from web image search (copyright of their owners); the "
                              "repository's code is Apache-2.0: never redistributed, only the trained parameters are"},
}
_UCI_TERMS = "UCI Skin Segmentation (Bhatt and Dhall 2009, DOI 10.24432/C5T30C), CC BY 4.0"
#: share of real crops whose background becomes a skin-coloured texture: off by default (an experiment that lost
#: skin on plain scenes and on real photos, docs/decisions.md)
BACKGROUND_TEXTURES = 0.0
FLAT_SCENES = 0.14  # share of crops that are flat scenes
#: share of the flat scenes' skin regions drawn as bands across the frame: off by default (an experiment, like the
#: background textures: docs/decisions.md)
FLAT_BANDS = 0.0


def augmentation(p_background: float = BACKGROUND_TEXTURES, p_flat: float = FLAT_SCENES,
                 p_band: float = FLAT_BANDS) -> str:
    """The augmentation of a training run, in words, for the provenance (``p_background``: the share of real crops
    whose background is replaced by a skin-coloured procedural texture, :mod:`skinimg.train.textures`)."""
    extra = (f"{100 * p_background:.0f} % of real crops: the background (non-skin connected to the crop's border) replaced "
             "by a procedural texture of a real skin colour (wood grain, straw, woven fabric, mottled paper), kept "
             "as not skin; " if p_background > 0 else "")
    if p_band == 0:
        flat = _FLAT_OLD.replace("14 %", f"{100 * p_flat:.0f} %")
    else:
        flat = (f"{100 * p_flat:.0f} % flat scenes (skin regions of real skin colours, UCI skin pixels among them, any tone, "
                f"{100 * p_band:.0f} % of them bands across the frame shaded like a cylinder, the others blobs, on "
                "flat backgrounds, with hair bands)")
    return AUGMENTATION.replace("20 % of real crops: a textured", extra + "20 % of real crops: a textured").replace(
        _FLAT_OLD, flat)


_FLAT_OLD = ("14 % flat scenes (skin blobs of real skin colours, UCI skin pixels among them, any tone, on flat "
             "backgrounds, with hair bands)")
AUGMENTATION = (
    "random scale (x0.45-x4.5 of the working scale; close-ups centred on skin), rotation +-15 deg, flips, 8 % quarter "
    "turns; 60 % melanin added to the labelled skin in linear RGB (optical density k x (0.69, 1.00, 1.75), "
    "k 0.05-0.9; 15 % of those k -0.2-0: lighter; Jacques 2013 melanosome spectrum, DOI 10.1088/0031-9155/58/11/R37); "
    "20 % of real crops: a textured non-skin area recoloured to a real skin colour, kept as not skin (skin-coloured "
    "fabric and hair); 35 % rendered lesions kept as skin (red papules with haloes and pustule heads: oxy-haemoglobin density "
    "(0.08, 1.00, 0.85); pigmented spots; depigmented patches; diffuse erythema); exposure x0.55-x1.6 and white "
    "balance (R/B gains exp(+-0.3)) in linear light; tone curves (gamma 0.75-1.3), blur, downscale-upscale, noise, "
    "JPEG quality 25-95; 12 % mosaics of 4-16 whole photos (several people at small scale); " + _FLAT_OLD)


def load_uci(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """UCI Skin Segmentation pixels: ``(rgb uint8 (N, 3) RGB order, is_skin bool (N,))``.

    The file's columns are ``B G R label`` (label 1 = skin, 2 = non-skin).
    """
    p = Path(path)
    try:
        raw = np.loadtxt(p, dtype=np.int64, ndmin=2)
    except FileNotFoundError:
        raise SkinImgError("UCI skin data file not found", os.fspath(p)) from None
    except (OSError, ValueError) as exc:
        raise SkinImgError(f"cannot read the UCI skin data ({reason_text(exc, p)})", os.fspath(p)) from None
    if raw.shape[1] != 4 or raw[:, :3].min() < 0 or raw[:, :3].max() > 255 or not np.isin(raw[:, 3], (1, 2)).all():
        raise SkinImgError("UCI skin data must have 4 columns B G R label (0-255, label 1 or 2)", os.fspath(p))
    rgb = raw[:, 2::-1].astype(np.uint8)
    return rgb, raw[:, 3] == 1


def uci_split(n_rows: int, is_skin: np.ndarray, *, test_fraction: float = 0.2, seed: int = 0) -> np.ndarray:
    """Stratified random held-out mask (bool (n_rows,)): ``test_fraction`` of each class, ``default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    test = np.zeros(n_rows, dtype=bool)
    for cls in (True, False):
        idx = np.flatnonzero(is_skin == cls)
        rng.shuffle(idx)
        test[idx[: int(round(test_fraction * len(idx)))]] = True
    return test


_ITA_DARKER = 28.0  # ITA below this: tan, brown and dark (Del Bino and Bernerd 2013)


def score_photos(items: list, *, model=None, params: SegmentParams | None = None, rules: bool = True,
                 check: bool = False) -> dict:
    """Scores of the network (and the rules baseline) on labelled photos.

    ``items``: ``(key, rgb uint8, truth bool)`` tuples.  Returns ``{"rows": [...], "groups": {...}}``: per photo
    F1 and IoU (and the rules', the mirror agreement with ``check``), the ITA of its true skin and its class; per
    group (``all``, each dataset, each ITA class, ``darker`` = ITA < 28 deg, ``lighter``) the mean of the photos' F1
    and the pixel-pooled F1 and IoU.
    """
    rows = []
    for key, rgb, truth in items:
        res = segment_skin(rgb, model=model, params=params, check=check)
        m = evaluate_masks(res.mask, truth)
        ita, tone = true_skin_tone(rgb, truth)
        row = {"photo": key, "dataset": key.split("/")[0], "ita_deg": ita, "tone": tone, "f1": m["f1"], "iou": m["iou"],
               "counts": [m["tp"], m["fp"], m["fn"], m["tn"]], "agreement": res.agreement}
        if rules:
            mr = evaluate_masks(segment_skin(rgb, method="rules", params=params).mask, truth)
            row.update(rules_f1=mr["f1"], rules_iou=mr["iou"], rules_counts=[mr["tp"], mr["fp"], mr["fn"], mr["tn"]])
        rows.append(row)
    groups = {"all": rows}
    for ds in sorted({r["dataset"] for r in rows}):
        groups[ds] = [r for r in rows if r["dataset"] == ds]
    for tone in (*ITA_CATEGORIES, "unknown"):
        groups[f"ITA {tone}"] = [r for r in rows if r["tone"] == tone]
    groups["darker (ITA < 28)"] = [r for r in rows if r["ita_deg"] < _ITA_DARKER]
    groups["lighter (ITA >= 28)"] = [r for r in rows if r["ita_deg"] >= _ITA_DARKER]
    out = {}
    for g, sel in groups.items():
        if not sel:
            continue
        mm = metrics_from_counts(*np.sum([r["counts"] for r in sel], axis=0).tolist())
        out[g] = {"n_photos": len(sel), "mean_f1": float(np.mean([r["f1"] for r in sel])), "pooled_f1": mm["f1"],
                  "pooled_iou": mm["iou"]}
        if rules:
            mr = metrics_from_counts(*np.sum([r["rules_counts"] for r in sel], axis=0).tolist())
            out[g].update(rules_mean_f1=float(np.mean([r["rules_f1"] for r in sel])), rules_pooled_f1=mr["f1"],
                          rules_pooled_iou=mr["iou"])
    return {"rows": rows, "groups": out}


def score_network(net, by_key: dict, splits: dict, loaded: dict | None = None) -> dict:
    """The scores a trained network is shipped with: :func:`score_photos` on the development split (with the mirror
    check) and on the val folders as labelled and with the label clean-up; pixel counts dropped from the rows.

    ``by_key``: :func:`~skinimg.train.segdata.find_photos`' photos by key; ``splits``: ``{"dev": [...], "val":
    [...]}``; ``loaded``: already loaded (cleaned) development photos by key.  Returns ``{part: {"rows", "groups"}}``.
    """
    loaded = loaded or {}
    dev = [(k, lp.rgb, lp.label == 1) for k in splits["dev"] for lp in [loaded.get(k) or load_photo(by_key[k])]]
    metrics = {"development": score_photos(dev, model=net, check=True)}
    val_raw, val_clean = [], []
    for k in splits["val"]:
        raw = load_photo(by_key[k], clean=False)
        val_raw.append((k, raw.rgb, raw.label == 1))
        val_clean.append((k, raw.rgb, load_photo(by_key[k]).label == 1))
    metrics["val_as_labelled"] = score_photos(val_raw, model=net)
    metrics["val_cleaned_labels"] = score_photos(val_clean, model=net)
    for part in metrics.values():
        for r in part["rows"]:
            r.pop("counts", None)
            r.pop("rules_counts", None)
    return metrics


def _dataset_digest(photos) -> str:
    h = hashlib.sha256()
    for p in photos:
        h.update(p.key.encode())
        h.update(hashlib.sha256(p.image.read_bytes()).digest())
        h.update(hashlib.sha256(p.mask.read_bytes()).digest())
    return h.hexdigest()


def train_segmenter(data: str | os.PathLike, out: str | os.PathLike | None = None, *, uci: str | os.PathLike | None = None,
                    sources: tuple[str, ...] | None = None, iters: int = 1800, batch: int = 12, crop: int = 224,
                    lr: float = 3e-3, seed: int = 0, threads: int = 2, workers: int = 1, work_side: int = 320,
                    splits_cache: str | os.PathLike | None = None, checkpoint: str | os.PathLike | None = None,
                    eval_every: int = 300, stop_after: int | None = None, date: str | None = None,
                    p_background: float = BACKGROUND_TEXTURES, p_flat: float = FLAT_SCENES,
                    p_band: float = FLAT_BANDS,
                    progress=None) -> dict:
    """Train the skin network on the labelled photos under ``data``; write ``skin_unet.onnx`` and ``skin_unet.json``
    (provenance: data and their terms, splits, augmentation, training, metrics, SHA-256) into ``out`` (default
    ``models/``).  The new network replaces the previous one only when it has been exported and scored, together
    with its provenance (until then it is ``out/.skin_unet.onnx.new``).

    Splits and label clean-up: :mod:`skinimg.train.segdata`.  ``sources``: the datasets to train on (default all;
    leave-one-dataset-out runs name one); every dataset's development and val photos are scored.  The network is
    chosen by nothing but this procedure (no checkpoint selection); its development score is logged every 300
    iterations (``eval_every``).  ``checkpoint``: a file of the training state, written at every development score
    and resumed from when it exists (:func:`~skinimg.train.network.train_network`).  ``stop_after``: end the run
    after this iteration of the ``iters`` schedule (with a checkpoint at or past it: export that checkpoint as it is);
    the provenance records both numbers.  ``splits_cache``: a JSON file that keeps the splits (finding near
    duplicates takes minutes); reused when it names the same photos (SHA-256 of every photo and mask), rewritten
    otherwise.  Scores: :func:`score_photos` with the library's own :func:`skinimg.segment.segment_skin` on the
    exported file, beside the rules baseline, on the development split and on the val folders (as labelled, and with
    the label clean-up).  Seeded (``seed``); PyTorch's floating-point results may differ between CPUs.

    Needs PyTorch (``pip install 'skinimg[train]'``).
    """
    say = progress or (lambda msg: None)
    torch = require_torch()
    t_start = time.time()
    photos = find_photos(data)
    by_key = {p.key: p for p in photos}
    names = sorted({p.dataset for p in photos})
    digests = {ds: _dataset_digest([p for p in photos if p.dataset == ds]) for ds in names}
    say(f"{len(photos)} labelled photos in {len(names)} dataset(s)")
    splits = None
    if splits_cache is not None and Path(splits_cache).is_file():
        cached = json.loads(Path(splits_cache).read_text(encoding="utf-8"))
        if cached.get("digests") == digests:
            splits = cached["splits"]
            say(f"splits from {splits_cache}")
    if splits is None:
        say("finding the splits (near duplicates of val photos)")
        splits = make_splits(photos, say)
        if splits_cache is not None:
            write_json(Path(splits_cache), {"digests": digests, "splits": splits})
    sources = tuple(sources) if sources else tuple(names)
    unknown = [s for s in sources if s not in names]
    if unknown:
        raise SkinImgError(f"no dataset named {', '.join(unknown)} in the data folder (found {', '.join(names)})")
    train_keys = [k for k in splits["train"] if k.split("/")[0] in sources]
    loaded = {}
    info = {"lips_removed_photos": 0, "lips_pixels": 0, "speck_pixels": 0}
    for k in train_keys + splits["dev"]:
        lp = load_photo(by_key[k])
        loaded[k] = lp
        info["lips_removed_photos"] += lp.info["lips"] > 0
        info["lips_pixels"] += lp.info["lips"]
        info["speck_pixels"] += lp.info["specks"]
    uci_path = Path(uci) if uci is not None else next((p for p in UCI_CANDIDATES if p.is_file()), None)
    uci_pools = None
    if uci_path is not None:
        rgb_u, skin_u = load_uci(uci_path)
        uci_pools = (np.unique(rgb_u[skin_u], axis=0), np.unique(rgb_u[~skin_u], axis=0))
    say(f"training on {len(train_keys)} photos of {', '.join(sources)}; {len(splits['dev'])} development photos")
    sampler = Sampler(loaded, train_keys, crop=crop, work_side=work_side, seed=seed, uci=uci_pools,
                      p_background=p_background, p_flat=p_flat, p_band=p_band,
                      ds_weights={"coco-sfa": 0.55, "coco-abdomen": 0.45})
    dev_keys = [k for k in splits["dev"] if k.split("/")[0] in sources]

    def dev_score(model):
        f = {}
        for k in dev_keys:
            lp = loaded[k]
            f[k] = evaluate_masks(predict_torch(model, lp.rgb, work_side) >= 0.5, lp.label == 1)["f1"]
        by = {ds: float(np.mean([v for k, v in f.items() if k.startswith(ds + "/")])) for ds in sources}
        return float(np.mean(list(f.values()))), by

    t0 = time.time()
    segments: list = []
    model, history = train_network(sampler, iters=iters, batch=batch, lr=lr, seed=seed, threads=threads,
                                   workers=workers, dev=dev_score, eval_every=eval_every, checkpoint=checkpoint,
                                   stop_after=stop_after, settings={"background_textures": p_background, "flat_scenes": p_flat,
                                                                     "flat_bands": p_band},
                                   segments=segments, say=say)
    seconds = time.time() - t0
    out = Path(out) if out is not None else models_dir()
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / MODEL_FILE
    json_path = onnx_path.with_suffix(".json")
    # exported and scored beside the previous network, moved into place with its provenance at the end: a failure on
    # the way (export, float16 rewrite, scoring) leaves the previous network and its provenance as they were
    new_path = out / f".{MODEL_FILE}.new"
    diff, half = export_onnx(model, new_path)
    say(f"exported {onnx_path} (OpenCV vs PyTorch: max |difference| {diff:.1e}; float16 weights: {half:.1e})")
    digest = hashlib.sha256(new_path.read_bytes()).hexdigest()
    clear_model_cache()
    net = load_model(new_path)
    say("scoring the development split and the val folders")
    metrics = score_network(net, by_key, splits, loaded)
    if date is None:
        sde = os.environ.get("SOURCE_DATE_EPOCH")
        stamp = _dt.datetime.fromtimestamp(int(sde), _dt.timezone.utc) if sde else _dt.datetime.now(_dt.timezone.utc)
        date = stamp.date().isoformat()
    data_doc = {ds: {**DATASET_TERMS.get(ds, {"name": ds, "terms": "see the dataset's own terms"}),
                     "photos": sum(p.dataset == ds for p in photos), "sha256": digests[ds]} for ds in names}
    if uci_path is not None:
        data_doc["uci"] = {"name": _UCI_TERMS, "use": "skin and background colours of the flat scenes",
                           "file": uci_path.name, "sha256": hashlib.sha256(uci_path.read_bytes()).hexdigest()}
    prov = {
        "model": "small U-Net (Ronneberger et al. 2015, DOI 10.1007/978-3-319-24574-4_28), stride-2 stem, five levels "
                 f"of widths {list(WIDTHS)}, full-resolution head (skinimg.train.network)",
        "format": {"file": MODEL_FILE, "sha256": digest, "onnx_opset": 17, "input": "float32 (1, 3, H, W), RGB "
                   "(v - 127.5) / 127.5, H and W multiples of 32", "output": "float32 (1, 1, H, W) log-odds of skin",
                   "input_multiple": 32, "opencv_vs_torch_max_abs_diff": diff, "weights": "float16, each followed by "
                   "a Cast to float32 (half the file size)", "float16_weights_max_abs_logit_change": half},
        "inference": {"work_side": work_side, "threshold": SegmentParams().threshold,
                      "neutral_chroma": SegmentParams().neutral_chroma, "see": "skinimg.segment (SegmentParams); the "
                      "metrics are of these settings"},
        "data": data_doc,
        "splits": {"rule": f"val = the val folders; development = train-folder photos of rank {list(DEV_BANDS)} in "
                           "id order plus their near duplicates, 5-rank buffers left out; train = the rest, minus "
                           "duplicates of val photos (skinimg.train.segdata)",
                   "reserved": "folders named test_* are never read",
                   "train_sources": list(sources), "n_train": len(train_keys), "n_development": len(splits["dev"]),
                   "n_val": len(splits["val"]), "excluded": splits["excluded"],
                   "train": train_keys, "development": splits["dev"], "val": splits["val"]},
        "labels": {"clean_up": "specks < 0.3 % of the largest component removed; lips removed where found "
                               "(skinimg.train.segdata.lips_mask)", **info},
        "augmentation": augmentation(p_background, p_flat, p_band) + "".join(
            f"; from iteration {g['from_iteration']}: " + ", ".join(f"{k} {v}" for k, v in g.items() if k != "from_iteration")
            for g in segments[1:]) + ("; settings by iteration under training.settings_by_iteration" if len(segments) > 1 else ""),
        "training": {"background_textures": p_background, "flat_scenes": p_flat, "flat_bands": p_band,
                     "settings_by_iteration": segments,
                     "iterations": iters, "iterations_run": min(iters, stop_after or iters),
                     "stopped_early": bool(stop_after and stop_after < iters),
                     "checkpoint_selection": "none: the network of the last iteration run is exported",
                     "seconds_in_training": history[-1]["elapsed_s"] if history else seconds,
                     "batch": batch, "crop": crop, "lr": lr, "seed": seed, "threads": threads,
                     "seconds": seconds, "total_seconds": time.time() - t_start, "torch": torch.__version__,
                     "history": history},
        "metrics": {k: v["groups"] for k, v in metrics.items()},
        "per_photo": {k: v["rows"] for k, v in metrics.items()},
        "date": date,
        "skinimg_version": __version__,
        "command": "skinimg train-segmenter",
    }
    if json_path.is_file():
        json_path.unlink()  # the old provenance names the old file
    os.replace(new_path, onnx_path)
    write_json(json_path, prov)
    clear_model_cache()
    return prov

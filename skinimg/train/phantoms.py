"""Phantoms for training and scoring the segmenter: varied specs, per-tone metrics, where the errors are."""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from ..errors import SkinImgError
from ..phantom import BACKGROUNDS, DISTRACTORS, LABELS, PhantomSpec, render_phantom
from ..segment import SegmentParams, SkinNet, evaluate_masks, pooled_tone_metrics, segment_skin, tone_group

__all__ = ["phantom_specs", "phantom_tone_metrics", "error_budget"]

def phantom_specs(seeds: Sequence[int], *, size: tuple[int, int] = (240, 320)):
    """Deterministic varied phantom specs (one per seed) covering the whole tone range.

    Melanin log-uniform 0.003-0.45 (very light to very dark), haemoglobin log-uniform
    0.004-0.08, daylight illuminants D65 (half), D50 and D75 (the model assumes
    daylight or white-balanced photos: calibrate tungsten/fluorescent photos first), exposure 0.55-1.6, both sites, every
    background, random distractor subsets (hair always on faces), pose, noise, JPEG.
    """

    illums = ("D65", "D65", "D50", "D75")
    specs = []
    for s in seeds:
        rng = np.random.default_rng([int(s), 3])
        site = ("face", "forearm")[int(rng.integers(0, 2))]
        extra = [d for d in DISTRACTORS if rng.random() < 0.75]
        if site == "face" and "hair" not in extra:
            extra.insert(0, "hair")
        specs.append(PhantomSpec(
            melanin=float(np.exp(rng.uniform(np.log(0.003), np.log(0.45)))),
            hemoglobin=float(np.exp(rng.uniform(np.log(0.004), np.log(0.08)))),
            seed=int(s), size=tuple(size), site=site,
            background=BACKGROUNDS[int(rng.integers(0, len(BACKGROUNDS)))],
            distractors=tuple(extra), spots=int(rng.integers(0, 10)), red_patches=int(rng.integers(0, 4)),
            illuminant=illums[int(rng.integers(0, len(illums)))],
            exposure=float(rng.uniform(0.55, 1.6)),
            pose=(float(rng.uniform(-30, 30)), float(rng.uniform(-20, 20)), float(rng.uniform(-15, 15)),
                  float(rng.uniform(0.85, 1.15))),
            noise=float(rng.uniform(0.003, 0.03)),
            jpeg_quality=None if rng.random() < 0.5 else int(rng.integers(70, 96)),
        ))
    return specs


def phantom_tone_metrics(specs, *, method: str = "model", model: SkinNet | None = None,
                         params: SegmentParams | None = None, per_image: list | None = None,
                         bootstrap: int = 0, seed: int = 0) -> dict:
    """Mask precision, recall and F1 per tone group (:data:`TONE_GROUPS`) over rendered phantoms.

    Counts are pooled over the pixels of a group's images (``f1`` is the pooled Dice);
    ``min_image_f1`` is the worst single image; ``bootstrap``, ``seed``: the ``f1_ci95`` interval of
    :func:`pooled_tone_metrics`.  The held-out metrics of :func:`train_segmenter` come from here.  With
    ``per_image`` (a list), one ``(spec, phantom, result, metrics)`` tuple per phantom is appended (diagnosis).
    """

    records = []
    for spec in specs:
        ph = render_phantom(spec)
        r = segment_skin(ph.image, method=method, model=model, params=params)
        m = evaluate_masks(r.mask, ph.mask)
        if per_image is not None:
            per_image.append((spec, ph, r, m))
        records.append((tone_group(spec.melanin), m["tp"], m["fp"], m["fn"], m["tn"]))
    return pooled_tone_metrics(records, bootstrap=bootstrap, seed=seed)


def error_budget(pred: np.ndarray, truth: np.ndarray, labels: np.ndarray, *,
                 label_names: dict[int, str] | None = None, edge: float = 1.5) -> dict[str, int]:
    """Where a skin mask's errors are, in pixels (a diagnosis of :func:`evaluate_masks`'s FP and FN).

    Missed skin (``fn_*``): ``fn_beside_thin`` within one pixel (3 x 3 cross) of a thin non-skin structure,
    ``fn_edge`` other missed skin within ``edge`` pixels (Euclidean) of non-skin, ``fn_inside`` the rest.
    False skin (``fp_<label>_thin`` / ``fp_<label>``): per true label, split into thin structures (pixels
    of that label removed by a 3 x 3 cross opening of it: single hair strands, the tips of brows) and the
    rest.  The ``fn_*`` and ``fp_*`` counts add up to FN and FP.

    Parameters
    ----------
    pred, truth : ndarray, bool, (H, W)
        Predicted and true skin.
    labels : ndarray, integer, (H, W)
        True label codes (e.g. ``Phantom.labels``, :data:`skinimg.phantom.LABELS`); only read off skin.
    label_names : dict, optional
        Code -> name (default: the phantom labels); unknown codes are named by their number.
    """

    pred = np.asarray(pred, dtype=bool)
    truth = np.asarray(truth, dtype=bool)
    labels = np.asarray(labels)
    if not (pred.shape == truth.shape == labels.shape):
        raise SkinImgError(f"masks and labels differ in size: {pred.shape}, {truth.shape}, {labels.shape}")
    names = label_names if label_names is not None else {v: k for k, v in LABELS.items()}
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    thin = np.zeros(truth.shape, dtype=bool)
    for code in np.unique(labels[~truth]):
        lab = ((labels == code) & ~truth).view(np.uint8)
        thin |= lab.view(bool) & ~cv2.morphologyEx(lab, cv2.MORPH_OPEN, cross).view(bool)
    out: dict[str, int] = {}
    fn = truth & ~pred
    beside = fn & cv2.dilate(thin.view(np.uint8), cross).view(bool)
    near = cv2.distanceTransform(truth.view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE) <= edge
    out["fn_beside_thin"] = int(np.count_nonzero(beside))
    out["fn_edge"] = int(np.count_nonzero(fn & near & ~beside))
    out["fn_inside"] = int(np.count_nonzero(fn & ~near & ~beside))
    fp = pred & ~truth
    for code in np.unique(labels[fp]):
        sel = fp & (labels == code)
        name = names.get(int(code), str(int(code)))
        out[f"fp_{name}_thin"] = int(np.count_nonzero(sel & thin))
        out[f"fp_{name}"] = int(np.count_nonzero(sel & ~thin))
    return out

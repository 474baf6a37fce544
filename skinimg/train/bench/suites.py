"""The accuracy, repeatability and segmentation suites, and :func:`run_bench` (which also runs the speed suite)."""

from __future__ import annotations

import math
import os
import platform
import time
from dataclasses import replace
from typing import Callable, Sequence

import cv2
import numpy as np

from ... import __version__
from ...calibrate import calibrate_image
from ...errors import SkinImgError
from ...indices import INDEX_NAMES, UserIndexRunner, load_user_indices, measure
from ...io import discover_images, find_truth_mask, load_image, read_mask
from ...phantom import BACKGROUNDS, PhantomSpec, astronaut_skin_mask, render_phantom
from ...segment import evaluate_masks, segment_skin
from .params import _OTHER, ALL_SUITES, FACTORS, SUITES, TARGETS, UNITS, BenchParams
from .speed import run_speed
from .stats import crosstalk, pearson, repeatability_stats, spearman

__all__ = ["retake_specs", "run_accuracy", "run_repeatability", "run_segmentation", "machine_info", "run_bench"]


# ----------------------------------------------------------------------------- accuracy


def _tone(truth: dict) -> tuple[float, str]:
    ref = truth["skin_reference"]
    return float(ref["ita_deg"]), str(ref["ita_category"])


def _user_target(v: np.ndarray, col: dict, declared: str | None) -> tuple[str, str]:
    """Target chromophore of a user index: declared (``skinimg_target``), else the one it follows most (|Spearman|)."""
    if declared:
        return declared, "declared"
    sh, sm = abs(spearman(v, col["true_hemoglobin"])), abs(spearman(v, col["true_melanin"]))
    sh, sm = (sh if math.isfinite(sh) else -1.0), (sm if math.isfinite(sm) else -1.0)
    return ("hemoglobin" if sh >= sm else "melanin"), "auto"


def _collect_errors(into: dict, image: str, errors: dict) -> None:
    for name, err in errors.items():
        d = into.setdefault(name, {"n_failed": 0, "first_image": image, "first_error": err})
        d["n_failed"] += 1


def _with_user(row: dict, rgb, mask, user: UserIndexRunner | None, errors: dict, label: str) -> dict:
    """The built-ins' row with the user indices measured on the same photo and mask."""
    if user is None:
        return row
    urow, _, errs = user.measure(rgb, mask)
    _collect_errors(errors, label, errs)
    return {**row, **urow}


def run_accuracy(params: BenchParams | None = None, *, progress: Callable[[str], None] | None = None,
                 user: UserIndexRunner | None = None) -> dict:
    """Accuracy suite: index vs true chromophores on a melanin x haemoglobin phantom grid.

    Every phantom (default face scene: shading, highlights, texture, brown spots, red
    patches, sensor noise; ``params.image_size``) is measured by
    :func:`skinimg.indices.measure` on its true skin mask.

    Returns
    -------
    dict
        ``indices``: one dict per index of :data:`skinimg.indices.INDEX_NAMES` with
        ``index``, ``target``, ``spearman_hemoglobin``, ``pearson_hemoglobin``,
        ``spearman_melanin``, ``pearson_melanin``, ``crosstalk`` and the slopes of
        :func:`crosstalk`; ``images``: per-phantom truth (``true_melanin``,
        ``true_hemoglobin``, reference ``ita_deg`` and ``tone``) and measured means;
        ``ita_range``: reference ITA of the lightest and darkest phantoms; ``n_images``;
        ``index_errors``.  User indices (``user``) are measured beside the built-ins on the same
        photo and mask; their rows say ``target_source``: ``"declared"`` (``skinimg_target``) or
        ``"auto"`` (the chromophore it follows most).
    """

    p = params or BenchParams()
    names = list(INDEX_NAMES) + (user.names if user else [])
    errors: dict = {}
    images = []
    k = 0
    for i, mel in enumerate(p.melanin_levels):
        for j, hb in enumerate(p.hemoglobin_levels):
            for s in range(p.grid_seeds):
                seed = p.seed + 1000 + k
                k += 1
                ph = render_phantom(PhantomSpec(melanin=mel, hemoglobin=hb, seed=seed, size=p.image_size))
                row, _ = measure(ph.image, ph.mask, return_maps=False)
                row = _with_user(row, ph.image, ph.mask, user, errors, f"accuracy phantom seed {seed}")
                ita, tone = _tone(ph.truth)
                rec = {"melanin_level": mel, "hemoglobin_level": hb, "seed": seed,
                       "true_melanin": float(ph.truth["melanin_mean"]),
                       "true_hemoglobin": float(ph.truth["hemoglobin_mean"]),
                       "reference_ita_deg": ita, "tone": tone}
                rec.update({name: float(row[name]) for name in names})
                images.append(rec)
        if progress:
            progress(f"accuracy: melanin level {i + 1}/{len(p.melanin_levels)}")
    col = {key: np.array([r[key] for r in images], dtype=np.float64)
           for key in ("true_melanin", "true_hemoglobin", "melanin_level", "hemoglobin_level")}
    rows = []
    declared = {u.name: u.chromophore for u in user.indices} if user else {}
    for name in names:
        v = np.array([r[name] for r in images], dtype=np.float64)
        t, source = (TARGETS[name], "built-in") if name in TARGETS else _user_target(v, col, declared.get(name))
        o = _OTHER[t]
        xt = crosstalk(v, target_true=col[f"true_{t}"], other_true=col[f"true_{o}"],
                       target_level=col[f"{t}_level"], other_level=col[f"{o}_level"])
        rows.append({
            "index": name,
            "target": t,
            "target_source": source,
            "spearman_hemoglobin": spearman(v, col["true_hemoglobin"]),
            "pearson_hemoglobin": pearson(v, col["true_hemoglobin"]),
            "spearman_melanin": spearman(v, col["true_melanin"]),
            "pearson_melanin": pearson(v, col["true_melanin"]),
            **xt,
        })
    itas = [r["reference_ita_deg"] for r in images]
    return {"status": "ok", "indices": rows, "images": images, "n_images": len(images),
            "ita_range": [float(max(itas)), float(min(itas))], "index_errors": errors}


# ----------------------------------------------------------------------------- repeatability


def retake_specs(base, factor: str, n: int, params: BenchParams, seed: int) -> list:
    """``n`` retakes of the skin of ``base`` (a :class:`~skinimg.phantom.PhantomSpec`) varying ``factor``.

    Every retake has its own sensor-noise seed (same skin ``seed``).  Factors:
    ``exposure`` (gain uniform in ``params.exposure_range``), ``white_balance`` (an
    illuminant of ``params.illuminants``, cycled), ``jpeg`` (quality uniform in
    ``params.jpeg_range``), ``pose`` (shift, rotation, scale within the ``pose_*`` limits),
    ``noise`` (sensor noise only) and ``all`` (every factor at once).  Deterministic
    from ``seed``.
    """
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 77])
    h, w = base.size
    out = []
    for r in range(n):
        ch = {"noise_seed": int(seed * 1000 + r + 1)}
        if factor in ("exposure", "all"):
            ch["exposure"] = float(rng.uniform(*params.exposure_range))
        if factor in ("white_balance", "all"):
            ch["illuminant"] = params.illuminants[int(rng.integers(len(params.illuminants)))] if factor == "all" \
                else params.illuminants[r % len(params.illuminants)]
        if factor in ("jpeg", "all"):
            ch["jpeg_quality"] = int(rng.integers(params.jpeg_range[0], params.jpeg_range[1] + 1))
        if factor in ("pose", "all"):
            ch["pose"] = (float(rng.uniform(-1, 1) * params.pose_shift * w),
                          float(rng.uniform(-1, 1) * params.pose_shift * w),
                          float(rng.uniform(-1, 1) * params.pose_rotation_deg),
                          float(1.0 + rng.uniform(-1, 1) * params.pose_scale))
        if factor not in FACTORS:
            raise ValueError(f"unknown factor {factor!r}")
        out.append(replace(base, **ch))
    return out


def run_repeatability(params: BenchParams | None = None, *, progress: Callable[[str], None] | None = None,
                      user: UserIndexRunner | None = None) -> dict:
    """Repeatability suite: SEM, MDC95 and CV per index over retakes of unchanged skin.

    Every retake is rendered with a ColorChecker in the frame and measured on its true
    skin mask twice: as photographed (``condition="uncalibrated"``) and after
    :func:`skinimg.calibrate.calibrate_image` (``mode="chart"``; ``"calibrated"``).  A
    retake whose chart is not found is left out of the calibrated condition and counted.

    Returns
    -------
    dict
        ``rows``: one dict per (condition, factor, index) with the fields of
        :func:`repeatability_stats`; ``mdc``: ``{condition: {index: MDC95}}`` of factor
        ``"all"`` (the default minimal detectable change); ``calibration_failures``;
        ``n_retakes``; ``subjects``; ``index_errors`` (user indices, measured on the same photos).
    """

    p = params or BenchParams()
    names = list(INDEX_NAMES) + (user.names if user else [])
    errors: dict = {}
    values = {(c, f, n): [] for c in ("uncalibrated", "calibrated") for f in p.factors for n in names}
    failures = {f: 0 for f in p.factors}
    for si, (mel, hb) in enumerate(p.subjects):
        seed = p.seed + 2000 + si
        base = PhantomSpec(melanin=mel, hemoglobin=hb, seed=seed, size=p.image_size, chart=True)
        for fi, factor in enumerate(p.factors):
            per = {(c, n): [] for c in ("uncalibrated", "calibrated") for n in names}
            for spec in retake_specs(base, factor, p.retakes, p, seed * 10 + fi):
                ph = render_phantom(spec)
                row, _ = measure(ph.image, ph.mask, return_maps=False)
                row = _with_user(row, ph.image, ph.mask, user, errors, f"retake of subject {si + 1} ({factor})")
                for n in names:
                    per["uncalibrated", n].append(float(row[n]))
                try:
                    cal, _corr = calibrate_image(ph.image, mode="chart")
                except SkinImgError:
                    failures[factor] += 1
                    continue
                row, _ = measure(cal, ph.mask, return_maps=False)
                row = _with_user(row, cal, ph.mask, user, errors, f"calibrated retake of subject {si + 1} ({factor})")
                for n in names:
                    per["calibrated", n].append(float(row[n]))
            for (c, n), v in per.items():
                values[c, factor, n].append(v)
        if progress:
            progress(f"repeatability: subject {si + 1}/{len(p.subjects)}")
    rows = []
    mdc: dict = {}
    for (c, f, n), groups in values.items():
        st = repeatability_stats(groups)
        rows.append({"condition": c, "factor": f, "index": n, **st})
        if f == "all":
            mdc.setdefault(c, {})[n] = st["mdc"]
    return {"status": "ok", "rows": rows, "mdc": mdc, "calibration_failures": failures,
            "n_retakes": p.retakes, "subjects": [list(s) for s in p.subjects], "factors": list(p.factors),
            "index_errors": errors}


# ----------------------------------------------------------------------------- segmentation


def _summarise_masks(per_image: list[dict]) -> dict:
    out = {"n_images": len(per_image)}
    for k in ("precision", "recall", "f1", "iou"):
        v = [r[k] for r in per_image if math.isfinite(r[k])]
        out[k] = float(np.mean(v)) if v else float("nan")
    v = [r["iou"] for r in per_image if math.isfinite(r["iou"])]
    out["iou_min"] = float(np.min(v)) if v else float("nan")
    return out


def run_segmentation(params: BenchParams | None = None, *, images: str | os.PathLike | None = None,
                     masks: str | os.PathLike | None = None,
                     progress: Callable[[str], None] | None = None) -> dict:
    """Segmentation suite: pixel precision / recall / F1 / IoU of ``skinimg.segment``.

    Phantoms vary tone (melanin 0.01-0.45), background, site (face / forearm) and
    illuminant, with every distractor (hair, lips, eyes, clothing, cast shadow).  With
    ``images`` and ``masks`` (folders), every image found in ``images`` is also scored
    against the mask ``masks/<relative stem>.png`` (or ``<stem>_mask.png``; > 0 = skin).

    Returns
    -------
    dict
        ``status`` ``"ok"``; ``rows``: one dict per
        (dataset, group, method) with mean ``precision``, ``recall``, ``f1``, ``iou``,
        ``iou_min`` and ``n_images`` (group ``"all"`` and one per tone class for the
        phantoms); ``errors``: real images without a usable mask.

    Raises
    ------
    SkinImgError
        ``images`` without ``masks`` (or the reverse), or a folder without images.
    """

    if (images is None) != (masks is None):
        raise SkinImgError("--images and --masks go together (a folder of photos and a folder of their masks)")
    p = params or BenchParams()
    mel_levels = (0.01, 0.05, 0.12, 0.2, 0.3, 0.45)
    ills = ("D65", "D50", "A", "F11")
    per: dict = {}
    for k in range(p.segmentation_images):
        spec = PhantomSpec(melanin=mel_levels[k % len(mel_levels)], hemoglobin=(0.01, 0.02, 0.04)[k % 3],
                           seed=p.seed + 3000 + k, size=p.image_size, background=BACKGROUNDS[k % len(BACKGROUNDS)],
                           site="forearm" if k % 4 == 3 else "face", illuminant=ills[(k // 2) % len(ills)],
                           jpeg_quality=90)
        ph = render_phantom(spec)
        _, tone = _tone(ph.truth)
        for method in p.segment_methods:
            m = evaluate_masks(segment_skin(ph.image, method=method).mask, ph.mask)
            per.setdefault(("phantoms", "all", method), []).append(m)
            per.setdefault(("phantoms", tone, method), []).append(m)
        if progress:
            progress(f"segmentation: phantom {k + 1}/{p.segmentation_images}")
    errors = []
    if images is not None:
        items = discover_images([images])
        if not items:
            raise SkinImgError("no image files found", os.fspath(images))
        for item in items:
            mp = find_truth_mask(masks, item.stem_rel)
            if mp is None:
                errors.append({"image": item.relpath, "error": "no mask found"})
                continue
            try:
                rgb, _ = load_image(item.path, label=item.relpath)
                truth = read_mask(mp)
                if truth.shape != rgb.shape[:2]:
                    raise SkinImgError(f"mask is {truth.shape[1]}x{truth.shape[0]}, image is "
                                       f"{rgb.shape[1]}x{rgb.shape[0]}", item.relpath)
            except SkinImgError as exc:
                errors.append({"image": item.relpath, "error": exc.reason})
                continue
            for method in p.segment_methods:
                m = evaluate_masks(segment_skin(rgb, method=method).mask, truth)
                per.setdefault(("real", "all", method), []).append(m)
    # a real photograph with a hand-drawn skin mask (skinimg.phantom.ASTRONAUT_SKIN), never used in training
    from skimage import data as _skdata

    astro, astro_truth = _skdata.astronaut(), astronaut_skin_mask()
    for method in p.segment_methods:
        m = evaluate_masks(segment_skin(astro, method=method).mask, astro_truth)
        per.setdefault(("astronaut (hand-labelled)", "all", method), []).append(m)
    rows = [{"dataset": d, "group": g, "method": m, **_summarise_masks(v)} for (d, g, m), v in per.items()]
    return {"status": "ok", "rows": rows, "errors": errors}


# ----------------------------------------------------------------------------- run + outputs


def machine_info() -> dict:
    """Python, platform, CPU count and library versions (recorded in ``bench.json``)."""
    import skimage

    return {"python": platform.python_version(), "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "numpy": np.__version__, "opencv": cv2.__version__, "scikit_image": skimage.__version__}


def run_bench(suites: Sequence[str] = SUITES, *, params: BenchParams | None = None,
              images: str | os.PathLike | None = None, masks: str | os.PathLike | None = None,
              workdir: str | os.PathLike | None = None,
              progress: Callable[[str], None] | None = None, indices: Sequence = (),
              index_timeout: float | None = 60.0, reference: str | os.PathLike | None = None,
              reference_columns: Sequence[str] | None = None, rank_by: str | None = None, method: str = "model",
              roi_is_skin: bool = False, calibration: str = "none") -> dict:
    """Run the chosen suites (in :data:`ALL_SUITES` order) and return every result.

    Parameters
    ----------
    indices : sequence of :class:`~skinimg.indices.UserIndexSpec`
        User indices, measured beside the built-ins in the accuracy, repeatability and agreement
        suites (imported first: a broken one is a :class:`SkinImgError` before any work).
    index_timeout : float or None
        Seconds per user-index call.
    reference, reference_columns, rank_by, method, roi_is_skin, calibration
        The agreement suite (:func:`skinimg.train.bench.agreement.run_agreement`); ``images`` is its
        photo folder (the segmentation suite uses ``images`` only with ``masks``).

    Returns
    -------
    dict with ``skinimg_version``, ``params`` (:class:`BenchParams`), ``machine``
    (:func:`machine_info`), ``suites`` (list run), ``elapsed_s`` (per suite), one
    key per suite holding its result dict, ``index_names`` (built-ins, then user indices),
    ``user_indices`` (their specs), ``units`` and ``index_errors`` (per failing user index:
    ``n_failed``, ``first_image``, ``first_error``, over every suite).
    """
    p = params or BenchParams()
    unknown = [s for s in suites if s not in ALL_SUITES]
    if unknown:
        raise SkinImgError(f"unknown suite(s) {', '.join(unknown)} (use {', '.join(ALL_SUITES)} or all)")
    if "agreement" in suites and (reference is None or images is None):
        raise SkinImgError("the agreement suite needs --images (the photos) and --reference (the CSV of readings)")
    user = UserIndexRunner(load_user_indices(list(indices)), timeout=index_timeout) if indices else None
    res: dict = {"skinimg_version": __version__, "params": p.to_dict(), "machine": machine_info(),
                 "suites": [s for s in ALL_SUITES if s in suites], "elapsed_s": {},
                 "index_names": list(INDEX_NAMES) + (user.names if user else []),
                 "user_indices": [u.spec.label() for u in user.indices] if user else [],
                 "units": {**UNITS, **(user.units if user else {})}}
    for s in res["suites"]:
        t0 = time.perf_counter()
        if s == "accuracy":
            res[s] = run_accuracy(p, progress=progress, user=user)
        elif s == "repeatability":
            res[s] = run_repeatability(p, progress=progress, user=user)
        elif s == "segmentation":
            res[s] = run_segmentation(p, images=images if masks is not None else None, masks=masks,
                                      progress=progress)
        elif s == "speed":
            res[s] = run_speed(p, workdir=workdir, progress=progress)
        else:
            from .agreement import run_agreement

            res[s] = run_agreement(images, reference, columns=reference_columns, rank_by=rank_by, method=method,
                                   roi_is_skin=roi_is_skin, calibration=calibration, user=user, seed=p.seed,
                                   n_resamples=p.bootstrap_resamples, progress=progress)
        res["elapsed_s"][s] = time.perf_counter() - t0
    errors: dict = {}
    for s in res["suites"]:
        for name, d in (res[s].get("index_errors") or {}).items():
            e = errors.setdefault(name, {"n_failed": 0, "first_image": f"{s}: {d['first_image']}",
                                         "first_error": d["first_error"]})
            e["n_failed"] += d["n_failed"]
    res["index_errors"] = errors
    return res

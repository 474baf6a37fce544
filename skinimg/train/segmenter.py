"""Training the skin colour model: the lookup table, the second-stage perceptron and the U-Net (``train-segmenter``).

Data: the UCI Skin Segmentation pixels (Bhatt and Dhall 2009, DOI 10.24432/C5T30C, CC BY 4.0) and
phantoms of :mod:`skinimg.phantom` (:func:`skinimg.train.phantom_specs`).  See :mod:`skinimg.segment`
for the model and :func:`train_segmenter` for the procedure.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io as _io
import multiprocessing
import os
import zipfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from .. import __version__
from ..errors import SkinImgError
from ..io import models_dir, reason_text, write_bytes, write_json
from ..phantom import BACKGROUNDS, LADDER_TONES, SET_EXPOSURE, PhantomSpec, render_phantom
from ..segment import (FEATURE_NAMES, LLR_RANGE, METHODS, SegmentParams, SkinModel, candidate_region,
                       clear_model_cache, metrics_from_counts, rules_mask, second_stage_inputs, table_probability)
from ..segment.unet import NetRunner
from .phantoms import phantom_specs, phantom_tone_metrics

__all__ = ["UCI_CANDIDATES", "load_uci", "uci_split", "train_segmenter"]

#: Default UCI Skin Segmentation file (columns B G R label; 1 = skin, 2 = non-skin).
#: Looked up in ``../shared/data/uci-skin/`` beside the repository (or one level higher, for a git worktree).
_REPO = Path(__file__).resolve().parents[2]
UCI_CANDIDATES = tuple(base / "shared" / "data" / "uci-skin" / "Skin_NonSkin.txt"
                       for base in (_REPO.parent, _REPO.parent.parent))


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


def _hist(rgb8: np.ndarray, bits: int) -> np.ndarray:
    s = 8 - bits
    q = (rgb8 >> s).astype(np.int64) if s else rgb8.astype(np.int64)
    idx = (q[..., 0] << (2 * bits)) | (q[..., 1] << bits) | q[..., 2]
    return np.bincount(idx.reshape(-1), minlength=1 << (3 * bits)).astype(np.float64)


def _lut_from_hists(hs: list[np.ndarray], hn: list[np.ndarray], weights: Sequence[float], bits: int,
                    sigma: float) -> np.ndarray:
    """uint8-quantised log-odds LUT from per-source skin/non-skin histograms."""
    from scipy.ndimage import gaussian_filter

    n = 1 << bits
    ds = np.zeros(n ** 3)
    dn = np.zeros(n ** 3)
    wsum = float(sum(weights))
    for a, b, wgt in zip(hs, hn, weights):
        ds += (wgt / wsum) * a / max(a.sum(), 1.0)
        dn += (wgt / wsum) * b / max(b.sum(), 1.0)
    if sigma > 0:
        ds = gaussian_filter(ds.reshape(n, n, n), sigma, mode="nearest").reshape(-1)
        dn = gaussian_filter(dn.reshape(n, n, n), sigma, mode="nearest").reshape(-1)
    e = 1e-3 / n ** 3
    llr = np.log(ds + e) - np.log(dn + 10 * e)
    q = np.round((np.clip(llr, -LLR_RANGE, LLR_RANGE) + LLR_RANGE) * (255.0 / (2 * LLR_RANGE)))
    return q.astype(np.uint8)


def _stage2_specs(seeds_tones: int, size_hi: tuple[int, int], n_varied: int = 200) -> list:
    """Extra second-stage training phantoms: every ladder tone with all distractors (seeds 800000+),
    larger photos (seeds 300+, ``size_hi``) so that the texture features see two scales, and ``n_varied``
    more varied phantoms (seeds 1000+; photo-level cases such as a skin-coloured wood wall or garment are
    rare, and the perceptron needs many of them), and the tan to dark ones (melanin >= 0.1) among the varied
    phantoms of seeds 2000 .. 2000 + 5 ``n_varied`` - 1 (306 for the default 200: dark skin with hair of its own
    colour is the largest remaining error).  All disjoint from the held-out seeds (100000+, 200000+, 500000+,
    700000+)."""

    specs = [PhantomSpec(melanin=m, hemoglobin=h, seed=800_000 + 100 * r + i, size=(240, 320), exposure=SET_EXPOSURE,
                         background=BACKGROUNDS[(i + r) % len(BACKGROUNDS)])
             for r in range(seeds_tones) for i, (m, h) in enumerate(LADDER_TONES)]
    dark = [s for s in phantom_specs(range(2000, 2000 + 5 * n_varied)) if s.melanin >= 0.1]
    return specs + phantom_specs(range(300, 324), size=size_hi) + phantom_specs(range(1000, 1000 + n_varied)) + dark


def _train_stage2(model: SkinModel, train_specs, phantom_size, hidden: int, seed: int, say, n_extra: int = 200
                  ) -> tuple[dict, dict]:
    """Fit the second-stage perceptron on region pixels of training phantoms; (arrays, provenance)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits


    rng = np.random.default_rng([seed, 2])
    specs = list(train_specs) + _stage2_specs(8, (2 * phantom_size[0], 2 * phantom_size[1]), n_extra)
    cap = 8000
    xs, ys = [], []
    params = SegmentParams()
    for k, spec in enumerate(specs):
        ph = render_phantom(spec)
        inputs = second_stage_inputs(model.predict(ph.image), ph.image, model, params)
        if inputs is None:
            continue
        f, region = inputs
        y = ph.mask[region]
        if len(y) > cap:
            sel = np.sort(rng.choice(len(y), cap, replace=False))
            f, y = f[sel], y[sel]
        xs.append(f)
        ys.append(y)
        if (k + 1) % 50 == 0:
            say(f"second stage: {k + 1}/{len(specs)} phantoms")
    x = np.concatenate(xs).astype(np.float64)
    y = np.concatenate(ys)
    mu = x.mean(axis=0)
    sd = x.std(axis=0) + 1e-6
    say(f"second stage: fitting a {hidden}-unit perceptron on {len(y)} pixels")
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp = MLPClassifier((hidden,), max_iter=40, random_state=seed, batch_size=512, alpha=1e-4).fit((x - mu) / sd, y)
    arrays = {"mu": mu, "inv_sd": 1.0 / sd, "W1": mlp.coefs_[0], "b1": mlp.intercepts_[0], "W2": mlp.coefs_[1],
              "b2": mlp.intercepts_[1]}
    arrays = {k: np.asarray(v, dtype=np.float32) for k, v in arrays.items()}
    info = {"model": "multilayer perceptron, 1 hidden ReLU layer (scikit-learn MLPClassifier, adam, 40 epochs, "
                     "batch 512, alpha 1e-4)",
            "hidden": hidden, "features": list(FEATURE_NAMES), "n_pixels": int(len(y)), "n_images": len(xs),
            "pixels_per_image_max": cap, "skin_fraction": float(y.mean()),
            "data": "region pixels (after steps 1-5) of the training phantoms (seeds 0 .. n-1), 48 ladder-tone "
                    "phantoms with all distractors (seeds 800000+), 24 at twice the size (seeds 300-323) and "
                    f"{n_extra} more varied phantoms (seeds 1000+) and the varied phantoms with melanin >= 0.1 "
                    f"among seeds 2000-{2000 + 5 * n_extra - 1}",
            "labels": "phantom true skin mask"}
    return arrays, info


_NET_DATA_MODEL: list = []  # the colour table of the process rendering the convolutional stage's training data


def _net_data_init(bits: int, prob: np.ndarray) -> None:
    cv2.setNumThreads(1)
    _NET_DATA_MODEL[:] = [SkinModel(bits=bits, prob=prob)]


def _net_sample(spec) -> tuple:
    """One training photo of the convolutional stage: (image, P(skin) x 255 uint8, region, truth)."""

    ph = render_phantom(spec)
    p = _NET_DATA_MODEL[0].predict(ph.image)
    region, _ = candidate_region(p, SegmentParams())
    return ph.image, (p * 255 + 0.5).astype(np.uint8), region, ph.mask


def _train_net(model: SkinModel, n_phantoms: int, phantom_size, phases, width: int, seed: int, workers: int, say
               ) -> tuple[dict, dict]:
    """Train the convolutional second stage (:func:`skinimg.train.network.train_unet`) on the phantoms of seeds
    ``0 .. n_phantoms - 1``: their photo, the colour table's P(skin), the clean-up region and the true mask."""
    from .network import require_torch, train_unet

    require_torch()
    specs = phantom_specs(range(n_phantoms), size=phantom_size)
    say(f"convolutional stage: rendering {n_phantoms} training phantoms")
    if workers > 1:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_net_data_init,
                                 initargs=(model.bits, model.prob)) as ex:
            rows = list(ex.map(_net_sample, specs, chunksize=16))
    else:
        threads = cv2.getNumThreads()
        _net_data_init(model.bits, model.prob)
        cv2.setNumThreads(threads)
        rows = [_net_sample(spec) for spec in specs]
    image, p8, region, truth = (np.stack([r[i] for r in rows]) for i in range(4))
    del rows
    weights, info = train_unet(image, p8, region, truth, phases=phases, width=width, seed=seed, say=say)
    info["data"] = (f"phantoms of seeds 0-{n_phantoms - 1} ({phantom_size[0]} x {phantom_size[1]}): photo, colour-table "
                    "P(skin) rounded to 8 bits, clean-up region (steps 1-5), true skin mask")
    return weights, info


def _write_npz_deterministic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """NPZ with fixed zip timestamps (``np.savez`` stamps the current time): same arrays, same bytes."""
    buf = _io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            b = _io.BytesIO()
            np.lib.format.write_array(b, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            zf.writestr(info, b.getvalue(), compresslevel=9)
    write_bytes(path, buf.getvalue())


def _balanced(pred: np.ndarray, truth: np.ndarray) -> dict:
    tp = int(np.count_nonzero(pred & truth))
    fp = int(np.count_nonzero(pred & ~truth))
    fn = int(np.count_nonzero(~pred & truth))
    tn = int(pred.size - tp - fp - fn)
    m = metrics_from_counts(tp, fp, fn, tn)
    tpr = tp / max(tp + fn, 1)
    tnr = tn / max(tn + fp, 1)
    return {"balanced_accuracy": (tpr + tnr) / 2, "accuracy": (tp + tn) / max(pred.size, 1), "tpr": tpr, "tnr": tnr,
            "precision": m["precision"], "recall": m["recall"], "f1": m["f1"], "n": int(pred.size),
            "n_skin": int(tp + fn)}

def uci_split(n_rows: int, is_skin: np.ndarray, *, test_fraction: float = 0.2, seed: int = 0) -> np.ndarray:
    """Boolean test mask of a stratified random split of the UCI rows (fixed seed)."""
    rng = np.random.default_rng(seed)
    test = np.zeros(n_rows, dtype=bool)
    for cls in (True, False):
        idx = np.flatnonzero(is_skin == cls)
        k = int(round(test_fraction * idx.size))
        test[rng.permutation(idx)[:k]] = True
    return test


def train_segmenter(out: str | os.PathLike | None = None, *, uci: str | os.PathLike | None = None,
                    bits: int = 6, hist_sigma: float = 0.5, n_train_phantoms: int = 200,
                    n_test_phantoms: int = 36, phantom_size: tuple[int, int] = (240, 320),
                    uci_weight: float = 0.1, phantom_weight: float = 1.0, seed: int = 0, stage2_hidden: int = 32,
                    n_stage2_extra: int = 200, net: bool = True, n_net_phantoms: int = 3000,
                    net_phases=((10, 3e-3), (20, 1e-3), (20, 5e-4), (20, 3e-4)), net_width: int = 12,
                    workers: int = 2,
                    date: str | None = None, progress=None) -> dict:
    """Train the colour lookup table and write ``skin_lut.npz`` + ``skin_lut.json`` into ``out``.

    Data: the UCI pixels (stratified 80/20 split by ``seed``: 80 % train, 20 % held
    out) and phantom pixels (``phantom_specs`` with seeds ``0 .. n_train_phantoms-1``
    for training and ``100000 + k`` held out).  Histograms of both sources are
    normalised, mixed with the given weights (equal by default), smoothed and turned
    into log-odds (see the module documentation).  Metrics on the held-out parts go
    into the JSON: UCI pixel balanced accuracy (P >= 0.5), phantom mask precision,
    recall, F1 per tone group after clean-up, and the rules baseline on both.

    Second stage (:func:`_train_stage2`): a small perceptron over the pixel features of
    the clean-up region (:data:`FEATURE_NAMES`), trained on the training phantoms'
    region pixels after the colour table is built.

    Convolutional second stage (``net=True``, the default; needs PyTorch, ``pip install 'skinimg[train]'``):
    the U-Net of :mod:`skinimg.segment.unet` trained by :func:`skinimg.train.network.train_unet` on ``n_net_phantoms``
    phantoms (seeds 0 ..) with ``net_phases`` and width ``net_width`` (the defaults: 70 epochs, about 90 minutes
    on 2 cores and 12 GB of memory for 3 000 phantoms).  Its weights go into the NPZ as ``net_*`` arrays; it
    replaces the perceptron at inference with ``SegmentParams(stage2_model="net")``.

    Reproducible: no clock, no unseeded randomness, one BLAS thread while training the perceptron, two PyTorch
    threads while training the network; the NPZ has fixed zip timestamps, so the same inputs give byte-identical
    files on the same machine (PyTorch's float results may differ between CPU types).  The JSON's ``date``
    is ``date`` if given, else ``$SOURCE_DATE_EPOCH`` if set, else today (UTC).

    Returns
    -------
    dict
        The provenance written to ``skin_lut.json``.
    """

    say = progress or (lambda msg: None)
    if net:  # before minutes of colour-table training: a missing PyTorch is a one-line error at once
        from .network import require_torch

        require_torch()
    out = Path(out) if out is not None else models_dir()
    uci_path = Path(uci) if uci is not None else next((p for p in UCI_CANDIDATES if p.is_file()), UCI_CANDIDATES[0])
    uci_bytes = uci_path.read_bytes() if uci_path.is_file() else None
    if uci_bytes is None:
        raise SkinImgError("UCI skin data file not found (give --uci)", os.fspath(uci_path))
    rgb_u, skin_u = load_uci(uci_path)
    test_u = uci_split(len(rgb_u), skin_u, seed=seed)
    say(f"UCI: {len(rgb_u)} pixels ({int(skin_u.sum())} skin), {int(test_u.sum())} held out")
    hs_u = _hist(rgb_u[~test_u & skin_u], bits)
    hn_u = _hist(rgb_u[~test_u & ~skin_u], bits)
    train_specs = phantom_specs(range(n_train_phantoms), size=phantom_size)
    hs_p = np.zeros(1 << (3 * bits))
    hn_p = np.zeros(1 << (3 * bits))
    for k, spec in enumerate(train_specs):
        ph = render_phantom(spec)
        hs_p += _hist(ph.image[ph.mask], bits)
        hn_p += _hist(ph.image[~ph.mask], bits)
        if (k + 1) % 20 == 0:
            say(f"phantoms: {k + 1}/{len(train_specs)} rendered")
    lut = _lut_from_hists([hs_u, hs_p], [hn_u, hn_p], [uci_weight, phantom_weight], bits, hist_sigma)
    model = SkinModel(bits=bits, prob=table_probability(lut))
    stage2, s2_info = _train_stage2(model, train_specs, phantom_size, stage2_hidden, seed, say,
                                    n_stage2_extra)
    net_weights, net_info = None, None
    if net:
        net_weights, net_info = _train_net(model, n_net_phantoms, phantom_size, net_phases, net_width, seed, workers,
                                           say)
    model = SkinModel(bits=bits, prob=model.prob, stage2=stage2)
    if net_weights is not None:
        model = SkinModel(bits=bits, prob=model.prob, stage2=stage2, net=NetRunner(net_weights))
    out.mkdir(parents=True, exist_ok=True)
    npz_path = out / "skin_lut.npz"
    arrays = {"log_odds": lut.reshape((1 << bits,) * 3), "bits": np.array([bits], np.int32)}
    arrays.update({f"s2_{k}": v for k, v in stage2.items()})
    if net_weights is not None:
        arrays.update({f"net_{k}": v for k, v in net_weights.items()})
    _write_npz_deterministic(npz_path, arrays)
    clear_model_cache()

    # ---- held-out metrics
    say("evaluating on the held-out data")
    pred_u = model.predict(rgb_u[test_u][None])[0] >= 0.5
    metrics = {"uci_test": _balanced(pred_u, skin_u[test_u]),
               "uci_test_rules": _balanced(rules_mask(rgb_u[test_u][None])[0], skin_u[test_u]),
               "uci_train": _balanced(model.predict(rgb_u[~test_u][None])[0] >= 0.5, skin_u[~test_u])}
    test_specs = phantom_specs([100_000 + k for k in range(n_test_phantoms)], size=phantom_size)
    for meth in METHODS:
        metrics["phantom_test" if meth == "model" else "phantom_test_rules"] = phantom_tone_metrics(
            test_specs, method=meth, model=model)
    if net_weights is not None:
        metrics["phantom_test_net"] = phantom_tone_metrics(test_specs, model=model,
                                                           params=SegmentParams(stage2_model="net"))

    if date is None:
        sde = os.environ.get("SOURCE_DATE_EPOCH")
        stamp = _dt.datetime.fromtimestamp(int(sde), _dt.timezone.utc) if sde else _dt.datetime.now(_dt.timezone.utc)
        date = stamp.date().isoformat()
    prov = {
        "model": "Bayesian colour histogram lookup table (Jones and Rehg 2002, DOI 10.1023/A:1013200319198)",
        "format": {"file": "skin_lut.npz", "arrays": {"log_odds": f"uint8 ({1 << bits},)*3, index [R>>{8 - bits}, G>>{8 - bits}, B>>{8 - bits}] of 8-bit sRGB",
                                                      "bits": "int32 (1,)",
                                                      "s2_*": "float32 second-stage perceptron: mu, inv_sd (F,), W1 (F, H), b1 (H,), W2 (H, 1), b2 (1,)",
                                                      "net_*": "float32 convolutional second stage (skinimg.segment.unet): net_<layer>_w (out, in, k, k), net_<layer>_b (out,)"},
                   "decode": f"llr = q * {2 * LLR_RANGE}/255 - {LLR_RANGE}; P(skin) = 1/(1+exp(-llr))",
                   "sha256": hashlib.sha256(npz_path.read_bytes()).hexdigest()},
        "training": {"bits": bits, "hist_sigma_bins": hist_sigma, "priors": "equal (0.5/0.5)",
                     "source_weights": {"uci": uci_weight, "phantoms": phantom_weight},
                     "unseen_colour_bias": "e_n = 10 e_s, e_s = 1e-3 / bins",
                     "stage2": s2_info, "net": net_info},
        "data": {
            "uci": {"name": "UCI Skin Segmentation (Bhatt and Dhall 2009)", "doi": "10.24432/C5T30C",
                    "licence": "CC BY 4.0", "file": uci_path.name,
                    "sha256": hashlib.sha256(uci_bytes).hexdigest(), "n_pixels": int(len(rgb_u)),
                    "n_skin": int(skin_u.sum()),
                    "split": {"method": "stratified random by class, numpy default_rng", "seed": seed,
                              "test_fraction": 0.2, "n_train": int((~test_u).sum()), "n_test": int(test_u.sum())}},
            "phantoms": {"generator": "skinimg.phantom.render_phantom via skinimg.train.phantom_specs",
                         "size": list(phantom_size), "train_seeds": [0, n_train_phantoms - 1],
                         "test_seeds": [100_000, 100_000 + n_test_phantoms - 1],
                         "melanin_range": [0.003, 0.45], "labels": "skin = PhantomSpec label 'skin'; "
                         "hair, lips, eyes, clothing, background, shadowed background = non-skin"},
        },
        "metrics": metrics,
        "clean_up_params": SegmentParams().to_dict(),
        "date": date,
        "skinimg_version": __version__,
        "command": "skinimg train-segmenter",
    }
    write_json(out / "skin_lut.json", prov)
    clear_model_cache()
    return prov

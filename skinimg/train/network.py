"""The skin network in PyTorch: architecture, training loop, ONNX export (optional: ``pip install 'skinimg[train]'``).

Architecture (Ronneberger, Fischer and Brox 2015, DOI 10.1007/978-3-319-24574-4_28, made small): a stride-2 stem
(3 x 3 convolution) so that the encoder-decoder runs at half the working resolution; five levels of two 3 x 3
convolutions with batch normalisation and ReLU (widths ``WIDTHS``), 2 x 2 max-pooling between them; a decoder with
x2 bilinear upsampling (``scale_factor=2``: no fixed size in the ONNX graph, which OpenCV needs) and skip
concatenation; a full-resolution head that concatenates the x2-upsampled decoder output with a 3 x 3 convolution of
the input and predicts one log-odds of skin per pixel.  Input: RGB scaled to [-1, 1], sides multiples of 32.

Training (:func:`train_network`): AdamW (Loshchilov and Hutter 2019, arXiv:1711.05101), learning rate warmed up over
300 iterations then cosine-annealed, binary cross-entropy plus half a soft Dice loss (Milletari et al. 2016,
DOI 10.1109/3DV.2016.79) over labelled pixels (label 2 = no loss), bfloat16 autocast for the convolutions (float32
weights), channels-last memory, batches of augmented crops (:mod:`skinimg.train.augment`).  PyTorch is imported inside
the functions, so importing this module never needs it.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import cv2
import numpy as np

from ..errors import SkinImgError
from . import augment as A

__all__ = ["WIDTHS", "require_torch", "build_network", "export_onnx", "half_weights", "Sampler", "train_network", "predict_torch"]

#: Channel widths of the five levels.
WIDTHS = (16, 32, 48, 64, 128)
#: Width of the full-resolution head.
HEAD = 8


def require_torch():
    """``import torch``, or a one-line :class:`SkinImgError` saying how to install it."""
    try:
        import torch
    except ImportError:
        raise SkinImgError("training needs PyTorch: pip install 'skinimg[train]'") from None
    return torch


def build_network(widths=WIDTHS, head: int = HEAD):
    """A new (randomly initialised) PyTorch module of the skin network."""
    torch = require_torch()
    nn = torch.nn
    F = torch.nn.functional

    def cbr(i, o, k=3, s=1):
        return nn.Sequential(nn.Conv2d(i, o, k, stride=s, padding=k // 2, bias=False), nn.BatchNorm2d(o),
                             nn.ReLU(inplace=True))

    class SkinUNet(nn.Module):
        def __init__(self):
            super().__init__()
            w = tuple(widths)
            self.widths = w
            self.stem = cbr(3, w[0], 3, 2)
            self.enc = nn.ModuleList([nn.Sequential(cbr(w[0], w[0]), cbr(w[0], w[0]))]
                                     + [nn.Sequential(cbr(w[k - 1], w[k]), cbr(w[k], w[k])) for k in range(1, len(w))])
            self.dec = nn.ModuleList([nn.Sequential(cbr(w[k] + w[k - 1], w[k - 1]), cbr(w[k - 1], w[k - 1]))
                                      for k in range(len(w) - 1, 0, -1)])
            self.inp = cbr(3, head)
            self.fuse = cbr(w[0] + head, head)
            self.out = nn.Conv2d(head, 1, 1)

        @property
        def multiple(self) -> int:
            return 2 ** len(self.widths)

        def forward(self, x):
            x0 = x
            x = self.stem(x)
            skips = []
            for k, e in enumerate(self.enc):
                if k:
                    x = F.max_pool2d(x, 2)
                x = e(x)
                skips.append(x)
            for k, d in enumerate(self.dec):
                x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
                x = d(torch.cat([x, skips[-2 - k]], 1))
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
            return self.out(self.fuse(torch.cat([x, self.inp(x0)], 1)))

    return SkinUNet()


def half_weights(path) -> int:
    """Rewrite the ONNX file ``path`` with its float32 weights stored as float16, each followed by a ``Cast`` to
    float32: the graph still computes in float32 and stays valid ONNX, at half the file size (1.2 MB instead of
    2.4 MB for the shipped network).  Needs the ``onnx`` package (``skinimg[train]``).  Returns the number of
    weights converted."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    m = onnx.load(str(path))
    g = m.graph
    inits, casts = [], []
    for init in g.initializer:
        a = numpy_helper.to_array(init)
        if a.dtype == np.float32 and a.size >= 16:  # weights; leave small constants (shapes, scalars) alone
            inits.append(numpy_helper.from_array(a.astype(np.float16), init.name + "_f16"))
            casts.append(helper.make_node("Cast", [init.name + "_f16"], [init.name], to=TensorProto.FLOAT,
                                          name=init.name + "_cast"))
        else:
            inits.append(init)
    nodes = list(g.node)
    del g.initializer[:], g.node[:]
    g.initializer.extend(inits)
    g.node.extend(casts + nodes)
    onnx.checker.check_model(m)
    onnx.save(m, str(path))
    return len(casts)


def export_onnx(model, path, *, check: bool = True) -> tuple[float, float]:
    """Write ``model`` as ONNX (opset 17, dynamic height and width) with float16 weights (:func:`half_weights`).

    Returns ``(runtime, half)`` on four random inputs of different sizes (``check``; NaN otherwise): ``runtime``,
    the largest difference between OpenCV's DNN module and PyTorch on the float32 export (the runtimes alone);
    ``half``, the largest change of OpenCV's log-odds when the weights are stored as float16.
    """
    torch = require_torch()
    model = model.to(memory_format=torch.contiguous_format).eval()
    torch.onnx.export(model, torch.zeros(1, 3, 256, 320), str(path), opset_version=17, input_names=["input"],
                      output_names=["logit"], dynamic_axes={"input": {2: "height", 3: "width"},
                                                            "logit": {2: "height", 3: "width"}},
                      do_constant_folding=True, dynamo=False)
    if not check:
        half_weights(path)
        return float("nan"), float("nan")
    rng = np.random.default_rng(0)
    inputs = [rng.uniform(-1, 1, (1, 3, h, w)).astype(np.float32)
              for h, w in ((224, 320), (256, 256), (96, 160), (320, 224))]

    def opencv(x):
        net = cv2.dnn.readNetFromONNX(str(path))
        net.setInput(x)
        return net.forward()

    full = [opencv(x) for x in inputs]
    with torch.no_grad():
        runtime = max(float(np.abs(f - model(torch.from_numpy(x)).numpy()).max()) for f, x in zip(full, inputs))
    half_weights(path)
    half = max(float(np.abs(opencv(x) - f).max()) for f, x in zip(full, inputs))
    return runtime, half


# ----------------------------------------------------------------------------- sampling


class Sampler:
    """Draws one augmented training crop (uint8 RGB (C, C, 3), label uint8 (C, C) in {0, 1, 2}) per call.

    Sources: a real photo (datasets weighted by ``ds_weights``) at a random scale (55 %: x0.75-1.33 of the working
    scale, 30 %: x1.33-4.5 close-ups centred on skin, 15 %: x0.45-0.75), rotation, flips, then
    :func:`~skinimg.train.augment.photometric` (``p_background``: share of those crops whose background becomes a
    skin-coloured texture); a mosaic of 4-16 whole photos (several people at small scale,
    ``p_mosaic``); or a flat scene (``p_flat``).
    """

    def __init__(self, photos: dict, keys: list[str], *, crop: int = 224, work_side: int = 320, seed: int = 0,
                 p_mosaic: float = 0.12, p_flat: float = 0.14, ds_weights: dict | None = None,
                 uci: tuple[np.ndarray, np.ndarray] | None = None, p_background: float = 0.0, p_band: float = 0.0):
        self.photos, self.crop, self.work_side = photos, crop, work_side
        self.p_background, self.p_band = p_background, p_band
        self.p_mosaic, self.p_flat = p_mosaic, p_flat
        self.by_ds: dict[str, list[str]] = {}
        for k in keys:
            self.by_ds.setdefault(k.split("/")[0], []).append(k)
        self.ds_names = sorted(self.by_ds)
        w = np.array([(ds_weights or {}).get(d, 1.0) for d in self.ds_names], float)
        self.ds_p = w / w.sum()
        rng = np.random.default_rng(seed + 7)
        cols, tex = [], []
        for k in keys:  # flat-scene pools: real skin colours and skin texture (high-pass log luminance)
            rgb, lab = photos[k].rgb, photos[k].label
            sk = rgb[lab == 1]
            if len(sk) > 100:
                cols.append(sk[rng.integers(0, len(sk), 20)])
            if len(tex) < 300 and rng.random() < 0.3:
                ys, xs = np.nonzero(cv2.erode((lab == 1).astype(np.uint8), np.ones((33, 33), np.uint8)))
                if len(ys):
                    i = rng.integers(len(ys))
                    y, x = max(0, ys[i] - 32), max(0, xs[i] - 32)
                    if rgb[y:y + 64, x:x + 64].shape[:2] == (64, 64) and (lab[y:y + 64, x:x + 64] == 1).all():
                        g = np.log(rgb[y:y + 64, x:x + 64].astype(np.float32).mean(2) + 4)
                        tex.append((g - cv2.GaussianBlur(g, (0, 0), 8)).astype(np.float32))
        self.skin_pool = np.concatenate(cols) if cols else np.array([[200, 150, 120]], np.uint8)
        self.tex_pool = tex
        self.uci_skin, self.uci_bg = uci if uci is not None else (None, None)

    def _pick(self, rng) -> str:
        ds = self.ds_names[rng.choice(len(self.ds_names), p=self.ds_p)]
        return self.by_ds[ds][rng.integers(len(self.by_ds[ds]))]

    def real(self, rng):
        p = self.photos[self._pick(rng)]
        rgb, lab = p.rgb, p.label
        h, w = lab.shape
        out = (self.crop, self.crop)
        s0 = min(1.0, self.work_side / max(h, w))
        u = rng.random()
        lo, hi = (0.75, 1.33) if u < 0.55 else (1.33, 4.5) if u < 0.85 else (0.45, 0.75)
        z = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        s = s0 * z
        if z > 1.33 and rng.random() < 0.7 and (lab == 1).any():  # close-ups: centred on skin
            ys, xs = np.nonzero(lab == 1)
            i = rng.integers(len(ys))
            c = (xs[i], ys[i])
        else:  # keep the crop inside the photo where it fits
            hx, hy = out[1] / 2 / s, out[0] / 2 / s
            c = (rng.uniform(hx, w - hx) if w > 2 * hx else w / 2, rng.uniform(hy, h - hy) if h > 2 * hy else h / 2)
        ang = rng.uniform(-15, 15) if rng.random() < 0.5 else 0.0
        r90 = int(rng.integers(1, 4)) if rng.random() < 0.08 else 0
        img, lb = A.warp_sample(rgb, lab, out, s, ang, rng.random() < 0.5, c, r90)
        return img, lb, s

    def __call__(self, rng):
        u = rng.random()
        C = self.crop
        if u < self.p_flat:
            return A.flat_scene(rng, (C, C), self.skin_pool, self.tex_pool, self.uci_skin, self.uci_bg, p_band=self.p_band)
        if u < self.p_flat + self.p_mosaic:
            n = int(rng.choice([4, 4, 6, 9, 9, 16]))
            g = int(math.ceil(math.sqrt(n)))
            tiles = []
            for _ in range(n):  # whole photos, each at the scale of its cell
                p = self.photos[self._pick(rng)]
                rgb, lab = (p.rgb[:, ::-1], p.label[:, ::-1]) if rng.random() < 0.5 else (p.rgb, p.label)
                f = min(1.0, 2 * (C // g) / max(rgb.shape[:2]))
                img = cv2.resize(rgb, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
                lb = cv2.resize(np.ascontiguousarray(lab), (img.shape[1], img.shape[0]), interpolation=cv2.INTER_NEAREST)
                tiles.append((A.photometric(img, lb, rng, p_lesion=0.0), lb))
            return A.mosaic(tiles, (C, C), rng)
        img, lb, s = self.real(rng)
        return A.photometric(img, lb, rng, scale_px=float(np.clip(s / 0.5, 0.5, 3)), skin_pool=self.skin_pool,
                             p_background=self.p_background), lb


# ----------------------------------------------------------------------------- training


def _batches(sampler: Sampler, batch: int, seed: int, start: int = 0):
    """Batches forever from iteration ``start``, each sample from its own generator
    ``default_rng([seed, iteration, index])``."""
    torch = require_torch()

    class Batches(torch.utils.data.IterableDataset):
        def __iter__(self):
            info = torch.utils.data.get_worker_info()
            wid, nw = (info.id, info.num_workers) if info else (0, 1)
            it = start + wid
            while True:
                xs, ys = [], []
                for j in range(batch):
                    img, lb = sampler(np.random.default_rng([seed, it, j]))
                    xs.append(img)
                    ys.append(lb)
                x = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
                yield x, torch.from_numpy(np.stack(ys).astype(np.int64))
                it += nw

    return Batches()


def _loss(logit, y):
    torch = require_torch()
    F = torch.nn.functional
    valid = (y != 2).float()
    t = (y == 1).float()
    bce = F.binary_cross_entropy_with_logits(logit[:, 0], t, weight=valid, reduction="sum") / valid.sum().clamp(min=1)
    p = torch.sigmoid(logit[:, 0]) * valid
    dice = 1 - (2 * (p * t).sum() + 1) / (p.sum() + (t * valid).sum() + 1)
    return bce + 0.5 * dice


def predict_torch(model, rgb: np.ndarray, work_side: int) -> np.ndarray:
    """P(skin) float32 (H, W) of a uint8 RGB photo as the library computes it before the guided filter (working copy,
    reflected padding, bilinear back), with PyTorch: the development score while training."""
    torch = require_torch()
    h, w = rgb.shape[:2]
    f = min(1.0, work_side / max(h, w))
    hh, ww = max(1, round(h * f)), max(1, round(w * f))
    m = model.multiple
    ph, pw = math.ceil(hh / m) * m, math.ceil(ww / m) * m
    small = cv2.resize(rgb, (ww, hh), interpolation=cv2.INTER_AREA) if (hh, ww) != (h, w) else rgb
    pad = cv2.copyMakeBorder(small, 0, ph - hh, 0, pw - ww, cv2.BORDER_REFLECT_101)
    with torch.no_grad():
        x = torch.from_numpy(pad).permute(2, 0, 1)[None].float().div_(127.5).sub_(1.0)
        z = model(x)[0, 0, :hh, :ww].float().numpy()
    p = (1 / (1 + np.exp(-z))).astype(np.float32)
    return cv2.resize(p, (w, h), interpolation=cv2.INTER_LINEAR) if (hh, ww) != (h, w) else p


def train_network(sampler: Sampler, *, iters: int, batch: int = 12, lr: float = 3e-3, seed: int = 0, threads: int = 2,
                  workers: int = 1, bf16: bool = True, dev=None, eval_every: int = 300, checkpoint=None,
                  stop_after: int | None = None, settings: dict | None = None, segments: list | None = None,
                  say=lambda m: None):
    """Train a new network on ``sampler``'s crops; returns ``(model, history)``.

    ``dev``: a function ``model -> (score, details)`` called every ``eval_every`` iterations and at the end (the
    development split); ``history`` lists those scores with the iteration, the mean loss and the elapsed seconds.
    ``checkpoint``: a file that holds the state of training (network, optimiser, iteration, history), written at
    every development score; when it exists at the start, training resumes from it (same batches as an unbroken run).
    ``stop_after``: stop after this iteration of the ``iters`` schedule (the learning rate still follows ``iters``);
    with a checkpoint at or past it, the checkpoint's network is returned without training.
    ``settings``: the sampler's settings of this run (JSON-able), kept in the checkpoint; ``segments``: a list that
    receives ``{"from_iteration": i, **settings}`` for every run of this training (a resumed run may have changed
    them), oldest first.
    """
    torch = require_torch()
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model = build_network().to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    warm = min(300, max(1, iters // 5))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: min(1.0, (i + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(i, iters) / iters)))
    history, losses, start, spent = [], [], 0, 0.0
    runs: list = []
    if checkpoint is not None and Path(checkpoint).is_file():
        state = torch.load(checkpoint, weights_only=False)
        if state.get("iters") != iters or state.get("seed") != seed:
            raise SkinImgError(f"the checkpoint is of a run with {state.get('iters')} iterations and seed "
                               f"{state.get('seed')}; delete it or use the same settings", str(checkpoint))
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        history, start, spent = state["history"], state["step"], state["elapsed_s"]
        # checkpoints written before settings were kept: the only setting then was no background textures
        runs = state.get("segments", [{"from_iteration": 0, "background_textures": 0.0, "flat_scenes": 0.14,
                                       "flat_bands": 0.0}])
        torch.set_rng_state(state["torch_rng"])
        say(f"resumed from {checkpoint} at iteration {start}")
    end = iters if stop_after is None else min(iters, stop_after)
    if start < end and (not runs or {k: v for k, v in runs[-1].items() if k != "from_iteration"} != (settings or {})):
        runs = runs + [{"from_iteration": start, **(settings or {})}]
    if segments is not None:
        segments[:] = runs
    if start >= end:
        model.eval()
        return model, history
    loader = torch.utils.data.DataLoader(_batches(sampler, batch, seed, start), batch_size=None, num_workers=workers,
                                         persistent_workers=workers > 0, prefetch_factor=4 if workers else None)
    t0 = time.time() - spent
    model.train()
    step = start
    for x, y in loader:
        if step >= end:
            break
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logit = model(x.contiguous(memory_format=torch.channels_last))
        loss = _loss(logit.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        step += 1
        if step % 100 == 0:
            say(f"iteration {step}/{iters}: loss {np.mean(losses[-100:]):.4f}, "
                f"{(time.time() - t0) / step:.2f} s per iteration")
        if dev is not None and (step % eval_every == 0 or step == end):
            model.eval()
            score, details = dev(model)
            model.train()
            history.append({"iteration": step, "dev_mean_f1": score, "details": details,
                            "loss": float(np.mean(losses[-100:])), "elapsed_s": time.time() - t0})
            say(f"iteration {step}: development mean F1 {score:.4f}")
        if checkpoint is not None and (step % eval_every == 0 or step == end):
            tmp = Path(str(checkpoint) + ".tmp")
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                        "step": step, "iters": iters, "seed": seed, "history": history,
                        "elapsed_s": time.time() - t0, "torch_rng": torch.get_rng_state(), "segments": runs}, tmp)
            os.replace(tmp, checkpoint)
    model.eval()
    return model, history

"""Probe: does a small convolutional network (U-Net) beat the per-pixel second stage of the skin segmenter?

Not part of the library or of ``make bench``: it needs PyTorch (``.venv/bin/pip install torch==2.13.0``, the
CPU build) and about an hour of a 2-core machine with the defaults.

    .venv/bin/python benchmarks/probe_unet.py                    # 3000 training phantoms, 10 + 20 + 20 epochs
    .venv/bin/python benchmarks/probe_unet.py --train 200 --phases 1:3e-3 --dev 40 --test 40   # a smoke run

What it does, on 240 x 320 phantoms (``skinimg.segment.phantom_specs``):

1. renders the training phantoms (seeds 0 .. N-1), the development ones (200000+, watched during training)
   and the held-out ones (100000+); for each it keeps the photo, the colour table's P(skin), the region of
   clean-up steps 1-5 (what the second stage judges) and the shipped segmentation;
2. trains a U-Net (3 levels, widths 12 / 24 / 24 / 48, 81 181 weights; Ronneberger, Fischer and Brox 2015,
   DOI 10.1007/978-3-319-24574-4_28) on input (RGB - 0.5, log-odds / 4, region - 0.5) to predict the true
   skin mask, on random 120 x 160 crops, batch 8, Adam with a one-cycle learning rate per phase, region
   pixels weighted 1.2 and the rest 0.2; torch seeds 0;
3. prints per-tone pooled F1 on the held-out photos for the shipped mask, the network's veto of the region
   (region and logit > 0), and the shipped mask with the network's veto added (logit > -1), and the
   network's forward time on a 12 MP photo's working image (375 x 500) and on half of it.

Measured on 2026-11-29 (10 epochs at 3e-3, 20 at 1e-3, 20 at 5e-4; about an hour): see the README, section
"Skin segmentation".
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from skinimg import segment as S  # noqa: E402


def _render(seed):
    from skinimg.synth import render_phantom

    spec = S.phantom_specs([seed])[0]
    ph = render_phantom(spec)
    model = S.load_model()
    p = model.predict(ph.image)
    rows: list = []
    S._clean(p, ph.image, S.SegmentParams(), model=model, collect=rows)  # region of steps 1-5
    region = rows[0][1] if rows else np.zeros(ph.mask.shape, bool)
    mask = S.segment_skin(ph.image, model=model).mask
    group = next(i for i, (_, lo, hi) in enumerate(S.TONE_GROUPS) if lo <= spec.melanin < hi)
    return ph.image, (p * 255 + 0.5).astype(np.uint8), ph.mask, region, mask, group


def render_set(seeds, workers):
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers) as ex:
        res = list(ex.map(_render, seeds, chunksize=8))
    return {k: np.stack([r[i] for r in res]) for i, k in enumerate(("image", "p", "truth", "region", "mask", "group"))}


def build_net(width):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    def block(i, o):
        return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.ReLU(inplace=True))

    class UNet(nn.Module):
        def __init__(self, w):
            super().__init__()
            self.e1 = nn.Sequential(block(5, w), block(w, w))
            self.e2 = nn.Sequential(block(w, 2 * w), block(2 * w, 2 * w))
            self.e3 = nn.Sequential(block(2 * w, 2 * w), block(2 * w, 2 * w))
            self.e4 = nn.Sequential(block(2 * w, 4 * w), block(4 * w, 4 * w))
            self.d3 = block(6 * w, 2 * w)
            self.d2 = block(4 * w, 2 * w)
            self.d1 = nn.Sequential(block(3 * w, w), nn.Conv2d(w, 1, 1))

        def forward(self, x):
            def up(a, ref):
                return F.interpolate(a, size=ref.shape[-2:], mode="bilinear", align_corners=False)

            a = self.e1(x)
            b = self.e2(F.max_pool2d(a, 2))
            c = self.e3(F.max_pool2d(b, 2))
            e = self.e4(F.max_pool2d(c, 2))
            u = self.d3(torch.cat([up(e, c), c], 1))
            u = self.d2(torch.cat([up(u, b), b], 1))
            return self.d1(torch.cat([up(u, a), a], 1))

    return UNet(width)


def tensors(d):
    import torch

    img = torch.from_numpy(d["image"]).permute(0, 3, 1, 2).float() / 255.0
    p = torch.from_numpy(d["p"]).float()[:, None] / 255.0
    llr = torch.log((p + 0.004) / (1.004 - p)) / 4
    region = torch.from_numpy(d["region"]).float()[:, None]
    return torch.cat([img - 0.5, llr, region - 0.5], 1)


def logits(net, x):
    import torch

    net.eval()
    with torch.no_grad():
        z = torch.cat([net(x[i:i + 16]) for i in range(0, len(x), 16)])[:, 0].numpy()
    net.train()
    return z


def tone_f1(mask, d):
    t, g = d["truth"], d["group"]
    out = []
    for k in list(range(len(S.TONE_GROUPS))) + [None]:
        s = np.ones(len(g), bool) if k is None else g == k
        tp = int((mask[s] & t[s]).sum())
        fp = int((mask[s] & ~t[s]).sum())
        fn = int((~mask[s] & t[s]).sum())
        out.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan"))
    return out


def _phases_arg(text):
    """``EPOCHS:MAX_LR,...`` -> [(epochs, lr), ...]; a ValueError becomes argparse's one-line usage error."""
    try:
        out = [(int(e), float(lr)) for e, lr in (item.split(":") for item in text.split(","))]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected EPOCHS:MAX_LR,... such as 10:3e-3,20:1e-3, got {text!r}") from None
    if not out or any(e < 1 or lr <= 0 for e, lr in out):
        raise argparse.ArgumentTypeError(f"epochs and rates must be positive, got {text!r}")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", type=int, default=3000, help="training phantoms (seeds 0 ..)")
    ap.add_argument("--dev", type=int, default=240, help="development phantoms (seeds 200000 ..)")
    ap.add_argument("--test", type=int, default=600, help="held-out phantoms (seeds 100000 ..)")
    ap.add_argument("--phases", default="10:3e-3,20:1e-3,20:5e-4", type=_phases_arg, help="EPOCHS:MAX_LR,... (one-cycle per phase)")
    ap.add_argument("--width", type=int, default=12)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--save", help="write the weights here (torch state dict)")
    a = ap.parse_args(argv)
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    torch.set_num_threads(a.workers)
    t0 = time.perf_counter()
    tr = render_set(range(a.train), a.workers)
    dev = render_set(range(200_000, 200_000 + a.dev), a.workers)
    te = render_set(range(100_000, 100_000 + a.test), a.workers)
    print(f"rendered {a.train} + {a.dev} + {a.test} phantoms in {time.perf_counter() - t0:.0f} s", flush=True)
    x, y = tensors(tr), torch.from_numpy(tr["truth"]).float()[:, None]
    wts = 0.2 + torch.from_numpy(tr["region"]).float()[:, None]
    xd = tensors(dev)
    net = build_net(a.width)
    print("weights", sum(p.numel() for p in net.parameters()), flush=True)
    n, bs, ch, cw = len(x), 8, 120, 160
    h, w = x.shape[-2:]
    for epochs, lr in a.phases:
        opt = torch.optim.Adam(net.parameters(), lr)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=max(epochs * (n // bs), 1))
        for ep in range(epochs):
            t1 = time.perf_counter()
            perm = torch.randperm(n)
            total = 0.0
            for i in range(0, n - bs + 1, bs):
                idx = perm[i:i + bs]
                oy, ox = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
                xb, yb = x[idx, :, oy:oy + ch, ox:ox + cw], y[idx, :, oy:oy + ch, ox:ox + cw]
                wb = wts[idx, :, oy:oy + ch, ox:ox + cw]
                if rng.random() < 0.5:
                    xb, yb, wb = xb.flip(-1), yb.flip(-1), wb.flip(-1)
                loss = (F.binary_cross_entropy_with_logits(net(xb), yb, reduction="none") * wb).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                total += loss.item()
            zd = logits(net, xd)
            f = tone_f1(dev["region"] & (zd > 0), dev)
            print(f"lr {lr:g} epoch {ep + 1}/{epochs}: loss {total / max(n // bs, 1):.4f}, {time.perf_counter() - t1:.0f} s,"
                  f" development F1 all {f[-1]:.4f}", flush=True)
    if a.save:
        torch.save(net.state_dict(), a.save)
    z = logits(net, tensors(te))
    names = [g for g, _, _ in S.TONE_GROUPS] + ["all"]
    print(f"\n{a.test} held-out phantoms, 240 x 320, pooled F1\n")
    print("| | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for label, m in (("shipped (per-pixel second stage)", te["mask"]), ("U-Net veto of the region", te["region"] & (z > 0)),
                     ("shipped + U-Net veto (logit > -1)", te["mask"] & (z > -1))):
        print(f"| {label} | " + " | ".join(f"{v:.4f}" for v in tone_f1(m, te)) + " |")
    net.eval()
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for shape in ((375, 500), (188, 250)):
            xx = torch.randn(1, 5, *shape)
            with torch.no_grad():
                net(xx)
                ts = []
                for _ in range(7):
                    t1 = time.perf_counter()
                    net(xx)
                    ts.append(time.perf_counter() - t1)
            print(f"forward pass {shape[0]} x {shape[1]}, {threads} thread(s): {1000 * sorted(ts)[3]:.1f} ms (median of 7)")


if __name__ == "__main__":
    main()

"""Training the U-Net second stage with PyTorch (optional: ``pip install 'skinimg[train]'``).

The architecture and the inference are :mod:`skinimg.segment.unet` (OpenCV's DNN module, no PyTorch at run
time); this module builds the same network in PyTorch, trains it and exports its weights as plain arrays.
PyTorch is imported inside the functions, so importing this module never needs it.
"""

from __future__ import annotations

import numpy as np

from ..errors import SkinImgError
from ..segment.unet import N_INPUT, check_weights

__all__ = ["require_torch", "weights_from_torch", "train_unet", "training_info"]

#: The PyTorch module names of the training code (:func:`_torch_unet`) for each layer.
_TORCH_NAMES = {"e1a": "e1.0.0", "e1b": "e1.1.0", "e2a": "e2.0.0", "e2b": "e2.1.0", "e3a": "e3.0.0",
                "e3b": "e3.1.0", "e4a": "e4.0.0", "e4b": "e4.1.0", "d3": "d3.0.0", "d2": "d2.0.0",
                "d1": "d1.0.0", "out": "d1.1"}


def _torch_unet(width: int):
    """The PyTorch module of the same network (parameter names as :data:`_TORCH_NAMES`)."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    def block(i, o):
        return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.ReLU(inplace=True))

    class UNet(nn.Module):
        def __init__(self, w):
            super().__init__()
            self.e1 = nn.Sequential(block(N_INPUT, w), block(w, w))
            self.e2 = nn.Sequential(block(w, 2 * w), block(2 * w, 2 * w))
            self.e3 = nn.Sequential(block(2 * w, 2 * w), block(2 * w, 2 * w))
            self.e4 = nn.Sequential(block(2 * w, 4 * w), block(4 * w, 4 * w))
            self.d3 = nn.Sequential(block(6 * w, 2 * w))
            self.d2 = nn.Sequential(block(4 * w, 2 * w))
            self.d1 = nn.Sequential(block(3 * w, w), nn.Conv2d(w, 1, 1))

        def forward(self, x):
            def up(t, ref):
                return F.interpolate(t, size=ref.shape[-2:], mode="bilinear", align_corners=False)

            a = self.e1(x)
            b = self.e2(F.max_pool2d(a, 2))
            c = self.e3(F.max_pool2d(b, 2))
            e = self.e4(F.max_pool2d(c, 2))
            u = self.d3(torch.cat([up(e, c), c], 1))
            u = self.d2(torch.cat([up(u, b), b], 1))
            return self.d1(torch.cat([up(u, a), a], 1))

    return UNet(width)


def weights_from_torch(state_dict) -> dict[str, np.ndarray]:
    """``{"<layer>_w", "<layer>_b"}`` float32 arrays from the PyTorch state dict of :func:`_torch_unet`."""
    out = {}
    for name, tname in _TORCH_NAMES.items():
        out[f"{name}_w"] = state_dict[f"{tname}.weight"].detach().cpu().numpy().astype(np.float32)
        out[f"{name}_b"] = state_dict[f"{tname}.bias"].detach().cpu().numpy().astype(np.float32)
    check_weights(out)
    return out


def require_torch():
    try:
        import torch
    except ImportError:
        raise SkinImgError("training the convolutional second stage needs PyTorch: pip install 'skinimg[train]' "
                           "(or pass --no-net)") from None
    return torch


def train_unet(image: np.ndarray, p8: np.ndarray, region: np.ndarray, truth: np.ndarray, *,
               phases=((10, 3e-3), (20, 1e-3), (20, 5e-4), (20, 3e-4)), width: int = 12, crop=(120, 160),
               batch: int = 8, seed: int = 0, threads: int = 2, init: dict[str, np.ndarray] | None = None,
               say=None) -> tuple[dict[str, np.ndarray], dict]:
    """Train the U-Net on stacked training photos; returns (weights, provenance).

    Parameters
    ----------
    image : uint8 (N, H, W, 3) sRGB photos; p8 : uint8 (N, H, W) colour-table P(skin) x 255 (rounded);
    region : bool (N, H, W) clean-up region (steps 1-5); truth : bool (N, H, W) true skin.
    phases : sequence of (epochs, max learning rate)
        Each phase is a fresh Adam optimiser (Kingma and Ba 2015, arXiv:1412.6980) with a one-cycle learning
        rate (Smith and Topin 2019, DOI 10.1117/12.2520589) starting from the previous phase's weights; every
        phase re-seeds PyTorch and NumPy's legacy generator with ``seed``, so each phase is reproducible on
        its own (from the previous weights).
    crop, batch
        Random crops (same offset for the batch; photos smaller than it are used whole) with a random
        horizontal flip, batch size.
    threads
        PyTorch CPU threads (results are reproducible for a fixed thread count on one machine).
    init
        Weights to start from (as returned here; default: PyTorch's seeded initialisation).

    Loss: binary cross-entropy of the log-odds against the true mask, weighted 1.2 inside the region and
    0.2 outside (the network's job is to judge the region).
    """
    torch = require_torch()
    import torch.nn.functional as F

    say = say or (lambda msg: None)
    torch.set_num_threads(threads)
    img = torch.from_numpy(np.ascontiguousarray(image)).permute(0, 3, 1, 2).float() / 255.0
    pt = torch.from_numpy(np.ascontiguousarray(p8)).float()[:, None] / 255.0
    llr = torch.log((pt + 0.004) / (1.004 - pt)) / 4
    reg = torch.from_numpy(np.ascontiguousarray(region)).float()[:, None]
    x = torch.cat([img - 0.5, llr, reg - 0.5], 1)
    del img, pt, llr  # 3 000 photos of 240 x 320: x alone is 4.6 GB
    y = torch.from_numpy(np.ascontiguousarray(truth)).float()[:, None]
    n, (h, w) = len(x), x.shape[-2:]
    ch, cw = min(crop[0], h), min(crop[1], w)  # photos smaller than the crop are used whole
    if n < batch:
        raise SkinImgError(f"need at least {batch} training photos, got {n}")
    state, log = None, []
    if init is not None:
        check_weights(init)
        state = {f"{_TORCH_NAMES[k[:-2]]}.{'weight' if k.endswith('_w') else 'bias'}": torch.from_numpy(np.array(v))
                 for k, v in init.items()}
    for k, (epochs, lr) in enumerate(phases):
        torch.manual_seed(seed)
        rs = np.random.RandomState(seed)
        net = _torch_unet(width)
        if state is not None:
            net.load_state_dict(state)
        opt = torch.optim.Adam(net.parameters(), 2e-3)
        steps = epochs * (n // batch)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps)
        for ep in range(epochs):
            perm = torch.randperm(n)
            total = 0.0
            for i in range(0, n - batch + 1, batch):
                idx = perm[i:i + batch]
                oy, ox = rs.randint(0, h - ch + 1), rs.randint(0, w - cw + 1)
                xb, yb = x[idx, :, oy:oy + ch, ox:ox + cw], y[idx, :, oy:oy + ch, ox:ox + cw]
                if rs.rand() < 0.5:
                    xb, yb = xb.flip(-1), yb.flip(-1)
                z = net(xb)
                wb = 0.2 + reg[idx, :, oy:oy + ch, ox:ox + cw]  # region pixels 1.2, the others 0.2
                loss = (F.binary_cross_entropy_with_logits(z, yb, reduction="none") * wb).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                total += loss.item()
            mean = total / max(n // batch, 1)
            log.append(round(mean, 4))
            say(f"convolutional stage: phase {k + 1}/{len(phases)}, epoch {ep + 1}/{epochs}, loss {mean:.4f}")
        state = {k2: v.detach().clone() for k2, v in net.state_dict().items()}
    weights = weights_from_torch(state)
    return weights, training_info(weights, phases=phases, batch=batch, crop=crop, seed=seed, threads=threads,
                                  loss_per_epoch=log, torch_version=torch.__version__)


def training_info(weights: dict[str, np.ndarray], *, phases, batch: int, crop, seed: int, threads: int,
                  loss_per_epoch: list, torch_version: str) -> dict:
    """The provenance record of a :func:`train_unet` run (what ``skin_lut.json`` keeps under ``training.net``)."""
    width = check_weights(weights)
    return {"model": f"U-Net, 3 levels, widths {width}/{2 * width}/{2 * width}/{4 * width} (Ronneberger et al. 2015, "
                     "DOI 10.1007/978-3-319-24574-4_28)",
            "weights": int(sum(v.size for v in weights.values())), "width": width,
            "phases": [[int(e), float(lr)] for e, lr in phases], "batch": batch, "crop": list(crop), "seed": seed,
            "threads": threads, "loss_per_epoch": list(loss_per_epoch), "torch_version": torch_version,
            "optimiser": "Adam, one-cycle learning rate per phase, fresh per phase",
            "loss": "binary cross-entropy, weight 1.2 inside the region, 0.2 outside"}

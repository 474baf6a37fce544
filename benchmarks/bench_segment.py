"""Speed of skin segmentation against the JPEG decode of the same photo (``skinimg.segment``).

A phantom (``skinimg.phantom``, 480x640) is upscaled to each size with fine sensor noise
added, saved as a JPEG (quality 90), then timed (median of ``--repeat`` runs).  Three scenes,
because the cost grows with the skin's share of the frame: ``face`` (a head and shoulders,
about 17 % skin), ``forearm`` (about 30 %) and ``closeup`` (the middle of the face filling the
frame, about 50 %, the typical clinical framing).

* decode: ``skinimg.io.load_image`` of the JPEG (what every command pays per photo);
* model: ``skinimg.segment.segment_skin`` on the decoded array, default parameters (the per-pixel
  second stage);
* U-Net: the same with the optional convolutional second stage (``stage2_model="net"``, ``skinimg.segment.unet``, run
  by OpenCV's DNN module);
* both: the mean of the two second stages' log-odds (``stage2_model="both"``, the most accurate);
* s2 full: the same with the second stage at working resolution (``stage2_pixels=0``),
  the baseline of the downscaled second stage;
* rules: the colour-rule baseline.

The issue's goal: a 12-megapixel photo is segmented in less time than its own decode
(ratio segment / decode < 1).  Also prints the mask F1 against the upscaled true mask.

Timing: ``--repeat`` rounds, each running the decode and every segmenter once in turn (after one
untimed warm-up round); the medians are printed.  Interleaved, because this machine's decode time
drifts while the segmenters' does not: the same 12 MP close-up decoded in 35-39 ms in some minutes and
58-61 ms in others of one hour (2026-11-30), while ``both`` stayed at 46-47 ms.  Decode writes a
36 MB array and is bound by memory bandwidth, which neighbouring jobs share; the segmenters mostly work
on the 375 x 500 working copy.  Timed back to back, the ratio depended on which minutes each
column fell in.

    python benchmarks/bench_segment.py [--repeat 5] [--sizes 3000x4000,1500x2000,480x640]
                                       [--scenes face,forearm,closeup]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from skinimg.io import load_image
from skinimg.segment import SegmentParams, evaluate_masks, load_model, segment_skin
from skinimg.phantom import PhantomSpec, render_phantom


def make_jpeg(path: Path, h: int, w: int, seed: int = 0, scene: str = "face") -> np.ndarray:
    """Write the scene as an (h, w) JPEG; returns its true skin mask (bool, (h, w))."""
    site = "forearm" if scene == "forearm" else "face"
    ph = render_phantom(PhantomSpec(melanin=0.12, hemoglobin=0.02, seed=seed, size=(480, 640), exposure=1.2,
                                    site=site))
    img, mask = ph.image, ph.mask.astype(np.uint8)
    if scene == "closeup":  # 80 % of the face's height, 4:3
        x, y, bw, bh = cv2.boundingRect(mask)
        ch = int(0.8 * bh)
        cw = ch * 4 // 3
        rows = slice(y + bh // 2 - ch // 2, y + bh // 2 - ch // 2 + ch)
        cols = slice(max(x + bw // 2 - cw // 2, 0), max(x + bw // 2 - cw // 2, 0) + cw)
        img, mask = img[rows, cols], mask[rows, cols]
    img = cv2.resize(img, (w, h), interpolation=cv2.INTER_CUBIC)
    rng = np.random.default_rng(seed)
    noise = rng.integers(-3, 4, size=(h, w, 1), dtype=np.int16)
    img = np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    cv2.imwrite(os.fspath(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    return cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST) > 0


def timed_rounds(fns: dict, repeat: int) -> tuple[dict[str, float], dict[str, object]]:
    """Median seconds and last result of each function of ``fns``, timed in ``repeat`` interleaved rounds
    (one untimed warm-up round first)."""
    out = {k: fn() for k, fn in fns.items()}
    times = {k: [] for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            out[k] = fn()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--sizes", default="3000x4000,1500x2000,480x640", help="HxW list")
    ap.add_argument("--scenes", default="face,forearm,closeup", help="list of face, forearm, closeup")
    args = ap.parse_args()
    cv2.setNumThreads(1)  # one worker's view: a batch runs one image per core
    load_model()
    full = SegmentParams(stage2_pixels=0)
    net = SegmentParams(stage2_model="net")
    both = SegmentParams(stage2_model="both")
    print(f"{'size (HxW)':>12} {'scene':>8} {'skin %':>6} {'decode ms':>10} {'model ms':>9} {'ratio':>6} "
          f"{'U-Net ms':>12} {'ratio':>6} {'both ms':>8} {'ratio':>6} {'s2 full ms':>10} {'ratio':>6} {'rules ms':>9} "
          f"{'ratio':>6} {'F1 model':>9} {'F1 U-Net':>12} {'F1 both':>8} {'F1 s2 full':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for s in args.sizes.split(","):
            h, w = (int(v) for v in s.split("x"))
            for scene in args.scenes.split(","):
                path = Path(tmp) / f"photo_{h}x{w}_{scene}.jpg"
                truth = make_jpeg(path, h, w, scene=scene)
                rgb, _ = load_image(path)
                t, r = timed_rounds({
                    "decode": lambda: load_image(path),
                    "model": lambda: segment_skin(rgb, method="model"),
                    "net": lambda: segment_skin(rgb, method="model", params=net),
                    "both": lambda: segment_skin(rgb, method="model", params=both),
                    "full": lambda: segment_skin(rgb, method="model", params=full),
                    "rules": lambda: segment_skin(rgb, method="rules")}, args.repeat)
                t_dec, t_mod, t_net, t_both, t_full, t_rul = (t[k] for k in ("decode", "model", "net", "both", "full",
                                                                             "rules"))
                res, res_net, res_both, res_full = r["model"], r["net"], r["both"], r["full"]
                f1 = evaluate_masks(res.mask, truth)["f1"]
                f1_full = evaluate_masks(res_full.mask, truth)["f1"]
                f1_net = evaluate_masks(res_net.mask, truth)["f1"]
                f1_both = evaluate_masks(res_both.mask, truth)["f1"]
                print(f"{s:>12} {scene:>8} {100 * truth.mean():6.1f} {1e3 * t_dec:10.1f} {1e3 * t_mod:9.1f} "
                      f"{t_mod / t_dec:6.2f} {1e3 * t_net:12.1f} {t_net / t_dec:6.2f} {1e3 * t_both:8.1f} "
                      f"{t_both / t_dec:6.2f} {1e3 * t_full:10.1f} {t_full / t_dec:6.2f} {1e3 * t_rul:9.1f} "
                      f"{t_rul / t_dec:6.2f} {f1:9.3f} {f1_net:12.3f} {f1_both:8.3f} {f1_full:10.3f}", flush=True)


if __name__ == "__main__":
    main()

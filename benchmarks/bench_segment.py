"""Speed of skin segmentation against the JPEG decode of the same 12-megapixel photo (``skinimg.segment``).

Photos: the committed public-domain / CC0 photos (``tests/data``, scikit-image's astronaut) upscaled to about 12 MP
(bicubic, fine sensor noise added, JPEG quality 90): ``astronaut`` (3464 x 3464, a portrait), ``two_people``
(4240 x 2796, outdoors), ``body`` (4240 x 2830, a body on water) and ``closeup`` (a face crop filling a 3000 x 4000
frame: the clinical framing).  Also ``--sizes`` smaller versions of the portrait.

Columns (medians of ``--repeat`` interleaved rounds after one warm-up round; one thread, as a batch worker runs):

* decode: ``cv2.imread`` of the JPEG (and ``skinimg.io.load_image``, which adds the RGB conversion and checks);
* model: ``segment_skin`` (reduce to the working copy, the network, the guided filter, the full-resolution mask);
* check: the same with ``check=True`` (a second pass of the network on the mirror image);
* net: the network alone on the working copy;
* rules: the YCrCb baseline.

Interleaved, because this machine's decode time drifts with neighbouring jobs (memory bandwidth) while the
segmenters' mostly run on the small working copy: each round runs every column once in turn.

    python benchmarks/bench_segment.py [--repeat 7] [--photos astronaut,two_people,body,closeup]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from skinimg.io import load_image
from skinimg.segment import SegmentParams, load_model, reduce_photo, segment_skin

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"


def _read(p: Path) -> np.ndarray:
    return np.ascontiguousarray(cv2.imread(os.fspath(p))[..., ::-1])


def make_photos(tmp: Path, names: list[str]) -> dict[str, Path]:
    """Write the ~12 MP JPEGs (module documentation); returns name -> path."""
    from skimage import data as skd

    src = {"astronaut": (skd.astronaut(), (3464, 3464)),
           "two_people": (_read(DATA / "pexels_cc0_women_phones_640.jpg"), (2796, 4240)),
           "body": (_read(DATA / "pexels_cc0_woman_jump_640.jpg"), (2830, 4240))}
    face = _read(DATA / "pexels_cc0_women_phones_640.jpg")[0:200, 380:530]
    src["closeup"] = (face, (4000, 3000))
    rng = np.random.default_rng(0)
    out = {}
    for name in names:
        img, (h, w) = src[name]
        big = cv2.resize(img, (w, h), interpolation=cv2.INTER_CUBIC)
        big = np.clip(big.astype(np.int16) + rng.integers(-3, 4, (h, w, 1), dtype=np.int16), 0, 255).astype(np.uint8)
        p = tmp / f"{name}.jpg"
        cv2.imwrite(os.fspath(p), big[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
        out[name] = p
    return out


def timed_rounds(fns: dict, repeat: int) -> dict[str, float]:
    """Median seconds of each function, ``repeat`` interleaved rounds after one untimed warm-up round."""
    for f in fns.values():
        f()
    times = {k: [] for k in fns}
    for _ in range(repeat):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--photos", default="astronaut,two_people,body,closeup")
    ap.add_argument("--json", help="also write the table here")
    a = ap.parse_args(argv)
    cv2.setNumThreads(1)  # one worker's view: a batch runs one photo per core
    model = load_model()
    params = SegmentParams()
    rows = []
    print("| photo | size | decode ms | load_image ms | model ms | model / decode | check ms | check / decode "
          "| net ms | rules ms | rules / decode |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in make_photos(Path(tmp), a.photos.split(",")).items():
            rgb, _ = load_image(path)
            h, w = rgb.shape[:2]
            small, _ = reduce_photo(rgb, params.work_side)
            t = timed_rounds({
                "decode": lambda: cv2.imread(os.fspath(path)),
                "load": lambda: load_image(path),
                "model": lambda: segment_skin(rgb, model=model).mask,
                "check": lambda: segment_skin(rgb, model=model, check=True).mask,
                "net": lambda: model.logit(small),
                "rules": lambda: segment_skin(rgb, method="rules").mask}, a.repeat)
            d = t["decode"]
            row = {"photo": name, "size": f"{w}x{h}", **{k: 1e3 * v for k, v in t.items()}}
            rows.append(row)
            print(f"| {name} | {w}x{h} | {1e3 * d:.1f} | {1e3 * t['load']:.1f} | {1e3 * t['model']:.1f} | "
                  f"{t['model'] / d:.2f} | {1e3 * t['check']:.1f} | {t['check'] / d:.2f} | {1e3 * t['net']:.1f} | "
                  f"{1e3 * t['rules']:.1f} | {t['rules'] / d:.2f} |", flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()

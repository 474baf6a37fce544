"""Write tests/data/skin_unet_reference.npz: a fixed input of the shipped skin network and its output computed by
the ONNX reference evaluator (``onnx.reference``, NumPy only), an implementation independent of OpenCV's.

    pip install onnx
    python scripts/make_skin_net_reference.py

The test (``tests/test_skin_net.py``) runs the network with OpenCV's DNN module on the same input and compares.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def reference_image() -> np.ndarray:
    """uint8 (64, 96, 3) RGB: a smooth blue-grey gradient with a skin-coloured disc and a dark band (seeded noise)."""
    rng = np.random.default_rng(22)
    yy, xx = np.mgrid[0:64, 0:96].astype(np.float32)
    img = np.stack([60 + 0.5 * xx, 80 + 0.3 * yy, 140 + 0.2 * xx], -1)
    disc = (xx - 50) ** 2 + (yy - 36) ** 2 <= 22 ** 2
    img[disc] = (205, 150, 125)
    img[(yy > 8) & (yy < 15)] = (35, 25, 20)
    img = cv2.GaussianBlur(img, (0, 0), 1.0) + rng.normal(0, 2, img.shape)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def main() -> None:
    from onnx.reference import ReferenceEvaluator

    path = ROOT / "models" / "skin_unet.onnx"
    image = reference_image()
    x = ((image.astype(np.float32) - 127.5) / 127.5).transpose(2, 0, 1)[None]
    logit = ReferenceEvaluator(str(path)).run(None, {"input": x})[0][0, 0].astype(np.float32)
    out = ROOT / "tests" / "data" / "skin_unet_reference.npz"
    np.savez_compressed(out, image=image, logit=logit, sha256=np.array(hashlib.sha256(path.read_bytes()).hexdigest()))
    print(f"wrote {out}: skin fraction {(logit > 0).mean():.3f}")


if __name__ == "__main__":
    main()

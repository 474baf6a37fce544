"""The skin network (a small U-Net stored as ONNX, run by OpenCV's DNN module) and the YCrCb rule.

``models/skin_unet.onnx`` (found through :func:`skinimg.io.models_dir`) holds the network; ``skin_unet.json``
beside it its provenance (data and their terms, splits, augmentation, metrics, the file's SHA-256).  Training
it is :func:`skinimg.train.train_segmenter` (PyTorch, the ``train`` extra); nothing here needs PyTorch.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import threading
from pathlib import Path

import cv2
import numpy as np

from ..errors import SkinImgError
from ..io import check_rgb, model_file, reason_text, to_uint8

__all__ = ["MODEL_FILE", "DEFAULT_MODEL_PATH", "SkinNet", "load_model", "network_record", "rules_mask",
           "clear_model_cache"]

#: File name of the default skin network in :func:`skinimg.io.models_dir` (its JSON provenance has the same stem).
MODEL_FILE = "skin_unet.onnx"
#: Default skin network (at import; :func:`load_model` looks it up when called, so ``$SKINIMG_MODELS`` is honoured).
DEFAULT_MODEL_PATH = model_file(MODEL_FILE)


class SkinNet:
    """A skin segmentation network: ONNX file run by ``cv2.dnn`` (one network object per thread).

    Attributes
    ----------
    path : str
        The ONNX file.
    provenance : dict
        Its JSON (data, splits, augmentation, metrics), ``{}`` if there is none.
    sha256 : str
        Digest of the ONNX file.
    multiple : int
        The input's height and width must be multiples of this (the network halves them ``log2(multiple)`` times);
        :meth:`logit` pads by reflection.

    Notes
    -----
    Input: the photo's 8-bit sRGB values scaled to [-1, 1] (``(v - 127.5) / 127.5``), RGB order, float32
    ``(1, 3, H, W)``.  Output: one log-odds of skin per input pixel, float32 ``(1, 1, H, W)``.
    """

    def __init__(self, path: str | os.PathLike, provenance: dict | None = None, sha256: str = "", multiple: int = 32):
        self.path = os.fspath(path)
        self.provenance = provenance or {}
        self.sha256 = sha256
        self.multiple = int(multiple)
        self._local = threading.local()

    def _net(self):
        net = getattr(self._local, "net", None)
        if net is None:
            net = cv2.dnn.readNetFromONNX(self.path)
            self._local.net = net
        return net

    def logit(self, rgb8: np.ndarray, *, flip: bool = False) -> np.ndarray:
        """Log-odds of skin, float32 (h, w), of a uint8 (h, w, 3) RGB working image (``flip``: of its mirror
        image, mirrored back: the second opinion of ``segment_skin(check=True)``)."""
        h, w = rgb8.shape[:2]
        m = self.multiple
        ph, pw = math.ceil(h / m) * m, math.ceil(w / m) * m
        src = np.ascontiguousarray(rgb8[:, ::-1] if flip else rgb8)
        if (ph, pw) != (h, w):
            border = cv2.BORDER_REFLECT_101 if min(h, w) > 1 else cv2.BORDER_REPLICATE
            src = cv2.copyMakeBorder(src, 0, ph - h, 0, pw - w, border)
        x = cv2.dnn.blobFromImage(src, scalefactor=1 / 127.5, mean=(127.5, 127.5, 127.5), swapRB=False)
        net = self._net()
        net.setInput(x)
        z = net.forward()[0, 0, :h, :w]
        return np.ascontiguousarray(z[:, ::-1] if flip else z, dtype=np.float32)

    def __getstate__(self):  # the OpenCV network is rebuilt in the receiving process
        return {"path": self.path, "provenance": self.provenance, "sha256": self.sha256, "multiple": self.multiple}

    def __setstate__(self, state):
        self.__init__(**state)

    def __repr__(self) -> str:
        return f"SkinNet({Path(self.path).name!r}, sha256={self.sha256[:12]!r})"


def clear_model_cache() -> None:
    """Forget the networks :func:`load_model` has read (after a model file was rewritten)."""
    _load_model_cached.cache_clear()


@functools.lru_cache(maxsize=4)
def _load_model_cached(path: str) -> SkinNet:
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise SkinImgError("skin model not found", p.name) from None
    except OSError as exc:
        raise SkinImgError(f"cannot read the skin model ({reason_text(exc, p)})", p.name) from None
    digest = hashlib.sha256(data).hexdigest()
    prov = {}
    meta = p.with_suffix(".json")
    if meta.is_file():
        try:
            prov = json.loads(meta.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SkinImgError(f"cannot read model provenance ({reason_text(exc, meta)})", meta.name) from None
        want = (prov.get("format") or {}).get("sha256")
        if want and want != digest:
            raise SkinImgError(f"the network does not match its provenance ({meta.name} names another file: "
                               f"sha256 {want[:12]}..., the file has {digest[:12]}...)", p.name)
    try:
        net = cv2.dnn.readNetFromONNX(path)
    except cv2.error:
        raise SkinImgError("not a readable ONNX network", p.name) from None
    if net.empty():
        raise SkinImgError("not a readable ONNX network", p.name)
    multiple = int((prov.get("format") or {}).get("input_multiple", 32))
    model = SkinNet(path, prov, digest, multiple)
    model._local.net = net
    return model


def load_model(path: str | os.PathLike | None = None) -> SkinNet:
    """Load the skin network (default ``models/skin_unet.onnx``); cached per path.

    Raises
    ------
    SkinImgError
        Missing or unreadable file, not an ONNX network, or a file whose SHA-256 differs from the one its
        provenance JSON records.
    """
    return _load_model_cached(os.fspath(Path(path) if path is not None else model_file(MODEL_FILE)))


def network_record(method: str = "model") -> dict | None:
    """What an output records of the skin network: ``{"file": name, "sha256": digest}`` of the default network
    (:func:`load_model`) for ``method="model"``, None for ``"rules"``."""
    if method != "model":
        return None
    model = load_model()
    return {"file": Path(model.path).name, "sha256": model.sha256}


def rules_mask(rgb: np.ndarray) -> np.ndarray:
    """Explicit YCrCb skin rule of Chai and Ngan (1999), DOI 10.1109/76.767122.

    Skin when ``133 <= Cr <= 173`` and ``77 <= Cb <= 127``, with ITU-R BT.601
    ``Cr = 0.713 (R - Y) + 128``, ``Cb = 0.564 (B - Y) + 128``,
    ``Y = 0.299 R + 0.587 G + 0.114 B`` on 8-bit sRGB values (OpenCV's conversion).

    Parameters
    ----------
    rgb : ndarray, uint8 or uint16, (H, W, 3), RGB order

    Returns
    -------
    ndarray, bool, (H, W)
    """
    rgb8 = to_uint8(check_rgb(rgb, allow_float=False))
    ycc = cv2.cvtColor(np.ascontiguousarray(rgb8), cv2.COLOR_RGB2YCrCb)
    return cv2.inRange(ycc, (0, 133, 77), (255, 173, 127)) > 0

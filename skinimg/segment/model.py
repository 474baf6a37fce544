"""The colour model: a Bayesian colour lookup table with its second stages, and the YCrCb rule.

``models/skin_lut.npz`` (found through :func:`skinimg.io.models_dir`) holds the uint8-quantised
log-odds table and the second stages' weights as plain arrays (never pickle); ``skin_lut.json``
beside it its provenance.  Training it is :func:`skinimg.train.train_segmenter`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..errors import SkinImgError
from ..io import check_rgb, load_npz, model_file, reason_text, to_uint8
from .features import FEATURE_NAMES
from .unet import NetRunner, check_weights

__all__ = ["MODEL_FILE", "DEFAULT_MODEL_PATH", "STAGE2_ARRAYS", "LLR_RANGE", "SkinModel", "load_model", "rules_mask",
           "require_both_stages", "table_probability", "clear_model_cache"]

#: File name of the default colour model in :func:`skinimg.io.models_dir` (its JSON provenance has the same stem).
MODEL_FILE = "skin_lut.npz"
#: Default colour model (at import; :func:`load_model` looks it up when called, so ``$SKINIMG_MODELS`` is honoured).
DEFAULT_MODEL_PATH = model_file(MODEL_FILE)
#: Stored log-odds are clipped to +-this and quantised to uint8.
LLR_RANGE = 8.0
#: Arrays of the second-stage classifier in the model NPZ (stored with the prefix ``s2_``).
STAGE2_ARRAYS = ("mu", "inv_sd", "W1", "b1", "W2", "b2")  # stored log-odds are clipped to [-8, 8] and quantised to uint8


@dataclass(frozen=True)
class SkinModel:
    """A compiled colour lookup table.

    Attributes
    ----------
    bits : int
        Quantisation: ``2**bits`` levels per sRGB channel.
    prob : ndarray, float32, (2**(3*bits),)
        P(skin | colour bin), index ``(r << 2b) | (g << b) | b`` of the quantised levels.
    provenance : dict
        The model's JSON (data, split, date, metrics), ``{}`` if there is none.
    sha256 : str
        Digest of the NPZ file.
    stage2 : dict or None
        Second-stage pixel classifier (:data:`STAGE2_ARRAYS`, float32): a one-hidden-layer
        perceptron over :data:`FEATURE_NAMES`; None = the rule-based vetoes of step 7.
    net : skinimg.segment.unet.NetRunner or None
        Convolutional second stage (a small U-Net, :mod:`skinimg.segment.unet`); used instead of ``stage2`` when
        ``SegmentParams.stage2_model == "net"``.
    """

    bits: int
    prob: np.ndarray
    provenance: dict = field(default_factory=dict)
    sha256: str = ""
    stage2: dict | None = None
    net: object = None

    def stage2_logit(self, features: np.ndarray) -> np.ndarray:
        """Log-odds of skin, float32 (N,), for float32 (N, F) rows of :func:`_pixel_features`.

        ``relu(((x - mu) / sd) W1 + b1) W2 + b2`` (a multilayer perceptron trained with
        scikit-learn's ``MLPClassifier``, weights stored as plain arrays).
        """
        s = self.stage2
        h = (features - s["mu"]) * s["inv_sd"]
        h = h @ s["W1"]
        h += s["b1"]
        np.maximum(h, np.float32(0), out=h)
        return h @ s["W2"][:, 0] + s["b2"][0]

    def predict_stage2(self, features: np.ndarray) -> np.ndarray:
        """P(skin | pixel features), float32 (N,): the sigmoid of :meth:`stage2_logit`."""
        return np.float32(1) / (np.float32(1) + np.exp(-self.stage2_logit(features)))

    def index(self, rgb8: np.ndarray) -> np.ndarray:
        """Flat LUT index (int32, (H, W)) of a uint8 RGB image."""
        s = 8 - self.bits
        q = rgb8 >> np.uint8(s) if s else rgb8
        idx = q[..., 0].astype(np.int32)
        idx <<= self.bits
        idx |= q[..., 1]
        idx <<= self.bits
        idx |= q[..., 2]
        return idx

    def predict(self, rgb8: np.ndarray) -> np.ndarray:
        """P(skin | colour), float32 (H, W), for a uint8 (H, W, 3) RGB image: one gather per pixel."""
        return self.prob[self.index(rgb8)]


def table_probability(q: np.ndarray) -> np.ndarray:
    """P(skin) float32 of stored uint8 log-odds ``q`` (any shape): ``llr = q * 16/255 - 8``, ``1 / (1 + exp(-llr))``."""
    return _sigmoid(_llr_from_uint8(q))


def clear_model_cache() -> None:
    """Forget the colour models :func:`load_model` has read (after a model file was rewritten)."""
    _load_model_cached.cache_clear()


def _llr_from_uint8(q: np.ndarray) -> np.ndarray:
    return (q.astype(np.float32) * np.float32(2 * LLR_RANGE / 255.0) - np.float32(LLR_RANGE))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-x.astype(np.float64)))).astype(np.float32)


@functools.lru_cache(maxsize=4)
def _load_model_cached(path: str) -> SkinModel:
    arrays = load_npz(path, label=Path(path).name)
    if "log_odds" not in arrays or "bits" not in arrays:
        raise SkinImgError("not a skinimg colour model (needs arrays 'log_odds' and 'bits')", Path(path).name)
    bits = int(arrays["bits"].reshape(-1)[0])
    q = arrays["log_odds"]
    if q.dtype != np.uint8 or q.size != 1 << (3 * bits) or not 3 <= bits <= 8:
        raise SkinImgError(f"colour model has a wrong table ({q.dtype}, {q.size} entries for {bits} bits)",
                           Path(path).name)
    prob = table_probability(q.reshape(-1))
    prob.setflags(write=False)
    meta_path = Path(path).with_suffix(".json")
    prov = {}
    if meta_path.is_file():
        try:
            prov = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SkinImgError(f"cannot read model provenance ({reason_text(exc, meta_path)})", meta_path.name) from None
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    stage2 = None
    if all(f"s2_{k}" in arrays for k in STAGE2_ARRAYS):
        stage2 = {k: np.ascontiguousarray(arrays[f"s2_{k}"], dtype=np.float32) for k in STAGE2_ARRAYS}
        nf, nh = len(FEATURE_NAMES), stage2["W1"].shape[-1]
        shapes = {"mu": (nf,), "inv_sd": (nf,), "W1": (nf, nh), "b1": (nh,), "W2": (nh, 1), "b2": (1,)}
        if any(stage2[k].shape != v for k, v in shapes.items()) or not all(np.isfinite(a).all() for a in stage2.values()):
            raise SkinImgError("colour model has a malformed second-stage classifier", Path(path).name)
    net = None
    net_arrays = {k[4:]: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items() if k.startswith("net_")}
    if net_arrays:
        check_weights(net_arrays, Path(path).name)
        net = NetRunner(net_arrays)
    return SkinModel(bits=bits, prob=prob, provenance=prov, sha256=digest, stage2=stage2, net=net)


def load_model(path: str | os.PathLike | None = None) -> SkinModel:
    """Load a colour lookup table (default ``models/skin_lut.npz``); cached per path.

    The NPZ is read with ``allow_pickle=False`` (:func:`skinimg.io.load_npz`).

    Raises
    ------
    SkinImgError
        Missing, corrupt or pickled file, or a table of the wrong size.
    """
    return _load_model_cached(os.fspath(Path(path) if path is not None else model_file(MODEL_FILE)))


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


def require_both_stages(model: SkinModel, check: bool) -> None:
    """``check`` compares the two second stages: a model without one of them is a one-line error."""
    if check and (model.stage2 is None or model.net is None):
        raise SkinImgError("the colour model lacks one of the two second stages (trained with --no-net?): "
                           "--check needs both")

"""A small U-Net: the convolutional second stage of the skin segmenter, run by OpenCV's DNN module.

Architecture (Ronneberger, Fischer and Brox 2015, *U-Net: convolutional networks for biomedical image
segmentation*, MICCAI, DOI 10.1007/978-3-319-24574-4_28), sized for a CPU: three 2 x 2 max-pool levels,
widths ``w, 2w, 2w, 4w`` (the shipped ``w = 12``: 81 181 weights), two 3 x 3 convolutions with ReLU per encoder level,
one per decoder level after bilinear upsampling (half-pixel centres) and concatenation with the skip
connection, and a 1 x 1 convolution to one log-odds channel.  Zero padding keeps every size, so any image
size works (odd sizes too: the upsampling goes to the skip connection's exact size).

Input (:func:`net_input`), float32 (5, H, W): sRGB / 255 - 0.5 (three channels), the colour table's log-odds
``log((p + 0.004) / (1.004 - p)) / 4`` with ``p`` rounded to 8 bits, and the clean-up region (steps 1-5 of
:mod:`skinimg.segment`) - 0.5.  Output: log-odds that a pixel is skin, float32 (H, W).

Weights live in the model's NPZ as plain float32 arrays ``net_<layer>_w`` (out, in, 3, 3) and ``net_<layer>_b``
(out,) for the layers of :data:`LAYERS` (never pickle).  Inference: :func:`onnx_bytes` writes the network as an
ONNX graph in memory (about 80 lines of protobuf encoding, no ``onnx`` package needed) that OpenCV's DNN module
runs (:class:`NetRunner`, with the channels padded to multiples of 8 (:func:`pad_channels`, same output): about 20 ms
on one thread for the 187 x 237 second-stage image of a 12 MP close-up, against 22-30 ms unpadded and about 150 ms
for a NumPy im2col implementation); :func:`forward_reference` is a plain NumPy
implementation of the same arithmetic, used by the tests to check it.  Training
(:func:`skinimg.train.network.train_unet`) needs PyTorch (``pip install 'skinimg[train]'``).
"""

from __future__ import annotations

import struct
import threading

import cv2
import numpy as np

from ..errors import SkinImgError


__all__ = ["LAYERS", "N_INPUT", "MIN_SIDE", "layer_shapes", "check_weights", "net_input", "forward_reference",
           "pad_channels", "onnx_bytes", "NetRunner"]

#: Layer names in order.
LAYERS = ("e1a", "e1b", "e2a", "e2b", "e3a", "e3b", "e4a", "e4b", "d3", "d2", "d1", "out")
#: Each layer's inputs (concatenated in this order) and output, as channel groups: "in" the 5 input channels,
#: "1" / "2" / "4" the ``w`` / ``2w`` / ``4w`` channels of a level, None the one output channel.
_LEVELS = {"e1a": (("in",), "1"), "e1b": (("1",), "1"), "e2a": (("1",), "2"), "e2b": (("2",), "2"),
           "e3a": (("2",), "2"), "e3b": (("2",), "2"), "e4a": (("2",), "4"), "e4b": (("4",), "4"),
           "d3": (("4", "2"), "2"), "d2": (("2", "2"), "2"), "d1": (("2", "1"), "1"), "out": (("1",), None)}
N_INPUT = 5


def layer_shapes(width: int) -> dict[str, tuple[tuple[int, ...], tuple[int]]]:
    """``{layer: ((out, in, k, k), (out,))}`` of the U-Net of width ``width``."""
    groups = {"in": N_INPUT, "1": width, "2": 2 * width, "4": 4 * width}
    out = {}
    for name in LAYERS:
        ins, level = _LEVELS[name]
        ci = sum(groups[g] for g in ins)
        co = 1 if level is None else groups[level]
        k = 1 if name == "out" else 3
        out[name] = ((co, ci, k, k), (co,))
    return out


def check_weights(weights: dict[str, np.ndarray], label: str = "network") -> int:
    """Validate ``{"<layer>_w": ..., "<layer>_b": ...}`` float32 arrays; returns the width.

    Raises
    ------
    SkinImgError
        A missing, misshapen or non-finite array.
    """
    try:
        width = int(weights["e1a_w"].shape[0])
    except (KeyError, IndexError, AttributeError):
        raise SkinImgError("malformed convolutional second stage (no first layer)", label) from None
    for name, (ws, bs) in layer_shapes(width).items():
        w, b = weights.get(f"{name}_w"), weights.get(f"{name}_b")
        if w is None or b is None or w.shape != ws or b.shape != bs:
            raise SkinImgError(f"malformed convolutional second stage (layer {name})", label)
        if not (np.isfinite(w).all() and np.isfinite(b).all()):
            raise SkinImgError(f"convolutional second stage has non-finite weights (layer {name})", label)
    return width


def net_input(rgb8: np.ndarray, p: np.ndarray, region: np.ndarray) -> np.ndarray:
    """The network's input, float32 (5, H, W), from a uint8 (H, W, 3) sRGB image, the colour table's
    P(skin) float32 (H, W) in [0, 1] and the region bool (H, W)."""
    f32 = np.float32
    h, w = region.shape
    x = np.empty((N_INPUT, h, w), dtype=f32)
    rgb = rgb8.astype(f32)
    rgb *= f32(1 / 255.0)
    rgb -= f32(0.5)
    x[:3] = cv2.split(rgb)
    q = np.floor(p * f32(255) + f32(0.5)) * f32(1 / 255.0)  # the 8-bit rounding of the training data
    x[3] = np.log((q + f32(0.004)) / (f32(1.004) - q)) * f32(0.25)
    x[4] = region.astype(f32) - f32(0.5)
    return x


# ----------------------------------------------------------------------------- NumPy reference


def _conv_ref(x: np.ndarray, w: np.ndarray, b: np.ndarray, relu: bool) -> np.ndarray:
    """Cross-correlation with zero padding (PyTorch ``Conv2d(padding=k // 2)``): x (C, H, W) -> (O, H, W)."""
    co, ci, k, _ = w.shape
    _, h, wd = x.shape
    r = k // 2
    xp = np.pad(x, ((0, 0), (r, r), (r, r)))
    y = np.zeros((co, h, wd), dtype=np.float64)
    for dy in range(k):
        for dx in range(k):
            y += np.tensordot(w[:, :, dy, dx].astype(np.float64), xp[:, dy:dy + h, dx:dx + wd], axes=1)
    y += b[:, None, None]
    return np.maximum(y, 0) if relu else y


def _upsample_ref(a: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear resize of (C, h0, w0) to (C, h, w), half-pixel centres, edges clamped (PyTorch
    ``interpolate(mode="bilinear", align_corners=False)``)."""
    _, h0, w0 = a.shape

    def axis(n_out, n_in):
        s = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
        s = np.maximum(s, 0)
        i0 = np.minimum(np.floor(s).astype(int), n_in - 1)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, s - i0

    y0, y1, fy = axis(h, h0)
    x0, x1, fx = axis(w, w0)
    rows = a[:, y0] * (1 - fy)[None, :, None] + a[:, y1] * fy[None, :, None]
    return rows[:, :, x0] * (1 - fx) + rows[:, :, x1] * fx


def forward_reference(x: np.ndarray, weights: dict[str, np.ndarray]) -> np.ndarray:
    """Log-odds, float64 (H, W), of input ``x`` float32 (5, H, W): a slow, plain NumPy U-Net (float64
    arithmetic) that the fast runner is tested against."""
    def conv(t, name, relu=True):
        return _conv_ref(t, weights[f"{name}_w"], weights[f"{name}_b"], relu)

    def pool(t):
        c, h, w = t.shape
        return t[:, :h // 2 * 2, :w // 2 * 2].reshape(c, h // 2, 2, w // 2, 2).max(axis=(2, 4))

    def up_cat(t, skip):
        return np.concatenate([_upsample_ref(t, *skip.shape[1:]), skip])

    a = conv(conv(x.astype(np.float64), "e1a"), "e1b")
    b = conv(conv(pool(a), "e2a"), "e2b")
    c = conv(conv(pool(b), "e3a"), "e3b")
    e = conv(conv(pool(c), "e4a"), "e4b")
    u = conv(up_cat(e, c), "d3")
    u = conv(up_cat(u, b), "d2")
    u = conv(up_cat(u, a), "d1")
    return conv(u, "out", relu=False)[0]


# ----------------------------------------------------------------------------- ONNX graph (protobuf wire format)


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # two's complement for negative int64
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint((field << 3) | wire)


def _int(field: int, n: int) -> bytes:
    return _key(field, 0) + _varint(n)


def _bytes(field: int, data: bytes | str) -> bytes:
    if isinstance(data, str):
        data = data.encode()
    return _key(field, 2) + _varint(len(data)) + data


def _attr(name: str, value) -> bytes:
    """onnx.AttributeProto: name = 1, f = 2, i = 3, s = 4, ints = 8, type = 20."""
    if isinstance(value, float):
        return _bytes(1, name) + _key(2, 5) + struct.pack("<f", value) + _int(20, 1)
    if isinstance(value, int):
        return _bytes(1, name) + _int(3, value) + _int(20, 2)
    if isinstance(value, str):
        return _bytes(1, name) + _bytes(4, value) + _int(20, 3)
    return _bytes(1, name) + b"".join(_int(8, v) for v in value) + _int(20, 7)


def _node(op: str, inputs, outputs, **attrs) -> bytes:
    """onnx.NodeProto: input = 1, output = 2, name = 3, op_type = 4, attribute = 5."""
    return (b"".join(_bytes(1, i) for i in inputs) + b"".join(_bytes(2, o) for o in outputs)
            + _bytes(3, outputs[0]) + _bytes(4, op) + b"".join(_bytes(5, _attr(k, v)) for k, v in sorted(attrs.items())))


def _tensor(name: str, a: np.ndarray) -> bytes:
    """onnx.TensorProto: dims = 1, data_type = 2 (FLOAT 1, INT64 7), name = 8, raw_data = 9 (little-endian)."""
    dtype = {np.dtype(np.float32): 1, np.dtype(np.int64): 7}[a.dtype]
    raw = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes()
    return b"".join(_int(1, d) for d in a.shape) + _int(2, dtype) + _bytes(8, name) + _bytes(9, raw)


def _value_info(name: str, dims) -> bytes:
    """onnx.ValueInfoProto of a float tensor; a str dim is symbolic (dim_param), an int fixed (dim_value)."""
    shape = b"".join(_bytes(1, _bytes(2, d) if isinstance(d, str) else _int(1, d)) for d in dims)
    tensor_type = _int(1, 1) + _bytes(2, shape)
    return _bytes(1, name) + _bytes(2, _bytes(1, tensor_type))


def pad_channels(weights: dict[str, np.ndarray], multiple: int = 8) -> dict[str, np.ndarray]:
    """The same network with every level's channel count rounded up to ``multiple`` (float32 arrays).

    The added channels have zero weights and zero bias, so they stay zero through every ReLU and the next
    layer gives them zero weight: the output is the same function (the tests check it).  OpenCV's DNN
    convolutions are much faster for channel counts that are multiples of 8: the shipped width 12 padded to 16
    runs in 18-22 ms instead of 22-30 ms at about 190 x 240 on one thread (the time depends on the values too).
    Weights are checked (:func:`check_weights`).
    """
    width = check_weights(weights)
    real = {"in": N_INPUT, "1": width, "2": 2 * width, "4": 4 * width}
    padded = {k: (v if k == "in" else -(-v // multiple) * multiple) for k, v in real.items()}
    out = {}
    for name, (ins, level) in _LEVELS.items():
        w0 = np.asarray(weights[f"{name}_w"], np.float32)
        b0 = np.asarray(weights[f"{name}_b"], np.float32)
        co0 = w0.shape[0]
        co = co0 if level is None else padded[level]
        w = np.zeros((co, sum(padded[i] for i in ins)) + w0.shape[2:], np.float32)
        src = dst = 0
        for i in ins:
            w[:co0, dst:dst + real[i]] = w0[:, src:src + real[i]]
            src += real[i]
            dst += padded[i]
        b = np.zeros(co, np.float32)
        b[:co0] = b0
        out[f"{name}_w"], out[f"{name}_b"] = w, b
    return out


def onnx_bytes(weights: dict[str, np.ndarray], *, pad: int = 1) -> bytes:
    """The U-Net as a serialised ONNX model (IR version 7, opset 13) with ``weights`` as initialisers.

    Input ``x`` float (1, 5, H, W), output ``z`` float (1, 1, H, W), H and W symbolic.  Upsampling is
    ``Resize`` (linear, half-pixel) to the skip connection's own size, read with ``Shape``/``Slice``.
    ``pad > 1``: the channels are first padded to multiples of ``pad`` (:func:`pad_channels`; same output).
    """
    check_weights(weights)
    if pad > 1:
        weights = pad_channels(weights, pad)
    nodes, inits = [], []
    for name in LAYERS:
        inits.append(_tensor(f"{name}_w", np.asarray(weights[f"{name}_w"], np.float32)))
        inits.append(_tensor(f"{name}_b", np.asarray(weights[f"{name}_b"], np.float32)))
    for k, v in {"i0": 0, "i2": 2, "i4": 4}.items():
        inits.append(_tensor(k, np.array([v], np.int64)))

    def conv(src, name, relu=True):
        k = 1 if name == "out" else 3
        r = k // 2
        nodes.append(_node("Conv", [src, f"{name}_w", f"{name}_b"], [f"{name}_c"], kernel_shape=[k, k],
                           pads=[r, r, r, r], strides=[1, 1], dilations=[1, 1], group=1))
        if not relu:
            return f"{name}_c"
        nodes.append(_node("Relu", [f"{name}_c"], [name]))
        return name

    def pool(src, name):
        nodes.append(_node("MaxPool", [src], [name], kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 0, 0]))
        return name

    def up_cat(src, skip, name):
        nodes.append(_node("Shape", [src], [f"{name}_s0"]))
        nodes.append(_node("Shape", [skip], [f"{name}_s1"]))
        nodes.append(_node("Slice", [f"{name}_s0", "i0", "i2", "i0"], [f"{name}_nc"]))
        nodes.append(_node("Slice", [f"{name}_s1", "i2", "i4", "i0"], [f"{name}_hw"]))
        nodes.append(_node("Concat", [f"{name}_nc", f"{name}_hw"], [f"{name}_size"], axis=0))
        nodes.append(_node("Resize", [src, "", "", f"{name}_size"], [f"{name}_up"], mode="linear",
                           coordinate_transformation_mode="half_pixel"))
        nodes.append(_node("Concat", [f"{name}_up", skip], [f"{name}_cat"], axis=1))
        return f"{name}_cat"

    a = conv(conv("x", "e1a"), "e1b")
    b = conv(conv(pool(a, "p1"), "e2a"), "e2b")
    c = conv(conv(pool(b, "p2"), "e3a"), "e3b")
    e = conv(conv(pool(c, "p3"), "e4a"), "e4b")
    u = conv(up_cat(e, c, "u3"), "d3")
    u = conv(up_cat(u, b, "u2"), "d2")
    u = conv(up_cat(u, a, "u1"), "d1")
    nodes.append(_node("Identity", [conv(u, "out", relu=False)], ["z"]))
    graph = (b"".join(_bytes(1, n) for n in nodes) + _bytes(2, "skinimg_unet")
             + b"".join(_bytes(5, t) for t in inits)
             + _bytes(11, _value_info("x", [1, N_INPUT, "h", "w"])) + _bytes(12, _value_info("z", [1, 1, "h", "w"])))
    opset = _bytes(1, "") + _int(2, 13)
    return _int(1, 7) + _bytes(2, "skinimg") + _bytes(7, graph) + _bytes(8, opset)


#: Below this height or width OpenCV's DNN gives wrong values for this network (seen with OpenCV 5.0: its coarsest
#: level is then one pixel wide); :class:`NetRunner` runs such inputs through :func:`forward_reference`.
MIN_SIDE = 16


class NetRunner:
    """Runs the U-Net with OpenCV's DNN module (built once from :func:`onnx_bytes`; one forward at a time).

    ``runner(x)``: input float32 (5, H, W) -> log-odds float32 (H, W).  Inputs under :data:`MIN_SIDE`
    pixels a side go through :func:`forward_reference` (milliseconds at that size), padded with zeros to 8 pixels
    a side if smaller (the network's three 2 x 2 pools need 8).
    """

    def __init__(self, weights: dict[str, np.ndarray]):
        self.width = check_weights(weights)
        self._weights = weights
        self._net = None
        self._lock = threading.Lock()

    @property
    def weights(self) -> dict[str, np.ndarray]:
        """The network's arrays, ``{"<layer>_w", "<layer>_b"}`` (do not modify)."""
        return self._weights

    def _build(self):
        buf = np.frombuffer(onnx_bytes(self._weights, pad=8), dtype=np.uint8)
        try:
            net = cv2.dnn.readNetFromONNX(buf)
        except cv2.error as exc:  # pragma: no cover - an OpenCV without the ONNX importer
            raise SkinImgError(f"OpenCV cannot build the convolutional second stage ({str(exc).strip()[:200]})") from None
        return net

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if min(x.shape[1:]) < MIN_SIDE:
            h, w = x.shape[1:]
            if min(h, w) < 8:  # three 2 x 2 pools need 8 pixels: pad with zeros (what the convolutions pad with)
                x = np.pad(x, ((0, 0), (0, max(8 - h, 0)), (0, max(8 - w, 0))))
            return forward_reference(x, self._weights)[:h, :w].astype(np.float32)
        x = np.ascontiguousarray(x, dtype=np.float32)[None]
        with self._lock:
            if self._net is None:
                self._net = self._build()
            self._net.setInput(x)
            z = self._net.forward()
        return np.asarray(z, dtype=np.float32).reshape(x.shape[2:])

    def __getstate__(self):  # the OpenCV network and the lock are rebuilt in the receiving process
        return {"width": self.width, "_weights": self._weights}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._net = None
        self._lock = threading.Lock()

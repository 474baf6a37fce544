"""User indices of the tests (a user's module): re-implementations of built-ins, and broken ones."""

from __future__ import annotations

import time

import numpy as np

# IEC 61966-2-1 linear sRGB -> XYZ (D65), and the D65 white of skinimg.colour (CIE 015:2018, 2 degree)
_M = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])


def a_star(rgb, mask, *, linear):
    """CIELAB a* (D65) re-implemented from linear RGB in float32, as a user would write it."""
    from skinimg.color import D65_WHITE_XYZ

    xyz = linear @ _M.T.astype(np.float32)
    t = xyz / D65_WHITE_XYZ.astype(np.float32)
    eps, kappa = 216.0 / 24389.0, 24389.0 / 27.0
    f = np.where(t > eps, np.cbrt(t), (np.float32(kappa) * t + 16.0) / 116.0).astype(np.float32)
    a = (500.0 * (f[..., 0] - f[..., 1])).astype(np.float32)
    return np.where(mask, a, np.nan)


a_star.skinimg_target = "hemoglobin"
a_star.skinimg_unit = "a*"


def erythema_ratio(rgb, mask):
    """A per-pixel index from the encoded photo alone: log10(R / G) (as a user's first try would be)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(mask, np.log10(rgb[..., 0] / rgb[..., 1]), np.nan)


def mean_red(rgb, mask):
    """A per-image index: the mean encoded red of the skin."""
    return float(rgb[..., 0][mask].mean())


def broken(rgb, mask):
    raise ValueError("this index is broken\nsecond line of the message")


def wrong_shape(rgb, mask):
    return rgb  # (H, W, 3): not a map


def text(rgb, mask):
    return "high"


def writes_input(rgb, mask):
    rgb[..., 0] = 0  # the inputs are read-only
    return 0.0


def slow(rgb, mask):
    """Pure Python busy loop for up to 30 s (interrupted by the timeout)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 30.0:
        pass
    return 0.0


def swallows(rgb, mask):
    """Catches Exception around a sleep: the timeout is a BaseException and still stops it."""
    try:
        time.sleep(30.0)
    except Exception:
        return 1.0
    return 2.0


def wants_everything(rgb, mask, **inputs):
    assert set(inputs) == {"linear", "unsmoothed"}
    return float(inputs["linear"][mask].mean() - inputs["unsmoothed"][mask].mean())


not_a_function = 3

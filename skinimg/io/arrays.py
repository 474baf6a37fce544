"""The gate of the library's image functions and the one conversion to 8 bits.

:func:`check_rgb` is what every public function on photos calls first (segmentation, indices,
calibration, comparison): one shape and dtype check, one error type
(:class:`~skinimg.errors.ImageArrayError`).  :func:`to_uint8` is the only place a 16-bit or float
photo becomes 8-bit (detection, segmentation, registration, display).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..errors import ImageArrayError

__all__ = ["check_rgb", "to_uint8"]


def check_rgb(rgb, *, allow_float: bool = True, what: str | None = None) -> np.ndarray:
    """Check that ``rgb`` is an RGB photo a function of skinimg can use; return it as an array (no copy).

    Parameters
    ----------
    rgb : array_like, shape (H, W, 3), H, W >= 1
        Encoded sRGB, channel order R, G, B: uint8 [0, 255], uint16 [0, 65535] or, with
        ``allow_float``, float in [0, 1] (values are not checked, only the dtype).
    allow_float : bool
        Accept floating-point images (default); False for functions that index colour tables.
    what : str, optional
        Names the array in the message ("BEFORE: expected ...").

    Returns
    -------
    ndarray, the same data as ``np.asarray(rgb)``.

    Raises
    ------
    ImageArrayError
        Wrong shape (a ``ValueError``) or dtype (a ``TypeError``), quoting the bad value.

    Examples
    --------
    >>> check_rgb(np.zeros((2, 3, 3), np.uint8)).shape
    (2, 3, 3)
    """
    rgb = np.asarray(rgb)
    prefix = f"{what}: " if what else ""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise ImageArrayError(f"{prefix}expected an RGB image of shape (H, W, 3), got shape {rgb.shape}")
    if not (rgb.dtype in (np.uint8, np.uint16) or (allow_float and np.issubdtype(rgb.dtype, np.floating))):
        kinds = "uint8, uint16 or float in [0, 1]" if allow_float else "uint8 or uint16"
        raise ImageArrayError(f"{prefix}unsupported image dtype {rgb.dtype}; expected {kinds}")
    return rgb


@lru_cache(maxsize=1)
def _u16_to_u8() -> np.ndarray:
    # rounding division by 257: 0..65535 onto 0..255, exact at both ends and for x * 257
    return ((np.arange(65536, dtype=np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """An image as uint8: the one 16-bit / float to 8-bit conversion of skinimg.

    Parameters
    ----------
    image : ndarray, any shape, uint8 [0, 255], uint16 [0, 65535] or float [0, 1]

    Returns
    -------
    ndarray, uint8, same shape: uint8 input as it is (not copied); uint16 rounded to the nearest
    8-bit level, ``round(x / 257)`` (so ``x * 257`` gives back ``x``); float ``round(255 x)`` clipped
    to [0, 255].

    Raises
    ------
    ImageArrayError
        For another dtype.

    Examples
    --------
    >>> to_uint8(np.array([0, 128, 32896, 65535], np.uint16))
    array([  0,   0, 128, 255], dtype=uint8)
    """
    a = np.asarray(image)
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.uint16:
        return _u16_to_u8()[a]
    if np.issubdtype(a.dtype, np.floating):
        return np.clip(np.rint(a.astype(np.float32) * np.float32(255.0)), 0, 255).astype(np.uint8)
    raise ImageArrayError(f"unsupported image dtype {a.dtype}; expected uint8, uint16 or float in [0, 1]")

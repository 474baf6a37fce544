"""Reading photographs: an upright RGB array and what the file says about itself.

:func:`load_image` returns an upright **RGB** array (``uint8`` or ``uint16``, never BGR)
and an :class:`ImageMeta`.  The header is read first (Pillow, lazily) so that a file
declaring too many pixels is refused before any pixel is decoded; pixels are then decoded
by OpenCV (fast, 8- and 16-bit) and the EXIF orientation is applied.

Errors are :class:`~skinimg.errors.SkinImgError` naming the file and the reason.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import re
import threading
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import SkinImgError
from .worksize import REDUCED_FLAGS as _REDUCED
from .worksize import reduced_decode_factor, work_size

__all__ = ["DEFAULT_MAX_PIXELS", "ImageMeta", "load_image", "read_header", "reason_text"]

#: Default pixel limit (80 megapixels); larger images are refused before decoding.
DEFAULT_MAX_PIXELS = 80_000_000

_COLOUR_MODES = {"RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "RGBa", "I;16RGB"}
_GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_PALETTE_MODES = {"P", "PA"}
_EXIF_ORIENTATION = 0x0112
_EXIF_IFD = 0x8769
_EXIF_DATETIME_ORIGINAL = 0x9003
_EXIF_DATETIME = 0x0132
_EXIF_MODEL = 0x0110
_EXIF_MAKE = 0x010F


@dataclass(frozen=True)
class ImageMeta:
    """What :func:`load_image` learned about a file.

    Attributes
    ----------
    path : str
        The path as given by the caller.
    width, height : int
        Size of the returned, upright array (after EXIF orientation).
    photo_width, photo_height : int
        Size of the upright photo in the file; larger than ``width``, ``height`` when :func:`load_image` returned a
        working copy (``work_pixels``), equal otherwise.
    bit_depth : int
        8 or 16 (bits per channel of the returned array).
    format : str
        Container format reported by Pillow ("JPEG", "PNG", ...).
    orientation : int
        EXIF orientation tag found in the file (1 = already upright).
    capture_time : str or None
        EXIF ``DateTimeOriginal`` (or ``DateTime``) as ISO 8601, when present.
    camera_model : str or None
        EXIF ``Make Model``, when present.
    has_icc_profile : bool
        Whether an ICC profile is embedded (skinimg assumes sRGB; see README).
    had_alpha : bool
        True when an alpha channel was present and dropped.
    source_mode : str
        Pillow mode of the file ("RGB", "RGBA", "CMYK", ...).
    """

    path: str
    width: int
    height: int
    bit_depth: int
    format: str
    orientation: int = 1
    capture_time: str | None = None
    camera_model: str | None = None
    has_icc_profile: bool = False
    had_alpha: bool = False
    source_mode: str = "RGB"
    photo_width: int = 0
    photo_height: int = 0

    @property
    def photo_shape(self) -> tuple[int, int]:
        """(H, W) of the upright photo in the file (that of the returned array when it was not recorded)."""
        return (self.photo_height or self.height, self.photo_width or self.width)

    @property
    def scale(self) -> float:
        """Side of the returned array / side of the photo (1.0 unless a working copy was returned)."""
        return self.width / self.photo_width if self.photo_width else 1.0

    def to_dict(self) -> dict:
        return asdict(self)


def _display(path: str | os.PathLike, label: str | os.PathLike | None) -> str:
    return os.fspath(label if label is not None else path)


_BYTES_REPR = re.compile(r"""b(['"]).*?(?<!\\)\1""")


def reason_text(exc: BaseException, path: str | os.PathLike | None = None) -> str:
    """A decoder's error message made safe for a one-line report.

    The OS error text without the file name (``strerror``), byte strings copied from
    the file replaced by ``<bytes>`` (no image content in messages), the file's full
    path removed, one line, at most 160 characters.
    """
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
    else:
        text = str(exc)
    if path is not None:
        full = os.fspath(path)
        for variant in {full, os.path.abspath(full)}:
            if variant and variant not in (".", ""):
                text = text.replace(variant, os.path.basename(full))
    text = _BYTES_REPR.sub("<bytes>", text)
    text = " ".join(text.split())
    return text if len(text) <= 160 else text[:157] + "..."


def _exif_datetime(value) -> str | None:
    if not value:
        return None
    text = str(value).strip().strip("\x00")
    for fmt in ("%Y:%m:%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y:%m:%d %H:%M"):
        try:
            return _dt.datetime.strptime(text, fmt).isoformat()
        except ValueError:
            continue
    return None


def _declared_size(p: Path) -> str:
    """Best-effort "W x H pixels" from a PNG header, for the message about refused images."""
    try:
        with open(p, "rb") as fh:
            head = fh.read(24)
        if head[:8] == b"\x89PNG\r\n\x1a\n":
            w, h = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
            return f"{w}x{h} = {w * h / 1e6:.0f} megapixels"
    except OSError:
        pass
    return "more pixels than can be decoded safely"


def _parse_exif(im: Image.Image) -> dict:
    """Orientation, capture time and camera from EXIF; malformed EXIF never makes a photo unreadable."""
    out = {"orientation": 1, "capture_time": None, "camera_model": None}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Corrupt EXIF data": the pixels may still be fine
            exif = im.getexif()
            if not exif:
                return out
            orientation = exif.get(_EXIF_ORIENTATION, 1)
            out["orientation"] = orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else 1
            try:
                capture = _exif_datetime(exif.get_ifd(_EXIF_IFD).get(_EXIF_DATETIME_ORIGINAL))
            except Exception:
                capture = None
            out["capture_time"] = capture or _exif_datetime(exif.get(_EXIF_DATETIME))
            make = str(exif.get(_EXIF_MAKE, "") or "").strip().strip("\x00")
            model = str(exif.get(_EXIF_MODEL, "") or "").strip().strip("\x00")
            out["camera_model"] = (model if (not make or model.startswith(make)) else f"{make} {model}") or None
    except Exception:
        pass
    return out


def read_header(path: str | os.PathLike, *, label: str | None = None) -> tuple[Image.Image, dict]:
    """Open ``path`` lazily with Pillow (header only) and return the image and its metadata.

    Nothing is decoded.  Raises :class:`SkinImgError` for missing, unreadable,
    empty and unrecognised files and for headers declaring a decompression bomb.
    """
    shown = _display(path, label)
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise SkinImgError("file not found", shown) from None
    except OSError as exc:  # symlink loops, permission on a parent folder ...
        raise SkinImgError(f"cannot read file ({exc.strerror or exc})", shown) from None
    if p.is_dir():
        raise SkinImgError("is a folder, not an image file", shown)
    if st.st_size == 0:
        raise SkinImgError("empty file (0 bytes)", shown)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # e.g. "Corrupt EXIF data" in a TIFF header
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(p)
    except PermissionError:
        raise SkinImgError("permission denied", shown) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        w_h = _declared_size(p)
        raise SkinImgError(f"image too large: header declares {w_h}; refused before decoding", shown) from None
    except UnidentifiedImageError:
        raise SkinImgError("not a supported image file (unrecognised format)", shown) from None
    except OSError as exc:
        raise SkinImgError(f"cannot read image header ({reason_text(exc, p)})", shown) from None
    except Exception as exc:  # Pillow's parsers raise ValueError, SyntaxError, struct.error ... on hostile headers
        raise SkinImgError(f"corrupt image header ({type(exc).__name__}: {reason_text(exc, p)})", shown) from None
    info: dict = {"format": im.format or "unknown", "mode": im.mode, "size": tuple(im.size)}
    info.update(_parse_exif(im))
    info["has_icc_profile"] = bool(im.info.get("icc_profile"))
    return im, info


def _apply_orientation(a: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to an (H, W, C) array, as Pillow's exif_transpose."""
    if orientation == 2:
        a = a[:, ::-1]
    elif orientation == 3:
        a = a[::-1, ::-1]
    elif orientation == 4:
        a = a[::-1, :]
    elif orientation == 5:
        a = a.swapaxes(0, 1)
    elif orientation == 6:
        a = np.rot90(a, k=-1)
    elif orientation == 7:
        a = a[::-1, ::-1].swapaxes(0, 1)
    elif orientation == 8:
        a = np.rot90(a, k=1)
    return np.ascontiguousarray(a)


def load_image(
    path: str | os.PathLike,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    label: str | os.PathLike | None = None,
    work_pixels: int | None = None,
) -> tuple[np.ndarray, ImageMeta]:
    """Load a colour photograph as an upright RGB array.

    Parameters
    ----------
    path : path-like
        JPEG, PNG, TIFF, BMP or WebP file, 8 or 16 bits per channel.
    max_pixels : int or None
        Refuse files whose header declares more pixels than this (default 80 MP),
        before decoding.  ``None`` disables the limit (Pillow's own bomb guard at
        about 179 MP still applies).
    label : path-like, optional
        How to name the file in error messages (e.g. relative to the input root).
    work_pixels : int or None
        Return a working copy of at most about this many pixels when the photo has more
        (:func:`skinimg.io.work_size`: the same aspect ratio, area-averaged).  An 8-bit JPEG is decoded
        straight at 1/2, 1/4 or 1/8 of its side by the JPEG decoder's scaled inverse DCT (libjpeg) and then
        area-averaged to the working size; other files are decoded in full and area-averaged
        (``cv2.INTER_AREA``).  ``meta.photo_width``, ``meta.photo_height`` keep the photo's own size.  None
        (default): the photo at its own size.

    Returns
    -------
    rgb : ndarray, shape (H, W, 3), uint8 [0, 255] or uint16 [0, 65535]
        Channel order R, G, B; EXIF orientation applied; alpha dropped.
    meta : ImageMeta

    Raises
    ------
    SkinImgError
        Missing, empty, truncated, corrupt or non-image files; grayscale or
        palette images ("colour photograph required"); images over ``max_pixels``.

    Notes
    -----
    * RGBA/RGBX: the alpha channel is dropped, colour kept as stored (not composited).
    * CMYK JPEGs are converted to RGB by the decoder (naive, no ICC transform).
    * Embedded ICC profiles are not applied; pixels are taken as sRGB and
      ``meta.has_icc_profile`` says a profile was there.
    """
    shown = _display(path, label)
    im, info = read_header(path, label=shown)
    w, h = info["size"]
    mode = info["mode"]
    try:
        if max_pixels is not None and w * h > max_pixels:
            raise SkinImgError(
                f"image too large: {w}x{h} = {w * h / 1e6:.1f} megapixels exceeds the limit of "
                f"{max_pixels / 1e6:g} megapixels (raise it with --max-pixels)",
                shown,
            )
        if w < 1 or h < 1:
            raise SkinImgError(f"image has no pixels ({w}x{h})", shown)
        if mode in _PALETTE_MODES:
            raise SkinImgError("colour photograph required (palette/indexed image)", shown)
        if mode in _GREY_MODES:
            raise SkinImgError(f"colour photograph required (grayscale image, mode {mode})", shown)
        if mode not in _COLOUR_MODES and not mode.startswith("RGB"):
            raise SkinImgError(f"unsupported colour mode {mode}", shown)
        had_alpha = mode in {"RGBA", "RGBa", "LA", "PA"}
    finally:
        im.close()
    try:
        data = np.fromfile(os.fspath(path), dtype=np.uint8)
    except OSError as exc:
        raise SkinImgError(f"cannot read file ({exc.strerror or exc})", shown) from None
    flags = cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION
    target = work_size(w, h, work_pixels)
    if target != (w, h) and info["format"] == "JPEG" and mode in ("RGB", "YCbCr"):
        k = reduced_decode_factor((w, h), target)
        if k > 1:
            flags = _REDUCED[k] | cv2.IMREAD_IGNORE_ORIENTATION
    with _quiet_codec_stderr():
        arr = cv2.imdecode(data, flags) if data.size else None
    del data
    if arr is None:
        raise SkinImgError(_decode_failure_reason(path), shown)
    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (1, 2)):
        raise SkinImgError("colour photograph required (grayscale image)", shown)
    if arr.dtype not in (np.uint8, np.uint16):
        raise SkinImgError(f"unsupported sample format {arr.dtype} (8- or 16-bit integer required)", shown)
    if arr.shape[2] == 4:
        had_alpha = True
        arr = arr[:, :, :3]
    if arr.shape[2] != 3:
        raise SkinImgError(f"unsupported channel count {arr.shape[2]}", shown)
    if target != (w, h) and tuple(arr.shape[1::-1]) != target:  # the rest of the way to the working size
        arr = cv2.resize(np.ascontiguousarray(arr), target, interpolation=cv2.INTER_AREA)
    rgb = cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_BGR2RGB)
    del arr
    rgb = _apply_orientation(rgb, info["orientation"])
    transposed = info["orientation"] in (5, 6, 7, 8)
    meta = ImageMeta(
        path=shown,
        width=int(rgb.shape[1]),
        height=int(rgb.shape[0]),
        bit_depth=16 if rgb.dtype == np.uint16 else 8,
        format=info["format"],
        orientation=info["orientation"],
        capture_time=info["capture_time"],
        camera_model=info["camera_model"],
        has_icc_profile=info["has_icc_profile"],
        had_alpha=had_alpha,
        source_mode=mode,
        photo_width=int(h if transposed else w),
        photo_height=int(w if transposed else h),
    )
    return rgb, meta


_STDERR_LOCK = threading.Lock()


@contextlib.contextmanager
def _quiet_codec_stderr():
    """Silence what libjpeg/libpng print straight to file descriptor 2 while decoding.

    Broken files are reported by skinimg in one line; the codecs' own messages
    ("libpng error: IDAT: incorrect data check") would only add noise.  The file
    descriptor is restored afterwards; nothing else writes during a decode call.
    """
    with _STDERR_LOCK:
        try:
            saved = os.dup(2)
        except OSError:  # no stderr at all
            yield
            return
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, 2)
            finally:
                os.close(devnull)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _decode_failure_reason(path) -> str:
    """Ask Pillow why a file OpenCV could not decode is broken (truncated, corrupt)."""
    try:
        with _quiet_codec_stderr(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                im.load()
    except OSError as exc:
        msg = reason_text(exc, path)
        if "truncated" in msg.lower():
            return "truncated image file"
        return f"corrupt image data ({msg})"
    except Exception as exc:  # pragma: no cover - defensive
        return f"corrupt image data ({reason_text(exc, path)})"
    return "image data could not be decoded"

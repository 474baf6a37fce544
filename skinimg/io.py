"""Loading photographs and writing outputs.

Reading: :func:`load_image` returns an upright **RGB** array (``uint8`` or ``uint16``,
never BGR) and an :class:`ImageMeta`.  The header is read first (Pillow, lazily) so
that a file declaring too many pixels is refused before any pixel is decoded; pixels
are then decoded by OpenCV (fast, 8- and 16-bit) and the EXIF orientation is applied.

Writing: every writer is atomic (temporary file in the target folder, ``fsync``,
``os.replace``), so an interrupted run never leaves a half-written output; exported
images are encoded from the pixel array alone and carry no EXIF/GPS/maker notes.

Errors are :class:`~skinimg.errors.SkinImgError` naming the file and the reason.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import fnmatch
import io as _io
import json
import math
import os
import re
import stat
import tempfile
import threading
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import SkinImgError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "ImageMeta",
    "load_image",
    "read_header",
    "discover_images",
    "InputImage",
    "output_stems",
    "atomic_write",
    "write_bytes",
    "write_png",
    "write_tiff",
    "write_json",
    "write_csv",
    "read_mask",
    "remove_stale_temp_files",
    "safe_output_path",
    "load_npz",
]

#: Default pixel limit (80 megapixels); larger images are refused before decoding.
DEFAULT_MAX_PIXELS = 80_000_000
#: File extensions treated as images when a folder is scanned (lower case).
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".tif", ".tiff", ".bmp", ".webp"})

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

    def to_dict(self) -> dict:
        return asdict(self)


def _display(path: str | os.PathLike, label: str | os.PathLike | None) -> str:
    return os.fspath(label if label is not None else path)


_BYTES_REPR = re.compile(r"""b(['"]).*?(?<!\\)\1""")


def _reason_text(exc: BaseException, path: str | os.PathLike | None = None) -> str:
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
        raise SkinImgError(f"cannot read image header ({_reason_text(exc, p)})", shown) from None
    except Exception as exc:  # Pillow's parsers raise ValueError, SyntaxError, struct.error ... on hostile headers
        raise SkinImgError(f"corrupt image header ({type(exc).__name__}: {_reason_text(exc, p)})", shown) from None
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
    rgb = cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_BGR2RGB)
    del arr
    rgb = _apply_orientation(rgb, info["orientation"])
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
        msg = _reason_text(exc, path)
        if "truncated" in msg.lower():
            return "truncated image file"
        return f"corrupt image data ({msg})"
    except Exception as exc:  # pragma: no cover - defensive
        return f"corrupt image data ({_reason_text(exc, path)})"
    return "image data could not be decoded"


# ----------------------------------------------------------------------------- discovery


@dataclass(frozen=True)
class InputImage:
    """An input file and its name relative to the input root (used for outputs and messages)."""

    path: Path
    relpath: str
    stem: str | None = None

    @property
    def stem_rel(self) -> str:
        """Relative path without extension ("patient/visit/img"), the key of per-image outputs.

        Unique within one :func:`discover_images` result: when ``img.jpg`` and ``img.png``
        sit in one folder, the second (in sorted order) is ``img~png`` (:func:`output_stems`).
        """
        if self.stem is not None:
            return self.stem
        return Path(self.relpath).with_suffix("").as_posix()


def output_stems(relpaths: Iterable[str]) -> dict[str, str]:
    """Unique output stems for image names: ``relpath -> stem`` (relative path without extension).

    Names are taken in sorted order; the first one keeps its plain stem (``visit/img``), a
    later one with the same stem and another extension gets ``visit/img~png`` (then ``~2``,
    ``~3`` ...), so outputs of ``img.jpg`` and ``img.png`` never overwrite each other.  The
    rule depends only on the set of names: a reader of ``indices.csv`` (the report) finds
    the same stems.
    """
    taken: set[str] = set()
    out: dict[str, str] = {}
    for rel in sorted(set(relpaths)):
        p = Path(rel)
        base = p.with_suffix("").as_posix()
        stem = base
        if stem in taken:
            stem = f"{base}~{p.suffix.lstrip('.').lower() or 'x'}"
            n = 1
            while stem in taken:
                n += 1
                stem = f"{base}~{n}"
        taken.add(stem)
        out[rel] = stem
    return out


def models_dir() -> Path:
    """Folder of skinimg's trained parameters (``models/``: JSON/NPZ, never pickle).

    In order: ``$SKINIMG_MODELS`` when set; the ``models/`` folder of a source
    checkout (editable install, the usual case); ``<prefix>/share/skinimg/models``
    where a wheel install puts them (``[tool.setuptools.data-files]``).
    """
    env = os.environ.get("SKINIMG_MODELS")
    if env:
        return Path(env)
    checkout = Path(__file__).resolve().parent.parent / "models"
    if checkout.is_dir():
        return checkout
    import sys
    import sysconfig

    for base in (sys.prefix, sysconfig.get_paths().get("data", sys.prefix)):
        installed = Path(base) / "share" / "skinimg" / "models"
        if installed.is_dir():
            return installed
    return checkout


def read_json_object(path: str | os.PathLike, label: str | None = None) -> dict:
    """Read a JSON file that must hold an object; a bad file is a :class:`SkinImgError` naming ``label``.

    Parameters
    ----------
    path : path-like
    label : str, optional
        How the file is named in the error (default: the path).
    """
    label = os.fspath(path) if label is None else label
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SkinImgError(f"cannot read JSON ({exc})", label) from None
    if not isinstance(doc, dict):
        raise SkinImgError("not a JSON object", label)
    return doc


def discover_images(paths: Sequence[str | os.PathLike], *, recursive: bool = True,
                    exclude: Sequence[str] = ()) -> list[InputImage]:
    """List the images named by ``paths`` (files or folders), in a stable sorted order.

    Folders are scanned (recursively by default) for files with an image
    extension (:data:`IMAGE_EXTENSIONS`, case-insensitive); hidden files and
    folders are skipped; symbolic links to folders are not followed (no loops).
    Files given explicitly are always included, whatever their extension, so
    that a bad file is reported rather than silently ignored.  Relative names
    are taken from the folder given (or the file's own folder for a file), and
    made unique when two arguments produce the same name.

    ``exclude`` holds shell-style patterns (:mod:`fnmatch`, ``*`` also matches
    ``/``) tested against the relative name of every file found in a folder, e.g.
    ``"truth/*"`` or ``"*_mask.png"``; files given explicitly are never excluded.

    Raises
    ------
    SkinImgError
        When a given path does not exist.
    """
    out: list[InputImage] = []
    seen: set[str] = set()
    for given in paths:
        root = Path(given)
        if not root.exists() and not root.is_symlink():
            raise SkinImgError("file or folder not found", os.fspath(given))
        if root.is_dir():
            found: list[Path] = []
            for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in filenames:
                    if name.startswith("."):
                        continue
                    if Path(name).suffix.lower() in IMAGE_EXTENSIONS:
                        found.append(Path(dirpath) / name)
            items = [(f, f.relative_to(root).as_posix()) for f in sorted(found, key=lambda q: q.relative_to(root).as_posix())]
            if exclude:
                items = [(f, rel) for f, rel in items if not any(fnmatch.fnmatchcase(rel, pat) for pat in exclude)]
        else:
            items = [(root, root.name)]
        for f, rel in items:
            key = rel
            n = 1
            while key in seen:
                n += 1
                key = f"{Path(rel).with_suffix('').as_posix()}~{n}{Path(rel).suffix}"
            seen.add(key)
            out.append(InputImage(path=f, relpath=key))
    stems = output_stems(i.relpath for i in out)
    return [i if stems[i.relpath] == i.stem_rel else InputImage(i.path, i.relpath, stems[i.relpath]) for i in out]


# ----------------------------------------------------------------------------- writers


_TMP_SUFFIX = ".tmp"
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def _output_mode(path: Path) -> int:
    """Permissions of a new output: those of the file it replaces, else 0666 minus the umask.

    (``mkstemp`` creates 0600 files; results are meant to be shared like any other file.)
    """
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~_UMASK

#: Temporary files of :func:`atomic_write`: ``.<name>.<pid>.<random>.tmp``.
_TMP_NAME = re.compile(r"^\..+\.(\d+)\.[A-Za-z0-9_]+\.tmp$")


def _proc_started_after(pid: int, when: float) -> bool | None:
    """Linux: True when process ``pid`` is a zombie or started after ``when`` (so it cannot be the
    writer of a file last modified then); None when /proc cannot tell."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        if fields[0] in (b"Z", b"X"):  # killed, not yet reaped
            return True
        with open("/proc/stat", "rb") as fh:
            btime = next(int(line.split()[1]) for line in fh if line.startswith(b"btime"))
        start = btime + int(fields[19]) / os.sysconf("SC_CLK_TCK")
        return start > when + 2.0
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _writer_alive(pid: int, mtime: float) -> bool:
    """Whether the process that wrote a temporary file (``pid`` in its name) may still be writing it."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: exists, owned by someone else
        pass
    return not _proc_started_after(pid, mtime)  # a zombie or a reused pid is not the writer


def remove_stale_temp_files(root: str | os.PathLike) -> int:
    """Delete temporary files left in ``root`` (recursively) by a killed skinimg process.

    :func:`atomic_write` names its temporary files ``.<name>.<pid>.<random>.tmp``; a
    file is removed only when that process no longer exists, is a zombie, or started
    after the file was last written (a reused pid), so a run still writing into the same
    folder is left alone.  Commands call this when they start and when they finish
    (a worker of a killed run may take a moment to die).  Completed outputs are never touched: an
    interrupted write leaves either the previous complete file or the new one.

    Returns
    -------
    int
        Number of files removed.
    """
    root = Path(root)
    if not root.is_dir():
        return 0
    removed = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in filenames:
            m = _TMP_NAME.match(name)
            if not m:
                continue
            full = os.path.join(dirpath, name)
            with contextlib.suppress(OSError):
                if not _writer_alive(int(m.group(1)), os.stat(full).st_mtime):
                    os.unlink(full)
                    removed += 1
    return removed


def safe_output_path(out: str | os.PathLike, relpath: str | os.PathLike, *, what: str = "output path") -> Path:
    """``out / relpath`` for a relative name taken from a user file (manifest, pipeline TOML).

    Refuses absolute paths, drive letters, ``..`` components, empty names and NUL
    characters, so that no file can make skinimg write outside ``out``.  Symbolic
    links already inside ``out`` are not followed for the check (they are the
    user's own doing).

    Raises
    ------
    SkinImgError
        Naming the offending value.
    """
    text = os.fspath(relpath)
    shown = text.replace("\x00", "\\0")
    shown = shown if len(shown) <= 120 else shown[:117] + "..."
    if not text.strip() or "\x00" in text:
        raise SkinImgError(f"invalid {what} (empty or contains NUL)", shown)
    norm = text.replace("\\", "/")
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":") or os.path.isabs(text):
        raise SkinImgError(f"{what} must be relative to --out (absolute paths are refused)", shown)
    parts = [q for q in norm.split("/") if q not in ("", ".")]
    if ".." in parts:
        raise SkinImgError(f"{what} must stay inside --out ('..' is refused)", shown)
    if not parts:
        raise SkinImgError(f"invalid {what} (no file name)", shown)
    return Path(out).joinpath(*parts)


def load_npz(path: str | os.PathLike, *, label: str | None = None) -> dict[str, np.ndarray]:
    """Load every array of an ``.npz`` (or ``.npy``) model file, never unpickling anything.

    ``np.load(..., allow_pickle=False)``: a file holding Python objects (object arrays,
    which NumPy stores with pickle and could run code on load) is refused.

    Returns
    -------
    dict name -> ndarray (``"arr_0"`` for a ``.npy`` file)

    Raises
    ------
    SkinImgError
        Missing, unreadable or corrupt file, or a file that needs pickle.
    """
    shown = _display(path, label)
    refused = ("refused: the file contains pickled Python objects (only plain numeric arrays are loaded, "
               "allow_pickle=False)")
    try:
        obj = np.load(os.fspath(path), allow_pickle=False)
        if isinstance(obj, np.ndarray):  # a .npy file
            return {"arr_0": obj}
        with obj:
            return {k: np.array(obj[k]) for k in obj.files}
    except FileNotFoundError:
        raise SkinImgError("model file not found", shown) from None
    except ValueError as exc:  # "Object arrays cannot be loaded when allow_pickle=False", bad headers
        if "pickle" in str(exc).lower():
            raise SkinImgError(refused, shown) from None
        raise SkinImgError(f"not a valid NumPy array file ({_reason_text(exc, path)})", shown) from None
    except Exception as exc:  # OSError, zipfile.BadZipFile, EOFError ... on corrupt files
        raise SkinImgError(f"cannot read model file ({_reason_text(exc, path)})", shown) from None


def _output_error(exc: OSError, path: Path) -> SkinImgError:
    """SkinImgError for a failed write; ``.errno`` keeps the OS error number (ENOSPC, EROFS, ENAMETOOLONG ...)."""
    err = SkinImgError(f"cannot write output ({exc.strerror or exc})", os.fspath(path))
    err.errno = exc.errno
    return err


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", **kwargs) -> Iterator:
    """Open a temporary file beside ``path``; on success fsync it and rename it over ``path``.

    On any exception the temporary file is removed and ``path`` is untouched.
    Parent folders are created.  Errors of the file system (read-only folder,
    full disk) become :class:`SkinImgError` naming ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:96]}.{os.getpid()}.", suffix=_TMP_SUFFIX, dir=path.parent)
    except OSError as exc:
        raise _output_error(exc, path) from None
    ok = False
    try:
        with contextlib.suppress(OSError):
            os.fchmod(fd, _output_mode(path))
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        ok = True
    except OSError as exc:
        raise _output_error(exc, path) from None
    finally:
        if not ok:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; return the path."""
    with atomic_write(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def _encode(ext: str, array: np.ndarray, params: Sequence[int] = ()) -> bytes:
    ok, buf = cv2.imencode(ext, array, list(params))
    if not ok:  # pragma: no cover - OpenCV refuses only impossible arrays
        raise ValueError(f"OpenCV could not encode an array of shape {array.shape} dtype {array.dtype} as {ext}")
    return buf.tobytes()


def write_png(path: str | os.PathLike, image: np.ndarray, *, compression: int = 6) -> Path:
    """Write an RGB (H, W, 3) or single-channel (H, W) uint8/uint16 image as PNG, atomically.

    The array is RGB; it is converted to OpenCV's BGR here.  No metadata is written.
    ``compression`` is zlib's level (0-9): 6 by default; 1 writes photographic
    overlays about 3x faster for files about a quarter larger.
    """
    image = np.asarray(image)
    if image.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"write_png needs uint8 or uint16, got {image.dtype}")
    arr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 and image.shape[2] == 3 else image
    return write_bytes(path, _encode(".png", arr, [cv2.IMWRITE_PNG_COMPRESSION, int(compression)]))


def write_tiff(path: str | os.PathLike, array: np.ndarray, *, compress: bool = True) -> Path:
    """Write a single-channel float32 map (NaN allowed) or RGB image as TIFF, atomically.

    ``compress``: lossless Deflate (TIFF compression 8, "Adobe Deflate") with horizontal
    differencing (predictor 2; OpenCV's default for floats, the floating-point predictor 3,
    is twice as slow and tifffile needs the optional imagecodecs package to read it).
    Read by libtiff, Pillow, tifffile, ImageJ/Fiji, GDAL.  An index map of a 12-MP photo
    with its NaN background shrinks from 48 MB to about 9 MB for about 0.35 s more CPU,
    which writing the 40 MB saved costs anyway on most disks (each file is flushed).
    """
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    if np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float32, copy=False)
    params = [cv2.IMWRITE_TIFF_COMPRESSION, 8, cv2.IMWRITE_TIFF_PREDICTOR, 2] if compress else []
    return write_bytes(path, _encode(".tiff", array, params))


def read_mask(path: str | os.PathLike, *, label: str | None = None) -> np.ndarray:
    """Read a mask PNG (any bit depth, grey or colour) as a bool array: True where > 0."""
    shown = _display(path, label)
    data = np.fromfile(os.fspath(path), dtype=np.uint8) if Path(path).is_file() else None
    if data is None:
        raise SkinImgError("mask file not found", shown)
    arr = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE | cv2.IMREAD_IGNORE_ORIENTATION) if data.size else None
    if arr is None:
        raise SkinImgError("not a readable mask image", shown)
    return arr > 0


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return None if not math.isfinite(float(o)) else float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return o.as_posix()
    if hasattr(o, "to_dict"):
        return o.to_dict()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _clean_nonfinite(o):
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _clean_nonfinite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean_nonfinite(v) for v in o]
    return o


def dumps_json(obj, *, indent: int | None = 2) -> str:
    """Serialise to strict JSON (NaN/inf become null; NumPy scalars and arrays allowed)."""
    return json.dumps(_clean_nonfinite(obj), indent=indent, default=_json_default, allow_nan=False, ensure_ascii=False)


def write_json(path: str | os.PathLike, obj) -> Path:
    """Write ``obj`` as UTF-8 JSON, atomically (NaN -> null)."""
    return write_bytes(path, (dumps_json(obj) + "\n").encode("utf-8"))


def _csv_cell(v):
    if v is None:
        return ""
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return "" if not math.isfinite(f) else repr(f)
    if isinstance(v, (np.integer,)):
        return int(v)
    return v


def write_csv(path: str | os.PathLike, rows: Iterable[dict], columns: Sequence[str] | None = None) -> Path:
    """Write dict rows as CSV (UTF-8, header, ``columns`` order), atomically.

    Missing values and NaN are written as empty cells; floats keep full precision.
    """
    rows = list(rows)
    if columns is None:
        columns = []
        for r in rows:
            for k in r:
                if k not in columns:
                    columns.append(k)
    buf = _io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: _csv_cell(r.get(k)) for k in columns})
    return write_bytes(path, buf.getvalue().encode("utf-8"))

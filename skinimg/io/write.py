"""Writing outputs: atomic files, PNG/TIFF/JSON/CSV writers, output folders, stale temporary files.

Every writer is atomic (temporary file in the target folder, ``fsync``, ``os.replace``), so an
interrupted run never leaves a half-written output; exported images are encoded from the pixel
array alone and carry no EXIF/GPS/maker notes.  Errors are :class:`~skinimg.errors.SkinImgError`
naming the file and the reason.
"""

from __future__ import annotations

import contextlib
import csv
import io as _io
import json
import logging
import math
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import cv2
import numpy as np

from ..errors import SkinImgError

__all__ = [
    "atomic_write",
    "write_bytes",
    "write_png",
    "write_tiff",
    "write_json",
    "write_csv",
    "dumps_json",
    "make_output_folder",
    "remove_stale_temp_files",
    "safe_output_path",
]

log = logging.getLogger("skinimg.io")

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


def make_output_folder(out: str | os.PathLike) -> Path:
    """Create the output folder ``out`` (and its parents) and remove the temporary files a killed run left in it.

    Every command calls this once before writing (:func:`remove_stale_temp_files`; completed outputs are never
    touched).

    Raises
    ------
    SkinImgError
        The folder cannot be created (read-only parent, a file of that name ...), naming it.
    """
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SkinImgError(f"cannot create output folder ({exc.strerror or exc})", os.fspath(out)) from None
    n_stale = remove_stale_temp_files(out)
    if n_stale:
        log.info("removed %d temporary file(s) left by an interrupted run", n_stale)
    return out


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


def write_png(path: str | os.PathLike, image: np.ndarray, *, compression: int = 6, fast: bool = False) -> Path:
    """Write an RGB (H, W, 3) or single-channel (H, W) uint8/uint16 image as PNG, atomically.

    The array is RGB; it is converted to OpenCV's BGR here.  No metadata is written.
    ``compression`` is zlib's level (0-9): 6 by default; 1 writes photographic
    overlays about 3x faster for files about a quarter larger.  ``fast`` (for viewing aids such as
    heatmaps; ``compression`` is then ignored): zlib level 1 with run-length matching and the "up" row
    filter, measured 2-3x faster than level 1's defaults on heatmap overlays, and no larger
    (docs/indices.md, "Map files").
    """
    image = np.asarray(image)
    if image.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"write_png needs uint8 or uint16, got {image.dtype}")
    arr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 and image.shape[2] == 3 else image
    params = [cv2.IMWRITE_PNG_COMPRESSION, 1 if fast else int(compression)]
    if fast:
        params += [cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
        if hasattr(cv2, "IMWRITE_PNG_FILTER"):  # OpenCV >= 4.10
            params += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP]
    return write_bytes(path, _encode(".png", arr, params))


#: Bytes of uncompressed pixels per TIFF strip (Deflate restarts its dictionary at every strip).
_TIFF_STRIP_BYTES = 1 << 20


def write_tiff(path: str | os.PathLike, array: np.ndarray, *, compress: bool = True) -> Path:
    """Write a single-channel float32 map (NaN allowed) or RGB image as TIFF, atomically.

    ``compress``: lossless Deflate (TIFF compression 8, "Adobe Deflate"), zlib level 1, no predictor,
    strips of about 1 MiB.  Read by libtiff, Pillow, tifffile (without the optional imagecodecs),
    ImageJ/Fiji, GDAL; values come back bit for bit, NaN included.  Chosen by measurement on index
    maps of real photos (docs/indices.md, "Map files"): OpenCV's defaults (one row per strip, level 6)
    with horizontal differencing took 3x longer for files 45 % larger; differencing (predictor 2) and
    the floating-point predictor (3) do not pay on these maps, whose values come from a table per
    colour rather than a smooth field, and tifffile cannot read predictor 3 without imagecodecs.
    """
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    if np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float32, copy=False)
    params = []
    if compress:
        row_bytes = max(1, array.itemsize * int(np.prod(array.shape[1:])))
        params = [cv2.IMWRITE_TIFF_COMPRESSION, 8, cv2.IMWRITE_TIFF_PREDICTOR, 1]
        for name, value in (("IMWRITE_TIFF_COMPRESSION_LEVEL", 1),  # OpenCV >= 4.11; else zlib's default level
                            ("IMWRITE_TIFF_ROWSPERSTRIP", max(1, _TIFF_STRIP_BYTES // row_bytes))):
            if hasattr(cv2, name):
                params += [getattr(cv2, name), int(value)]
    return write_bytes(path, _encode(".tiff", array, params))


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

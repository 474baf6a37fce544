"""Bring your own index: user functions measured beside the built-in indices.

A user index is a plain Python function::

    def my_index(rgb, mask):                      # or (rgb, mask, *, linear) / (..., unsmoothed)
        '''rgb: float32 (H, W, 3) encoded sRGB in [0, 1], R, G, B; mask: bool (H, W).'''
        r, g = rgb[..., 0], rgb[..., 1]
        return np.where(mask, np.log10(r / g), np.nan)   # a map (H, W), NaN off skin ... or one float

named on the command line as ``--index NAME=module:function`` (a module on the Python path,
searched in the current folder too) or ``--index NAME=path/to/file.py:function``, or
installed by a package under the entry-point group ``skinimg.indices`` (entry point name =
index name, value = ``module:function``) and chosen with ``--index NAME``.

What the function gets (all read-only; writing into them raises ``ValueError``)
------------------------------------------------------------------------------
``rgb``
    float32 (H, W, 3), encoded sRGB in [0, 1], channel order R, G, B: the photo the
    built-in indices see, i.e. after calibration (when asked for) and with the skin
    pixels lightly smoothed (:attr:`skinimg.indices.IndexParams.smoothing_sigma`: a
    box average in linear light over skin neighbours); pixels off the skin as
    photographed.
``mask``
    bool (H, W), True on the skin measured (segmentation, within the ROI).
``linear`` (only if the function has a parameter of that name, or ``**kwargs``)
    float32 (H, W, 3) linear RGB of ``rgb`` (IEC 61966-2-1 decoding, the built-ins'
    lookup tables): what the built-in formulas start from, so a re-implementation of a
    built-in from ``linear`` gives the built-in's numbers.
``unsmoothed`` (only if asked for the same way)
    float32 (H, W, 3) encoded sRGB before the smoothing.

What it returns
---------------
* a per-pixel map: array (H, W) of real numbers; values off the mask are ignored, and
  NaN / infinite values on the skin are left out of the statistics.  The row gets the
  same statistics as a built-in: ``NAME`` (mean), ``NAME_median``, ``NAME_p10``,
  ``NAME_p90``, ``NAME_std``; ``skinimg analyze`` also writes its map;
* or one number per image (a float, NumPy scalar or 0-d array): ``NAME`` is that
  value, the percentile columns are empty.

Optional attributes of the function: ``skinimg_target = "hemoglobin"`` or
``"melanin"`` (the chromophore the index is meant to follow; ``skinimg bench --suite
accuracy`` measures its cross-talk against the other one; default: the one it
correlates with most) and ``skinimg_unit = "a.u."`` (shown in the tables).

Broken and slow functions
-------------------------
A function that cannot be imported is a one-line error before any image is read.
A function that raises, returns something else, or runs longer than the timeout on an
image gives NaN in its own columns for that image and a one-line reason (column
``index_errors`` of ``skinimg analyze``; ``index_errors`` of the bench results);
every other column is computed as usual.

Timeout: the call runs in the measuring process (no copy of the photo to another
process).  Where POSIX interval timers exist and the call runs in the main thread
(``skinimg analyze`` workers, ``skinimg bench``), ``SIGALRM`` interrupts it after
``timeout`` seconds with an exception derived from ``BaseException`` (so ``except
Exception`` in the user's code does not swallow it).  Python code is stopped at the next
bytecode; a long call inside a C extension is stopped when it returns.  Elsewhere
(Windows, threads) the call runs to its end and a result that came too late is
discarded.  Either way, an index that timed out once is skipped for the remaining
images of that process, so a slow function costs at most one timeout per worker.  A
function that never returns from native code, or crashes the interpreter, cannot be
contained in-process; run such code in a separate process of its own.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import re
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..color import srgb_to_linear, to_float
from ..errors import SkinImgError
from .kernels import _crop_box, _pad, _prepare, _skin_colours, _smooth_skin, _unit_centroids
from .params import INDEX_NAMES, STATS, IndexParams
from .stats import _basic_stats

__all__ = [
    "ENTRY_POINT_GROUP",
    "INPUTS",
    "UserIndexSpec",
    "UserIndex",
    "IndexTimeout",
    "parse_index_option",
    "installed_indices",
    "load_user_index",
    "load_user_indices",
    "user_columns",
    "UserIndexRunner",
    "DEFAULT_TIMEOUT",
    "format_errors",
    "row_errors",
]

#: Entry-point group of installed indices.
ENTRY_POINT_GROUP = "skinimg.indices"
#: Extra inputs a function can ask for by naming a parameter.
INPUTS = ("linear", "unsmoothed")
#: Default per-call time limit (seconds).
DEFAULT_TIMEOUT = 60.0
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_TARGETS = ("hemoglobin", "melanin")


class IndexTimeout(BaseException):
    """Raised inside a user index that ran past its time limit (a BaseException, like KeyboardInterrupt)."""


@dataclass(frozen=True)
class UserIndexSpec:
    """Where a user index comes from (picklable: what worker processes receive).

    Attributes
    ----------
    name : str
        Column name (lower-case letters, digits, ``_``; starting with a letter; at most 40).
    target : str
        ``module:function``, ``path/to/file.py:function``, or ``""`` for the entry point
        ``name`` of group :data:`ENTRY_POINT_GROUP`.
    cwd : str
        Folder searched for ``module`` and relative ``.py`` paths (the current folder
        when the option was read).
    """

    name: str
    target: str = ""
    cwd: str = ""

    def label(self) -> str:
        return f"{self.name}={self.target}" if self.target else f"{self.name} (entry point {ENTRY_POINT_GROUP})"


@dataclass
class UserIndex:
    """A loaded user index: the function and what it asked for."""

    spec: UserIndexSpec
    func: Callable
    inputs: frozenset = field(default_factory=frozenset)
    chromophore: str | None = None
    unit: str = ""

    @property
    def name(self) -> str:
        return self.spec.name


def parse_index_option(text: str, *, cwd: str | os.PathLike | None = None) -> UserIndexSpec:
    """``NAME=module:function``, ``NAME=file.py:function`` or ``NAME`` (an installed entry point)."""
    text = text.strip()
    name, sep, target = text.partition("=")
    name, target = name.strip(), target.strip()
    if not _NAME.match(name):
        raise SkinImgError(f"index name {name!r} must be lower-case letters, digits and _, starting with a letter "
                           f"(at most 40), as in NAME=module:function", "--index")
    if sep and (":" not in target or not target.rpartition(":")[0] or not target.rpartition(":")[2]):
        raise SkinImgError(f"index {name}: expected NAME=module:function or NAME=file.py:function, got {text!r}",
                           "--index")
    return UserIndexSpec(name=name, target=target, cwd=os.fspath(cwd if cwd is not None else os.getcwd()))


def installed_indices() -> dict[str, str]:
    """Indices installed under the entry-point group :data:`ENTRY_POINT_GROUP`: ``{name: "module:function"}``."""
    from importlib.metadata import entry_points

    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _import_target(spec: UserIndexSpec) -> Callable:
    target = spec.target
    if not target:
        found = installed_indices()
        if spec.name not in found:
            have = ", ".join(sorted(found)) or "none installed"
            raise SkinImgError(f"index {spec.name}: no entry point of that name in group {ENTRY_POINT_GROUP} "
                               f"({have}); use NAME=module:function", "--index")
        target = found[spec.name]
    mod_part, _, attr = target.rpartition(":")
    try:
        if mod_part.endswith(".py") or "/" in mod_part or os.sep in mod_part:
            path = Path(mod_part)
            path = path if path.is_absolute() else Path(spec.cwd) / path
            if not path.is_file():
                raise SkinImgError(f"index {spec.name}: file {mod_part} not found", "--index")
            mod_name = f"skinimg_user_index_{spec.name}"
            module = sys.modules.get(mod_name)
            if module is None or getattr(module, "__file__", None) != os.fspath(path):
                loader_spec = importlib.util.spec_from_file_location(mod_name, path)
                module = importlib.util.module_from_spec(loader_spec)
                sys.modules[mod_name] = module
                loader_spec.loader.exec_module(module)
        else:
            try:
                module = importlib.import_module(mod_part)
            except ModuleNotFoundError as exc:
                top = mod_part.split(".")[0]
                if exc.name != top or not spec.cwd or spec.cwd in sys.path:
                    raise
                sys.path.insert(0, spec.cwd)  # like `python -m`: the current folder is searched
                module = importlib.import_module(mod_part)
        func = module
        for part in attr.split("."):
            func = getattr(func, part)
    except SkinImgError:
        raise
    except AttributeError:
        raise SkinImgError(f"index {spec.name}: {mod_part} has no {attr!r}", "--index") from None
    except Exception as exc:  # ImportError, SyntaxError, errors while importing the user's module
        raise SkinImgError(f"index {spec.name}: cannot import {mod_part} ({_one_line(exc)})", "--index") from None
    if not callable(func):
        raise SkinImgError(f"index {spec.name}: {target} is not a function", "--index")
    return func


def load_user_index(spec: UserIndexSpec) -> UserIndex:
    """Import a user index and read what it asks for (one-line :class:`SkinImgError` on any problem)."""
    func = _import_target(spec)
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        params = {}
    positional = [p for p in params.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    varargs = any(p.kind == p.VAR_POSITIONAL for p in params.values())
    if params and len(positional) < 2 and not varargs:
        raise SkinImgError(f"index {spec.name}: the function must take (rgb, mask)", "--index")
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        wants = frozenset(INPUTS)
    else:
        wants = frozenset(n for n in INPUTS if n in params)
    chromophore = getattr(func, "skinimg_target", None)
    if chromophore is not None and chromophore not in _TARGETS:
        raise SkinImgError(f"index {spec.name}: skinimg_target must be 'hemoglobin' or 'melanin', "
                           f"got {chromophore!r}", "--index")
    unit = str(getattr(func, "skinimg_unit", "") or "")
    return UserIndex(spec=spec, func=func, inputs=wants, chromophore=chromophore, unit=unit)


def load_user_indices(specs: Sequence[UserIndexSpec], *, reserved: Sequence[str] = ()) -> list[UserIndex]:
    """Load several user indices; names must be unique and must not clash with ``reserved`` columns."""
    seen: set[str] = set()
    taken = set(reserved) | set(INDEX_NAMES)
    out = []
    for spec in specs:
        if spec.name in seen:
            raise SkinImgError(f"index {spec.name} is given twice", "--index")
        clash = [c for c in user_columns([spec.name]) if c in taken]
        if clash:
            raise SkinImgError(f"index {spec.name}: column {clash[0]} is already a built-in column; choose another "
                               "name", "--index")
        seen.add(spec.name)
        out.append(load_user_index(spec))
    return out


def user_columns(names: Sequence[str]) -> list[str]:
    """Row columns of user indices: ``NAME`` and its statistics (as the built-ins: :data:`skinimg.indices.STATS`)."""
    return [f"{n}{s}" for n in names for s in STATS]


def _one_line(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).strip().splitlines()
    msg = f"{type(exc).__name__}: {text[0]}" if text and text[0] else type(exc).__name__
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."


@contextmanager
def _deadline(seconds: float | None):
    """SIGALRM after ``seconds`` in this (main) thread; yields whether the alarm is armed."""
    usable = (seconds is not None and seconds > 0 and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread()
              and signal.getitimer(signal.ITIMER_REAL)[0] == 0)
    if not usable:
        yield False
        return

    def _alarm(signum, frame):
        raise IndexTimeout()

    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, float(seconds))
    try:
        yield True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def _smoothed(rgb: np.ndarray, mask: np.ndarray, params) -> np.ndarray:
    """The photo as the built-ins see it: skin pixels smoothed (same crop, kernel and clipped-pixel rule as
    :func:`measure`, :func:`skinimg.indices.kernels._smooth_skin`), integer photos as float32 with every skin pixel
    at its 8-bit code's centroid (:func:`skinimg.indices.kernels._unit_centroids`), as the built-ins read them."""
    if not mask.any():
        return rgb
    box = _crop_box(mask, _pad(params))
    mc = np.ascontiguousarray(mask[box])
    if rgb.dtype in (np.uint8, np.uint16):
        # each skin pixel at the colour the built-ins read it at: its 8-bit code's centroid (_unit_centroids)
        codes, _, linear = _smooth_skin(rgb[box], mc, params, precise=True)
        units, weights, pos = _skin_colours(codes, mc)
        out = to_float(rgb).copy()
        crop = out[box]
        crop[mc] = _unit_centroids(units, weights, pos, linear)[pos]
        return out
    if params.smoothing_sigma <= 0:
        return rgb
    out = to_float(rgb).copy()
    out[box] = _smooth_skin(rgb[box], mc, params)[0]
    return out


class UserIndexRunner:
    """Measures user indices on photos; remembers, per process, the indices that timed out.

    Parameters
    ----------
    indices : sequence of UserIndex
    timeout : float or None
        Seconds per call (None or 0: no limit).
    params : IndexParams, optional
        The built-ins' parameters (smoothing).
    """

    def __init__(self, indices: Sequence[UserIndex], *, timeout: float | None = DEFAULT_TIMEOUT, params=None):
        self.indices = list(indices)
        self.timeout = timeout
        self.params = params or IndexParams()
        self.timed_out: set[str] = set()

    @property
    def names(self) -> list[str]:
        return [u.name for u in self.indices]

    @property
    def units(self) -> dict[str, str]:
        return {u.name: u.unit for u in self.indices}

    def _call(self, ui: UserIndex, inputs: dict, shape: tuple[int, int]):
        """(kind, value, error): kind "map" (float32 (H, W)) or "value" (float); error a one-line reason or None."""
        if ui.name in self.timed_out:
            return None, None, f"skipped: timed out on an earlier image (limit {self.timeout:g} s)"
        kwargs = {k: inputs[k]() for k in ui.inputs}
        t0 = time.perf_counter()
        try:
            with _deadline(self.timeout):
                res = ui.func(inputs["rgb"], inputs["mask"], **kwargs)
        except IndexTimeout:
            self.timed_out.add(ui.name)
            return None, None, f"timed out after {self.timeout:g} s"
        except MemoryError:
            return None, None, "out of memory"
        except Exception as exc:
            return None, None, _one_line(exc)
        elapsed = time.perf_counter() - t0
        if self.timeout and elapsed > self.timeout:
            self.timed_out.add(ui.name)
            return None, None, f"took {elapsed:.1f} s (limit {self.timeout:g} s)"
        return _check_result(res, shape)

    def measure(self, rgb: np.ndarray, mask: np.ndarray, *, want_maps: bool = False):
        """Every user index on one photo.

        Parameters
        ----------
        rgb : ndarray (H, W, 3), encoded sRGB uint8 / uint16 / float in [0, 1], R, G, B
            The photo as given to :func:`skinimg.indices.measure` (calibrated if asked for).
        mask : ndarray of bool (H, W)

        Returns
        -------
        row : dict
            :func:`user_columns` values (NaN where an index failed).
        maps : dict name -> float32 (H, W) (NaN off skin), for map indices when ``want_maps``.
        errors : dict name -> one-line reason, for the indices that failed on this photo.
        """
        rgb, mask = _prepare(rgb, mask)
        h, w = mask.shape
        row = {c: float("nan") for c in user_columns(self.names)}
        maps: dict = {}
        errors: dict = {}
        if not self.indices:
            return row, maps, errors
        sm = _smoothed(rgb, mask, self.params)
        cache: dict = {}

        def lazy(key, fn):
            def get():
                if key not in cache:
                    cache[key] = _readonly(fn())
                return cache[key]
            return get

        inputs = {
            "rgb": _readonly(_float_copy(sm, rgb)),
            "mask": _readonly(mask.copy()),
            "linear": lazy("linear", lambda: srgb_to_linear(sm)),
            "unsmoothed": lazy("unsmoothed", lambda: to_float(rgb).copy()),
        }
        for ui in self.indices:
            kind, value, err = self._call(ui, inputs, (h, w))
            if err is not None:
                errors[ui.name] = err
                continue
            if kind == "map":
                stats = _basic_stats(value[mask])
                for s, v in zip(STATS, stats):
                    row[f"{ui.name}{s}"] = v
                if want_maps:
                    m = np.full((h, w), np.nan, dtype=np.float32)
                    m[mask] = value[mask]
                    maps[ui.name] = m
            else:
                row[ui.name] = value
        return row, maps, errors


def _float_copy(a: np.ndarray, original: np.ndarray) -> np.ndarray:
    """float32 [0, 1] version of ``a`` that shares no memory with the caller's ``original``."""
    f = to_float(a)
    return f.copy() if np.may_share_memory(f, original) else f


def _check_result(res, shape):
    """A map (H, W) of reals -> ("map", float32 array); a real number -> ("value", float); else an error."""
    if isinstance(res, (bool, np.bool_)) or res is None or isinstance(res, (str, bytes)):
        return None, None, f"returned {type(res).__name__}; expected an (H, W) map or one number"
    if isinstance(res, (int, float, np.integer, np.floating)):
        return "value", float(res), None
    try:
        a = np.asarray(res)
    except Exception as exc:  # an object NumPy cannot convert
        return None, None, f"returned {type(res).__name__} ({_one_line(exc)}); expected an (H, W) map or one number"
    if a.dtype.kind not in "fiu":
        return None, None, f"returned an array of {a.dtype}; expected real numbers"
    if a.ndim == 0:
        return "value", float(a), None
    if a.shape != tuple(shape):
        return None, None, f"returned shape {a.shape}; expected the mask's {tuple(shape)} or one number"
    return "map", a.astype(np.float32, copy=False), None


def format_errors(errors: dict, n_images: int | None = None) -> list[str]:
    """One line per failed index: ``index NAME failed on K [of N] image(s): reason (first: image)``."""
    of = f" of {n_images}" if n_images is not None else ""
    return [f"index {name} failed on {d['n_failed']}{of} image(s): {d['first_error']} "
            f"(first: {d['first_image']})" for name, d in errors.items()]


def row_errors(errors: dict) -> str | None:
    """The ``index_errors`` cell of a row: ``NAME: reason; NAME2: reason`` or None."""
    return "; ".join(f"{k}: {v}" for k, v in errors.items()) or None

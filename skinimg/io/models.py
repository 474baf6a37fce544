"""Where skinimg's trained parameters are, and reading them safely (JSON objects, NPZ without pickle)."""

from __future__ import annotations

import json
import os
import sys
import sysconfig
from pathlib import Path

import numpy as np

from ..errors import SkinImgError
from .image import reason_text

__all__ = ["models_dir", "model_file", "read_json_object", "load_npz"]


def models_dir() -> Path:
    """Folder of skinimg's trained parameters (``models/``: JSON/NPZ, never pickle).

    In order: ``$SKINIMG_MODELS`` when set; the ``models/`` folder of a source
    checkout (editable install, the usual case); ``<prefix>/share/skinimg/models``
    where a wheel install puts them (``[tool.setuptools.data-files]``).
    """
    env = os.environ.get("SKINIMG_MODELS")
    if env:
        return Path(env)
    checkout = Path(__file__).resolve().parents[2] / "models"
    if checkout.is_dir():
        return checkout
    for base in (sys.prefix, sysconfig.get_paths().get("data", sys.prefix)):
        installed = Path(base) / "share" / "skinimg" / "models"
        if installed.is_dir():
            return installed
    return checkout


def model_file(name: str) -> Path:
    """``models_dir() / name``: the path of one trained file (``skin_unet.onnx``, ``mdc.json`` ...).

    Looked up when called, so ``$SKINIMG_MODELS`` set after import is honoured.
    """
    return models_dir() / name


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
    shown = os.fspath(label if label is not None else path)
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
        raise SkinImgError(f"not a valid NumPy array file ({reason_text(exc, path)})", shown) from None
    except Exception as exc:  # OSError, zipfile.BadZipFile, EOFError ... on corrupt files
        raise SkinImgError(f"cannot read model file ({reason_text(exc, path)})", shown) from None

"""Finding the photographs under the paths a user gives, and naming their outputs."""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from ..errors import SkinImgError
from .roi import is_roi_file

__all__ = ["IMAGE_EXTENSIONS", "InputImage", "output_stems", "discover_images"]

#: File extensions treated as images when a folder is scanned (lower case).
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".tif", ".tiff", ".bmp", ".webp"})


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


def discover_images(paths: Sequence[str | os.PathLike], *, recursive: bool = True,
                    exclude: Sequence[str] = ()) -> list[InputImage]:
    """List the images named by ``paths`` (files or folders), in a stable sorted order.

    Folders are scanned (recursively by default) for files with an image
    extension (:data:`IMAGE_EXTENSIONS`, case-insensitive); hidden files and
    folders and ROI files (``*.roi.png``, :func:`skinimg.io.is_roi_file`) are skipped;
    symbolic links to folders are not followed (no loops).
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
                    if name.startswith(".") or is_roi_file(name):  # face.roi.png is face.jpg's ROI, not a photo
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

"""Real labelled photos for training the skin network: discovery, splits, label clean-up.

A data folder holds one sub-folder per dataset.  Two layouts are read:

* the COCO-style layout of the ``MRE-Lab-UMD/abd-skin-segmentation`` repository (commit ``ee7b5f3``):
  ``<dataset>/<split>/<images>/<id>.<ext>`` with ``<dataset>/<split>/annotations/<id>_skin_<id>.png``;
* a plain layout: ``<dataset>/<split>/images/<stem>.<ext>`` with ``<dataset>/<split>/masks/<stem>.png``.

``<split>`` is ``train`` or ``val``.  Masks: non-skin 0, skin > 127.  Folders whose name starts with ``test_``
(reserved for independent evaluation) are never read.

Splits (by photo; by person where the ids tell):
* ``val``: the ``val`` folders, reported once;
* ``dev``: carved from the ``train`` folders: the photos whose rank in numeric id order falls in 20-30 % or 70-80 %
  (consecutive ids are the same person in face databases), with a buffer of 5 ranks on each side left out of both,
  and every near-duplicate of a dev photo moved to dev;
* ``train``: the rest of the ``train`` folders, minus every photo that duplicates a ``val`` photo (the same picture
  rescaled, cropped or mirrored: correlation of 24 x 24 grey thumbnails > 0.95, or >= 29 ORB matches consistent with
  one homography, Rublee et al. 2011, DOI 10.1109/ICCV.2011.6126544).

Label clean-up (what counts as skin, ``docs/segmentation.md``): components smaller than 0.3 % of the largest are
removed (specks in hair), and lips that the labels include are removed where :func:`lips_mask` finds them (frontal
faces; eyes are the label's holes).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..errors import SkinImgError
from ..io import IMAGE_EXTENSIONS

__all__ = ["Photo", "find_photos", "make_splits", "load_photo", "lips_mask", "remove_specks", "DEV_BANDS"]

#: Rank bands (fractions of a dataset's train photos in id order) carved out as the development split.
DEV_BANDS = ((0.2, 0.3), (0.7, 0.8))
_BUFFER = 5


@dataclass(frozen=True)
class Photo:
    """One labelled photo: ``dataset``, ``folder`` (train | val), ``id`` (file stem), and its two files."""

    dataset: str
    folder: str
    id: str
    image: Path
    mask: Path

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.folder}/{self.id}"


def _numeric(s: str):
    m = re.fullmatch(r"\d+", s)
    return (0, int(s), s) if m else (1, 0, s)


def find_photos(data: str | os.PathLike) -> list[Photo]:
    """Every labelled photo under ``data`` (both layouts; ``test_*`` folders skipped), sorted by dataset, folder, id."""
    root = Path(data)
    if not root.is_dir():
        raise SkinImgError("data folder not found", os.fspath(root))
    out = []
    for ds in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("test_")):
        for folder in ("train", "val"):
            base = ds / folder
            if not base.is_dir():
                continue
            ann = base / "annotations"
            if ann.is_dir():  # COCO-style: <id>_skin_<id>.png beside an image folder
                imgs = [d for d in base.iterdir() if d.is_dir() and d.name != "annotations"]
                for d in imgs:
                    for f in sorted(d.iterdir()):
                        m = ann / f"{f.stem}_skin_{f.stem}.png"
                        if f.suffix.lower() in IMAGE_EXTENSIONS and m.is_file():
                            out.append(Photo(ds.name, folder, f.stem, f, m))
            elif (base / "images").is_dir() and (base / "masks").is_dir():
                for f in sorted((base / "images").iterdir()):
                    m = base / "masks" / f"{f.stem}.png"
                    if f.suffix.lower() in IMAGE_EXTENSIONS and m.is_file():
                        out.append(Photo(ds.name, folder, f.stem, f, m))
    if not out:
        raise SkinImgError("no labelled photos found (expected <dataset>/train/... and <dataset>/val/...)",
                           os.fspath(root))
    out.sort(key=lambda p: (p.dataset, p.folder, _numeric(p.id)))
    return out


# ----------------------------------------------------------------------------- near duplicates


def _thumbs(paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """Normalised 24 x 24 grey thumbnails of ``paths`` and of their mirror images (N, 576) each."""
    rows = [], []
    for p in paths:
        g = cv2.imread(os.fspath(p), cv2.IMREAD_GRAYSCALE)
        for k, im in enumerate((g, g[:, ::-1])):
            t = cv2.resize(im, (24, 24), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
            t = (t - t.mean()) / (t.std() + 1e-6)
            rows[k].append(t / np.sqrt(t.size))
    return np.array(rows[0]), np.array(rows[1])


def _orb(paths: list[Path]):
    orb = cv2.ORB_create(600)
    out = []
    for p in paths:
        g = cv2.resize(cv2.imread(os.fspath(p), cv2.IMREAD_GRAYSCALE), (454, 454))
        feats = []
        for im in (g, np.ascontiguousarray(g[:, ::-1])):
            k, d = orb.detectAndCompute(im, None)
            feats.append((np.float32([x.pt for x in k]), d))
        out.append(feats)
    return out


def _inliers(a, b, matcher) -> int:
    (pa, da), (pb, db) = a, b
    if da is None or db is None or len(da) < 10 or len(db) < 10:
        return 0
    good = [m for m, n in (x for x in matcher.knnMatch(da, db, k=2) if len(x) == 2) if m.distance < 0.75 * n.distance]
    if len(good) < 10:
        return len(good)
    _, inl = cv2.findHomography(pa[[m.queryIdx for m in good]], pb[[m.trainIdx for m in good]], cv2.RANSAC, 5.0)
    return 0 if inl is None else int(inl.sum())


def _val_duplicates(train: list[Photo], val: list[Photo], say) -> set[str]:
    """Keys of the train photos that show a val photo again (rescaled, cropped or mirrored)."""
    if not train or not val:
        return set()
    ta, tam = _thumbs([p.image for p in train])
    va, _ = _thumbs([p.image for p in val])
    corr = np.maximum(ta @ va.T, tam @ va.T)
    dup = {train[i].key for i in np.nonzero((corr > 0.95).any(axis=1))[0]}
    say(f"near duplicates: ORB features of {len(train)} + {len(val)} photos")
    ft, fv = _orb([p.image for p in train]), _orb([p.image for p in val])
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    for i, a in enumerate(ft):
        if train[i].key in dup:
            continue
        for b in fv:
            if max(_inliers(a[0], b[0], matcher), _inliers(a[1], b[0], matcher)) >= 29:
                dup.add(train[i].key)
                break
    return dup


def make_splits(photos: list[Photo], say=lambda m: None) -> dict:
    """``{"train": [...], "dev": [...], "val": [...], "excluded": {"buffer": [...], "val_duplicates": [...]}}`` of
    photo keys (module documentation)."""
    sp = {"train": [], "dev": [], "val": [], "excluded": {"buffer": [], "val_duplicates": []}}
    for ds in sorted({p.dataset for p in photos}):
        tr = [p for p in photos if p.dataset == ds and p.folder == "train"]
        va = [p for p in photos if p.dataset == ds and p.folder == "val"]
        sp["val"] += [p.key for p in va]
        dups = _val_duplicates(tr, va, say)
        n = len(tr)
        role = {}
        for r, p in enumerate(tr):  # tr is in id order
            f = r / max(n, 1)
            if any(lo <= f < hi for lo, hi in DEV_BANDS):
                role[p.key] = "dev"
            elif any(lo * n - _BUFFER <= r < hi * n + _BUFFER for lo, hi in DEV_BANDS):
                role[p.key] = "buffer"
            else:
                role[p.key] = "train"
        # near duplicates of a dev photo go to dev (thumbnail correlation within the train folder)
        if tr:
            a, am = _thumbs([p.image for p in tr])
            corr = np.maximum(a @ a.T, a @ am.T)
            np.fill_diagonal(corr, 0)
            dev_idx = [i for i, p in enumerate(tr) if role[p.key] == "dev"]
            for i in np.nonzero((corr[:, dev_idx] > 0.93).any(axis=1))[0] if dev_idx else []:
                if role[tr[i].key] != "dev":
                    role[tr[i].key] = "dev"
        for p in tr:
            if p.key in dups:
                sp["excluded"]["val_duplicates"].append(p.key)
            elif role[p.key] == "buffer":
                sp["excluded"]["buffer"].append(p.key)
            else:
                sp[role[p.key]].append(p.key)
    return sp


# ----------------------------------------------------------------------------- label clean-up


def remove_specks(m: np.ndarray, frac: float = 0.003) -> np.ndarray:
    """Drop the components of bool mask ``m`` smaller than ``frac`` x its largest component (specks in hair)."""
    n, lab, st, _ = cv2.connectedComponentsWithStats(m.astype(np.uint8), connectivity=8)
    if n <= 2:
        return m
    area = st[1:, cv2.CC_STAT_AREA]
    keep = np.zeros(n, bool)
    keep[1:] = area >= frac * area.max()
    return keep[lab]


def _eye_pair(m: np.ndarray):
    """(x, y, distance) of the eyes of a frontal face whose skin mask ``m`` has them as holes, or None."""
    inv = (~m).astype(np.uint8)
    n, lab, st, cen = cv2.connectedComponentsWithStats(inv, connectivity=4)
    h, w = m.shape
    rows = np.nonzero(m.any(1))[0]
    if not len(rows):
        return None
    top, bot = rows.min(), rows.max()
    holes = []
    for k in range(1, n):
        x, y, bw, bh, a = st[k]
        if x == 0 or y == 0 or x + bw >= w or y + bh >= h or a < 30 or cen[k][1] > top + 0.6 * (bot - top):
            continue
        holes.append((a, cen[k][0], cen[k][1]))
    pts = [(x, y) for _, x, y in sorted(holes, reverse=True)[:6]]
    best = None
    for i in range(len(pts)):
        for j in range(i + 1, len(pts)):
            (x1, y1), (x2, y2) = pts[i], pts[j]
            d = abs(x1 - x2)
            if d >= 20 and abs(y1 - y2) <= 0.25 * d and (best is None or (y1 + y2) / 2 > best[1]):
                best = ((x1 + x2) / 2, (y1 + y2) / 2, d)  # the lowest pair: eyes, not brows
    return best


def lips_mask(rgb: np.ndarray, m: np.ndarray) -> np.ndarray | None:
    """The lips inside the skin mask ``m`` of a frontal face photo (uint8 RGB), or None when not found.

    The eyes are the mask's holes (:func:`_eye_pair`, distance ``d``); in a window 0.55-1.55 ``d`` below them the
    pixels much redder than the face's skin elsewhere (robust z of CIELAB a* plus 3 x that of log(R/G) above the
    window's Otsu threshold, at least 8) form candidates; the component nearest the expected mouth (1.1 ``d`` below
    the eyes), with its neighbours, closed and filled, is the lips if its size and place are a mouth's.
    """
    eyes = _eye_pair(m)
    if eyes is None:
        return None
    cx, cy, d = eyes
    h, w = m.shape
    lab = cv2.cvtColor(rgb.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)
    rg = np.log((rgb[..., 0].astype(np.float32) + 1) / (rgb[..., 1].astype(np.float32) + 1))
    y0, y1 = int(cy + 0.55 * d), int(min(h, cy + 1.55 * d))
    x0, x1 = int(max(0, cx - 0.7 * d)), int(min(w, cx + 0.7 * d))
    ref = m.copy()
    ref[y0:y1, x0:x1] = False
    ref[: int(cy), :] = False
    if ref.sum() < 200:
        return None

    def z(v):
        r = v[ref]
        med = np.median(r)
        return (v - med) / (1.4826 * np.median(np.abs(r - med)) + 1e-3)

    win = np.zeros_like(m)
    win[y0:y1, x0:x1] = True
    sc = np.clip(z(lab[..., 1]), -10, 30) + 3 * np.clip(z(rg), -3, 10)
    v = sc[win & m]
    if v.size < 100:
        return None
    t, _ = cv2.threshold(np.clip(v * 4 + 64, 0, 255).astype(np.uint8).reshape(-1, 1), 0, 255,
                         cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    cand = (win & m & (sc > max(8.0, (t - 64) / 4))).astype(np.uint8)
    cand = cv2.morphologyEx(cand, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    n, labc, st, cen = cv2.connectedComponentsWithStats(cand, connectivity=8)
    if n <= 1:
        return None
    ey = cy + 1.1 * d
    _, k = max((st[i, cv2.CC_STAT_AREA] / (1 + ((cen[i][0] - cx) ** 2 + (cen[i][1] - ey) ** 2) / d ** 2), i)
               for i in range(1, n))
    if st[k, cv2.CC_STAT_AREA] < 0.01 * d * d:
        return None
    lip = (labc == k).astype(np.uint8)
    near = cv2.dilate(lip, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (int(0.15 * d) | 1,) * 2))
    for i in range(1, n):
        if i != k and near[labc == i].any():
            lip[labc == i] = 1
    r = max(3, int(0.04 * d)) | 1
    lip = cv2.morphologyEx(lip, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (r, r)))
    ff = lip.copy()
    cv2.floodFill(ff, None, (0, 0), 1)
    lip = lip | (1 - ff)
    _, _, bw, bh = cv2.boundingRect(lip)
    ys = np.nonzero(lip)[0]
    if bw > 1.3 * d or bh > 0.7 * d or bw < 0.3 * d or bw < 1.5 * bh or not (cy + 0.8 * d <= ys.mean() <= cy + 1.45 * d):
        return None
    return (lip > 0) & m


@dataclass
class LoadedPhoto:
    """A photo in memory: ``rgb`` uint8 (H, W, 3), ``label`` uint8 (H, W) (1 = skin), clean-up counts."""

    rgb: np.ndarray
    label: np.ndarray
    info: dict = field(default_factory=dict)


def load_photo(photo: Photo, *, clean: bool = True) -> LoadedPhoto:
    """Read one labelled photo (RGB) and its mask (> 127 = skin), with the label clean-up unless ``clean=False``."""
    bgr = cv2.imread(os.fspath(photo.image), cv2.IMREAD_COLOR)
    m0 = cv2.imread(os.fspath(photo.mask), cv2.IMREAD_GRAYSCALE)
    if bgr is None or m0 is None:
        raise SkinImgError("unreadable photo or mask", photo.key)
    if m0.shape != bgr.shape[:2]:
        raise SkinImgError(f"mask is {m0.shape[1]}x{m0.shape[0]}, the photo {bgr.shape[1]}x{bgr.shape[0]}", photo.key)
    rgb = np.ascontiguousarray(bgr[..., ::-1])
    m0 = m0 > 127
    m, info = m0, {"specks": 0, "lips": 0}
    if clean:
        m = remove_specks(m0)
        info["specks"] = int((m0 & ~m).sum())
        lip = lips_mask(rgb, m)
        if lip is not None:
            m = m & ~lip
            info["lips"] = int(lip.sum())
    return LoadedPhoto(rgb, m.astype(np.uint8), info)

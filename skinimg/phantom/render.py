"""Rendering a phantom photograph with its ground truth (:func:`render_phantom`) and writing it (:func:`write_phantom`).

Camera: optical blur (Gaussian, ``blur`` px), exposure gain in linear RGB, Poisson-
Gaussian sensor noise ``var(x) = noise^2 x + (noise / 10)^2`` in linear units, the
Gaussian approximation of [Foi2008]_, clipping, sRGB encoding, optional JPEG.
Everything is deterministic from ``seed`` and ``noise_seed``.

References
----------
.. [Foi2008] Foi, A., Trimeche, M., Katkovnik, V. and Egiazarian, K. (2008). Practical
   Poissonian-Gaussian noise modeling and fitting for single-image raw-data. IEEE
   Transactions on Image Processing 17(10), 1737-1754.
   https://doi.org/10.1109/TIP.2008.2001399
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from .. import color
from ..color import ita_category
from ..io import write_bytes, write_json, write_png, write_tiff
from .optics import DEFAULT_OPTICS, chart_patch_names, illuminant_white, ita_degrees, skin_linear_rgb
from .scene import _Scene
from .spec import LABELS, Phantom, PhantomSpec, _canonical_shape, _rng, pose_matrix

__all__ = ["render_phantom", "write_phantom"]


def _affine_points(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    pts = np.asarray(pts, dtype=np.float64)
    return pts @ m[:, :2].T + m[:, 2]


def _jpeg_roundtrip(rgb: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover
        raise RuntimeError("JPEG encoding failed")
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _skin_reference(melanin: float, hemoglobin: float, optics=DEFAULT_OPTICS) -> dict:
    rgb = skin_linear_rgb(melanin, hemoglobin, "D65") if optics is DEFAULT_OPTICS else optics.linear_rgb(
        melanin, hemoglobin, "D65")
    lab = color.linear_rgb_to_lab(rgb)
    ita = float(ita_degrees(lab))
    return {"linear_rgb_d65": rgb.tolist(), "lab_d65": lab.tolist(), "ita_deg": ita, "ita_category": ita_category(ita)}


def render_phantom(spec: PhantomSpec, *, optics=None) -> Phantom:
    """Render a phantom photograph and its ground truth.

    Parameters
    ----------
    spec : PhantomSpec
    optics : OpticalMember, optional
        Skin colour from a member of the ensemble of optical models
        (:mod:`skinimg.phantom.ensemble`) instead of the phantoms' own two-layer model;
        ``spec.melanin`` and ``spec.hemoglobin`` are then in that member's units.

    Returns
    -------
    Phantom
        ``image`` uint8 (H, W, 3) sRGB RGB; ``mask`` bool (H, W); ``melanin`` and
        ``hemoglobin`` float32 (H, W), NaN off skin; ``labels`` uint8 (H, W);
        ``linear`` float32 (H, W, 3); ``truth`` dict (see Notes).

    Notes
    -----
    ``truth`` keys: ``melanin_mean``, ``hemoglobin_mean``, ``melanin_median``,
    ``hemoglobin_median`` (over the true mask), ``skin_pixels``, ``skin_fraction``,
    ``illuminant``, ``illuminant_white_linear_rgb``, ``exposure``, ``pose``,
    ``pose_matrix`` (2x3, canonical pixels -> photo pixels), ``canonical_size``,
    ``skin_reference`` (flat-skin colour of the spec's base concentrations under D65:
    linear RGB, Lab, ITA and category), ``spots`` / ``red_patches`` (centres and radii in
    photo pixels), ``labels`` (codes), ``optics``, ``spec``, ``model``, and when
    ``spec.chart``: ``chart`` with ``corners`` (4x2 photo pixels, TL, TR, BR, BL of the
    black surround), ``patch_centres`` (24x2), ``patch_names`` and ``patch_linear_rgb``
    (24x3, exposure applied).  Deterministic: the same spec gives identical arrays.
    """
    optics = DEFAULT_OPTICS if optics is None else optics
    scene = _Scene(spec, optics)
    extra = scene.build()
    h, w = spec.size
    m = pose_matrix(spec)
    warp = dict(dsize=(w, h), borderMode=cv2.BORDER_REFLECT101)
    lin = cv2.warpAffine(scene.img, m, flags=cv2.INTER_LINEAR, **warp)
    labels = cv2.warpAffine(scene.labels, m, flags=cv2.INTER_NEAREST, **warp)
    mel = cv2.warpAffine(scene.mel, m, flags=cv2.INTER_LINEAR, **warp)
    hb = cv2.warpAffine(scene.hb, m, flags=cv2.INTER_LINEAR, **warp)
    del scene.img
    mask = labels == LABELS["skin"]
    mel[~mask] = np.nan
    hb[~mask] = np.nan
    if spec.blur > 0:
        lin = cv2.GaussianBlur(lin, (0, 0), sigmaX=spec.blur, sigmaY=spec.blur)
    lin *= np.float32(spec.exposure)
    noisy = lin
    if spec.noise > 0:
        rng = _rng(spec.seed if spec.noise_seed is None else spec.noise_seed, 99)
        z = rng.standard_normal(lin.shape, dtype=np.float32)
        n = np.float32(spec.noise)
        z *= np.sqrt(n * n * np.clip(lin, 0, None) + (n / np.float32(10.0)) ** 2)
        z += lin
        noisy = z
    image = color.linear_to_srgb_uint8(noisy)
    del noisy
    if spec.jpeg_quality is not None:
        image = _jpeg_roundtrip(image, spec.jpeg_quality)
    n_skin = int(mask.sum())
    with np.errstate(invalid="ignore"):
        truth = {
            "model": ("skinimg.phantom two-layer skin (Jacques 2013, Prahl 1999, Farrell 1992)" if optics is DEFAULT_OPTICS
                      else f"skinimg.phantom.ensemble member {optics.name} ({optics.family})"),
            "melanin_mean": float(np.nanmean(mel)) if n_skin else None,
            "hemoglobin_mean": float(np.nanmean(hb)) if n_skin else None,
            "melanin_median": float(np.nanmedian(mel)) if n_skin else None,
            "hemoglobin_median": float(np.nanmedian(hb)) if n_skin else None,
            "skin_pixels": n_skin,
            "skin_fraction": n_skin / float(h * w),
            "illuminant": spec.illuminant,
            "illuminant_white_linear_rgb": illuminant_white(spec.illuminant).tolist(),
            "exposure": spec.exposure,
            "pose": list(spec.pose),
            "pose_matrix": m.tolist(),
            "canonical_size": list(_canonical_shape(spec.size)),
            "skin_reference": _skin_reference(spec.melanin * spec.melanin_scale, spec.hemoglobin * spec.hemoglobin_scale,
                                              optics),
            "labels": dict(LABELS),
            "optics": optics.to_dict(),
            "spec": spec.to_dict(),
        }
    u = scene.f.u
    for key, items in (("spots", scene.spot_list), ("red_patches", scene.patch_list)):
        pts = np.array([scene.f.px(d["x"], d["y"]) for d in items], dtype=np.float64).reshape(-1, 2)
        pp = _affine_points(m, pts)
        truth[key] = [
            {"x": float(p[0]), "y": float(p[1]), "radius_px": float(d["radius"] * u * spec.pose[3]), "gain": float(d["gain"])}
            for p, d in zip(pp, items)
        ]
    if extra["chart"] is not None:
        c = extra["chart"]
        truth["chart"] = {
            "corners": _affine_points(m, c["corners_canonical"]).tolist(),
            "patch_centres": _affine_points(m, c["centres_canonical"]).tolist(),
            "patch_names": chart_patch_names(),
            "patch_linear_rgb": (c["patch_linear_rgb"] * np.float32(spec.exposure)).tolist(),
        }
    return Phantom(image=image, mask=mask, melanin=mel, hemoglobin=hb, labels=labels, linear=lin, truth=truth)


def _encode_image(rgb: np.ndarray, image_format: str, quality: int) -> bytes:
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if image_format == "jpg":
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    else:
        ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:  # pragma: no cover
        raise RuntimeError(f"could not encode {image_format}")
    return buf.tobytes()


def write_phantom(
    ph: Phantom,
    out_dir: str | os.PathLike,
    stem: str,
    *,
    image_format: str = "jpg",
    jpeg_quality: int | None = None,
    truth_dir: str | os.PathLike | None = None,
    maps: bool = True,
) -> dict[str, Path]:
    """Write a phantom photo and its ground truth (all writes atomic).

    Parameters
    ----------
    ph : Phantom
    out_dir : path-like
        Folder of the photo ``<stem>.jpg`` / ``<stem>.png`` (created if missing).
    stem : str
        File name without extension.
    image_format : {"jpg", "png"}
    jpeg_quality : int, optional
        JPEG quality (default: ``spec.jpeg_quality`` or 95).
    truth_dir : path-like, optional
        Folder of the truth files (default ``out_dir``): ``<stem>_mask.png`` (uint8,
        255 = skin), ``<stem>_melanin.tif`` and ``<stem>_hemoglobin.tif`` (float32, NaN
        off skin) and ``<stem>.json`` (``truth`` plus file names).  Put it apart (e.g.
        a ``truth/`` folder) so that a folder scan for photos does not pick up masks.
    maps : bool
        Write the two float32 TIFF maps (skip them to save space).

    Returns
    -------
    dict of Path: keys ``image``, ``mask``, ``json`` and, with ``maps``, ``melanin`` and ``hemoglobin``.

    Raises
    ------
    SkinImgError
        When a file cannot be written.
    """
    if image_format not in ("jpg", "png"):
        raise ValueError(f"image_format must be 'jpg' or 'png', got {image_format!r}")
    out = Path(out_dir)
    tdir = out if truth_dir is None else Path(truth_dir)
    q = jpeg_quality or ph.truth.get("spec", {}).get("jpeg_quality") or 95
    paths = {"image": out / f"{stem}.{image_format}", "mask": tdir / f"{stem}_mask.png"}
    write_bytes(paths["image"], _encode_image(ph.image, image_format, q))
    write_png(paths["mask"], ph.mask.astype(np.uint8) * np.uint8(255))
    if maps:
        paths["melanin"] = write_tiff(tdir / f"{stem}_melanin.tif", ph.melanin)
        paths["hemoglobin"] = write_tiff(tdir / f"{stem}_hemoglobin.tif", ph.hemoglobin)
    paths["json"] = tdir / f"{stem}.json"
    rel = {k: os.path.relpath(v, tdir).replace(os.sep, "/") for k, v in paths.items() if k != "json"}
    doc = dict(ph.truth)
    doc["files"] = rel
    doc["image_format"] = image_format
    if image_format == "jpg":
        doc["file_jpeg_quality"] = int(q)
    write_json(paths["json"], doc)
    return paths

"""Per-pixel evidence beyond the colour table: per-image colour refinement, thin structures, redness
outliers, and the features of the second-stage perceptron (:data:`FEATURE_NAMES`)."""

from __future__ import annotations

import cv2
import numpy as np

from .filters import _ellipse, _gauss
from .params import SegmentParams

__all__ = ["FEATURE_NAMES"]

def _image_llr(rgb8: np.ndarray, region: np.ndarray, confident: np.ndarray, params: SegmentParams
               ) -> np.ndarray | None:
    """Per-image colour log-likelihood ratio (skin core vs. surroundings), float32 (H, W), or None.

    Histograms (``2**refine_bits`` levels per channel) of the pixels well inside the
    region (eroded by ``refine_margin``) and well outside it (beyond a dilation by
    ``refine_margin``), each normalised and smoothed with a Gaussian of
    ``refine_sigma`` bins; ``log((h_in + e) / (h_out + e))``, ``e`` = 1e-4 / bins,
    clipped to +-``refine_cap``.  "Inside" also requires the smoothed global probability
    >= ``high`` (confident skin).
    """
    from scipy.ndimage import gaussian_filter

    k = _ellipse(params.refine_margin)
    inner = cv2.erode((region & confident).view(np.uint8), k).view(bool)
    outer = ~cv2.dilate(region.view(np.uint8), k).view(bool)
    n_in, n_out = int(np.count_nonzero(inner)), int(np.count_nonzero(outer))
    if n_in < 64 or n_out < 64:
        return None
    b = params.refine_bits
    q = rgb8 >> np.uint8(8 - b)
    idx = q[..., 0].astype(np.int32)
    idx <<= b
    idx |= q[..., 1]
    idx <<= b
    idx |= q[..., 2]
    nb = 1 << (3 * b)
    h_in = np.bincount(idx[inner], minlength=nb).astype(np.float32) / np.float32(n_in)
    h_out = np.bincount(idx[outer], minlength=nb).astype(np.float32) / np.float32(n_out)
    if params.refine_sigma > 0:
        h_in = gaussian_filter(h_in.reshape((1 << b,) * 3), params.refine_sigma, mode="nearest").reshape(-1)
        h_out = gaussian_filter(h_out.reshape((1 << b,) * 3), params.refine_sigma, mode="nearest").reshape(-1)
    e = np.float32(1e-4 / nb)
    cap = params.refine_cap
    table = np.clip(np.log(h_in + e) - np.log(h_out + e), -cap, cap).astype(np.float32)
    return table[idx]


def _thin_structures(rgb8: np.ndarray, params: SegmentParams) -> np.ndarray:
    """Thin dark or light lines (hair strands): morphological black-hat / top-hat of the luminance.

    After the DullRazor idea (Lee et al. 1997, DOI 10.1016/S0010-4825(97)00020-6):
    a pixel darker than ``(1 - strand_contrast)`` x its grey-level closing, or brighter
    than ``(1 + strand_contrast)`` x its opening, with an elliptic element of radius
    ``strand_radius`` pixels, lies on a structure thinner than the element.
    """
    y = cv2.cvtColor(rgb8, cv2.COLOR_RGB2GRAY).astype(np.float32)
    k = _ellipse(params.strand_radius)
    c = np.float32(params.strand_contrast)
    closed = cv2.morphologyEx(y, cv2.MORPH_CLOSE, k)
    opened = cv2.morphologyEx(y, cv2.MORPH_OPEN, k)
    return (y < (1 - c) * closed - 2) | (y > (1 + c) * opened + 2)


def _redness_outliers(rgb8: np.ndarray, mask: np.ndarray, params: SegmentParams) -> np.ndarray:
    """Pixels much redder than the image's own skin (lips): robust z of log(R/G) above ``redness_z``.

    ``z = (x - median) / (1.4826 MAD)`` over the skin pixels of this image, ``x = log((R+1)/(G+1))``.
    """
    r = rgb8[..., 0].astype(np.float32) + 1
    g = rgb8[..., 1].astype(np.float32) + 1
    x = np.log(r / g)
    v = x[mask]
    med = np.float32(np.median(v))
    mad = np.float32(1.4826 * np.median(np.abs(v - med))) + np.float32(0.01)
    return (x - med) > np.float32(params.redness_z) * mad


#: Names of the second-stage pixel features (:func:`_pixel_features`), in column order.
FEATURE_NAMES = ("global_llr", "image_llr", "log_lum", "blackhat1", "blackhat2", "tophat1", "tophat2", "local_std",
                 "dL", "da", "db", "local_da", "local_db", "depth", "core_dist", "dL_top", "da_top", "db_top",
                 "region_fraction",
                 # texture without colour: structure tensor (strand orientation coherence, gradient energy,
                 # anisotropy) at two scales and band-pass energy at three
                 "coherence1", "grad_energy1", "anisotropy1", "coherence2", "grad_energy2", "anisotropy2",
                 "band1", "band2", "band4",
                 # thin structures in every CIELAB channel: pixel minus its 3 x 3 / 5 x 5 median, chroma hats
                 "medres3_L", "medres3_a", "medres3_b", "medres5_L", "medres5_a", "medres5_b",
                 "tophat_a", "blackhat_a", "tophat_b", "blackhat_b",
                 # context of the colour log-odds
                 "local_llr", "local_image_llr", "wide_image_llr")


def _pixel_features(rgb8: np.ndarray, llr: np.ndarray, img: np.ndarray | None, mask: np.ndarray,
                    core: np.ndarray, photo_pixels: int | None = None) -> np.ndarray:
    """Second-stage features of the region's pixels: float32 (N, len(FEATURE_NAMES)), rows in ``mask`` order.

    Colour: the global log-odds ``llr``, the per-image log-likelihood ratio ``img``
    (0 when absent), CIELAB differences (L*, a*, b*) to the median of this photo's
    confident skin ``core`` and the same for 7 x 7 box means of a*, b*; CIELAB differences to a
    second reference, the median of the core's most skin-coloured quarter (highest ``llr``), which
    differs from the first when a skin-coloured wall or garment joined the core; the region's
    fraction of the photo (``photo_pixels``, default ``mask.size``: the arrays may be a crop).  Texture:
    log luminance relative to the core median; relative grey-level black-hat and
    top-hat (Lee et al. 1997 DullRazor idea) at radii 1 and 2; local standard deviation
    (5 x 5) of luminance relative to the core median.  Geometry: distance (pixels,
    capped at 15) to the outside of ``mask`` and to ``core``.

    Hair strands of the skin's own colour (added after the per-tone diagnosis): the structure tensor of
    log luminance at integration scales 1.5 and 3 (coherence ``(l1 - l2) / (l1 + l2)``, log trace, log
    ``l1 - l2``; strands are oriented, skin texture is not), log band-pass energy at sigma 1, 2, 4 (differences
    of Gaussians, squared, smoothed at the same sigma), pixel minus its 3 x 3 and 5 x 5 median in L*, a*, b*
    (a one-pixel line differs from its median in hue even where its lightness matches), grey-level top-hat and
    black-hat of a*, b* (radius 1), and 7 x 7 / 15 x 15 box means of the two colour log-odds (context).
    """
    f32 = np.float32
    y = cv2.cvtColor(rgb8, cv2.COLOR_RGB2GRAY).astype(f32)
    lab = cv2.cvtColor(rgb8.astype(f32) * f32(1 / 255.0), cv2.COLOR_RGB2Lab)
    cref = core if np.count_nonzero(core) >= 64 else mask
    full = np.flatnonzero(cref.reshape(-1))
    sub = full[::4]
    labv = lab.reshape(-1, 3)[sub]
    ref = np.median(labv, axis=0).astype(f32)
    ymed = f32(np.median(y.reshape(-1)[sub])) + f32(8.0)
    # second reference: the core's most skin-coloured quarter (global log-odds); differs from the first when a
    # large skin-coloured background or garment joined the core
    lv = llr.reshape(-1)[full]
    top = full[lv >= np.quantile(lv, 0.75)][::2] if full.size >= 256 else sub
    ref_hi = np.median(lab.reshape(-1, 3)[top], axis=0).astype(f32)
    feats = [np.clip(llr, -6, 6), img if img is not None else np.zeros_like(llr), np.log((y + 8) / ymed)]
    for op in (cv2.MORPH_CLOSE, cv2.MORPH_OPEN):
        for r in (1, 2):
            m = cv2.morphologyEx(y, op, _ellipse(r))
            feats.append((m - y) / (m + 8) if op == cv2.MORPH_CLOSE else (y - m) / (y + 8))
    mu = cv2.blur(y, (5, 5))
    var = cv2.blur(y * y, (5, 5)) - mu * mu
    feats.append(np.sqrt(np.maximum(var, 0)) / ymed)
    for c in range(3):
        feats.append(lab[..., c] - ref[c])
    for c in (1, 2):
        feats.append(cv2.blur(lab[..., c], (7, 7)) - ref[c])
    m8 = mask.view(np.uint8)
    feats.append(np.minimum(cv2.distanceTransform(m8, cv2.DIST_L2, 3), 15))
    feats.append(np.minimum(cv2.distanceTransform((~core).view(np.uint8), cv2.DIST_L2, 3), 15))
    for c in range(3):
        feats.append(lab[..., c] - ref_hi[c])
    feats.append(np.full_like(y, f32(np.count_nonzero(mask) / (photo_pixels or mask.size))))
    # structure tensor of log luminance (Bigun and Granlund 1987; Weickert 1999): hair strands run in one
    # direction (coherence near 1), skin texture and noise do not; plus band-pass energy at sigma 1, 2, 4
    ly = np.log(y + f32(8))
    gx = cv2.Sobel(ly, cv2.CV_32F, 1, 0, ksize=3) * f32(0.125)
    gy = cv2.Sobel(ly, cv2.CV_32F, 0, 1, ksize=3) * f32(0.125)
    gxx, gyy, gxy = gx * gx, gy * gy, gx * gy
    for s in (1.5, 3.0):
        jxx, jyy, jxy = _gauss(gxx, s), _gauss(gyy, s), _gauss(gxy, s)
        tr = jxx + jyy
        d = np.sqrt((jxx - jyy) ** 2 + f32(4) * jxy * jxy)
        feats += [d / (tr + f32(1e-4)), np.log(tr + f32(1e-5)), np.log(d + f32(1e-5))]
    prev = ly
    for s in (1.0, 2.0, 4.0):
        g = _gauss(ly, s)
        band = prev - g
        feats.append(np.log(_gauss(band * band, s) + f32(1e-5)))
        prev = g
    chans = [np.ascontiguousarray(lab[..., c]) for c in range(3)]
    for k in (3, 5):
        feats += [ch - cv2.medianBlur(ch, k) for ch in chans]
    e1 = _ellipse(1)
    for ch in chans[1:]:
        feats += [ch - cv2.morphologyEx(ch, cv2.MORPH_OPEN, e1), cv2.morphologyEx(ch, cv2.MORPH_CLOSE, e1) - ch]
    img0 = feats[1]
    feats += [cv2.blur(feats[0], (7, 7)), cv2.blur(img0, (7, 7)), cv2.blur(img0, (15, 15))]
    idx = np.flatnonzero(mask.reshape(-1))
    out = np.empty((len(feats), idx.size), dtype=f32)  # one row per feature, gathered by integer index
    for j, f in enumerate(feats):
        np.take(f.reshape(-1), idx, out=out[j])
    return out.T  # (N, F), Fortran-ordered view

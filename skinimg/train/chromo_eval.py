"""Scoring the chromophore separation on the ensemble of optical models and on a real photograph.

Used by ``benchmarks/chromophore_accuracy.py`` (the held-out table of ``docs/indices.md``) and by the
tests.  Two checks:

* :func:`evaluate_member`: phantoms of one ensemble member (a face scene of
  :mod:`skinimg.phantom` whose skin colour comes from the member) on a tone x blood grid; per
  cell the relative change of the per-image mean ``hemoglobin`` when the blood of the whole
  skin falls by 20 % (and ``melanin`` when melanin falls by 20 %), read by the central model on
  one twin branch shared by both photos (as ``compare`` does) and by every fit member (the
  model range); the change under a pure exposure of x0.8 and x1.25; the per-image means for
  rank correlations.
* :func:`lesion_contrast`: red papules and pigmented macules rendered into the public-domain
  astronaut portrait (``skimage.data.astronaut()``) with the optical-density change of a
  held-out member, and the contrast of each index inside each lesion against its surroundings,
  in interquartile ranges of the surroundings.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from ..color import linear_to_srgb_uint8, srgb_to_linear
from ..indices import (CONDITIONING_MIN, IndexParams, choose_shared_branch, compute_maps, measure, member_maps,
                       shared_member_branches)
from ..phantom import PhantomSpec, astronaut_skin_mask, render_phantom
from ..phantom.ensemble import MEMBERS
from ..session import MEMBER_LEVEL_MIN, model_span
from .ensemble import tone_melanin

__all__ = ["TONES", "LEVELS", "evaluate_member", "summarize_member", "lesion_photo", "lesion_contrast",
           "lesion_summary"]

#: Target ITA (degrees) of each tone class (Del Bino and Bernerd 2013 classes).
TONES = {"very_light": 60.0, "light": 48.0, "intermediate": 35.0, "tan": 20.0, "brown": -10.0, "dark": -45.0}
#: Blood levels, as multiples of the member's typical blood.
LEVELS = (0.5, 1.0, 2.0)


def _pair(a, b, params: IndexParams, with_range: bool) -> dict:
    branch = choose_shared_branch([(a.image, a.mask), (b.image, b.mask)], params=params)
    p = replace(params, branch=branch)
    ra = measure(a.image, a.mask, params=p, return_maps=False)[0]
    rb = measure(b.image, b.mask, params=p, return_maps=False)[0]
    out = {k: 100.0 * (rb[k] / ra[k] - 1.0) for k in ("hemoglobin", "melanin", "erythema_index")}
    if with_range:
        brs = shared_member_branches([(a.image, a.mask), (b.image, b.mask)], params=params)
        ma = member_maps(a.image, a.mask, params=params, branches=brs)
        mb = member_maps(b.image, b.mask, params=params, branches=brs)
        for key in ("hemoglobin", "melanin"):
            by = {}
            for k in ma:  # the rules of compare's model range (skinimg.session.compare)
                before, after = float(np.nanmean(ma[k][key])), float(np.nanmean(mb[k][key]))
                ok = (min(ma[k]["conditioning"], mb[k]["conditioning"]) >= CONDITIONING_MIN
                      and abs(before) > MEMBER_LEVEL_MIN * abs(ra[key]))
                by[k] = 100.0 * (after / before - 1.0) if ok else None
            out[f"{key}_by_model"] = by
    return out


def evaluate_member(name: str, *, size=(240, 320), jpeg_quality: int | None = 90, tones=TONES, levels=LEVELS,
                    with_range: bool = True, exposure: bool = True, seed0: int = 100,
                    params: IndexParams | None = None) -> list[dict]:
    """One row per (tone, level) cell of member ``name`` (see the module docstring)."""
    params = params or IndexParams()
    m = MEMBERS[name]
    rows = []
    for ti, (tone, ita) in enumerate(tones.items()):
        mel = tone_melanin(m, ita)
        for li, lev in enumerate(levels):
            base = PhantomSpec(melanin=mel, hemoglobin=lev * m.typical_blood, seed=seed0 + 10 * ti + li, size=size,
                               jpeg_quality=jpeg_quality)
            b0 = render_phantom(base, optics=m)
            row0 = measure(b0.image, b0.mask, params=params, return_maps=False)[0]
            rec = {"member": name, "role": m.role, "tone": tone, "level": lev, "melanin": mel,
                   "true_hemoglobin": b0.truth["hemoglobin_mean"], "true_melanin": b0.truth["melanin_mean"],
                   "hemoglobin": row0["hemoglobin"], "melanin_index_value": row0["melanin"],
                   "erythema_index": row0["erythema_index"], "branch": row0["chromophore_method"]}
            rec["blood_change"] = _pair(b0, render_phantom(replace(base, hemoglobin_scale=0.8), optics=m), params,
                                        with_range)
            rec["melanin_change"] = _pair(b0, render_phantom(replace(base, melanin_scale=0.8), optics=m), params,
                                          with_range)
            if exposure:
                rec["exposure"] = {g: _pair(b0, render_phantom(replace(base, exposure=g), optics=m), params, False)
                                   for g in (0.8, 1.25)}
            rows.append(rec)
    return rows


def summarize_member(rows: list[dict]) -> dict:
    """Per-tone readings, model-range coverage, rank correlations and exposure changes of one member's rows."""
    from scipy.stats import spearmanr

    out = {"member": rows[0]["member"], "role": rows[0]["role"], "tones": {}}
    cover = {"hemoglobin": [], "melanin": []}
    for tone in dict.fromkeys(r["tone"] for r in rows):
        rr = [r for r in rows if r["tone"] == tone]
        t = {"hemoglobin": [r["blood_change"]["hemoglobin"] for r in rr],
             "melanin": [r["melanin_change"]["melanin"] for r in rr],
             "erythema_index": [r["blood_change"]["erythema_index"] for r in rr]}
        for key, ch in (("hemoglobin", "blood_change"), ("melanin", "melanin_change")):
            for r in rr:
                by = r[ch].get(f"{key}_by_model")
                span = model_span(by.values()) if by else None
                if span:
                    lo, hi = span
                    t.setdefault(f"{key}_range", []).append((lo, hi))
                    cover[key].append(lo - 1.0 <= -20.0 <= hi + 1.0)
                elif by:
                    cover[key].append(False)
        if "exposure" in rr[0]:
            t["exposure"] = [max(abs(r["exposure"][g]["hemoglobin"]) for g in r["exposure"]) for r in rr]
        out["tones"][tone] = t
    hb = [r["hemoglobin"] for r in rows]
    out["spearman_blood"] = float(spearmanr(hb, [r["true_hemoglobin"] for r in rows])[0])
    out["crosstalk"] = float(spearmanr(hb, [r["true_melanin"] for r in rows])[0])
    out["truth_crosstalk"] = float(spearmanr([r["true_hemoglobin"] for r in rows], [r["true_melanin"] for r in rows])[0])
    out["spearman_melanin"] = float(spearmanr([r["melanin_index_value"] for r in rows],
                                              [r["true_melanin"] for r in rows])[0])
    out["coverage"] = {k: (float(np.mean(v)) if v else None) for k, v in cover.items()}
    return out


# ----------------------------------------------------------------------------- real-photo lesions


def _lesion_od(member: str, kind: str, ita: float = 44.0) -> np.ndarray:
    m = MEMBERS[member]
    mel = tone_melanin(m, ita)
    b = m.typical_blood
    od0 = -np.log10(m.linear_rgb(mel, b).astype(np.float64))
    od1 = -np.log10((m.linear_rgb(mel, 2.5 * b) if kind == "papule" else m.linear_rgb(2.5 * mel + 0.03, b))
                    .astype(np.float64))
    return od1 - od0


def lesion_photo(member: str = "km2_eupheo", *, n_papules: int = 8, n_macules: int = 8, seed: int = 0,
                 jpeg_quality: int | None = 90):
    """The astronaut portrait with red papules (blood x2.5) and pigmented macules (melanin x2.5 + 0.03) of
    ``member``'s optical-density change, super-Gaussian profiles of radius 4 / 3 px, on the face skin.
    ``n_papules`` / ``n_macules`` are upper bounds: lesions keep 4.5 radii apart, and beside 8 papules the face
    has room for only 2-5 macules (4000 random tries per kind).

    Returns ``(rgb uint8 (512, 512, 3), skin mask (512, 512), lesions [(kind, y, x, radius)])``.
    """
    from skimage import data

    img = data.astronaut()
    mask = astronaut_skin_mask()
    rng = np.random.default_rng(seed)
    lin = srgb_to_linear(img).astype(np.float64)
    yy, xx = np.mgrid[0:mask.shape[0], 0:mask.shape[1]]
    dist = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
    lesions = []
    for kind, n, r in (("papule", n_papules, 4), ("macule", n_macules, 3)):
        dod = _lesion_od(member, kind)
        ys, xs = np.nonzero(dist > 2 * r + 2)
        for _ in range(4000):
            if sum(1 for les in lesions if les[0] == kind) == n or len(ys) == 0:
                break
            i = int(rng.integers(len(ys)))
            y, x = int(ys[i]), int(xs[i])
            if all((y - a) ** 2 + (x - b) ** 2 > (4.5 * max(r, rr)) ** 2 for _, a, b, rr in lesions):
                prof = np.exp(-0.5 * (((yy - y) ** 2 + (xx - x) ** 2) / float(r * r)) ** 2)
                lin *= 10.0 ** (-dod[None, None, :] * prof[..., None])
                lesions.append((kind, y, x, r))
    out = linear_to_srgb_uint8(np.clip(lin, 0.0, 1.0).astype(np.float32))
    if jpeg_quality:
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(out, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        out = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return out, mask, lesions


def lesion_contrast(rgb: np.ndarray, mask: np.ndarray, lesions, *, params: IndexParams | None = None,
                    names=("hemoglobin", "erythema_index", "a_star", "melanin", "melanin_index")) -> dict:
    """Per lesion kind and index: share of lesions whose median inside (distance < 0.8 r) exceeds the median
    of the surrounding skin (2.2 r to 4 r, other lesions excluded), and the median contrast
    ``(median inside - median around) / IQR around`` (``contrasts``: every lesion's, in drawing order)."""
    maps = compute_maps(rgb, mask, params=params)
    yy, xx = np.mgrid[0:mask.shape[0], 0:mask.shape[1]]
    near = np.zeros(mask.shape, bool)
    for _, y, x, r in lesions:
        near |= (yy - y) ** 2 + (xx - x) ** 2 < (2.2 * r) ** 2
    per = {}
    for kind, y, x, r in lesions:
        d = np.sqrt((yy - y) ** 2 + (xx - x) ** 2)
        inside = mask & (d < 0.8 * r)
        ring = mask & (d > 2.2 * r) & (d < 4 * r) & ~near
        for nm in names:
            v = maps[nm]
            q1, q3 = np.nanpercentile(v[ring], [25, 75])
            c = (np.nanmedian(v[inside]) - np.nanmedian(v[ring])) / max(q3 - q1, 1e-9)
            per.setdefault(kind, {}).setdefault(nm, []).append(float(c))
    return {kind: {nm: {"rises": float(np.mean(np.asarray(v) > 0)), "median_contrast": float(np.median(v)), "n": len(v),
                        "contrasts": v} for nm, v in d.items()} for kind, d in per.items()}


def lesion_summary(member: str, seeds=range(5), **kw) -> dict:
    """:func:`lesion_contrast` pooled over several lesion draws (``seeds`` of :func:`lesion_photo`): one draw
    has 8 lesions of each kind, too few for a stable median (the haemoglobin / erythema index ratio of
    single draws spans 0.9-1.2 on the same member).  Same layout as :func:`lesion_contrast`."""
    pooled: dict = {}
    for seed in seeds:
        rgb, mask, lesions = lesion_photo(member, seed=seed)
        for kind, d in lesion_contrast(rgb, mask, lesions, **kw).items():
            for nm, v in d.items():
                pooled.setdefault(kind, {}).setdefault(nm, []).extend(v["contrasts"])
    return {kind: {nm: {"rises": float(np.mean(np.asarray(v) > 0)), "median_contrast": float(np.median(v)), "n": len(v),
                        "contrasts": v} for nm, v in d.items()} for kind, d in pooled.items()}

"""Named sets of phantoms (:data:`SETS`): the committed samples, tone ladders, pairs, retakes, grids."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io import write_bytes, write_csv, write_png
from .astronaut import _astronaut_image, astronaut_skin_mask
from .render import _encode_image, _skin_reference, render_phantom, write_phantom
from .spec import SITES, PhantomSpec, _rng

__all__ = ["SETS", "SET_EXPOSURE", "LADDER_TONES", "REFERENCE_COLUMNS", "PlannedImage", "plan_set", "write_set",
           "write_reference_csv"]

# ----------------------------------------------------------------------------- image sets

SETS = ("samples", "ladder", "pairs", "retakes", "grid")
#: Exposure of the planned sets: with the mean face shading (~0.85) the median skin pixel
#: then has about the colour of flat skin, so the ladder's measured ITA falls in its category.
SET_EXPOSURE = 1.2
#: Tone ladder of the committed samples: (melanin, hemoglobin), one per ITA category.
LADDER_TONES = ((0.005, 0.008), (0.02, 0.010), (0.045, 0.012), (0.085, 0.014), (0.20, 0.016), (0.42, 0.020))
_SET_BACKGROUNDS = ("wall", "wood", "cloth", "blue", "dark", "wall", "grey")


@dataclass(frozen=True)
class PlannedImage:
    """One image of a set: where it goes (``relpath`` without extension, "/"-separated) and its spec."""

    relpath: str
    spec: PhantomSpec
    note: str = ""


def _ladder_tone(i: int, n: int) -> tuple[float, float]:
    if n == len(LADDER_TONES):
        return LADDER_TONES[i]
    t = i / max(n - 1, 1)
    return float(0.005 * (0.42 / 0.005) ** t), float(0.008 + t * 0.012)


def plan_set(name: str, *, n: int | None = None, size: tuple[int, int] = (480, 640), seed: int = 0) -> list[PlannedImage]:
    """The images of a named set (no rendering).

    Parameters
    ----------
    name : str
        "samples" (the committed ``sample_images/`` tree), "ladder" (``n`` tones, very
        light to dark), "pairs" (``n`` before/after pairs with a known haemoglobin change
        and a pose/exposure change), "retakes" (``n`` pairs of the same skin, no true
        change), "grid" (``n`` x ``n`` melanin x haemoglobin levels varied independently).
    n : int, optional
        Size of the set (defaults: ladder 6, pairs 4, retakes 4, grid 5; ignored for samples).
    size : (H, W)
    seed : int
        Base seed; image ``k`` of a set uses ``seed + k``-derived seeds.

    Returns
    -------
    list of PlannedImage
    """
    e = SET_EXPOSURE
    out: list[PlannedImage] = []
    if name == "samples":
        for i, (m, h) in enumerate(LADDER_TONES):
            spec = PhantomSpec(melanin=m, hemoglobin=h, seed=seed + 11 + i, size=size, background=_SET_BACKGROUNDS[i],
                               spots=3 + i, red_patches=1, exposure=e, noise_seed=seed + 500 + i)
            ref = _skin_reference(m, h)
            out.append(PlannedImage(f"ladder/tone_{i + 1:02d}", spec, f"tone ladder, {ref['ita_category']} (ITA {ref['ita_deg']:+.0f})"))
        p1 = dict(melanin=0.05, hemoglobin=0.03, seed=seed + 101, size=size, background="wall", spots=3, red_patches=4)
        out.append(PlannedImage("patients/P001/cheek/2026-01-15/P001_cheek",
                                PhantomSpec(**p1, exposure=e, noise_seed=seed + 1011), "P001 baseline (redness, 4 red patches)"))
        out.append(PlannedImage("patients/P001/cheek/2026-03-15/P001_cheek",
                                PhantomSpec(**p1, exposure=0.85 * e, pose=(14.0, -9.0, 4.0, 1.06), hemoglobin_scale=0.7,
                                            noise_seed=seed + 1012),
                                "P001 after treatment: hemoglobin x0.7, new pose, exposure x0.85"))
        p2 = dict(melanin=0.16, hemoglobin=0.015, seed=seed + 202, size=size, site="forearm", background="wood", spots=14,
                  red_patches=0)
        for k, (date, ms, pose, ex) in enumerate((
            ("2026-01-10", 1.0, (0.0, 0.0, 0.0, 1.0), 1.0),
            ("2026-02-10", 0.85, (-18.0, 10.0, -5.0, 0.95), 1.1),
            ("2026-03-10", 0.75, (12.0, 16.0, 6.0, 1.04), 0.9),
        )):
            out.append(PlannedImage(f"patients/P002/forearm/{date}/P002_forearm",
                                    PhantomSpec(**p2, melanin_scale=ms, pose=pose, exposure=ex * e, noise_seed=seed + 2020 + k),
                                    f"P002 session {k + 1}: " + ("baseline, 14 lentigines" if k == 0 else
                                                                 f"melanin x{ms:g} (lentigines fading), new pose")))
        out.append(PlannedImage("chart/chart_tungsten",
                                PhantomSpec(melanin=0.08, hemoglobin=0.015, seed=seed + 303, size=size, chart=True, illuminant="A",
                                            exposure=0.55, background="wall", noise_seed=seed + 3030),
                                "ColorChecker beside a face under tungsten light (no white balance)"))
        r = dict(melanin=0.10, hemoglobin=0.02, seed=seed + 404, size=size, background="cloth", spots=5, red_patches=2)
        out.append(PlannedImage("retake/R001_a", PhantomSpec(**r, exposure=e, noise_seed=seed + 4041), "retake pair, shot 1"))
        out.append(PlannedImage("retake/R001_b",
                                PhantomSpec(**r, exposure=1.1 * e, pose=(-10.0, 6.0, -3.0, 1.03), noise_seed=seed + 4042, jpeg_quality=85),
                                "retake pair, shot 2: same skin, new pose, exposure x1.1, JPEG q85"))
        return out
    if name == "ladder":
        n = 6 if n is None else n
        for i in range(n):
            m, h = _ladder_tone(i, n)
            spec = PhantomSpec(melanin=m, hemoglobin=h, seed=seed + i, size=size,
                               background=_SET_BACKGROUNDS[i % len(_SET_BACKGROUNDS)], exposure=e)
            out.append(PlannedImage(f"ladder/tone_{i + 1:02d}", spec, f"melanin {m:.3f}, hemoglobin {h:.3f}"))
    elif name == "pairs":
        n = 4 if n is None else n
        for i in range(n):
            rng = _rng(seed + i, 700)
            hs = (0.6, 0.8, 1.0, 1.3)[i % 4]
            base = dict(melanin=float(rng.uniform(0.01, 0.3)), hemoglobin=float(rng.uniform(0.01, 0.04)), seed=seed + i,
                        size=size, site=SITES[i % 2], background=_SET_BACKGROUNDS[i % len(_SET_BACKGROUNDS)],
                        spots=int(rng.integers(2, 10)), red_patches=int(rng.integers(1, 5)))
            pose = (float(rng.uniform(-25, 25)), float(rng.uniform(-20, 20)), float(rng.uniform(-8, 8)), float(rng.uniform(0.92, 1.08)))
            out.append(PlannedImage(f"pairs/pair_{i + 1:03d}_before", PhantomSpec(**base, exposure=e, noise_seed=10 * (seed + i) + 1), "before"))
            out.append(PlannedImage(f"pairs/pair_{i + 1:03d}_after",
                                    PhantomSpec(**base, exposure=e * float(rng.uniform(0.8, 1.15)), pose=pose, hemoglobin_scale=hs,
                                                noise_seed=10 * (seed + i) + 2), f"after: hemoglobin x{hs:g}"))
    elif name == "retakes":
        n = 4 if n is None else n
        for i in range(n):
            rng = _rng(seed + i, 701)
            base = dict(melanin=float(rng.uniform(0.01, 0.3)), hemoglobin=float(rng.uniform(0.01, 0.04)), seed=seed + i,
                        size=size, site=SITES[i % 2], background=_SET_BACKGROUNDS[(i + 2) % len(_SET_BACKGROUNDS)],
                        spots=int(rng.integers(2, 10)), red_patches=int(rng.integers(0, 4)))
            pose = (float(rng.uniform(-25, 25)), float(rng.uniform(-20, 20)), float(rng.uniform(-8, 8)), float(rng.uniform(0.92, 1.08)))
            out.append(PlannedImage(f"retakes/retake_{i + 1:03d}_a", PhantomSpec(**base, exposure=e, noise_seed=10 * (seed + i) + 1), "shot 1"))
            out.append(PlannedImage(f"retakes/retake_{i + 1:03d}_b",
                                    PhantomSpec(**base, exposure=e * float(rng.uniform(0.85, 1.15)), pose=pose,
                                                noise_seed=10 * (seed + i) + 2, jpeg_quality=int(rng.integers(75, 96))),
                                    "shot 2: same skin (no true change)"))
    elif name == "grid":
        n = 5 if n is None else n
        mels = np.geomspace(0.01, 0.40, n) if n > 1 else np.array([0.08])
        hbs = np.geomspace(0.004, 0.06, n) if n > 1 else np.array([0.015])
        for i, m in enumerate(mels):
            for k, h in enumerate(hbs):
                spec = PhantomSpec(melanin=float(m), hemoglobin=float(h), seed=seed, size=size, exposure=e,
                                   noise_seed=seed * 1000 + i * n + k)
                out.append(PlannedImage(f"grid/m{i + 1:02d}_h{k + 1:02d}", spec, f"melanin {m:.3f}, hemoglobin {h:.4f}"))
    else:
        raise ValueError(f"unknown set {name!r}; choose one of {', '.join(SETS)}")
    return out


def write_set(
    name: str,
    out_dir: str | os.PathLike,
    *,
    n: int | None = None,
    size: tuple[int, int] = (480, 640),
    seed: int = 0,
    image_format: str = "jpg",
    jpeg_quality: int = 90,
    maps: bool | None = None,
    progress=None,
) -> list[dict]:
    """Render and write a set: photos under ``out_dir/<relpath>``, truth under ``out_dir/truth/<relpath>``.

    Parameters
    ----------
    name, n, size, seed
        See :func:`plan_set`.
    out_dir : path-like
    image_format : {"jpg", "png"}
    jpeg_quality : int
        Quality of written JPEG files.
    maps : bool, optional
        Write the float32 melanin/haemoglobin TIFFs (default: yes, except for "samples",
        which is kept small for the repository).
    progress : callable, optional
        Called with each record after it is written (for a CLI progress line).

    Returns
    -------
    list of dict: one record per photo (``image``, ``truth``, ``melanin_mean``,
    ``hemoglobin_mean``, ``note``; paths relative to ``out_dir``, "/"-separated).

    Notes
    -----
    Truth files live in a separate ``truth/`` folder with the same relative layout so
    that ``skinimg analyze out_dir/<set>`` sees only photographs.  For "samples" the
    folder also gets ``real/astronaut.jpg`` and a generated ``README.md``; every other set
    gets ``reference.csv`` (:func:`write_reference_csv`), its truth as the reference of
    ``skinimg bench --suite agreement``.
    """
    out = Path(out_dir)
    plan = plan_set(name, n=n, size=size, seed=seed)
    maps = (name != "samples") if maps is None else maps
    records = []
    for item in plan:
        rel = Path(item.relpath)
        ph = render_phantom(item.spec)
        paths = write_phantom(ph, out / rel.parent, rel.name, image_format=image_format, jpeg_quality=jpeg_quality,
                              truth_dir=out / "truth" / rel.parent, maps=maps)
        ref = ph.truth["skin_reference"]
        rec = {
            "image": paths["image"].relative_to(out).as_posix(),
            "truth": paths["json"].relative_to(out).as_posix(),
            "melanin_mean": ph.truth["melanin_mean"],
            "hemoglobin_mean": ph.truth["hemoglobin_mean"],
            "ita_reference": ref["ita_deg"],
            "illuminant": item.spec.illuminant,
            "note": item.note,
        }
        records.append(rec)
        if progress is not None:
            progress(rec)
    if name != "samples":
        write_reference_csv(out, records, name)
    if name == "samples":
        real = out / "real" / "astronaut.jpg"
        write_bytes(real, _encode_image(_astronaut_image(), "jpg", jpeg_quality))
        write_png(out / "truth" / "real" / "astronaut_mask.png",
                  astronaut_skin_mask(sample=True).astype(np.uint8) * np.uint8(255))
        rec = {"image": "real/astronaut.jpg", "truth": None, "melanin_mean": None, "hemoglobin_mean": None,
               "ita_reference": None, "illuminant": None,
               "note": "real photograph: astronaut Eileen Collins (NASA, public domain), via scikit-image"}
        records.append(rec)
        if progress is not None:
            progress(rec)
        write_bytes(out / "README.md", _samples_readme(records, size, seed).encode("utf-8"))
    return records


#: Columns of the ``reference.csv`` that :func:`write_set` writes beside a set (``subject``, ``session``: retakes only).
REFERENCE_COLUMNS = ("image", "roi", "subject", "session", "true_melanin", "true_hemoglobin")


def write_reference_csv(out_dir: str | os.PathLike, records: list[dict], set_name: str) -> Path:
    """``out_dir/reference.csv``: a set's truth as the reference readings of ``skinimg bench --suite agreement``.

    One row per photo: ``image`` (relative to ``out_dir``), ``roi`` (its true skin mask,
    ``truth/<stem>_mask.png``), ``true_melanin`` and ``true_hemoglobin`` (the phantom's mean
    volume fractions over its true skin mask); for the ``retakes`` set also ``subject``
    (``retake_001`` ...) and ``session`` (``a``/``b``): two shots of unchanged skin.
    """
    rows = []
    for r in records:
        if r["truth"] is None:
            continue
        row = {"image": r["image"], "roi": r["truth"][: -len(".json")] + "_mask.png",
               "true_melanin": r["melanin_mean"], "true_hemoglobin": r["hemoglobin_mean"]}
        if set_name == "retakes":
            row["subject"], row["session"] = Path(r["image"]).stem.rsplit("_", 1)
        rows.append(row)
    cols = [c for c in REFERENCE_COLUMNS if set_name == "retakes" or c not in ("subject", "session")]
    return write_csv(Path(out_dir) / "reference.csv", rows, cols)


def _samples_readme(records: list[dict], size, seed) -> str:
    rows = []
    for r in records:
        m = "" if r["melanin_mean"] is None else f"{r['melanin_mean']:.4f}"
        h = "" if r["hemoglobin_mean"] is None else f"{r['hemoglobin_mean']:.4f}"
        rows.append(f"| `{r['image']}` | {r['note']} | {m} | {h} |")
    table = "\n".join(rows)
    cmd = "skinimg synth --set samples --out sample_images"
    if tuple(size) != (480, 640) or seed != 0:
        cmd += f" --size {size[0]}x{size[1]} --seed {seed}"
    return f"""# sample_images

Small, deterministic test photographs for skinimg.  Everything except `real/` is a
**skin phantom** rendered by `skinimg.phantom` from a two-layer optical skin model
(melanin in the epidermis, blood in the dermis; see the docstring of
`skinimg/phantom/` and the README), so the true skin mask and the true melanin and
haemoglobin concentrations are known.

Regenerate the whole folder (byte-identical with the same library versions):

    {cmd}

The float32 truth maps (`*_melanin.tif`, `*_hemoglobin.tif`) are not committed to keep
the folder small; `skinimg synth` writes them for the other sets, and
`skinimg.phantom.render_phantom(PhantomSpec.from_dict(json["spec"]))` rebuilds them
from any truth JSON.

## Layout

* photos: `ladder/`, `patients/<id>/<site>/<date>/`, `chart/`, `retake/`, `real/`
* truth: `truth/<same relative path>/<stem>_mask.png` (255 = skin) and `<stem>.json`
  (`melanin_mean`, `hemoglobin_mean` over the true mask, the full `spec`, illuminant,
  exposure, pose and pose matrix, spot and patch positions, chart corners and patch
  centres).  Kept apart so that a folder scan for photos does not pick them up
  (`skinimg analyze sample_images --exclude 'truth/*'`).
* expected results: `expected/indices.csv` and `expected/verdicts.csv`, what the CI
  pipeline (`skinimg run ci sample_images`, `pipelines/ci.toml`) must reproduce within the
  tolerances of `skinimg regress`; regenerated deliberately (see the main README,
  "Reports and regression checks").

## Images

Means are over the true skin mask (volume fractions).

| image | what | melanin_mean | hemoglobin_mean |
|---|---|---|---|
{table}

## Licences

* Phantoms: generated by skinimg (BSD-3-Clause), no real person.  Spectral data: CIE
  colour-matching functions and illuminants (CIE 015:2018), ColorChecker reflectances
  (BabelColor average, Pascale 2006), as distributed by colour-science (BSD-3-Clause);
  haemoglobin extinction after Prahl (1999), melanin absorption after Jacques (2013).
* `real/astronaut.jpg`: portrait of astronaut Eileen Collins, NASA (public domain,
  https://commons.wikimedia.org/wiki/File:Eileen_Collins.jpg), from `skimage.data.astronaut()`,
  cropped to the head and shoulders and downscaled.  `truth/real/astronaut_mask.png`: its skin mask,
  hand-drawn by the skinimg developers (`skinimg.phantom.ASTRONAUT_SKIN`; face, ears and neck without
  eyes, eyebrows and mouth; within about 2 px), for `skinimg eval-segment`; never used for training.
"""

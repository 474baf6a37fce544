"""Generate ``skinimg/data/ensemble_data.json`` (run once; the output is committed).

Data of the ensemble of optical skin models (:mod:`skinimg.phantom.ensemble`):

* molar extinction coefficients of oxy- and deoxyhaemoglobin, 400-700 nm every 2 nm, in
  cm^-1 / (mol/L), as compiled by S. Prahl (1999) from measurements of W. B. Gratzer and
  N. Kollias, https://omlc.org/spectra/hemoglobin/ (transcribed below; the phantom model of
  :mod:`skinimg.phantom.optics` uses the 10 nm subset of the same table);
* the total diffuse reflectance of a semi-infinite turbid medium as a function of its reduced
  albedo ``a' = mu_s' / (mu_s' + mu_a)``, by a Monte Carlo simulation of photon transport
  (isotropic scattering with the reduced coefficients, the similarity relation; refractive
  index 1.4 against air with Fresnel reflection of escaping photons; normal incidence;
  Russian roulette below weight 1e-3), 22 albedos, 40 000 photons each, fixed seeds.  The
  method is that of MCML (Wang, Jacques and Zheng 1995, https://doi.org/10.1016/0169-2607(95)01640-F)
  reduced to a homogeneous half-space; it is independent of the diffusion approximation
  (Farrell et al. 1992) and of Kubelka-Munk theory, the other two dermis solvers of the ensemble.
  Its Monte Carlo error is about 0.5 % of R (sd over seeds, measured when it was generated).

Usage::

    .venv/bin/python skinimg/data/make_ensemble_data.py   # rewrites ensemble_data.json beside this file
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

#: wavelength (nm), eps HbO2, eps Hb (cm^-1 / (mol/L)); Prahl (1999), https://omlc.org/spectra/hemoglobin/
PRAHL_2NM = """
    400 266232 223296, 402 284224 236188, 404 308716 253368, 406 354208 270548, 408 422320 287356, 410 466840 303956
    412 500200 321344, 414 524280 342596, 416 521880 363848, 418 515520 385680, 420 480360 407560, 422 431880 429880
    424 376236 461200, 426 326032 481840, 428 283112 500840, 430 246072 528600, 432 214120 552160, 434 165332 552160
    436 132820 547040, 438 119140 501560, 440 102580 413280, 442 92780 363240, 444 81444 282724, 446 76324 237224
    448 67044 173320, 450 62816 103292, 452 58864 62640, 454 53552 36170, 456 49496 30698.8, 458 47496 25886.4
    460 44480 23388.8, 462 41320 20891.2, 464 39807.2 19260.8, 466 37073.2 18142.4, 468 34870.8 17025.6, 470 33209.2 16156.4
    472 31620 15310, 474 30113.6 15048.4, 476 28850.8 14792.8, 478 27718 14657.2, 480 26629.2 14550, 482 25701.6 14881.2
    484 25180.4 15212.4, 486 24669.6 15543.6, 488 24174.8 15898, 490 23684.4 16684, 492 23086.8 17469.6, 494 22457.6 18255.6
    496 21850.4 19041.2, 498 21260 19891.2, 500 20932.8 20862, 502 20596.4 21832.8, 504 20418 22803.6, 506 19946 23774.4
    508 19996 24745.2, 510 20035.2 25773.6, 512 20150.4 26936.8, 514 20429.2 28100, 516 21001.6 29263.2, 518 22509.6 30426.4
    520 24202.4 31589.6, 522 26450.4 32851.2, 524 29269.2 34397.6, 526 32496.4 35944, 528 35990 37490, 530 39956.8 39036.4
    532 43876 40584, 534 46924 42088, 536 49752 43592, 538 51712 45092, 540 53236 46592, 542 53292 48148
    544 52096 49708, 546 49868 51268, 548 46660 52496, 550 43016 53412, 552 39675.2 54080, 554 36815.2 54520
    556 34476.8 54540, 558 33456 54164, 560 32613.2 53788, 562 32620 52276, 564 33915.6 50572, 566 36495.2 48828
    568 40172 46948, 570 44496 45072, 572 49172 43340, 574 53308 41716, 576 55540 40092, 578 54728 38467.6
    580 50104 37020, 582 43304 35676.4, 584 34639.6 34332.8, 586 26600.4 32851.6, 588 19763.2 31075.2, 590 14400.8 28324.4
    592 10468.4 25470, 594 7678.8 22574.8, 596 5683.6 19800, 598 4504.4 17058.4, 600 3200 14677.2, 602 2664 13622.4
    604 2128 12567.6, 606 1789.2 11513.2, 608 1647.6 10477.6, 610 1506 9443.6, 612 1364.4 8591.2, 614 1222.8 7762
    616 1110 7344.8, 618 1026 6927.2, 620 942 6509.6, 622 858 6193.2, 624 774 5906.8, 626 707.6 5620
    628 658.8 5366.8, 630 610 5148.8, 632 561.2 4930.8, 634 512.4 4730.8, 636 478.8 4602.4, 638 460.4 4473.6
    640 442 4345.2, 642 423.6 4216.8, 644 405.2 4088.4, 646 390.4 3965.08, 648 379.2 3857.6, 650 368 3750.12
    652 356.8 3642.64, 654 345.6 3535.16, 656 335.2 3427.68, 658 325.6 3320.2, 660 319.6 3226.56, 662 314 3140.28
    664 308.4 3053.96, 666 302.8 2967.68, 668 298 2881.4, 670 294 2795.12, 672 290 2708.84, 674 285.6 2627.64
    676 282 2554.4, 678 279.2 2481.16, 680 277.6 2407.92, 682 276 2334.68, 684 274.4 2261.48, 686 272.8 2188.24
    688 274.4 2115, 690 276 2051.96, 692 277.6 2000.48, 694 279.2 1949.04, 696 282 1897.56, 698 286 1846.08
    700 290 1794.28
"""

N_PHOTONS = 40000
ONE_MINUS_ALBEDO = np.geomspace(3e-4, 0.6, 22)


def prahl_table() -> np.ndarray:
    """(151, 3) float64: wavelength, eps_HbO2, eps_Hb."""
    vals = [float(v) for item in PRAHL_2NM.replace("\n", " ").split(",") for v in item.split()]
    return np.asarray(vals, dtype=np.float64).reshape(-1, 3)


def _fresnel_inside(cos_i: np.ndarray, n: float = 1.4) -> np.ndarray:
    """Unpolarised Fresnel reflectance of light inside a medium of index ``n`` meeting air."""
    sin_t = n * np.sqrt(np.clip(1.0 - cos_i**2, 0.0, 1.0))
    cos_t = np.sqrt(np.clip(1.0 - sin_t**2, 0.0, 1.0))
    rs = ((n * cos_i - cos_t) / (n * cos_i + cos_t)) ** 2
    rp = ((n * cos_t - cos_i) / (n * cos_t + cos_i)) ** 2
    return np.where(sin_t >= 1.0, 1.0, 0.5 * (rs + rp))


def mc_half_space(albedo: float, n_photons: int = N_PHOTONS, seed: int = 0, n: float = 1.4) -> float:
    """Total diffuse reflectance of a half-space of reduced albedo ``albedo`` (fraction of the
    photons that entered), photons launched at normal incidence, depth in transport mean free paths."""
    rng = np.random.default_rng(seed)
    z = -np.log(rng.random(n_photons))
    w = np.ones(n_photons)
    mu = np.ones(n_photons)
    alive = np.ones(n_photons, bool)
    reflected = 0.0
    while alive.any():
        idx = np.flatnonzero(alive)
        w[idx] *= albedo
        mu[idx] = 2.0 * rng.random(len(idx)) - 1.0
        znew = z[idx] + mu[idx] * -np.log(rng.random(len(idx)))
        out = znew < 0.0
        if out.any():
            o = idx[out]
            esc = rng.random(len(o)) >= _fresnel_inside(-mu[o], n)
            reflected += float(w[o][esc].sum())
            znew[out] = np.where(esc, 0.0, -znew[out])
            mu[o[~esc]] = -mu[o[~esc]]
            alive[o[esc]] = False
        z[idx] = znew
        low = np.flatnonzero(alive & (w < 1e-3))
        if len(low):
            keep = rng.random(len(low)) < 0.1
            w[low[keep]] *= 10.0
            alive[low[~keep]] = False
    return reflected / n_photons


def main() -> None:
    t = prahl_table()
    albedo = 1.0 - ONE_MINUS_ALBEDO
    refl = [mc_half_space(float(a), seed=i) for i, a in enumerate(albedo)]
    doc = {
        "provenance": "haemoglobin: Prahl (1999) https://omlc.org/spectra/hemoglobin/ (Gratzer, Kollias); "
                      "half-space reflectance: Monte Carlo, skinimg/data/make_ensemble_data.py",
        "hemoglobin": {"wavelength_nm": t[:, 0].tolist(), "eps_hbo2": t[:, 1].tolist(), "eps_hb": t[:, 2].tolist(),
                       "unit": "cm^-1 / (mol/L)"},
        "half_space_mc": {"reduced_albedo": [round(float(a), 10) for a in albedo],
                          "reflectance": [round(float(r), 6) for r in refl],
                          "refractive_index": 1.4, "photons": N_PHOTONS},
    }
    out = Path(__file__).with_name("ensemble_data.json")
    out.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

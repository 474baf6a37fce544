"""Split-face phantom series: an ROI drawn on the baseline only, propagated, measures the treated site.

``python benchmarks/roi_split_face.py [--patients 3] [--work DIR] [--json FILE]`` (a few minutes): for each
patient (a face phantom of its own seed and skin tone, 480 x 640), a baseline session and four follow-ups
taken from new poses (up to 5 degrees of rotation, 5 % of scale and 10 % of shift, exposure x0.9-1.1, new
sensor noise, JPEG 95) in which the blood is reduced by 30 % inside a *treated* patch on one cheek (15-25 % of
the skin) and unchanged elsewhere (:func:`skinimg.phantom.render_treated`: the phantom rendered untreated and
treated, composed per pixel).  The baseline gets an ROI file with two named regions, ``treated`` (the true
patch) and ``control`` (its mirror image on the other cheek); ``skinimg track --propagate-roi`` carries them to
every follow-up through the registration with the baseline.

Printed per pair (baseline vs follow-up): the measured change of ``hemoglobin`` in the treated region, the
control region and the whole skin with their verdicts; the true changes from the phantom's blood maps
(whole skin: mean over each photo's true skin, showing the dilution); the index's own change on the true
patch with the true skin masks (no ROI, no registration: what the index reads on perfect geometry); the
intersection over union of the propagated regions with the true patches; and the pose.  Then the pairs of
consecutive follow-ups (both treated: the treated region should read no change).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from skinimg.batch import track  # noqa: E402
from skinimg.indices import IndexParams, compute_maps  # noqa: E402
from skinimg.io import read_roi, write_bytes, write_json  # noqa: E402
from skinimg.phantom import PhantomSpec, cheek_patches, patch_in, polygon_mask, render_phantom, render_treated  # noqa: E402
from skinimg.session import CompareParams  # noqa: E402

#: (dx fraction of the width, dy fraction of the height, rotation degrees, scale, exposure) of the follow-ups
POSES = ((0.10, 0.0, 5.0, 1.00, 0.90), (-0.05, 0.10, -5.0, 1.05, 1.10), (0.05, -0.10, 3.0, 0.95, 1.05),
         (-0.10, -0.05, -4.0, 1.05, 0.95))
#: (melanin, hemoglobin) of the patients: light, intermediate, tan
TONES = ((0.02, 0.018), (0.06, 0.02), (0.12, 0.022))
SIZE = (480, 640)
SCALE = 0.7  # blood in the treated patch after treatment


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def write_jpeg(path: Path, rgb: np.ndarray) -> None:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    write_bytes(path, buf.tobytes())


def build(root: Path, n_patients: int) -> dict:
    """Write the study (photos, the baselines' ROI files) and return its truth per patient and session."""
    truth = {}
    for p in range(n_patients):
        mel, hb = TONES[p % len(TONES)]
        pid = f"S{p + 1:02d}"
        base = PhantomSpec(melanin=mel, hemoglobin=hb, seed=500 + p, size=SIZE, site="face", noise_seed=7000 + p)
        specs = [base] + [replace(base, pose=(dx * SIZE[1], dy * SIZE[0], rot, s), exposure=e,
                                  noise_seed=7000 + 10 * (k + 1) + p)
                          for k, (dx, dy, rot, s, e) in enumerate(POSES)]
        b0 = render_phantom(base)
        treated, control = cheek_patches(b0.mask)
        sessions = {}
        for k, spec in enumerate(specs):
            date = f"2026-{k + 1:02d}-01"
            t_poly, c_poly = patch_in(treated, base, spec), patch_in(control, base, spec)
            ph = render_treated(spec, t_poly, hemoglobin_scale=1.0 if k == 0 else SCALE)
            folder = root / pid / "face" / date
            write_jpeg(folder / f"{pid}_face.jpg", ph.image)
            if k == 0:
                write_json(folder / f"{pid}_face.roi.json",
                           {"image_size": [SIZE[1], SIZE[0]], "note": "benchmarks/roi_split_face.py: the true patch",
                            "regions": {"treated": treated.round(2).tolist(), "control": control.round(2).tolist()}})
            sessions[date] = {"spec": spec, "mask": ph.mask, "hb": ph.hemoglobin, "rgb": ph.image,
                              "treated": polygon_mask(t_poly, ph.mask.shape), "control": polygon_mask(c_poly, ph.mask.shape)}
        share = (sessions["2026-01-01"]["treated"] & b0.mask).sum() / b0.mask.sum()
        truth[pid] = {"melanin": mel, "hemoglobin": hb, "treated_share": float(share), "sessions": sessions}
    return truth


def true_change(before: dict, after: dict, region: str | None) -> float:
    """True % change of the mean blood: inside a region (true masks) or over each photo's whole true skin."""
    mb = before["mask"] & before[region] if region else before["mask"]
    ma = after["mask"] & after[region] if region else after["mask"]
    b, a = float(np.nanmean(before["hb"][mb])), float(np.nanmean(after["hb"][ma]))
    return 100.0 * (a - b) / b


def index_change(before: dict, after: dict, region: str, branch: str) -> float:
    """The haemoglobin index's % change inside the true patch on the true skin masks (perfect geometry)."""
    ip = IndexParams(branch=branch)
    vb = compute_maps(before["rgb"], before["mask"], params=ip)["hemoglobin"][before[region] & before["mask"]]
    va = compute_maps(after["rgb"], after["mask"], params=ip)["hemoglobin"][after[region] & after["mask"]]
    b, a = float(np.nanmean(vb)), float(np.nanmean(va))
    return 100.0 * (a - b) / b


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--patients", type=int, default=3)
    ap.add_argument("--work", type=Path, default=None, help="keep the study and results here (default: temporary)")
    ap.add_argument("--json", type=Path, default=None, help="also write the table as JSON")
    a = ap.parse_args(argv)
    tmp = tempfile.TemporaryDirectory() if a.work is None else None
    work = Path(tmp.name) if tmp else a.work
    t0 = time.perf_counter()
    truth = build(work / "study", a.patients)
    res = track(work / "study", work / "results", params=CompareParams(), propagate_roi=True)
    elapsed = time.perf_counter() - t0
    out = work / "results"
    pairs, consecutive = [], []
    for pid, t in truth.items():
        dates = sorted(t["sessions"])
        for ref, cur in zip([dates[0]] * (len(dates) - 1) + dates[1:-1], dates[1:] + dates[2:]):
            doc = json.loads((out / "pairs" / pid / "face" / f"{ref}__{cur}" / "comparison.json").read_text())
            b, c = t["sessions"][ref], t["sessions"][cur]
            row = {"patient": pid, "melanin": t["melanin"], "treated_share": t["treated_share"], "reference": ref,
                   "session": cur, "pose": list(c["spec"].pose), "exposure": c["spec"].exposure}
            for name, m in [("whole", doc["metrics"])] + [(n, r.get("metrics")) for n, r in doc["regions"].items()]:
                hbm = (m or {}).get("hemoglobin", {})
                row[f"{name}_pct"], row[f"{name}_verdict"] = hbm.get("delta_pct"), hbm.get("verdict")
                row[f"{name}_range"] = hbm.get("delta_pct_model_range")  # the change under every fit optical model
            row["true_treated_pct"] = true_change(b, c, "treated")
            row["true_control_pct"] = true_change(b, c, "control")
            row["true_whole_pct"] = true_change(b, c, None)
            if ref == dates[0]:
                row["index_treated_pct"] = index_change(b, c, "treated", doc["chromophore_branch"])
                roi = read_roi(out / "rois" / pid / "face" / f"{cur}.roi.json")
                masks = roi.masks(c["mask"].shape)
                row["iou_treated"], row["iou_control"] = iou(masks["treated"], c["treated"]), iou(masks["control"],
                                                                                                    c["control"])
                pairs.append(row)
            else:
                consecutive.append(row)
    print(f"split-face phantom series: {a.patients} patients x {len(POSES)} follow-ups, blood x{SCALE} in the treated "
          f"patch; {res['n_pairs']} pairs, {res['n_failed']} failed, {elapsed:.0f} s\n")
    print("| patient (melanin) | session | pose dx,dy px / rot / scale | treated % (verdict) | control % (verdict) "
          "| whole skin % (verdict) | true treated / control / whole % | index on true patch % | IoU treated / control |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in pairs:
        dx, dy, rot, s = r["pose"]
        print(f"| {r['patient']} ({r['melanin']:.2f}), patch {100 * r['treated_share']:.0f} % of skin | {r['session']} "
              f"| {dx:+.0f},{dy:+.0f} / {rot:+.0f} / {s:.2f} | {r['treated_pct']:+.1f} ({r['treated_verdict']}) "
              f"| {r['control_pct']:+.1f} ({r['control_verdict']}) | {r['whole_pct']:+.1f} ({r['whole_verdict']}) "
              f"| {r['true_treated_pct']:+.1f} / {r['true_control_pct']:+.1f} / {r['true_whole_pct']:+.1f} "
              f"| {r['index_treated_pct']:+.1f} | {r['iou_treated']:.3f} / {r['iou_control']:.3f} |")
    print("\nconsecutive follow-ups (both treated):")
    print("| patient | pair | treated % (verdict) | control % (verdict) | whole skin % (verdict) |")
    print("|---|---|---|---|---|")
    for r in consecutive:
        print(f"| {r['patient']} | {r['reference']} -> {r['session']} | {r['treated_pct']:+.1f} ({r['treated_verdict']}) "
              f"| {r['control_pct']:+.1f} ({r['control_verdict']}) | {r['whole_pct']:+.1f} ({r['whole_verdict']}) |")
    tr = np.array([r["treated_pct"] for r in pairs])
    print(f"\ntreated region: {tr.mean():+.1f} % (range {tr.min():+.1f} to {tr.max():+.1f}); within -30 +- 5: "
          f"{int((np.abs(tr + 30) <= 5).sum())}/{len(tr)}; verdict improved: "
          f"{sum(r['treated_verdict'] == 'improved' for r in pairs)}/{len(pairs)}")
    rng = [r["treated_range"] for r in pairs if r.get("treated_range")]
    if rng:  # the size of a change is model-bound (docs/indices.md): does the range over the optical models hold it?
        print(f"treated region, model range: low end {min(lo for lo, _ in rng):+.1f} to {max(lo for lo, _ in rng):+.1f} %, "
              f"high end {min(hi for _, hi in rng):+.1f} to {max(hi for _, hi in rng):+.1f} %; holds -30 within 3 points: "
              f"{sum(lo - 3 <= -30 <= hi + 3 for lo, hi in rng)}/{len(rng)}")
    print(f"control region no_change: {sum(r['control_verdict'] == 'no_change' for r in pairs)}/{len(pairs)}; "
          f"whole skin {np.mean([r['whole_pct'] for r in pairs]):+.1f} % (true "
          f"{np.mean([r['true_whole_pct'] for r in pairs]):+.1f} %)")
    print(f"index on the true patch and masks: {np.mean([r['index_treated_pct'] for r in pairs]):+.1f} % "
          f"(range {min(r['index_treated_pct'] for r in pairs):+.1f} to {max(r['index_treated_pct'] for r in pairs):+.1f})")
    print(f"propagated IoU: treated min {min(r['iou_treated'] for r in pairs):.3f}, control min "
          f"{min(r['iou_control'] for r in pairs):.3f}")
    if consecutive:  # no true change between treated follow-ups: the retake spread of a region and of the whole skin
        sd_region = float(np.std([r[f"{k}_pct"] for r in consecutive for k in ("treated", "control")], ddof=1))
        sd_whole = float(np.std([r["whole_pct"] for r in consecutive], ddof=1))
        print(f"retake spread between follow-ups (SD of the % change, true change 0): regions {sd_region:.2f}, whole "
              f"skin {sd_whole:.2f}, ratio {sd_region / sd_whole:.2f} (1 / sqrt(region share) = "
              f"{1 / np.sqrt(np.mean([r['treated_share'] for r in pairs])):.2f}); verdicts no_change: "
              f"{sum(r[f'{k}_verdict'] == 'no_change' for r in consecutive for k in ('treated', 'control'))}"
              f"/{2 * len(consecutive)} regions, {sum(r['whole_verdict'] == 'no_change' for r in consecutive)}"
              f"/{len(consecutive)} whole")
    if a.json:
        write_json(a.json, {"pairs": pairs, "consecutive": consecutive, "elapsed_s": elapsed, "notes": res["notes"]})
    if tmp:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())

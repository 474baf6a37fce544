"""Average the weights of two checkpoints of one skin-network training run (a weight-space ensemble) and export it
as ``models/skin_unet.onnx`` with its provenance, scored like ``skinimg train-segmenter`` scores a network.

    pip install 'skinimg[train]'
    python scripts/average_skin_net.py --data DATA --splits-cache splits_cache.json \\
        --early r6k_iteration2500.pt --late r6k_bands_iteration6000.pt [--alpha 0.5] [--out models]

Weights: ``(1 - alpha) * early + alpha * late`` for every floating-point tensor (batch-norm running statistics
included), integer tensors from ``late``.  Averaging a network with a longer-trained descendant of it keeps much of
the early network's robustness away from the training photos and much of the late one's accuracy on them
(Wortsman et al. 2022, "Robust fine-tuning of zero-shot models", CVPR, DOI 10.1109/CVPR52688.2022.00780;
Izmailov et al. 2018, "Averaging weights leads to wider optima and better generalization", UAI,
arXiv:1803.05407).  ``alpha`` 0.5 is the middle, not a tuned value.  ``--early-json``: the provenance of the early
network (default: the current ``models/skin_unet.json``), kept under ``training.early``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--splits-cache", required=True)
    ap.add_argument("--early", required=True, help="checkpoint of train-segmenter --checkpoint (the earlier one)")
    ap.add_argument("--late", required=True, help="checkpoint of the same run, trained further")
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--early-json", default=str(ROOT / "models" / "skin_unet.json"))
    ap.add_argument("--out", default=str(ROOT / "models"))
    a = ap.parse_args(argv)
    if not 0 < a.alpha < 1:
        ap.error(f"--alpha must be between 0 and 1 (got {a.alpha})")
    for name in ("early", "late", "splits_cache", "early_json"):
        if not Path(getattr(a, name)).is_file():
            ap.error(f"{getattr(a, name)}: file not found (--{name.replace('_', '-')})")

    import torch

    from skinimg.segment import load_model
    from skinimg.segment.model import clear_model_cache
    from skinimg.train.network import build_network, export_onnx
    from skinimg.train.segdata import find_photos
    from skinimg.train.segmenter import score_network

    early, late = (torch.load(p, weights_only=False) for p in (a.early, a.late))
    if early.get("seed") != late.get("seed") or early.get("iters") != late.get("iters"):
        raise SystemExit("the two checkpoints are not of the same run (seed and schedule differ)")
    sd = {k: ((1 - a.alpha) * v + a.alpha * late["model"][k]) if v.is_floating_point() else late["model"][k]
          for k, v in early["model"].items()}
    model = build_network()
    model.load_state_dict(sd)
    model.eval()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    new = out / ".skin_unet.onnx.new"
    diff, half = export_onnx(model, new)
    digest = hashlib.sha256(new.read_bytes()).hexdigest()
    clear_model_cache()
    net = load_model(new)
    photos = {p.key: p for p in find_photos(a.data)}
    splits = json.loads(Path(a.splits_cache).read_text(encoding="utf-8"))["splits"]
    metrics = score_network(net, photos, splits)
    prev = json.loads(Path(a.early_json).read_text(encoding="utf-8"))
    prov = {**prev, "metrics": {k: m["groups"] for k, m in metrics.items()},
            "per_photo": {k: m["rows"] for k, m in metrics.items()}}
    prov["format"] = {**prev["format"], "sha256": digest, "opencv_vs_torch_max_abs_diff": diff,
                      "float16_weights_max_abs_logit_change": half}
    prov["command"] = "python scripts/average_skin_net.py"
    if late.get("segments"):
        prov["augmentation"] = (prev["augmentation"] + "; the late network of the average from iteration "
                                + "; from iteration ".join(f"{g['from_iteration']}: " + ", ".join(
                                    f"{k} {v}" for k, v in g.items() if k != "from_iteration")
                                    for g in late["segments"][1:]))
    prov["training"] = {
        "weight_average": {"alpha": a.alpha, "formula": "(1 - alpha) * early + alpha * late, every floating-point "
                           "tensor (batch-norm statistics included)",
                           "reference": "Wortsman et al. 2022, DOI 10.1109/CVPR52688.2022.00780",
                           "early": {"iteration": early["step"], "settings": early.get("segments")},
                           "late": {"iteration": late["step"], "settings": late.get("segments")}},
        "early": prev.get("training"), "late_history": late.get("history")}
    new.replace(out / "skin_unet.onnx")
    tmp = out / ".skin_unet.json.new"
    tmp.write_text(json.dumps(prov, indent=2) + "\n", encoding="utf-8")
    tmp.replace(out / "skin_unet.json")
    for part, groups in prov["metrics"].items():
        print(part, {g: (v["n_photos"], round(v["mean_f1"], 4), round(v["rules_mean_f1"], 4)) for g, v in groups.items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

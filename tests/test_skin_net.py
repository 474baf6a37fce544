"""The skin network (issue 22): the shipped ONNX file, its provenance, and its accuracy on real photos with hand-made
masks, on plain scenes and on rendered papules; the --check flag; the deprecated --second-stage; the training tools.

The real photos are public domain or CC0 (tests/data/README.md); their masks were drawn by hand, never trained or
tuned on.  The thresholds are the measured values minus a margin (docs/segmentation.md, "Photos unlike the training
photos", gives the measurements), so that a regression on real photos fails; they are a regression guard, not a claim
of accuracy.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from skinimg import segment as S
from skinimg.cli import cli
from skinimg.errors import SkinImgError
from skinimg.io import load_image, read_mask, write_png
from skinimg.phantom import astronaut_skin_mask, plain_scene, render_papules

DATA = Path(__file__).resolve().parent / "data"
ROOT = Path(__file__).resolve().parents[1]

#: Minimum F1 of the network on the committed real photos: the measured value minus about 0.04 (measured 0.355, 0.682,
#: 0.124 on 2026-12-04 with the weight-averaged network: margins 0.055, 0.052, 0.044; docs/segmentation.md, "Photos
#: unlike the training photos").
#: These photos show the network's known weakness (skin-coloured backgrounds: dry grass, an orange suit), so the
#: floors are low; they catch a regression, they are not a claim of accuracy (docs/segmentation.md).
REAL_MIN_F1 = {"pexels_cc0_women_phones_640.jpg": 0.30, "pexels_cc0_woman_jump_640.jpg": 0.63, "astronaut": 0.08}


def _polygon_mask(shape, polys) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    for p in polys.get("skin", []):
        cv2.fillPoly(m, [np.round(np.array(p, np.float64) * 16).astype(np.int32)], 1, shift=4)
    for p in polys.get("holes", []):
        cv2.fillPoly(m, [np.round(np.array(p, np.float64) * 16).astype(np.int32)], 0, shift=4)
    return m > 0


def real_photos():
    """(name, rgb, hand-made true mask) of the committed photos and scikit-image's astronaut."""
    from skimage import data as skd

    polys = json.loads((DATA / "real_skin_polygons.json").read_text())
    out = []
    for name, p in polys.items():
        rgb = load_image(DATA / name)[0]
        out.append((name, rgb, _polygon_mask(rgb.shape[:2], p)))
    out.append(("astronaut", skd.astronaut(), astronaut_skin_mask()))
    return out


# ----------------------------------------------------------------------------- the file


def test_onnx_network_on_a_fixed_input_matches_the_stored_output():
    """tests/data/skin_unet_reference.npz: a fixed 64 x 96 input and the output of the ONNX reference evaluator
    (onnx.reference, numpy: an implementation independent of OpenCV) for the shipped file; OpenCV's DNN module must
    give the same log-odds.  A new model needs a new reference (tests/data/README.md)."""
    ref = np.load(DATA / "skin_unet_reference.npz")
    model = S.load_model()
    assert str(ref["sha256"]) == model.sha256, "models/skin_unet.onnx changed: regenerate the reference"
    z = model.logit(ref["image"])
    assert z.dtype == np.float32 and z.shape == ref["logit"].shape == (64, 96)
    np.testing.assert_allclose(z, ref["logit"], atol=1e-4)
    assert 0.05 < (z > 0).mean() < 0.95  # the input has skin and background


def test_model_file_and_provenance():
    model = S.load_model()
    data = S.DEFAULT_MODEL_PATH.read_bytes()
    assert len(data) < 2_000_000 and hashlib.sha256(data).hexdigest() == model.sha256  # float16 weights
    prov = model.provenance
    assert prov["format"]["sha256"] == model.sha256 and prov["format"]["onnx_opset"] == 17
    assert prov["format"]["opencv_vs_torch_max_abs_diff"] < 1e-4
    assert prov["format"]["float16_weights_max_abs_logit_change"] < 0.01
    assert {"coco-sfa", "coco-abdomen", "uci"} <= set(prov["data"])
    for ds in ("coco-sfa", "coco-abdomen"):
        assert "research" in prov["data"][ds]["terms"] and len(prov["data"][ds]["sha256"]) == 64
    assert "CC BY 4.0" in prov["data"]["uci"]["name"]
    assert prov["splits"]["reserved"].startswith("folders named test_*")
    assert not any(k.split("/")[0].startswith("test_") for part in ("train", "development", "val")
                   for k in prov["splits"][part])
    assert not set(prov["splits"]["train"]) & set(prov["splits"]["development"])
    assert not set(prov["splits"]["train"]) & set(prov["splits"]["val"])
    val = prov["metrics"]["val_as_labelled"]
    assert val["all"]["n_photos"] == 232 and val["all"]["mean_f1"] >= 0.90
    assert val["darker (ITA < 28)"]["mean_f1"] >= 0.88
    assert val["all"]["mean_f1"] > val["all"]["rules_mean_f1"]
    assert prov["augmentation"] and prov["date"]
    if "weight_average" in prov["training"]:  # scripts/average_skin_net.py: two checkpoints of one run
        avg = prov["training"]["weight_average"]
        assert 0 < avg["alpha"] < 1 and 0 < avg["early"]["iteration"] < avg["late"]["iteration"]
    else:
        assert prov["training"]["iterations"] > 0


def test_model_file_errors_are_one_line(tmp_path):
    with pytest.raises(SkinImgError, match="not found"):
        S.load_model(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a network")
    with pytest.raises(SkinImgError, match="not a readable ONNX network"):
        S.load_model(bad)
    # a network whose provenance names another file
    copy = tmp_path / "skin_unet.onnx"
    copy.write_bytes(S.DEFAULT_MODEL_PATH.read_bytes())
    prov = dict(S.load_model().provenance)
    prov["format"] = {**prov["format"], "sha256": "0" * 64}
    copy.with_suffix(".json").write_text(json.dumps(prov))
    with pytest.raises(SkinImgError, match="does not match its provenance") as err:
        S.load_model(copy)
    assert "\n" not in str(err.value)
    r = CliRunner().invoke(cli, ["segment", str(DATA / "pexels_cc0_woman_jump_640.jpg"), "--out", str(tmp_path / "o")],
                           env={"SKINIMG_MODELS": str(tmp_path / "nowhere")})
    assert r.exit_code != 0 and "skin model not found" in r.output and "Traceback" not in r.output


# ----------------------------------------------------------------------------- accuracy


def test_real_photos_with_hand_made_masks():
    """Public-domain / CC0 photos unlike the training photos (outdoors, a body on water, an astronaut in an orange
    suit), masks drawn by hand: the network must stay within about 0.04 of its measured F1 on each and beat the
    rules baseline on average (it does not on each: the grass and the suit are skin-coloured; docs/segmentation.md)."""
    models, rules = [], []
    for name, rgb, truth in real_photos():
        models.append(S.evaluate_masks(S.segment_skin(rgb).mask, truth)["f1"])
        rules.append(S.evaluate_masks(S.segment_skin(rgb, method="rules").mask, truth)["f1"])
        assert models[-1] >= REAL_MIN_F1[name], (name, models[-1], rules[-1])
    assert np.mean(models) > np.mean(rules) + 0.05, (models, rules)
    # the committed sample mask of the astronaut is the same outline, cropped and downscaled like real/astronaut.jpg
    sample = read_mask(ROOT / "sample_images" / "truth" / "real" / "astronaut_mask.png")
    np.testing.assert_array_equal(sample, astronaut_skin_mask(sample=True))


def test_papules_and_pustules_stay_in_the_mask():
    """Inflamed lesions are skin: red papules and pustules rendered into the real photos, where their mask without
    lesions has skin, stay in the mask.  On these small out-of-domain photos 93.6 % of the lesion-core pixels stay
    (measured with the weight-averaged network and the sharper boundary; 95.4 % with the network of iteration 2500
    alone; the 98 % target holds on the val photos and the close-ups, docs/segmentation.md): the floor is 0.90.
    In a close-up (a face filling 1500 x 2036 pixels) all of them stay: the floor is 0.98."""
    kept = total = 0
    for i, (name, rgb, truth) in enumerate(real_photos()):
        before = S.segment_skin(rgb).mask
        inner = truth & before
        les, core = render_papules(rgb, inner, i, n=15)
        after = S.segment_skin(les).mask
        kept += int((core & after).sum())
        total += int(core.sum())
    assert total > 1200 and kept / total >= 0.90, kept / total
    # a close-up: the face of the outdoor photo filling a 1500 x 2000 frame
    rgb, truth = next((x[1], x[2]) for x in real_photos() if x[0].startswith("pexels_cc0_women"))
    crop, tcrop = rgb[10:200, 400:540], truth[10:200, 400:540]
    big = cv2.resize(crop, (1500, 2036), interpolation=cv2.INTER_CUBIC)
    tbig = cv2.resize(tcrop.view(np.uint8), (1500, 2036), interpolation=cv2.INTER_NEAREST) > 0
    inner = tbig & S.segment_skin(big).mask
    les, core = render_papules(big, inner, 7, n=20)
    m = S.segment_skin(les).mask
    assert core.sum() > 5000 and (m & core).sum() / core.sum() >= 0.98


def test_plain_scenes_never_worse_than_the_rules():
    """A plain region of skin on a flat background, any tone, exposure x0.6-x1.4, with and without a dark hair band
    (all 140 scenes of benchmarks/segment_real.py --scenes): F1 >= 0.98 on each, and not below the rules baseline.
    Measured: worst F1 0.981; one scene (seed 111: dark skin on dark green, hair band) 0.0063 below the rules, a few
    pixels along the edge; every other scene at most 0.005 below (docs/segmentation.md#sharper-boundary)."""
    diffs = []
    for seed in range(140):  # every tone, haemoglobin, exposure and shape, half with hair
        rgb, truth, info = plain_scene(seed)
        model = S.evaluate_masks(S.segment_skin(rgb).mask, truth)["f1"]
        rules = S.evaluate_masks(S.segment_skin(rgb, method="rules").mask, truth)["f1"]
        assert model >= 0.98 and model >= rules - 0.01, (info, model, rules)
        diffs.append(model - rules)
    assert sum(d < -0.005 for d in diffs) <= 1, sorted(diffs)[:5]
    assert np.mean(diffs) > 0.02, np.mean(diffs)


def test_grey_pixels_are_not_skin_but_a_specular_spot_on_skin_is():
    """The network's mask drops grey pixels (YCrCb chroma below SegmentParams.neutral_chroma) unless they fill a
    small hole of the mask: a flat grey background beside skin is background, a white highlight on skin is skin."""
    rgb, truth, _ = plain_scene(14)  # very light skin on grey, where the network alone takes much grey for skin
    off = S.segment_skin(rgb, params=S.SegmentParams(neutral_chroma=0)).mask
    on = S.segment_skin(rgb).mask
    ycc = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb).astype(np.float32) - 128
    grey = np.hypot(ycc[..., 1], ycc[..., 2]) < S.SegmentParams().neutral_chroma
    assert (off & grey & ~truth).sum() > 1000 and not (on & grey & ~truth).any()
    assert not (on & ~off).any() and not (off & ~on & truth).any()  # background is dropped, none of the true skin
    assert S.evaluate_masks(on, truth)["f1"] >= 0.97
    spot = rgb.copy()
    ys, xs = np.nonzero(truth & on)
    cy, cx = int(np.median(ys)), int(np.median(xs))
    cv2.circle(spot, (cx, cy), 6, (250, 250, 250), -1)  # a specular highlight
    m = S.segment_skin(spot).mask
    assert m[cy - 5:cy + 6, cx - 5:cx + 6].all()
    with pytest.raises(SkinImgError, match="neutral_chroma"):
        S.SegmentParams(neutral_chroma=-1)


# ----------------------------------------------------------------------------- --check


def test_check_agreement_is_the_iou_with_the_mirror_image():
    model = S.load_model()
    rgb = real_photos()[0][1]  # 640 x 422: reduced to 320 x 211 for the network
    r = S.segment_skin(rgb, check=True)
    np.testing.assert_array_equal(r.mask, S.segment_skin(rgb).mask)  # checking does not change the mask
    small, _ = S.reduce_photo(rgb, 320)
    t = np.log(S.SegmentParams().threshold / (1 - S.SegmentParams().threshold))
    a, b = model.logit(small) >= t, model.logit(small, flip=True) >= t
    assert r.agreement == pytest.approx((a & b).sum() / (a | b).sum(), abs=1e-12)
    np.testing.assert_allclose(model.logit(small[:, ::-1].copy())[:, ::-1], model.logit(small, flip=True), atol=1e-5)
    assert r.mask_check == ("ok" if r.agreement >= S.AGREEMENT_MIN else "check")
    roi = np.zeros(rgb.shape[:2], bool)
    roi[:, 320:] = True
    rr = S.segment_skin(rgb, roi=roi, check=True)
    ra = cv2.resize(roi.view(np.uint8) * np.uint8(255), (small.shape[1], small.shape[0]), interpolation=cv2.INTER_AREA) >= 128
    assert rr.agreement == pytest.approx(((a & b & ra).sum()) / ((a | b) & ra).sum(), abs=1e-12)
    assert S.segment_skin(rgb).agreement is None and S.segment_skin(rgb, method="rules", check=True).agreement is None
    blue = S.segment_skin(np.full((60, 80, 3), (40, 60, 200), np.uint8), check=True)
    assert blue.status == "no_skin" and blue.agreement == 1.0  # both opinions find no skin


def test_deprecated_second_stage_option_is_accepted_with_one_line(tmp_path):
    photo = DATA / "pexels_cc0_woman_jump_640.jpg"
    r0 = CliRunner().invoke(cli, ["segment", str(photo), "--out", str(tmp_path / "a")])
    r1 = CliRunner().invoke(cli, ["segment", str(photo), "--out", str(tmp_path / "b"), "--second-stage", "both"])
    assert r0.exit_code == r1.exit_code == 0, r1.output
    assert "--second-stage" not in r0.stderr
    notes = [line for line in r1.stderr.splitlines() if "--second-stage" in line]
    assert len(notes) == 1 and "deprecated" in notes[0] and "no effect" in notes[0]
    stem = photo.stem
    np.testing.assert_array_equal(read_mask(tmp_path / "a" / "masks" / f"{stem}.png"),
                                  read_mask(tmp_path / "b" / "masks" / f"{stem}.png"))
    h = CliRunner().invoke(cli, ["segment", "--help"])
    assert "--second-stage" not in h.output and "--check" in h.output


# ----------------------------------------------------------------------------- training tools (no PyTorch needed)


def _coco_tree(root: Path, n_train: int = 30, n_val: int = 4) -> None:
    """A tiny data folder in the COCO-style layout of the skin datasets, photos from the plain scenes."""
    for split, n, base in (("train", n_train, 0), ("val", n_val, 1000)):
        for i in range(n):
            rgb, truth, _ = plain_scene(base + i, size=(96, 128))
            k = f"{base + i + 1}"
            write_png(root / "toy" / split / f"skin_{split}2019" / f"{k}.png", rgb)
            write_png(root / "toy" / split / "annotations" / f"{k}_skin_{k}.png", truth.view(np.uint8) * np.uint8(255))


def test_find_photos_and_splits(tmp_path):
    from skinimg.train.segdata import find_photos, make_splits

    _coco_tree(tmp_path)
    # a reserved folder is never read, a mirrored copy of a val photo in train is excluded
    write_png(tmp_path / "test_reserved" / "val" / "images" / "x.png", np.zeros((8, 8, 3), np.uint8))
    write_png(tmp_path / "test_reserved" / "val" / "masks" / "x.png", np.zeros((8, 8), np.uint8))
    rgb, truth, _ = plain_scene(1000, size=(96, 128))
    write_png(tmp_path / "toy" / "train" / "skin_train2019" / "99.png", np.ascontiguousarray(rgb[:, ::-1]))
    write_png(tmp_path / "toy" / "train" / "annotations" / "99_skin_99.png", truth[:, ::-1].view(np.uint8) * np.uint8(255))
    photos = find_photos(tmp_path)
    assert {p.dataset for p in photos} == {"toy"} and len(photos) == 35
    assert [p.id for p in photos if p.folder == "train"][:3] == ["1", "2", "3"]  # numeric order
    sp = make_splits(photos)
    assert "toy/train/99" in sp["excluded"]["val_duplicates"]
    assert len(sp["val"]) == 4 and not set(sp["train"]) & set(sp["dev"])
    n = 31
    dev_ranks = sorted(int(k.split("/")[-1]) - 1 for k in sp["dev"])
    assert all(0.2 * n <= r < 0.3 * n or 0.7 * n <= r < 0.8 * n for r in dev_ranks)
    with pytest.raises(SkinImgError, match="no labelled photos"):
        find_photos(tmp_path / "test_reserved")


def test_lips_are_found_below_the_eyes_of_a_face_mask():
    from skinimg.train.segdata import lips_mask, remove_specks

    h, w = 300, 240
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[:] = (200, 150, 130)  # skin
    m = np.zeros((h, w), bool)
    cv2.ellipse(m.view(np.uint8), (120, 150), (90, 130), 0, 0, 360, 1, -1)
    for x in (85, 155):  # eyes: holes of the mask
        cv2.ellipse(m.view(np.uint8), (x, 110), (14, 7), 0, 0, 360, 0, -1)
    lips = np.zeros((h, w), np.uint8)
    cv2.ellipse(lips, (120, 190), (30, 10), 0, 0, 360, 1, -1)
    rgb[lips > 0] = (190, 90, 95)
    rng = np.random.default_rng(0)
    rgb = np.clip(rgb.astype(int) + rng.integers(-3, 4, rgb.shape), 0, 255).astype(np.uint8)
    found = lips_mask(rgb, m)
    assert found is not None
    assert S.evaluate_masks(found, lips > 0)["f1"] > 0.85
    assert lips_mask(rgb, np.ones((h, w), bool)) is None  # no eyes, no lips
    specks = m.copy()
    specks[5:7, 5:7] = True
    np.testing.assert_array_equal(remove_specks(specks), m)


def test_train_segmenter_small_run(tmp_path):
    pytest.importorskip("torch")
    from skinimg.train import train_segmenter

    _coco_tree(tmp_path / "data", n_train=60, n_val=3)
    prov = train_segmenter(tmp_path / "data", tmp_path / "m", iters=2, batch=2, crop=64, workers=0, threads=1,
                           date="2026-01-01")
    model = S.load_model(tmp_path / "m" / "skin_unet.onnx")
    assert prov["format"]["sha256"] == model.sha256 and prov["format"]["opencv_vs_torch_max_abs_diff"] < 1e-4
    assert 0 < prov["format"]["float16_weights_max_abs_logit_change"] < 0.05  # weights stored as float16
    assert prov["metrics"]["val_as_labelled"]["all"]["n_photos"] == 3 and prov["date"] == "2026-01-01"
    assert S.segment_skin(plain_scene(0, size=(96, 128))[0], model=model).mask.shape == (96, 128)
    # a run that fails after the export (here: while scoring) leaves the previous network and its provenance as they were
    import skinimg.train.segmenter as T

    before = {p.name: p.read_bytes() for p in (tmp_path / "m").iterdir()}

    def fail(*a, **k):
        raise RuntimeError("scoring failed")

    mp = pytest.MonkeyPatch()
    mp.setattr(T, "score_photos", fail)
    try:
        with pytest.raises(RuntimeError, match="scoring failed"):
            train_segmenter(tmp_path / "data", tmp_path / "m", iters=1, batch=2, crop=64, workers=0, threads=1, seed=1)
    finally:
        mp.undo()
    assert {p.name: p.read_bytes() for p in (tmp_path / "m").iterdir() if not p.name.startswith(".")} == before
    S.clear_model_cache()
    assert S.load_model(tmp_path / "m" / "skin_unet.onnx").sha256 == prov["format"]["sha256"]


def test_train_segmenter_stop_after_exports_the_checkpoint(tmp_path):
    """--stop-after N ends the run after iteration N of the schedule; started again with the checkpoint, it exports
    that checkpoint's network unchanged (no training) and records both numbers."""
    pytest.importorskip("torch")
    from skinimg.train import train_segmenter

    _coco_tree(tmp_path / "data", n_train=60, n_val=3)
    kw = dict(iters=4, batch=2, crop=64, workers=0, threads=1, date="2026-01-01", eval_every=1,
              checkpoint=tmp_path / "ckpt.pt", stop_after=2)
    a = train_segmenter(tmp_path / "data", tmp_path / "a", **kw)
    b = train_segmenter(tmp_path / "data", tmp_path / "b", **kw)
    assert a["format"]["sha256"] == b["format"]["sha256"]
    assert a["training"]["iterations"] == 4 and a["training"]["iterations_run"] == 2
    assert a["training"]["stopped_early"] and [h["iteration"] for h in b["training"]["history"]] == [1, 2]

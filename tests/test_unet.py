"""The convolutional second stage (skinimg.segment.unet; training skinimg.train.network): the OpenCV runner against a plain NumPy reference, the
reference against hand-computed operations, the ONNX wire format, weight checks and (with PyTorch) training."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from skinimg import segment as S
from skinimg import train as T
from skinimg.segment import filters as SF
from skinimg.segment import stage2 as S2
from skinimg.segment import unet as U
from skinimg.train import network as N
from skinimg.errors import SkinImgError


def random_weights(width=4, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for name, (ws, bs) in U.layer_shapes(width).items():
        fan_in = ws[1] * ws[2] * ws[3]
        out[f"{name}_w"] = (rng.normal(size=ws) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        out[f"{name}_b"] = (rng.normal(size=bs) * 0.1).astype(np.float32)
    return out


def test_layer_shapes_count_the_documented_weights():
    shapes = U.layer_shapes(12)
    assert sum(int(np.prod(w)) + int(np.prod(b)) for w, b in shapes.values()) == 81_181
    assert shapes["e1a"][0] == (12, 5, 3, 3) and shapes["d3"][0] == (24, 72, 3, 3) and shapes["out"][0] == (1, 12, 1, 1)


def test_reference_conv_is_a_zero_padded_cross_correlation():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 5, 6))
    w = rng.normal(size=(3, 2, 3, 3))
    b = rng.normal(size=3)
    y = U._conv_ref(x, w, b, relu=False)
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    for o in range(3):
        for i in range(5):
            for j in range(6):
                assert y[o, i, j] == pytest.approx((xp[:, i:i + 3, j:j + 3] * w[o]).sum() + b[o], abs=1e-12)
    assert (U._conv_ref(x, w, b, relu=True) == np.maximum(y, 0)).all()


def test_reference_upsampling_is_half_pixel_bilinear():
    a = np.array([[[0.0, 4.0], [8.0, 12.0]]])
    up = U._upsample_ref(a, 4, 4)[0]
    # output pixel centres at source coordinates -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1)
    np.testing.assert_allclose(up[0], [0, 1, 3, 4])
    np.testing.assert_allclose(up[:, 0], [0, 2, 6, 8])
    rng = np.random.default_rng(2)
    b = rng.random((3, 5, 7)).astype(np.float32)
    ref = U._upsample_ref(b, 11, 13)
    cv = cv2.resize(b.transpose(1, 2, 0), (13, 11), interpolation=cv2.INTER_LINEAR).transpose(2, 0, 1)
    np.testing.assert_allclose(ref, cv, atol=1e-5)


@pytest.mark.parametrize("shape", [(9, 13), (12, 40), (16, 16), (23, 37), (64, 48), (97, 130)])
def test_opencv_runner_matches_the_numpy_reference(shape):
    w = random_weights(4, seed=shape[0])
    rng = np.random.default_rng(shape[1])
    x = (rng.normal(size=(5, *shape)) * 0.5).astype(np.float32)
    z = U.NetRunner(w)(x)
    ref = U.forward_reference(x, w)
    assert z.shape == shape and z.dtype == np.float32
    assert np.abs(ref).max() > 0.1  # not a trivially zero network
    np.testing.assert_allclose(z, ref, atol=2e-4 * max(1.0, np.abs(ref).max()))


@pytest.mark.parametrize("width", [4, 12, 16])
def test_padding_channels_to_multiples_of_8_keeps_the_function(width):
    w = random_weights(width, seed=width)
    p = U.pad_channels(w, 8)
    # level channel counts rounded up to 8: w -> 8 / 16 / 16, 2w -> 8 / 24 / 32, 4w -> 16 / 48 / 64
    c1, c2, c4 = (-(-c // 8) * 8 for c in (width, 2 * width, 4 * width))
    assert p["e1a_w"].shape == (c1, 5, 3, 3) and p["e1b_w"].shape == (c1, c1, 3, 3)
    assert p["e2a_w"].shape == (c2, c1, 3, 3) and p["e4b_w"].shape == (c4, c4, 3, 3)
    assert p["d3_w"].shape == (c2, c4 + c2, 3, 3) and p["d1_w"].shape == (c1, c2 + c1, 3, 3)
    assert p["out_w"].shape == (1, c1, 1, 1) and p["out_b"].shape == (1,)
    if width == 16:  # already multiples of 8: the same arrays
        assert all(np.array_equal(p[k], w[k]) for k in w)
    # every original weight is where it was, and everything added is zero
    n_orig = sum(int(np.count_nonzero(v)) for v in w.values())
    assert sum(int(np.count_nonzero(v)) for v in p.values()) == n_orig
    np.testing.assert_array_equal(p["d1_w"][:width, :2 * width], w["d1_w"][:, :2 * width])  # upsampled part
    np.testing.assert_array_equal(p["d1_w"][:width, c2:c2 + width], w["d1_w"][:, 2 * width:])  # skip part
    rng = np.random.default_rng(3)
    x = (rng.normal(size=(5, 21, 30)) * 0.5).astype(np.float32)
    ref = U.forward_reference(x, w)
    assert np.abs(ref).max() > 0.1
    np.testing.assert_allclose(U.forward_reference(x, p), ref, rtol=0, atol=1e-9)
    # and OpenCV runs the padded graph (what NetRunner builds) to the same values as the unpadded one
    outs = []
    for pad in (1, 8):
        net = cv2.dnn.readNetFromONNX(np.frombuffer(U.onnx_bytes(w, pad=pad), dtype=np.uint8))
        net.setInput(x[None])
        outs.append(net.forward().reshape(x.shape[1:]))
    np.testing.assert_allclose(outs[1], outs[0], atol=1e-5 * max(1.0, np.abs(ref).max()))
    np.testing.assert_allclose(outs[1], ref, atol=2e-4 * max(1.0, np.abs(ref).max()))


def test_varint_and_tensor_wire_format():
    assert U._varint(0) == b"\x00" and U._varint(1) == b"\x01" and U._varint(300) == b"\xac\x02"
    assert U._varint(-1) == b"\xff" * 9 + b"\x01"  # int64 -1: ten bytes
    t = U._tensor("k", np.array([2, 3], np.int64))
    # dims (field 1) = 2, data_type (field 2) = 7, name (field 8) = "k", raw_data (field 9) = two int64
    assert t == b"\x08\x02\x10\x07\x42\x01k\x4a\x10" + np.array([2, 3], "<i8").tobytes()


def test_check_weights_rejects_malformed_networks():
    w = random_weights(4)
    assert U.check_weights(w) == 4
    bad = dict(w, d2_w=w["d2_w"][:, :3])
    with pytest.raises(SkinImgError, match="layer d2"):
        U.check_weights(bad)
    nan = dict(w, out_b=np.array([np.nan], np.float32))
    with pytest.raises(SkinImgError, match="non-finite"):
        U.check_weights(nan)
    with pytest.raises(SkinImgError, match="no first layer"):
        U.check_weights({})


def test_net_input_channels():
    rgb = np.array([[[0, 255, 51]]], np.uint8)
    x = U.net_input(rgb, np.array([[0.5]], np.float32), np.array([[True]]))
    np.testing.assert_allclose(x[:3, 0, 0], [-0.5, 0.5, -0.3], atol=1e-6)
    q = 128 / 255.0  # P rounded to 8 bits as in the training data
    assert x[3, 0, 0] == pytest.approx(np.log((q + 0.004) / (1.004 - q)) / 4, abs=1e-6)
    assert x[4, 0, 0] == 0.5


def test_shipped_model_has_a_network_selected_by_stage2_model():
    model = S.load_model()
    assert model.net is not None and model.net.width == 12
    info = model.provenance["training"]["net"]
    assert info["weights"] == 81_181
    assert len(info["loss_per_epoch"]) == sum(e for e, _ in info["phases"])
    from skinimg.phantom import PhantomSpec, render_phantom

    ph = render_phantom(PhantomSpec(melanin=0.3, hemoglobin=0.03, seed=5, size=(240, 320),
                                    distractors=("hair", "lips", "clothing")))
    net = S.segment_skin(ph.image, params=S.SegmentParams(stage2_model="net"))
    mlp = S.segment_skin(ph.image, params=S.SegmentParams(stage2_model="mlp"))
    np.testing.assert_array_equal(S.segment_skin(ph.image).mask, mlp.mask)  # the per-pixel stage is the default
    assert not np.array_equal(net.mask, mlp.mask)
    assert S.evaluate_masks(net.mask, ph.mask)["f1"] >= 0.95
    # the network's veto is exactly "log-odds < 0" inside the region (then the specular / dark vetoes)
    p = model.predict(ph.image)
    region, ps = S.candidate_region(p, S.SegmentParams())
    z = model.net(U.net_input(ph.image, p, region))
    box = SF._bbox(region, S2._NET_MARGIN)
    zc = model.net(U.net_input(ph.image[box], p[box], region[box]))
    expect = np.zeros_like(region)
    expect[box] = region[box] & (zc >= 0)
    r, g, b = ph.image[..., 0], ph.image[..., 1], ph.image[..., 2]
    expect &= ~(np.minimum(np.minimum(r, g), b) >= 250) & ~(np.maximum(np.maximum(r, g), b) <= 10)
    np.testing.assert_array_equal(net.mask, expect)
    assert z.shape == region.shape
    with pytest.raises(SkinImgError, match="stage2_model"):
        S.SegmentParams(stage2_model="cnn")


def test_tiny_crops_use_the_numpy_reference():
    model = S.load_model()
    rng = np.random.default_rng(3)
    rgb8 = rng.integers(0, 256, (12, 40, 3), dtype=np.uint8)
    p = rng.random((12, 40)).astype(np.float32)
    mask = np.zeros((12, 40), bool)
    mask[3:9, 5:30] = True
    box, m, z = S2._net_logit(rgb8, p, mask, model.net)
    ref = U.forward_reference(U.net_input(rgb8[box], p[box], m), model.net.weights)
    np.testing.assert_allclose(z, ref[m], atol=1e-5)


def test_inputs_smaller_than_the_pools_are_zero_padded():
    w = random_weights(4, seed=9)
    x = np.random.default_rng(9).normal(size=(5, 3, 7)).astype(np.float32)
    z = U.NetRunner(w)(x)
    padded = np.zeros((5, 8, 8), np.float32)
    padded[:, :3, :7] = x
    assert z.shape == (3, 7)
    np.testing.assert_allclose(z, U.forward_reference(padded, w)[:3, :7], rtol=1e-6)
    for shape in ((1, 1, 3), (1, 50, 3), (5, 3, 3)):  # photos a few pixels wide: no crash
        S.segment_skin(np.full(shape, (200, 140, 120), np.uint8))


def test_runner_survives_pickling():
    import pickle

    w = random_weights(4)
    r = U.NetRunner(w)
    x = np.random.default_rng(4).normal(size=(5, 20, 24)).astype(np.float32)
    z = r(x)
    r2 = pickle.loads(pickle.dumps(r))
    np.testing.assert_array_equal(r2(x), z)


def test_torch_training_is_reproducible_and_matches_the_runner():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    n, h, w = 8, 32, 40
    image = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    truth = image[..., 0] > image[..., 2]
    p8 = np.where(truth, 200, 40).astype(np.uint8)
    region = np.ones((n, h, w), bool)
    kw = dict(phases=((2, 3e-3), (1, 1e-3)), width=4, crop=(24, 32), threads=1)
    w1, info = N.train_unet(image, p8, region, truth, **kw)
    w2, _ = N.train_unet(image, p8, region, truth, **kw)
    assert all(np.array_equal(w1[k], w2[k]) for k in w1)
    assert len(info["loss_per_epoch"]) == 3 and info["loss_per_epoch"][-1] < info["loss_per_epoch"][0]
    net = N._torch_unet(4)
    net.load_state_dict({f"{N._TORCH_NAMES[k[:-2]]}.{'weight' if k.endswith('_w') else 'bias'}": torch.from_numpy(v)
                         for k, v in w1.items()})
    net.eval()
    x = U.net_input(image[0], p8[0] / 255.0, region[0])
    with torch.no_grad():
        zt = net(torch.from_numpy(x)[None])[0, 0].numpy()
    np.testing.assert_allclose(U.NetRunner(w1)(x), zt, atol=1e-4)


def test_train_segmenter_with_network_is_reproducible(tmp_path, monkeypatch, synthetic_uci):
    pytest.importorskip("torch")
    uci, _ = synthetic_uci(2000)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    kw = dict(uci=uci, n_train_phantoms=3, n_test_phantoms=2, phantom_size=(64, 96), n_stage2_extra=1,
              n_net_phantoms=8, net_phases=((1, 1e-3),), workers=1)
    p1 = T.train_segmenter(tmp_path / "a", **kw)
    T.train_segmenter(tmp_path / "b", **kw)
    for name in ("skin_lut.npz", "skin_lut.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    m = S.load_model(tmp_path / "a" / "skin_lut.npz")
    assert m.net is not None and p1["training"]["net"]["phases"] == [[1, 1e-3]]
    assert set(p1["metrics"]) >= {"phantom_test", "phantom_test_net"}


def test_runner_output_does_not_depend_on_the_thread_count():
    """A batch runs its workers on one OpenCV thread, a single photo on all cores: the masks must not differ."""
    r = U.NetRunner(random_weights(8, seed=6))
    x = np.random.default_rng(6).normal(size=(5, 61, 83)).astype(np.float32)
    before = cv2.getNumThreads()
    try:
        cv2.setNumThreads(1)
        one = r(x)
        cv2.setNumThreads(2)
        two = r(x)
    finally:
        cv2.setNumThreads(before)
    np.testing.assert_array_equal(one, two)


def test_cli_second_stage_option(tmp_path):
    from click.testing import CliRunner

    from skinimg.cli import cli
    from skinimg.io import read_mask

    photo = sorted((Path(__file__).resolve().parents[1] / "sample_images" / "ladder").glob("*.jpg"))[0]
    masks = {}
    for stage in ("mlp", "net"):
        out = tmp_path / stage
        r = CliRunner().invoke(cli, ["segment", str(photo), "--out", str(out), "--second-stage", stage, "--workers", "1"])
        assert r.exit_code == 0, r.output
        masks[stage] = read_mask(next((out / "masks").rglob("*.png")))
    from skinimg.io import load_image

    rgb = load_image(photo)[0]
    for stage, m in masks.items():
        np.testing.assert_array_equal(m, S.segment_skin(rgb, params=S.SegmentParams(stage2_model=stage)).mask)
    r = CliRunner().invoke(cli, ["segment", str(photo), "--out", str(tmp_path / "x"), "--second-stage", "cnn"])
    assert r.exit_code == 2 and "cnn" in r.output


def test_model_file_with_a_malformed_network_is_a_one_line_error(tmp_path):
    arrays = dict(np.load(S.DEFAULT_MODEL_PATH))
    arrays["net_d2_w"] = arrays["net_d2_w"][:, :5]
    bad = tmp_path / "skin_lut.npz"
    np.savez(bad, **arrays)
    with pytest.raises(SkinImgError, match="layer d2") as err:
        S.load_model(bad)
    assert "\n" not in str(err.value) and "skin_lut.npz" in str(err.value)


def test_train_segmenter_without_torch_fails_at_once_with_one_line(monkeypatch, tmp_path):
    import builtins

    real_import = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("No module named 'torch'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    with pytest.raises(SkinImgError, match=r"skinimg\[train\]") as err:
        T.train_segmenter(tmp_path / "m", uci=tmp_path / "missing.txt")
    assert "\n" not in str(err.value) and not (tmp_path / "m").exists()

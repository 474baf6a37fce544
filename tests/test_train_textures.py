"""Skin-coloured training backgrounds (skinimg.train.textures): the skin and the enclosed non-skin (eyes, lips)
are never touched, the background is, and its colours come from the skin pool."""
import cv2
import numpy as np
import pytest

from skinimg.train.augment import photometric
from skinimg.train.textures import TEXTURES, skin_coloured_background


@pytest.mark.parametrize("name", sorted(TEXTURES))
def test_texture_is_a_bounded_deterministic_pattern(name):
    a = TEXTURES[name](50, 70, np.random.default_rng(3))
    b = TEXTURES[name](50, 70, np.random.default_rng(3))
    assert a.shape == (50, 70) and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert a.min() >= -1e-6 and a.max() <= 1 + 1e-6
    assert a.std() > 0.03  # a texture, not a flat colour


def _face_crop():
    """A grey photo with a skin disc, an enclosed 'mouth' (label 0 inside the skin) and a background."""
    rgb = np.full((96, 96, 3), 90, np.uint8)
    lab = np.zeros((96, 96), np.uint8)
    cv2.circle(lab, (48, 48), 30, 1, -1)
    cv2.ellipse(lab, (48, 60), (9, 4), 0, 0, 360, 0, -1)
    lab[:6, :6] = 2  # an ignored corner (ignored by the loss: it may change)
    rgb[lab == 1] = (200, 150, 125)
    return rgb, lab


def test_background_replaced_skin_and_enclosed_holes_untouched():
    rgb, lab = _face_crop()
    pool = np.array([[190, 140, 120], [120, 80, 60]], np.uint8)
    changed_any = False
    for seed in range(12):
        out = skin_coloured_background(rgb, lab, np.random.default_rng(seed), pool)
        assert out.shape == rgb.shape and out.dtype == np.uint8
        assert np.array_equal(out[lab == 1], rgb[lab == 1])  # skin exactly as it was
        mouth = np.zeros_like(lab)
        cv2.ellipse(mouth, (48, 60), (7, 2), 0, 0, 360, 1, -1)
        assert np.array_equal(out[mouth == 1], rgb[mouth == 1])  # enclosed non-skin is not background
        bg = (lab == 0) & (mouth == 0)
        diff = np.abs(out.astype(int) - rgb.astype(int)).max(axis=2)
        if (diff[bg] > 0).mean() > 0.3:
            changed_any = True
            # the new background is warm like the pool's skin colours (R > B), the old one was neutral grey
            far = bg.copy()
            far[20:76, 20:76] = False
            m = out[far & (diff > 0)].astype(float).mean(axis=0)
            assert m[0] > m[2] + 5
    assert changed_any


def test_photometric_without_backgrounds_draws_as_before():
    """p_background = 0 must leave the random stream, and so every earlier training crop, unchanged."""
    rgb, lab = _face_crop()
    pool = np.array([[190, 140, 120]], np.uint8)
    a = photometric(rgb, lab, np.random.default_rng(5), skin_pool=pool)
    b = photometric(rgb, lab, np.random.default_rng(5), skin_pool=pool, p_background=0.0)
    assert np.array_equal(a, b)
    c = photometric(rgb, lab, np.random.default_rng(5), skin_pool=pool, p_background=1.0)
    assert not np.array_equal(a, c)


def test_flat_scene_bands_cross_the_frame_and_are_labelled_skin():
    """p_band = 1: the skin regions are bands across the crop, brightest along their axis (cylinder shading)."""
    from skinimg.train.augment import flat_scene

    pool = np.array([[200, 150, 120]], np.uint8)
    crossing = 0
    for seed in range(10):
        img, lab = flat_scene(np.random.default_rng(seed), (96, 96), pool, [], p_band=1.0)
        a, b = flat_scene(np.random.default_rng(seed), (96, 96), pool, [], p_band=1.0)
        assert np.array_equal(img, a) and np.array_equal(lab, b)
        assert set(np.unique(lab)) <= {0, 1} and (lab == 1).any()
        skin = lab == 1
        # a band reaches two opposite sides of the crop (or covers a corner-to-corner stretch)
        sides = [skin[0].any(), skin[-1].any(), skin[:, 0].any(), skin[:, -1].any()]
        crossing += sum(sides) >= 2
    assert crossing >= 8

"""Shared fixtures: small synthetic images written to a temporary folder."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

# colour-science warns at import when matplotlib is missing; it is a test-only reference.
warnings.filterwarnings("ignore", message=".*Matplotlib.*", module="colour")


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def rgb8(rng):
    """A 48x64 random uint8 RGB image with a distinct corner so orientation is checkable."""
    a = rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
    a[:4, :4] = (255, 0, 0)
    return a


@pytest.fixture
def synthetic_uci(tmp_path):
    """``make(n) -> (path, skin)``: a UCI Skin_NonSkin-format file (B G R label) of ``n`` pixels, 30 % skin-coloured
    (seeded), for quick ``train_segmenter`` runs."""
    def make(n: int):
        rng = np.random.default_rng(0)
        skin = rng.random(n) < 0.3
        rgb = np.where(skin[:, None], rng.normal((200, 140, 120), 15, (n, 3)), rng.integers(0, 256, (n, 3)))
        rgb = np.clip(rgb, 0, 255).astype(int)
        path = tmp_path / "uci.txt"
        path.write_text("".join(f"{b}\t{g}\t{r}\t{1 if s else 2}\n" for (r, g, b), s in zip(rgb, skin)))
        return path, skin

    return make

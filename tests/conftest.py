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

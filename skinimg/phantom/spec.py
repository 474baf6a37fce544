"""What defines a phantom (:class:`PhantomSpec`), what rendering one returns (:class:`Phantom`), and the camera pose."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from .optics import _HB_MAX, _MEL_MAX, _illuminant_key

__all__ = ["BACKGROUNDS", "DISTRACTORS", "SITES", "LABELS", "PhantomSpec", "Phantom", "pose_matrix",
           "relative_pose"]

BACKGROUNDS = ("wall", "wood", "cloth", "dark", "blue", "grey")
DISTRACTORS = ("hair", "lips", "eye", "clothing", "shadow")
SITES = ("face", "forearm")
#: Codes of :attr:`Phantom.labels`.
LABELS = {"background": 0, "skin": 1, "hair": 2, "lips": 3, "eye": 4, "clothing": 5, "chart": 6}


# ----------------------------------------------------------------------------- spec


@dataclass(frozen=True)
class PhantomSpec:
    """Everything that defines a phantom (recorded in its truth).

    Attributes
    ----------
    melanin : float
        Base epidermal melanosome volume fraction (0.01 very light ... 0.45 dark).
    hemoglobin : float
        Base dermal blood volume fraction (0.002 ... 0.1; 0.01-0.02 typical).
    seed : int
        The skin and scene (texture, spots, hair, colours).  Same seed = same person.
    size : (int, int)
        Photo height and width in pixels (H, W).
    site : str
        "face" (face with eyes, lips, hair, neck, clothing) or "forearm".
    background : str
        One of :data:`BACKGROUNDS`.
    distractors : tuple of str
        Subset of :data:`DISTRACTORS` ("hair", "lips", "eye", "clothing", "shadow").
    spots, red_patches : int
        Number of brown spots (high melanin) and red patches (high blood).
    illuminant : str
        A key of :data:`ILLUMINANTS`; no white balance is applied.
    exposure : float
        Linear gain applied to the scene radiance (1 = a white wall at shading 1 reaches ~1).
    pose : (dx_px, dy_px, rotation_deg, scale)
        Camera pose: canonical scene -> photo, about the photo centre.
    hemoglobin_scale, melanin_scale : float
        Treatment effects: the whole skin map (spots and patches included) is multiplied.
    noise : float
        Sensor noise: ``var = noise^2 x + (noise/10)^2`` in linear units; 0 = none.
    noise_seed : int or None
        Seed of the sensor noise (default: ``seed``).  Change it for a retake.
    jpeg_quality : int or None
        When set, the photo is JPEG-compressed at this quality and decoded again.
    chart : bool
        Put a 24-patch ColorChecker in the frame (the face moves aside).
    blur : float
        Optical blur, Gaussian sigma in photo pixels.
    shading, specular, texture : float
        Strength multipliers (1 = default) of shape shading, specular highlight and skin micro-texture.
    """

    melanin: float = 0.05
    hemoglobin: float = 0.015
    seed: int = 0
    size: tuple[int, int] = (480, 640)
    site: str = "face"
    background: str = "wall"
    distractors: tuple[str, ...] = DISTRACTORS
    spots: int = 6
    red_patches: int = 2
    illuminant: str = "D65"
    exposure: float = 1.0
    pose: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)
    hemoglobin_scale: float = 1.0
    melanin_scale: float = 1.0
    noise: float = 0.01
    noise_seed: int | None = None
    jpeg_quality: int | None = None
    chart: bool = False
    blur: float = 0.6
    shading: float = 1.0
    specular: float = 1.0
    texture: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "size", tuple(int(v) for v in self.size))
        object.__setattr__(self, "pose", tuple(float(v) for v in self.pose))
        object.__setattr__(self, "distractors", tuple(self.distractors))
        h, w = self.size
        if len(self.size) != 2 or h < 64 or w < 64 or h * w > 80_000_000:
            raise ValueError(f"size must be (H, W) with both >= 64 and at most 80 megapixels, got {self.size}")
        if not 0.0 <= self.melanin <= _MEL_MAX:
            raise ValueError(f"melanin must be in [0, {_MEL_MAX}], got {self.melanin}")
        if not 0.0 <= self.hemoglobin <= _HB_MAX:
            raise ValueError(f"hemoglobin must be in [0, {_HB_MAX}], got {self.hemoglobin}")
        if self.site not in SITES:
            raise ValueError(f"site must be one of {SITES}, got {self.site!r}")
        if self.background not in BACKGROUNDS:
            raise ValueError(f"background must be one of {BACKGROUNDS}, got {self.background!r}")
        bad = [d for d in self.distractors if d not in DISTRACTORS]
        if bad:
            raise ValueError(f"unknown distractors {bad}; choose from {DISTRACTORS}")
        _illuminant_key(self.illuminant)
        if len(self.pose) != 4 or not self.pose[3] > 0:
            raise ValueError(f"pose must be (dx, dy, rotation_deg, scale > 0), got {self.pose}")
        if not 0.5 <= self.pose[3] <= 2.0 or abs(self.pose[2]) > 45:
            raise ValueError(f"pose scale must be in [0.5, 2] and |rotation| <= 45 degrees, got {self.pose}")
        if self.exposure <= 0 or self.hemoglobin_scale < 0 or self.melanin_scale < 0 or self.noise < 0:
            raise ValueError("exposure must be > 0; hemoglobin_scale, melanin_scale and noise must be >= 0")
        if self.spots < 0 or self.red_patches < 0:
            raise ValueError("spots and red_patches must be >= 0")
        if self.jpeg_quality is not None and not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in [1, 100] or None, got {self.jpeg_quality}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["size"] = list(self.size)
        d["pose"] = list(self.pose)
        d["distractors"] = list(self.distractors)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "PhantomSpec":
        """Rebuild a spec from :meth:`to_dict` output (e.g. the ``spec`` of a truth JSON)."""
        d = dict(d)
        for k in ("size", "pose", "distractors"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)


@dataclass
class Phantom:
    """A rendered phantom.

    Attributes
    ----------
    image : ndarray, uint8, (H, W, 3)
        sRGB photo, RGB order.
    mask : ndarray, bool, (H, W)
        True skin (excludes hair, lips, eyes, clothing, chart).
    melanin, hemoglobin : ndarray, float32, (H, W)
        True volume fractions, NaN off skin.
    labels : ndarray, uint8, (H, W)
        Scene classes, codes in :data:`LABELS`.
    linear : ndarray, float32, (H, W, 3)
        Linear RGB after blur and exposure, before noise, clipping and encoding.
    truth : dict
        JSON-serialisable ground truth (means, spec, pose matrix, chart geometry ...).
    """

    image: np.ndarray
    mask: np.ndarray
    melanin: np.ndarray
    hemoglobin: np.ndarray
    labels: np.ndarray
    linear: np.ndarray
    truth: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- geometry helpers

_MARGIN = 1.5  # canonical frame / photo size


def _canonical_shape(size: tuple[int, int]) -> tuple[int, int]:
    h, w = size
    return int(round(h * _MARGIN)), int(round(w * _MARGIN))


def pose_matrix(spec: PhantomSpec) -> np.ndarray:
    """2x3 affine matrix mapping canonical-frame pixels to photo pixels for ``spec.pose``.

    ``photo = s R(theta) (p - c_canonical) + c_photo + (dx, dy)``; ``theta`` in degrees,
    positive counter-clockwise as seen in the photo (OpenCV convention).  float64.
    """
    h, w = spec.size
    hc, wc = _canonical_shape(spec.size)
    dx, dy, rot, scale = spec.pose
    t = math.radians(rot)
    al, be = scale * math.cos(t), scale * math.sin(t)
    ccx, ccy = (wc - 1) / 2.0, (hc - 1) / 2.0
    ocx, ocy = (w - 1) / 2.0 + dx, (h - 1) / 2.0 + dy
    return np.array(
        [[al, be, ocx - (al * ccx + be * ccy)], [-be, al, ocy - (-be * ccx + al * ccy)]], dtype=np.float64
    )


def relative_pose(spec_a: PhantomSpec, spec_b: PhantomSpec) -> np.ndarray:
    """2x3 affine matrix mapping photo-A pixels to photo-B pixels (same scene, two poses).

    Use ``cv2.warpAffine(b_array, relative_pose(a, b), (W_a, H_a), flags=cv2.WARP_INVERSE_MAP)``
    to bring B onto A, e.g. to undo a pose change in a test.
    """
    if _canonical_shape(spec_a.size) != _canonical_shape(spec_b.size):
        raise ValueError("relative_pose needs two phantoms of the same size")
    ma = np.vstack([pose_matrix(spec_a), [0.0, 0.0, 1.0]])
    mb = np.vstack([pose_matrix(spec_b), [0.0, 0.0, 1.0]])
    return (mb @ np.linalg.inv(ma))[:2]


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, stream])

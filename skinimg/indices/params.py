"""Parameters of the indices (:class:`IndexParams`, recorded in every output) and the names of the maps."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace

from ..color import OD_FLOOR
from ..errors import SkinImgError
from .basis import basis_digest

__all__ = ["INDEX_NAMES", "STATS", "CHROMOPHORE_METHODS", "BRANCHES", "IndexParams", "with_params"]

#: Names of the per-pixel maps, in output order.
INDEX_NAMES = ("erythema_index", "melanin_index", "l_star", "a_star", "b_star", "ita_deg", "hemoglobin", "melanin")
#: Per-index statistics: column ``X`` is the mean, then ``X_median``, ``X_p10``, ``X_p90``, ``X_std``.
STATS = ("", "_median", "_p10", "_p90", "_std")

#: Haemoglobin/melanin separation methods (``IndexParams.chromophore_method``).
CHROMOPHORE_METHODS = ("basis", "ica")
#: The brown/dark skin twin: chosen per photo, or held (``IndexParams.branch``).
BRANCHES = ("auto", "light", "dark")

_CHUNK = 1 << 20  # pixels per processing chunk: bounds temporaries to ~12 MB per (n, 3) float32 array


@dataclass(frozen=True)
class IndexParams:
    """Every tunable of the indices, recorded in the outputs (``analyze.json``, ``params_hash``).

    Attributes
    ----------
    chromophore_method : {"basis", "ica"}
        ``"basis"`` (default): absorbance directions from the calibrated basis file.
        ``"ica"``: directions estimated per image by FastICA inside the pigment plane
        (Tsumura et al. 1999), sign and order resolved against the basis; falls back
        to the basis (and says so in ``chromophore_method`` of the row) when ICA does
        not converge or finds a direction more than ``ica_max_angle_deg`` from the basis.
    basis_path : str or None
        Basis JSON; ``None`` = ``models/chromophore_basis.json``.
    branch : {"auto", "light", "dark"}
        Where two skins share a chromaticity (brown and dark skin), which one to take:
        ``"auto"`` chooses per image from brightness (:func:`choose_branch`);
        photos of the same skin compared with each other should share one choice
        (:func:`choose_shared_branch`, what ``skinimg compare`` and ``track`` do).
    smoothing_sigma : float
        Gaussian sigma (pixels) of a light smoothing of the photo before every index
        (a box of the same variance, on linear light, normalised to the skin mask,
        0 = none; see :func:`_smooth_inside`).
        Sensor noise is amplified by the non-linear inversion at dark tones and
        biases mean concentrations by an amount that changes with exposure; 2 px
        keeps haemoglobin within about 1 % under a 25 % exposure change on dark
        phantoms (8 % with no smoothing, 4 % with 1 px on encoded values) while
        keeping features of a few pixels.
    shading_sigma : float
        Melanin is read from brightness at the pixel's haemoglobin, so shading (a face turning
        away from the light, the shadow under the jaw) would read as pigment.  The brightness
        residual at the chromaticity root (observed minus model mean OD: exposure plus shading,
        since the root already explains the pigment for light to tan skin) is low-passed over the
        skin (skin-normalised Gaussian, sigma = ``shading_sigma`` x the side of a square of the
        skin's area); its excess over the ``shading_percentile`` of the skin (the well-lit
        level, so exposure is left alone) is taken as shading and removed before the brightness
        step (``melanin -= shading x d melanin / d brightness``).  Not on the dark branch, where the
        chromaticity root cannot resolve melanin and the residual carries pigment too.  0 turns the
        correction off.
    shading_percentile : float
        Percentile of the low-passed residual taken as the well-lit level.
    ica_max_samples : int
        Skin pixels (a fixed-seed random subset) used to fit ICA.
    ica_random_state : int
        Seed of the subset and of FastICA (results are reproducible).
    ica_max_angle_deg : float
        Largest accepted angle between an ICA direction and the basis direction.
    od_floor : float
        Reflectance floor of the optical density (OD at most ``-log10(od_floor)``).
    red_threshold : float
        ``red_area_fraction`` = fraction of skin pixels with ``hemoglobin`` above this
        (ensemble blood volume fraction; 0.035 is 3 times typical skin, 0.0116, so only
        marked erythema counts).
    spot_threshold : float
        A pixel is part of a brown spot when its (shading-corrected) melanin exceeds the
        local background (see ``spot_background_sigma``) by more than this (ensemble
        melanin volume fraction).
    spot_noise_k : float
        The threshold is raised to ``spot_noise_k`` robust standard deviations
        (1.4826 x MAD) of the excess over skin when that is larger, so sensor noise
        (large in the melanin estimate of dark skin) does not make spots.
    spot_background_sigma : float
        Standard deviation of the Gaussian giving the local melanin background, as
        a fraction of the shorter side of the image (skin-normalised convolution, so
        the mask border does not bias it).
    spot_min_area : float
        Smallest spot, as a fraction of the image area (1e-4 = 1200 px on 12 MP).
    spot_work_pixels : int
        Spots are detected on the melanin map resampled (area averaging) to at most
        this many pixels, so results do not depend on resolution and stay fast.
    min_skin_pixels : int
        Fewer skin pixels than this is ``status="no_skin"``.
    """

    chromophore_method: str = "basis"
    basis_path: str | None = None
    branch: str = "auto"
    smoothing_sigma: float = 2.0
    shading_sigma: float = 0.05
    shading_percentile: float = 10.0
    ica_max_samples: int = 200_000
    ica_random_state: int = 0
    ica_max_angle_deg: float = 35.0
    od_floor: float = OD_FLOOR
    red_threshold: float = 0.035
    spot_threshold: float = 0.03
    spot_noise_k: float = 5.0
    spot_background_sigma: float = 0.05
    spot_min_area: float = 1e-4
    spot_work_pixels: int = 1_000_000
    min_skin_pixels: int = 100

    def __post_init__(self):
        if self.chromophore_method not in CHROMOPHORE_METHODS:
            raise SkinImgError(f"unknown chromophore method {self.chromophore_method!r} (use 'basis' or 'ica')")
        if self.branch not in BRANCHES:
            raise SkinImgError(f"unknown chromophore branch {self.branch!r} (use 'auto', 'light' or 'dark')")
        for name in ("ica_max_samples", "spot_work_pixels", "min_skin_pixels"):
            if getattr(self, name) < 1:
                raise SkinImgError(f"{name} must be at least 1")
        if not 0 < self.od_floor < 1:
            raise SkinImgError("od_floor must be in (0, 1)")
        if self.smoothing_sigma < 0:
            raise SkinImgError("smoothing_sigma must be >= 0")
        if self.shading_sigma < 0 or not 0 < self.shading_percentile < 100:
            raise SkinImgError("shading_sigma must be >= 0 and shading_percentile in (0, 100)")
        if self.spot_background_sigma <= 0 or self.spot_min_area < 0:
            raise SkinImgError("spot_background_sigma must be > 0 and spot_min_area >= 0")

    def to_dict(self) -> dict:
        return asdict(self)

    def hash(self) -> str:
        """Short SHA-256 of the parameters (and the basis file content when it is used)."""
        h = hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode())
        h.update(basis_digest(self.basis_path).encode())
        return h.hexdigest()[:12]


def with_params(params: IndexParams | None = None, **changes) -> IndexParams:
    """A copy of ``params`` (default parameters when None) with some fields changed."""
    return replace(params or IndexParams(), **changes)

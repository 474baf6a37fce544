"""Settings of a benchmark run (:class:`BenchParams`, the ``--preset`` presets) and the tables' vocabulary."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from ...errors import SkinImgError

__all__ = ["SUITES", "ALL_SUITES", "SIZES", "CSV_COLUMNS", "TARGETS", "FACTORS", "UNITS", "BenchParams",
           "bench_params"]

#: The phantom suites of ``skinimg bench --suite`` ("all" runs them in this order).
SUITES = ("accuracy", "repeatability", "segmentation", "speed")
#: Every suite: :data:`SUITES`, then ``agreement`` (the user's photos and reference readings,
#: :mod:`skinimg.train.bench.agreement`), which ``--suite all`` adds when a reference is given.
ALL_SUITES = SUITES + ("agreement",)
#: Presets of ``skinimg bench --preset`` (``BenchParams.size``).
SIZES = ("small", "full")
#: Columns of ``bench.csv`` (long format: one metric value per row).
CSV_COLUMNS = ("suite", "table", "item", "condition", "metric", "value", "unit", "n")
#: Target chromophore of every index (the other one is its cross-talk chromophore).
TARGETS = {
    "erythema_index": "hemoglobin",
    "a_star": "hemoglobin",
    "hemoglobin": "hemoglobin",
    "melanin_index": "melanin",
    "l_star": "melanin",
    "b_star": "melanin",
    "ita_deg": "melanin",
    "melanin": "melanin",
}
#: Repeatability factors: what changes between the retakes of one subject.
FACTORS = ("exposure", "white_balance", "jpeg", "pose", "noise", "all")
#: Units of the indices (for bench.csv).
UNITS = {
    "erythema_index": "EI x100", "melanin_index": "MI x100", "l_star": "L*", "a_star": "a*", "b_star": "b*",
    "ita_deg": "deg", "hemoglobin": "volume fraction", "melanin": "volume fraction",
}
_OTHER = {"hemoglobin": "melanin", "melanin": "hemoglobin"}


@dataclass(frozen=True)
class BenchParams:
    """Every setting of one benchmark run (recorded in ``bench.json``).

    Attributes
    ----------
    size : {"small", "full"}
        Preset name (see :func:`bench_params`).
    image_size : (int, int)
        Phantom size (H, W) of the accuracy, repeatability and segmentation suites.
    melanin_levels, hemoglobin_levels : tuple of float
        Accuracy grid (volume fractions); every combination, ``grid_seeds`` phantoms each.
    grid_seeds : int
        Phantoms (different skins) per grid cell.
    subjects : tuple of (melanin, hemoglobin)
        Repeatability subjects (one phantom seed each).
    retakes : int
        Retakes per subject and factor.
    factors : tuple of str
        Repeatability factors (:data:`FACTORS`).
    exposure_range : (float, float)
        Exposure gain of the retakes (uniform).
    jpeg_range : (int, int)
        JPEG quality of the retakes (uniform integers, inclusive).
    illuminants : tuple of str
        White-balance retakes draw one of these (daylight 5000-7500 K by default).
    pose_shift, pose_rotation_deg, pose_scale : float
        Pose retakes: shift up to ``pose_shift`` x width, rotation up to +-deg, scale 1 +- this.
    segmentation_images : int
        Phantoms of the segmentation suite.
    segment_methods : tuple of str
        Methods passed to ``skinimg.segment.segment_skin``.
    speed_size : (int, int)
        Size (H, W) of the speed JPEG (3000 x 4000 = 12 MP).
    speed_repeat : int
        Timings are the median of this many runs.
    speed_images : int
        Images per throughput run (each worker count).
    speed_workers : tuple of int
        Worker counts of the throughput runs.
    seed : int
        Base seed of everything.
    bootstrap_resamples : int
        Resamples of the agreement suite's bootstrap intervals (0 = none).
    """

    size: str = "small"
    image_size: tuple[int, int] = (240, 320)
    melanin_levels: tuple[float, ...] = (0.005, 0.06, 0.16, 0.3, 0.45)
    hemoglobin_levels: tuple[float, ...] = (0.002, 0.01, 0.025, 0.05, 0.1)
    grid_seeds: int = 1
    subjects: tuple[tuple[float, float], ...] = ((0.02, 0.015), (0.16, 0.03), (0.35, 0.02))
    retakes: int = 5
    factors: tuple[str, ...] = ("all",)
    exposure_range: tuple[float, float] = (0.8, 1.2)
    jpeg_range: tuple[int, int] = (70, 95)
    illuminants: tuple[str, ...] = ("D50", "D65", "D75")
    pose_shift: float = 0.04
    pose_rotation_deg: float = 5.0
    pose_scale: float = 0.05
    segmentation_images: int = 6
    segment_methods: tuple[str, ...] = ("model", "rules")
    speed_size: tuple[int, int] = (720, 960)
    speed_repeat: int = 1
    speed_images: int = 2
    speed_workers: tuple[int, ...] = (1, 2)
    seed: int = 0
    bootstrap_resamples: int = 2000

    def __post_init__(self):
        if self.size not in SIZES:
            raise SkinImgError(f"unknown benchmark size {self.size!r} (use small or full)")
        bad = [f for f in self.factors if f not in FACTORS]
        if bad:
            raise SkinImgError(f"unknown repeatability factor(s) {', '.join(bad)} (use {', '.join(FACTORS)})")
        if self.retakes < 2 or self.grid_seeds < 1 or self.speed_repeat < 1 or self.speed_images < 1:
            raise SkinImgError("retakes must be >= 2; grid_seeds, speed_repeat and speed_images >= 1")
        if len(self.melanin_levels) < 2 or len(self.hemoglobin_levels) < 2:
            raise SkinImgError("the accuracy grid needs at least 2 melanin and 2 haemoglobin levels")

    def to_dict(self) -> dict:
        return asdict(self)


def bench_params(size: str = "small", **changes) -> BenchParams:
    """The preset of ``skinimg bench --preset``; keyword arguments override fields.

    ``small`` (under a minute on 2 cores): 5 x 5 grid at 240 x 320, 3 subjects x 5
    retakes (all factors at once), 6 segmentation phantoms, speed on a 0.7-MP JPEG.
    ``full``: 8 x 8 grid x 2 skins at 480 x 640, 5 subjects x 8 retakes for every
    factor alone and all together, 24 segmentation phantoms, speed on a 12-MP JPEG
    (median of 3), throughput on 6 images.
    """
    if size == "small":
        p = BenchParams()
    elif size == "full":
        p = BenchParams(
            size="full",
            image_size=(480, 640),
            melanin_levels=(0.005, 0.02, 0.05, 0.1, 0.16, 0.24, 0.34, 0.45),
            hemoglobin_levels=(0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1),
            grid_seeds=2,
            subjects=((0.01, 0.01), (0.06, 0.02), (0.16, 0.03), (0.25, 0.015), (0.4, 0.025)),
            retakes=8,
            factors=FACTORS,
            segmentation_images=24,
            speed_size=(3000, 4000),
            speed_repeat=3,
            speed_images=6,
        )
    else:
        raise SkinImgError(f"unknown benchmark size {size!r} (use small or full)")
    return replace(p, **changes) if changes else p

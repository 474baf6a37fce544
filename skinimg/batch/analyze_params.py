"""The parameters of ``skinimg analyze`` (:class:`AnalyzeParams`): recorded in ``analyze.json`` and hashed into
every row's ``params_hash``."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from .. import __version__
from ..calibrate import MODES as CALIBRATION_MODES
from ..calibrate import CalibrationParams
from ..errors import SkinImgError
from ..indices import IndexParams
from ..io import DEFAULT_MAX_PIXELS, DEFAULT_WORK_PIXELS
from ..segment import SegmentParams, check_method, check_second_stage, load_model

__all__ = ["AnalyzeParams"]


@dataclass(frozen=True)
class AnalyzeParams:
    """Parameters of one analyze run (recorded in ``analyze.json``; hashed into ``params_hash``).

    Attributes
    ----------
    segment_method : {"model", "rules"}
        Passed to :func:`skinimg.segment.segment_skin`.
    max_pixels : int or None
        Images declaring more pixels are refused before decoding.
    indices : IndexParams
        Parameters of the indices and area measures.
    calibration : {"none", "auto", "chart"}
        Colour calibration between loading and segmentation
        (:func:`skinimg.calibrate.calibrate_image`): ``"none"`` (default) uses the
        photo as it is; ``"auto"`` corrects with a ColorChecker when one is in the
        frame, otherwise with ``white`` or the gray-world fallback on non-skin pixels;
        ``"chart"`` requires a chart (a photo without one is an error row).  The
        chart's own pixels are always removed from the skin mask, and the
        correction is saved as ``calibration/<stem>.json`` beside the results.
    white : (x, y, w, h) or None
        A white/gray reference region for ``calibration="auto"`` without a chart.
    heatmap_max_side : int
        Longer side of the PNG heatmaps (the TIFF maps are always full resolution).
    second_stage : {"mlp", "net", "both"}
        Deprecated, no effect (the second stage of the former colour-table segmenter, retired by issue 22); not
        hashed.
    check : bool
        Also run the network on the mirror image and fill the columns ``stage_agreement`` and ``mask_check``
        (``skinimg segment --check``).  Does not change the mask or the numbers, so it is not hashed.
    calibrate_params : CalibrationParams or None
        How a chart is used when calibrating (reference values, correction model: ``--chart``,
        ``--correction``, ``--reference``); None = the defaults.  Hashed only when given, so the defaults'
        ``params_hash`` is unchanged.
    work_pixels : int or None
        The working size (``--resolution``): a photo of more pixels is segmented and measured on an area-averaged
        copy of about this many pixels (:func:`skinimg.io.load_image`), so that the indices' spatial scales (set
        in pixels) are the same fraction of the frame whatever the camera; the maps have its size.  None: every
        photo at its own size (``--resolution full``).  Calibration (``calibration`` other than ``"none"``) looks
        for the chart in the full photo and reduces the corrected photo afterwards.  Hashed.
    """

    segment_method: str = "model"
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    indices: IndexParams = field(default_factory=IndexParams)
    calibration: str = "none"
    white: tuple | None = None
    heatmap_max_side: int = 2048
    second_stage: str = "mlp"
    check: bool = False
    calibrate_params: CalibrationParams | None = None
    work_pixels: int | None = DEFAULT_WORK_PIXELS

    def __post_init__(self):
        if self.work_pixels is not None and int(self.work_pixels) < 1:
            raise SkinImgError(f"working size must be at least one pixel (got {self.work_pixels})")
        if self.calibration is None:
            object.__setattr__(self, "calibration", "none")
        if self.calibration not in CALIBRATION_MODES:
            raise SkinImgError(f"unknown calibration {self.calibration!r} (use 'auto', 'chart' or 'none')")
        if self.white is not None:
            object.__setattr__(self, "white", tuple(int(v) for v in self.white))
        check_method(self.segment_method)
        check_second_stage(self.second_stage)

    def to_dict(self) -> dict:
        """The fields, and ``segment``: the segmentation's parameters (:class:`skinimg.segment.SegmentParams`, the
        defaults :func:`segment_photo` uses), so that ``analyze.json`` says which boundary, threshold and working size
        made the masks."""
        d = asdict(self)
        d["segment"] = asdict(SegmentParams())
        return d

    def hash(self) -> str:
        """Short SHA-256 of everything that changes the numbers (not output-only settings), including the
        segmentation's parameters, the content of the skin network (``segment_method="model"``) and of the
        chromophore basis."""
        d = self.to_dict()
        d.pop("heatmap_max_side")
        d.pop("max_pixels")
        d.pop("check")
        d.pop("second_stage")  # deprecated, no effect
        if d["calibrate_params"] is None:  # the default: hashes as before the option existed
            d.pop("calibrate_params")
        h = hashlib.sha256(json.dumps(d, sort_keys=True).encode())
        h.update(self.indices.hash().encode())
        if self.segment_method == "model":  # another network gives other masks, so other numbers
            h.update(load_model().sha256.encode())
        h.update(__version__.encode())
        return h.hexdigest()[:12]

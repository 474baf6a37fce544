"""Input and output: photographs in, files out (the only layer that touches the file system's formats).

Reading: :func:`load_image` returns an upright **RGB** array (``uint8`` or ``uint16``, never BGR) and
an :class:`ImageMeta`; :func:`discover_images` lists the photos under files and folders.  Writing:
every writer is atomic, so an interrupted run never leaves a half-written output.  Arrays:
:func:`check_rgb` (the gate of every image function) and :func:`to_uint8` (the one conversion to
8 bits).  Trained parameters: :func:`models_dir` (``$SKINIMG_MODELS``, the checkout's ``models/`` or
the wheel's ``share/skinimg/models``).  Errors are :class:`~skinimg.errors.SkinImgError` naming the
file and the reason.

Modules: ``image`` (loading), ``discover`` (input lists), ``write`` (atomic writers, output folders),
``masks`` (masks, true masks), ``roi`` (ROI files and their lookup), ``layout`` (per-image output paths), ``models`` (trained
files), ``arrays`` (gate and dtype conversion), ``messages`` (repeated warnings collapsed with a count).
"""

from .arrays import check_rgb, to_uint8
from .discover import IMAGE_EXTENSIONS, InputImage, discover_images, output_stems
from .image import DEFAULT_MAX_PIXELS, ImageMeta, load_image, read_header, reason_text
from .layout import calibrated_path, calibration_path, map_paths, mask_path
from .masks import TRUTH_MASK_NAMES, find_truth_mask, read_mask
from .roi import REGION_COLOURS, REGION_NAME, ROI_SUFFIXES, Roi, find_roi, is_roi_file, load_roi, read_roi
from .messages import collapse_messages, format_collapsed, pair_warning_source
from .models import load_npz, model_file, models_dir, read_json_object
from .worksize import DEFAULT_WORK_PIXELS, parse_resolution, reduce_image, reduce_mask, resolution_text, work_size
from .write import (atomic_write, dumps_json, make_output_folder, remove_stale_temp_files, safe_output_path,
                    write_bytes, write_csv, write_json, write_png, write_tiff)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_WORK_PIXELS",
    "IMAGE_EXTENSIONS",
    "REGION_COLOURS",
    "REGION_NAME",
    "ROI_SUFFIXES",
    "Roi",
    "TRUTH_MASK_NAMES",
    "ImageMeta",
    "InputImage",
    "atomic_write",
    "calibrated_path",
    "calibration_path",
    "check_rgb",
    "collapse_messages",
    "discover_images",
    "dumps_json",
    "find_roi",
    "find_truth_mask",
    "format_collapsed",
    "load_image",
    "load_npz",
    "is_roi_file",
    "load_roi",
    "make_output_folder",
    "map_paths",
    "mask_path",
    "model_file",
    "models_dir",
    "output_stems",
    "pair_warning_source",
    "read_header",
    "read_json_object",
    "read_mask",
    "parse_resolution",
    "read_roi",
    "reduce_image",
    "reduce_mask",
    "resolution_text",
    "work_size",
    "reason_text",
    "remove_stale_temp_files",
    "safe_output_path",
    "to_uint8",
    "write_bytes",
    "write_csv",
    "write_json",
    "write_png",
    "write_tiff",
]

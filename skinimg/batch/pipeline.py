"""Declarative pipelines (``pipelines/*.toml``): loading, validation, stage registry.

A pipeline file names the stages to run and their options::

    [pipeline]
    name = "research"
    description = "Skin segmentation and indices; Parquet table for analysis."
    stages = ["segment", "analyze"]      # in this order
    formats = ["csv", "parquet"]         # tables besides results.sqlite (csv always)
    max_pixels = 80_000_000              # refuse larger photos (from the header)

    [segment]
    method = "model"

    [analyze]
    maps = false

    [roi]                                # optional: regions of interest (skinimg.batch.RoiLookup)
    files = "beside"                     # <stem>.roi.json / .roi.png beside each photo; "none"; "dir:<path>"
    propagate = false                    # carry each series' baseline ROI to later sessions (needs track)

Every stage has a table of options (all optional, defaults in :data:`STAGES`).  Stages are
either **per image** (``calibrate``, ``segment``, ``analyze``: run in the workers, one
result per photo, resumable) or **per batch** (``track``, ``report``, ``regress``: run once
in the parent after every image is done).  Per-image stages come first, in the order
calibrate -> segment -> analyze.

Anything not in the schema is an error naming the key and the file: an unknown table,
stage or key, a wrong type, a value outside its choices, a stage table whose stage is
not listed in ``pipeline.stages``.  A stage that needs an optional package which is not
installed (``report`` needs matplotlib) is valid in a file but :func:`check_available`
refuses it before any work starts.  The choices of the options are those of the library
(:data:`skinimg.segment.METHODS`, :data:`skinimg.segment.SECOND_STAGES` ...), not copies.

``skinimg run NAME`` finds a bare name among the pipelines shipped with skinimg
(:func:`packaged_pipelines`; the repository's ``pipelines/`` folder, installed as the
data package ``skinimg.pipelines``); anything that looks like a path is read as a file.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..calibrate import METHODS as CORRECTION_METHODS
from ..calibrate import FALLBACKS, REFERENCE_CHARTS
from ..errors import SkinImgError
from ..io import DEFAULT_WORK_PIXELS, parse_resolution, resolution_text
from ..indices import BRANCHES, CHROMOPHORE_METHODS
from ..segment import METHODS as SEGMENT_METHODS
from ..segment import SECOND_STAGES
from ..session import REGISTRATION_MODES
from .maps import map_names

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["Option", "Stage", "STAGES", "IMAGE_STAGES", "BATCH_STAGES", "ROI_KEYS", "Pipeline", "load_pipeline",
           "parse_pipeline", "resolve_pipeline", "packaged_pipelines", "check_available", "work_pixels_of"]


@dataclass(frozen=True)
class Option:
    """One key of a stage table: default, accepted types and (optionally) choices."""

    default: Any
    types: tuple
    choices: tuple | None = None
    help: str = ""
    required: bool = False


@dataclass(frozen=True)
class Stage:
    """A stage of the registry.

    Attributes
    ----------
    name : str
    kind : {"image", "batch"}
        Per image (workers, resumable) or once per batch (parent, at the end).
    requires : tuple of (module, pip extra)
        Optional packages the stage needs; a missing one makes the stage "not available".
    options : dict name -> Option
    help : str
    """

    name: str
    kind: str
    requires: tuple
    options: Mapping[str, Option] = field(default_factory=dict)
    help: str = ""


_BOOL = (bool,)
_STR = (str,)
_INT = (int,)

#: The stage registry, in the only order stages may run.
STAGES: dict[str, Stage] = {
    "calibrate": Stage("calibrate", "image", (), {
        "chart": Option("classic24", _STR, REFERENCE_CHARTS, "ColorChecker reference values"),
        "method": Option("auto", _STR, CORRECTION_METHODS,
                         "correction model (auto = chosen per photo by leave-one-patch-out error)"),
        "reference": Option("", _STR, None, "your chart's measured values: JSON/CSV file (skinimg calibrate "
                                            "--reference), relative to the working folder; empty = --chart's"),
        "require_chart": Option(False, _BOOL, None, "a photo without a chart is an error"),
        "fallback": Option("gray_world", _STR, FALLBACKS, "correction without a chart"),
        "exclude_chart": Option(True, _BOOL, None, "remove the chart's pixels from the skin mask"),
        "write_images": Option(False, _BOOL, None, "write calibrated/<stem>.png"),
    }, "colour correction with the ColorChecker in the frame (or a recorded fallback)"),
    "segment": Stage("segment", "image", (), {
        "method": Option("model", _STR, SEGMENT_METHODS, "skin segmentation method"),
        "second_stage": Option("mlp", _STR, SECOND_STAGES, "deprecated, no effect (the retired second stages)"),
        "check": Option(False, _BOOL, None, "also run the network on the mirror image: stage_agreement, mask_check"),
        "write_masks": Option(True, _BOOL, None, "write masks/<stem>.png (255 = skin)"),
    }, "skin mask (skinimg.segment.segment_skin)"),
    "analyze": Stage("analyze", "image", (), {
        "method": Option("model", _STR, SEGMENT_METHODS,
                         "segmentation method when the pipeline has no segment stage"),
        "second_stage": Option("mlp", _STR, SECOND_STAGES, "deprecated, no effect (the retired second stages)"),
        "check": Option(False, _BOOL, None, "stage_agreement, mask_check columns when the pipeline has no segment stage"),
        "chromophores": Option("basis", _STR, CHROMOPHORE_METHODS, "haemoglobin/melanin separation"),
        "branch": Option("auto", _STR, BRANCHES,
                         "brown/dark skin twin: per photo (auto) or held for a series"),
        "maps": Option(True, (bool, str, list), None,
                       "maps/<stem>_<index>.tif and .png to write: true (hemoglobin, melanin, erythema_index), "
                       "false, \"all\", \"none\" or a list of index names"),
        "resolution": Option(float(resolution_text(DEFAULT_WORK_PIXELS)), (int, float, str), None,
                             "working size in megapixels: larger photos are measured on an area-averaged copy of "
                             "this size (\"full\": every photo at its own size)"),
    }, "redness and pigmentation indices (the rows of indices.csv)"),
    "track": Stage("track", "batch", (), {
        "manifest": Option(None, _STR, None, "CSV manifest patient,site,session,image[,roi] (default: folder layout)"),
        "root": Option(None, _STR, None, "study folder inside INPUT (relative; default: INPUT itself)"),
        "registration": Option("auto", _STR, REGISTRATION_MODES,
                               "alignment of each pair: auto (features, ECC, else region statistics), features, ecc, "
                               "none"),
    }, "series of sessions per patient/site compared with baseline and previous (skinimg.batch.track)"),
    "report": Stage("report", "batch", (("matplotlib", "report"),), {
        "title": Option("skinimg report", _STR, None, "title of every page"),
        "anonymize": Option(False, _BOOL, None, "pseudonyms for patients and file names"),
        "salt": Option(None, _STR, None, "key of the pseudonyms (default: random per report)"),
        "out": Option("report", _STR, None, "report folder, relative to --out"),
    }, "offline HTML report in OUT/report/"),
    "regress": Stage("regress", "batch", (), {
        "expected": Option(None, _STR, None, "expected indices.csv (relative to the current folder)", required=True),
        "tolerances": Option({}, (dict,), None, "INDEX = 'ABS' or 'REL%' overrides"),
    }, "compare indices.csv with committed expected values; drift fails the run"),
}
IMAGE_STAGES = tuple(n for n, s in STAGES.items() if s.kind == "image")
BATCH_STAGES = tuple(n for n, s in STAGES.items() if s.kind == "batch")

#: Keys of the ``[roi]`` table: where each photo's region of interest comes from (not a stage; all stages use it).
ROI_KEYS: dict[str, Option] = {
    "files": Option("beside", _STR, None, "ROI files: beside (<stem>.roi.json / .roi.png beside each photo), none, or "
                                          "dir:<path> (a folder mirroring INPUT, relative to the current folder)"),
    "propagate": Option(False, _BOOL, None, "carry each series' baseline ROI to its later sessions through their "
                                            "registration (needs the track stage, which then runs first)"),
}

#: Keys of the ``[pipeline]`` table.
PIPELINE_KEYS: dict[str, Option] = {
    "name": Option(None, _STR, None, "pipeline name (default: the file name)"),
    "description": Option("", _STR, None, "one line shown in run.json"),
    "stages": Option(None, (list,), None, "stage names, in order", required=True),
    "formats": Option(["csv"], (list,), None, "tables besides results.sqlite: csv (always), parquet"),
    "max_pixels": Option(80_000_000, _INT, None, "refuse images with more pixels (from the header)"),
    "exclude": Option([], (list,), None, "shell patterns of relative names to skip in INPUT, e.g. 'truth/*'"),
}
FORMATS = ("csv", "parquet")


@dataclass(frozen=True)
class Pipeline:
    """A validated pipeline.

    Attributes
    ----------
    name, description : str
    stages : tuple of str
        Stage names in run order.
    options : dict stage -> dict
        Every option of every listed stage, defaults filled in.
    formats : tuple of str
        ``"csv"`` always, ``"parquet"`` when asked.
    max_pixels : int
    exclude : tuple of str
        Shell patterns of relative names skipped when INPUT is scanned.
    source : str
        The file as given (shown in errors).
    text : str
        The file's content.
    sha256 : str
        SHA-256 of the file's bytes.
    """

    name: str
    description: str
    stages: tuple
    options: dict
    formats: tuple
    max_pixels: int
    source: str
    text: str
    sha256: str
    exclude: tuple = ()
    roi: dict = field(default_factory=lambda: {k: o.default for k, o in ROI_KEYS.items()})

    def image_stages(self) -> tuple:
        return tuple(s for s in self.stages if STAGES[s].kind == "image")

    def batch_stages(self) -> tuple:
        return tuple(s for s in self.stages if STAGES[s].kind == "batch")

    def resolved(self) -> dict:
        """The pipeline with every default filled in (recorded in ``run.json``)."""
        d = {"pipeline": {"name": self.name, "description": self.description, "stages": list(self.stages),
                          "formats": list(self.formats), "max_pixels": self.max_pixels,
                          "exclude": list(self.exclude)}}
        d.update({s: dict(self.options[s]) for s in self.stages})
        d["roi"] = dict(self.roi)
        return d


def _type_name(types: tuple) -> str:
    names = {bool: "true or false", str: "a string", int: "an integer", float: "a number", list: "a list",
             dict: "a table"}
    return " or ".join(names.get(t, t.__name__) for t in types)


def _check_value(where: str, value, opt: Option, source: str):
    ok = isinstance(value, opt.types) and not (isinstance(value, bool) and bool not in opt.types)
    if not ok:
        raise SkinImgError(f"{where} must be {_type_name(opt.types)}, got {value!r}", source)
    if opt.choices is not None and value not in opt.choices:
        raise SkinImgError(f"{where} must be one of {', '.join(map(str, opt.choices))}; got {value!r}", source)
    return value


def _check_keys(table: str, given: Mapping, schema: Mapping[str, Option], source: str) -> dict:
    if not isinstance(given, dict):
        raise SkinImgError(f"{table} must be a table ([{table}]), got {given!r}", source)
    for k in given:
        if k not in schema:
            known = ", ".join(schema) or "none"
            raise SkinImgError(f"unknown key '{table}.{k}' (keys of [{table}]: {known})", source)
    out = {}
    for k, opt in schema.items():
        if k in given:
            out[k] = _check_value(f"{table}.{k}", given[k], opt, source)
        elif opt.required:
            raise SkinImgError(f"missing key '{table}.{k}' ({opt.help})", source)
        else:
            out[k] = opt.default
    return out


def work_pixels_of(options: Mapping) -> int | None:
    """The working size (pixels, or None for ``"full"``) of a pipeline's ``[analyze]`` options (the default when
    the pipeline has no analyze stage); the track stage uses the same."""
    return parse_resolution(options.get("resolution", DEFAULT_WORK_PIXELS / 1e6))


def parse_pipeline(text: str, *, source: str = "<pipeline>", default_name: str | None = None) -> Pipeline:
    """Validate the TOML ``text`` of a pipeline.

    Raises
    ------
    SkinImgError
        Naming ``source`` and the bad key: TOML syntax, unknown table / stage / key,
        wrong type or value, stages out of order or repeated, a stage table for a
        stage not listed, ``regress`` without ``analyze``.
    """
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SkinImgError(f"invalid TOML ({exc})", source) from None
    if "pipeline" not in doc:
        raise SkinImgError("missing table [pipeline] (with stages = [...])", source)
    for t in doc:
        if t not in ("pipeline", "roi") and t not in STAGES:
            raise SkinImgError(f"unknown table [{t}] (tables: pipeline, roi, {', '.join(STAGES)})", source)
    head = _check_keys("pipeline", doc["pipeline"], PIPELINE_KEYS, source)
    stages = head["stages"]
    if not stages:
        raise SkinImgError("pipeline.stages is empty (name at least one stage)", source)
    for s in stages:
        if not isinstance(s, str):
            raise SkinImgError(f"pipeline.stages must list stage names (strings), got {s!r}", source)
        if s not in STAGES:
            raise SkinImgError(f"unknown stage '{s}' in pipeline.stages (stages: {', '.join(STAGES)})", source)
    if len(set(stages)) != len(stages):
        dup = next(s for s in stages if stages.count(s) > 1)
        raise SkinImgError(f"stage '{dup}' is listed twice in pipeline.stages", source)
    order = list(STAGES)
    image = [s for s in stages if STAGES[s].kind == "image"]
    if image != sorted(image, key=order.index) or stages[:len(image)] != image:
        raise SkinImgError(f"pipeline.stages out of order: {stages} (per-image stages first, in the order "
                           f"{' -> '.join(IMAGE_STAGES)}, then {', '.join(BATCH_STAGES)})", source)
    for t in doc:
        if t in STAGES and t not in stages:
            raise SkinImgError(f"table [{t}] configures stage '{t}', which is not in pipeline.stages", source)
    formats = head["formats"]
    for f in formats:
        if f not in FORMATS:
            raise SkinImgError(f"pipeline.formats must list csv and/or parquet; got {f!r}", source)
    if head["max_pixels"] < 1:
        raise SkinImgError(f"pipeline.max_pixels must be >= 1, got {head['max_pixels']}", source)
    for pat in head["exclude"]:
        if not isinstance(pat, str) or not pat:
            raise SkinImgError(f"pipeline.exclude must list shell patterns (strings), got {pat!r}", source)
    options = {s: _check_keys(s, doc.get(s, {}), STAGES[s].options, source) for s in stages}
    track_root = options.get("track", {}).get("root")
    if track_root is not None and (Path(track_root).is_absolute() or ".." in Path(track_root).parts):
        raise SkinImgError(f"track.root must be a folder inside INPUT (relative, no '..'), got {track_root!r}", source)
    roi = _check_keys("roi", doc.get("roi", {}), ROI_KEYS, source)
    files = roi["files"]
    if files not in ("beside", "none") and not (files.startswith("dir:") and files[4:].strip()):
        raise SkinImgError(f"roi.files must be \"beside\", \"none\" or \"dir:<path>\"; got {files!r}", source)
    if roi["propagate"] and "track" not in stages:
        raise SkinImgError("roi.propagate carries ROIs along the series of the track stage: add 'track' to "
                           "pipeline.stages", source)
    if "analyze" in stages:
        try:
            map_names(options["analyze"]["maps"])
        except SkinImgError as exc:
            raise SkinImgError(f"analyze.maps: {exc.reason}", source) from None
        try:
            parse_resolution(options["analyze"]["resolution"])
        except ValueError as exc:
            raise SkinImgError(f"analyze.resolution: {exc}", source) from None
    if "regress" in stages and "analyze" not in stages:
        raise SkinImgError("stage 'regress' checks indices.csv: add 'analyze' to pipeline.stages", source)
    if "analyze" in stages and "segment" in stages and "method" in doc.get("analyze", {}):
        raise SkinImgError("key 'analyze.method' conflicts with the segment stage: set segment.method instead",
                           source)
    if "regress" in stages:
        for k, v in options["regress"]["tolerances"].items():
            if isinstance(v, bool) or not isinstance(v, (str, int, float)):
                raise SkinImgError(f"regress.tolerances.{k} must be a number or 'REL%', got {v!r}", source)
    name = head["name"] or default_name or "pipeline"
    return Pipeline(name=name, description=head["description"], stages=tuple(stages), options=options,
                    formats=tuple(sorted(set(formats) | {"csv"}, key=FORMATS.index)),
                    max_pixels=int(head["max_pixels"]), source=source, text=text, exclude=tuple(head["exclude"]),
                    sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(), roi=roi)


def packaged_pipelines() -> dict[str, Path]:
    """Pipelines shipped with skinimg: ``name -> path`` (``pipelines/*.toml``)."""
    try:
        from importlib.resources import files

        root = files("skinimg.pipelines")
        return {Path(p.name).stem: Path(os.fspath(p)) for p in root.iterdir() if p.name.endswith(".toml")}
    except (ImportError, OSError, TypeError):  # pragma: no cover - broken installation
        return {}


def resolve_pipeline(name_or_path: str | os.PathLike) -> Path:
    """The file of a pipeline given as a path or as a bare name of a shipped pipeline.

    A value that names an existing file, contains a path separator or ends with
    ``.toml`` is a path; otherwise it is looked up in :func:`packaged_pipelines`.
    """
    text = os.fspath(name_or_path)
    p = Path(text)
    if p.is_file() or "/" in text or os.sep in text or text.endswith(".toml"):
        if not p.is_file():
            raise SkinImgError("pipeline file not found", text)
        return p
    shipped = packaged_pipelines()
    if text in shipped:
        return shipped[text]
    raise SkinImgError(f"no pipeline named {text!r} (shipped: {', '.join(sorted(shipped)) or 'none'}; "
                       "or give the path of a .toml file)", text)


def load_pipeline(name_or_path: str | os.PathLike) -> Pipeline:
    """Read and validate a pipeline file (path or shipped name, see :func:`resolve_pipeline`)."""
    path = resolve_pipeline(name_or_path)
    source = os.fspath(name_or_path) if Path(os.fspath(name_or_path)).is_file() else f"pipelines/{path.name}"
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SkinImgError(f"cannot read pipeline ({exc.strerror or exc})", source) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SkinImgError("pipeline is not UTF-8 text", source) from None
    return parse_pipeline(text, source=source, default_name=path.stem)


def check_available(pipeline: Pipeline) -> None:
    """Refuse a pipeline naming a stage whose optional package is not installed (before any work).

    Raises
    ------
    SkinImgError
        ``stage 'report' is not available: module matplotlib is missing (pip install 'skinimg[report]')``.
    """
    for s in pipeline.stages:
        for mod, extra in STAGES[s].requires:
            try:
                found = sys.modules.get(mod) is not None or importlib.util.find_spec(mod) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                raise SkinImgError(f"stage '{s}' is not available: module {mod} is missing "
                                   f"(pip install 'skinimg[{extra}]')", pipeline.source)

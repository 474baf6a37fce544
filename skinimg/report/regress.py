"""Regression checks: compare a fresh run against committed expected values.

``skinimg regress --expected EXPECTED.csv --results DIR`` compares ``DIR/indices.csv``
(written by ``skinimg analyze``) with ``EXPECTED.csv`` per image and column, each
numeric column with a tolerance, and (when an expected verdicts file exists beside
``EXPECTED.csv``) the comparison verdicts found in ``DIR`` with it.  Every
difference beyond tolerance is a :class:`Drift` record; missing or extra images,
columns and verdicts are drift too, so a silently dropped output is caught.

Tolerances
----------
A tolerance is absolute (``erythema_index=0.5``: ``|got - expected| <= 0.5``) or
relative (``hemoglobin=2%``: ``|got - expected| <= 0.02 * |expected|``).  A tolerance
named after an index applies to the index's mean column ``X`` and to its statistics
``X_median``, ``X_p10``, ``X_p90``, ``X_std`` and any other ``X_<suffix>`` column;
a tolerance naming a full column wins over the index's one.  Columns without
any tolerance must match exactly (``width``, ``height``, text columns).  The
defaults are :data:`DEFAULT_TOLERANCES` (documented, with how they were chosen,
in the README).

Library functions never print; :func:`format_drift_table` gives the text the CLI
shows.
"""

from __future__ import annotations

import csv
import io as _io
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from ..errors import SkinImgError
from ..io import read_json_object, write_bytes

__all__ = [
    "Tolerance",
    "Drift",
    "RegressResult",
    "DEFAULT_TOLERANCES",
    "VERDICT_COLUMNS",
    "parse_tolerance",
    "tolerance_for",
    "read_table",
    "compare_tables",
    "collect_verdicts",
    "compare_verdicts",
    "regress",
    "update_expected",
    "format_drift_table",
]

#: Columns of the expected verdicts file (``verdicts.csv`` beside the expected indices).
VERDICT_COLUMNS = ("patient", "site", "session", "reference", "index", "verdict")
#: Name of the expected verdicts file, looked up beside ``EXPECTED.csv``.
VERDICTS_NAME = "verdicts.csv"
#: The key column of ``indices.csv``.
KEY = "image"
#: Columns compared as categories (exact string match), whatever their content.
CATEGORICAL = frozenset({"status", "ita_category"})
#: Free-text columns: compared exactly, reported as ``text`` drift.
TEXT = frozenset({"error", "params_hash", "segment_method", "chromophore_method", "chromophore_branch_check"})
#: Columns not compared (they change with every release without changing any number).
IGNORED = frozenset({"skinimg_version"})


@dataclass(frozen=True)
class Tolerance:
    """A tolerance on one index or column.

    Attributes
    ----------
    value : float
        Absolute amount (in the column's unit) or relative fraction (0.02 = 2 %).
    relative : bool
        True for a relative tolerance, ``|got - expected| <= value * |expected|``.
    floor : float
        For a relative tolerance, the smallest absolute amount allowed (so that a
        value near zero, e.g. a 10th percentile of haemoglobin, does not get a
        tolerance of nothing): ``|got - expected| <= max(value * |expected|, floor)``.
    """

    value: float
    relative: bool = False
    floor: float = 0.0

    def allows(self, expected: float, got: float) -> bool:
        """Whether ``got`` is within tolerance of ``expected`` (both finite floats)."""
        limit = max(self.value * abs(expected), self.floor) if self.relative else self.value
        # a tiny slack for the decimal representation of the limit itself
        return abs(got - expected) <= limit + 1e-12 * max(1.0, abs(expected))

    def __str__(self) -> str:
        if self.relative:
            return f"±{self.value * 100:g}%" + (f" (min {self.floor:g})" if self.floor else "")
        return f"±{self.value:g}" if self.value else "exact"


#: Default tolerances per index (see README "Regression checks" for how they were measured).
#: Keys are index names (apply to ``X`` and ``X_*`` statistics) or full column names.
DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    # reflectance indices, 100*log10 scale (8-bit quantisation makes percentiles jump by up to ~0.8)
    "erythema_index": Tolerance(0.5),
    "melanin_index": Tolerance(1.5),
    # CIELAB (D65), ITA in degrees
    "l_star": Tolerance(0.3),
    "a_star": Tolerance(0.3),
    "b_star": Tolerance(0.3),
    "ita_deg": Tolerance(1.0),
    # chromophore concentrations (model volume fractions): relative, with an absolute floor near zero
    "hemoglobin": Tolerance(0.05, relative=True, floor=0.002),
    "melanin": Tolerance(0.03, relative=True, floor=0.005),
    "hemoglobin_variation_pct": Tolerance(0.10, relative=True, floor=2.0),
    "melanin_variation_pct": Tolerance(0.05, relative=True, floor=1.0),
    # fractions of the skin / image
    "skin_fraction": Tolerance(0.01),
    "red_area_fraction": Tolerance(0.01),
    "brown_spot_area_fraction": Tolerance(0.01),
    "ita_fraction": Tolerance(0.01),  # ita_fraction_<category>
    "saturated_fraction": Tolerance(0.005),
    "skin_pixels": Tolerance(0.02, relative=True, floor=1),
    # counts: spot detection near its threshold flips small spots in and out
    "brown_spot_count": Tolerance(0.2, relative=True, floor=2),
    # sizes must match exactly
    "width": Tolerance(0),
    "height": Tolerance(0),
}


@dataclass(frozen=True)
class Drift:
    """One difference between expected and actual results.

    Attributes
    ----------
    kind : str
        ``value`` (numeric difference beyond tolerance), ``category`` (e.g.
        ``ita_category`` changed), ``status`` (``ok``/``error`` changed), ``text``
        (error message changed), ``missing_value`` / ``extra_value`` (a cell is
        empty on one side only), ``missing_row`` / ``extra_row`` (an image or
        verdict present on one side only), ``missing_column`` / ``extra_column``,
        ``verdict`` (a comparison verdict changed), ``missing_file`` (no results
        to compare with).
    image : str
        The image (relative path) or, for verdicts, ``patient/site/session vs reference``.
    index : str
        The column or index concerned ("" for whole rows).
    expected, got : str
        The values as written in the files ("" when absent).
    tolerance : str
        The tolerance applied ("exact" when none).
    """

    kind: str
    image: str
    index: str
    expected: str = ""
    got: str = ""
    tolerance: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RegressResult:
    """Outcome of :func:`regress`: the drift records and what was compared."""

    drifts: list[Drift] = field(default_factory=list)
    images_compared: int = 0
    values_compared: int = 0
    verdicts_compared: int = 0
    verdicts_checked: bool = False

    @property
    def ok(self) -> bool:
        return not self.drifts


# ----------------------------------------------------------------------------- tolerances

_TOL_RE = re.compile(r"^\s*([A-Za-z0-9_]+)\s*=\s*([+-]?[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(%?)\s*$")


def parse_tolerance(text: str) -> tuple[str, Tolerance]:
    """Parse ``INDEX=ABS`` or ``INDEX=REL%`` into ``(name, Tolerance)``.

    Examples
    --------
    >>> parse_tolerance("erythema_index=0.5")
    ('erythema_index', Tolerance(value=0.5, relative=False))
    >>> parse_tolerance("hemoglobin=2.5%")
    ('hemoglobin', Tolerance(value=0.025, relative=True))

    Raises
    ------
    SkinImgError
        For anything else (missing ``=``, not a number, negative).
    """
    m = _TOL_RE.match(text or "")
    if not m:
        raise SkinImgError(
            f"bad tolerance {text!r}: expected INDEX=ABS (e.g. erythema_index=0.5) or INDEX=REL% (e.g. hemoglobin=2%)"
        )
    name, number, pct = m.groups()
    value = float(number)
    if value < 0 or not math.isfinite(value):
        raise SkinImgError(f"bad tolerance {text!r}: must be a non-negative number")
    return name, Tolerance(value / 100.0 if pct else value, relative=bool(pct))


def _stat_base(column: str, names: Iterable[str]) -> str | None:
    """The longest tolerance name ``X`` such that ``column`` is ``X_<suffix>``."""
    best = None
    for n in names:
        if column.startswith(n + "_") and (best is None or len(n) > len(best)):
            best = n
    return best


def tolerance_for(column: str, tolerances: Mapping[str, Tolerance]) -> Tolerance | None:
    """The tolerance applying to ``column``: exact column name first, then its index ``X`` of ``X_*``.

    Returns None when no tolerance applies (values must then match exactly).
    """
    if column in tolerances:
        return tolerances[column]
    base = _stat_base(column, tolerances)
    return tolerances[base] if base is not None else None


# ----------------------------------------------------------------------------- reading


def read_table(path: str | os.PathLike, *, label: str | None = None) -> tuple[list[str], list[dict[str, str]]]:
    """Read a CSV with a header into ``(columns, rows)``; cells stay strings."""
    shown = label or os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SkinImgError("file not found", shown) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SkinImgError(f"cannot read CSV ({exc})", shown) from None
    reader = csv.DictReader(_io.StringIO(text))
    columns = list(reader.fieldnames or [])
    if not columns:
        raise SkinImgError("empty CSV (no header)", shown)
    rows = [{k: (v if v is not None else "") for k, v in r.items() if k is not None} for r in reader]
    return columns, rows


def _num(cell: str) -> float | None:
    """Parse a cell as a finite float; None for empty, NaN or non-numeric."""
    if cell is None:
        return None
    s = str(cell).strip()
    if not s:
        return None
    try:
        v = float(s)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def _is_empty(cell: str) -> bool:
    s = (cell or "").strip().lower()
    return s in ("", "nan", "none", "null")


# ----------------------------------------------------------------------------- comparing tables


def compare_tables(
    expected: tuple[list[str], list[dict[str, str]]],
    got: tuple[list[str], list[dict[str, str]]],
    *,
    tolerances: Mapping[str, Tolerance] | None = None,
    key: str = KEY,
) -> tuple[list[Drift], int, int]:
    """Compare two ``indices.csv`` tables per image and column.

    Parameters
    ----------
    expected, got : (columns, rows)
        As returned by :func:`read_table`.
    tolerances : mapping, optional
        Index or column name -> :class:`Tolerance` (default :data:`DEFAULT_TOLERANCES`).
    key : str
        The column identifying a row (``image``).

    Returns
    -------
    (drifts, images_compared, values_compared)
    """
    tol = DEFAULT_TOLERANCES if tolerances is None else tolerances
    e_cols, e_rows = expected
    g_cols, g_rows = got
    drifts: list[Drift] = []
    for name, cols in (("expected", e_cols), ("results", g_cols)):
        if key not in cols:
            raise SkinImgError(f"{name} table has no {key!r} column")
    for c in e_cols:
        if c not in g_cols:
            drifts.append(Drift("missing_column", "*", c, "present", "", ""))
    for c in g_cols:
        if c not in e_cols:
            drifts.append(Drift("extra_column", "*", c, "", "present", ""))
    shared = [c for c in e_cols if c in g_cols and c != key and c not in IGNORED]
    def row_key(r):  # a photo with named ROI regions has one row per region: "image [region]"
        return r[key] + (f" [{r['region']}]" if r.get("region") else "")
    e_map = {row_key(r): r for r in e_rows}
    g_map = {row_key(r): r for r in g_rows}
    n_images = n_values = 0
    for img, er in e_map.items():
        gr = g_map.get(img)
        if gr is None:
            drifts.append(Drift("missing_row", img, "", "present", "", ""))
            continue
        n_images += 1
        e_status, g_status = er.get("status", ""), gr.get("status", "")
        if e_status != g_status:
            drifts.append(Drift("status", img, "status", e_status, g_status, "exact"))
        for c in shared:
            if c == "status":
                continue
            ev, gv = er.get(c, ""), gr.get(c, "")
            n_values += 1
            d = _compare_cell(img, c, ev, gv, tol)
            # a status change is reported once, not again as a changed message and emptied cells
            if d is not None and not (e_status != g_status and (c in TEXT or _is_empty(ev) or _is_empty(gv))):
                drifts.append(d)
    for img in g_map:
        if img not in e_map:
            drifts.append(Drift("extra_row", img, "", "", "present", ""))
    return drifts, n_images, n_values


def _compare_cell(img: str, column: str, ev: str, gv: str, tol: Mapping[str, Tolerance]) -> Drift | None:
    if column in TEXT:
        return None if ev == gv else Drift("text", img, column, ev, gv, "exact")
    if column in CATEGORICAL:
        return None if ev == gv else Drift("category", img, column, ev, gv, "exact")
    e_empty, g_empty = _is_empty(ev), _is_empty(gv)
    if e_empty and g_empty:
        return None
    t = tolerance_for(column, tol)
    t_text = str(t) if t is not None else "exact"
    if e_empty:
        return Drift("extra_value", img, column, ev, gv, t_text)
    if g_empty:
        return Drift("missing_value", img, column, ev, gv, t_text)
    en, gn = _num(ev), _num(gv)
    if en is None or gn is None:  # text in a column: exact match
        return None if ev == gv else Drift("category", img, column, ev, gv, "exact")
    if t is None:
        return None if en == gn else Drift("value", img, column, ev, gv, "exact")
    return None if t.allows(en, gn) else Drift("value", img, column, ev, gv, t_text)


# ----------------------------------------------------------------------------- verdicts


def _verdict_rows_from_comparison(doc: dict, patient: str, site: str, session: str, reference: str) -> list[dict]:
    rows = []
    for index, m in sorted((doc.get("metrics") or {}).items()):
        if isinstance(m, dict) and "verdict" in m:
            rows.append(
                {"patient": patient, "site": site, "session": session, "reference": reference,
                 "index": index, "verdict": str(m.get("verdict") or "")}
            )
    return rows


def collect_verdicts(results: str | os.PathLike) -> list[dict] | None:
    """Collect comparison verdicts from a results folder as rows of :data:`VERDICT_COLUMNS`.

    Looked up in this order (the first found wins):

    1. ``DIR/pairs/<patient>/<site>/<reference>__<session>/comparison.json`` (``skinimg track``);
    2. ``DIR/series.csv`` with a ``verdict`` column (``skinimg track``): rows keyed by
       patient, site, session, index and the reference session (column ``reference``, or
       ``baseline``/``previous`` session columns);
    3. ``DIR/comparison.json`` (``skinimg compare``): patient and site empty, session =
       the after image, reference = the before image.

    Returns None when the folder holds no comparison at all.
    """
    root = Path(results)
    pair_files = sorted((root / "pairs").glob("*/*/*/comparison.json")) if (root / "pairs").is_dir() else []
    if pair_files:
        rows: list[dict] = []
        for f in pair_files:
            rel = f.relative_to(root / "pairs").parts
            patient, site, pair = rel[0], rel[1], rel[2]
            reference, _, session = pair.partition("__")
            doc = read_json_object(f, f.relative_to(root).as_posix())
            rows += _verdict_rows_from_comparison(doc, patient, site, session, reference)
        return _sorted_verdicts(rows)
    series = root / "series.csv"
    if series.is_file():
        cols, srows = read_table(series, label="series.csv")
        if "verdict" in cols:
            return _sorted_verdicts(_verdicts_from_series(cols, srows))
    single = root / "comparison.json"
    if single.is_file():
        doc = read_json_object(single, "comparison.json")
        return _sorted_verdicts(
            _verdict_rows_from_comparison(doc, "", "", str(doc.get("after", "")), str(doc.get("before", "")))
        )
    return None


def _verdicts_from_series(cols: list[str], srows: list[dict]) -> list[dict]:
    rows = []
    for r in srows:
        ref = r.get("reference", "")
        # series.csv may name the reference by kind (baseline/previous) plus a session column
        for c in ("reference_session", "ref_session", "baseline_session"):
            if r.get(c):
                ref = r[c] if not ref or ref in ("baseline", "previous") else ref
                break
        rows.append(
            {"patient": r.get("patient", ""), "site": r.get("site", ""), "session": r.get("session", ""),
             "reference": ref, "index": r.get("index", ""), "verdict": r.get("verdict", "")}
        )
    return rows


def _sorted_verdicts(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda r: tuple(r[c] for c in VERDICT_COLUMNS[:5]))


def _verdict_key(r: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(r.get(c, "") for c in VERDICT_COLUMNS[:5])


def _verdict_label(k: tuple[str, ...]) -> str:
    patient, site, session, reference, _ = k
    where = "/".join(x for x in (patient, site, session) if x)
    return f"{where} vs {reference}" if reference else where


def compare_verdicts(expected: Sequence[Mapping[str, str]], got: Sequence[Mapping[str, str]]) -> tuple[list[Drift], int]:
    """Compare verdict rows (:data:`VERDICT_COLUMNS`); return ``(drifts, verdicts_compared)``."""
    e_map = {_verdict_key(r): r.get("verdict", "") for r in expected}
    g_map = {_verdict_key(r): r.get("verdict", "") for r in got}
    drifts = []
    n = 0
    for k, ev in e_map.items():
        if k not in g_map:
            drifts.append(Drift("missing_row", _verdict_label(k), k[4], ev, "", "exact"))
            continue
        n += 1
        if g_map[k] != ev:
            drifts.append(Drift("verdict", _verdict_label(k), k[4], ev, g_map[k], "exact"))
    for k, gv in g_map.items():
        if k not in e_map:
            drifts.append(Drift("extra_row", _verdict_label(k), k[4], "", gv, "exact"))
    return drifts, n


# ----------------------------------------------------------------------------- the check


def verdicts_path(expected: str | os.PathLike) -> Path:
    """The expected verdicts file beside ``expected`` (``<folder>/verdicts.csv``)."""
    return Path(expected).with_name(VERDICTS_NAME)


def regress(
    expected: str | os.PathLike,
    results: str | os.PathLike,
    *,
    tolerances: Mapping[str, Tolerance] | None = None,
    exact: bool = False,
) -> RegressResult:
    """Compare ``results/indices.csv`` (and verdicts) with the expected files.

    Parameters
    ----------
    expected : path
        The expected ``indices.csv``.  An expected verdicts file ``verdicts.csv``
        beside it, when present, is compared with the verdicts of ``results``
        (see :func:`collect_verdicts`).
    results : path
        A results folder written by ``skinimg analyze`` (and ``track``/``compare``).
    tolerances : mapping, optional
        Overrides merged over :data:`DEFAULT_TOLERANCES`.
    exact : bool
        Ignore all tolerances: report every value that differs at all (what
        ``--update`` prints as changed).

    Returns
    -------
    RegressResult
        ``drifts`` is empty when everything is within tolerance.

    Raises
    ------
    SkinImgError
        When the expected file or the results folder cannot be read.
    """
    tol = {} if exact else {**DEFAULT_TOLERANCES, **(tolerances or {})}
    results = Path(results)
    if not results.is_dir():
        raise SkinImgError("results folder not found", os.fspath(results))
    out = RegressResult()
    exp_table = read_table(expected)
    got_path = results / "indices.csv"
    if not got_path.is_file():
        out.drifts.append(Drift("missing_file", "indices.csv", "", "present", "", ""))
    else:
        drifts, out.images_compared, out.values_compared = compare_tables(
            exp_table, read_table(got_path, label=os.fspath(got_path)), tolerances=tol
        )
        out.drifts += drifts
    vpath = verdicts_path(expected)
    if vpath.is_file():
        out.verdicts_checked = True
        _, e_verdicts = read_table(vpath)
        got_verdicts = collect_verdicts(results)
        if got_verdicts is None:
            out.drifts.append(Drift("missing_file", "series.csv / comparison.json", "", "present", "", ""))
        else:
            drifts, out.verdicts_compared = compare_verdicts(e_verdicts, got_verdicts)
            out.drifts += drifts
    return out


def _csv_text(columns: Sequence[str], rows: Iterable[Mapping[str, str]]) -> str:
    buf = _io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({c: r.get(c, "") for c in columns})
    return buf.getvalue()


def update_expected(
    expected: str | os.PathLike,
    results: str | os.PathLike,
    *,
    verdicts: bool | None = None,
) -> list[Path]:
    """Rewrite the expected file(s) from ``results`` atomically; return the paths written.

    ``indices.csv`` is copied byte for byte (its rows are the new expected values).
    The verdicts file is written when ``verdicts`` is True, or (``None``) when it
    already exists or the results hold comparisons.  Call :func:`regress` first to
    show what changes.
    """
    results = Path(results)
    src = results / "indices.csv"
    if not src.is_file():
        raise SkinImgError("no indices.csv in the results folder (run `skinimg analyze` first)", os.fspath(results))
    written = [write_bytes(expected, src.read_bytes())]
    got_verdicts = collect_verdicts(results)
    vpath = verdicts_path(expected)
    want = verdicts if verdicts is not None else (vpath.is_file() or got_verdicts is not None)
    if want:
        if got_verdicts is None:
            raise SkinImgError("no comparison verdicts in the results folder (run `skinimg track` first)", os.fspath(results))
        written.append(write_bytes(vpath, _csv_text(VERDICT_COLUMNS, got_verdicts).encode("utf-8")))
    return written


# ----------------------------------------------------------------------------- formatting


def format_drift_table(drifts: Sequence[Drift], *, max_width: int = 48) -> str:
    """A fixed-width text table ``image | index | expected | got | tolerance | kind``."""
    head = ("image", "index", "expected", "got", "tolerance", "kind")

    def cut(s: str) -> str:
        s = str(s).replace("\n", " ")
        return s if len(s) <= max_width else s[: max_width - 1] + "…"

    rows = [head] + [tuple(cut(x) for x in (d.image, d.index, d.expected, d.got, d.tolerance, d.kind)) for d in drifts]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(r[i].ljust(widths[i]) for i in range(len(head))).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)

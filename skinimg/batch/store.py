"""Results tables: SQLite store (upsert by key), CSV and Parquet exports.

Generic on purpose: a table name, a list of dict rows and a column list, so every
stage (analyze, compare, batch) stores its rows the same way.

SQLite (``results.sqlite``)
    WAL journal mode; one writer at a time (callers write from one process, the
    pool workers only return rows); each call is one transaction.  Rows are
    **upserted** on a key column (``image`` by default) or columns (``image, region``):
    a rerun replaces the row of an image, never duplicates it.  Columns are created on first use from the
    column list (types from ``types`` or inferred from the values: ``INTEGER``,
    ``REAL``, ``TEXT``) and new columns are added to an existing table.  NaN and
    infinities are stored as NULL.

CSV
    :func:`skinimg.io.write_csv` (UTF-8, header, NaN as empty cell, floats with full
    precision, atomic).

Parquet
    pyarrow (optional extra ``parquet``: ``pip install 'skinimg[parquet]'``);
    column types inferred like SQLite's (float64, int64, string, bool); atomic.
"""

from __future__ import annotations

import io as _io
import math
import os
import re
import sqlite3
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from ..errors import SkinImgError
from ..io import write_bytes, write_csv

__all__ = ["ResultStore", "upsert_rows", "read_rows", "export_csv", "export_parquet", "require_parquet", "infer_types",
           "SQLITE_NAME"]

SQLITE_NAME = "results.sqlite"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _ident(name: str) -> str:
    if not _IDENT.match(name):
        raise ValueError(f"invalid SQL identifier {name!r} (letters, digits and _ only)")
    return f'"{name}"'


def _value(v):
    """Python value for SQLite/Parquet: NumPy scalars unwrapped, NaN/inf -> None."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def infer_types(rows: Sequence[Mapping], columns: Sequence[str]) -> dict[str, str]:
    """SQL type per column from the first non-missing value: INTEGER, REAL or TEXT.

    bool -> INTEGER, int -> INTEGER (REAL if another row has a float), float -> REAL,
    anything else -> TEXT; a column with only missing values is REAL.
    """
    types: dict[str, str] = {}
    for c in columns:
        t = None
        for r in rows:
            v = _value(r.get(c))
            if v is None:
                continue
            if isinstance(v, (bool, int)):
                t = t or "INTEGER"
            elif isinstance(v, float):
                t = "REAL" if t in (None, "INTEGER", "REAL") else t
            else:
                t = "TEXT"
                break
        types[c] = t or "REAL"
    return types


def _connect(path: Path, timeout: float) -> sqlite3.Connection:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(os.fspath(path), timeout=timeout, isolation_level=None)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
    except (sqlite3.Error, OSError) as exc:
        raise SkinImgError(f"cannot open results database ({exc})", os.fspath(path)) from None
    return con


def _keys(key: str | Sequence[str]) -> list[str]:
    return [key] if isinstance(key, str) else list(key)


def _create(con: sqlite3.Connection, qt: str, columns: list, keys: list, types: Mapping[str, str]) -> None:
    if len(keys) == 1:
        defs = [f"{_ident(c)} {types[c]}" + (" PRIMARY KEY NOT NULL" if c == keys[0] else "") for c in columns]
    else:  # a composite key (image, region): text parts default to "" so that rows of an older table fit
        defs = [f"{_ident(c)} {types[c]}" + (" NOT NULL DEFAULT ''" if c in keys else "") for c in columns]
        defs.append(f"PRIMARY KEY ({', '.join(_ident(k) for k in keys)})")
    con.execute(f"CREATE TABLE {qt} ({', '.join(defs)})")


def _upsert(con: sqlite3.Connection, path: Path, table: str, rows: list, columns: list, key: str | Sequence[str],
            types: Mapping[str, str] | None, replace_by: str | None = None) -> None:
    """Create/extend ``table`` and upsert ``rows`` (inside the caller's transaction).

    A table written by an older version with another primary key (``image`` where ``(image, region)`` is asked)
    is rebuilt with the new key, its rows kept.  ``replace_by``: first delete the stored rows whose value in that
    column is one of the new rows' (a photo's rows replaced as a whole).
    """
    keys = _keys(key)
    for k in keys:
        if k not in columns:
            raise ValueError(f"key column {k!r} is not in columns")
    types = {**infer_types(rows, columns), **(types or {})}
    qt = _ident(table)
    info = list(con.execute(f"PRAGMA table_info({qt})"))
    existing = [r[1] for r in info]
    if not existing:
        _create(con, qt, columns, keys, types)
    else:
        if keys[0] not in existing:
            raise SkinImgError(f"table {table} has no column {keys[0]}", os.fspath(path))
        stored_key = [r[1] for r in sorted((r for r in info if r[5]), key=lambda r: r[5])]
        if stored_key != keys:
            old = _ident(f"{table}__old")
            con.execute(f"ALTER TABLE {qt} RENAME TO {old}")
            _create(con, qt, existing + [c for c in columns if c not in existing], keys,
                    {**{r[1]: r[2] or "REAL" for r in info}, **types})
            cols = ", ".join(_ident(c) for c in existing)
            con.execute(f"INSERT INTO {qt} ({cols}) SELECT {cols} FROM {old}")
            con.execute(f"DROP TABLE {old}")
            existing = [r[1] for r in con.execute(f"PRAGMA table_info({qt})")]
        for c in columns:
            if c not in existing:
                con.execute(f"ALTER TABLE {qt} ADD COLUMN {_ident(c)} {types[c]}")
    if replace_by is not None:
        con.executemany(f"DELETE FROM {qt} WHERE {_ident(replace_by)}=?",
                        [(v,) for v in sorted({_value(r.get(replace_by)) for r in rows}, key=str)])
    cols = ", ".join(_ident(c) for c in columns)
    marks = ", ".join("?" for _ in columns)
    conflict = ", ".join(_ident(k) for k in keys)
    updates = (", ".join(f"{_ident(c)}=excluded.{_ident(c)}" for c in columns if c not in keys)
               or f"{_ident(keys[0])}=excluded.{_ident(keys[0])}")
    sql = f"INSERT INTO {qt} ({cols}) VALUES ({marks}) ON CONFLICT({conflict}) DO UPDATE SET {updates}"
    con.executemany(sql, [tuple(_value(r.get(c)) for c in columns) for r in rows])


class ResultStore:
    """The single writer of a ``results.sqlite``: several tables updated in one transaction.

    Used by :mod:`skinimg.batch`, whose parent process writes every result (row of a
    stage table and the job record) in one transaction, so a ``kill -9`` leaves either
    all of a result or none of it.

    Examples
    --------
    >>> with ResultStore(path) as st, st.transaction():          # doctest: +SKIP
    ...     st.upsert("indices", [row], ROW_COLUMNS, types=ROW_TYPES)
    ...     st.upsert("jobs", [job], JOB_COLUMNS)
    """

    def __init__(self, db_path: str | os.PathLike, *, timeout: float = 30.0):
        self.path = Path(db_path)
        self.con = _connect(self.path, timeout)

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()

    @contextmanager
    def transaction(self):
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolled back on any exception."""
        con = self.con
        try:
            con.execute("BEGIN IMMEDIATE")
            yield self
            con.execute("COMMIT")
        except sqlite3.Error as exc:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise SkinImgError(f"cannot write results database ({exc})", os.fspath(self.path)) from None
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise

    def upsert(self, table: str, rows: Iterable[Mapping], columns: Sequence[str], *,
               key: str | Sequence[str] = "image", types: Mapping[str, str] | None = None,
               replace_by: str | None = None) -> int:
        """Insert or replace ``rows`` keyed by ``key`` (as :func:`upsert_rows`), inside :meth:`transaction`."""
        rows = list(rows)
        _upsert(self.con, self.path, table, rows, list(columns), key, types, replace_by)
        return len(rows)

    def delete_except(self, table: str, key: str, keep: Iterable[str]) -> int:
        """Delete the rows of ``table`` whose ``key`` is not in ``keep`` (inside :meth:`transaction`)."""
        qt, qk = _ident(table), _ident(key)
        if not self.con.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (table,)).fetchone():
            return 0
        keep = set(keep)
        gone = [k for (k,) in self.con.execute(f"SELECT {qk} FROM {qt}") if k not in keep]
        self.con.executemany(f"DELETE FROM {qt} WHERE {qk}=?", [(k,) for k in gone])
        return len(gone)

    def rows(self, table: str, *, order_by: str | None = "image") -> list[dict]:
        """All rows of ``table`` as dicts (NULL -> None); ``[]`` when the table does not exist."""
        if not self.con.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (table,)).fetchone():
            return []
        cur = self.con.execute(f"SELECT * FROM {_ident(table)}" + (f" ORDER BY {_ident(order_by)}" if order_by else ""))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur]


def upsert_rows(db_path: str | os.PathLike, table: str, rows: Iterable[Mapping], columns: Sequence[str], *,
                key: str | Sequence[str] = "image", types: Mapping[str, str] | None = None, timeout: float = 30.0,
                replace_by: str | None = None) -> int:
    """Insert or replace rows keyed by ``key`` in ``table`` of the SQLite file ``db_path``.

    Parameters
    ----------
    db_path : path-like
        Created (WAL mode) if missing.
    table : str
        Table name (letters, digits, underscore).
    rows : iterable of dict
        Missing keys and NaN are stored as NULL; keys not in ``columns`` are ignored.
    columns : sequence of str
        Column order; must contain ``key``.
    key : str or sequence of str
        Primary-key column(s): a row whose key exists replaces the stored values (``("image", "region")``: a
        photo's whole skin and its ROI regions).
    types : dict, optional
        SQL type per column (default :func:`infer_types`).
    timeout : float
        Seconds to wait for another writer's lock.
    replace_by : str, optional
        First delete every stored row whose value in this column is one of the new rows' (e.g. ``"image"``: a
        region no longer in a photo's ROI file does not stay behind).

    Returns
    -------
    int: number of rows written.
    """
    rows = list(rows)
    columns = list(columns)
    for k in _keys(key):
        if k not in columns:
            raise ValueError(f"key column {k!r} is not in columns")
    with ResultStore(db_path, timeout=timeout) as st, st.transaction():
        st.upsert(table, rows, columns, key=key, types=types, replace_by=replace_by)
    return len(rows)


def read_rows(db_path: str | os.PathLike, table: str, *, order_by: str | None = "image") -> list[dict]:
    """All rows of ``table`` as dicts (NULL -> None), ordered by ``order_by``."""
    path = Path(db_path)
    if not path.is_file():
        raise SkinImgError("results database not found", os.fspath(path))
    with closing(sqlite3.connect(os.fspath(path))) as con:
        con.row_factory = sqlite3.Row
        try:
            sql = f"SELECT * FROM {_ident(table)}" + (f" ORDER BY {_ident(order_by)}" if order_by else "")
            return [dict(r) for r in con.execute(sql)]
        except sqlite3.Error as exc:
            raise SkinImgError(f"cannot read table {table} ({exc})", os.fspath(path)) from None


def export_csv(path: str | os.PathLike, rows: Iterable[Mapping], columns: Sequence[str]) -> Path:
    """Rows as CSV (see :func:`skinimg.io.write_csv`), atomically."""
    return write_csv(path, rows, columns)


def require_parquet(source: str | os.PathLike | None = None) -> None:
    """Refuse Parquet output before any work when pyarrow is not installed (one line naming ``source``).

    Raises
    ------
    SkinImgError
        ``Parquet export needs pyarrow: pip install 'skinimg[parquet]'``.
    """
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise SkinImgError("Parquet export needs pyarrow: pip install 'skinimg[parquet]'",
                           None if source is None else os.fspath(source)) from None


def export_parquet(path: str | os.PathLike, rows: Iterable[Mapping], columns: Sequence[str], *,
                   types: Mapping[str, str] | None = None) -> Path:
    """Rows as a Parquet file (pyarrow), atomically; NaN -> null.

    Raises
    ------
    SkinImgError
        When pyarrow is not installed (``pip install 'skinimg[parquet]'``).
    """
    require_parquet(path)
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = list(rows)
    columns = list(columns)
    types = {**infer_types(rows, columns), **(types or {})}
    pa_type = {"INTEGER": pa.int64(), "REAL": pa.float64(), "TEXT": pa.string()}
    arrays = []
    for c in columns:
        vals = [_value(r.get(c)) for r in rows]
        t = pa_type[types[c]]
        if types[c] == "TEXT":
            vals = [None if v is None else str(v) for v in vals]
        elif types[c] == "REAL":
            vals = [None if v is None else float(v) for v in vals]
        arrays.append(pa.array(vals, type=t))
    table = pa.Table.from_arrays(arrays, names=columns)
    buf = _io.BytesIO()
    pq.write_table(table, buf)
    return write_bytes(path, buf.getvalue())

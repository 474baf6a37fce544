"""The results store: SQLite upsert (no duplicates on rerun), CSV and Parquet exports."""

from __future__ import annotations

import csv
import sqlite3

import numpy as np
import pytest

from skinimg.batch import store
from skinimg.errors import SkinImgError

COLS = ["image", "status", "value", "count", "note"]


def _rows():
    return [
        {"image": "b.jpg", "status": "ok", "value": 1.25, "count": 3, "note": None},
        {"image": "a.jpg", "status": "ok", "value": np.float32(0.5), "count": np.int64(2), "note": "x"},
        {"image": "c.jpg", "status": "error", "value": float("nan"), "count": None, "note": "bad file"},
    ]


def test_upsert_creates_table_and_rerun_replaces_rows(tmp_path):
    db = tmp_path / "results.sqlite"
    assert store.upsert_rows(db, "indices", _rows(), COLS) == 3
    first = store.read_rows(db, "indices")
    assert [r["image"] for r in first] == ["a.jpg", "b.jpg", "c.jpg"]
    assert first[0]["value"] == 0.5 and first[0]["count"] == 2
    assert first[2]["value"] is None and first[2]["count"] is None  # NaN -> NULL

    changed = [dict(r) for r in _rows()]
    changed[0]["value"] = 9.0
    changed.append({"image": "d.jpg", "status": "ok", "value": 4.0, "count": 1, "note": None})
    store.upsert_rows(db, "indices", changed, COLS)
    rows = store.read_rows(db, "indices")
    assert [r["image"] for r in rows] == ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]  # no duplicates
    assert rows[1]["value"] == 9.0
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert con.execute("SELECT COUNT(*) FROM indices").fetchone()[0] == 4
        types = {r[1]: r[2] for r in con.execute("PRAGMA table_info(indices)")}
    assert types == {"image": "TEXT", "status": "TEXT", "value": "REAL", "count": "INTEGER", "note": "TEXT"}


def test_upsert_adds_new_columns_to_existing_table(tmp_path):
    db = tmp_path / "r.sqlite"
    store.upsert_rows(db, "t", _rows(), COLS)
    store.upsert_rows(db, "t", [{"image": "a.jpg", "status": "ok", "extra": 7.5}], ["image", "status", "extra"])
    rows = {r["image"]: r for r in store.read_rows(db, "t")}
    assert rows["a.jpg"]["extra"] == 7.5 and rows["b.jpg"]["extra"] is None
    assert rows["a.jpg"]["value"] == 0.5  # columns not in this write are kept


def test_explicit_types_and_key_validation(tmp_path):
    db = tmp_path / "r.sqlite"
    store.upsert_rows(db, "t", [{"image": "a", "note": None}], ["image", "note"], types={"note": "TEXT"})
    with sqlite3.connect(db) as con:
        assert {r[1]: r[2] for r in con.execute("PRAGMA table_info(t)")}["note"] == "TEXT"
    with pytest.raises(ValueError):
        store.upsert_rows(db, "t", [{"x": 1}], ["x"])
    with pytest.raises(ValueError):
        store.upsert_rows(db, "bad name;", [{"image": "a"}], ["image"])


def test_unwritable_database_is_a_skinimg_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SkinImgError):
        store.upsert_rows(blocker / "r.sqlite", "t", [{"image": "a"}], ["image"])
    with pytest.raises(SkinImgError, match="not found"):
        store.read_rows(tmp_path / "missing.sqlite", "t")


def test_csv_export_round_trips_floats_exactly(tmp_path):
    rows = [{"image": "a", "status": "ok", "value": 0.1 + 0.2, "count": 3, "note": "x,y"}] + _rows()[2:]
    p = store.export_csv(tmp_path / "t.csv", rows, COLS)
    with open(p, newline="", encoding="utf-8") as fh:
        got = list(csv.DictReader(fh))
    assert list(got[0]) == COLS
    assert float(got[0]["value"]) == 0.1 + 0.2 and got[0]["note"] == "x,y"
    assert got[1]["value"] == "" and got[1]["count"] == ""


def test_parquet_export_types_and_nulls(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    p = store.export_parquet(tmp_path / "t.parquet", _rows(), COLS)
    t = pq.read_table(p)
    assert t.column_names == COLS
    assert str(t.schema.field("value").type) == "double" and str(t.schema.field("count").type) == "int64"
    d = t.to_pylist()
    assert d[1]["value"] == 0.5 and d[2]["value"] is None and d[2]["note"] == "bad file"


def test_parquet_without_pyarrow_is_a_clear_error(tmp_path, monkeypatch):
    import builtins

    real = builtins.__import__

    def fake(name, *a, **k):
        if name.startswith("pyarrow"):
            raise ImportError("no pyarrow")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(SkinImgError, match=r"skinimg\[parquet\]"):
        store.export_parquet(tmp_path / "t.parquet", _rows(), COLS)
    assert not (tmp_path / "t.parquet").exists()


def test_infer_types():
    t = store.infer_types([{"a": 1, "b": None, "c": "x", "d": 1}, {"a": 2, "d": 2.5}], ["a", "b", "c", "d"])
    assert t == {"a": "INTEGER", "b": "REAL", "c": "TEXT", "d": "REAL"}

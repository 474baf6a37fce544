"""Hypothesis fuzzing of the commands (issue 9): random bytes and random small images through the CLI.

Bounded (25 examples per test) so that ``make test`` stays fast; ``benchmarks/fuzz_cli.py``
(``make fuzz``) runs the same property on thousands of inputs.
"""

from __future__ import annotations

import csv
import math
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings, strategies as st

from skinimg.cli import cli


EXTS = [".jpg", ".png", ".tif", ".bmp", ".webp"]
_MAGIC = {".png": b"\x89PNG\r\n\x1a\n", ".jpg": b"\xff\xd8\xff", ".tif": b"II*\x00", ".bmp": b"BM", ".webp": b"RIFF"}


def random_file(kind: str, data: bytes, ext: str, h: int, w: int, seed: int, bits16: bool) -> bytes:
    """Bytes of one fuzz input: raw bytes, bytes behind a real signature, or a random small image."""
    if kind == "bytes":
        return data
    if kind == "magic":
        return _MAGIC[ext] + data
    rng = np.random.default_rng(seed)
    bits16 = bits16 and ext in (".png", ".tif")
    a = rng.integers(0, 65536 if bits16 else 256, size=(h, w, 3), dtype=np.uint16 if bits16 else np.uint8)
    if kind == "skinny":  # mostly skin-coloured so that the indices are computed
        base = np.array([224, 172, 150]) * (257 if bits16 else 1)
        a = np.clip(base + (a.astype(np.int64) % 17) * (257 if bits16 else 1), 0, 65535 if bits16 else 255).astype(a.dtype)
    ok, buf = cv2.imencode(ext, cv2.cvtColor(a, cv2.COLOR_RGB2BGR))
    assert ok
    out = buf.tobytes()
    if kind == "cut":  # a valid image cut short
        out = out[: max(1, (len(out) * (seed % 97 + 1)) // 100)]
    return out


file_strategy = st.tuples(
    st.sampled_from(["bytes", "magic", "image", "skinny", "cut"]),
    st.binary(min_size=0, max_size=512),
    st.sampled_from(EXTS),
    st.integers(1, 48), st.integers(1, 48), st.integers(0, 2**16), st.booleans(),
)


def check_cli_on(files: list[tuple], command: str) -> dict[str, str]:
    """Write ``files`` to a fresh folder, run ``skinimg <command>`` on it; assert the contract; return statuses."""
    tmp = Path(tempfile.mkdtemp(prefix="skinimg-fuzz-"))
    try:
        src = tmp / "in"
        src.mkdir()
        names = []
        for k, spec in enumerate(files):
            name = f"f{k}{spec[2]}"
            (src / name).write_bytes(random_file(*spec))
            names.append(name)
        out = tmp / "out"
        argv = [command, str(src), "--out", str(out)]
        if command == "analyze":
            argv += ["--workers", "1", "--no-maps"]
        r = CliRunner().invoke(cli, argv)
        if r.exception is not None and not isinstance(r.exception, SystemExit):
            raise r.exception
        assert r.exit_code in (0, 2), (r.exit_code, r.stderr)
        assert "Traceback" not in r.stderr and str(src) not in r.stderr
        table = {"analyze": "indices.csv", "calibrate": "calibrate.csv"}.get(command)
        statuses = {}
        if table:
            with open(out / table, newline="", encoding="utf-8") as fh:
                rows = {row["image"]: row for row in csv.DictReader(fh)}
            assert sorted(rows) == sorted(names)
            for name, row in rows.items():
                statuses[name] = row["status"]
                lines = [l for l in r.stderr.splitlines() if l.startswith(f"skinimg: {name}: ")]
                if row["status"] == "ok":
                    assert not lines
                    if command == "analyze":
                        assert math.isfinite(float(row["erythema_index"])) and math.isfinite(float(row["l_star"]))
                else:
                    assert len(lines) == 1 and row["error"] and row["error"] in lines[0], (name, r.stderr)
            assert (r.exit_code == 0) == all(s == "ok" for s in statuses.values())
        return statuses
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files=st.lists(file_strategy, min_size=1, max_size=3))
def test_fuzz_analyze_cli(files):
    check_cli_on(files, "analyze")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files=st.lists(file_strategy, min_size=1, max_size=3))
def test_fuzz_segment_or_calibrate_cli(files):
    check_cli_on(files, "segment" if "segment" in cli.commands else "calibrate")

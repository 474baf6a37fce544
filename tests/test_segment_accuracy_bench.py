"""benchmarks/segment_accuracy.py --plan: the photos are exactly those `skinimg synth` writes."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from skinimg import segment as S
from skinimg.cli import cli

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import segment_accuracy as SA  # noqa: E402


def test_plan_specs_are_what_skinimg_synth_writes(tmp_path):
    for seed in (600000, 600001):
        r = CliRunner().invoke(cli, ["synth", "--set", "grid", "--n", "2", "--seed", str(seed), "--out",
                                     str(tmp_path / str(seed)), "--no-maps"])
        assert r.exit_code == 0, r.output
    written = [json.loads(p.read_text())["spec"]
               for seed in (600000, 600001) for p in sorted((tmp_path / str(seed) / "truth" / "grid").glob("*.json"))]
    planned = [s.to_dict() for s in SA.plan_specs("grid", 2, 2, 600000)]
    assert len(planned) == 8
    assert json.loads(json.dumps(planned)) == written


def test_plan_image_is_the_written_jpeg_as_load_image_reads_it(tmp_path):
    import numpy as np

    from skinimg.io import load_image

    r = CliRunner().invoke(cli, ["synth", "--set", "ladder", "--n", "2", "--seed", "600000", "--out", str(tmp_path),
                                 "--no-maps"])
    assert r.exit_code == 0, r.output
    for k, spec in enumerate(SA.plan_specs("ladder", 2, 1, 600000)):
        image, ph = SA.plan_image(spec, 90)
        written = load_image(tmp_path / "ladder" / f"tone_{k + 1:02d}.jpg")[0]
        assert np.array_equal(image, written)
        assert not np.array_equal(image, ph.image)  # the JPEG round trip did change pixels


def test_plan_argument():
    assert SA._plan_arg("ladder:60") == ("ladder", 60, 1)
    assert SA._plan_arg("grid:8:4") == ("grid", 8, 4)
    for bad in ("ladder", "ladder:x", "samples:3", "nope:3", "grid:0", "grid:8:0", "grid:8:4:1"):
        with pytest.raises(argparse.ArgumentTypeError):
            SA._plan_arg(bad)


def test_photo_distribution_counts_the_failing_photos():
    # three dark photos: two good (F1 0.98, 0.96) and one failure (F1 0.5) that holds most of the wrong pixels
    rows = [{"group": "dark", "model": [98, 2, 2, 0]}, {"group": "dark", "model": [96, 4, 4, 0]},
            {"group": "dark", "model": [50, 0, 100, 0]}, {"group": "light", "model": [10, 0, 0, 0]}]
    d = SA.photo_distribution(rows, "model")
    assert set(d) == {"dark", "light", "all"}
    assert d["dark"]["n_images"] == 3 and d["all"]["n_images"] == 4
    assert d["dark"]["median"] == pytest.approx(0.96) and d["light"]["median"] == 1.0
    assert d["dark"]["below"] == 1 and d["all"]["below"] == 1
    assert d["dark"]["below_error_share"] == pytest.approx(100 / 112)
    # 10th percentile of (0.5, 0.96, 0.98) by linear interpolation: 0.5 + 0.2 * 0.46
    assert d["dark"]["p10"] == pytest.approx(0.592)
    assert d["light"]["below"] == 0 and d["light"]["below_error_share"] == 0.0


def test_check_flag_counts_failed_and_good_masks_flagged():
    rows = [{"group": "dark", "model": [50, 0, 100, 0], "agreement": 0.5},  # failed, flagged
            {"group": "dark", "model": [50, 0, 100, 0], "agreement": 0.95},  # failed, missed
            {"group": "dark", "model": [98, 1, 1, 0], "agreement": 0.84},  # good, false alarm
            {"group": "light", "model": [98, 1, 1, 0], "agreement": 0.85}]  # good, not flagged (0.85 is not below)
    c = SA.check_flag(rows, threshold=0.85)
    assert c["dark"] == [2, 1, 1, 1] and c["light"] == [0, 0, 1, 0] and c["all"] == [2, 1, 2, 1]
    assert SA.check_flag(rows) == SA.check_flag(rows, threshold=S.AGREEMENT_MIN)  # the library's threshold
    assert SA.check_flag(rows, threshold=0.96)["dark"] == [2, 2, 1, 1]

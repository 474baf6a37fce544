"""Every benchmark that finishes in minutes: what ``make bench`` runs.

    .venv/bin/python benchmarks/run_all.py [--out bench-results] [--size full|small] [--only NAME ...]

1. ``skinimg bench --suite all --preset full --out bench-results`` (accuracy, repeatability,
   segmentation, speed: bench.json, bench.csv, plots, Markdown tables);
2. the quick scripts of ``benchmarks/``: ``chromophore_accuracy.py --part phantom`` (basis vs ICA, exposure) and
   ``--part bound`` (the best any colour index can read on the ensemble of optical models),
   ``bench_analyze.py`` (analyze vs decode on 12 MP), ``bench_startup.py`` (the command's fixed cost, per-photo
   cost against the decode, heavy imports, 1 vs 2 workers on 120 small photos), ``bench_segment.py`` (segmentation vs decode,
   three framings, 12 / 3 / 0.3 MP), ``bench_calibrate.py`` (chart detection and correction on
   12 MP), ``regress_tolerances.py`` (index movement under harmless perturbations),
   ``segment_accuracy.py`` (mask F1 per skin tone on 384 held-out phantoms, 95 % intervals, error budget),
   ``roi_split_face.py`` (an ROI propagated along split-face phantom series: treated, control, whole skin),
   ``compare_conditions.py`` (compare on smooth-skin pairs at other sizes, backdrops, focus, poses and tones).

Each step's stdout goes to the terminal and to ``<out>/<name>.txt``.  Not run here
(slow, destructive or needing extra software): ``fuzz_loader.py``, ``fuzz_cli.py``
(``make fuzz``), ``kill_loop.py``, ``fit_basis.py`` and ``derive_mdc.py`` (rewrite model files),
``compare_sensitivity.py`` (about 5 minutes per tone) and ``report_screenshot.py`` (needs Chromium); the
segmentation model is retrained by ``skinimg train-segmenter`` (needs PyTorch for its convolutional stage,
about 90 minutes).  Exit code 1 when any step failed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def steps(out: Path, size: str) -> list[tuple[str, list[str]]]:
    py = sys.executable
    return [
        ("skinimg_bench", [py, "-m", "skinimg", "bench", "--suite", "all", "--preset", size, "--out", str(out)]),
        ("chromophore_accuracy", [py, str(HERE / "chromophore_accuracy.py"), "--part", "phantom"]),
        ("chromophore_bound", [py, str(HERE / "chromophore_accuracy.py"), "--part", "bound"]),
        ("bench_analyze", [py, str(HERE / "bench_analyze.py")]),
        ("bench_startup", [py, str(HERE / "bench_startup.py")]),
        ("bench_segment", [py, str(HERE / "bench_segment.py"), "--repeat", "5"]),
        ("bench_calibrate", [py, str(HERE / "bench_calibrate.py")]),
        ("regress_tolerances", [py, str(HERE / "regress_tolerances.py")]),
        ("segment_accuracy", [py, str(HERE / "segment_accuracy.py")]),
        ("roi_split_face", [py, str(HERE / "roi_split_face.py")]),
        ("compare_conditions", [py, str(HERE / "compare_conditions.py")]),
    ]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("bench-results"))
    ap.add_argument("--size", choices=("small", "full"), default="full", help="size of `skinimg bench`")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="run only these steps")
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    todo = [s for s in steps(a.out, a.size) if not a.only or s[0] in a.only]
    failed = []
    for name, cmd in todo:
        print(f"\n===== {name}: {' '.join(os.path.relpath(c) if c.startswith(str(HERE)) else c for c in cmd[1:])}",
              flush=True)
        t0 = time.perf_counter()
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as proc:
            lines = []
            for line in proc.stdout:
                sys.stdout.write(line)
                sys.stdout.flush()
                lines.append(line)
        (a.out / f"{name}.txt").write_text("".join(lines), encoding="utf-8")
        dt = time.perf_counter() - t0
        if proc.returncode:
            failed.append(name)
            print(f"===== {name} FAILED (exit code {proc.returncode}) after {dt:.0f} s", flush=True)
        else:
            print(f"===== {name} done in {dt:.0f} s", flush=True)
    print(f"\nresults in {a.out}/" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

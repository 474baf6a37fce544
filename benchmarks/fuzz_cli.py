"""Longer fuzzing of the commands (``make fuzz``): random files through ``skinimg analyze`` / ``calibrate``.

Each case is a folder of 1-3 files: random bytes, garbage behind a real image signature,
random small 8/16-bit images, mostly-skin images, valid images cut short, and mutated
valid images (bit flips, overwrites, truncation, duplication, insertion; see
fuzz_loader.py).  The property checked is the one of tests/test_fuzz_cli.py: exit code 0
or 2, no traceback, one table row per file, one stderr line per failed file, finite
indices for ok rows.  Findings are printed with the seed and kept in
bench-results/fuzz_cli/.

    python benchmarks/fuzz_cli.py [--n 2000] [--seed 0] [--command analyze|calibrate|both]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import warnings  # noqa: E402

import numpy as np  # noqa: E402

warnings.simplefilter("error", RuntimeWarning)  # as in pytest: a NaN warning escaping is a finding

from fuzz_loader import mutate, seeds_corpus  # noqa: E402
from tests.test_fuzz_cli import EXTS, check_cli_on  # noqa: E402


def random_spec(rng, seeds: dict[str, bytes]):
    kind = ["bytes", "magic", "image", "skinny", "cut", "mutated"][rng.integers(0, 6)]
    ext = EXTS[rng.integers(0, len(EXTS))]
    if kind == "mutated":
        name = sorted(seeds)[rng.integers(0, len(seeds))]
        data = mutate(seeds[name], rng)
        return ("bytes", data, "." + name.rsplit(".", 1)[-1], 1, 1, 0, False)
    data = bytes(rng.integers(0, 256, rng.integers(0, 512), dtype=np.uint8))
    return (kind, data, ext, int(rng.integers(1, 49)), int(rng.integers(1, 49)), int(rng.integers(0, 2**16)),
            bool(rng.integers(0, 2)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="number of folders (each 1-3 files)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--command", choices=["analyze", "calibrate", "both"], default="both")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    seeds = seeds_corpus(rng)
    commands = ["analyze", "calibrate"] if args.command == "both" else [args.command]
    statuses: Counter = Counter()
    n_files = 0
    findings = []
    t0 = time.perf_counter()
    for k in range(args.n):
        files = [random_spec(rng, seeds) for _ in range(int(rng.integers(1, 4)))]
        command = commands[k % len(commands)]
        n_files += len(files)
        try:
            for s in check_cli_on(files, command).values():
                statuses[f"{command}:{s}"] += 1
        except BaseException as exc:  # noqa: BLE001 - every failure is a finding
            if isinstance(exc, KeyboardInterrupt):
                raise
            keep = REPO / "bench-results" / "fuzz_cli" / f"case{k}"
            keep.mkdir(parents=True, exist_ok=True)
            from tests.test_fuzz_cli import random_file

            for j, f in enumerate(files):
                (keep / f"f{j}{f[2]}").write_bytes(random_file(*f))
            findings.append((k, command, traceback.format_exc(limit=4)))
    dt = time.perf_counter() - t0
    print("| command runs | files | " + " | ".join(sorted(statuses)) + " | findings | seconds |")
    print("|---:" * (len(statuses) + 4) + "|")
    print(f"| {args.n} | {n_files} | " + " | ".join(str(statuses[s]) for s in sorted(statuses))
          + f" | {len(findings)} | {dt:.0f} |")
    for k, command, tb in findings[:10]:
        print(f"\nfinding: case {k} ({command}, seed {args.seed}):\n{tb}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())

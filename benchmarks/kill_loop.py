"""Crash safety: SIGKILL a batch at random points, rerun, compare with an uninterrupted run.

For each of ``--points`` random instants in [5 %, 100 %] of the uninterrupted run time,
the whole process group of ``skinimg <command>`` (the main process and its workers) is
killed with SIGKILL (even points start from an empty output folder, odd points from the
previous complete results); what the killed run left is recorded (complete outputs, ``.tmp``
files), then the same command is rerun into the same folder to completion.  After every
rerun the output tree must equal the uninterrupted run file by file (bytes; SQLite by
rows), with no ``.tmp`` file, no duplicate table rows, no truncated file.

The batch command is ``skinimg run`` when it is available, else ``skinimg analyze``.

    python benchmarks/kill_loop.py [--points 20] [--images 16] [--workers 2] [--seed 0]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from skinimg.io import write_png  # noqa: E402
from tests.badcorpus import skin_like  # noqa: E402
from tests.harness import snapshot  # noqa: E402


def _cmd(argv):
    return [sys.executable, "-m", "skinimg", *map(str, argv)]


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=20)
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rnd = random.Random(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="skinimg-kill-"))
    failures = 0
    try:
        src = tmp / "in"
        for k in range(args.images):
            # same names in different folders on purpose
            write_png(src / f"patient{k % 4}" / f"visit{k // 4}" / "face.png", skin_like(240, 320, seed=k))
        argv = ["analyze", src, "--workers", args.workers]
        ref = tmp / "ref"
        t0 = time.perf_counter()
        subprocess.run(_cmd(argv + ["--out", ref]), check=True, env=_env(), cwd=REPO, capture_output=True)
        t_full = time.perf_counter() - t0
        expected = snapshot(ref)
        print(f"uninterrupted run: {t_full:.2f} s, {len(expected)} files; killing at {args.points} random points")
        print("| point | output folder | kill at (s) | files left by the killed run | .tmp left | rerun (s) | "
              "rerun == uninterrupted |")
        print("|---:|:---|---:|---:|---:|---:|:---|")
        out = tmp / "out"
        n_tmp_total = 0
        for point in range(args.points):
            at = rnd.uniform(0.05, 1.0) * t_full
            fresh = point % 2 == 0  # odd points: killed while rewriting the results of the previous rerun
            if fresh:
                shutil.rmtree(out, ignore_errors=True)
            proc = subprocess.Popen(_cmd(argv + ["--out", out]), env=_env(), cwd=REPO, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
            time.sleep(at)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            left = [p for p in out.rglob("*") if p.is_file()] if out.exists() else []
            n_tmp = sum(p.name.endswith(".tmp") for p in left)
            n_tmp_total += n_tmp
            t1 = time.perf_counter()
            r = subprocess.run(_cmd(argv + ["--out", out]), env=_env(), cwd=REPO, capture_output=True, text=True)
            t_rerun = time.perf_counter() - t1
            got = snapshot(out)
            problems = []
            if r.returncode != 0:
                problems.append(f"exit {r.returncode}: {r.stderr.strip()[:200]}")
            if got.keys() != expected.keys():
                problems.append(f"files differ: {sorted(set(got) ^ set(expected))[:5]}")
            else:
                diff = [k for k in expected if got[k] != expected[k]]
                if diff:
                    problems.append(f"content differs: {diff[:5]}")
            if any(p.name.endswith(".tmp") for p in out.rglob("*")):
                problems.append(".tmp left after rerun")
            with open(out / "indices.csv", newline="", encoding="utf-8") as fh:
                names = [row["image"] for row in csv.DictReader(fh)]
            if len(names) != len(set(names)) or len(names) != args.images:
                problems.append(f"{len(names)} rows for {args.images} images")
            failures += bool(problems)
            print(f"| {point + 1} | {'empty' if fresh else 'previous results'} | {at:.2f} | {len(left) - n_tmp} | {n_tmp} | {t_rerun:.2f} | "
                  f"{'yes' if not problems else 'NO: ' + '; '.join(problems)} |")
        print(f"\n{args.points - failures}/{args.points} reruns equal to the uninterrupted run; "
              f"{n_tmp_total} temporary file(s) left by killed runs"
              + (", all removed by the reruns" if not failures else ""))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

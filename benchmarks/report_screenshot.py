"""Render a skinimg report in headless Chromium and save a screenshot (the check that it looks right).

Usage::

    python benchmarks/report_screenshot.py RESULTS_DIR [--page NAME] [--out shot.png] [--docs]

Builds the report of RESULTS_DIR into a temporary folder (or use ``--report DIR`` for
an existing one), checks that every page's images exist, opens ``--page`` (default:
the first patient/site page) in headless Chromium and writes the screenshot.  With
``--docs`` a reduced copy (< 300 KB, palette PNG) is written to
``docs/report-screenshot.png`` for the README.

Needs Debian's ``chromium`` (``apt-get install chromium``).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs = []

    def handle_starttag(self, tag, attrs):
        self.refs += [v for k, v in attrs if k in ("src", "href") and v]


def missing_references(report: Path) -> list[str]:
    bad = []
    for page in sorted(report.glob("*.html")):
        p = _Refs()
        p.feed(page.read_text(encoding="utf-8"))
        for ref in p.refs:
            if ":" in ref.split("/")[0] or ref.startswith("/") or not (page.parent / ref.split("#")[0]).is_file():
                bad.append(f"{page.name}: {ref}")
    return bad


def screenshot(page: Path, png: Path, *, width: int = 1280, height: int = 2000) -> Path:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("chromium not found: apt-get install chromium")
    with tempfile.TemporaryDirectory() as profile:
        cmd = [chromium, *FLAGS, f"--user-data-dir={profile}", f"--screenshot={png}",
               f"--window-size={width},{height}", page.resolve().as_uri()]
        subprocess.run(cmd, capture_output=True, timeout=180, check=False)
    if not png.is_file():
        sys.exit("chromium wrote no screenshot")
    return png


def docs_copy(png: Path, dest: Path, *, max_bytes: int = 300_000) -> Path:
    im = Image.open(png).convert("RGB")
    for width in (900, 760, 640, 520):
        small = im.resize((width, round(im.height * width / im.width)), Image.LANCZOS)
        q = small.quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        dest.parent.mkdir(parents=True, exist_ok=True)
        q.save(dest, optimize=True)
        if dest.stat().st_size < max_bytes:
            break
    return dest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="?", type=Path)
    ap.add_argument("--report", type=Path, help="an existing report folder (skip building)")
    ap.add_argument("--page", help="page to shoot (default: first patient/site page)")
    ap.add_argument("--out", type=Path, default=Path("report-screenshot.png"))
    ap.add_argument("--height", type=int, default=2000)
    ap.add_argument("--docs", action="store_true", help="also write docs/report-screenshot.png (< 300 KB)")
    args = ap.parse_args()
    tmp = None
    if args.report is None:
        if args.results is None:
            ap.error("give RESULTS_DIR or --report")
        from skinimg.report import build_report

        tmp = tempfile.TemporaryDirectory()
        args.report = Path(tmp.name) / "report"
        build_report(args.results, args.report)
    bad = missing_references(args.report)
    if bad:
        sys.exit("missing or non-relative references:\n" + "\n".join(bad))
    pages = sorted(p.name for p in args.report.glob("*.html") if p.name not in ("index.html", "summary.html"))
    page = args.report / (args.page or (pages[0] if pages else "index.html"))
    shot = screenshot(page, args.out, height=args.height)
    print(f"{shot}: {Image.open(shot).size}, {shot.stat().st_size / 1e3:.0f} KB (page {page.name})")
    if args.docs:
        d = docs_copy(shot, ROOT / "docs" / "report-screenshot.png")
        print(f"{d}: {Image.open(d).size}, {d.stat().st_size / 1e3:.0f} KB")


if __name__ == "__main__":
    main()

"""`skinimg report`: pages, pictures, links, anonymisation, escaping, and a Chromium screenshot when available."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from skinimg.cli import cli
from skinimg.errors import SkinImgError
from skinimg.io import write_csv, write_json, write_png, write_tiff
from skinimg.report import Anonymizer, ReportParams, build_report, photo_with_outline, study_key
from tests.harness import CHROMIUM, chromium_screenshot

pytest.importorskip("matplotlib")

PATIENTS = ("Jane_Doe", "P002")
SESSIONS = ("2024-01-10", "2024-02-14", "2024-03-20")
SITE = "left_cheek"
H, W = 96, 128


def _photo(seed: int, redness: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:H, :W]
    skin = ((yy - H / 2) / (0.4 * H)) ** 2 + ((xx - W / 2) / (0.38 * W)) ** 2 <= 1
    img = np.empty((H, W, 3), np.float32)
    img[:] = (70, 95, 150)
    img[skin] = (205 + 20 * redness, 150 - 15 * redness, 125)
    img += rng.normal(0, 3, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8), skin


def write_results(tmp: Path, *, with_photos: bool = True) -> tuple[Path, Path]:
    """A results folder in the documented formats (analyze, segment, track) and its input study."""
    study, res = tmp / "study", tmp / "results"
    rows = []
    series_rows = []
    for pi, patient in enumerate(PATIENTS):
        for si, session in enumerate(SESSIONS):
            rel = f"{patient}/{SITE}/{session}/{patient}_face.png"
            stem = rel[:-4]
            red = 1.0 - 0.3 * si
            rgb, skin = _photo(10 * pi + si, red)
            if with_photos:
                write_png(study / rel, rgb)
            write_png(res / "masks" / f"{stem}.png", skin.astype(np.uint8) * 255)
            hb = np.where(skin, np.float32(0.02 + 0.01 * red) + np.float32(0.002) * np.sin(np.arange(W) / 7), np.nan)
            mel = np.where(skin, np.float32(0.08), np.nan).astype(np.float32)
            write_tiff(res / "maps" / f"{stem}_hemoglobin.tif", hb.astype(np.float32))
            write_tiff(res / "maps" / f"{stem}_melanin.tif", mel)
            rows.append({"image": rel, "status": "ok", "error": "", "width": W, "height": H,
                         "skin_fraction": float(skin.mean()), "hemoglobin": 0.02 + 0.01 * red, "melanin": 0.08,
                         "erythema_index": 20 + 5 * red, "melanin_index": 50.0, "a_star": 12 + 3 * red,
                         "l_star": 62.0, "ita_deg": 35.0 - si, "ita_category": "intermediate",
                         "red_area_fraction": 0.1 * red, "brown_spot_count": 2, "brown_spot_area_fraction": 0.01,
                         "saturated_fraction": 0.0,
                         "chromophore_branch_check": "exposure_sensitive" if (pi, si) == (0, 1) else "stable",
                         "stage_agreement": 0.52 if (pi, si) == (0, 2) else 0.97,
                         "mask_check": "check" if (pi, si) == (0, 2) else "ok"})
            if si:
                for ref in sorted({SESSIONS[0], SESSIONS[si - 1]}):
                    metrics = {}
                    for name, before, after, mdc in (("hemoglobin", 0.03, 0.03 - 0.003 * si, 0.002),
                                                     ("melanin", 0.08, 0.0805, 0.004),
                                                     ("erythema_index", 25.0, 25 - 1.5 * si, 1.0)):
                        d = after - before
                        verdict = "improved" if d < -mdc else "worsened" if d > mdc else "no_change"
                        metrics[name] = {"before": before, "after": after, "delta": d, "delta_pct": 100 * d / before,
                                         "ci95": [d - mdc / 2, d + mdc / 2], "mdc": mdc, "verdict": verdict}
                        if name == "melanin":  # why a change is not called (compare's verdict_note), to be escaped
                            metrics[name]["verdict_note"] = "not called: the models disagree on its sign (<A&B>)"
                            metrics[name]["delta_pct_note"] = "not meaningful: level within the MDC (<0>)"
                        series_rows.append({"patient": patient, "site": SITE, "session": session, "reference": ref,
                                            "index": name, **{k: v for k, v in metrics[name].items() if k != "ci95"},
                                            "ci95_lo": d - mdc / 2, "ci95_hi": d + mdc / 2})
                    pair = res / "pairs" / patient / SITE / f"{ref}__{session}"
                    poor = patient == "P002" and si == 2
                    write_json(pair / "comparison.json", {
                        "before": f"{patient}/{SITE}/{ref}/{patient}_face.png", "after": rel,
                        "registration": {"ok": True, "method": "orb+ecc", "inliers": 12 if poor else 240,
                                         "residual_px": 4.5 if poor else 0.8},
                        "metrics": metrics})
                    side = np.concatenate([rgb, rgb], axis=1)
                    write_png(pair / "registered_pair.png", side)
                    write_png(pair / "delta_hemoglobin.png", rgb[:, ::-1].copy())
    rows.append({"image": "Jane_Doe/left_cheek/2024-03-20/<script>bad.png", "status": "error",
                 "error": "truncated image file"})
    write_csv(res / "indices.csv", rows)
    write_csv(res / "series.csv", series_rows)
    write_json(res / "analyze.json", {"command": "analyze", "skinimg_version": "0.1.0", "params_hash": "abc123",
                                      "params": {"segment_method": "model", "calibration": None},
                                      "inputs": [str(study)]})
    write_json(res / "run.json", {"skinimg_version": "0.1.0", "pipeline": "clinic",
                                  "dependencies": {"numpy": np.__version__}, "inputs": {str(study / "Jane_Doe"): "h"}})
    return study, res


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs: list[str] = []
        self.tags: list[str] = []
        self.alts: list[str] = []
        self.text: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "script":
            self.scripts += 1
        for k in ("src", "href"):
            if a.get(k):
                self.refs.append(a[k])
        if tag == "img":
            self.alts.append(a.get("alt") or "")

    def handle_data(self, data):
        self.text.append(data)


def check_pages(report: Path) -> dict[str, _Refs]:
    """Parse every HTML page; fail on a missing, absolute or remote reference, or any script."""
    pages = {}
    for page in sorted(report.rglob("*.html")):
        p = _Refs()
        p.feed(page.read_text(encoding="utf-8"))
        assert p.scripts == 0, f"{page.name}: JavaScript found"
        for ref in p.refs:
            assert not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", ref), f"{page.name}: non-relative link {ref}"
            assert not ref.startswith("/"), f"{page.name}: absolute link {ref}"
            target = (page.parent / ref.split("#")[0]).resolve()
            assert target.is_file(), f"{page.name}: missing {ref}"
            assert report.resolve() in target.parents, f"{page.name}: link leaves the report: {ref}"
        for alt in p.alts:
            assert alt.strip(), f"{page.name}: image without alt text"
        pages[page.name] = p
    return pages


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rep")
    study, res = write_results(tmp)
    out = tmp / "report"
    info = build_report(res, out, params=ReportParams(title="Trial <A&B>"))
    return study, res, out, info


def test_report_pages_and_every_picture_present(built):
    study, res, out, info = built
    pages = check_pages(out)
    slugs = {"Jane_Doe__left_cheek.html", "P002__left_cheek.html"}
    assert set(pages) == {"index.html", "summary.html"} | slugs
    assert info["series"] == 2
    jane = pages["Jane_Doe__left_cheek.html"]
    imgs = [r for r in jane.refs if r.startswith("img/")]
    # 3 sessions x (photo + 2 heatmaps) + trend + 3 pairs (2nd vs 1st, 3rd vs 1st and 2nd) x 2 pictures
    assert len(imgs) == 3 * 3 + 1 + 3 * 2
    for ref in imgs:
        data = (out / ref).read_bytes()
        assert data[:3] == b"\xff\xd8\xff" or data[:8] == b"\x89PNG\r\n\x1a\n"
        assert b"Exif" not in data[:64]
    # every page is linked from the index
    assert {r for r in pages["index.html"].refs if r.endswith(".html")} >= slugs | {"summary.html"}


def test_photo_outline_follows_the_mask():
    rgb = np.full((100, 200, 3), 128, np.uint8)
    mask = np.zeros((100, 200), bool)
    mask[20:80, 50:150] = True
    out = photo_with_outline(rgb, mask, side=200)
    green = (out[..., 1] > 200) & (out[..., 0] < 120)
    ys, xs = np.nonzero(green)
    assert ys.min() >= 17 and ys.max() <= 82 and xs.min() >= 47 and xs.max() <= 152
    assert green[20:80, 49:52].any() and not green[40:60, 70:130].any()  # on the edge, not inside
    small = photo_with_outline(rgb, mask, side=100)
    assert small.shape == (50, 100, 3)


def test_pairs_table_coloured_by_verdict_and_warnings(built):
    _, _, out, info = built
    page = (out / "Jane_Doe__left_cheek.html").read_text(encoding="utf-8")
    assert page.count("<h3>2024-03-20 vs 2024-01-10</h3>") == 1
    # hemoglobin 0.03 -> 0.024 with MDC 0.002 is improved; melanin +0.0005 is no change
    block = page.split("<h3>2024-03-20 vs 2024-01-10</h3>")[1].split("<h3>")[0]
    assert re.search(r"<td class=\"l\">hemoglobin</td>.*?<td class=\"l v-improved\">improved</td>", block)
    assert re.search(r"<td class=\"l\">melanin</td>.*?<td class=\"l v-no_change\">no change<br><span "
                     r"class=\"muted\">not called: the models disagree on its sign \(&lt;A&amp;B&gt;\)</span></td>",
                     block)
    # a percentage of a level within the MDC of zero is not shown as a number (compare's delta_pct_note)
    mel = block.split("<td class=\"l\">melanin</td>")[1].split("</tr>")[0]
    assert "title=\"not meaningful: level within the MDC (&lt;0&gt;)\">n/a (level near 0)</span>" in mel
    assert "0.625" not in mel  # the +0.625 % of 0.08 -> 0.0805 is not printed
    hb = block.split("<td class=\"l\">hemoglobin</td>")[1].split("</tr>")[0]
    assert "n/a" not in hb and "-20.00" in hb, hb
    msgs = [m for _, m in info["warnings"]]
    assert any("poor registration" in m and "2024-03-20 vs 2024-01-10" in m for m in msgs)
    ambiguous = [m for m in msgs if "ambiguous" in m]  # chromophore_branch_check = exposure_sensitive
    assert len(ambiguous) == 1 and f"{PATIENTS[0]}" in ambiguous[0] and SESSIONS[1] in ambiguous[0], ambiguous
    flagged = [m for m in msgs if "flagged this skin mask" in m]  # mask_check = check (segment --check)
    assert len(flagged) == 1 and SESSIONS[2] in flagged[0] and "overlap only 0.52" in flagged[0], flagged
    assert any("not measured (truncated image file)" in m for m in msgs)
    assert any("no colour chart" in m for m in msgs)
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "poor registration" in index and "orb+ecc" in index


def test_everything_is_escaped(built):
    _, _, out, _ = built
    for page in out.glob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert "<script>" not in text and "<A&B>" not in text
    assert "Trial &lt;A&amp;B&gt;" in (out / "index.html").read_text(encoding="utf-8")
    assert "&lt;script&gt;bad.png" in (out / "Jane_Doe__left_cheek.html").read_text(encoding="utf-8")


def test_summary_counts(built):
    _, _, out, _ = built
    text = (out / "summary.html").read_text(encoding="utf-8")
    # 6 measured photos, all intermediate
    assert "7 photo(s) in indices.csv, 6 measured" in text
    assert re.search(r"<th>intermediate</th>", text)
    cells = re.search(r"<th>very light</th>.*?</tr><tr>(.*?)</tr>", text).group(1)
    assert re.findall(r"<td>(\d+)</td>", cells) == ["0", "0", "6", "0", "0", "0"]


def test_anonymize_replaces_names_everywhere(tmp_path):
    study, res = write_results(tmp_path)
    out = tmp_path / "anon"
    r = CliRunner().invoke(cli, ["report", str(res), "--out", str(out), "--anonymize", "--salt", "s3cret"],
                           prog_name="skinimg")
    assert r.exit_code == 0, r.output
    check_pages(out)
    a = Anonymizer("s3cret", True)
    pseud = a.patient("Jane_Doe")
    assert re.fullmatch(r"P-[0-9a-f]{6}", pseud) and pseud != a.patient("P002")
    assert Anonymizer("s3cret", True).patient("Jane_Doe") == pseud  # stable
    assert Anonymizer("other", True).patient("Jane_Doe") != pseud
    assert (out / f"{pseud}__left_cheek.html").is_file()
    for f in out.rglob("*"):
        assert "Jane" not in f.name and "P002" not in f.name
        if f.suffix == ".html":
            text = f.read_text(encoding="utf-8")
            assert "Jane" not in text and "P002" not in text and "s3cret" not in text, f.name
            assert str(study) not in text
    assert "Jane" not in r.output


def test_cli_errors_are_one_line(tmp_path):
    r = CliRunner().invoke(cli, ["report", str(tmp_path / "nope"), "--out", str(tmp_path / "o")], prog_name="skinimg")
    assert r.exit_code == 1 and "results folder not found" in r.stderr and "Traceback" not in r.output
    (tmp_path / "empty").mkdir()
    with pytest.raises(SkinImgError, match="no results to report"):
        build_report(tmp_path / "empty", tmp_path / "o")


def test_missing_photos_are_reported_not_linked(tmp_path):
    _, res = write_results(tmp_path, with_photos=False)
    out = tmp_path / "r"
    build_report(res, out)
    check_pages(out)
    assert "photo not available" in (out / "P002__left_cheek.html").read_text(encoding="utf-8")


def test_study_key():
    assert study_key("p/site/2024-01-01/a.jpg") == ("p", "site", "2024-01-01")
    assert study_key("root/p/site/2024-01-01/a.jpg") == ("p", "site", "2024-01-01")
    assert study_key("a.jpg") == ("", "", "")




@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(built, tmp_path):
    _, _, out, _ = built
    shot = tmp_path / "shot.png"
    chromium_screenshot(out / "Jane_Doe__left_cheek.html", shot, tmp_path / "profile", (1280, 1600))
    assert shot.is_file(), "chromium wrote no screenshot"
    img = cv2.imread(str(shot))
    assert img.shape[:2] == (1600, 1280)
    # the header bar is drawn and the page is not blank (pictures rendered)
    assert abs(int(img[10, 10, 0]) - 0x47) < 20  # header background #243447 (BGR: 0x47,0x34,0x24)
    assert img[200:1500].std() > 20

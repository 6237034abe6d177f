"""The report in a real browser: headless Chromium shows the first screen and every chart with
no console error, sorts a table, and a print to PDF puts the first screen on page one.

Chromium is Debian's ``chromium``; when it is missing, the set-up installs it with apt-get
where that is permitted (root, apt-get present, OPTBENCH_NO_APT unset), else the tests skip
and say why. Page-one text is read with pypdf when importable, else poppler's pdftotext
(installed the same way). Screenshots are saved under the test's tmp dir, or under
$OPTBENCH_SCREENSHOTS when set.
"""

from __future__ import annotations

import base64
import hashlib
import html as htmllib
import json
import os
import re
import shutil
import subprocess
import unicodedata
from pathlib import Path

import pytest
from optbench.reporting import load_report
from optbench.reports import browser
from optbench.reports.renderers import HTMLReporter, MarkdownReporter
from test_reports import _row, _training_row, _write

EVIL = "<script>alert(1)</script>"

# Run in the page after load: the layout of the first screen and of every chart, and a click
# on a sortable header. Written into <body data-probe>, which --dump-dom brings back.
PROBE = """
window.addEventListener("load", function () {
  var out = {charts: [], scripts: document.scripts.length};
  document.querySelectorAll("figure.chart").forEach(function (f) {
    var svg = f.querySelector("svg"), r = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
    out.charts.push({id: f.id, w: r.width, h: r.height, texts: svg ? svg.querySelectorAll("text").length : 0,
                     title: svg && svg.querySelector("title") ? svg.querySelector("title").textContent : "",
                     caption: f.querySelector("figcaption") ? f.querySelector("figcaption").textContent : ""});
  });
  ["question", "recommendation", "traffic-lights", "training"].forEach(function (id) {
    var e = document.getElementById(id), r = e ? e.getBoundingClientRect() : null;
    out[id] = r ? {top: r.top, bottom: r.bottom, w: r.width, h: r.height, text: e.textContent} : null;
  });
  var t = document.getElementById("comparison-table");
  if (t) {
    t.tHead.rows[0].cells[4].click();
    out.sorted = Array.prototype.map.call(t.tBodies[0].rows, function (r) { return parseFloat(r.cells[4].getAttribute("data-v")); });
  }
  document.body.setAttribute("data-probe", JSON.stringify(out));
});
"""


# --- set-up: Chromium and a PDF text reader, installed when permitted --------------------------


def _apt_install(package: str) -> str:
    """apt-get install ``package``; '' on success, else why not."""
    if os.environ.get("OPTBENCH_NO_APT"):
        return "OPTBENCH_NO_APT is set"
    if not shutil.which("apt-get"):
        return "no apt-get on this machine"
    if os.geteuid() != 0:
        return "not root, so apt-get install is not permitted"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", package]
    try:
        if subprocess.run(cmd, capture_output=True, env=env, timeout=900).returncode != 0:
            subprocess.run(["apt-get", "update"], capture_output=True, env=env, timeout=300)
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
            if proc.returncode != 0:
                return f"apt-get install {package} failed: {proc.stderr.strip()[-300:]}"
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"apt-get install {package} failed: {e}"
    return ""


@pytest.fixture(scope="module")
def chromium() -> str:
    exe = browser.find_chromium()
    if not exe:
        why = _apt_install("chromium")
        exe = browser.find_chromium()
        if not exe:
            pytest.skip(f"no headless Chromium: {why or 'installed, but not found on PATH'}")
    return exe


def _page_texts(pdf: Path) -> list[str]:
    """The text of each PDF page (pypdf, else pdftotext); skips when neither can be had."""
    try:
        from pypdf import PdfReader
    except ImportError:
        PdfReader = None
    if PdfReader is not None:
        # NFKC: the PDF's fonts set "ff" as one ligature glyph, which pypdf returns as U+FB00
        return [unicodedata.normalize("NFKC", p.extract_text() or "") for p in PdfReader(str(pdf)).pages]
    if not shutil.which("pdftotext"):
        why = _apt_install("poppler-utils")
        if not shutil.which("pdftotext"):
            pytest.skip(f"no PDF text extraction (pypdf or pdftotext): {why}")
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    return text.split("\f")


# --- the reports under test ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def compression_report(tmp_path_factory) -> Path:
    """A compression-like run: a recommendation, a hostile label, failed and skipped cells, a trend."""
    d = tmp_path_factory.mktemp("compression")
    rows = [_row("none", 8, 0.010), _row("int8-dynamic", 8, 0.0062, nbytes=3_600_000, ppl=4.016, kl=0.002),
            _row("int4-weight-only", 8, 0.0080, nbytes=2_100_000, ppl=4.09, kl=0.02),
            _row("prune-structured-ffn-0.5", 8, 0.0045, nbytes=9_000_000, ppl=5.2, kl=0.3),
            _row(EVIL, 8, 0.0110, nbytes=13_000_000, ppl=4.0),
            _row("fp8-dynamic", 8, 0, status="skipped", reason="fp8 dynamic quantization needs a CUDA GPU of compute capability 8.9"),
            _row("cluster-4bit", 8, 0, status="failed", reason="timed out after 600 s")]
    _write(d, rows, question="Which compression technique should we ship for the tiny model?", accuracy_budget="1%",
           started="2026-11-23T22:37:02+00:00")
    trends = [{"cell": "int8-dynamic | batch 8", "metric": "latency", "unit": "ms",
               "points": [{"run_id": f"r{i}", "started": f"2026-11-{i + 1:02d}T02:00:00Z", "value": 6.2 if i < 7 else 7.1,
                           "ci95": [6.0, 6.4] if i < 7 else [6.9, 7.3]} for i in range(12)],
               "steps": [{"index": 7, "run_id": "r7", "before": 6.2, "after": 7.1, "ratio": 1.145}]}]
    report = load_report(d, trends=trends)
    HTMLReporter().render(report, str(d))
    MarkdownReporter().render(report, str(d))
    return d


@pytest.fixture(scope="module")
def training_report(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("training")
    rows = [_training_row("sgd", 1.6), _training_row("adamw", 1.1, reached_at=120), _training_row("rmsprop", 1.25, reached_at=180)]
    rows += [_training_row("none", 1.0 + 0.4 / (dp * w / 64), model={"source": "reference", "size": "tiny", "depth": dp, "width": w})
             for dp in (1, 2) for w in (64, 128)]
    _write(d, rows, question="Which optimizer reaches the target loss first?")
    HTMLReporter().render(load_report(d), str(d))
    return d


def _probe(chromium: str, run_dir: Path) -> tuple[dict, list[str], str]:
    """Load a copy of report.html with the probe script allowed by the CSP; (probe, console, DOM)."""
    page = (run_dir / "report.html").read_text()
    digest = base64.b64encode(hashlib.sha256(PROBE.encode()).digest()).decode()
    assert "script-src '" in page
    probed = page.replace("script-src '", f"script-src 'sha256-{digest}' '", 1).replace("</body>", f"<script>{PROBE}</script></body>", 1)
    path = run_dir / "report.probe.html"
    path.write_text(probed)
    try:
        loaded = browser.load(path, chromium=chromium, extra=[f"--window-size={browser.SCREEN[0]},{browser.SCREEN[1]}"])
    finally:
        path.unlink()
    m = re.search(r'<body[^>]*data-probe="([^"]*)"', loaded.dom)
    assert m, f"the probe did not run; console: {loaded.console}"
    return json.loads(htmllib.unescape(m.group(1))), loaded.console, loaded.dom


def _screenshot_dir(tmp_path: Path) -> Path:
    return Path(os.environ.get("OPTBENCH_SCREENSHOTS") or tmp_path)


# --- the tests ----------------------------------------------------------------------------------------


def test_compression_report_renders_with_no_console_errors(chromium, compression_report):
    probe, console, dom = _probe(chromium, compression_report)
    assert console == []  # no script error, no blocked load (the CSP logs any), no console output at all
    # the first screen is there, and fits a 1366x768 laptop screen without scrolling
    assert "Which compression technique should we ship" in probe["question"]["text"]
    assert "Within a +1% perplexity budget, int8-dynamic is the best choice" in probe["recommendation"]["text"]
    tl = probe["traffic-lights"]
    assert tl and tl["h"] > 100 and tl["bottom"] <= browser.SCREEN[1], tl
    for label in ("int8-dynamic", "int4-weight-only", "prune-structured-ffn-0.5", EVIL, "fp8-dynamic", "cluster-4bit"):
        assert label in tl["text"]  # the hostile label is text in the table, not markup
    assert "SKIPPED" in tl["text"] and "FAILED: timed out after 600 s" in tl["text"]
    # every chart has a size on screen, real text, a title and a caption
    ids = [c["id"] for c in probe["charts"]]
    assert ids == ["chart-speed-vs-accuracy", "chart-size-vs-accuracy", "chart-speedup", "chart-trend-1"]
    for c in probe["charts"]:
        assert c["w"] > 300 and c["h"] > 150 and c["texts"] >= 8 and c["title"] and len(c["caption"]) > 60, c
    # only the report's own script ran (plus this probe); the sortable table sorts
    assert probe["scripts"] == 2 and 'data-sortable="ready"' in dom
    assert probe["sorted"] == sorted(probe["sorted"]) and len(probe["sorted"]) == 4
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom


def test_training_report_renders_with_no_console_errors(chromium, training_report):
    probe, console, _ = _probe(chromium, training_report)
    assert console == []
    assert "Training: first to the target loss: adamw · tiny (120 steps, 6.0 s)" in probe["recommendation"]["text"]
    assert probe["training"] and probe["training"]["top"] < browser.SCREEN[1]
    assert [c["id"] for c in probe["charts"]] == ["chart-loss-curves", "chart-structure-pareto"]
    for c in probe["charts"]:
        assert c["w"] > 300 and c["h"] > 150 and c["texts"] >= 8 and c["caption"], c


def test_first_screen_screenshots(chromium, compression_report, training_report, tmp_path):
    from PIL import Image

    out = _screenshot_dir(tmp_path)
    for name, run_dir in (("compression", compression_report), ("training", training_report)):
        png = browser.screenshot(run_dir / "report.html", out / f"{name}-first-screen.png", chromium=chromium)
        print(f"screenshot: {png}")
        with Image.open(png) as im:
            assert im.size == browser.SCREEN
            rgb = im.convert("RGB")
            colours = rgb.getcolors(maxcolors=1 << 16) or []
        assert len(colours) > 20  # not a blank page
        if name == "compression":
            # the traffic lights are visible on the first screen: green and red cell backgrounds
            counts = {c: n for n, c in colours}
            assert counts.get((0xDA, 0xFB, 0xE1), 0) > 2000 and counts.get((0xFF, 0xEB, 0xE9), 0) > 1000


def test_printed_report_has_the_first_screen_on_page_one(chromium, compression_report, tmp_path):
    pdf = browser.print_pdf(compression_report / "report.html", _screenshot_dir(tmp_path) / "compression.pdf", chromium=chromium)
    pages = _page_texts(pdf)
    assert len(pages) >= 2
    one = re.sub(r"\s+", " ", pages[0])
    for text in ("optbench report", "Which compression technique should we ship for the tiny model?", "RECOMMENDATION",
                 "int8-dynamic is the best choice", "int8-dynamic RECOMMENDED", "int4-weight-only",
                 "prune-structured-ffn-0.5", "FAILED: timed out after 600 s", "the whole 95% interval of the speed ratio is above 1x"):
        assert text in one, f"{text!r} is not on page 1: {one[:1500]}"
    # the print stylesheet starts the detail on a new page: charts are not on page one
    assert "Speed against accuracy" not in one and "Speed against accuracy" in " ".join(pages[1:])

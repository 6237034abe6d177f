"""Headless Chromium on a report: the DOM after scripts ran, console messages, screenshots, PDF.

Screenshots of the first screen of results directories (re-rendering their reports first
with ``--render``)::

    python -m optbench.reports.browser RESULTS_DIR [RESULTS_DIR ...] [-o OUT_DIR] [--pdf] [--render]

Uses the system's Chromium (Debian's ``chromium``; ``OPTBENCH_CHROMIUM`` names another
binary). Every run gets a fresh profile directory and no network features, so what the
page shows is what the file alone holds.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--hide-scrollbars", "--mute-audio"]
SCREEN = (1366, 768)  # a common laptop screen: "the first screen"
_CONSOLE = re.compile(r':CONSOLE[^\]]*\] "(?P<msg>.*)", source: (?P<source>.*?) \((?P<line>\d+)\)\s*$')


def find_chromium() -> str | None:
    """The Chromium binary: $OPTBENCH_CHROMIUM, else the first of chromium / chromium-browser / google-chrome on PATH."""
    env = os.environ.get("OPTBENCH_CHROMIUM")
    if env:
        return env if shutil.which(env) else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageLoad:
    dom: str  # the document after its scripts ran (--dump-dom)
    console: list[str] = field(default_factory=list)  # every console message: errors, CSP violations, logs
    stderr: str = ""


def _run(extra: list[str], target: Path | str, timeout: float, chromium: str | None = None) -> subprocess.CompletedProcess:
    exe = chromium or find_chromium()
    if not exe:
        raise FileNotFoundError("no Chromium found (install Debian's 'chromium', or set OPTBENCH_CHROMIUM)")
    url = target if isinstance(target, str) and "://" in target else Path(target).resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="optbench-chromium-") as profile:
        cmd = [exe, *FLAGS, f"--user-data-dir={profile}", *extra, url]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def console_messages(stderr: str) -> list[str]:
    """Console messages Chromium logged with --enable-logging=stderr (page errors, CSP violations, console.*)."""
    out = []
    for line in stderr.splitlines():
        m = _CONSOLE.search(line)
        if m:
            out.append(f"{m['msg']} ({m['source']}:{m['line']})")
    return out


def load(html: Path | str, timeout: float = 60, chromium: str | None = None, extra: list[str] | None = None) -> PageLoad:
    """Open the page, let its scripts run, return the resulting DOM and every console message."""
    proc = _run(["--enable-logging=stderr", "--v=0", *(extra or []), "--dump-dom"], html, timeout, chromium)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise RuntimeError(f"chromium --dump-dom failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    return PageLoad(proc.stdout, console_messages(proc.stderr), proc.stderr)


def screenshot(html: Path | str, png: Path, size: tuple[int, int] = SCREEN, timeout: float = 60,
               chromium: str | None = None) -> Path:
    """A PNG of what a browser window of ``size`` shows first (no scrolling)."""
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    proc = _run([f"--screenshot={png.resolve()}", f"--window-size={size[0]},{size[1]}"], html, timeout, chromium)
    if not png.exists() or png.stat().st_size == 0:
        raise RuntimeError(f"chromium --screenshot wrote nothing (exit {proc.returncode}): {proc.stderr[-2000:]}")
    return png


def print_pdf(html: Path | str, pdf: Path, timeout: float = 90, chromium: str | None = None) -> Path:
    """Print the page to PDF as a reader's browser would (print stylesheet, default paper, no header/footer)."""
    pdf = Path(pdf)
    pdf.parent.mkdir(parents=True, exist_ok=True)
    proc = _run([f"--print-to-pdf={pdf.resolve()}", "--no-pdf-header-footer"], html, timeout, chromium)
    if not pdf.exists() or pdf.stat().st_size == 0:
        raise RuntimeError(f"chromium --print-to-pdf wrote nothing (exit {proc.returncode}): {proc.stderr[-2000:]}")
    return pdf


def _render(run_dir: Path) -> None:
    from optbench import manager
    from optbench.reporting import render_all

    pm = manager.load()
    render_all(run_dir, pm, only=["html", "markdown"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m optbench.reports.browser",
                                 description="Screenshot the first screen (1366x768) of results directories' report.html.")
    ap.add_argument("dirs", nargs="+", type=Path, help="results directories (with run.json and report.html)")
    ap.add_argument("-o", "--out", type=Path, help="folder for the images (default: each results directory)")
    ap.add_argument("--pdf", action="store_true", help="also print each report to PDF")
    ap.add_argument("--render", action="store_true", help="re-render report.html from the stored results first")
    ap.add_argument("--full", action="store_true", help="also a tall screenshot (1366x6000) of the whole page")
    args = ap.parse_args(argv)
    if not find_chromium():
        print("no Chromium found: apt-get install -y chromium (or set OPTBENCH_CHROMIUM)", file=sys.stderr)
        return 2
    for d in args.dirs:
        html = d / "report.html"
        if args.render or not html.exists():
            _render(d)
        out = args.out or d
        name = d.resolve().name
        png = screenshot(html, out / f"{name}-first-screen.png")
        print(png)
        if args.full:
            print(screenshot(html, out / f"{name}-full.png", size=(SCREEN[0], 6000)))
        if args.pdf:
            print(print_pdf(html, out / f"{name}.pdf"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The built-in reporters: Markdown (PR comments, CI summaries) and one self-contained HTML file."""

from __future__ import annotations

import base64
import hashlib
import os
import re
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from optbench import Reporter

if TYPE_CHECKING:
    import jinja2

    from .summary import Report
    from .verdict import Light

CHARTS_DIR = "charts"
_MD_SPECIAL = re.compile(r"([\\`*_|]|\](?=[(\[:]))")  # "](" / "][" / "]:" would make a link
_MD_COLOURS = {"good": "🟢", "fair": "🟡", "poor": "🔴", "none": "⚪"}


def _env(autoescape: bool) -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("optbench.reports", "templates"),
        autoescape=autoescape, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined,
    )
    return env


def _md_cell(s: str) -> str:
    # Markdown: text from suites and plugins must not become markup (links, emphasis, raw HTML, table breaks)
    s = _MD_SPECIAL.sub(r"\\\1", str(s))
    return s.replace("<", "&lt;").replace(">", "&gt;").replace("\r", " ").replace("\n", " ")


def _md_table(headers: list[str], rows: list[list[str]]) -> str:
    from tabulate import tabulate

    if not rows:
        return "_none_"
    return tabulate([[_md_cell(c) for c in r] for r in rows], headers=headers, tablefmt="github", disable_numparse=True)


def _md_light(light: Light | None) -> str:
    if light is None:
        return ""
    return f"{_MD_COLOURS[light.level]}{light.mark} {_md_cell(light.text)}"


def _script() -> tuple[str, str]:
    """The report's only script (sortable tables) and its CSP hash, so no other script can run."""
    text = resources.files("optbench.reports").joinpath("templates/report.js").read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode()
    return text, f"sha256-{digest}"


def _context(report: Report) -> dict:
    """What the templates show, computed once per report and shared by the Markdown and HTML reporters."""
    cached = getattr(report, "_render_context", None)
    if cached is None:
        cached = _build_context(report)
        report._render_context = cached  # type: ignore[attr-defined]
    return dict(cached)


def _build_context(report: Report) -> dict:
    from . import tables, verdict

    v = verdict.recommend(report)
    ok = sum(1 for r in report.rows if r["status"] == "ok")
    counts = f"{len(report.rows)} cells: {ok} ok" + (f", {len(report.failed)} failed" if report.failed else "") + (
        f", {len(report.skipped)} skipped" if report.skipped else "")
    return {
        "r": report,
        "meta": report.meta,
        "title": report.meta.get("question") or f"{report.meta.get('suite', 'optbench')}: every technique against {report.baseline}",
        "counts": counts,
        "verdict": v,
        "legend": verdict.legend(report.budget),
        "budget_text": verdict.fmt_budget(report.budget),
        "baseline_line": verdict.baseline_line(report),
        "charts": report.charts(),
        "trend_charts": sum(1 for c in report.charts() if c.name.startswith("trend-")),
        "summaries": report.summaries,
        "comparison_headers": tables.COMPARISON_HEADERS,
        "comparison_rows": tables.comparison_rows(report),
        "result_headers": tables.RESULT_HEADERS,
        "result_rows": tables.result_rows(report),
        **dict(zip(("training_headers", "training_rows"),
                   tables.drop_empty_columns(tables.TRAINING_HEADERS, tables.training_rows(report)), strict=True)),
        **dict(zip(("parallel_headers", "parallel_rows"),
                   tables.drop_empty_columns(tables.PARALLEL_HEADERS, tables.parallel_rows(report)), strict=True)),
        "problem_rows": tables.problem_rows(report),
        "environment_rows": tables.environment_rows(report),
        "plugin_rows": tables.plugin_rows(report),
    }


def write_charts(report: Report, out_dir: str) -> list[Path]:
    """The report's charts as SVG files under ``out_dir/charts`` (stale ones from an earlier render removed)."""
    folder = Path(out_dir) / CHARTS_DIR
    charts = report.charts()
    if folder.exists():
        keep = {f"{c.name}.svg" for c in charts}
        for old in folder.glob("*.svg"):
            if old.name not in keep:
                old.unlink()
    if not charts:
        return []
    folder.mkdir(exist_ok=True)
    paths = []
    for c in charts:
        path = folder / f"{c.name}.svg"
        path.write_text(c.svg, encoding="utf-8")
        paths.append(path)
    return paths


class MarkdownReporter(Reporter):
    name = "markdown"
    filename = "report.md"
    description = "report.md: first screen, tables and linked chart images (charts/*.svg) for pull-request comments and CI step summaries"

    def render(self, report: Report, out_dir: str) -> str:
        ctx = _context(report)
        write_charts(report, out_dir)
        ctx["md_table"] = _md_table
        ctx["md"] = _md_cell
        ctx["md_light"] = _md_light
        ctx["charts_dir"] = CHARTS_DIR
        text = _env(False).get_template("report.md.j2").render(**ctx)
        path = Path(out_dir) / self.filename
        path.write_text(text, encoding="utf-8")
        return str(path)


class HTMLReporter(Reporter):
    name = "html"
    filename = "report.html"
    description = "report.html: one self-contained page (no network at view time), charts inline, prints"

    def render(self, report: Report, out_dir: str) -> str:
        script, script_hash = _script()
        text = _env(True).get_template("report.html.j2").render(**_context(report), script=script, script_hash=script_hash)
        path = Path(out_dir) / self.filename
        tmp = path.with_suffix(".html.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        return str(path)

"""The built-in reporters: Markdown (PR comments, CI summaries) and one self-contained HTML file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from optbench import Reporter

if TYPE_CHECKING:
    import jinja2

    from .summary import Report


def _env(autoescape: bool) -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("optbench.reports", "templates"),
        autoescape=autoescape, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined,
    )
    return env


def _md_cell(s: str) -> str:
    # Markdown tables: escape what would break the row or inject markup
    return s.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")


def _md_table(headers: list[str], rows: list[list[str]]) -> str:
    from tabulate import tabulate

    if not rows:
        return "_none_"
    return tabulate([[_md_cell(c) for c in r] for r in rows], headers=headers, tablefmt="github", disable_numparse=True)


def _context(report: Report) -> dict:
    from . import tables

    return {
        "r": report,
        "meta": report.meta,
        "summaries": report.summaries,
        "comparison_headers": tables.COMPARISON_HEADERS,
        "comparison_rows": tables.comparison_rows(report),
        "result_headers": tables.RESULT_HEADERS,
        "result_rows": tables.result_rows(report),
        "problem_rows": tables.problem_rows(report),
        "environment_rows": tables.environment_rows(report),
        "plugin_rows": tables.plugin_rows(report),
    }


class MarkdownReporter(Reporter):
    name = "markdown"
    filename = "report.md"
    description = "report.md: summary and tables for pull-request comments and CI step summaries"

    def render(self, report: Report, out_dir: str) -> str:
        ctx = _context(report)
        ctx["md_table"] = _md_table
        ctx["md"] = _md_cell
        text = _env(False).get_template("report.md.j2").render(**ctx)
        path = Path(out_dir) / self.filename
        path.write_text(text)
        return str(path)


class HTMLReporter(Reporter):
    name = "html"
    filename = "report.html"
    description = "report.html: one self-contained page (no network at view time)"

    def render(self, report: Report, out_dir: str) -> str:
        text = _env(True).get_template("report.html.j2").render(**_context(report))
        path = Path(out_dir) / self.filename
        tmp = path.with_suffix(".html.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
        return str(path)

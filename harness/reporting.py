"""Render every registered reporter for a results directory."""

from __future__ import annotations

import json
from pathlib import Path

from .errors import ReportError
from .manager import PluginManager
from .results import RUN, read_rows, rows_by_cell


def load_run(run_dir: str | Path) -> tuple[dict, list[dict]]:
    """A results directory's run.json meta and its rows, one per cell (rounds merged)."""
    run_dir = Path(run_dir)
    meta_path = run_dir / RUN
    if not meta_path.exists():
        raise ReportError(f"{run_dir}: no {RUN} here; is this an optbench results directory?")
    try:
        meta = json.loads(meta_path.read_text())
    except ValueError as e:
        raise ReportError(f"{meta_path}: not valid JSON ({e})") from None
    return meta, list(rows_by_cell(read_rows(run_dir)).values())


def load_report(run_dir: str | Path, trends: list[dict] | None = None):
    """The Report of a results directory; ``trends``: history series to chart (none without a history store)."""
    from optbench.reports.summary import build_report

    meta, rows = load_run(run_dir)
    if trends is None:
        trends = _trends(meta, rows)
    return build_report(meta, rows, str(run_dir), trends=trends)


def _trends(meta: dict, rows: list[dict]) -> list[dict]:
    """The suite's history, for trend charts: the run's own history setting, else the default store."""
    import sqlite3
    import sys

    from . import history

    try:
        return history.trends_for_report(meta, history.resolve(meta.get("history")), rows)
    except (history.HistoryError, sqlite3.Error) as e:
        print(f"optbench: warning: no trend charts: history {meta.get('history') or 'store'}: {e}", file=sys.stderr)
        return []


def render_all(run_dir: str | Path, pm: PluginManager, only: list[str] | None = None,
               trends: list[dict] | None = None) -> list[str]:
    report = load_report(run_dir, trends=trends)
    paths = []
    for reporter in pm.reporters():
        if only and reporter.name not in only:
            continue
        try:
            paths.append(reporter.render(report, str(run_dir)))
        except Exception as e:  # noqa: BLE001 - one broken reporter must not cost the others
            pm._fail(f"reporter {reporter.name!r} (plugin {pm.reporters().owner.get(reporter.name)}): {type(e).__name__}: {e}")
    return paths

"""The history store: every finished run in one sqlite database, for compare and trends.

Where: ``--history PATH``, else ``$OPTBENCH_HISTORY``, else ``history.db`` in the user's
data directory (``platformdirs.user_data_dir("optbench")``). A run records itself when it
finishes (the built-in ``history`` plugin observes ``optbench_run_finished``); an
interrupted run is recorded once it is resumed to the end.

Each run is written in one transaction: its run.json meta (environment fingerprint, git
commit, suite name, hash and text, plugin versions), every merged cell row with its
metrics and raw samples, one line per (cell, metric) for fast series, and its verdict
against its predecessor (``last-green`` reads it). A killed writer leaves the previous
state; a second record of the same run replaces the first.

The schema is versioned with ``PRAGMA user_version`` and upgraded on open by the ordered
:data:`MIGRATIONS`; a database newer than this code is refused, never downgraded.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ENV = "OPTBENCH_HISTORY"
FILENAME = "history.db"


class HistoryError(Exception):
    """A history problem, phrased as one line."""


def default_path() -> Path:
    env = os.environ.get(ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("optbench")) / FILENAME


def resolve(setting: str | None) -> Path | None:
    """The database a setting means: None -> the default, '' -> none (history off), else the path."""
    if setting is None:
        return default_path()
    if setting == "":
        return None
    return Path(setting).expanduser()


# --- schema ------------------------------------------------------------------------------


def _script(db: sqlite3.Connection, sql: str) -> None:
    """Run statements one by one: ``executescript`` would commit the migration's transaction first."""
    for statement in filter(None, (x.strip() for x in sql.split(";"))):
        db.execute(statement)


def _v1(db: sqlite3.Connection) -> None:
    _script(db, """
        CREATE TABLE runs (
            run_id TEXT PRIMARY KEY, suite TEXT NOT NULL, suite_sha256 TEXT, started TEXT, finished TEXT,
            recorded TEXT, git_commit TEXT, env_id TEXT, meta TEXT NOT NULL);
        CREATE INDEX runs_by_suite ON runs (suite, started);
        CREATE TABLE cells (
            run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE, cell TEXT NOT NULL, name TEXT,
            status TEXT, row TEXT NOT NULL, PRIMARY KEY (run_id, cell));
    """)


def _v2(db: sqlite3.Connection) -> None:
    """Per-metric lines for series without parsing rows; verdicts for last-green; plugin versions."""
    _script(db, """
        ALTER TABLE runs ADD COLUMN plugins TEXT;
        CREATE TABLE metrics (
            run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE, cell TEXT NOT NULL, metric TEXT NOT NULL,
            unit TEXT, value REAL, lo REAL, hi REAL, rounds TEXT, flagged TEXT, PRIMARY KEY (run_id, cell, metric));
        CREATE INDEX metrics_series ON metrics (cell, metric);
        CREATE TABLE verdicts (
            run_id TEXT PRIMARY KEY REFERENCES runs (run_id) ON DELETE CASCADE, baseline TEXT,
            regressions INTEGER NOT NULL, compared INTEGER NOT NULL, summary TEXT, decided TEXT);
    """)
    for run_id, meta in db.execute("SELECT run_id, meta FROM runs").fetchall():
        db.execute("UPDATE runs SET plugins = ? WHERE run_id = ?",
                   (json.dumps(json.loads(meta).get("environment", {}).get("plugins", {})), run_id))
    for run_id, row in db.execute("SELECT run_id, row FROM cells").fetchall():
        _insert_metrics(db, run_id, json.loads(row))


def _v3(db: sqlite3.Connection) -> None:
    """A technique's latency over the baseline's model timed alternately, as its own series."""
    for run_id, row in db.execute("SELECT run_id, row FROM cells").fetchall():
        _insert_alternated(db, run_id, json.loads(row))


def _v4(db: sqlite3.Connection) -> None:
    """The alternated lines again, each round with the speed probe taken after its alternation
    (:func:`~optbench.compare.alternated_series` reads disturbed rounds as a machine state of their own by it)."""
    _v3(db)


#: ordered: MIGRATIONS[i] takes a database from version i to i + 1
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_v1, _v2, _v3, _v4]
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(db: sqlite3.Connection, upto: int = SCHEMA_VERSION) -> int:
    """Apply the migrations a database lacks, each in its own transaction; returns the version."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise HistoryError(f"history database schema version {version} is newer than this optbench understands "
                           f"({SCHEMA_VERSION}); upgrade optbench")
    for v in range(version, upto):
        db.execute("BEGIN IMMEDIATE")
        try:
            MIGRATIONS[v](db)
            db.execute(f"PRAGMA user_version = {v + 1}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    return max(version, upto)


def _metric_line(row: dict[str, Any], metric: str, m: dict[str, Any]) -> tuple | None:
    if "median" in m:
        ci = m.get("ci95") or [None, None]
        rounds = [r["median"] for r in m.get("rounds", [])]
        flagged = "; ".join(filter(None, [m.get("unstable_reason", "") if m.get("unstable") else "", row.get("slow_machine", "")]))
        return (m.get("unit", "s"), m["median"], ci[0], ci[1], json.dumps(rounds) if rounds else None, flagged or None)
    v = m.get("value")
    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
        return (m.get("unit", ""), float(v), None, None, None, None)
    return None


def _insert_metrics(db: sqlite3.Connection, run_id: str, row: dict[str, Any]) -> None:
    if row.get("status") != "ok":
        return
    for metric, m in (row.get("metrics") or {}).items():
        line = _metric_line(row, metric, m) if isinstance(m, dict) else None
        if line:
            db.execute("INSERT OR REPLACE INTO metrics VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", (run_id, row["cell"], metric, *line))
    _insert_alternated(db, run_id, row)


def alternated_line(row: dict[str, Any]) -> tuple[float, list[list[float]]] | None:
    """A cell timed alternately with the baseline's model: its geometric mean ratio to it, and each
    round's [ratio, baseline model median, speed probe after the alternation] (the probe left out
    where a round has none); None for any other cell."""
    from .compare import Measurement, paired_rounds

    m = Measurement.from_row(row, "latency") if row.get("status") == "ok" else None
    pm = paired_rounds(m) if m is not None else None
    if pm is None:
        return None
    return pm.value, [list(rs) for rs in zip(pm.rounds, pm.state, *([pm.probes] if pm.probes else []), strict=True)]


def _insert_alternated(db: sqlite3.Connection, run_id: str, row: dict[str, Any]) -> None:
    """The :data:`~optbench.compare.ALTERNATED` line of a cell timed alternately (see :func:`alternated_line`)."""
    from .compare import ALTERNATED

    alt = alternated_line(row)
    if alt is not None:
        db.execute("INSERT OR REPLACE INTO metrics VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (run_id, row["cell"], ALTERNATED, "x", alt[0], None, None, json.dumps(alt[1]), None))


# --- the store -----------------------------------------------------------------------------


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class History:
    """One history database; open with :meth:`open` (creates and migrates it)."""

    def __init__(self, db: sqlite3.Connection, path: Path):
        self.db = db
        self.path = path

    @classmethod
    def open(cls, path: str | Path, *, create: bool = True) -> History:
        path = Path(path).expanduser()
        if not path.exists() and not create:
            raise HistoryError(f"no history database at {path} (runs record themselves there when they finish; --history PATH to choose)")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = sqlite3.connect(str(path), timeout=30, isolation_level=None)
            db.execute("PRAGMA foreign_keys = ON")
            migrate(db)
        except sqlite3.DatabaseError as e:
            raise HistoryError(f"{path}: not a usable history database ({e})") from None
        return cls(db, path)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # --- writing -----------------------------------------------------------------------

    def record(self, meta: dict[str, Any], rows: list[dict[str, Any]], verdict: dict[str, Any] | None = None) -> str:
        """Store one run (meta from run.json, merged rows), replacing an earlier record of it, atomically."""
        from .compare import cell_name

        run_id = meta["run_id"]
        env = meta.get("environment", {})
        segments = meta.get("segments") or [{}]
        with self._transaction() as db:
            db.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
            db.execute("INSERT INTO runs (run_id, suite, suite_sha256, started, finished, recorded, git_commit, env_id, meta, plugins) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (run_id, meta.get("suite", "?"), meta.get("suite_sha256"), meta.get("started"), segments[-1].get("finished"),
                        _now(), env.get("git", {}).get("commit"), env.get("id"), json.dumps(meta, sort_keys=True, default=str),
                        json.dumps(env.get("plugins", {}), sort_keys=True)))
            for row in rows:
                self._insert_cell(db, run_id, row, cell_name(row))
            if verdict is not None:
                db.execute("INSERT INTO verdicts VALUES (?, ?, ?, ?, ?, ?)",
                           (run_id, verdict.get("baseline"), int(verdict["regressions"]), int(verdict["compared"]),
                            verdict.get("summary", ""), _now()))
        return run_id

    def _insert_cell(self, db: sqlite3.Connection, run_id: str, row: dict[str, Any], name: str) -> None:
        db.execute("INSERT INTO cells VALUES (?, ?, ?, ?, ?)",
                   (run_id, row["cell"], name, row.get("status"), json.dumps(row, sort_keys=True, default=str)))
        _insert_metrics(db, run_id, row)

    def set_verdict(self, run_id: str, baseline: str | None, regressions: int, compared: int, summary: str = "") -> None:
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?, ?, ?, ?)", (run_id, baseline, regressions, compared, summary, _now()))

    # --- reading -----------------------------------------------------------------------

    def runs(self, suite: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Runs, newest first: run_id, suite, started, git commit, env id, cell counts, verdict."""
        sql = ("SELECT r.run_id, r.suite, r.suite_sha256, r.started, r.finished, r.git_commit, r.env_id, "
               "(SELECT COUNT(*) FROM cells c WHERE c.run_id = r.run_id), "
               "(SELECT COUNT(*) FROM cells c WHERE c.run_id = r.run_id AND c.status = 'failed'), "
               "v.regressions, v.baseline, v.summary FROM runs r LEFT JOIN verdicts v ON v.run_id = r.run_id")
        args: list[Any] = []
        if suite:
            sql += " WHERE r.suite = ?"
            args.append(suite)
        sql += " ORDER BY r.started DESC, r.recorded DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        keys = ("run_id", "suite", "suite_sha256", "started", "finished", "git_commit", "env_id", "cells", "failed",
                "regressions", "verdict_baseline", "verdict")
        return [dict(zip(keys, r, strict=True)) for r in self.db.execute(sql, args)]

    def load(self, run_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """(meta, merged rows) of a stored run; ``run_id`` may be a unique prefix."""
        rid = self.find(run_id)
        meta = json.loads(self.db.execute("SELECT meta FROM runs WHERE run_id = ?", (rid,)).fetchone()[0])
        rows = [json.loads(r[0]) for r in self.db.execute("SELECT row FROM cells WHERE run_id = ? ORDER BY cell", (rid,))]
        meta["_source"] = f"history {self.path}"
        return meta, rows

    def find(self, ref: str) -> str:
        hits = [r[0] for r in self.db.execute("SELECT run_id FROM runs WHERE run_id LIKE ? || '%' ORDER BY started", (ref,))]
        if not hits:
            raise HistoryError(f"no run {ref!r} in the history {self.path} (optbench history lists them)")
        if ref in hits:
            return ref
        if len(hits) > 1:
            raise HistoryError(f"run {ref!r} is ambiguous in {self.path}: {', '.join(hits[:5])}")
        return hits[0]

    def has(self, run_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is not None

    def predecessor(self, suite: str, before: dict[str, Any], *, green: bool = False, env_id: str | None = None) -> str | None:
        """The newest run of ``suite`` started before ``before`` (a meta), other than it.

        ``green``: only runs whose verdict found no regression (a run without a verdict
        counts as green: it had no predecessor). ``env_id``: prefer runs of that environment,
        falling back to any when none has it.
        """
        sql = ("SELECT r.run_id, r.env_id FROM runs r LEFT JOIN verdicts v ON v.run_id = r.run_id "
               "WHERE r.suite = ? AND r.run_id != ? AND (? IS NULL OR r.started < ? OR (r.started = ? AND r.run_id < ?))")
        if green:
            sql += " AND COALESCE(v.regressions, 0) = 0"
        sql += " ORDER BY r.started DESC, r.run_id DESC"
        started = before.get("started")
        rows = self.db.execute(sql, (suite, before.get("run_id") or "", started, started, started, before.get("run_id") or "")).fetchall()
        if env_id:
            same = [r for r in rows if r[1] == env_id]
            if same:
                return same[0][0]
        return rows[0][0] if rows else None

    def cells_named(self, suite: str, name: str) -> list[tuple[str, str]]:
        """(cell key, cell name) of the suite's cells whose name, technique label or key prefix is ``name``."""
        out: dict[str, str] = {}
        for key, cname in self.db.execute(
                "SELECT DISTINCT c.cell, c.name FROM cells c JOIN runs r ON r.run_id = c.run_id WHERE (? IS NULL OR r.suite = ?)",
                (suite, suite)):
            if name in (cname, key) or cname.split(" ")[0] == name or key.startswith(name):
                out[key] = cname
        return sorted(out.items(), key=lambda kv: kv[1])

    def series(self, suite: str | None, cell: str, metric: str, *, env_id: str | None = None,
               before: str | None = None) -> list[dict[str, Any]]:
        """One cell's metric over the runs, oldest first: run_id, started, value, ci95, rounds, flagged, env_id."""
        sql = ("SELECT r.run_id, r.started, m.value, m.lo, m.hi, m.rounds, m.flagged, r.env_id, m.unit FROM metrics m "
               "JOIN runs r ON r.run_id = m.run_id WHERE m.cell = ? AND m.metric = ?")
        args: list[Any] = [cell, metric]
        if suite:
            sql += " AND r.suite = ?"
            args.append(suite)
        if env_id:
            sql += " AND r.env_id = ?"
            args.append(env_id)
        if before:
            sql += " AND r.started <= ?"
            args.append(before)
        sql += " ORDER BY r.started, r.run_id"
        out = []
        for run_id, started, value, lo, hi, rounds, flagged, env, unit in self.db.execute(sql, args):
            out.append({"run_id": run_id, "started": started, "value": value, "ci95": [lo, hi] if lo is not None else None,
                        "rounds": json.loads(rounds) if rounds else None, "flagged": flagged or "", "env_id": env, "unit": unit or ""})
        return out

    def noise(self, suite: str, cell: str, metric: str, env_id: str | None, exclude: tuple[str, ...] = (),
              before: str | None = None, last: int = 60, relative_to: str | None = None,
              cache: dict[tuple[Any, ...], dict[str, float]] | None = None) -> Any:
        """The run-to-run noise of one cell's metric (a :class:`~optbench.compare.Noise`), or None.

        With ``relative_to`` (the suite baseline's cell of the same workload), the noise of the
        cell's estimate relative to that cell's, run by run: what compare's relative verdicts face.
        ``cache`` (a dict the caller keeps) holds each cell's per-run estimates between calls, so a
        baseline cell that many cells are relative to is read once.
        """
        from .compare import Measurement, noise_from_series, run_estimate

        def estimates(key: str) -> dict[str, float]:
            ck = (suite, key, metric, env_id, tuple(exclude), before, last)
            if cache is not None and ck in cache:
                return cache[ck]
            pts = [p for p in self.series(suite, key, metric, env_id=env_id, before=before)
                   if p["run_id"] not in exclude and not p["flagged"]][-last:]
            out = {p["run_id"]: run_estimate(Measurement(p["value"], rounds=tuple(p["rounds"] or ()))) for p in pts}
            out = {k: v for k, v in out.items() if v is not None}
            if cache is not None:
                cache[ck] = out
            return out

        own = estimates(cell)
        if relative_to:
            other = estimates(relative_to)
            own = {k: v - other[k] for k, v in own.items() if k in other}
        return noise_from_series(list(own.values()), source=f"history ({len(own)} runs{', relative' if relative_to else ''})")


# --- recording a finished run ------------------------------------------------------------


def record_run_dir(run_dir: str | Path, rows: list[dict[str, Any]] | None = None, *, path: str | Path | None = None,
                   log: Callable[[str], None] = print) -> str | None:
    """Record a finished run from its results directory; returns the database path, or None.

    Nothing is recorded when history is off for the run (``--no-history``) or the run was
    interrupted (it records once resumed to the end). The run's verdict against its
    predecessor in the history is computed and stored with it.
    """
    from .results import RUN, read_rows, rows_by_cell

    run_dir = Path(run_dir)
    meta = json.loads((run_dir / RUN).read_text())
    db_path = Path(path) if path else resolve(meta.get("history"))
    if db_path is None:
        return None
    if (meta.get("segments") or [{}])[-1].get("interrupted"):
        log(f"history: run {meta.get('run_id')} was interrupted; it is recorded once resumed to the end")
        return None
    if rows is None:
        rows = list(rows_by_cell(read_rows(run_dir)).values())
    with History.open(db_path) as h:
        verdict = verdict_against_predecessor(h, meta, rows)
        h.record(meta, rows, verdict)
    summary = verdict["summary"] if verdict else ""
    log(f"history: recorded run {meta['run_id']} in {db_path}" + (f" ({summary})" if summary else ""))
    return str(db_path)


def verdict_against_predecessor(h: History, meta: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Compare a run with the newest earlier run of its suite in ``h`` (what last-green reads)."""
    env_id = meta.get("environment", {}).get("id")
    prev = h.predecessor(meta.get("suite", "?"), meta, env_id=env_id)
    if prev is None:
        return {"baseline": None, "regressions": 0, "compared": 0, "summary": "first run of its suite"}
    base_meta, base_rows = h.load(prev)
    cmp = compare_in_history(h, base_meta, base_rows, meta, rows)
    n = len(cmp.regressions) + len(cmp.failing_cells)
    compared = sum(1 for r in cmp.results if r.verdict.status != "not comparable")
    summary = f"{n} regression{'s' * (n != 1)} against {prev}" if n else f"green against {prev}"
    return {"baseline": prev, "regressions": n, "compared": compared, "summary": summary}


#: how many runs before the baseline compare looks through for a cell the baseline could not judge
#: (a week of nightlies). benchmarks/false_alarm.py, eleven stored hours judged nightly-like (each run
#: against the unchanged run before it): a 5% slowdown caught in 61 of 102 trials where the baseline
#: alone caught 55, no false alarm in 162 compares of unchanged runs either way. Judged without the
#: history's noise, looking back 3 runs or 15 instead of 7 changed nothing: an hour has few states
LOOK_BACK = 7


def compare_in_history(h: History, base_meta: dict[str, Any], base_rows: list[dict[str, Any]], cur_meta: dict[str, Any],
                       cur_rows: list[dict[str, Any]], *, green: bool = False, look_back: int = LOOK_BACK) -> Any:
    """:func:`optbench.compare.compare_runs` with the history's run-to-run noise, where a cell
    the baseline run cannot judge is judged against an earlier run that can.

    The 2-core VM switches for minutes or hours into states where kernels do not slow alike, so
    a cell timed in another state than the baseline's is not comparable with it (see
    :func:`optbench.compare.usable_rounds`). Nightly, the baseline is only the newest earlier run:
    for such a cell, compare takes the next earlier run of the suite in the same environment
    (only green ones with ``green``), up to ``look_back`` runs back, and keeps the first verdict that
    is not "not comparable". It takes the first such run whatever its verdict, so looking back
    tests no more often than one compare does. The result names the run it was judged against.
    """
    from .compare import NOT_COMPARABLE, compare_runs

    def against(meta: dict[str, Any], rows: list[dict[str, Any]]):
        noise = history_noise(h, cur_meta, cur_rows, exclude=(cur_meta.get("run_id"), meta.get("run_id")))
        return compare_runs(meta, rows, cur_meta, cur_rows, history_noise=noise)

    cmp = against(base_meta, base_rows)
    if cmp.environment or not base_meta.get("run_id"):
        return cmp
    env_id = cur_meta.get("environment", {}).get("id")
    earlier = base_meta
    for _ in range(look_back):
        open_ = {(r.cell, r.metric): i for i, r in enumerate(cmp.results) if r.verdict.status == NOT_COMPARABLE}
        if not open_:
            break
        prev = h.predecessor(cur_meta.get("suite", "?"), earlier, green=green, env_id=env_id)
        if prev is None:
            break
        earlier, rows = h.load(prev)
        if earlier.get("environment", {}).get("id") != env_id:
            break  # predecessor falls back to other environments when none has this one: not comparable
        alt = against(earlier, rows)
        for r in alt.results:
            i = open_.get((r.cell, r.metric))
            if i is not None and r.verdict.status != NOT_COMPARABLE:
                why = cmp.results[i].verdict.reason or cmp.results[i].verdict.method
                r.baseline_run = prev
                r.verdict.reason = "; ".join(filter(None, [
                    f"against run {prev} of {str(earlier.get('started', '?'))[:10]}: in the baseline run it was not comparable "
                    f"({why})", r.verdict.reason]))
                cmp.results[i] = r
    moved = sorted({r.baseline_run for r in cmp.results if r.baseline_run})
    if moved:
        n = sum(1 for r in cmp.results if r.baseline_run)
        cmp.notes.append(f"{n} cell metric{'s' * (n != 1)} not comparable with the baseline run (timed in another machine "
                         f"state, or unstable) {'were' if n != 1 else 'was'} judged against the earlier run{'s' * (len(moved) != 1)} "
                         + ", ".join(moved))
    return cmp


def history_noise(h: History, meta: dict[str, Any], rows: list[dict[str, Any]], exclude: tuple[str, ...] = ()) -> dict:
    """(cell, metric) -> run-to-run noise from the history, for the metrics whose noise is not 0;
    and (cell, metric, "relative") -> the same for a technique's timed metric relative to the suite
    baseline's cell of its workload (see :func:`optbench.compare.compare_runs`)."""
    from .compare import DEFAULT_RULES, baseline_partners

    env_id = meta.get("environment", {}).get("id")
    partner = baseline_partners(meta.get("baseline"), rows)
    out: dict[tuple[str, ...], Any] = {}
    cache: dict[tuple[Any, ...], dict[str, float]] = {}  # each cell's series is read once
    for row in rows:
        if row.get("status") != "ok":
            continue
        for metric, m in (row.get("metrics") or {}).items():
            timed = isinstance(m, dict) and "median" in m
            rule = DEFAULT_RULES.get(metric)
            if not timed and (rule is None or rule.threshold < 0.05):
                continue  # deterministic metrics: no noise to estimate
            kw = {"exclude": exclude, "before": meta.get("started"), "cache": cache}
            n = h.noise(meta.get("suite", "?"), row["cell"], metric, env_id, **kw)
            if n is not None:
                out[(row["cell"], metric)] = n
            if timed and partner.get(row["cell"]):
                n = h.noise(meta.get("suite", "?"), row["cell"], metric, env_id, relative_to=partner[row["cell"]], **kw)
                if n is not None:
                    out[(row["cell"], metric, "relative")] = n
    return out


# --- trends for reports and compare ----------------------------------------------------------

#: the metrics a report charts over time, when a cell has them
KEY_METRICS = ("latency", "latency_vs_baseline", "step_time", "tokens_per_s", "model_bytes", "perplexity", "top1_accuracy", "final_loss", "steps_to_target")


def trends_for_report(meta: dict[str, Any], history_path: str | Path | None, rows: list[dict[str, Any]] | None = None,
                      *, metrics: tuple[str, ...] = KEY_METRICS, last: int = 365) -> list[dict[str, Any]]:
    """Each key metric's history for the suite of ``meta``, with the steps change-point detection found.

    Returns ``[{"cell", "metric", "unit", "points": [{"run_id", "started", "value", "ci95"}],
    "steps": [{"index", "run_id", "before", "after", "ratio"}]}]``: runs of the same suite
    and environment, oldest first, at most ``last``; points flagged unstable or slow are
    left out. ``rows`` (the run's own merged rows) adds the run itself when the history does
    not hold it yet (a report is rendered before the run records itself). [] without a
    history database or with fewer than 2 points. The series of a technique timed alternately
    with the baseline's model (``latency_vs_baseline``) has each run at one machine state and
    baseline latency (:func:`~optbench.compare.alternated_series`) and says so in ``"about"``.
    """
    from . import trends
    from .compare import ALTERNATED, ALTERNATED_ABOUT, alternated_series, cell_name

    if history_path is None or not Path(history_path).exists():
        return []
    suite = meta.get("suite")
    env_id = meta.get("environment", {}).get("id")
    run_id = meta.get("run_id")
    out = []
    with History.open(history_path) as h:
        cells = {r["cell"]: r for r in rows or []}
        keys = list(cells) or [k for k, _ in h.db.execute(
            "SELECT DISTINCT c.cell, c.name FROM cells c WHERE c.run_id = ?", (run_id,))]
        names = dict(h.db.execute("SELECT cell, name FROM cells WHERE run_id = ?", (run_id,)).fetchall())
        for key in keys:
            name = cell_name(cells[key]) if key in cells else names.get(key, key)
            for metric in metrics:
                pts = [p for p in h.series(suite, key, metric, env_id=env_id, before=meta.get("started"))
                       if p["run_id"] != run_id or not rows]
                unit = pts[-1]["unit"] if pts else ""
                if rows and key in cells:
                    own = _own_point(meta, cells[key], metric)
                    if own is not None:
                        pts.append(own)
                        unit = own["unit"]
                pts = [p for p in pts if not p.get("flagged") and p["value"] is not None][-last:]
                if metric == ALTERNATED and pts:
                    pts = [p for p in alternated_series(pts) if not p.get("flagged")]
                if len(pts) < 2:
                    continue
                found = trends.steps([p["value"] for p in pts], [p["run_id"] for p in pts])
                out.append({"cell": name, "metric": metric, "unit": unit,
                            "points": [{"run_id": p["run_id"], "started": p["started"], "value": p["value"],
                                        "ci95": list(p["ci95"]) if p.get("ci95") else None} for p in pts],
                            "steps": found, **({"about": ALTERNATED_ABOUT} if metric == ALTERNATED else {})})
    return out


def _own_point(meta: dict[str, Any], row: dict[str, Any], metric: str) -> dict[str, Any] | None:
    """The point of the run being reported (not recorded yet) in ``metric``'s series, from its row."""
    from .compare import ALTERNATED, Measurement

    if metric == ALTERNATED:
        alt = alternated_line(row)
        return None if alt is None else {"run_id": meta.get("run_id"), "started": meta.get("started"), "value": alt[0],
                                         "ci95": None, "rounds": alt[1], "flagged": "", "unit": "x"}
    m = Measurement.from_row(row, metric) if row.get("status") == "ok" else None
    if m is None or m.value is None:
        return None
    return {"run_id": meta.get("run_id"), "started": meta.get("started"), "value": m.value,
            "ci95": row["metrics"][metric].get("ci95"), "flagged": m.unstable or m.slow, "unit": m.unit}


def recent_steps(trend_list: list[dict[str, Any]], thresholds: dict[str, Any] | None = None, within: int = 7) -> list[dict[str, Any]]:
    """Steps in the last ``within`` runs of each series whose size is past the metric's threshold."""
    from .compare import rule_for

    out = []
    for t in trend_list:
        rule = rule_for(t["metric"], thresholds)
        n = len(t["points"])
        for s in t["steps"]:
            if s["ratio"] is None or s["index"] < n - within:
                continue
            change = math.log(s["ratio"]) if s["ratio"] > 0 else 0.0
            if abs(change) < math.log1p(rule.threshold):
                continue
            worse = (change > 0) == rule.higher_is_worse
            out.append({"cell": t["cell"], "metric": t["metric"], "run_id": s["run_id"], "runs_ago": n - 1 - s["index"],
                        "before": s["before"], "after": s["after"], "ratio": s["ratio"],
                        "direction": "worse" if worse and rule.judged else "better" if rule.judged else "changed"})
    return out

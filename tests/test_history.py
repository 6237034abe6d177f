"""The history store: recording, listing, series, schema migrations, atomic writes, trends."""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from helpers import cli
from optbench import history
from optbench.compare import ALTERNATED
from optbench.history import History, HistoryError, record_run_dir, trends_for_report
from test_compare import ENV, _alternated_rows, meta, row, write_run


def nightly(h: History, n: int, *, level=0.010, step_at=None, step=1.0, start=0):
    """Record n synthetic nightly runs; from run ``step_at`` on, latency is ``step`` x higher."""
    ids = []
    for i in range(start, start + n):
        lvl = level * (step if step_at is not None and i >= step_at else 1.0)
        rid = f"2026{i:04d}-run"
        m = meta(rid, f"2026-01-01T00:00:00+00:00:{i:04d}")
        h.record(m, [row("none", 1, lvl, seed=i, run=rid), row("int8", 1, 0.008, seed=i, run=rid)],
                 history.verdict_against_predecessor(h, m, [row("none", 1, lvl, seed=i, run=rid), row("int8", 1, 0.008, seed=i, run=rid)]))
        ids.append(rid)
    return ids


def test_default_path_honours_the_environment_variable_then_the_user_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("OPTBENCH_HISTORY", str(tmp_path / "x.db"))
    assert history.resolve(None) == tmp_path / "x.db"
    assert history.resolve("") is None                        # --no-history
    assert history.resolve(str(tmp_path / "y.db")) == tmp_path / "y.db"
    monkeypatch.delenv("OPTBENCH_HISTORY")
    import platformdirs

    assert history.default_path() == Path(platformdirs.user_data_dir("optbench")) / "history.db"


def test_the_test_session_never_writes_the_real_history():
    import platformdirs

    assert os.environ["OPTBENCH_HISTORY"] and history.default_path() != Path(platformdirs.user_data_dir("optbench")) / "history.db"


def test_a_run_is_stored_with_its_meta_rows_and_raw_samples_and_listed(tmp_path):
    db = tmp_path / "h.db"
    with History.open(db) as h:
        nightly(h, 3)
        runs = h.runs(suite="demo")
        assert [r["run_id"] for r in runs] == ["20260002-run", "20260001-run", "20260000-run"]
        assert runs[0]["git_commit"] == ENV["git"]["commit"] and runs[0]["env_id"] == "e1" and runs[0]["cells"] == 2
        m, rows = h.load("20260001")   # a unique prefix
        assert m["environment"]["plugins"] == ENV["plugins"] and m["suite_sha256"] == "s1"
        lat = next(r for r in rows if r["cell"] == "none-1")["metrics"]["latency"]
        assert len(lat["samples"]) == 150 and len(lat["rounds"]) == 5
        series = h.series("demo", "none-1", "latency")
        assert [p["run_id"] for p in series] == ["20260000-run", "20260001-run", "20260002-run"]
        assert series[0]["ci95"] and series[0]["rounds"]
    listing = cli("history", "--history", str(db))
    assert listing.returncode == 0 and "3 runs in" in listing.stdout and "green" in listing.stdout
    series = cli("history", "--history", str(db), "--cell", "none", "--metric", "latency")
    assert series.returncode == 0 and series.stdout.count("-run") == 3 and "none cpu b=1 s=128" in series.stdout
    unknown = cli("history", "--history", str(db), "--cell", "nope", "--metric", "latency")
    assert unknown.returncode == 2 and "no cell 'nope'" in unknown.stderr


def test_recording_the_same_run_again_replaces_it(tmp_path):
    with History.open(tmp_path / "h.db") as h:
        m = meta("r1", "2026-01-01")
        h.record(m, [row("none", 1, 0.01, seed=1, run="r1"), row("int8", 1, 0.01, seed=1, run="r1")])
        h.record(m, [row("none", 1, 0.01, seed=2, run="r1")])   # resumed: the run as it is now
        assert len(h.runs()) == 1 and len(h.load("r1")[1]) == 1


def test_a_failing_insert_leaves_no_half_written_run(tmp_path, monkeypatch):
    with History.open(tmp_path / "h.db") as h:
        h.record(meta("r1", "2026-01-01"), [row("none", 1, 0.01, seed=1, run="r1")])
        real = History._insert_cell
        calls = []

        def flaky(self, db, run_id, r, name):
            calls.append(name)
            if len(calls) == 2:
                raise sqlite3.OperationalError("disk I/O error")
            real(self, db, run_id, r, name)

        monkeypatch.setattr(History, "_insert_cell", flaky)
        with pytest.raises(sqlite3.OperationalError):
            h.record(meta("r2", "2026-01-02"), [row("none", 1, 0.01, seed=2, run="r2"), row("int8", 1, 0.01, seed=2, run="r2")])
        assert len(calls) == 2
        assert [r["run_id"] for r in h.runs()] == ["r1"]
        assert h.db.execute("SELECT COUNT(*) FROM cells WHERE run_id = 'r2'").fetchone()[0] == 0
        assert h.db.execute("SELECT COUNT(*) FROM metrics WHERE run_id = 'r2'").fetchone()[0] == 0


def test_a_writer_killed_mid_write_leaves_no_half_written_run(tmp_path):
    db = tmp_path / "h.db"
    with History.open(db) as h:
        h.record(meta("r1", "2026-01-01"), [row("none", 1, 0.01, seed=1, run="r1")])
    marker = tmp_path / "writing"
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from pathlib import Path
        from optbench.history import History
        from test_compare import meta, row
        real = History._insert_cell
        def slow(self, db, run_id, r, name):
            real(self, db, run_id, r, name)
            Path({str(marker)!r}).write_text("in the middle")
            time.sleep(60)
        History._insert_cell = slow
        with History.open({str(db)!r}) as h:
            h.record(meta("r2", "2026-01-02"), [row("none", 1, 0.01, seed=2, run="r2"), row("int8", 1, 0.01, seed=2, run="r2")])
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.time() + 60
        while not marker.exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert marker.exists(), "the writer never reached the middle of its transaction"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    with History.open(db) as h:
        assert [r["run_id"] for r in h.runs()] == ["r1"]
        assert h.db.execute("SELECT COUNT(*) FROM cells").fetchone()[0] == 1
        assert h.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_database_from_an_older_schema_is_migrated_on_open(tmp_path):
    db = tmp_path / "old.db"
    old = sqlite3.connect(str(db), isolation_level=None)
    assert history.migrate(old, upto=1) == 1      # what optbench wrote at schema version 1
    r = row("none", 1, 0.01, seed=1, run="r1")
    alt = next(x for x in _alternated_rows("r1", 1, rounds=5) if x["cell"] == "int8-1")
    old.execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                ("r1", "demo", "s1", "2026-01-01", "2026-01-01", "2026-01-01", "a" * 40, "e1", json.dumps(meta("r1", "2026-01-01"))))
    for x in (r, alt):
        old.execute("INSERT INTO cells VALUES (?, ?, ?, ?, ?)", ("r1", x["cell"], x["cell"], "ok", json.dumps(x)))
    old.close()
    with History.open(db) as h:
        assert h.db.execute("PRAGMA user_version").fetchone()[0] == history.SCHEMA_VERSION == 4
        assert [p["run_id"] for p in h.series("demo", r["cell"], "latency")] == ["r1"]     # backfilled
        pts = h.series("demo", "int8-1", ALTERNATED)                                         # rounds 2-5 alternated
        assert len(pts) == 1 and len(pts[0]["rounds"]) == 4 and pts[0]["unit"] == "x"
        assert pts[0]["rounds"] == [[rd["paired"][k] for k in ("ratio", "base_median", "speed_probe_s")]
                                    for rd in alt["metrics"]["latency"]["rounds"][1:]]
        assert h.series("demo", r["cell"], ALTERNATED) == []                              # none timed alternately
        assert json.loads(h.db.execute("SELECT plugins FROM runs").fetchone()[0]) == ENV["plugins"]
        h.record(meta("r2", "2026-01-02"), [row("none", 1, 0.01, seed=2, run="r2")])
        assert len(h.runs()) == 2


def test_a_database_from_a_newer_optbench_is_refused(tmp_path):
    db = tmp_path / "new.db"
    con = sqlite3.connect(str(db))
    con.execute("PRAGMA user_version = 99")
    con.close()
    with pytest.raises(HistoryError, match="newer than this optbench"):
        History.open(db)
    res = cli("history", "--history", str(db))
    assert res.returncode == 2 and "schema version 99" in res.stderr


def test_interrupted_runs_are_recorded_only_once_resumed_and_no_history_records_nothing(tmp_path):
    db = tmp_path / "h.db"
    m = meta("r1", "2026-01-01")
    m["history"] = str(db)
    m["segments"] = [{"started": "2026-01-01", "interrupted": True}]
    run = write_run(tmp_path / "run", m, [row("none", 1, 0.01, seed=1, run="r1")])
    lines = []
    assert record_run_dir(run, log=lines.append) is None and "interrupted" in lines[0]
    assert not db.exists()
    m["segments"].append({"started": "2026-01-01", "interrupted": False})   # resumed to the end
    write_run(run, m, [row("none", 1, 0.01, seed=1, run="r1"), row("int8", 1, 0.01, seed=1, run="r1")])
    assert record_run_dir(run, log=lines.append) == str(db)
    with History.open(db) as h:
        assert [r["cells"] for r in h.runs()] == [2]
    m["history"] = ""   # --no-history
    write_run(run, {**m, "run_id": "r2"}, [])
    assert record_run_dir(run, log=lines.append) is None


def test_last_green_skips_runs_that_regressed_against_their_predecessor(tmp_path):
    with History.open(tmp_path / "h.db") as h:
        ids = nightly(h, 3)
        ids += nightly(h, 1, level=0.013, start=3)    # a 30% slower night: red
        runs = {r["run_id"]: r for r in h.runs()}
        assert runs[ids[3]]["regressions"] >= 1 and runs[ids[2]]["regressions"] == 0
        after = meta("2026zzzz-run", "2026-01-01T00:00:00+00:00:9999")
        assert h.predecessor("demo", after) == ids[3]
        assert h.predecessor("demo", after, green=True) == ids[2]
        # a run of another environment is used only when none of the same one exists
        assert h.predecessor("demo", after, env_id="other") == ids[3]


def test_trends_for_report_finds_the_step_and_returns_the_report_structure(tmp_path):
    db = tmp_path / "h.db"
    with History.open(db) as h:
        ids = nightly(h, 30, step_at=22, step=1.08)
    last = meta(ids[-1], "2026-01-01T00:00:00+00:00:0029")
    trends = trends_for_report(last, db)
    lat = next(t for t in trends if t["cell"] == "none cpu b=1 s=128" and t["metric"] == "latency")
    assert set(lat) == {"cell", "metric", "unit", "points", "steps"} and lat["unit"] == "s"
    assert len(lat["points"]) == 30 and set(lat["points"][0]) == {"run_id", "started", "value", "ci95"}
    assert [s["index"] for s in lat["steps"]] == [22] and lat["steps"][0]["run_id"] == ids[22]
    assert lat["steps"][0]["ratio"] == pytest.approx(1.08, rel=0.02)
    assert set(lat["steps"][0]) == {"index", "run_id", "before", "after", "ratio"}
    flat = next(t for t in trends if t["cell"].startswith("int8") and t["metric"] == "latency")
    assert flat["steps"] == []
    ppl = next(t for t in trends if t["cell"].startswith("none") and t["metric"] == "perplexity")
    assert ppl["steps"] == [] and ppl["points"][0]["ci95"] is None
    # the run being reported, not yet recorded, is added from its rows
    new = meta("2026new-run", "2026-01-01T00:00:00+00:00:0030")
    with_rows = trends_for_report(new, db, rows=[row("none", 1, 0.0108, seed=99, run="2026new-run")])
    assert with_rows[0]["points"][-1]["run_id"] == "2026new-run" and len(with_rows[0]["points"]) == 31
    assert trends_for_report(last, tmp_path / "absent.db") == []


def test_a_technique_timed_alternately_has_a_trend_of_its_ratio_at_one_machine_state(tmp_path):
    """Nightly runs timed with measure.paired_s: int8's own latency wanders 8% (sd) from round to
    round, and the runs sit 8% apart in turn, which moves int8/fp32 4% (slope -0.5).
    The alternated series puts every run at one baseline latency and leaves out the rounds of the
    VM's slower state, so a 4% step at run 16 stands out of runs that agree within 1-2%."""
    db = tmp_path / "h.db"
    ids = [f"2026{i:04d}-alt" for i in range(22)]
    with History.open(db) as h:
        for i, rid in enumerate(ids):
            slow = range(2, 16) if i == 9 else ()   # run 9: 14 of its 20 rounds in the slower state
            hit = range(2, 21, 3) if i == 5 else ()  # run 5: 7 rounds disturbed while they alternated (+9%)
            rows = _alternated_rows(rid, i, int8_factor=1.04 if i >= 16 else 1.0, level=(0.95, 1.03)[i % 2], slope=-0.5,
                                    slow_rounds=slow, disturbed=hit)
            h.record(meta(rid, f"2026-01-01T00:00:00+00:00:{i:04d}"), rows)
    trends = trends_for_report(meta(ids[-1], "2026-01-01T00:00:00+00:00:0021"), db)
    alt = next(t for t in trends if t["cell"] == "int8 cpu b=1 s=128" and t["metric"] == ALTERNATED)
    assert alt["unit"] == "x" and "alternately" in alt["about"] and len(alt["points"]) == 22
    assert [s["run_id"] for s in alt["steps"]] == [ids[16]] and alt["steps"][0]["ratio"] == pytest.approx(1.04, abs=0.01)
    before = [math.log(p["value"]) for p in alt["points"][:16]]
    assert max(before) - min(before) < 0.035     # 5.8% as recorded; run 9 on its 5 rounds of the usual state (28% else)
    assert abs(before[5] - statistics.median(before)) < 0.012  # run 5 on its 12 undisturbed rounds (+3% with all)
    assert all(p["ci95"][0] < p["value"] < p["ci95"][1] for p in alt["points"])
    own = next(t for t in trends if t["cell"] == "int8 cpu b=1 s=128" and t["metric"] == "latency")
    assert "about" not in own
    # the run being reported, not yet recorded, is added from its rows
    rows = _alternated_rows("2026new-alt", 22, int8_factor=1.04, level=0.95, slope=-0.5)
    new = trends_for_report(meta("2026new-alt", "2026-01-01T00:00:00+00:00:0022"), db, rows=rows)
    alt = next(t for t in new if t["cell"] == "int8 cpu b=1 s=128" and t["metric"] == ALTERNATED)
    assert [p["run_id"] for p in alt["points"][-2:]] == [ids[-1], "2026new-alt"]
    assert alt["points"][-1]["value"] == pytest.approx(alt["points"][-2]["value"], rel=0.02)
    res = cli("history", "--history", str(db), "--cell", "int8", "--metric", ALTERNATED)
    assert res.returncode == 0 and "timed alternately" in res.stdout and res.stdout.count("step x1.04") == 2, res.stdout


def test_compare_reports_a_step_two_nights_ago_from_the_history(tmp_path):
    db = tmp_path / "h.db"
    with History.open(db) as h:
        ids = nightly(h, 25, step_at=22, step=1.07)
    res = cli("compare", "--history", str(db), "--json", str(tmp_path / "c.json"))
    data = json.loads((tmp_path / "c.json").read_text())
    assert data["current"]["run_id"] == ids[-1] and data["baseline"]["run_id"] == ids[-2]
    steps = [t for t in data["trends"] if t["metric"] == "latency" and t["cell"].startswith("none")]
    assert steps and steps[0]["run_id"] == ids[22] and steps[0]["runs_ago"] == 2 and steps[0]["direction"] == "worse", res.stdout
    assert "TREND" in res.stdout
    failing = cli("compare", "--history", str(db), "--fail-on-trend")
    assert failing.returncode == 1


def test_history_noise_measures_a_techniques_ratio_to_the_baseline_cell_run_by_run(tmp_path):
    """Runs whose none and int8 cells drift together by up to 6%: the cells' own run-to-run noise is
    large, their ratio's small, and history_noise gives both, the ratio under (cell, metric, 'relative')."""
    import random

    rnd = random.Random(3)
    with History.open(tmp_path / "h.db") as h:
        for i in range(12):
            drift = math.exp(rnd.uniform(-0.06, 0.06))
            rid = f"run-{i:02d}"
            m = {**meta(rid, f"2026-01-{i + 1:02d}"), "baseline": "none"}
            h.record(m, [row("none", 1, 0.010 * drift, seed=i, run=rid), row("int8", 1, 0.012 * drift, seed=i, run=rid)])
        cur = {**meta("run-12", "2026-01-13"), "baseline": "none"}
        noise = history.history_noise(h, cur, [row("none", 1, 0.01, seed=99, run="run-12"), row("int8", 1, 0.012, seed=99, run="run-12")])
    own, rel = noise[("int8-1", "latency")], noise[("int8-1", "latency", "relative")]
    assert ("none-1", "latency", "relative") not in noise  # the baseline's cell has no partner
    assert math.sqrt(rel.var) < 0.01 < math.sqrt(own.var), (own, rel)
    assert "relative" in rel.source


def test_history_noise_reads_each_cells_series_once(tmp_path, monkeypatch):
    """Two techniques relative to one baseline cell: each cell's latency series is read from the
    database once, not once for its own noise and again for every cell judged relative to it."""
    with History.open(tmp_path / "h.db") as h:
        for i in range(8):
            rid = f"run-{i:02d}"
            h.record({**meta(rid, f"2026-01-{i + 1:02d}"), "baseline": "none"},
                     [row(t, 1, 0.01 * (1 + 0.1 * k), seed=i, run=rid) for k, t in enumerate(("none", "int8", "int4"))])
        reads: list[tuple[str, str]] = []
        series = History.series

        def counted(self, suite, cell, metric, **kw):
            reads.append((cell, metric))
            return series(self, suite, cell, metric, **kw)

        monkeypatch.setattr(History, "series", counted)
        cur = {**meta("run-08", "2026-01-09"), "baseline": "none"}
        rows = [row(t, 1, 0.01, seed=99, run="run-08") for t in ("none", "int8", "int4")]
        noise = history.history_noise(h, cur, rows)
    assert {("int8-1", "latency", "relative"), ("int4-1", "latency", "relative")} <= set(noise)
    latency_reads = [cell for cell, metric in reads if metric == "latency"]
    assert sorted(latency_reads) == ["int4-1", "int8-1", "none-1"], reads


def test_a_cell_the_last_run_cannot_judge_is_judged_against_the_run_before_it(tmp_path):
    """Nightly on the 2-core VM: last night's run sat in the machine's other state (speed probe 8%
    higher, kernels slowed unalike), so tonight's cells are not comparable with it. compare looks
    further back for a run in tonight's state and says which run it judged them against."""
    db = tmp_path / "h.db"

    def rows(rid, seed, *, probe=2.5e-4, slower=1.0, int8=1.0):
        return [row("none", 1, 0.010 * slower, seed=seed, run=rid, rounds=10, probe=probe),
                row("int8", 1, 0.008 * slower * 1.15 ** (slower != 1.0) * int8, seed=seed, run=rid, rounds=10, probe=probe)]

    def nightly_meta(rid, day):
        return {**meta(rid, f"2026-01-0{day}"), "baseline": "none"}  # int8 judged relative to none, as in the quickstart

    with History.open(db) as h:
        h.record(nightly_meta("r1", 1), rows("r1", 1))
        h.record(nightly_meta("r2", 2), rows("r2", 2, probe=2.7e-4, slower=1.1))
        slowed = rows("r3", 3, int8=1.08)
        h.record(nightly_meta("r3", 3), slowed, history.verdict_against_predecessor(h, nightly_meta("r3", 3), slowed))
        assert h.runs(limit=1)[0]["regressions"] == 1  # the verdict stored with the run looks back too

    res = cli("compare", "--history", str(db), "--json", str(tmp_path / "c.json"))
    assert res.returncode == 1, res.stdout + res.stderr
    data = json.loads((tmp_path / "c.json").read_text())
    assert data["baseline"]["run_id"] == "r2"
    lat = {r["name"].split(" ")[0]: r for r in data["results"] if r["metric"] == "latency"}
    assert lat["int8"]["status"] == "regression" and lat["int8"]["baseline_run"] == "r1", lat
    assert lat["none"]["status"] == "unchanged" and lat["none"]["baseline_run"] == "r1", lat
    assert "against run r1 of 2026-01-01: in the baseline run it was not comparable" in res.stdout, res.stdout
    # a baseline named on the command line is the one used: the cells stay not comparable
    named = cli("compare", "--history", str(db), "--baseline", "r2", "--json", str(tmp_path / "n.json"))
    assert named.returncode == 0, named.stdout + named.stderr
    assert {r["status"] for r in json.loads((tmp_path / "n.json").read_text())["results"] if r["metric"] == "latency"} \
        == {"not comparable"}


def test_the_commit_is_the_suite_repositorys_else_the_working_directorys(monkeypatch, tmp_path):
    from optbench import envinfo

    def repo(path: Path) -> str:
        path.mkdir()
        git = ["git", "-C", str(path), "-c", "user.name=t", "-c", "user.email=t@t"]
        subprocess.run([*git[:3], "init", "-q"], check=True)
        (path / "f").write_text(str(path))
        subprocess.run([*git, "add", "f"], check=True)
        subprocess.run([*git, "commit", "-qm", "x"], check=True)
        return subprocess.run([*git[:3], "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()

    checkout, suites, outside = repo(tmp_path / "checkout"), repo(tmp_path / "suites"), tmp_path / "outside"
    outside.mkdir()
    monkeypatch.chdir(tmp_path / "checkout")
    assert envinfo.fingerprint(1, {}, {}, cwd=str(tmp_path / "suites"))["git"]["commit"] == suites
    # a suite written outside any repository (a CI step's temporary variant): the checkout it runs from
    assert envinfo.fingerprint(1, {}, {}, cwd=str(outside))["git"] == {"commit": checkout, "dirty": False}


def test_a_nightly_compare_over_history_does_not_import_scipy_stats(tmp_path):
    # scipy.stats takes ~1 s to import on the 2-core VM, more than the compare of a 365-run history
    # itself (benchmarks/test_compare_benchmarks.py); the t quantiles come from scipy.special
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        from make_history import build
    finally:
        sys.path.pop(0)
    db = tmp_path / "h.db"
    build(db, runs=12)
    code = ("import sys; from optbench.cli import main; rc = main(['compare', '--history', sys.argv[1], '--json', sys.argv[2]]); "
            "print(rc, 'scipy.stats' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(db), str(tmp_path / "c.json")], capture_output=True, text=True, timeout=120)
    data = json.loads((tmp_path / "c.json").read_text())
    assert any(t["metric"] == ALTERNATED for t in data["trends"]), data["trends"]  # the alternated series was read
    assert out.stdout.split()[-2:] == ["0", "False"], out.stdout + out.stderr

"""The runner: each cell in its own process; crashes, hangs and errors cost one cell; resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import FAST_MEASURE, SMALL_MODEL, cli, make_dist, rows_of

FAULTS_PLUGIN = r"""
import os, signal, time
from optbench import hookimpl, Technique, SkipCell

class Crash(Technique):
    name = "crash"
    def apply(self, model, params, ctx):
        os.kill(os.getpid(), signal.SIGKILL)   # what the OOM killer does

class Hang(Technique):
    name = "hang"
    def apply(self, model, params, ctx):
        time.sleep(120)
        return model

class Raise(Technique):
    name = "raise"
    def apply(self, model, params, ctx):
        raise RuntimeError("deliberate failure")

class Multiline(Technique):
    name = "multiline"
    def apply(self, model, params, ctx):
        raise RuntimeError("first line\n\x1b[1msecond line\x1b[0m\nthird")

class Skip(Technique):
    name = "skip"
    def apply(self, model, params, ctx):
        raise SkipCell("needs hardware this machine lacks")

@hookimpl
def optbench_register_techniques(register):
    for t in (Crash(), Hang(), Raise(), Multiline(), Skip()):
        register(t)
"""


@pytest.fixture
def faults_env(tmp_path):
    root = make_dist(tmp_path / "site", "optbench-faults", "0.1", "optbench_faults", FAULTS_PLUGIN, entry="faults")
    return {"PYTHONPATH": str(root)}


def suite_text(techniques: str, batch: str = "1", timeout: float = 60) -> str:
    return f"""name: faults
model: {SMALL_MODEL}
workload: {{batch: {batch}, seq_len: 16}}
measure: {FAST_MEASURE}
timeout: {timeout}
techniques: {techniques}
"""


def test_crash_hang_and_error_fail_only_their_cell_and_resume_reruns_them(tmp_path, faults_env):
    suite = tmp_path / "s.yaml"
    suite.write_text(suite_text("[none, crash, hang, raise, multiline, skip]", timeout=20))
    out = tmp_path / "out"
    run = cli("run", str(suite), "-o", str(out), env_extra=faults_env)
    assert run.returncode == 0, run.stderr
    rows = {r["technique"]["label"]: r for r in rows_of(out)}
    assert rows["none"]["status"] == "ok"
    assert rows["crash"]["status"] == "failed" and "SIGKILL" in rows["crash"]["reason"]
    assert rows["hang"]["status"] == "failed" and rows["hang"]["reason"] == "timed out after 20 s"
    assert rows["raise"]["status"] == "failed"
    assert rows["raise"]["reason"] == "technique 'raise' from plugin 'faults' (dist optbench-faults 0.1): RuntimeError: deliberate failure"
    assert "deliberate failure" in rows["raise"]["traceback"]
    assert rows["multiline"]["reason"].endswith("RuntimeError: first line")  # reasons are one line
    assert "second line" in rows["multiline"]["traceback"]
    assert rows["skip"]["status"] == "skipped" and rows["skip"]["reason"] == "needs hardware this machine lacks"
    report = (out / "report.md").read_text()
    assert "4 failed, 1 skipped" in report and "timed out after 20 s" in report

    # Running again resumes: the ok and skipped cells are not run again, failed ones are.
    again = cli("run", str(suite), "-o", str(out), env_extra=faults_env, timeout=300)
    assert "resuming" in again.stdout and "2 already done" in again.stdout
    all_rows = rows_of(out)
    assert [r["technique"]["label"] for r in all_rows].count("none") == 1
    assert [r["technique"]["label"] for r in all_rows].count("raise") == 2
    assert "2 already done" in again.stdout


def test_truncated_last_line_is_ignored_and_the_cell_rerun(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text(suite_text("[none]", batch="[1, 2]"))
    out = tmp_path / "out"
    assert cli("run", str(suite), "-o", str(out)).returncode == 0
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 2
    # a crash mid-write leaves half a line: keep the first row, cut the second in half
    (out / "results.jsonl").write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2])
    again = cli("run", str(suite), "-o", str(out))
    assert again.returncode == 0, again.stderr
    rows = rows_of_tolerant(out)
    assert sorted(r["workload"]["batch"] for r in rows) == [1, 2]
    assert "1 cells run, 1 already done" in again.stdout
    assert cli("report", str(out)).returncode == 0


def rows_of_tolerant(out):
    rows = []
    for line in (out / "results.jsonl").read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return rows


def test_ctrl_c_keeps_finished_cells_and_resumes(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text(suite_text("[none]", batch="[1, 2, 3, 4, 5, 6]"))
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "optbench", "run", str(suite), "-o", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            # as from a terminal: a shell's background job (CI scripts run with &) inherits SIGINT
                            # ignored, and Python then installs no KeyboardInterrupt handler
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    results = out / "results.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (results.exists() and results.read_text().count("\n") >= 1):
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends: the whole process group
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, (stdout, stderr)
    assert "interrupted" in stdout
    finished = rows_of(out)
    assert 1 <= len(finished) < 6 and all(r["status"] == "ok" for r in finished)
    assert (out / "report.html").exists()
    again = cli("run", str(suite), "-o", str(out))
    assert again.returncode == 0
    assert f"{6 - len(finished)} cells run, {len(finished)} already done" in again.stdout
    assert sorted(r["workload"]["batch"] for r in rows_of(out)) == [1, 2, 3, 4, 5, 6]


def test_rows_record_what_produced_them(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text(suite_text("[none]"))
    out = tmp_path / "out"
    assert cli("run", str(suite), "-o", str(out)).returncode == 0
    (row,) = rows_of(out)
    assert row["schema"] == 1 and row["status"] == "ok"
    assert row["plugins"]["quantize"].startswith("optbench==")
    assert row["backend_info"]["threads"] >= 1
    lat = row["metrics"]["latency"]
    assert lat["n"] >= 5 and len(lat["samples"]) == lat["n"]
    assert lat["ci95"][0] <= lat["median"] <= lat["ci95"][1]
    assert len(lat["speed_probe_s"]) == 2 and all(0 < p < 1 for p in lat["speed_probe_s"])
    assert 0 < row["harness_overhead_s"] < row["seconds"]
    run = json.loads((out / "run.json").read_text())
    env = run["environment"]
    assert env["cpu"] and env["packages"]["torch"] and env["plugins"]["cpu"].startswith("optbench==")
    assert run["suite_sha256"] and run["segments"][0]["cells_todo"] == 1


def test_rounds_interleave_cells_time_again_and_pool_the_samples(tmp_path, faults_env):
    suite = tmp_path / "s.yaml"
    suite.write_text(suite_text("[none, quantize, skip]").replace("timeout: 60", "timeout: 60\nrounds: 3"))
    out = tmp_path / "out"
    run = cli("run", str(suite), "-o", str(out), env_extra=faults_env)
    assert run.returncode == 0, run.stderr
    assert "7 cell runs (3 interleaved rounds)" in run.stdout  # the skipped cell is not run again
    written = rows_of(out)
    # round-major order: every cell once before any cell twice
    assert [(r["round"], r["technique"]["name"]) for r in written] == [
        (1, "none"), (1, "quantize"), (1, "skip"), (2, "none"), (2, "quantize"), (3, "none"), (3, "quantize")]
    # later rounds only time again; what does not change (bytes, accuracy) was measured once
    assert "perplexity" in written[0]["metrics"] and "perplexity" not in written[3]["metrics"]
    assert "latency" in written[3]["metrics"]

    from optbench.results import read_rows, rows_by_cell

    merged = {r["technique"]["name"]: r for r in rows_by_cell(read_rows(out)).values()}
    lat = merged["none"]["metrics"]["latency"]
    per_round = [r["metrics"]["latency"] for r in written if r["technique"]["name"] == "none"]
    assert lat["n"] == sum(p["n"] for p in per_round) == len(lat["samples"])
    assert [x["median"] for x in lat["rounds"]] == [p["median"] for p in per_round]
    assert len(lat["speed_probe_s"]) == 6
    assert merged["none"]["metrics"]["throughput"]["value"] == 16 / lat["median"]
    assert merged["none"]["metrics"]["perplexity"] == written[0]["metrics"]["perplexity"]
    assert merged["skip"]["status"] == "skipped"
    report = (out / "report.md").read_text()
    assert "quantize" in report

    # resume after losing the last round's rows: only those cell rounds run again
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in written[:5]))
    again = cli("run", str(suite), "-o", str(out), env_extra=faults_env)
    assert again.returncode == 0, again.stderr
    assert "2 cell runs (3 interleaved rounds), 5 already done" in again.stdout  # cell runs, as it counts what it ran
    assert [(r["round"], r["technique"]["name"]) for r in rows_of(out)][5:] == [(3, "none"), (3, "quantize")]


def test_merge_rounds_flags_rounds_that_disagree_and_a_failed_round():
    from optbench.results import merge_rounds

    def row(rnd, samples, status="ok"):
        lat = {"median": sorted(samples)[len(samples) // 2], "n": len(samples), "ci95": [min(samples), max(samples)],
               "samples": samples, "warmup": 3, "unit": "s", "speed_probe_s": [0.001, 0.001], "unstable_ratio": 1.5}
        return {"cell": "k", "round": rnd, "status": status, "reason": "boom" if status == "failed" else "", "seconds": 1.0,
                "metrics": {"latency": lat, "throughput": {"value": 1.0, "per": "latency", "numerator": 8, "unit": "tokens/s"}}}

    steady = merge_rounds([row(1, [1.0, 1.01, 0.99] * 4), row(2, [1.02, 1.0, 1.01] * 4)])
    assert not steady["metrics"]["latency"]["unstable"] and "unstable" not in steady
    assert steady["metrics"]["throughput"]["value"] == 8 / steady["metrics"]["latency"]["median"]
    assert steady["seconds"] == 2.0 and steady["rounds_merged"] == [1, 2]

    drift = merge_rounds([row(1, [1.0, 1.01, 0.99] * 4), row(2, [2.0, 2.02, 1.98] * 4)])
    assert drift["metrics"]["latency"]["unstable"]
    assert "round medians differ 2.00x" in drift["unstable"]

    failed = merge_rounds([row(1, [1.0] * 6), row(2, [1.0] * 6, status="failed")])
    assert failed["status"] == "failed" and failed["reason"] == "round 2: boom"


def run_rounds(tmp_path, techniques: str, rounds: int, measure: str):
    """Run a small suite with ``rounds`` and extra ``measure`` settings ('settle_s: 2'): the run and its results dir."""
    suite = tmp_path / "s.yaml"
    text = suite_text(techniques).replace("timeout: 60", f"timeout: 60\nrounds: {rounds}")
    suite.write_text(text.replace("eval_seq_len: 32}", f"eval_seq_len: 32, {measure}}}"))
    out = tmp_path / "out"
    run = cli("run", str(suite), "-o", str(out))
    assert run.returncode == 0, run.stderr
    return run, out


def test_paired_s_times_a_technique_alternately_with_the_baseline_model_in_its_later_rounds(tmp_path):
    _, out = run_rounds(tmp_path, "[none, {quantize: {method: torch-dynamic-int8}}]", 2, "paired_s: 0.2")
    lat = {(r["technique"]["label"], r["round"]): r["metrics"]["latency"] for r in rows_of(out)}
    # round 1 (memory is measured there) and the baseline's own cell time no alternation
    assert [k for k, v in lat.items() if "paired" in v] == [("torch-dynamic-int8", 2)]
    p = lat[("torch-dynamic-int8", 2)]["paired"]
    assert p["blocks"] >= 4 and min(p["n"]) >= 4 and p["ratio"] == pytest.approx(p["median"] / p["base_median"])
    assert 0.2 < p["ratio"] < 5 and p["speed_probe_s"] > 0

    from optbench.compare import Measurement
    from optbench.results import read_rows, rows_by_cell

    merged = {r["technique"]["label"]: r for r in rows_by_cell(read_rows(out)).values()}
    rounds = merged["torch-dynamic-int8"]["metrics"]["latency"]["rounds"]
    assert "paired" not in rounds[0] and rounds[1]["paired"]["ratio"] == p["ratio"]
    m = Measurement.from_row(merged["torch-dynamic-int8"], "latency")
    assert m.paired == (0.0, p["ratio"]) and m.paired_base == (0.0, p["base_median"])
    assert Measurement.from_row(merged["none"], "latency").paired == ()


def test_settle_gives_a_cells_later_rounds_the_fastest_state_of_its_earlier_ones(tmp_path):
    run, out = run_rounds(tmp_path, "[none]", 3, "settle_s: 2")
    lats = [r["metrics"]["latency"] for r in rows_of(out)]
    assert "settle" not in lats[0]  # round 1 has no earlier state to wait for
    assert lats[1]["settle"]["level"] == lats[0]["speed_probe_s"][-1]
    assert lats[2]["settle"]["level"] == min(lats[0]["speed_probe_s"][-1], lats[1]["speed_probe_s"][-1])
    for lat in lats[1:]:
        assert 0 <= lat["settle"]["waited_s"] and all(len(a["speed_probe_s"]) == 2 for a in lat["settle"]["set_aside"])

    from optbench.results import read_rows, rows_by_cell

    (merged,) = rows_by_cell(read_rows(out)).values()
    rounds = merged["metrics"]["latency"]["rounds"]
    assert "waited_s" not in rounds[0] and all("waited_s" in r and "set_aside" in r for r in rounds[1:])
    assert "later cell rounds waited for their machine state" in run.stdout


def run_disturbed(tmp_path, monkeypatch, disturbed: str, extend_s: float, rounds: int = 3):
    """Run none and int8 (alternated with the baseline's model) for ``rounds`` rounds, the cells'
    latencies reading 2.5x in the ``disturbed`` rounds and the speed probe not (a neighbour on the
    other core, tests/disturb_plugin.py): rows by cell, run.json."""
    import disturb_plugin
    from optbench import manager
    from optbench.testing import run_suite_yaml

    monkeypatch.setenv("OPTBENCH_TEST_ROUND_FILE", str(tmp_path / "round"))
    monkeypatch.setenv("OPTBENCH_TEST_DISTURBED", disturbed)
    monkeypatch.setenv("OPTBENCH_TEST_DISTURB", "latency")
    pm = manager.load()
    assert pm.register(disturb_plugin, "disturb")
    text = suite_text("[none, {quantize: {method: torch-dynamic-int8}}]").replace(
        "eval_seq_len: 32}", f"eval_seq_len: 32, paired_s: 0.1, extend_s: {extend_s}}}") + f"rounds: {rounds}\n"
    out = tmp_path / "out"
    outcome = run_suite_yaml(text, out, pm=pm, fast=False)
    by: dict[str, list[dict]] = {}
    for r in rows_of(out):
        by.setdefault(r["technique"]["label"], []).append(r)
    return outcome, by, json.loads((out / "run.json").read_text())


def test_extend_s_times_a_disturbed_cell_again_until_it_has_rounds_in_the_quiet_state(tmp_path, monkeypatch):
    # round 1 quiet, rounds 2-3 disturbed (the probe did not see it, the latencies did): none has 1
    # quiet round, int8 none (round 1 has no alternation, which its quiet rounds need); both get
    # rounds until they have 6
    outcome, by, meta = run_disturbed(tmp_path, monkeypatch, "2-3", extend_s=120)
    assert [r["metrics"]["latency"]["median"] for r in by["none"][:3]] == [1e-3, 2.5e-3, 2.5e-3]
    assert [r["round"] for r in by["none"]] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert [r["round"] for r in by["torch-dynamic-int8"]] == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    extra = [r for rs in by.values() for r in rs if r["round"] > 3]
    assert all(r["status"] == "ok" for r in extra)
    # an extra round waits for the quiet state at the wider margin, from the cell's fastest round:
    # its probe and its own latency
    assert all(r["metrics"]["latency"]["settle"]["level"] == 100e-6 for r in extra)
    assert all(r["metrics"]["latency"]["settle"]["quiet_median"] == 1e-3 for r in extra)
    assert all(r["metrics"]["latency"]["median"] == 1e-3 for r in extra)
    assert all(r["metrics"]["latency"]["paired"]["base_median"] == 1e-3 for r in by["torch-dynamic-int8"] if r["round"] > 3)
    ext = meta["segments"][-1]["extend"]
    assert ext["rounds"] == 11 and ext["short"] == {} and not outcome.interrupted

    from optbench.compare import Measurement
    from optbench.results import rows_by_cell

    merged = {r["technique"]["label"]: r for r in rows_by_cell([r for rs in by.values() for r in rs]).values()}
    m = Measurement.from_row(merged["torch-dynamic-int8"], "latency")
    assert m.round_ids == tuple(range(1, 10)) and sum(b == 1e-3 for b in m.paired_base) == 6


def test_extend_s_stops_at_its_deadline_and_says_which_cells_are_still_short(tmp_path):
    # through the command line, the plugin installed as a third party's would be
    site = make_dist(tmp_path / "site", "disturb-plugin", "1.0", "disturb_plugin",
                     (Path(__file__).parent / "disturb_plugin.py").read_text())
    suite = tmp_path / "s.yaml"
    suite.write_text(suite_text("[none, {quantize: {method: torch-dynamic-int8}}]").replace(
        "eval_seq_len: 32}", "eval_seq_len: 32, paired_s: 0.1, extend_s: 2}") + "rounds: 3\n")
    out = tmp_path / "out"
    run = cli("run", str(suite), "-o", str(out), "--no-history", env_extra={
        "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])),
        "OPTBENCH_TEST_ROUND_FILE": str(tmp_path / "round"), "OPTBENCH_TEST_DISTURBED": "2-", "OPTBENCH_TEST_DISTURB": "both"})
    assert run.returncode == 0, run.stderr
    by: dict[str, list[dict]] = {}
    for r in rows_of(out):
        by.setdefault(r["technique"]["label"], []).append(r)
    ext = json.loads((out / "run.json").read_text())["segments"][-1]["extend"]
    # the first extra round waited out the deadline in the disturbed state, and its timing stands;
    # no cell was timed after it, and both are reported short
    assert [max(r["round"] for r in rs) for rs in by.values()] == [4, 3]
    last = by["none"][-1]["metrics"]["latency"]
    assert last["settle"]["waited_s"] >= 0.25 and last["speed_probe_s"] == [250e-6, 250e-6] and last["median"] == 2.5e-3
    assert ext["short"] == {by["none"][0]["cell"]: 1, by["torch-dynamic-int8"][0]["cell"]: 0} and ext["rounds"] == 1
    assert "extend_s: 1 extra cell rounds in" in run.stdout
    assert "2 cells still under 6 rounds in the quiet state (compare may find them not comparable)" in run.stdout


def test_extend_s_adds_no_round_to_a_run_timed_in_the_quiet_state(tmp_path, monkeypatch):
    _, by, meta = run_disturbed(tmp_path, monkeypatch, "", extend_s=120, rounds=7)
    # int8 has 6 alternated rounds (2-7), none 7 rounds: every cell has its 6 quiet rounds
    assert {max(r["round"] for r in rs) for rs in by.values()} == {7} and "extend" not in meta["segments"][-1]

"""optbench compare: the decision rule on synthetic samples, whole-run comparisons, CI outputs, end-to-end runs."""

from __future__ import annotations

import json
import math
import random
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from helpers import FAST_MEASURE, cli, make_dist
from optbench.compare import (
    DRIFT_SD,
    IMPROVEMENT,
    NOT_COMPARABLE,
    REGRESSION,
    UNCHANGED,
    Measurement,
    Noise,
    alternated_series,
    compare_runs,
    decide,
    noise_from_series,
    rule_for,
)
from optbench.measure.latency import summarize

LATENCY = rule_for("latency")


def timed(round_medians, spread=0.003, n=40, probe=2.5e-4, seed=0, slow="", unstable=""):
    """A timed measurement: per-round medians, raw samples correlated within each round."""
    rnd = random.Random(seed)
    samples = [m * (1 + rnd.gauss(0, spread)) for m in round_medians for _ in range(n)]
    return Measurement(value=sorted(samples)[len(samples) // 2], rounds=tuple(round_medians), samples=tuple(samples),
                       probes=tuple(probe for _ in round_medians), slow=slow, unstable=unstable, unit="s")


def rounds_with(level, k=5, noise=0.005, seed=0):
    rnd = random.Random(seed)
    return [level * math.exp(rnd.gauss(0, noise)) for _ in range(k)]


# --- the decision rule on synthetic samples ------------------------------------------------------


def test_drifting_but_unchanged_runs_do_not_flag_where_raw_sample_mann_whitney_would():
    # the machine drifts by ~1.5% from round to round and the second run sits 3% higher overall:
    # inside each process the samples are tight, so a raw-sample test calls it highly significant
    base = timed([0.0100, 0.0103, 0.0099, 0.0102, 0.0098], seed=1)
    cur = timed([0.0104, 0.0101, 0.0106, 0.0102, 0.0107], seed=2)
    from scipy.stats import mannwhitneyu

    assert mannwhitneyu(cur.samples, base.samples).pvalue < 1e-6
    v = decide(base, cur, LATENCY)
    assert v.status == UNCHANGED, v
    assert v.ci95[0] < 1 < v.ci95[1] or v.p > 0.001


def test_a_clean_5_percent_slowdown_is_flagged_and_a_speedup_is_an_improvement():
    base = timed(rounds_with(0.010, seed=3), seed=3)
    cur = timed(rounds_with(0.0105, seed=4), seed=4)
    v = decide(base, cur, LATENCY)
    assert v.status == REGRESSION and v.p < 0.001, v
    assert v.ci95[0] > 1.0 and v.ratio == pytest.approx(1.05, rel=0.01)
    assert decide(cur, base, LATENCY).status == IMPROVEMENT


def test_a_precisely_measured_change_below_the_threshold_is_not_flagged():
    base = timed(rounds_with(0.010, noise=0.001, seed=5), seed=5)
    cur = timed(rounds_with(0.0102, noise=0.001, seed=6), seed=6)   # a real, significant +2%
    v = decide(base, cur, LATENCY)
    assert v.p < 0.001 and v.status == UNCHANGED, v


def test_a_10x_slow_mode_run_is_not_comparable_not_a_regression():
    base = timed(rounds_with(0.010, seed=7), seed=7)
    slow_run = timed([x * 10 for x in rounds_with(0.010, seed=8)], probe=2.5e-3, seed=8)   # everything 10x, probe too
    v = decide(base, slow_run, LATENCY)
    assert v.status == NOT_COMPARABLE and "speed probe" in v.reason
    flagged = timed([x * 10 for x in rounds_with(0.010, seed=8)], slow="speed probe 9.8x the run's fastest so far")
    assert decide(base, flagged, LATENCY).status == NOT_COMPARABLE
    bimodal = timed(rounds_with(0.011, seed=9), unstable="bimodal: 12% of samples are over 2x the median")
    assert decide(base, bimodal, LATENCY).status == NOT_COMPARABLE


def test_history_noise_widens_the_interval_so_night_to_night_drift_is_not_a_regression():
    base = timed(rounds_with(0.010, noise=0.002, seed=10), seed=10)
    cur = timed(rounds_with(0.0106, noise=0.002, seed=11), seed=11)
    assert decide(base, cur, LATENCY).status == REGRESSION
    # the history says two nights differ by ~4% (sd of a run-to-run difference) on this machine
    drifty = Noise(var=0.04 ** 2, df=20, source="history")
    v = decide(base, cur, LATENCY, history=drifty)
    assert v.status == UNCHANGED and "history" in v.method


def test_one_round_and_no_history_falls_back_to_asv_rule_and_says_so():
    base = timed([0.010], n=60, spread=0.01, seed=12)
    cur = timed([0.012], n=60, spread=0.01, seed=13)
    v = decide(base, cur, LATENCY)
    assert v.status == REGRESSION and "Mann-Whitney" in v.method and "rounds >= 3" in v.method


def test_deterministic_metrics_flag_changes_past_their_threshold_in_their_worse_direction():
    def value(x):
        return Measurement(value=x)

    assert decide(value(1000), value(1020), rule_for("model_bytes")).status == REGRESSION          # +2% > 1%
    assert decide(value(1000), value(1005), rule_for("model_bytes")).status == UNCHANGED           # +0.5%
    assert decide(value(3.00), value(3.06), rule_for("perplexity")).status == REGRESSION
    assert decide(value(0.70), value(0.68), rule_for("top1_accuracy")).status == REGRESSION        # lower is worse
    assert decide(value(0.70), value(0.72), rule_for("top1_accuracy")).status == IMPROVEMENT
    assert decide(value(0.0), value(5e-4), rule_for("kl_divergence")).status == UNCHANGED         # under the 1e-3 floor
    assert decide(value(0.0), value(0.02), rule_for("kl_divergence")).status == REGRESSION
    assert decide(value(100), value(200), rule_for("throughput")).status == UNCHANGED              # judged through latency


def test_suite_thresholds_override_the_defaults_and_accept_aliases():
    assert rule_for("latency").threshold == 0.05
    assert rule_for("latency", {"latency_p50": "+10%"}).threshold == pytest.approx(0.10)
    assert rule_for("perplexity", {"perplexity": "2%"}).threshold == pytest.approx(0.02)
    custom = rule_for("my_metric")
    assert not custom.judged
    assert rule_for("my_metric", {"my_metric": "3%"}).judged
    assert not rule_for("my_tokens_per_s", {"my_tokens_per_s": "3%"}).higher_is_worse


# --- whole runs: synthetic rows -----------------------------------------------------------------------

ENV = {"id": "e1", "cpu": "AMD EPYC", "cpu_count": 2, "gpu": [], "python": "3.11.7", "threads": 2, "omp": {},
       "packages": {"torch": "2.13.0+cpu"}, "git": {"commit": "a" * 40}, "plugins": {"quantize": "optbench==0.1.0"}}


def row(label, batch, level, *, seed, run="r1", ppl=2.73, nbytes=13_000_000, status="ok", reason="", rounds=5, noise=0.004, probe=2.5e-4,
        slow_machine=""):
    rnd = random.Random(f"{seed}-{label}-{batch}")
    medians = [level * math.exp(rnd.gauss(0, noise)) for _ in range(rounds)]
    samples = [m * (1 + rnd.gauss(0, 0.01)) for m in medians for _ in range(30)]
    lat = {**summarize(samples).to_dict(), "speed_probe_s": [probe] * (2 * rounds)}
    lat["rounds"] = [{"round": i + 1, "median": m, "n": 30, "ci95": [m * 0.99, m * 1.01]} for i, m in enumerate(medians)]
    r = {"schema": 1, "run_id": run, "cell": f"{label}-{batch}", "suite": "demo", "status": status, "reason": reason,
         "technique": {"name": label, "label": label, "params": {}}, "backend": "cpu", "model": {"source": "reference", "size": "tiny"},
         "workload": {"kind": "forward", "batch": batch, "seq_len": 128},
         "metrics": {} if status != "ok" else {"latency": lat, "perplexity": {"value": ppl, "unit": ""},
                                               "model_bytes": {"value": nbytes, "unit": "B"},
                                               "throughput": {"value": 128 * batch / lat["median"], "unit": "tokens/s"}}}
    if slow_machine:
        r["slow_machine"] = slow_machine
    return r


def meta(run_id, started, env=None, sha="s1", thresholds=None):
    return {"run_id": run_id, "suite": "demo", "started": started, "suite_sha256": sha, "environment": env or ENV,
            "thresholds": thresholds or {}, "rounds": 5, "segments": [{"started": started, "finished": started, "interrupted": False}]}


def write_run(d: Path, m: dict, rows: list[dict]) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "run.json").write_text(json.dumps(m))
    (d / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d


def test_runs_compare_cell_by_cell_with_added_removed_and_failed_cells():
    base = [row("none", 1, 0.010, seed=1), row("int8", 1, 0.008, seed=1), row("old", 1, 0.02, seed=1), row("crashy", 1, 0.01, seed=1)]
    cur = [row("none", 1, 0.010, seed=2, run="r2"), row("int8", 1, 0.0092, seed=2, run="r2"), row("new", 1, 0.02, seed=2, run="r2"),
           row("crashy", 1, 0.01, seed=2, run="r2", status="failed", reason="cell process killed by SIGKILL")]
    cmp = compare_runs(meta("r1", "2026-01-01"), base, meta("r2", "2026-01-02", sha="s2"), cur)
    regs = {(r.name, r.metric) for r in cmp.regressions}
    assert regs == {("int8 cpu b=1 s=128", "latency")}
    assert [c.name for c in cmp.failing_cells] == ["crashy cpu b=1 s=128"]
    assert cmp.added == ["new cpu b=1 s=128"] and cmp.removed == ["old cpu b=1 s=128"]
    assert cmp.suite_changed and cmp.regressed
    none_lat = next(r for r in cmp.results if r.name.startswith("none") and r.metric == "latency")
    assert none_lat.verdict.status == UNCHANGED


def test_a_different_environment_makes_every_cell_not_comparable_but_a_new_commit_does_not():
    base = [row("none", 1, 0.010, seed=1)]
    cur = [row("none", 1, 0.020, seed=2, run="r2")]
    other_cpu = {**ENV, "id": "e2", "cpu": "Intel Xeon"}
    cmp = compare_runs(meta("r1", "1"), base, meta("r2", "2", env=other_cpu), cur)
    assert not cmp.regressed and cmp.cells[0].status == NOT_COMPARABLE and "cpu: AMD EPYC -> Intel Xeon" in cmp.cells[0].reason
    new_commit = {**ENV, "git": {"commit": "b" * 40}}
    assert compare_runs(meta("r1", "1"), base, meta("r2", "2", env=new_commit), cur).regressed


def test_a_cell_slow_against_the_fastest_probe_of_both_runs_is_not_comparable():
    # the runner compares probes within a run only: a run that starts in the slow mode escapes it
    base = [row("none", 1, 0.010, seed=1)]
    cur = [row("none", 1, 0.100, seed=2, run="r2", probe=2.5e-3)]
    cmp = compare_runs(meta("r1", "1"), base, meta("r2", "2"), cur)
    lat = next(r for r in cmp.results if r.metric == "latency")
    assert lat.verdict.status == NOT_COMPARABLE and not cmp.regressed


def _run_rows(run, seed, none_level, quant_level, rounds=10, noise=0.015, shift=0.0):
    """A run of a baseline cell and a technique cell at b=8: ``shift`` moves the whole run (drift,
    every cell and round alike); each round's two cells share that round's machine state."""
    rnd = random.Random(f"shift-{seed}")
    round_shift = [math.exp(shift + rnd.gauss(0, noise)) for _ in range(rounds)]  # the machine, per round
    rows = []
    for label, level in (("none", none_level), ("int8", quant_level)):
        r = row(label, 8, level, seed=seed, run=run, rounds=rounds, noise=0.004)
        for rd, f in zip(r["metrics"]["latency"]["rounds"], round_shift, strict=True):
            rd["median"] *= f
        rows.append(r)
    return rows


def test_a_technique_is_judged_relative_to_the_baseline_cell_of_its_round_so_run_drift_cancels():
    base_meta = {**meta("r1", "1"), "baseline": "none"}
    cur_meta = {**meta("r2", "2"), "baseline": "none"}
    base = _run_rows("r1", 1, 0.050, 0.053)
    # the whole second run is 3% slower (the machine), nothing in the tree changed
    drift = compare_runs(base_meta, base, cur_meta, _run_rows("r2", 2, 0.050, 0.053, shift=0.03))
    assert not drift.regressed, [(r.name, r.verdict) for r in drift.regressions]
    # the same drift, and int8 5% slower: caught, relative to the baseline cell of each round
    slowed = compare_runs(base_meta, base, cur_meta, _run_rows("r2", 2, 0.050, 0.053 * 1.05, shift=0.03))
    (reg,) = slowed.regressions
    assert reg.name.startswith("int8") and "relative to the baseline's cell" in reg.verdict.method
    assert reg.verdict.ratio == pytest.approx(1.05, rel=0.01)
    # on absolute timings, the run's drift is taken for part of the change: +8%, not +5%
    absolute = compare_runs(base_meta, base, cur_meta, _run_rows("r2", 2, 0.050, 0.053 * 1.05, shift=0.03), relative=False)
    (v,) = [r.verdict for r in absolute.results if r.name.startswith("int8") and r.metric == "latency"]
    assert v.ratio == pytest.approx(1.05 * math.exp(0.03), rel=0.01) and "relative" not in v.method


def _state_rows(run, seed, slower_rounds=(), int8_level=0.0106, rounds=10):
    """Batch-1 rows of the 2-core VM as measured: in its slower state (``slower_rounds``) the speed
    probe after timing reads ~6% higher, none ~25% and int8 ~45% (int8/none 1.12x -> 1.30x)."""
    rows = []
    for label, level, slower in (("none", 0.0082, 1.25), ("int8", int8_level, 1.45)):
        r = row(label, 1, level, seed=seed, run=run, rounds=rounds, noise=0.01)
        for rd in r["metrics"]["latency"]["rounds"]:
            in_slower = rd["round"] in slower_rounds
            rd["median"] *= slower if in_slower else 1.0
            rd["probe"] = 2.03e-4 if in_slower else 1.91e-4 * (1 + 0.005 * ((rd["round"] * 7) % 3 - 1))
        rows.append(r)
    return rows


def test_rounds_in_the_vms_slower_state_are_left_out_and_a_run_mostly_in_it_is_not_comparable():
    base_meta, cur_meta = {**meta("r1", "1"), "baseline": "none"}, {**meta("r2", "2"), "baseline": "none"}
    base = _state_rows("r1", 1)
    # a run wholly in the slower state: every cell +25-45%, a false alarm without the state check
    slower = _state_rows("r2", 2, slower_rounds=range(1, 11))
    assert {r.name for r in compare_runs(base_meta, base, cur_meta, slower, state_margin=None).regressions} == \
        {"none cpu b=1 s=128", "int8 cpu b=1 s=128"}
    judged = compare_runs(base_meta, base, cur_meta, slower)
    lat = [r.verdict for r in judged.results if r.metric == "latency"]
    assert not judged.regressed and {v.status for v in lat} == {NOT_COMPARABLE}
    assert all("10 of 10 rounds timed in another machine state" in v.reason for v in lat), lat
    # four of ten rounds in the slower state: left out, the other six judged
    four = _state_rows("r2", 2, slower_rounds=(2, 4, 6, 8))

    def int8(cmp):
        (v,) = [r.verdict for r in cmp.results if r.name.startswith("int8") and r.metric == "latency"]
        return v

    assert int8(compare_runs(base_meta, base, cur_meta, four, state_margin=None)).ratio > 1.035  # 4 rounds at 1.16x
    v = int8(compare_runs(base_meta, base, cur_meta, four))
    assert v.status == UNCHANGED and v.ratio == pytest.approx(1.0, abs=0.015), v
    # a real 8% slowdown in the steady rounds is still caught
    slowed = compare_runs(base_meta, base, cur_meta, _state_rows("r2", 2, slower_rounds=(2, 4, 6, 8), int8_level=0.0106 * 1.08))
    assert [r.name for r in slowed.regressions] == ["int8 cpu b=1 s=128"]
    # both runs wholly in the slower state are comparable with each other
    both = compare_runs(base_meta, _state_rows("r1", 1, slower_rounds=range(1, 11)), cur_meta,
                        _state_rows("r2", 2, slower_rounds=range(1, 11)))
    assert {r.verdict.status for r in both.results if r.metric == "latency"} == {UNCHANGED}


def test_a_three_round_suite_keeps_its_rounds_when_one_was_timed_in_the_other_state():
    """Of 3 rounds, leaving one out leaves a t-test on 2 with no power: CI once missed a 2x
    slowdown that way. A round is left out only while 3 remain; with 2 of 3 off, not comparable."""
    base_meta, cur_meta = {**meta("r1", "1"), "baseline": "none"}, {**meta("r2", "2"), "baseline": "none"}
    base = _state_rows("r1", 1, slower_rounds=(3,), rounds=3)
    cur = _state_rows("r2", 2, slower_rounds=(3,), int8_level=0.0106 * 2, rounds=3)
    (v,) = [r.verdict for r in compare_runs(base_meta, base, cur_meta, cur).results if r.name.startswith("int8") and r.metric == "latency"]
    assert v.status == REGRESSION and "3+3 round medians" in v.method, v
    two_off = _state_rows("r2", 2, slower_rounds=(2, 3), int8_level=0.0106 * 1.3, rounds=3)
    (v,) = [r.verdict for r in compare_runs(base_meta, base, cur_meta, two_off).results if r.name.startswith("int8") and r.metric == "latency"]
    assert v.status == NOT_COMPARABLE and "2 of 3 rounds timed in another machine state" in v.reason, v
    # 2x is past what a switch of state does: flagged across states
    two_off = _state_rows("r2", 2, slower_rounds=(2, 3), int8_level=0.0106 * 2, rounds=3)
    (v,) = [r.verdict for r in compare_runs(base_meta, base, cur_meta, two_off).results if r.name.startswith("int8") and r.metric == "latency"]
    assert v.status == REGRESSION and "a state switch makes" in v.reason, v


def test_a_twenty_round_run_mostly_in_another_state_is_judged_on_its_six_or_more_rounds_in_the_shared_one():
    """In a noisy hour a 20-round run often has 7-8 rounds in the state of most rounds of both runs
    and the rest in another: those 7 are replicates enough for the t-test (its df say how few), so
    the cell is judged on them. Under 6 (and under half), not comparable. Rounds set aside as
    unstable count against the rounds in the state, not against all 20."""
    base_meta, cur_meta = {**meta("r1", "1"), "baseline": "none"}, {**meta("r2", "2"), "baseline": "none"}
    base = _state_rows("r1", 1, rounds=20)

    def int8(cur):
        (v,) = [r.verdict for r in compare_runs(base_meta, base, cur_meta, cur).results
                if r.name.startswith("int8") and r.metric == "latency"]
        return v

    seven = _state_rows("r2", 2, slower_rounds=range(8, 21), int8_level=0.0106 * 1.08, rounds=20)
    v = int8(seven)
    assert v.status == REGRESSION and "20+7 round medians" in v.method and v.ratio == pytest.approx(1.08, abs=0.02), v
    assert int8(_state_rows("r2", 2, slower_rounds=range(8, 21), rounds=20)).status == UNCHANGED
    five = _state_rows("r2", 2, slower_rounds=range(6, 21), int8_level=0.0106 * 1.08, rounds=20)
    v = int8(five)
    assert v.status == NOT_COMPARABLE and "15 of 20 rounds timed in another machine state" in v.reason, v
    # 12 rounds in the state, 2 of them disturbed: 10 clean of 12 is enough (it is not 10 of 20)
    twelve = _state_rows("r2", 2, slower_rounds=range(13, 21), int8_level=0.0106 * 1.08, rounds=20)
    cell = next(r for r in twelve if r["cell"] == "int8-1")
    for i in (2, 5):
        cell["metrics"]["latency"]["rounds"][i]["unstable"] = "p90 is 1.73x the median"
    v = int8(twelve)
    assert v.status == REGRESSION and "20+10 round medians" in v.method, v


def _alternated_rows(run, seed, *, int8_factor=1.0, slow_rounds=(), rounds=20, process_noise=0.08, alt_noise=0.015,
                     level=1.0, slope=0.0, disturbed=(), busy_rounds=(), hit_factor=1.09):
    """The quickstart's four cells as a noisy hour times them: each int8 cell round lands up to ~8%
    (sd) off its round's none cell, since the two run in separate processes seconds apart, while
    the same process timing int8 alternately with the baseline's model (``measure.paired_s``,
    rounds 2 on) sees 1.5%. The VM's slower state (``slow_rounds``) slows fp32 1.4x and int8/fp32
    goes from 1.10x to 1.45x at batch 1 (paired_timing.py measured 1.11x against 1.47x). Within a
    state the ratio follows the baseline model's latency with ``slope`` (log-log) and the run's
    baseline model runs ``level`` x its usual latency, spread 3% (sd) from round to round. Rounds in
    ``disturbed`` were disturbed while they alternated: int8/fp32 reads ``hit_factor`` (9%) higher, the baseline
    model 2%, and the speed probe taken right after reads 200 us, not 170 us. In ``busy_rounds`` a
    neighbour had one of the two cores: the baseline model runs 2.1x its usual latency and
    int8/fp32 reads 5% lower (an hour with a noisy neighbour: fp32 15-16 ms against 7, int8/fp32
    1.05x against 1.10x at batch 1), while the single-threaded speed probe reads as usual."""
    rows = _two_batch_rows(run, seed, int8_factor=int8_factor, rounds=rounds)
    rnd, probe = random.Random(f"alt-{run}-{seed}"), random.Random(f"probe-{run}-{seed}")
    for r in rows:
        if r["technique"]["label"] != "int8":
            continue
        fast_ratio = 0.0090 / 0.0082 if r["workload"]["batch"] == 1 else 0.047 / 0.050
        for rd in r["metrics"]["latency"]["rounds"]:
            rd["median"] *= math.exp(rnd.gauss(0, process_noise))
            if rd["round"] == 1:
                continue  # memory is measured in round 1: it times no alternation
            slow = rd["round"] in slow_rounds
            busy = rd["round"] in busy_rounds
            ratio = (1.45 if slow and r["workload"]["batch"] == 1 else fast_ratio) * int8_factor * (0.95 if busy else 1.0)
            shift = level * math.exp(rnd.gauss(0, 0.03))
            hit = rd["round"] in disturbed
            rd["paired"] = {"ratio": ratio * shift ** slope * math.exp(rnd.gauss(0, alt_noise)) * (hit_factor if hit else 1.0),
                            "base_median": (0.0082 if r["workload"]["batch"] == 1 else 0.050) * (1.4 if slow else 1.0)
                            * (2.1 if busy else 1.0) * shift * (1.02 if hit else 1.0),
                            "speed_probe_s": (200e-6 if hit else 170e-6) * (1 + probe.uniform(0, 0.02))}
    return rows


def test_a_technique_timed_alternately_with_the_baseline_model_is_judged_on_that_ratio():
    """Alternated in one process, the model and the baseline's share the machine's state: a 5%
    slowdown that the cross-process ratio of a noisy hour cannot resolve is flagged, unchanged runs
    are not, and rounds of the slower state (where int8/fp32 is 1.45x, not 1.10x) are not mixed with
    the others: a run with 12 of its rounds there is judged on its 7 in the usual state."""
    base_meta, cur_meta = {**meta("r1", "1"), "baseline": "none"}, {**meta("r2", "2"), "baseline": "none"}
    base = _alternated_rows("r1", 1, slow_rounds=range(18, 21))

    def verdicts(cur, **kw):
        return {r.name: r.verdict for r in compare_runs(base_meta, base, cur_meta, cur, **kw).results
                if r.name.startswith("int8") and r.metric == "latency"}

    slowed = _alternated_rows("r2", 2, int8_factor=1.05)
    for name, v in verdicts(slowed).items():
        assert v.status == REGRESSION and v.ratio == pytest.approx(1.05, abs=0.015), (name, v)
        assert v.method.startswith("t-test on round ratios to the baseline's model timed alternately"), v
    # the same runs without the alternation: the cross-process ratio is too noisy to tell
    assert REGRESSION not in {v.status for v in verdicts(slowed, paired=False).values()}
    assert {v.status for v in verdicts(_alternated_rows("r2", 2)).values()} == {UNCHANGED}
    # 12 of 19 alternated rounds in the slower state (the baseline run has 3 there): pooled, int8 b=1
    # would read 1.45x in most rounds, a 20% "regression"; read on the usual state, which both runs
    # have 6 rounds or more in (7 and 16), it is unchanged
    mostly_slow = verdicts(_alternated_rows("r2", 3, slow_rounds=range(9, 21)))
    v = mostly_slow["int8 cpu b=1 s=128"]
    assert v.status == UNCHANGED and v.ratio == pytest.approx(1.0, abs=0.03), v
    assert re.search(r"\b16\+7 rounds\b", v.method), v
    v = verdicts(_alternated_rows("r2", 3, slow_rounds=range(9, 21), int8_factor=1.05))["int8 cpu b=1 s=128"]
    assert v.status == REGRESSION and v.ratio == pytest.approx(1.05, abs=0.02), v


def test_alternated_rounds_of_several_machine_states_are_judged_state_by_state():
    """Under a noisy neighbour a run's rounds spread over machine states, each with its own
    int8/fp32: an unchanged run with 5 of its 19 alternated rounds in the usual state, 8 in the VM's
    slower one and 6 with the neighbour on, too few in the usual state to judge on alone. Every
    state both runs have 2 rounds in is kept, the change read within each: a 5% slowdown is
    flagged, unchanged runs are not. A state only one run was timed in is set aside, and a run
    with too few rounds in the shared states is not judged on the ratio."""
    base_meta, cur_meta = {**meta("r1", "1"), "baseline": "none"}, {**meta("r2", "2"), "baseline": "none"}
    base = _alternated_rows("r1", 1, slow_rounds=range(7, 15), busy_rounds=range(15, 21))

    def verdict(cur, batch=1):
        return next(r.verdict for r in compare_runs(base_meta, base, cur_meta, cur).results
                    if r.name == f"int8 cpu b={batch} s=128" and r.metric == "latency")

    for seed in (2, 3, 4):
        slowed = verdict(_alternated_rows("r2", seed, int8_factor=1.05, slow_rounds=(9, 10, 11), busy_rounds=range(16, 21)))
        assert slowed.status == REGRESSION and slowed.ratio == pytest.approx(1.05, abs=0.015), slowed
        assert re.search(r"1[89]\+1[89] rounds in 3 machine states", slowed.method), slowed
        same = verdict(_alternated_rows("r2", seed, slow_rounds=(9, 10, 11), busy_rounds=range(16, 21)))
        assert same.status == UNCHANGED and same.ratio == pytest.approx(1.0, abs=0.015), same
    # none of the current run's rounds in the slower state nor with the neighbour on: those states
    # do not join, and the baseline run's 5 rounds in the usual state are too few to judge it on
    alone = verdict(_alternated_rows("r2", 2, int8_factor=1.05))
    assert not alone.method.startswith("t-test on round ratios to the baseline's model"), alone
    assert re.search(r"alternated rounds: baseline: 14 of 19 rounds timed in machine states the other run has under 2 rounds in",
                     alone.reason + alone.method), alone
    # a run with all its rounds in the usual state against one with 7 there and 12 with the neighbour on
    base = _alternated_rows("r1", 1)
    v = verdict(_alternated_rows("r2", 2, int8_factor=1.05, busy_rounds=range(2, 14)))
    assert v.status == REGRESSION and re.search(r"1[789]\+7 rounds\b", v.method), v


def test_where_both_runs_have_six_quiet_rounds_the_change_is_read_on_those_alone():
    """Beside a neighbour busy for minutes the ratio is no single state: in the current run's
    neighbour rounds int8/fp32 reads 15% higher than in the baseline run's, though the baseline model's
    latency puts both in one 30% window. Both runs have 6 rounds or more in their quiet state
    (measure.extend_s sees to it): the change is read there alone, so the unchanged run is not
    flagged, and a 5% slowdown still is."""
    base_meta, cur_meta = {**meta("r1", "1"), "baseline": "none"}, {**meta("r2", "2"), "baseline": "none"}
    base = _alternated_rows("r1", 1, busy_rounds=range(2, 12))  # 10 rounds beside the neighbour, 9 quiet

    def current(**kw):
        rows = _alternated_rows("r2", 2, busy_rounds=range(8, 21), **kw)  # 13 beside it, 6 quiet
        for r in rows:
            for rd in r["metrics"]["latency"]["rounds"] if r["technique"]["label"] == "int8" else ():
                if rd["round"] >= 8:
                    rd["paired"]["ratio"] *= 1.15
                    rd["paired"]["base_median"] *= 0.85
        return rows

    def verdict(cur):
        return next(r.verdict for r in compare_runs(base_meta, base, cur_meta, cur).results
                    if r.name == "int8 cpu b=1 s=128" and r.metric == "latency")

    same = verdict(current())
    assert same.status == UNCHANGED and same.ratio == pytest.approx(1.0, abs=0.015), same
    assert re.search(r"\b9\+6 rounds\b", same.method), same
    slowed = verdict(current(int8_factor=1.05))
    assert slowed.status == REGRESSION and slowed.ratio == pytest.approx(1.05, abs=0.02), slowed


def test_runs_of_hours_whose_machine_moved_as_a_whole_are_judged_on_their_alternated_rounds():
    """Between hours the 2-core VM moved as a whole: the baseline model's usual latency from 5.1 to
    6.5 ms, the speed probe's usual level from 100 to 110 us, while int8/fp32 stayed within 0.7%.
    Such runs share their machine states (30% windows of the baseline model's latency, each run's
    probe read against its own level): an unchanged run is unchanged, a 5% slowdown is flagged,
    and the move is named. With 15% windows and one probe level for both runs, no state was shared
    and the alternated rounds judged nothing. The baseline model's latency is no covariate: a run
    whose ratio sat 2% off with the machine 20% slower is not read as 2% + 20% x a slope."""
    base_meta, cur_meta = {**meta("r1", "1"), "baseline": "none"}, {**meta("r2", "2"), "baseline": "none"}
    base = _alternated_rows("r1", 1)

    def moved(rows, factor=1.18, probe=1.10):
        for r in rows:
            for rd in r["metrics"]["latency"]["rounds"]:
                if "paired" in rd:
                    rd["paired"]["base_median"] *= factor
                    rd["paired"]["speed_probe_s"] *= probe
        return rows

    def b(cur):
        return {r.name: r.verdict for r in compare_runs(base_meta, base, cur_meta, cur).results
                if r.name.startswith("int8") and r.metric == "latency"}

    for seed in (2, 3, 4):
        for name, v in b(moved(_alternated_rows("r2", seed))).items():
            assert v.status == UNCHANGED and v.ratio == pytest.approx(1.0, abs=0.015), (name, v)
            assert re.search(r"1[89]\+1[89] rounds \(the baseline's model \+1\d\.\d% between the runs\)", v.method), (name, v)
        for name, v in b(moved(_alternated_rows("r2", seed, int8_factor=1.05))).items():
            assert v.status == REGRESSION and v.ratio == pytest.approx(1.05, abs=0.015), (name, v)
            assert v.method.startswith("t-test on round ratios to the baseline's model timed alternately"), (name, v)
    # a fifth slower, the other a fifth faster than the baseline's: still one state of both runs
    for name, v in b(moved(_alternated_rows("r2", 2, int8_factor=1.05), factor=0.85, probe=0.92)).items():
        assert v.status == REGRESSION and "1 machine state" not in v.method and " in 2 machine states" not in v.method, (name, v)


def test_alternated_rounds_whose_speed_probe_says_they_were_disturbed_are_judged_as_a_state_of_their_own():
    """Seen on the VM over five hours: a round whose speed probe, taken right after its alternation,
    read over 4% above the usual state read int8/fp32 +0.6% to +3.5% higher at batch 8 (a quarter of
    them over 5% off), while its baseline model latency stayed in the window. An unchanged run with
    a third of its rounds disturbed must not read as a slowdown, nor hide one in the other run:
    disturbed rounds are compared only with the other run's disturbed rounds, and set aside where
    that run has none."""
    base_meta, cur_meta = {**meta("r1", "1"), "baseline": "none"}, {**meta("r2", "2"), "baseline": "none"}
    base = _alternated_rows("r1", 1)
    hit = range(2, 21, 3)  # 7 of 19 alternated rounds

    def verdicts(cur, base=base, **kw):
        return {r.name: r.verdict for r in compare_runs(base_meta, base, cur_meta, cur, **kw).results
                if r.name.startswith("int8") and r.metric == "latency"}

    unchanged, slowed = _alternated_rows("r2", 2, disturbed=hit), _alternated_rows("r2", 2, int8_factor=1.05)
    disturbed_base = _alternated_rows("r1", 1, disturbed=hit)
    for name, v in verdicts(unchanged).items():
        assert v.status == UNCHANGED and v.ratio == pytest.approx(1.0, abs=0.012), (name, v)
        assert re.search(r"1[89]\+1[12] rounds\b", v.method), (name, v)  # the second run: its 12 undisturbed rounds
    for name, v in verdicts(slowed, base=disturbed_base).items():
        assert v.status == REGRESSION and v.ratio == pytest.approx(1.05, abs=0.012), (name, v)
    # both runs disturbed in some rounds: those rounds are a state of their own, read within it
    both = _alternated_rows("r2", 2, disturbed=range(3, 21, 4))
    for name, v in verdicts(both, base=disturbed_base).items():
        assert v.status == UNCHANGED and v.ratio == pytest.approx(1.0, abs=0.012), (name, v)
        assert re.search(r"1[89]\+1[89] rounds in 2 machine states", v.method), (name, v)
    both_slowed = _alternated_rows("r2", 2, disturbed=range(3, 21, 4), int8_factor=1.05)
    assert {v.status for v in verdicts(both_slowed, base=disturbed_base).values()} == {REGRESSION}
    # a run disturbed in most of its rounds reads that state as its usual one: each run's probes are
    # read against its own level, which moves between hours as a whole (100 us, then 110), and the two
    # look alike. At the offsets seen on the VM (+0.6% to +3.5% at batch 8) that is not flagged
    for seed in (2, 3, 4):
        for name, v in verdicts(_alternated_rows("r2", seed, disturbed=range(2, 16), hit_factor=1.03)).items():
            assert v.status == UNCHANGED and v.ratio > 1.01, (name, v)

    # without the probe check, the disturbed rounds make an unchanged run a ~3% "slowdown" and
    # shrink a 5% one
    assert all(v.ratio > 1.025 for v in verdicts(unchanged, state_margin=None).values()), verdicts(unchanged, state_margin=None)
    assert all(v.ratio < 1.03 for v in verdicts(slowed, base=disturbed_base, state_margin=None).values())


def test_a_machine_state_whose_rounds_scatter_counts_for_little():
    """With a neighbour busy on one core, int8/fp32 at batch 8 read 1.14-1.84 in a run's rounds, against
    1.04-1.20 in the usual state. Both runs have 6 such rounds and 13 in the usual state: the change
    is read on the usual state alone (shared_states), so the scatter neither hides a 5% slowdown nor
    raises a false alarm; weighted by its rounds alone, with the usual state's, it would have hidden
    the slowdown. (Where a run has under 6 in the usual state, the states are weighted by their
    spread: test_alternated_rounds_of_several_machine_states_are_judged_state_by_state.)"""
    base_meta, cur_meta = {**meta("r1", "1"), "baseline": "none"}, {**meta("r2", "2"), "baseline": "none"}
    busy = range(15, 21)

    def scattered(rows, seed):
        rnd = random.Random(seed)
        for r in rows:
            for rd in r["metrics"]["latency"]["rounds"]:
                if r["technique"]["label"] == "int8" and rd["round"] in busy:
                    rd["paired"]["ratio"] *= math.exp(rnd.gauss(0, 0.2))
        return rows

    base = scattered(_alternated_rows("r1", 1, busy_rounds=busy), 1)

    def verdicts(cur):
        return {r.name: r.verdict for r in compare_runs(base_meta, base, cur_meta, cur).results
                if r.name.startswith("int8") and r.metric == "latency"}

    for seed in (2, 3, 4):
        for name, v in verdicts(scattered(_alternated_rows("r2", seed, busy_rounds=busy), seed)).items():
            assert v.status == UNCHANGED and v.ratio == pytest.approx(1.0, abs=0.015), (name, v)
        slowed = verdicts(scattered(_alternated_rows("r2", seed, busy_rounds=busy, int8_factor=1.05), seed))
        for name, v in slowed.items():
            assert v.status == REGRESSION and v.ratio == pytest.approx(1.05, abs=0.015), (name, v)
            assert re.search(r"\b1[1-3]\+1[1-3] rounds\b", v.method) and "machine states" not in v.method, (name, v)
            # the usual state's rounds (1.5% sd) set the interval: 2.7-3.6% wide here. With the states
            # weighted by their rounds and one spread for both, it was 8.6% wide and missed the slowdown
            assert v.ci95[1] / v.ci95[0] < 1.045, (name, v)


def test_a_wild_alternated_round_is_set_aside_rather_than_hiding_a_slowdown():
    """One alternated round 40% under its run's others (a block preempted while the baseline's model
    ran) pulls the run's mean log ratio down ~2.7% and widens its spread: it is set aside, once, and
    the verdict says so."""
    base_meta, cur_meta = {**meta("r1", "1"), "baseline": "none"}, {**meta("r2", "2"), "baseline": "none"}
    base, cur = _alternated_rows("r1", 1), _alternated_rows("r2", 2, int8_factor=1.05)
    int8 = next(r for r in cur if r["cell"] == "int8-8")
    int8["metrics"]["latency"]["rounds"][5]["paired"]["ratio"] *= 0.6
    v = next(r.verdict for r in compare_runs(base_meta, base, cur_meta, cur).results
             if r.name == "int8 cpu b=8 s=128" and r.metric == "latency")
    assert v.status == REGRESSION and v.ratio == pytest.approx(1.05, abs=0.012), v
    assert re.search(r"19\+18 rounds .*; 1 wild round set aside$", v.method), v


def test_a_round_timed_while_the_machine_was_slow_is_set_aside_from_the_alternated_ratio_not_the_cell():
    """With a noisy neighbour on the VM, one round in 20 had a speed probe 3.1x the run's fastest:
    the runner marks it, and that once made the whole cell not comparable. Judged round by round,
    the round is set aside and the other 18 decide."""
    base_meta, cur_meta = {**meta("r1", "1"), "baseline": "none"}, {**meta("r2", "2"), "baseline": "none"}
    base, cur = _alternated_rows("r1", 1), _alternated_rows("r2", 2, int8_factor=1.05)
    int8 = next(r for r in cur if r["cell"] == "int8-8")
    rd = int8["metrics"]["latency"]["rounds"][16]
    rd["paired"]["ratio"] *= 0.7  # what a slow round reads: anything
    int8["slow_machine"] = "round 17: speed probe 3.1x the run's fastest so far"

    def int8_8(cur):
        return next(r.verdict for r in compare_runs(base_meta, base, cur_meta, cur).results
                    if r.name == "int8 cpu b=8 s=128" and r.metric == "latency")

    v = int8_8(cur)
    assert v.status == REGRESSION and v.ratio == pytest.approx(1.05, abs=0.012) and re.search(r"19\+1[78] rounds", v.method), v
    # a single-round cell marked slow names no round: it stays not judged on the ratio
    int8["slow_machine"] = "speed probe 3.1x the run's fastest so far"
    assert "alternately" not in int8_8(cur).method
    # nor marked by its runner, but slow against the other run's fastest probe: the same
    del int8["slow_machine"]
    int8["metrics"]["latency"]["speed_probe_s"][33] *= 3.5  # round 17's probe after its timing
    v = int8_8(cur)
    assert v.status == REGRESSION and v.ratio == pytest.approx(1.05, abs=0.012) and re.search(r"19\+1[78] rounds", v.method), v


def test_the_alternated_trend_reads_disturbed_rounds_as_a_state_and_older_lines_without_probes():
    """A run's disturbed rounds (int8/fp32 9% high, speed probe 200 us against 170) are a machine state
    of the series: their offset is learnt from the runs timed in both states, so a run with 4 or 7
    of its 10 rounds disturbed lies with the others, and so does a run timed only in a state that
    another run links to the usual one. A run timed only in a state of its own is flagged."""
    rnd = random.Random(5)

    def run(disturbed=(), probes=True, busy=(), factor=2.0):
        rounds = []
        for i in range(10):
            hit = i in disturbed
            r, b = 1.10 * math.exp(rnd.gauss(0, 0.01)) * (1.09 if hit else 1.0), 0.05 * math.exp(rnd.gauss(0, 0.02))
            if i in busy:  # a neighbour busy on one core: the baseline model at 2x, int8/fp32 5% lower
                r, b = r * 0.95, b * factor
            rounds.append([r, b, (200e-6 if hit else 170e-6) * (1 + rnd.uniform(0, 0.02))][:3 if probes else 2])
        return {"value": 1.0, "rounds": rounds, "flagged": ""}  # the value as stored: recomputed here

    points = [run(), run(), run(disturbed=(1, 4, 7, 8)), run(), run(disturbed=range(7)), run(busy=range(6)),
              run(busy=range(10)), run(busy=range(10), factor=3.0)]
    series = alternated_series(points)
    steady = statistics.median(p["value"] for p in series[:2] + series[3:4])
    for i in (2, 4, 5, 6):  # 4 and 7 of 10 rounds disturbed; 6 and 10 of 10 with the neighbour on
        assert series[i]["value"] == pytest.approx(steady, rel=0.012), i
    assert "under 3 rounds" in series[7]["flagged"]  # every round in a state of its own
    assert all(p["ci95"][0] < p["value"] < p["ci95"][1] for p in series[:7])
    # a history written before rounds carried their probe ([ratio, baseline median]): all rounds one state
    older = alternated_series([dict(p, rounds=[x[:2] for x in p["rounds"]]) for p in points])
    assert older[2]["value"] > steady * 1.025 and older[4]["value"] > steady * 1.05


def test_one_wild_round_in_ten_is_trimmed_rather_than_hiding_a_slowdown_or_voiding_the_cell(monkeypatch):
    """On the 2-core VM a few rounds in a hundred land 20-50% off the others (their process was
    disturbed), and a round's own samples are now and then bimodal. Neither may hide a real
    8% slowdown of the other nine rounds, or make the cell not comparable."""
    base_meta, cur_meta = {**meta("r1", "1"), "baseline": "none"}, {**meta("r2", "2"), "baseline": "none"}
    base = _state_rows("r1", 1)
    cur = _state_rows("r2", 2, int8_level=0.0106 * 1.08)
    int8 = next(r for r in cur if r["cell"] == "int8-1")
    int8["metrics"]["latency"]["rounds"][3]["median"] *= 0.68                 # a wild round
    int8["metrics"]["latency"]["rounds"][6]["unstable"] = "p90 is 1.73x the median"  # a disturbed one
    int8["metrics"]["latency"].update(unstable=True, unstable_reason="round medians differ 1.62x")
    (v,) = [r.verdict for r in compare_runs(base_meta, base, cur_meta, cur).results if r.name.startswith("int8") and r.metric == "latency"]
    assert v.status == REGRESSION and "trimmed" in v.method, v
    assert v.ratio == pytest.approx(1.08, abs=0.02)
    # untrimmed, the wild round pulls the mean down ~4% and widens the spread: the slowdown is missed
    import optbench.compare

    with monkeypatch.context() as mp:
        mp.setattr(optbench.compare, "TRIM", 0.0)
        (v,) = [r.verdict for r in compare_runs(base_meta, base, cur_meta, cur).results
                if r.name.startswith("int8") and r.metric == "latency"]
        assert v.status in (UNCHANGED, NOT_COMPARABLE), v  # its spread, or the 1.5x between rounds, voids it
    # most rounds disturbed: not comparable, with the reason
    for i in range(6):
        int8["metrics"]["latency"]["rounds"][i]["unstable"] = "bimodal: 8% of samples are over 2x the median"
    (v,) = [r.verdict for r in compare_runs(base_meta, base, cur_meta, cur).results if r.name.startswith("int8") and r.metric == "latency"]
    assert v.status == NOT_COMPARABLE and "7 of 10 rounds unstable" in v.reason, v


def test_a_history_of_the_ratio_widens_the_assumed_drift_or_sends_a_cell_to_its_absolute_timings():
    base_meta, cur_meta = {**meta("r1", "1"), "baseline": "none"}, {**meta("r2", "2"), "baseline": "none"}
    base, cur = _run_rows("r1", 1, 0.050, 0.053), _run_rows("r2", 2, 0.050, 0.053 * 1.05)

    def int8(history_noise, cur=cur):
        (v,) = [r.verdict for r in compare_runs(base_meta, base, cur_meta, cur, history_noise=history_noise).results
                if r.name.startswith("int8") and r.metric == "latency"]
        return v

    assert int8(None).status == REGRESSION  # +5% relative, the drift assumed
    # a history where the ratio moves 4% between runs: +5% is within it
    drifting_ratio = {("int8-8", "latency", "relative"): Noise(0.04 ** 2, 30, "history (40 runs, relative)")}
    v = int8(drifting_ratio)
    assert v.status == UNCHANGED and "relative" in v.method and "history (40 runs, relative)" in v.method, v
    # a history where the ratio drifts more than the cell itself: its own timings are judged
    steadier_alone = {**drifting_ratio, ("int8-8", "latency"): Noise(0.002 ** 2, 30, "history (40 runs)")}
    v = int8(steadier_alone, _run_rows("r2", 2, 0.050, 0.053 * 1.15))
    assert v.status == REGRESSION and "drift less than the ratio" in v.method and "relative" not in v.method.split(";")[0], v


def test_the_baseline_cell_is_judged_absolute_with_an_assumed_drift_that_a_quiet_history_does_not_narrow():
    base_meta = {**meta("r1", "1"), "baseline": "none"}
    cur_meta = {**meta("r2", "2"), "baseline": "none"}
    base = _run_rows("r1", 1, 0.050, 0.053)
    shifted = compare_runs(base_meta, base, cur_meta, _run_rows("r2", 2, 0.050 * 1.04, 0.053 * 1.04))
    none = next(r for r in shifted.results if r.name.startswith("none") and r.metric == "latency")
    assert none.verdict.status == UNCHANGED and "between-run drift assumed" in none.verdict.method
    # the technique moved with its baseline cell: relative to it, nothing changed
    assert not shifted.regressed
    # a history of neighbouring runs that agree within 0.5% does not narrow it: such a history
    # misses the slow drift between runs further apart (on the VM, 13 false alarms in 105 compares
    # where it replaced the assumption, 1 where it did not); +6% stays within the drift
    quiet = {("none-8", "latency"): Noise(var=0.005 ** 2, df=30, source="history")}
    judged = compare_runs(base_meta, base, cur_meta, _run_rows("r2", 2, 0.050 * 1.06, 0.053 * 1.06), history_noise=quiet)
    none = next(r for r in judged.results if r.name.startswith("none") and r.metric == "latency")
    assert none.verdict.status == UNCHANGED and "assumed" in none.verdict.method, none.verdict
    # +15% is past it: a regression, and its technique cell is then judged on absolute timings, and says why
    judged = compare_runs(base_meta, base, cur_meta, _run_rows("r2", 2, 0.050 * 1.15, 0.053 * 1.15), history_noise=quiet)
    none = next(r for r in judged.results if r.name.startswith("none") and r.metric == "latency")
    assert none.verdict.status == REGRESSION, none.verdict
    int8 = next(r for r in judged.results if r.name.startswith("int8") and r.metric == "latency")
    assert "the baseline's cell changed" in int8.verdict.method
    # a noisy history widens it: +15% with nights 8% apart is not a regression
    noisy = {("none-8", "latency"): Noise(var=0.08 ** 2, df=30, source="history")}
    judged = compare_runs(base_meta, base, cur_meta, _run_rows("r2", 2, 0.050 * 1.15, 0.053 * 1.15), history_noise=noisy)
    none = next(r for r in judged.results if r.name.startswith("none") and r.metric == "latency")
    assert none.verdict.status == UNCHANGED and "history" in none.verdict.method, none.verdict


def test_runs_whose_rounds_agree_closely_still_get_the_assumed_drift_of_a_run_in_absolute_terms():
    """Seen on the VM: none at batch 1 at 7.9 ms in one unchanged run and 8.7 ms in a later one, each
    run's rounds 1-2% apart. An allowance for drift in proportion to the round spread flagged it;
    a floor of DRIFT_SD per run does not, and still lets a 20% step through."""
    base_meta, cur_meta = {**meta("r1", "1"), "baseline": "none"}, {**meta("r2", "2"), "baseline": "none"}
    base = _run_rows("r1", 1, 0.050, 0.053, noise=0.002)

    def none_verdict(factor, **kw):
        cmp = compare_runs(base_meta, base, cur_meta, _run_rows("r2", 2, 0.050 * factor, 0.053 * factor, noise=0.002), **kw)
        return next(r for r in cmp.results if r.name.startswith("none") and r.metric == "latency").verdict

    assert none_verdict(1.09, drift_sd=0.0).status == REGRESSION  # the round spread alone: a false alarm
    v = none_verdict(1.09)
    assert v.status == UNCHANGED and f"{DRIFT_SD:.1%} (sd) per run" in v.method, v
    assert none_verdict(1.20).status == REGRESSION


def test_a_change_relative_to_the_baseline_cell_must_show_in_the_cells_own_timings():
    """Seen in CI: none at batch 1 ran 10% faster in the second of two unchanged runs (a state of
    its own that the probe did not see) while torch-dynamic-int8 did not move. none's verdict was
    unchanged (within the assumed drift); judged relative to it, int8 came out 11% slower."""
    base_meta, cur_meta = {**meta("r1", "1"), "baseline": "none"}, {**meta("r2", "2"), "baseline": "none"}
    base = _run_rows("r1", 1, 0.050, 0.053, noise=0.04)
    cur = _run_rows("r2", 2, 0.050, 0.053 * 0.99, noise=0.04)
    for r in cur:
        if r["cell"] == "none-8":
            for rd in r["metrics"]["latency"]["rounds"]:
                rd["median"] *= 0.90
    cmp = compare_runs(base_meta, base, cur_meta, cur)
    verdict = {r.name.split(" ")[0]: r.verdict for r in cmp.results if r.metric == "latency"}
    assert verdict["none"].status == UNCHANGED and verdict["none"].ratio < 0.95, verdict["none"]
    assert not cmp.regressed, verdict["int8"]
    assert verdict["int8"].ratio > 1.05 and "not flagged: its own timings moved" in verdict["int8"].method, verdict["int8"]


def _two_batch_rows(run, seed, *, shift=0.0, int8_factor=1.0, none1_factor=1.0, rounds=20):
    """The quickstart's four cells (none and int8 at batch 1 and 8): ``shift`` moves the whole run,
    every cell alike; ``int8_factor`` slows int8 at both batches, ``none1_factor`` moves none at
    batch 1 alone. Each round's cells share that round's machine."""
    rnd = random.Random(f"two-{seed}")
    machine = [math.exp(shift + rnd.gauss(0, 0.01)) for _ in range(rounds)]
    rows = []
    for label, batch, level in (("none", 1, 0.0082 * none1_factor), ("int8", 1, 0.0090 * int8_factor),
                                ("none", 8, 0.050), ("int8", 8, 0.047 * int8_factor)):
        r = row(label, batch, level, seed=seed, run=run, rounds=rounds, noise=0.004)
        for rd, f in zip(r["metrics"]["latency"]["rounds"], machine, strict=True):
            rd["median"] *= f
        rows.append(r)
    return rows


def test_a_slowdown_inside_a_run_that_sat_fast_is_flagged_when_the_other_baseline_cells_moved_too():
    """Seen on the VM (12 of the 21 misses of a 5% slowdown in two hours of 20-round runs): the whole
    run sat 4-6% fast, so the slowed int8 cell's own timings fell a little while its ratio to none
    rose 5%. The guard that a change must show in the cell's own timings too took that for none
    moving alone. none at the other batch moved as much: the run drifted, the ratio stands."""
    base_meta, cur_meta = {**meta("r1", "1"), "baseline": "none"}, {**meta("r2", "2"), "baseline": "none"}
    base = _two_batch_rows("r1", 1)
    cmp = compare_runs(base_meta, base, cur_meta, _two_batch_rows("r2", 2, shift=-0.06, int8_factor=1.05))
    verdict = {r.name: r.verdict for r in cmp.results if r.metric == "latency"}
    assert {n for n, v in verdict.items() if v.status == REGRESSION} == {"int8 cpu b=1 s=128", "int8 cpu b=8 s=128"}, verdict
    v = verdict["int8 cpu b=8 s=128"]
    assert v.ratio == pytest.approx(1.05, abs=0.01) and "with the whole run" in v.method, v
    # the same run without the slowdown: the drift cancels, nothing flagged
    assert not compare_runs(base_meta, base, cur_meta, _two_batch_rows("r2", 2, shift=-0.06)).regressed
    # none at batch 1 alone 7% faster (seen in hour fa4), int8 unchanged: its ratio rises 7%, and
    # against none at batch 8 none moved alone, so the guard holds
    alone = compare_runs(base_meta, base, cur_meta, _two_batch_rows("r2", 2, none1_factor=0.93))
    assert not alone.regressed, [(r.name, r.verdict) for r in alone.regressions]
    v = next(r.verdict for r in alone.results if r.name == "int8 cpu b=1 s=128" and r.metric == "latency")
    assert v.ratio > 1.05 and "not flagged" in v.method and "against the run's other baseline cells" in v.method, v
    # none at batch 1 alone 4% slower in the run where int8 is 5% slower: the ratio to it hides the
    # slowdown (+1%), the run's other baseline cell does not (seen in 6 misses of a 5% slowdown)
    hidden = compare_runs(base_meta, base, cur_meta, _two_batch_rows("r2", 2, int8_factor=1.05, none1_factor=1.04))
    v = next(r.verdict for r in hidden.results if r.name == "int8 cpu b=1 s=128" and r.metric == "latency")
    assert v.status == REGRESSION and v.ratio == pytest.approx(1.05, abs=0.01), v
    assert v.method.startswith("t-test on round medians relative to the run's other baseline cells") and "which hid" in v.method, v


def test_a_cell_whose_baseline_cell_is_not_comparable_is_judged_against_the_runs_other_baseline_cells():
    """Seen on the VM: none at batch 8 timed in the machine's other state while int8 at batch 8 was
    not. Judged on its absolute timings, against the drift assumed between runs, int8's 5% slowdown
    passed unflagged (11 of the 20 misses left in the stored 20-round hours)."""
    base_meta, cur_meta = {**meta("r1", "1"), "baseline": "none"}, {**meta("r2", "2"), "baseline": "none"}
    base = _two_batch_rows("r1", 1)

    def int8_b8(cur, history_noise=None):
        none8 = next(r for r in cur if r["cell"] == "none-8")
        none8["metrics"]["latency"].update(unstable=True, unstable_reason="bimodal: 9% of samples are over 2x the median")
        results = compare_runs(base_meta, base, cur_meta, cur, history_noise=history_noise).results
        assert next(r.verdict for r in results if r.name == "none cpu b=8 s=128" and r.metric == "latency").status == NOT_COMPARABLE
        return next(r.verdict for r in results if r.name == "int8 cpu b=8 s=128" and r.metric == "latency")

    v = int8_b8(_two_batch_rows("r2", 2, int8_factor=1.05))
    assert v.status == REGRESSION and v.ratio == pytest.approx(1.05, abs=0.01), v
    assert "relative to the run's other baseline cells" in v.method and "the baseline's cell is not comparable" in v.method, v
    # a history where int8's ratio moves 4% from night to night widens that test too: +5% is within it
    v = int8_b8(_two_batch_rows("r2", 2, int8_factor=1.05), {("int8-8", "latency", "relative"): Noise(0.04 ** 2, 30, "history (40 runs)")})
    assert v.status == UNCHANGED and "history (40 runs)" in v.method, v
    # none at batch 1 alone 7% faster: against it int8 seems 7% slower, but its own timings did not move
    v = int8_b8(_two_batch_rows("r2", 2, none1_factor=0.93))
    assert v.status == UNCHANGED and v.ratio > 1.05 and "not flagged: its own timings moved" in v.method, v


def test_the_timed_tests_of_one_compare_share_its_false_alarm_rate():
    """A +13% change at p ~ 0.001: flagged as the compare's only timed test (alpha 0.01), not as one of
    40 (each tested at 0.01 / 40): the compare's false-alarm rate, not each test's, is 1%. (The history's
    noise, 4%, is wider than the assumed drift, so it is the one used.)"""
    noise = Noise(var=0.04 ** 2, df=1000, source="history")
    lone = compare_runs(meta("r1", "1"), [row("x", 1, 0.010, seed=1)], meta("r2", "2"), [row("x", 1, 0.01132, seed=2, run="r2")],
                        history_noise={("x-1", "latency"): noise})
    (v,) = [r.verdict for r in lone.results if r.metric == "latency"]
    assert 0.01 / 40 < v.p < 0.01 and v.status == REGRESSION and "history" in v.method, v
    others = [f"t{i}" for i in range(39)]
    many = compare_runs(meta("r1", "1"), [row("x", 1, 0.010, seed=1)] + [row(t, 1, 0.01, seed=1) for t in others],
                        meta("r2", "2"), [row("x", 1, 0.01132, seed=2, run="r2")] + [row(t, 1, 0.01, seed=2, run="r2") for t in others],
                        history_noise={("x-1", "latency"): noise})
    (v,) = [r.verdict for r in many.results if r.metric == "latency" and r.name.startswith("x ")]
    assert v.status == UNCHANGED and not many.regressed, v


def test_a_change_estimated_past_the_threshold_but_short_of_the_compares_level_is_shown_unconfirmed():
    """A 3-round run with one round in another state once left a 2x slowdown at x1.90 [1.15, 3.14],
    p 0.012 against the 0.005 its compare needed: "no regression" alone hid it. Shown, never failed."""
    from optbench.exports import markdown, text_summary

    def judged(ratio, sd):
        return compare_runs(meta("r1", "1"), [row("x", 1, 0.010, seed=1)], meta("r2", "2"),
                            [row("x", 1, 0.010 * ratio, seed=2, run="r2")],
                            history_noise={("x-1", "latency"): Noise(var=sd ** 2, df=1000, source="history")})

    cmp = judged(1.946, 0.3)   # t = 2.22: p ~ 0.013 against 0.01 (one timed test), 95% interval [1.08, 3.5]
    (r,) = [r for r in cmp.results if r.metric == "latency"]
    assert r.verdict.status == UNCHANGED and r.verdict.p > cmp.alpha == 0.01 and r.verdict.ci95[0] > 1.05, r
    assert r.unconfirmed == REGRESSION and not cmp.regressed and cmp.unconfirmed == [r]
    text = text_summary(cmp)
    assert "no regression" in text and "1 unconfirmed" in text, text
    line = next(li for li in text.splitlines() if "UNCONFIRMED REGRESSION" in li)
    assert "x cpu b=1 s=128 latency" in line and f"p={r.verdict.p:.2g} is not under the 0.01 a flag needs" in line, line
    md = markdown(cmp)
    assert "🟡 unconfirmed regression" in md and "one-sided p < 0.01, a 1% false-alarm rate over 1 timed test)" in md
    assert {d["metric"]: d["unconfirmed"] for d in json.loads(json.dumps([x.to_dict() for x in cmp.results]))}["latency"] == REGRESSION
    assert judged(1 / 1.946, 0.3).unconfirmed[0].unconfirmed == IMPROVEMENT
    # an estimate past the threshold at p under 0.05 is shown even where its 95% interval reaches back under no
    # change (t = 1.77, p ~ 0.038): in CI a 5-round run left a 2x slowdown so and printed only "no regression"
    (wide,) = [r for r in judged(1.7, 0.3).results if r.metric == "latency"]
    assert wide.verdict.ci95[0] < 1 and 0.025 < wide.verdict.p < 0.05 and wide.unconfirmed == REGRESSION, wide
    # p over 0.05 (t = 1.35), or an estimate within the threshold, is no more than unchanged, unless the estimate
    # lies past 1.5x: rounds too scattered to confirm a 2x slowdown (p 0.09) do not read "no regression" either
    assert not judged(1.45, 0.3).unconfirmed
    (scattered,) = [r for r in judged(2.0, 0.6).results if r.metric == "latency"]
    assert scattered.verdict.p > 0.05 and scattered.unconfirmed == REGRESSION, scattered
    assert judged(1 / 2.0, 0.6).unconfirmed[0].unconfirmed == IMPROVEMENT
    from optbench.compare import Verdict, rule_for, unconfirmed

    assert unconfirmed(Verdict(UNCHANGED, 1.06, (0.99, 1.13), 0.03, "t"), rule_for("latency"), 0.01) == REGRESSION
    assert unconfirmed(Verdict(UNCHANGED, 1.04, (0.99, 1.09), 0.03, "t"), rule_for("latency"), 0.01) == ""
    assert unconfirmed(Verdict(UNCHANGED, 1.06, (0.9, 1.2), 0.2, "t"), rule_for("latency"), 0.01) == ""
    assert unconfirmed(Verdict(UNCHANGED, 0.6, (0.3, 1.2), 0.2, "t"), rule_for("top1_accuracy"), 0.01) == REGRESSION
    flagged = judged(1.946, 0.25)
    assert flagged.regressed and not flagged.unconfirmed


# --- the CLI and CI outputs ---------------------------------------------------------------------------


def test_compare_cli_exit_codes_markdown_junit_and_step_summary(tmp_path):
    base = write_run(tmp_path / "base", meta("r1", "2026-01-01"), [row("none", 1, 0.010, seed=1), row("int8", 1, 0.008, seed=1)])
    same = write_run(tmp_path / "same", meta("r2", "2026-01-02"), [row("none", 1, 0.010, seed=2), row("int8", 1, 0.008, seed=2)])
    worse = write_run(tmp_path / "worse", meta("r3", "2026-01-03"),
                      [row("none", 1, 0.010, seed=3), row("int8", 1, 0.0096, seed=3, nbytes=14_000_000)])
    db = str(tmp_path / "none.db")
    ok = cli("compare", "--baseline", str(base), "--current", str(same), "--history", db)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "no regression" in ok.stdout
    summary = tmp_path / "summary.md"
    bad = cli("compare", "--baseline", str(base), "--current", str(worse), "--history", db, "--markdown", str(tmp_path / "c.md"),
              "--junit", str(tmp_path / "c.xml"), "--json", str(tmp_path / "c.json"),
              env_extra={"GITHUB_STEP_SUMMARY": str(summary)})
    assert bad.returncode == 1, bad.stdout + bad.stderr
    md = (tmp_path / "c.md").read_text()
    assert "2 regressions" in md and "| int8 cpu b=1 s=128 | latency |" in md and "| int8 cpu b=1 s=128 | model_bytes |" in md
    assert summary.read_text().strip() == md.strip()
    suite = ET.parse(tmp_path / "c.xml").getroot().find("testsuite")
    cases = suite.findall("testcase")
    failed = sorted(c.get("name") for c in cases if c.find("failure") is not None)
    assert failed == ["int8 cpu b=1 s=128 [latency]", "int8 cpu b=1 s=128 [model_bytes]"]
    assert int(suite.get("tests")) == len(cases) == 8 and int(suite.get("failures")) == 2
    assert json.loads((tmp_path / "c.json").read_text())["regressed"] is True
    missing = cli("compare", "--baseline", str(tmp_path / "nope"), "--current", str(same), "--history", db)
    assert missing.returncode == 2 and missing.stderr.startswith("optbench: error: ")


def test_pytest_benchmark_export_is_read_by_pytest_benchmark_compare(tmp_path):
    run = write_run(tmp_path / "run", meta("r1", "2026-01-01T00:00:00+00:00"), [row("none", 1, 0.010, seed=1), row("int8", 8, 0.05, seed=1)])
    out = tmp_path / "pb.json"
    exp = cli("export", str(run), "--format", "pytest-benchmark", "-o", str(out))
    assert exp.returncode == 0, exp.stderr
    data = json.loads(out.read_text())
    assert {"machine_info", "commit_info", "benchmarks", "datetime", "version"} <= set(data)
    bench = data["benchmarks"][0]
    assert {"group", "name", "fullname", "params", "param", "extra_info", "options", "stats"} <= set(bench)
    assert {"min", "max", "mean", "stddev", "rounds", "median", "iqr", "q1", "q3", "iqr_outliers", "stddev_outliers",
            "outliers", "ld15iqr", "hd15iqr", "ops", "total", "data", "iterations"} <= set(bench["stats"])
    exe = Path(sys.executable).parent / "pytest-benchmark"
    if not exe.exists():
        pytest.skip("pytest-benchmark's console script is not installed")
    res = subprocess.run([str(exe), "compare", str(out), "--columns", "min,median,rounds"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "latency[none cpu b=1 s=128]" in res.stdout and "latency[int8 cpu b=8 s=128]" in res.stdout
    # the stats agree with pytest-benchmark's own computation
    from pytest_benchmark.stats import Stats

    s = Stats()
    for x in bench["stats"]["data"]:
        s.update(x)
    for k in ("q1", "q3", "iqr", "ld15iqr", "hd15iqr", "iqr_outliers", "stddev_outliers", "median", "ops"):
        assert bench["stats"][k] == pytest.approx(getattr(s, k)), k


def test_a_results_dir_copied_to_another_machine_compares_against_the_local_history(tmp_path):
    from optbench.history import History

    db = tmp_path / "h.db"
    with History.open(db) as h:
        h.record(meta("r1", "2026-01-01"), [row("none", 1, 0.010, seed=1)])
    # the run comes from a machine with another CPU; it is not in this history
    there = {**ENV, "id": "e9", "cpu": "Intel Xeon Platinum"}
    copied = write_run(tmp_path / "elsewhere" / "quickstart", meta("r2", "2026-01-02", env=there), [row("none", 1, 0.010, seed=2)])
    moved = tmp_path / "copied"
    shutil.copytree(copied, moved)
    res = cli("compare", "--current", str(moved), "--history", str(db))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "NOT COMPARABLE" in res.stdout and "Intel Xeon Platinum" in res.stdout


# --- end to end: real runs of a tiny suite ----------------------------------------------------------------

DEGRADE = (Path(__file__).resolve().parent.parent / "benchmarks" / "degrade_plugin.py").read_text()

def tiny_suite() -> str:
    measure = FAST_MEASURE.replace("min_time_s: 0.05", "min_time_s: 0.3").rstrip("}") + ", metrics: [latency, memory, accuracy]}"
    # the trained tiny model: noise in an untrained model's weights barely moves its near-uniform perplexity
    return f"""name: nightly-tiny
model: {{source: reference, size: tiny}}
workload: {{batch: 1, seq_len: 32}}
measure: {measure}
techniques: [none, {{quantize: {{method: torch-dynamic-int8}}}}]
rounds: 5
timeout: 120
"""


@pytest.fixture
def degrade_env(tmp_path):
    root = make_dist(tmp_path / "site", "optbench-degrade", "0.1", "degrade_plugin", DEGRADE, entry="degrade")
    return {"PYTHONPATH": str(root)}


def _run(tmp_path, name, db, env, degrade=""):
    suite = tmp_path / "tiny.yaml"
    suite.write_text(tiny_suite())
    res = cli("run", str(suite), "-o", str(tmp_path / name), "--history", str(db), env_extra={**env, "OPTBENCH_DEGRADE": degrade})
    assert res.returncode == 0, res.stdout + res.stderr
    assert "history: recorded run" in res.stdout
    return tmp_path / name


@pytest.mark.slow
def test_unchanged_runs_flag_nothing_a_slowed_technique_and_noisy_weights_are_flagged(tmp_path, degrade_env):
    db = tmp_path / "history.db"
    first = _run(tmp_path, "first", db, degrade_env)
    second = _run(tmp_path, "second", db, degrade_env)
    same = cli("compare", "--baseline", str(first), "--current", str(second), "--history", str(db))
    runs = 2
    if same.returncode == 1:
        # compare allows a false alarm in about 1 of 100 compares of unchanged runs (5 rounds here, so
        # rarer only on paper): one more unchanged run must then be clean; two in a row fails the test
        first, second, runs = second, _run(tmp_path, "second-again", db, degrade_env), 3
        same = cli("compare", "--baseline", str(first), "--current", str(second), "--history", str(db))
    assert same.returncode == 0, same.stdout + same.stderr
    assert "no regression" in same.stdout

    # 2x. With 3 rounds this went unflagged on a noisy evening (x1.90 [1.15, 3.14], p 0.012 against the
    # 0.005 two timed metrics get): 2 df cannot carry one round in another state. 5 rounds can.
    slowed = _run(tmp_path, "slowed", db, degrade_env, degrade="quantize:slow=1.0")
    # as nightly: the last run against the one before it, looking further back for a cell timed in
    # another machine state than that one
    second_id, slowed_id = (json.loads((d / "run.json").read_text())["run_id"] for d in (second, slowed))
    res = cli("compare", "--history", str(db))
    assert f"against {second_id}" in res.stdout, res.stdout
    lat = [li for li in res.stdout.splitlines() if "latency" in li and "torch-dynamic-int8" in li]
    # the machine's slow mode or another state can void the slowed cell, or scatter its rounds so that 2x is not
    # significant (shown unconfirmed: CI once read x2.07 [1.00, 4.27] on 5 rounds): the rest is checked all the same.
    # A slowdown left silent (no line) fails
    unjudged = (f"the slowdown went unjudged, the machine was noisy: {lat[0].strip()}"
                if lat and ("NOT COMPARABLE" in lat[0] or "UNCONFIRMED REGRESSION" in lat[0]) else "")
    if not unjudged:
        assert res.returncode == 1, res.stdout + res.stderr
        assert lat and lat[0].lstrip().startswith("REGRESSION"), res.stdout
    assert not any(li.lstrip().startswith("REGRESSION") and "none" in li for li in res.stdout.splitlines()), res.stdout

    noisy = _run(tmp_path, "noisy", db, degrade_env, degrade="none:noise=0.5")
    res = cli("compare", "--baseline", str(second), "--current", str(noisy), "--history", str(db))
    assert res.returncode == 1, res.stdout + res.stderr
    flagged = [li for li in res.stdout.splitlines() if li.lstrip().startswith("REGRESSION")]
    assert any("none" in li and "perplexity" in li for li in flagged), res.stdout
    assert any("none" in li and "top1_accuracy" in li for li in flagged), res.stdout

    # every finished run is in the history; last-green skips the runs that regressed
    listing = cli("history", "--history", str(db), "--suite", "nightly-tiny")
    assert listing.returncode == 0 and f"{runs + 2} runs in" in listing.stdout
    green = cli("compare", "--baseline", "last-green", "--history", str(db), "--json", str(tmp_path / "g.json"))
    green_id = json.loads((tmp_path / "g.json").read_text())["baseline"]["run_id"]
    if not unjudged:
        assert green_id == second_id, green.stdout
    else:  # the slowed run was not flagged, so it may be the last green one
        assert green_id in (second_id, slowed_id), green.stdout
        pytest.skip(unjudged)


def test_history_noise_is_unbiased_and_its_degrees_of_freedom_match_its_spread():
    # white-noise histories of 21 runs: the estimated variance of a run-to-run difference (truly 2 sd^2)
    # must be right on average, and spread like a chi-square with the degrees of freedom it claims
    # (the t quantile compare takes from them): too few df costs power, too many false alarms
    rng = random.Random(0)
    ests, dfs = [], []
    for _ in range(3000):
        n = noise_from_series([rng.gauss(0.0, 0.01) for _ in range(21)])
        ests.append(n.var / (2 * 0.01 ** 2))
        dfs.append(n.df)
    mean = statistics.fmean(ests)
    df_seen = 2 * mean ** 2 / statistics.variance(ests)
    assert abs(mean - 1) < 0.06
    assert 0.85 < statistics.fmean(dfs) / df_seen < 1.15


def test_history_noise_sets_a_step_and_a_run_in_another_state_aside():
    rng = random.Random(1)
    series = [rng.gauss(0.0, 0.01) for _ in range(30)]
    clean = noise_from_series(series)
    disturbed = [x + (0.20 if i >= 20 else 0.0) + (0.15 if i == 8 else 0.0) for i, x in enumerate(series)]
    n = noise_from_series(disturbed)
    assert n.var < 1.5 * clean.var and "3 set aside" in n.source


def test_a_change_past_what_a_machine_state_switch_does_is_flagged_across_states():
    """A cell timed in another machine state than the baseline's is not comparable, unless its change
    is past what a switch of state does (ratio to the baseline's cell: at most 1.24x in the stored
    hours): the e2e test's 2x slower int8 cell came out "not comparable" on the VM."""
    m1, m2 = {**meta("r1", "1"), "baseline": "none"}, {**meta("r2", "2"), "baseline": "none"}

    def rows(run, seed, int8, probe):
        return [row("none", 1, 0.010, seed=seed, run=run, rounds=10, probe=probe),
                row("int8", 1, 0.008 * int8, seed=seed, run=run, rounds=10, probe=probe)]

    base = rows("r1", 1, 1.0, 2.7e-4)  # the baseline run sat in the machine's other state
    lat = {r.name.split(" ")[0]: r.verdict for r in compare_runs(m1, base, m2, rows("r2", 2, 2.0, 2.5e-4)).results
           if r.metric == "latency"}
    assert lat["int8"].status == REGRESSION and "past the x1.5 a state switch makes" in lat["int8"].reason, lat
    assert lat["none"].status == NOT_COMPARABLE, lat
    # 1.2x is within what a state switch does to the ratio: not comparable, not flagged
    lat = {r.name.split(" ")[0]: r.verdict for r in compare_runs(m1, base, m2, rows("r2", 2, 1.2, 2.5e-4)).results
           if r.metric == "latency"}
    assert lat["int8"].status == NOT_COMPARABLE, lat
    # 2x faster: an improvement, and a cell in the slow mode stays not comparable whatever it did
    lat = {r.name.split(" ")[0]: r.verdict for r in compare_runs(m1, base, m2, rows("r2", 2, 0.5, 2.5e-4)).results
           if r.metric == "latency"}
    assert lat["int8"].status == IMPROVEMENT, lat
    slow = rows("r2", 2, 2.0, 2.5e-4)
    slow[1]["slow_machine"] = "speed probe 12x the fastest"
    lat = {r.name.split(" ")[0]: r.verdict for r in compare_runs(m1, base, m2, slow).results if r.metric == "latency"}
    assert lat["int8"].status == NOT_COMPARABLE, lat

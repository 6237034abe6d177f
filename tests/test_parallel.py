"""Parallelism on torch.distributed: DDP, pipeline and tensor parallel under torchrun (gloo), task parallel.

Two suite runs, each through the real runner (every cell in its own process, torchrun its
child): one where every kind of parallelism runs at world size 2 and must agree with one
process, and one where a rank crashes. World size 2 on gloo must run on the 2-core CI VM.
"""

from __future__ import annotations

import pytest
from optbench.distributed import _failure, usable_cpus, world_size_problem
from optbench.plugins.cpu import CPUBackend, CPUCompileBackend
from optbench.plugins.parallel import DDP, Pipeline, TaskParallel, TensorParallel
from optbench.testing import run_suite_yaml

# two blocks so a pipeline has two stages; untrained (no checkpoint needed) and small
MODEL = "{source: reference, size: tiny, depth: 2, width: 64, heads: 2}"
TOO_MANY = usable_cpus() + 1


def _param_bytes() -> int:
    from optbench.models import reference

    model, _ = reference.load("tiny", {"depth": 2, "width": 64, "heads": 2})
    return sum(p.numel() * p.element_size() for p in model.parameters())


@pytest.fixture(scope="module")
def parallel_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("parallel")
    outcome = run_suite_yaml(f"""
        name: parallel-test
        model: {MODEL}
        threads: 1
        workload: {{kind: forward, batch: 4, seq_len: 32}}
        measure: {{metrics: [parallel], min_reps: 3, min_time_s: 0.01}}
        techniques:
          - none
          - ddp: {{world_size: [2, {TOO_MANY}], steps: 4}}
          - pipeline: {{stages: 2, reps: 3}}
          - tensor-parallel: {{world_size: 2, reps: 3}}
          - task-parallel: {{workers: 2, tasks: [none, "share:tied-embeddings", "prune:magnitude"]}}
        timeout: 240
    """, out)
    return out, {r["technique"]["label"]: r for r in outcome.rows}


@pytest.fixture(scope="module")
def parallel_rows(parallel_run):
    return parallel_run[1]


def test_ddp_at_world_size_2_matches_the_single_process_losses(parallel_rows):
    row = parallel_rows["ddp[world_size=2,steps=4]"]
    assert row["status"] == "ok", row["reason"]
    m, info = row["metrics"], row["technique_info"]
    # the stated tolerance (1e-5 nats per step); measured here: 1.2e-7 at most
    assert m["loss_max_abs_diff"]["value"] <= 1e-5 and m["loss_max_abs_diff"]["steps"] == 4
    assert info["losses"] == pytest.approx(info["single_process_losses"], abs=1e-5)
    assert info["process_group"] == "gloo" and info["world_size"] == 2
    # torchrun's rule, recorded per rank: one OpenMP thread each, in two processes
    assert [r["omp_num_threads"] for r in info["ranks"]] == ["1", "1"]
    assert [r["torch_threads"] for r in info["ranks"]] == [1, 1]
    assert len({r["pid"] for r in info["ranks"]}) == 2
    assert m["train_throughput"]["value"] > 0 and m["single_process_train_throughput"]["value"] > 0
    assert m["scaling_efficiency"]["value"] == pytest.approx(
        m["train_throughput"]["value"] / (2 * m["single_process_train_throughput"]["value"]))
    assert len(m["rank_peak_rss"]["per_rank"]) == 2


def test_pipeline_stages_reproduce_the_single_process_output(parallel_rows):
    row = parallel_rows["pipeline[reps=3]"]
    assert row["status"] == "ok", row["reason"]
    m = row["metrics"]
    assert m["output_max_abs_diff"]["value"] <= 1e-6  # measured: identical
    # two stages hold disjoint parts of the model: together, every parameter once
    per_rank, total = m["rank_param_bytes"]["per_rank"], _param_bytes()
    assert len(per_rank) == 2 and all(b < total for b in per_rank)
    assert sum(per_rank) == total
    assert m["latency"]["n"] == 3 and m["throughput"]["value"] > 0
    assert row["technique_info"]["split_before_blocks"] == [1]


def test_tensor_parallel_shards_the_ffn_and_matches(parallel_rows):
    row = parallel_rows["tensor-parallel[reps=3]"]
    assert row["status"] == "ok", row["reason"]
    m = row["metrics"]
    assert m["output_max_abs_diff"]["relative"] <= 1e-5
    ffn = 2 * (64 * 256 + 256 + 256 * 64)  # fc weight + bias, out weight, per block (out's bias replicated)
    per_rank = m["rank_param_bytes"]["per_rank"]
    assert per_rank[0] == per_rank[1] == _param_bytes() - 4 * ffn // 2


def test_world_size_beyond_the_machine_is_skipped_with_the_rule(parallel_rows):
    row = parallel_rows[f"ddp[world_size={TOO_MANY},steps=4]"]
    assert row["status"] == "skipped"
    assert row["reason"] == f"world size {TOO_MANY} needs {TOO_MANY} CPU cores (one per rank); this machine has {TOO_MANY - 1}"


def test_task_parallel_reports_makespans_and_the_same_results(parallel_rows):
    row = parallel_rows["task-parallel[3 tasks]"]
    assert row["status"] == "ok", row["reason"]
    m = row["metrics"]
    assert m["task_result_max_diff"]["value"] == 0.0
    assert m["makespan_serial"]["value"] > 0 and m["makespan_parallel"]["value"] > 0
    assert m["makespan_ratio"]["value"] == pytest.approx(m["makespan_serial"]["value"] / m["makespan_parallel"]["value"])
    assert [t["task"] for t in row["technique_info"]["tasks"]] == ["none", "share:tied-embeddings", "prune:magnitude"]


def test_the_baseline_row_gets_single_process_latency(parallel_rows):
    row = parallel_rows["none"]
    assert row["status"] == "ok" and row["metrics"]["latency"]["n"] >= 3


def test_the_report_sets_each_parallel_cell_against_one_process_and_linear_scaling(parallel_run):
    import html
    import re

    from optbench.reporting import load_report
    from optbench.reports.renderers import HTMLReporter, MarkdownReporter

    out, rows = parallel_run
    report = load_report(out)
    HTMLReporter().render(report, str(out))
    MarkdownReporter().render(report, str(out))
    page = (out / "report.html").read_text()
    first = page.split('<h2 id="charts">', 1)[0]
    table = first.split('<table class="sortable" id="parallel">', 1)[1].split("</table>", 1)[0]
    shown = {}
    for tr in re.findall(r'<tr id="par-[^"]+">(.*?)</tr>', table):
        cells = [html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", tr)]
        shown[cells[0]] = cells
    m = {label: r["metrics"] for label, r in rows.items() if r["status"] == "ok"}
    ddp = m["ddp[world_size=2,steps=4]"]
    expected = {  # label: (ranks, speed-up over one process, what was timed, how close to one process)
        "ddp[world_size=2,steps=4]": (2, ddp["train_throughput"]["value"] / ddp["single_process_train_throughput"]["value"],
                                      "training tokens/s", r"identical loss|loss off by \S+ nats/token \(tolerance 1e-05\)"),
        "pipeline[reps=3]": (2, m["pipeline[reps=3]"]["parallel_speedup"]["value"], "forward latency",
                             r"identical output|output off by \S+ of its largest value \(tolerance 1e-05\)"),
        "tensor-parallel[reps=3]": (2, m["tensor-parallel[reps=3]"]["parallel_speedup"]["value"], "forward latency",
                                    r"identical output|output off by \S+ of its largest value \(tolerance 1e-05\)"),
        "task-parallel[3 tasks]": (2, m["task-parallel[3 tasks]"]["makespan_ratio"]["value"], "makespan of 3 tasks",
                                   r"same result per task"),
    }
    assert set(shown) == set(expected)  # the baseline and the skipped world size have no row
    for label, (ranks, speedup, timed, agreement) in expected.items():
        _, n, x, eff, what, close, *_ = shown[label]
        assert (n, x, eff, what) == (str(ranks), f"{speedup:.2f}x", f"{speedup / ranks:.2f}", timed), shown[label]
        assert re.fullmatch(agreement, close), close
    md = (out / "report.md").read_text().split("## Charts", 1)[0]
    assert re.search(r"\|\s*ranks\s*\|\s*speed-up over one process\s*\|\s*efficiency \(1 = linear\)\s*\|", md)
    svg = (out / "charts" / "parallel-scaling.svg").read_text()
    assert 'id="chart-parallel-scaling"' in page and "Parallel speed-up against linear scaling" in svg
    assert "linear: N ranks, N x" in svg and "speed-up over one process" in svg
    for label, (ranks, speedup, timed, _) in expected.items():
        unit = "workers" if label.startswith("task-parallel") else "ranks"  # a pool counts workers, torchrun ranks
        assert html.escape(f"{label} · {ranks} {unit} · {timed}") in svg, label
        assert f"{speedup:.2f}x, {speedup / ranks:.0%} of linear" in svg


def test_a_crashing_rank_fails_only_its_cell_with_the_rank_error(tmp_path):
    outcome = run_suite_yaml(f"""
        name: crash-test
        model: {MODEL}
        env: {{OPTBENCH_FAIL_RANK: "1"}}
        workload: {{kind: forward, batch: 4, seq_len: 32}}
        measure: {{metrics: [parallel], min_reps: 3, min_time_s: 0.01}}
        techniques:
          - ddp: {{world_size: 2, steps: 3}}
          - none
        timeout: 240
    """, tmp_path)
    rows = {r["technique"]["label"]: r for r in outcome.rows}
    crashed = rows["ddp[world_size=2,steps=3]"]
    assert crashed["status"] == "failed"
    assert "\n" not in crashed["reason"]
    assert "DistributedError: rank 1 of 2 failed: RuntimeError: injected failure on rank 1 (OPTBENCH_FAIL_RANK=1)" in crashed["reason"]
    assert crashed["seconds"] < 200  # torchrun stopped rank 0, which was waiting on the dead rank: nothing hung
    assert rows["none"]["status"] == "ok"  # the run went on


# --- without launching anything -------------------------------------------------------------------


def test_torchrun_summary_names_a_rank_killed_by_a_signal(tmp_path):
    log = """
Failures:
[1]:
  rank      : 0 (local_rank: 0)
  exitcode  : -15 (pid: 10)
  traceback : Signal 15 (SIGTERM) received by PID 10
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2026-01-01_00:00:00
  rank      : 1 (local_rank: 1)
  exitcode  : -11 (pid: 11)
  error_file: <N/A>
  traceback : Signal 11 (SIGSEGV) received by PID 11
"""
    assert _failure(tmp_path, 2, 1, log) == ("torchrun: rank 1 (local_rank: 1), exitcode -11 (pid: 11), "
                                             "traceback Signal 11 (SIGSEGV) received by PID 11")


def test_world_size_rule_is_one_core_per_rank():
    assert world_size_problem(usable_cpus(), "cpu") == ""
    assert "needs" in world_size_problem(usable_cpus() + 1, "cpu")
    assert world_size_problem(usable_cpus(), "cpu", threads_per_rank=2) == (
        f"world size {usable_cpus()} needs {2 * usable_cpus()} CPU cores (2 threads per rank); this machine has {usable_cpus()}")


def test_parallel_techniques_check_their_params_and_backend():
    assert DDP().validate({**DDP.params, "steps": 2}) == ["steps must be >= 3 (the first 2 are not timed), got 2"]
    assert Pipeline().validate({**Pipeline.params, "stages": 1}) == ["stages must be >= 2 (one stage is the model itself), got 1"]
    assert TensorParallel().validate({**TensorParallel.params, "world_size": 0}) == ["world_size must be >= 1, got 0"]
    assert TaskParallel().validate({**TaskParallel.params, "tasks": []})
    ok, why = DDP().supported({**DDP.params, "world_size": 1}, CPUCompileBackend())
    assert not ok and "backend 'cpu-compile' would not apply inside them" in why
    assert DDP().supported({**DDP.params, "world_size": 1}, CPUBackend()) == (True, "")


def test_a_launch_past_its_timeout_is_stopped_with_a_reason():
    import psutil
    import torch
    from optbench.distributed import DistributedError, launch

    job = {"kind": "ddp", "device": "cpu", "batch": 2, "seq_len": 8, "steps": 3, "lr": 1e-3, "seed": 0}
    before = {p.pid for p in psutil.Process().children(recursive=True)}  # earlier tests' helpers (resource tracker)
    with pytest.raises(DistributedError, match=r"^ddp job of world size 2 timed out after 0\.5 s \(torchrun and its ranks were stopped\)$"):
        launch(job, torch.nn.Linear(2, 2), 2, timeout_s=0.5, log=lambda s: None)
    assert {p.pid for p in psutil.Process().children(recursive=True)} <= before  # nothing of the launch left running


def test_stopping_torchrun_kills_the_processes_it_started():
    import subprocess
    import sys
    import time

    import psutil
    from optbench.distributed import _stop

    # a stand-in for torchrun with one "rank" under it
    proc = subprocess.Popen([sys.executable, "-c", "import subprocess, time; subprocess.Popen(['sleep', '60']); time.sleep(60)"])
    deadline = time.time() + 30
    while not psutil.Process(proc.pid).children() and time.time() < deadline:
        time.sleep(0.05)
    (rank,) = psutil.Process(proc.pid).children()
    _stop(proc)
    assert proc.returncode is not None
    rank.wait(timeout=10)
    assert not rank.is_running()

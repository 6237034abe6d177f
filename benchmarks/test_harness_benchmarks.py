"""Benchmarks of the optbench harness itself (not of models).

Run with ``pytest benchmarks/ --benchmark-only -s``. Every benchmark prints its figures
(and stores them in ``benchmark.extra_info``); none asserts a timing threshold.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import random
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import pytest

# --- helpers -------------------------------------------------------------------------------


def _timed(fn, times: list[float]):
    """Wrap fn so each call's wall time is recorded here too.

    The figures printed come from these times, so they are there even when
    pytest-benchmark is disabled (then ``benchmark.stats`` is None).
    """

    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            times.append(time.perf_counter() - t0)

    return wrapper


def _rounds(benchmark, times: list[float]) -> list[float]:
    """Per-round times as pytest-benchmark kept them (no warm-up or calibration calls);
    the wrapper's own record when the benchmark is disabled."""
    stats = getattr(benchmark, "stats", None)
    data = list(getattr(getattr(stats, "stats", None), "data", None) or [])
    return data or times


def _summary(times: list[float]) -> str:
    if not times:
        return "no rounds"
    med = statistics.median(times)
    unit, scale = ("ms", 1e3) if med < 1 else ("s", 1.0)
    return (f"median {med * scale:.2f} {unit} (min {min(times) * scale:.2f}, max {max(times) * scale:.2f}, "
            f"{len(times)} rounds)")


# Labels as the built-in techniques produce them: ``none`` and quantize's method names.
TECHNIQUES: dict[str, dict[str, Any]] = {
    "none": {"name": "none", "params": {}},
    "int8-weight-only": {"name": "quantize", "params": {"method": "int8-weight-only"}},
    "int8-dynamic": {"name": "quantize", "params": {"method": "int8-dynamic"}},
    "torch-dynamic-int8": {"name": "quantize", "params": {"method": "torch-dynamic-int8"}},
}
SPEEDUP = {"none": 1.0, "int8-weight-only": 1.15, "int8-dynamic": 1.3, "torch-dynamic-int8": 0.9}
SHRINK = {"none": 1.0, "int8-weight-only": 3.6, "int8-dynamic": 3.6, "torch-dynamic-int8": 3.2}
MODEL = {"source": "reference", "size": "tiny", "depth": None, "width": None, "heads": None, "ffn_ratio": None}
PARAMS = 3_233_536
RUN_ID = "20250101T000000Z-bench0"
SYNTH_SUITE_TEXT = """\
name: synthetic-report
question: How fast does optbench render a report of 200 cells?
model: {source: reference, size: tiny}
backend: cpu
workload: {kind: forward, batch: [1, 2, 4, 8, 16], seq_len: [16, 32, 48, 64, 96, 128, 192, 256, 384, 512]}
baseline: none
techniques:
  - none
  - quantize: {method: [int8-weight-only, int8-dynamic, torch-dynamic-int8]}
"""


def synthetic_row(label: str, batch: int, seq_len: int, plugins: dict[str, str], rng: random.Random,
                  n_samples: int = 30) -> dict[str, Any]:
    """One ``ok`` result row in the exact format ``harness.runner._row`` writes.

    The metric dicts are those the built-in metrics plugin returns; latency goes through
    the harness's own ``summarize`` so its dict has exactly the runner's keys.
    """
    from optbench.measure.latency import summarize

    tech = {**TECHNIQUES[label], "label": label}
    tokens = batch * seq_len
    median = (0.002 + 4e-6 * tokens) / SPEEDUP[label]
    samples = [median * (1 + abs(rng.gauss(0, 0.03))) for _ in range(n_samples)]
    lat = summarize(samples, warmup=3).to_dict()
    model_bytes = int(PARAMS * 4 / SHRINK[label])
    ppl = 4.2 * (1 + (0.0 if label == "none" else rng.uniform(0.001, 0.01)))
    metrics: dict[str, Any] = {
        "latency": lat,
        "throughput": {"value": tokens / lat["median"], "unit": "tokens/s"},
        "model_bytes": {"value": model_bytes, "unit": "B"},
        "param_bytes": {"value": model_bytes - 1024, "unit": "B"},
        "unique_param_bytes": {"value": model_bytes - 1024, "unit": "B"},
        "serialized_bytes": {"value": model_bytes + 40_000, "unit": "B"},
        "peak_rss": {"value": 600_000_000 + rng.randrange(50_000_000), "unit": "B"},
        "parameters": {"value": PARAMS, "unit": "count"},
        "flops_per_token": {"value": 2 * PARAMS + 8 * 4 * 256 * seq_len, "unit": "FLOP"},
        "perplexity": {"value": ppl, "unit": "", "tokens": 32768, "split": "heldout"},
        "top1_accuracy": {"value": 0.55 - (ppl - 4.2) / 10, "unit": "fraction"},
        "kl_divergence": {"value": 0.0 if label == "none" else rng.uniform(1e-4, 5e-3), "unit": "nats/token"},
        "top1_agreement": {"value": 1.0 if label == "none" else rng.uniform(0.97, 0.999), "unit": "fraction"},
    }
    phases = {"plugins": 0.06, "load": 0.03, "baseline": 0.4, "apply": 0.02 if label != "none" else 0.0,
              "metric:latency": round(sum(samples) + 0.05, 4), "metric:accuracy": 0.8, "metric:fidelity": 0.7,
              "metric:cost": 0.1, "metric:memory": 0.05}
    phases["total_in_process"] = round(sum(phases.values()) + 0.01, 4)
    phases = {k: round(v, 4) for k, v in phases.items()}
    measured = phases["apply"] + phases["baseline"] + sum(v for k, v in phases.items() if k.startswith("metric:"))
    seconds = round(phases["total_in_process"] + 0.05, 4)
    cell = hashlib.sha256(f"{label}|cpu|{batch}|{seq_len}".encode()).hexdigest()[:16]
    row = {
        "schema": 1,
        "run_id": RUN_ID,
        "cell": cell,
        "suite": "synthetic-report",
        "technique": tech,
        "baseline": "none",
        "backend": "cpu",
        "model": dict(MODEL),
        "model_fingerprint": "0123456789abcdef" * 4,
        "workload": {"kind": "forward", "batch": batch, "seq_len": seq_len},
        "data": {"name": "pydoc-text", "split": "heldout"},
        "status": "ok",
        "reason": "",
        "metrics": metrics,
        "plugins": plugins,
        "started": "2025-01-01T00:00:00+00:00",
        "seconds": seconds,
        "phases": phases,
        "log": f"logs/{cell}.log",
        "harness_overhead_s": round(max(seconds - measured, 0.0), 4),
        "backend_info": {"device": "cpu", "precision": "float32", "threads": 2, "omp": {}},
        "model_info": {"config": {"depth": 4, "width": 256, "heads": 4}, "hash": "0" * 64, "trained": True},
        "plugin_of": {"technique": f"{tech['name']} (optbench==0.1.0)", "backend": "cpu (optbench==0.1.0)"},
        "threads": 2,
    }
    if lat["unstable"]:
        row["unstable"] = lat["unstable_reason"]
    return row


def synthetic_rows(n: int, plugins: dict[str, str], labels: list[str] | None = None,
                   batches: tuple[int, ...] = (1, 2, 4, 8, 16),
                   seq_lens: tuple[int, ...] = (16, 32, 48, 64, 96, 128, 192, 256, 384, 512),
                   seed: int = 0) -> list[dict[str, Any]]:
    """n rows over seq_len x batch x technique; labels vary fastest, so every
    (batch, seq_len) context has its ``none`` baseline next to the techniques."""
    labels = labels or list(TECHNIQUES)
    combos = list(itertools.product(seq_lens, batches, labels))
    if n > len(combos):
        raise ValueError(f"only {len(combos)} distinct cells for these axes, asked for {n}")
    rng = random.Random(seed)
    return [synthetic_row(label, batch, seq, plugins, rng) for seq, batch, label in combos[:n]]


def write_synthetic_run(run_dir: Path, rows: list[dict[str, Any]], pm, repo_root: Path) -> None:
    """results.jsonl through the harness's own writer, plus a run.json with run_suite's keys."""
    from optbench import envinfo
    from optbench.cell import SCHEMA
    from optbench.results import RUN, ResultsFile, write_json_atomic

    results = ResultsFile(run_dir)
    for row in rows:
        results.append(row)
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    meta = {
        "schema": SCHEMA, "run_id": RUN_ID, "suite": "synthetic-report", "suite_path": "suites/synthetic-report.yaml",
        "suite_sha256": hashlib.sha256(SYNTH_SUITE_TEXT.encode()).hexdigest(), "suite_text": SYNTH_SUITE_TEXT,
        "question": "How fast does optbench render a report of 200 cells?", "baseline": "none", "started": now,
        "segments": [{"started": now, "cells_todo": len(rows), "server_start_s": 3.0, "finished": now,
                      "cells_run": len(rows), "interrupted": False}],
        "environment": envinfo.fingerprint(2, {}, pm.versions(), cwd=str(repo_root)),
        "cells_planned": len(rows), "plugin_errors": [],
    }
    write_json_atomic(run_dir / RUN, meta)


# --- 1. CLI start-up -------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [["--help"], ["plugins"]], ids=["help", "plugins"])
def test_cli_startup(benchmark, optbench_exe, argv, figure):
    """Wall time of the console script as a fresh process (interpreter + imports + command)."""
    times: list[float] = []

    def call():
        return subprocess.run([str(optbench_exe), *argv], capture_output=True, text=True, check=True)

    proc = benchmark.pedantic(_timed(call, times), rounds=5, iterations=1)
    assert proc.returncode == 0 and proc.stdout.strip()
    if argv == ["plugins"]:
        assert "reporters" in proc.stdout
    times = _rounds(benchmark, times)
    benchmark.extra_info.update(command=f"optbench {' '.join(argv)}", median_s=round(statistics.median(times), 4))
    figure(f"CLI start-up `optbench {' '.join(argv)}`: {_summary(times)}")


# --- 2. suite validation ---------------------------------------------------------------------


def test_suite_validation(benchmark, pm, repo_root, figure):
    """parse_suite of the quickstart suite (YAML with line numbers, JSON Schema, registry checks)."""
    from optbench.suite import parse_suite

    path = repo_root / "suites" / "quickstart.yaml"
    text = path.read_text()
    times: list[float] = []
    suite = benchmark(_timed(parse_suite, times), text, str(path), pm)
    assert suite.name == "quickstart"
    assert [t.label for t in suite.techniques] == ["none", "int8-weight-only"]
    times = _rounds(benchmark, times)
    benchmark.extra_info.update(suite=str(path.relative_to(repo_root)), median_s=round(statistics.median(times), 6))
    figure(f"suite validation (parse_suite of {path.name}, plugin manager loaded once): {_summary(times)}")


# --- 3. report rendering ---------------------------------------------------------------------

N_ROWS = 200


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory, pm, repo_root) -> Path:
    run_dir = tmp_path_factory.mktemp("synthetic-run")
    write_synthetic_run(run_dir, synthetic_rows(N_ROWS, pm.versions()), pm, repo_root)
    return run_dir


def test_report_rendering(benchmark, pm, synthetic_run, figure):
    """render_all on a results directory of 200 ok rows: bootstrap CIs, tables, Markdown + HTML."""
    from optbench.reporting import load_report, render_all
    from optbench.results import read_rows

    rows = read_rows(synthetic_run)
    assert len(rows) == N_ROWS and all(r["status"] == "ok" for r in rows)
    labels = {r["technique"]["label"] for r in rows}
    assert "none" in labels and len(labels) > 2
    assert len({r["workload"]["batch"] for r in rows}) > 1

    times: list[float] = []
    paths = benchmark.pedantic(_timed(render_all, times), args=(synthetic_run, pm), rounds=5, iterations=1,
                               warmup_rounds=1)
    times = _rounds(benchmark, times)
    names = sorted(Path(p).name for p in paths)
    assert names == ["report.html", "report.md"]
    report = load_report(synthetic_run)
    assert len(report.rows) == N_ROWS and not report.failed
    n_comp = len(report.comparisons)
    assert n_comp == N_ROWS - len(report.baselines)
    assert all(c.speedup is not None and not c.not_comparable for c in report.comparisons)
    sizes = {Path(p).name: Path(p).stat().st_size for p in paths}
    benchmark.extra_info.update(rows=N_ROWS, comparisons=n_comp, labels=sorted(labels), report_bytes=sizes,
                                median_s=round(statistics.median(times), 4))
    figure(f"report rendering (render_all, {N_ROWS} rows, {n_comp} comparisons, {len(labels)} techniques): "
           f"{_summary(times)}; report.md {sizes['report.md'] / 1024:.0f} KiB, "
           f"report.html {sizes['report.html'] / 1024:.0f} KiB")


# --- 4. per-cell harness overhead ------------------------------------------------------------

OVERHEAD_SUITE = """\
name: harness-overhead
question: What does the harness itself cost per cell?
model: {source: reference, size: tiny, depth: 1, width: 64, heads: 2}
backend: cpu
threads: 1
workload: {batch: [1, 2], seq_len: 16}
measure: {min_reps: 5, min_time_s: 0.05, metrics: [latency], eval_tokens: 256}
techniques: [none]
timeout: 300
"""


def test_per_cell_overhead(benchmark, pm, tmp_path, monkeypatch, figure):
    """One end-to-end run_suite of a 2-cell suite on an untrained 1-layer model (run once).

    The figure that matters is each row's ``harness_overhead_s``: the cell's wall time
    minus applying the technique and measuring (process start, plugin + model loading,
    result transport); plus the run's one-time cell-server start.
    """
    from optbench.results import RUN
    from optbench.runner import RunOptions, run_suite
    from optbench.suite import parse_suite

    # multiprocessing re-runs the host program's __main__ script in every child it starts
    # (spawn.prepare); hosted by pytest that is /.../bin/pytest, i.e. `import pytest` per
    # cell, which `optbench run` does not pay. Hide it, so the figure is the harness's own.
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))

    suite_path = tmp_path / "harness-overhead.yaml"
    suite_path.write_text(OVERHEAD_SUITE)
    suite = parse_suite(OVERHEAD_SUITE, str(suite_path), pm)
    runs = itertools.count()
    progress: list[str] = []

    def run_once():
        out = tmp_path / f"run{next(runs)}"  # a fresh directory, so nothing is resumed
        return run_suite(suite, pm, RunOptions(out_dir=out, history=""), on_progress=progress.append)

    times: list[float] = []
    outcome = benchmark.pedantic(_timed(run_once, times), rounds=1, iterations=1)

    assert not outcome.interrupted and outcome.ran == 2
    assert len(outcome.rows) == 2
    for r in outcome.rows:
        assert r["status"] == "ok", f"{r['status']}: {r['reason']}"
        assert {"harness_overhead_s", "seconds", "phases"} <= set(r)
    assert sorted(Path(p).name for p in outcome.reports) == ["report.html", "report.md"]
    meta = json.loads((outcome.run_dir / RUN).read_text())
    server_start = meta["segments"][-1].get("server_start_s")

    for line in progress:
        print(f"  {line}")
    cells = []
    for r in sorted(outcome.rows, key=lambda r: r["workload"]["batch"]):
        wl, phases = r["workload"], r["phases"]
        overhead = r["harness_overhead_s"]
        # the overhead, split: inside run_cell but not measuring (plugins, model load, the
        # rest) vs outside it (fork from the cell server, child-side imports, result
        # transport, process exit)
        outside = max(r["seconds"] - phases.get("total_in_process", 0.0), 0.0)
        inside = max(overhead - outside, 0.0)
        cells.append({"technique": r["technique"]["label"], "batch": wl["batch"], "seq_len": wl["seq_len"],
                      "seconds": r["seconds"], "harness_overhead_s": overhead, "phases": phases,
                      "overhead_in_cell_process_s": round(inside, 4), "overhead_process_and_transport_s": round(outside, 4)})
        figure(f"cell {r['technique']['label']} b={wl['batch']} s={wl['seq_len']}: {r['seconds']:.3f} s wall, "
               f"harness overhead {overhead:.3f} s = {inside:.3f} s in run_cell (plugins + model load) "
               f"+ {outside:.3f} s process start/transport/exit; phases: "
               + ", ".join(f"{k} {v:.3f}" for k, v in phases.items()))
    med = statistics.median(c["harness_overhead_s"] for c in cells)
    benchmark.extra_info.update(cells=cells, overhead_median_s=med, server_start_s=server_start,
                                run_wall_s=round(times[0], 3))
    figure(f"per-cell overhead: median {med:.3f} s over {len(cells)} cells "
           f"(process start, plugin + model loading, result transport)")
    figure(f"cell-server start (one-time, per run): {server_start} s; whole run_suite incl. reports: {times[0]:.2f} s")

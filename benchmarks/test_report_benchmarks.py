"""Report rendering at scale: a synthetic run of 1,000 cells, and the size of a real run's report.

Run with ``pytest benchmarks/test_report_benchmarks.py --benchmark-only -s``. Like the other
harness benchmarks these print figures and never fail on speed.
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path

import pytest
from test_harness_benchmarks import _rounds, _summary, _timed, synthetic_rows, write_synthetic_run

N_CELLS = 1000
# 50 sequence lengths x 5 batch sizes x 4 techniques (none + three quantize methods)
SEQ_LENS = tuple(range(16, 16 + 50 * 8, 8))


@pytest.fixture(scope="module")
def run_1000(tmp_path_factory, pm, repo_root) -> Path:
    run_dir = tmp_path_factory.mktemp("synthetic-1000")
    write_synthetic_run(run_dir, synthetic_rows(N_CELLS, pm.versions(), seq_lens=SEQ_LENS), pm, repo_root)
    return run_dir


def test_report_render_1000_cells(benchmark, pm, run_1000, figure):
    """render_all on 1,000 ok rows: bootstrap CIs of 750 comparisons, first screen, charts, tables, HTML + Markdown."""
    from optbench.reporting import load_report, render_all

    times: list[float] = []
    paths = benchmark.pedantic(_timed(render_all, times), args=(run_1000, pm), rounds=3, iterations=1, warmup_rounds=1)
    times = _rounds(benchmark, times)
    assert sorted(Path(p).name for p in paths) == ["report.html", "report.md"]
    report = load_report(run_1000)
    assert len(report.rows) == N_CELLS and len(report.comparisons) == N_CELLS - len(report.baselines)
    html = (run_1000 / "report.html").read_text()
    assert 'id="traffic-lights"' in html and "geometric mean over 250 workloads" in html
    charts = sorted(p.name for p in (run_1000 / "charts").glob("*.svg"))
    assert charts == ["size-vs-accuracy.svg", "speed-vs-accuracy.svg", "speedup.svg"]
    sizes = {Path(p).name: Path(p).stat().st_size for p in paths}
    benchmark.extra_info.update(cells=N_CELLS, report_bytes=sizes, median_s=round(statistics.median(times), 3))
    figure(f"report rendering (render_all, {N_CELLS} cells, {len(report.comparisons)} comparisons): {_summary(times)}; "
           f"report.html {sizes['report.html']:,} B, report.md {sizes['report.md']:,} B")


def test_report_size_of_a_real_run(benchmark, pm, repo_root, figure):
    """Bytes of report.html (and render time) for a real results directory: $OPTBENCH_REPORT_DIR, else results/compression."""
    from optbench.reporting import render_all

    run_dir = Path(os.environ.get("OPTBENCH_REPORT_DIR") or repo_root / "results" / "compression")
    if not (run_dir / "run.json").exists():
        pytest.skip(f"no results in {run_dir}: run `optbench run suites/compression.yaml` first (or set OPTBENCH_REPORT_DIR)")
    times: list[float] = []
    paths = benchmark.pedantic(_timed(render_all, times), args=(run_dir, pm), kwargs={"only": ["html", "markdown"]},
                               rounds=3, iterations=1)
    times = _rounds(benchmark, times)
    html = run_dir / "report.html"
    assert str(html) in paths
    charts = sorted((run_dir / "charts").glob("*.svg")) if (run_dir / "charts").exists() else []
    figure(f"report of {run_dir}: render {_summary(times)}; report.html {html.stat().st_size:,} B (charts inline), "
           f"report.md {(run_dir / 'report.md').stat().st_size:,} B + {len(charts)} chart SVGs "
           f"{sum(c.stat().st_size for c in charts):,} B")

"""optbench compare on a year of nightly history (365 runs): wall time, and that it finds the step.

    python -m pytest benchmarks/test_compare_benchmarks.py --benchmark-only -s

The history comes from benchmarks/make_history.py (an 8% step of one cell two nights ago).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session")
def year_of_history(tmp_path_factory) -> tuple[Path, int]:
    from make_history import build

    db = tmp_path_factory.mktemp("history") / "history-365.db"
    return db, build(db, runs=365)


def test_compare_on_365_runs(benchmark, year_of_history, tmp_path, figure):
    from optbench.cli import main

    db, step_at = year_of_history
    out = tmp_path / "c.json"

    def compare() -> int:
        return main(["compare", "--history", str(db), "--json", str(out)])

    code = benchmark.pedantic(compare, rounds=3, iterations=1, warmup_rounds=1)
    data = json.loads(out.read_text())
    steps = [t for t in data["trends"] if t["metric"] == "latency"]
    assert code == 0 and steps and steps[0]["cell"].startswith("int8-weight-only cpu b=1") and steps[0]["runs_ago"] == 364 - step_at
    figure(f"compare on a 365-run history: median {benchmark.stats.stats.median:.2f} s "
           f"(trends over {len(data['results'])} cell metrics; step found {steps[0]['runs_ago']} runs ago, x{steps[0]['ratio']:.3f})")

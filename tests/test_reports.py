"""Reports: summary against the baseline, failed cells with reasons, escaping, re-rendering."""

from __future__ import annotations

import json
import re

import pytest
from helpers import cli
from optbench.measure.latency import summarize
from optbench.reporting import render_all


def _row(label, batch, median, status="ok", reason="", nbytes=13_000_000, ppl=4.0, kl=0.0, unstable="", probe=0.001):
    import random

    rnd = random.Random(f"{label}-{batch}")  # str seeds are stable across processes
    samples = [median * (1 + rnd.gauss(0, 0.01)) for _ in range(30)]
    row = {
        "schema": 1, "run_id": "r", "cell": f"{label}-{batch}", "suite": "demo",
        "technique": {"name": label, "params": {}, "label": label}, "baseline": "none",
        "backend": "cpu", "model": {"source": "reference", "size": "tiny"}, "workload": {"kind": "forward", "batch": batch, "seq_len": 128},
        "status": status, "reason": reason, "plugins": {}, "seconds": 1.0,
        "metrics": {} if status != "ok" else {
            "latency": {**summarize(samples).to_dict(), "speed_probe_s": [probe, probe]},
            "model_bytes": {"value": nbytes, "unit": "B"}, "serialized_bytes": {"value": nbytes, "unit": "B"},
            "perplexity": {"value": ppl, "unit": ""}, "kl_divergence": {"value": kl, "unit": "nats/token"},
            "top1_agreement": {"value": 1.0 if kl == 0 else 0.98, "unit": "fraction"},
        },
    }
    if unstable:
        row["unstable"] = unstable
    return row


def _write(run_dir, rows, suite_text="name: demo\n"):
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run_dir / "run.json").write_text(json.dumps({
        "schema": 1, "run_id": "r", "suite": "demo", "suite_path": "s.yaml", "suite_sha256": "0" * 64,
        "suite_text": suite_text, "question": "", "baseline": "none", "started": "", "segments": [],
        "environment": {"cpu": "test cpu", "plugins": {"cpu": "optbench==0.1.0"}}, "cells_planned": len(rows), "plugin_errors": [],
    }))


def test_summary_states_ratios_against_the_baseline(tmp_path, pm):
    rows = [_row("none", 1, 0.010), _row("int8", 1, 0.005, nbytes=3_600_000, ppl=4.02, kl=0.002),
            _row("slow", 1, 0.020, nbytes=13_000_000, ppl=4.0, kl=0.0), _row("same", 1, 0.010)]
    _write(tmp_path, rows)
    render_all(tmp_path, pm)
    md = (tmp_path / "report.md").read_text()
    line = next(li for li in md.splitlines() if li.startswith("- int8:"))
    assert "3.61x smaller in memory" in line and "+0.50% perplexity" in line and "KL 0.0020" in line
    speed = re.search(r"int8: ([0-9.]+)x faster \[([0-9.]+), ([0-9.]+)\] at batch 1", line)
    assert speed, line
    point, lo, hi = map(float, speed.groups())
    assert point == pytest.approx(2.0, rel=0.03) and lo <= point <= hi
    slow = next(li for li in md.splitlines() if li.startswith("- slow:"))
    assert "2.00x slower [" in slow
    lo, hi = (float(x) for x in slow.split("[")[1].split("]")[0].split(","))
    assert 1 <= lo <= 2.0 <= hi and "within noise" not in slow
    same = next(li for li in md.splitlines() if li.startswith("- same:"))
    assert "(within noise)" in same  # an interval that includes 1 is not called a speed-up


def test_failed_cells_and_unstable_are_marked(tmp_path, pm):
    rows = [_row("none", 1, 0.010, unstable="bimodal: 12% of samples are over 2x the median"),
            _row("broken", 1, 0, status="failed", reason="timed out after 60 s")]
    _write(tmp_path, rows)
    render_all(tmp_path, pm)
    md = (tmp_path / "report.md").read_text()
    html = (tmp_path / "report.html").read_text()
    assert "broken: failed (timed out after 60 s)" in md
    assert "1 failed, 0 skipped" in md and "timed out after 60 s" in html
    assert "ok (unstable)" in md


def test_a_steadily_slow_machine_is_caught_by_the_speed_probe(tmp_path, pm):
    # The trap seen on a fresh clone: the baseline cell ran in the VM's slow mode for its
    # whole duration (steady samples, 27x slower), and int8 looked 7.7x faster.
    rows = [_row("none", 1, 0.342, probe=0.027), _row("int8", 1, 0.014, probe=0.001), _row("none", 8, 0.105), _row("int8", 8, 0.114)]
    _write(tmp_path, rows)
    render_all(tmp_path, pm)
    md = (tmp_path / "report.md").read_text()
    line = next(li for li in md.splitlines() if li.startswith("- int8:"))
    assert "UNSTABLE timings: batch 1: baseline: machine slow during this cell: speed probe 27.0x the run's fastest" in line
    assert "batch 8:" not in line.split("UNSTABLE")[1]  # only the affected batch is named


def test_strings_from_plugins_and_suites_are_escaped(tmp_path, pm):
    evil = "<script>alert(1)</script>"
    rows = [_row("none", 1, 0.01), _row(evil, 1, 0.01, status="failed", reason=f"{evil} | broke")]
    _write(tmp_path, rows, suite_text=f"name: demo\n# {evil}\n")
    render_all(tmp_path, pm)
    html = (tmp_path / "report.html").read_text()
    assert evil not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html.lower()
    md = (tmp_path / "report.md").read_text()
    assert "<script>" not in md and "\\|" in md  # table cells cannot be broken out of


def test_report_is_self_contained(tmp_path, pm):
    _write(tmp_path, [_row("none", 1, 0.01), _row("int8", 1, 0.005)])
    render_all(tmp_path, pm)
    html = (tmp_path / "report.html").read_text()
    for needle in ("http://", "https://", "<link", "src="):
        assert needle not in html


def test_report_cli_rerenders_and_rejects_non_results(tmp_path):
    _write(tmp_path / "run", [_row("none", 1, 0.01)])
    out = cli("report", str(tmp_path / "run"))
    assert out.returncode == 0 and "report.html" in out.stdout
    bad = cli("report", str(tmp_path))
    assert bad.returncode == 2 and "no run.json here" in bad.stderr and "Traceback" not in bad.stderr

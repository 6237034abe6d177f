"""Reports: the first screen (recommendation, traffic lights), charts, failed cells with reasons, escaping, re-rendering."""

from __future__ import annotations

import json
import re

import pytest
from helpers import cli
from optbench.measure.latency import summarize
from optbench.reporting import render_all


def _row(label, batch, median, status="ok", reason="", nbytes=13_000_000, ppl=4.0, kl=0.0, unstable="", probe=0.001,
         model=None, training=None, extra=None):
    import random

    rnd = random.Random(f"{label}-{batch}")  # str seeds are stable across processes
    samples = [median * (1 + rnd.gauss(0, 0.01)) for _ in range(30)]
    row = {
        "schema": 1, "run_id": "r", "cell": f"{label}-{batch}", "suite": "demo",
        "technique": {"name": label, "params": {}, "label": label}, "baseline": "none",
        "backend": "cpu", "model": model or {"source": "reference", "size": "tiny"},
        "workload": {"kind": "train" if training else "forward", "batch": batch, "seq_len": 128},
        "status": status, "reason": reason, "plugins": {}, "seconds": 1.0,
        "metrics": {} if status != "ok" else {
            "latency": {**summarize(samples).to_dict(), "speed_probe_s": [probe, probe]},
            "model_bytes": {"value": nbytes, "unit": "B"}, "serialized_bytes": {"value": nbytes, "unit": "B"},
            "perplexity": {"value": ppl, "unit": ""}, "kl_divergence": {"value": kl, "unit": "nats/token"},
            "top1_agreement": {"value": 1.0 if kl == 0 else 0.98, "unit": "fraction"},
        },
    }
    if status == "ok" and extra:
        row["metrics"].update(extra)
    if training is not None:
        row["training"] = training
    if model:
        row["cell"] += "-" + "-".join(f"{k}{v}" for k, v in model.items() if k not in ("source", "size"))
    if unstable:
        row["unstable"] = unstable
    return row


def _curve(final, steps=200, every=20, start=5.5):
    """A loss curve in the training workload's row format, decaying from ``start`` to ``final``."""
    import math

    out = []
    for step in range(every, steps + 1, every):
        loss = final + (start - final) * math.exp(-step / (steps / 4))
        out.append({"step": step, "seconds": round(step * 0.05, 3), "train_loss": round(loss, 4),
                    "heldout_loss": round(loss + 0.05, 4) if step % (2 * every) == 0 else None})
    return out


def _training_row(label, final, reached_at=None, model=None, diverged=""):
    import math

    extra = {"steps_to_target": {"value": reached_at, "unit": "steps"},
             "seconds_to_target": {"value": None if reached_at is None else reached_at * 0.05, "unit": "s"},
             "tokens_per_s": {"value": 20000.0, "unit": "tokens/s"}, "params": {"value": 100_000, "unit": "count"},
             "flops_per_token": {"value": 2e5 * (model or {}).get("width", 64) / 64 * (model or {}).get("depth", 1), "unit": "FLOP"}}
    training = {"curve": _curve(final), "target_loss": 1.2, "diverged": diverged}
    return _row(label, 8, 0.01, ppl=math.exp(final + 0.05), model=model, training=training, extra=extra)


def _write(run_dir, rows, suite_text="name: demo\n", **meta):
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run_dir / "run.json").write_text(json.dumps({
        "schema": 1, "run_id": "r", "suite": "demo", "suite_path": "s.yaml", "suite_sha256": "0" * 64,
        "suite_text": suite_text, "question": "", "baseline": "none", "started": "", "segments": [],
        "environment": {"cpu": "test cpu", "plugins": {"cpu": "optbench==0.1.0"}}, "cells_planned": len(rows), "plugin_errors": [],
        **meta,
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
    assert html.lower().count("<script") == 1  # the report's own (sortable tables), allowed by its CSP hash alone
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


# --- the first screen ------------------------------------------------------------------------------


def _first_screen(html: str) -> str:
    return html.split('<section class="first-screen"', 1)[1].split("</section>", 1)[0]


def _traffic_lights(html: str) -> dict[str, list[tuple[str, str]]]:
    """label -> [(level, cell text)] for each row of the first screen's traffic-light table."""
    table = html.split('id="traffic-lights"', 1)[1].split("</table>", 1)[0]
    out = {}
    for tr in re.findall(r"<tr[^>]*>(.*?)</tr>", table.split("<tbody>", 1)[1], flags=re.S):
        label = re.search(r'<a href="#[^"]+">(.*?)</a>', tr).group(1)
        cells = re.findall(r'<td[^>]*class="tl-(\w+)"[^>]*>(.*?)</td>', tr, flags=re.S)
        out[label] = [(level, re.sub(r"<[^>]+>", "", text).strip()) for level, text in cells]
    return out


def test_first_screen_recommends_the_fastest_credible_technique_within_the_budget(tmp_path, pm):
    rows = [_row("none", 1, 0.010),
            _row("lossy", 1, 0.004, nbytes=6_500_000, ppl=4.20, kl=0.05),  # fastest, +5% perplexity: over budget
            _row("good", 1, 0.0066, nbytes=3_600_000, ppl=4.016, kl=0.002),  # 1.5x, +0.4%
            _row("noisy", 1, 0.0055, ppl=4.004, unstable="bimodal: 12% of samples are over 2x the median"),
            _row("tiny", 1, 0.0101, nbytes=1_600_000, ppl=4.02)]  # smallest, no faster
    _write(tmp_path, rows, question="Which one should we ship?", accuracy_budget="1%")
    render_all(tmp_path, pm)
    html, md = (tmp_path / "report.html").read_text(), (tmp_path / "report.md").read_text()
    first = _first_screen(html)
    assert "Which one should we ship?" in first
    head = re.search(r'<p class="headline">.*?</span>(.*?)</p>', first, flags=re.S).group(1)
    assert re.fullmatch(r"Within a \+1% perplexity budget, good is the best choice: 1\.5\dx faster \[1\.\d\d, 1\.\d\d\], "
                        r"3\.61x smaller in memory, \+0\.40% perplexity\.", head), head
    assert "noisy measured faster" in first and "timings were unstable" in first  # left out, and said why
    assert re.search(r"Faster but over the budget: lossy \(2\.\d\dx faster \[[0-9., ]+\], 2\.00x smaller in memory, \+5\.00% perplexity\)", first)
    assert "Smallest within budget: tiny (" in first
    assert "**Recommendation:** Within a +1% perplexity budget, good is the best choice" in md

    # the budget is a suite setting: at 10%, the fastest one is within it
    _write(tmp_path, rows, question="Which one should we ship?", accuracy_budget="10%")
    render_all(tmp_path, pm)
    assert "Within a +10% perplexity budget, lossy is the best choice: 2.4" in (tmp_path / "report.html").read_text()


def test_nothing_credibly_faster_is_said_plainly(tmp_path, pm):
    rows = [_row("none", 1, 0.010), _row("same", 1, 0.0100, nbytes=3_600_000, ppl=4.001), _row("slow", 1, 0.02, ppl=4.0)]
    _write(tmp_path, rows)
    render_all(tmp_path, pm)
    first = _first_screen((tmp_path / "report.html").read_text())
    assert "Within a +1% perplexity budget, no technique is credibly faster than the baseline (none)." in first
    assert "Closest within budget: same (" in first and "includes 1x (no clear change)" in first
    assert 'class="verdict verdict-fair"' in first


def test_unreliable_speed_figures_are_flagged_on_the_first_screen(tmp_path, pm):
    rows = [_row("none", 1, 0.010, unstable="p90 is 2.8x the median"), _row("int8", 1, 0.005, ppl=4.0)]
    _write(tmp_path, rows)
    render_all(tmp_path, pm)
    first = _first_screen((tmp_path / "report.html").read_text())
    assert "Speed figures are unreliable: the baseline&#39;s timings were unstable (p90 is 2.8x the median)" in first
    assert "no technique is credibly faster" in first  # an unstable ratio is never recommended
    assert _traffic_lights(first)["int8"][0][0] == "fair"


def test_traffic_lights_follow_the_stated_rules(tmp_path, pm):
    rows = [_row("none", 1, 0.010), _row("fast", 1, 0.005, nbytes=3_600_000, ppl=4.02, kl=0.002),
            _row("slow", 1, 0.020, nbytes=15_000_000, ppl=4.06), _row("same", 1, 0.010, nbytes=12_500_000, ppl=4.2),
            _row("gpu-only", 1, 0, status="skipped", reason="needs a CUDA GPU"),
            _row("crashy", 1, 0, status="failed", reason="killed: out of memory")]
    _write(tmp_path, rows)
    render_all(tmp_path, pm)
    html = (tmp_path / "report.html").read_text()
    lights = _traffic_lights(html)
    assert [lv for lv, _ in lights["fast"]] == ["good", "good", "good", "good"]
    assert lights["fast"][0][1].startswith("✓ 2.00x faster [") and lights["fast"][3][1] == "✓ +0.50% perplexity, KL 0.0020"
    assert [lv for lv, _ in lights["slow"]] == ["poor", "poor", "poor", "fair"]  # 1.15x larger; +1.5% is under 2 budgets
    assert lights["slow"][0][1].startswith("✗ 2.00x slower [")
    assert [lv for lv, _ in lights["same"]] == ["fair", "fair", "fair", "poor"]
    assert lights["same"][0][1].startswith("~ ") and "(within noise)" in lights["same"][0][1]
    # failed and skipped cells keep their row, with the reason, across the metric columns
    first = _first_screen(html)
    assert re.search(r'<td colspan="4" class="tl-status"><b>SKIPPED</b>: needs a CUDA GPU</td>', first)
    assert re.search(r'<td colspan="4" class="tl-status"><b>FAILED</b>: killed: out of memory</td>', first)
    # every rule is stated, and the marks read without colour
    for rule in ("the whole 95% interval of the speed ratio is above 1x", "at least 1.1x smaller",
                 "perplexity change within the +1% perplexity budget", "marks print in black and white"):
        assert rule in first
    # each summary row links to its detail row
    for anchor in re.findall(r'<th scope="row"><a href="#([^"]+)"', first):
        assert f'id="{anchor}"' in html
    md = (tmp_path / "report.md").read_text()
    assert re.search(r"\| \*\*fast\*\* \(recommended\) \| 🟢✓ (1\.99|2\.0\d)x faster \[", md)
    assert "| crashy | **FAILED**: killed: out of memory |" in md and "| slow | 🔴✗ " in md


def test_a_run_where_half_the_cells_failed(tmp_path, pm):
    ok = [_row("none", b, 0.010) for b in (1, 8)] + [_row("int8", b, 0.006, ppl=4.01) for b in (1, 8)]
    failed = [_row(f"broken{i}", b, 0, status="failed", reason=f"timed out after {60 + i} s") for i in (1, 2) for b in (1, 8)]
    _write(tmp_path, ok + failed)
    render_all(tmp_path, pm)
    html = (tmp_path / "report.html").read_text()
    first = _first_screen(html)
    assert "4 of 8 cells failed" in first and "int8 is the best choice of the 1 measured (2 failed):" in first
    assert first.count("<b>FAILED</b>: timed out after 61 s") == 2 and first.count("<b>FAILED</b>: timed out after 62 s") == 2
    assert "batch 1" in first and "batch 8" in first  # the workloads are told apart
    assert 'id="chart-speed-vs-accuracy"' in html  # what did run is still charted
    # and when the baseline itself failed, nothing is compared and the reader is told why
    _write(tmp_path, [_row("none", 1, 0, status="failed", reason="killed by signal 9"), _row("int8", 1, 0.006)])
    render_all(tmp_path, pm)
    first = _first_screen((tmp_path / "report.html").read_text())
    assert "No recommendation: nothing could be compared with the baseline (baseline cell failed: killed by signal 9)." in first
    assert "none (baseline)" in first and "<b>NOT COMPARABLE</b>: baseline cell failed" in first


def test_many_workloads_aggregate_to_one_row_per_technique(tmp_path, pm):
    rows = []
    for b in range(1, 27):
        rows += [_row("none", b, 0.010), _row("int8", b, 0.005, ppl=4.01)]
    _write(tmp_path, rows)
    render_all(tmp_path, pm)
    lights = _traffic_lights((tmp_path / "report.html").read_text())
    assert list(lights) == ["int8"]
    assert lights["int8"][0] == ("good", "✓ 2.00x faster geo-mean; credibly faster in 26/26, slower in 0")


# --- charts ---------------------------------------------------------------------------------------


def _chart_ids(html: str) -> list[str]:
    return re.findall(r'<figure class="chart" id="chart-([\w-]+)">', html)


def test_only_the_charts_the_data_supports_are_drawn(tmp_path, pm):
    _write(tmp_path, [_row("none", 1, 0.01)])
    render_all(tmp_path, pm)
    html = (tmp_path / "report.html").read_text()
    assert _chart_ids(html) == [] and 'id="charts"' not in html and not (tmp_path / "charts").exists()

    _write(tmp_path, [_row("none", 1, 0.01), _row("int8", 1, 0.005, nbytes=3_600_000, ppl=4.02)])
    render_all(tmp_path, pm)
    html, md = (tmp_path / "report.html").read_text(), (tmp_path / "report.md").read_text()
    assert _chart_ids(html) == ["speed-vs-accuracy", "size-vs-accuracy", "speedup"]
    for name in _chart_ids(html):
        fig = html.split(f'id="chart-{name}">', 1)[1].split("</figure>", 1)[0]
        assert fig.count("<svg") == 1 and "<title " in fig and re.search(r"<figcaption><b>[^<]+\.</b> \S.+</figcaption>", fig)
        assert "![" in md and f"](charts/{name}.svg)" in md and (tmp_path / "charts" / f"{name}.svg").stat().st_size > 1000
    svg = (tmp_path / "charts" / "speed-vs-accuracy.svg").read_text()
    for text in ("Speed against accuracy", "perplexity change vs baseline (%", "speed-up vs baseline (x", "Pareto front", "int8"):
        assert text in svg  # title, axis units, the front, the point's label: real text, not paths
    # ids are made unique per chart, so several inline SVGs never share one
    ids = re.findall(r'\sid="([^"]+)"', html)
    assert len(ids) == len(set(ids))


def test_training_structure_and_trend_charts(tmp_path, pm):
    from optbench.compare import ALTERNATED_ABOUT
    from optbench.reporting import load_report
    from optbench.reports.renderers import HTMLReporter, MarkdownReporter

    rows = [_training_row("sgd", 1.6), _training_row("adam", 1.1, reached_at=120),
            _training_row("rmsprop", 1.3, diverged="loss 17.2 above 3x its starting value 5.5 at step 60")]
    rows += [_training_row("none", 1.0 + 0.4 / (d * w / 64), model={"source": "reference", "size": "tiny", "depth": d, "width": w})
             for d in (1, 2) for w in (64, 128)]
    _write(tmp_path, rows, question="Which optimizer reaches the target first?")
    trends = [{"cell": "int8 | batch 8", "metric": "latency", "unit": "ms",
               "points": [{"run_id": f"r{i}", "started": f"2026-11-{i + 1:02d}T00:00:00Z", "value": 10.0 if i < 6 else 12.0,
                           "ci95": [9.5, 10.5] if i < 6 else [11.4, 12.6]} for i in range(10)],
               "steps": [{"index": 6, "run_id": "r6", "before": 10.0, "after": 12.0, "ratio": 1.2}]},
              {"cell": "int8 | batch 1", "metric": "latency_vs_baseline", "unit": "x", "about": ALTERNATED_ABOUT, "steps": [],
               "points": [{"run_id": f"r{i}", "started": f"2026-11-{i + 1:02d}T00:00:00Z", "value": 1.10, "ci95": None} for i in range(10)]},
              {"cell": "empty", "metric": "latency", "unit": "ms", "points": [], "steps": []}]
    report = load_report(tmp_path, trends=trends)
    HTMLReporter().render(report, str(tmp_path))
    MarkdownReporter().render(report, str(tmp_path))
    html, md = (tmp_path / "report.html").read_text(), (tmp_path / "report.md").read_text()
    assert _chart_ids(html) == ["loss-curves", "structure-pareto", "trend-1", "trend-2"]  # the empty trend draws nothing
    first = _first_screen(html)
    assert "Training: first to the target loss: adam · tiny (120 steps, 6.0 s); 6 of 7 did not reach it" in first and "lowest held-out perplexity" in first
    assert "Pareto front" in first and "diverged and stopped early" in first
    assert re.search(r"<td>rmsprop</td><td>[^<]*</td><td>ok \(diverged: loss 17.2", first)
    loss = (tmp_path / "charts" / "loss-curves.svg").read_text()
    for text in ("Training loss per optimizer", "training step", "loss (cross-entropy, nats/token)", "adam", "rmsprop", "[diverged]", "target 1.2"):
        assert text in loss
    pareto = (tmp_path / "charts" / "structure-pareto.svg").read_text()
    assert "cost: FLOPs/token" in pareto and "held-out perplexity" in pareto and "d2 w128" in pareto
    trend = (tmp_path / "charts" / "trend-1.svg").read_text()
    assert "int8 | batch 8: latency over time" in trend and "step x1.20" in trend and "latency (ms)" in trend
    assert "](charts/trend-1.svg)" in md
    assert "latency_vs_baseline: latency over the suite baseline&#39;s model timed alternately" in html  # says what it is
    assert "model timed alternately in the same process, each run at the series' common machine state" in md


def test_pareto_front():
    from optbench.reports.charts import _pareto

    # x: accuracy cost (lower is better), y: speed-up (higher is better)
    pts = [(0.0, 1.0), (0.1, 1.5), (0.2, 1.4), (0.5, 2.0), (0.5, 1.9), (1.0, 2.0)]
    assert _pareto(pts) == [0, 1, 3]
    # y: perplexity (lower is better), as for cost against quality
    assert _pareto([(1, 5.0), (2, 4.0), (3, 4.5), (4, 3.0)], maximize_y=False) == [0, 1, 3]


def test_chart_and_markdown_text_from_plugins_is_escaped(tmp_path, pm):
    evil = "<script>alert(1)</script>"
    link = "[x](javascript:alert(1))"
    rows = [_row("none", 1, 0.01), _row(evil, 1, 0.005, ppl=4.01), _row(link, 1, 0.006, ppl=4.01)]
    _write(tmp_path, rows, question=f"{evil}?")
    render_all(tmp_path, pm)
    html = (tmp_path / "report.html").read_text()
    assert evil not in html and html.lower().count("<script") == 1
    charts = "".join(html.split('<figure class="chart"')[1:])
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in charts  # as <text> in the inline SVG, escaped
    for svg in (tmp_path / "charts").glob("*.svg"):
        assert evil not in svg.read_text()
    md = (tmp_path / "report.md").read_text()
    assert "<script>" not in md and "&lt;script&gt;" in md
    assert not re.search(r"(?<!\\)\]\(javascript:", md) and "[x\\](javascript:" in md  # never a link


def test_report_has_a_content_security_policy_matching_its_own_script(tmp_path, pm):
    import base64
    import hashlib

    _write(tmp_path, [_row("none", 1, 0.01), _row("int8", 1, 0.005)])
    render_all(tmp_path, pm)
    html = (tmp_path / "report.html").read_text()
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', html).group(1)
    assert "default-src 'none'" in csp  # nothing loads from anywhere: the file alone is the report
    script = re.search(r"<script>(.*?)</script>", html, flags=re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp
    # sortable tables carry numeric sort keys
    assert re.search(r'<td class="num" data-v="(1\.9|2\.0)\d*">(1\.9\d|2\.0\d)x faster', html)


def test_trend_charts_put_steps_first_and_are_capped():
    from optbench.reports.charts import MAX_TRENDS, trends_to_chart

    def series(i, steps):
        return {"cell": f"c{i}", "metric": "latency", "unit": "ms", "steps": steps,
                "points": [{"run_id": f"r{k}", "started": "", "value": 1.0, "ci95": None} for k in range(3)]}

    trends = [series(i, [{"index": 1, "run_id": "r1", "before": 1, "after": 2, "ratio": 2}] if i in (7, 15) else [])
              for i in range(20)]
    trends.append({"cell": "one-run", "metric": "latency", "unit": "ms", "steps": [], "points": [{"run_id": "r0", "value": 1.0}]})
    picked = trends_to_chart(trends)
    assert len(picked) == MAX_TRENDS and [t["cell"] for t in picked[:3]] == ["c7", "c15", "c0"]

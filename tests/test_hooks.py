"""One test per hook (test_hook_<name>), each through a real PluginManager and a real run.

``hook_plugin`` implements every hook; one small suite runs with it (each cell in its own
process, where the plugin is imported by module name), and each test checks its hook's
part of what came out.
"""

from __future__ import annotations

import json

import hook_plugin
import pytest
from helpers import rows_of
from optbench import manager
from optbench.reporting import render_all
from optbench.testing import run_suite_yaml

SUITE = """
name: hooks
model: {source: toy, width: 4}
data: {name: toy-text, split: heldout}
backend: cpu-tagged
workload: {batch: 1, seq_len: 4}
measure: {metrics: [weight-sum]}
techniques: [none, {scale: {factor: 3.0}}]
"""
# the toy model is Linear(4, 4) with weights 1.0 and biases 0.5
TOY_WEIGHT_SUM = 4 * 4 * 1.0 + 4 * 0.5


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    pm = manager.load()
    assert pm.register(hook_plugin, "hooktest")
    hook_plugin.CALLS.clear()
    out = tmp_path_factory.mktemp("hooks") / "out"
    outcome = run_suite_yaml(SUITE, out, pm=pm)
    calls = list(hook_plugin.CALLS)
    assert pm.errors == []  # no plugin, reporter or observer complained
    rows = {r["technique"]["label"]: r for r in rows_of(out)}
    assert [r["status"] for r in rows.values()] == ["ok", "ok"], [r["reason"] for r in rows.values()]
    return pm, outcome, rows, calls


def test_hook_register_techniques(run):
    pm, _, rows, _ = run
    assert pm.techniques().owner["scale"] == "hooktest"
    scaled = rows["scale[factor=3.0]"]
    assert scaled["plugin_of"]["technique"] == "hooktest ((in-process)==)"
    # the technique ran in the cell and changed the model for real
    assert scaled["metrics"]["weight_sum"]["value"] == pytest.approx(3 * TOY_WEIGHT_SUM)


def test_hook_register_backends(run):
    pm, _, rows, _ = run
    assert pm.backends().owner["cpu-tagged"] == "hooktest"
    assert all(r["backend"] == "cpu-tagged" and r["backend_info"] == {"device": "cpu", "tag": "from hook_plugin"} for r in rows.values())


def test_hook_register_models(run):
    pm, _, rows, _ = run
    assert pm.models().owner["toy"] == "hooktest"
    none = rows["none"]
    assert none["model_fingerprint"] == "toy-4" and none["model_info"]["config"] == {"width": 4}
    assert none["metrics"]["weight_sum"]["value"] == pytest.approx(TOY_WEIGHT_SUM)


def test_hook_register_datasets(run):
    pm, _, rows, _ = run
    assert pm.datasets().owner["toy-text"] == "hooktest"
    assert rows["none"]["metrics"]["data_bytes"]["value"] == len(hook_plugin.HELDOUT)


def test_hook_register_metrics(run):
    pm, _, rows, _ = run
    assert pm.metrics().owner["weight-sum"] == "hooktest"
    assert all(set(r["metrics"]) == {"weight_sum", "data_bytes"} for r in rows.values())


def test_hook_register_reporters(run):
    pm, outcome, _, _ = run
    lines = outcome.run_dir / "lines.txt"
    assert str(lines) in outcome.reports  # written by the run, beside report.md
    assert lines.read_text() == "none ok 18\nscale[factor=3.0] ok 54\n"
    lines.unlink()
    assert render_all(outcome.run_dir, pm, only=["lines"]) == [str(lines)]  # `optbench report` does the same
    assert lines.exists()


def test_hook_cell_started(run):
    _, _, rows, calls = run
    started = [c["cell"] for name, c in calls if name == "cell_started"]
    assert [c["technique"]["label"] for c in started] == ["none", "scale[factor=3.0]"]
    assert {c["key"] for c in started} == {r["cell"] for r in rows.values()}
    # each cell is announced before it finishes, and the next starts only after
    order = [(name, (c.get("cell") or {}).get("key")) for name, c in calls]
    for key in (c["key"] for c in started):
        assert order.index(("cell_started", key)) + 1 == order.index(("cell_finished", key))


def test_hook_cell_finished(run):
    _, outcome, rows, calls = run
    finished = [c for name, c in calls if name == "cell_finished"]
    assert len(finished) == 2
    for c in finished:
        # the row handed to observers is the one already on disk
        on_disk = rows[c["row"]["technique"]["label"]]
        assert json.loads(json.dumps(c["row"], default=str)) == on_disk
        assert c["cell"]["key"] == c["row"]["cell"]


def test_hook_run_finished(run):
    _, outcome, rows, calls = run
    assert calls[-1][0] == "run_finished" and [n for n, _ in calls].count("run_finished") == 1
    done = calls[-1][1]
    assert done["run_dir"] == str(outcome.run_dir)
    assert sorted(r["technique"]["label"] for r in done["rows"]) == sorted(rows)

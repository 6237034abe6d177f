"""optbench.testing, the pytest plugin for plugin authors, used here as they would use it."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

import pytest
from helpers import SMALL_MODEL
from optbench import Technique, hookimpl
from optbench.errors import SuiteError
from optbench.manager import PluginError
from optbench.testing import FAST_MEASURE


def test_it_is_a_pytest11_plugin_that_imports_no_torch(request):
    (ep,) = [ep for ep in metadata.entry_points(group="pytest11") if ep.name == "optbench"]
    assert ep.value == "optbench.testing"
    assert request.config.pluginmanager.hasplugin("optbench")
    code = "import sys, optbench.testing; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_optbench_pm_is_fresh_with_the_installed_plugins(optbench_pm):
    assert {"baseline", "metrics", "quantize"} <= set(optbench_pm.info)
    assert optbench_pm.errors == [] and optbench_pm.check() == []


class _Double(Technique):
    name = "double"

    def apply(self, model, params, ctx):
        return model


class DoublePlugin:
    @hookimpl
    def optbench_register_techniques(self, register):
        register(_Double())


def test_register_plugin_registers_for_one_test_and_refusals_raise(optbench_pm, register_plugin):
    pm = register_plugin(DoublePlugin(), "double")
    assert pm is optbench_pm and pm.techniques().owner["double"] == "double"
    with pytest.raises(PluginError, match=r"^plugin 'double' \(in-process\): Plugin name already registered"):
        register_plugin(DoublePlugin(), "double")


@pytest.fixture
def unregistered_after(optbench_pm):
    yield
    # set up before register_plugin, so torn down after it: its teardown has run by now
    assert "double" not in optbench_pm.info and "double" not in optbench_pm.techniques()


def test_register_plugin_unregisters_after_the_test(unregistered_after, register_plugin):
    assert "double" in register_plugin(DoublePlugin(), "double").techniques()


def test_run_suite_text_defaults_to_the_tiny_model(run_suite_text):
    (row,) = run_suite_text("""
        techniques: [none]
        measure: {metrics: [memory]}
    """)
    assert row["status"] == "ok", row["reason"]
    assert row["suite"] == "test"
    assert {k: row["model"][k] for k in ("source", "size", "depth")} == {"source": "reference", "size": "tiny", "depth": None}
    assert row["model_info"]["trained"] is True
    assert row["metrics"]["param_bytes"]["value"] > 4 * 3e6  # the tiny model: 3.36 M float32 parameters
    assert run_suite_text.outcome.rows == [row]
    assert (run_suite_text.run_dir / "report.md").exists()


def test_observers_registered_with_register_plugin_see_the_run_with_fast_measure(register_plugin, run_suite_text):
    seen = []

    class Observer:
        @hookimpl
        def optbench_cell_finished(self, cell, row):
            seen.append((cell["technique"]["label"], row["status"], cell["measure"]))

    register_plugin(Observer())
    run_suite_text(f"techniques: [none]\nmodel: {SMALL_MODEL}\nmeasure: {{metrics: [latency], eval_tokens: 2048}}")
    ((label, status, measure),) = seen
    assert (label, status) == ("none", "ok")
    assert measure["eval_tokens"] == 2048  # the suite's own setting wins
    assert {k: measure[k] for k in FAST_MEASURE if k != "eval_tokens"} == {k: v for k, v in FAST_MEASURE.items() if k != "eval_tokens"}


def test_a_bad_suite_raises_with_its_line(run_suite_text):
    with pytest.raises(SuiteError, match=r"suite.yaml:2: unknown technique 'quantise' \(did you mean 'quantize'\?\)"):
        run_suite_text("techniques:\n  - quantise\n")


def test_objects_cannot_travel_to_cell_processes(run_suite_text):
    with pytest.raises(TypeError, match="pass a module or an importable module name"):
        run_suite_text("techniques: [none]", plugins={"double": DoublePlugin()})

"""The plugin system: entry points for built-ins and third parties alike, one line per broken plugin."""

from __future__ import annotations

import json
import sys

import pytest
from helpers import FAST_MEASURE, SMALL_MODEL, cli, make_dist, rows_of
from optbench import Technique, hookimpl, manager
from optbench.manager import PluginError, PluginManager

NOISE_PLUGIN = """
import torch
from optbench import hookimpl, Technique

class AddNoise(Technique):
    name = "add-noise"
    kind = "compress"
    params = {"std": 0.01}
    def apply(self, model, params, ctx):
        g = torch.Generator().manual_seed(ctx.seed)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn(p.shape, generator=g) * params["std"])
        return model

@hookimpl
def optbench_register_techniques(register):
    register(AddNoise())
"""

BUILTINS = {"baseline", "reference", "metrics", "reporters", "cpu", "cuda", "quantize", "prune", "share", "distill", "optimizers",
            "tensorcore", "parallel"}


def test_builtins_load_through_entry_points(pm):
    assert BUILTINS <= set(pm.info)
    assert all(pm.info[n].dist == "optbench" for n in BUILTINS)
    assert pm.techniques().names() == ["adagrad", "adam", "adamw", "ddp", "distill", "momentum", "nesterov", "none", "pipeline",
                                       "prune", "quantize", "rmsprop", "sgd", "share", "task-parallel", "tensor-parallel"]
    assert pm.backends().names() == ["cpu", "cpu-compile", "cuda", "cuda-compile", "cuda-compile-graphs",
                                     "tensorcore-bf16", "tensorcore-fp16", "tensorcore-tf32"]
    assert set(pm.metrics().names()) == {"latency", "memory", "cost", "accuracy", "fidelity", "mfu", "energy", "parallel"}
    assert pm.errors == []


def test_importing_optbench_does_not_import_torch():
    import subprocess

    code = "import sys, optbench, optbench.manager, optbench.suite, optbench.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_disable_by_name():
    pm = manager.load(disabled=["quantize"])
    assert "quantize" not in pm.info
    assert "quantize" not in pm.techniques()


class _Dup(Technique):
    name = "none"

    def apply(self, model, params, ctx):
        return model


class DuplicatePlugin:
    @hookimpl
    def optbench_register_techniques(self, register):
        register(_Dup())


class WrongTypePlugin:
    @hookimpl
    def optbench_register_techniques(self, register):
        register("not a technique")


class RaisingPlugin:
    @hookimpl
    def optbench_register_techniques(self, register):
        raise RuntimeError("boom")


class UnknownHookPlugin:
    @hookimpl
    def optbench_register_technique(self, register):  # singular: a typo
        pass


@pytest.mark.parametrize(
    "plugin, expected",
    [
        (DuplicatePlugin(), "plugin 'bad' (in-process): registered technique 'none', already registered by plugin 'baseline'"),
        (WrongTypePlugin(), "plugin 'bad' (in-process): registered 'str' as one of its techniques, which must be a Technique instance"),
        (RaisingPlugin(), "plugin 'bad' (in-process): optbench_register_techniques raised RuntimeError: boom"),
    ],
)
def test_bad_registrations_cost_one_line_and_the_rest_goes_on(plugin, expected):
    lines: list[str] = []
    pm = manager.load(warn=lines.append)
    pm.register(plugin, "bad")
    assert "none" in pm.techniques() and "quantize" in pm.techniques()
    assert lines == [expected]


def test_unknown_hook_is_named_with_did_you_mean():
    lines: list[str] = []
    pm = manager.load(warn=lines.append)
    pm.register(UnknownHookPlugin(), "typo")
    assert len(lines) == 1
    assert "plugin 'typo'" in lines[0] and "optbench_register_technique" in lines[0]
    assert "did you mean 'optbench_register_techniques'" in lines[0] or "unknown hook" in lines[0]


def test_strict_makes_it_fatal():
    pm = manager.load(strict=True)
    pm.register(RaisingPlugin(), "bad")
    with pytest.raises(PluginError, match="plugin 'bad'.*raised RuntimeError: boom"):
        pm.techniques()


def test_lifecycle_observer_that_raises_costs_a_line():
    class Observer:
        @hookimpl
        def optbench_cell_finished(self, cell, row):
            raise ValueError("observer broke")

    lines: list[str] = []
    pm = PluginManager(warn=lines.append)
    pm.register(Observer(), "obs")
    pm.cell_finished({}, {})
    assert lines == ["plugin 'obs' (in-process): optbench_cell_finished raised ValueError: observer broke"]


def test_broken_plugin_at_import_costs_one_line(tmp_path):
    root = make_dist(tmp_path / "site", "optbench-broken", "0.3", "broken_plugin", "import not_a_real_module\n", entry="broken")
    out = cli("plugins", env_extra={"PYTHONPATH": str(root)})
    assert out.returncode == 0
    assert out.stderr.strip() == "optbench: plugin 'broken' (dist optbench-broken 0.3): ModuleNotFoundError: No module named 'not_a_real_module'"
    assert "quantize" in out.stdout  # the others still load
    assert cli("plugins", "--check", env_extra={"PYTHONPATH": str(root)}).returncode == 2
    strict = cli("plugins", "--strict", env_extra={"PYTHONPATH": str(root)})
    assert strict.returncode == 2 and "Traceback" not in strict.stderr
    assert cli("plugins", "--disable", "broken", env_extra={"PYTHONPATH": str(root)}).stderr == ""
    assert cli("plugins", "-p", "no:broken", env_extra={"PYTHONPATH": str(root)}).stderr == ""


def test_trace_prints_hook_calls():
    out = cli("plugins", env_extra={"OPTBENCH_TRACE": "1"})
    assert "[optbench trace] call optbench_register_techniques -> quantize" in out.stderr


def test_third_party_distribution_is_discovered_listed_and_used(tmp_path):
    root = make_dist(tmp_path / "site", "optbench-noise", "1.2", "optbench_noise", NOISE_PLUGIN, entry="noise")
    env = {"PYTHONPATH": str(root)}
    listed = json.loads(cli("plugins", "--json", env_extra=env).stdout)
    noise = next(p for p in listed if p["name"] == "noise")
    assert noise["dist"] == "optbench-noise" and noise["version"] == "1.2"
    assert noise["hooks"] == ["optbench_register_techniques"] and noise["provides"] == {"techniques": ["add-noise"]}
    assert noise["path"].endswith("optbench_noise.py")

    suite = tmp_path / "noise.yaml"
    suite.write_text(f"""name: noise
model: {SMALL_MODEL}
workload: {{batch: 1, seq_len: 16}}
measure: {FAST_MEASURE}
techniques: [none, {{add-noise: {{std: 0.05}}}}]
""")
    run = cli("run", str(suite), "-o", str(tmp_path / "out"), env_extra=env)
    assert run.returncode == 0, run.stderr
    rows = {r["technique"]["label"]: r for r in rows_of(tmp_path / "out")}
    noisy = rows["add-noise[std=0.05]"]
    assert noisy["status"] == "ok"
    assert noisy["plugins"]["noise"] == "optbench-noise==1.2"
    assert noisy["plugin_of"]["technique"] == "noise (optbench-noise==1.2)"
    assert noisy["metrics"]["kl_divergence"]["value"] > 1e-4  # the weights really changed
    assert rows["none"]["metrics"]["kl_divergence"]["value"] == pytest.approx(0, abs=1e-9)
    assert "add-noise[std=0.05]" in (tmp_path / "out" / "report.md").read_text()

"""`optbench plugins --check`: every installed plugin validated, nothing run."""

from __future__ import annotations

import subprocess
import sys

from helpers import cli, make_dist
from optbench import Technique, manager
from optbench.manager import check_object

# Every mistake below costs one line naming the plugin and its distribution. apply() and
# measure() would leave a file behind if anything ran them.
SLOPPY_PLUGIN = """
from pathlib import Path
from optbench import hookimpl, Metric, Reporter, Technique

class SloppyPrune(Technique):
    name = "sloppy-prune"
    kind = "compression"                    # not a technique kind
    params = {"method": "magnitude"}
    choices = {"methd": ["magnitude"]}      # a key that is not a param
    def apply(self, model, params, ctx):
        Path("APPLIED").write_text("apply ran")
        return model

class Quantize(Technique):                  # a name the built-in quantize plugin owns
    name = "quantize"
    def apply(self, model, params, ctx):
        return model

class NoMeasure(Metric):                    # forgot measure()
    name = "nothing"

class CSV(Reporter):                        # forgot filename
    name = "csv"
    def render(self, report, out_dir):
        Path("RENDERED").write_text("render ran")

@hookimpl
def optbench_register_techniques(register):
    register(SloppyPrune())
    register(Quantize())
    register(SloppyPrune)                   # the class, not an instance

@hookimpl
def optbench_register_metrics(register):
    register(NoMeasure())

@hookimpl
def optbench_register_reporters(register):
    register(CSV())

@hookimpl
def optbench_register_technique(register):  # unknown hook: singular
    pass

def optbench_register_backends(register):   # no @hookimpl: pluggy would ignore it silently
    pass
"""

W = "plugin 'sloppy' (dist optbench-sloppy 0.2)"
BUILTINS = len(manager.load().info)  # the plugins optbench itself ships


def test_check_names_every_problem_with_plugin_and_dist_and_runs_nothing(tmp_path):
    root = make_dist(tmp_path / "site", "optbench-sloppy", "0.2", "optbench_sloppy", SLOPPY_PLUGIN, entry="sloppy")
    out = cli("plugins", "--check", env_extra={"PYTHONPATH": str(root)}, cwd=tmp_path)
    assert out.returncode == 2
    assert out.stdout.splitlines() == [
        f"{W}: 'optbench_register_backends' is not decorated with @hookimpl; it is ignored",
        f"{W}: unknown hook 'optbench_register_technique' (did you mean 'optbench_register_techniques'?); it is ignored",
        f"{W}: registered technique 'quantize', already registered by plugin 'quantize'",
        f"{W}: registered the class 'SloppyPrune' instead of an instance; call register(SloppyPrune())",
        f"{W}: technique 'sloppy-prune': choices names 'methd', which is not one of its params (did you mean 'method'?)",
        f"{W}: technique 'sloppy-prune': kind 'compression' is not one of compress, train, parallel, structure, baseline (did you mean 'compress'?)",
        f"{W}: metric 'nothing': does not implement measure()",
        f"{W}: reporter 'csv': has no filename (the file it writes into the results directory)",
        f"8 problems in {BUILTINS + 1} plugins loaded",
    ]
    assert out.stderr == ""
    assert not (tmp_path / "APPLIED").exists() and not (tmp_path / "RENDERED").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]  # no results, no reports


def test_check_passes_on_the_built_ins_and_disabling_the_culprit_clears_it(tmp_path):
    ok = cli("plugins", "--check")
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, f"{BUILTINS} plugins OK\n", "")
    # nothing heavy is imported either: checking stays instant
    code = "import sys; from optbench.cli import main; rc = main(['plugins', '--check']); print(rc, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[-1] == "0 False"
    root = make_dist(tmp_path / "site", "optbench-sloppy", "0.2", "optbench_sloppy", SLOPPY_PLUGIN, entry="sloppy")
    disabled = cli("plugins", "--check", "--disable", "sloppy", env_extra={"PYTHONPATH": str(root)})
    assert (disabled.returncode, disabled.stdout) == (0, f"{BUILTINS} plugins OK\n")


def test_check_object_accepts_the_built_ins_and_rejects_bad_defaults():
    pm = manager.load()
    assert pm.check() == []

    class Odd(Technique):
        name = "odd"
        params = {"method": "int4", "group": object()}
        choices = {"method": ["int8", "fp8"]}

        def apply(self, model, params, ctx):
            return model

    assert check_object("techniques", Odd()) == [
        "param 'group' has a default of type object; use bool, int, float, str, list or None",
        "default method='int4' is not one of its choices (int8, fp8)",
    ]


def test_a_hook_with_wrong_argument_names_costs_one_line():
    from optbench import hookimpl

    class WrongArgs:
        @hookimpl
        def optbench_register_techniques(self, reg):
            pass

    lines: list[str] = []
    pm = manager.PluginManager(warn=lines.append)
    assert pm.register(WrongArgs(), "argbad") is False
    assert lines == ["plugin 'argbad' (in-process): hookimpl definition: optbench_register_techniques(reg); Argument(s) {'reg'} "
                     "are declared in the hookimpl but can not be found in the hookspec (the hook's arguments: register)"]


def test_an_entry_point_name_already_taken_costs_one_line_not_silence(tmp_path):
    source = "from optbench import hookimpl\n"
    root = make_dist(tmp_path / "site", "optbench-clash", "0.1", "optbench_clash", source, entry="quantize")
    out = cli("plugins", "--check", env_extra={"PYTHONPATH": str(root)})
    assert out.returncode == 2
    assert out.stdout.splitlines() == [
        "plugin 'quantize' (dist optbench-clash 0.1): the plugin name 'quantize' is taken by plugin 'quantize' (dist optbench 0.1.0); "
        "it is not loaded (rename its entry point)",
        f"1 problem in {BUILTINS} plugins loaded",
    ]

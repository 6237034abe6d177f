"""``optbench.testing``: a pytest plugin for people who write optbench plugins.

Installed with optbench and loaded by pytest automatically (a ``pytest11`` entry point),
so a plugin's own tests just ask for the fixtures:

``optbench_pm``
    a fresh :class:`~optbench.manager.PluginManager` with every installed plugin loaded.
``register_plugin(plugin, name=None)``
    registers a module or object into ``optbench_pm`` for this test only; returns the manager.
``run_suite_text(yaml_text, plugins={name: module})``
    runs a suite written inline, in this test's ``tmp_path``, and returns its result rows.

Importing this module imports neither torch nor the runner: pytest loads it in every
test run of the environment, so it must stay cheap.
"""

from __future__ import annotations

import importlib
import textwrap
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .manager import PluginManager
    from .runner import RunOutcome

#: measure settings that keep a test's cells to about a second each; a suite's own
#: ``measure:`` keys win over these
FAST_MEASURE: dict[str, Any] = {
    "warmup": 2,
    "min_reps": 5,
    "min_time_s": 0.05,
    "max_time_s": 5.0,
    "eval_tokens": 1024,
    "eval_seq_len": 64,
}

Plugins = dict[str, "str | types.ModuleType"]


def _module_name(name: str, plugin: Any) -> str:
    if isinstance(plugin, str):
        return plugin
    if isinstance(plugin, types.ModuleType):
        return plugin.__name__
    raise TypeError(f"plugin {name!r}: pass a module or an importable module name, not {type(plugin).__name__}; "
                    "each cell runs in its own process, which imports the plugin by module name")


def run_suite_yaml(yaml_text: str, out_dir: str | Path, *, plugins: Plugins | None = None,
                   pm: PluginManager | None = None, fast: bool = True, timeout: float | None = None) -> RunOutcome:
    """Run a suite given as YAML text into ``out_dir``; the function behind ``run_suite_text``.

    ``plugins`` maps plugin name -> module (or module name): each is registered here and
    imported by every cell process. A module already loaded (installed through its entry
    point, or registered with ``register_plugin``) is not registered twice. Without
    ``name:`` the suite is called ``test``; without ``model:`` it runs on the tiny reference
    model; with ``fast`` the measure settings default to :data:`FAST_MEASURE`.
    """
    import yaml

    from .manager import IN_PROCESS, load
    from .runner import RunOptions, run_suite
    from .suite import parse_suite

    pm = pm if pm is not None else load()
    text = textwrap.dedent(yaml_text).strip() + "\n"
    data = yaml.safe_load(text)
    if isinstance(data, dict) and "name" not in data:
        text += "name: test\n"  # appended, so the author's line numbers stay right in errors

    inline: dict[str, str] = {}
    for name, plugin in (plugins or {}).items():
        module = _module_name(name, plugin)
        if any(info.module == module for info in pm.info.values()):
            continue
        before = len(pm.errors)
        if not pm.register(importlib.import_module(module), name):
            from .manager import PluginError

            raise PluginError(pm.errors[-1] if len(pm.errors) > before else f"plugin {name!r} is disabled")
    # every in-process plugin that is a module travels to the cell processes by name;
    # objects (observers, reporters) take part in this process only
    for name, info in pm.info.items():
        if info.dist == IN_PROCESS and isinstance(pm.pm.get_plugin(name), types.ModuleType):
            inline[name] = info.module

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "suite.yaml").write_text(text)  # the suite as run, beside its results
    suite = parse_suite(text, str(out_dir / "suite.yaml"), pm)
    if fast:
        own = data.get("measure", {}) if isinstance(data, dict) else {}
        suite.measure = {**suite.measure, **{k: v for k, v in FAST_MEASURE.items() if k not in own}}
    opts = RunOptions(out_dir=out_dir, inline_plugins=inline, timeout=timeout, history="")  # tests keep no history
    return run_suite(suite, pm, opts)


class SuiteRunner:
    """``run_suite_text``: each call runs into a new directory under the test's ``tmp_path``.

    After a call, ``run_dir`` is that directory (``report.md``, ``results.jsonl``, ``logs/``)
    and ``outcome`` the full :class:`~optbench.runner.RunOutcome`.
    """

    def __init__(self, tmp_path: Path, pm: PluginManager):
        self.tmp_path = tmp_path
        self.pm = pm
        self.calls = 0
        self.run_dir: Path | None = None
        self.outcome: RunOutcome | None = None

    def __call__(self, yaml_text: str, plugins: Plugins | None = None, *, fast: bool = True,
                 timeout: float | None = None) -> list[dict[str, Any]]:
        self.calls += 1
        self.run_dir = self.tmp_path / f"optbench-run-{self.calls}"
        self.outcome = run_suite_yaml(yaml_text, self.run_dir, plugins=plugins, pm=self.pm, fast=fast, timeout=timeout)
        return self.outcome.rows


@pytest.fixture
def optbench_pm() -> PluginManager:
    """A fresh plugin manager with every installed plugin loaded (built-ins included)."""
    from .manager import load

    return load()


@pytest.fixture
def register_plugin(optbench_pm: PluginManager):
    """``register_plugin(plugin, name=None) -> optbench_pm``: register for this test only.

    Raises :class:`~optbench.manager.PluginError` with the one-line message when the
    plugin cannot be registered (a hook with wrong argument names, a name taken...).
    """
    from .manager import PluginError

    names: list[str] = []

    def register(plugin: Any, name: str | None = None) -> PluginManager:
        name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        before = len(optbench_pm.errors)
        if not optbench_pm.register(plugin, name):
            raise PluginError(optbench_pm.errors[-1] if len(optbench_pm.errors) > before else f"plugin {name!r} is disabled")
        names.append(name)
        return optbench_pm

    yield register
    for name in reversed(names):
        if optbench_pm.pm.get_plugin(name) is not None:
            optbench_pm.unregister(name)


@pytest.fixture
def run_suite_text(tmp_path: Path, optbench_pm: PluginManager) -> SuiteRunner:
    """``run_suite_text(yaml_text, plugins={name: module}) -> rows``: run a suite from text.

    Runs through the real runner (each cell in its own process) with ``optbench_pm``, so
    observers and reporters registered with ``register_plugin`` take part too.
    """
    return SuiteRunner(tmp_path, optbench_pm)


def pytest_report_header(config: pytest.Config) -> str | None:
    if config.getoption("verbose") > 0:
        from . import __version__

        return f"optbench {__version__} (optbench.testing fixtures: optbench_pm, register_plugin, run_suite_text)"
    return None


__all__ = ["FAST_MEASURE", "SuiteRunner", "run_suite_yaml", "optbench_pm", "register_plugin", "run_suite_text"]
